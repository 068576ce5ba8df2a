//! The moments of this step's server loop, for `--demo`'s turn-taking (`tutor::turns`): the
//! server says where it is, and the demo's clients act only once the server's thread sleeps
//! in the call named. Nothing here makes a socket call.

/// Where the server is: told just before it makes the call named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// About to wait in accept(), having accepted `accepted` clients.
    Accepting { accepted: u32 },
    /// Has closed its socket for client `client`.
    Closed { client: u32 },
}

impl tutor::turns::Moment for Moment {
    fn call(self) -> Option<i64> {
        match self {
            Moment::Accepting { .. } => Some(libc::SYS_accept4),
            Moment::Closed { .. } => None,
        }
    }
}
