//! `--timeout`: what `connect_timeout` does inside, narrated so that it agrees with strace.

use std::io;
use std::time::Duration;

use socket2::Socket;
use tutor::call::Pause;
use tutor::{Narrator, explain, strace};

/// What `connect_timeout` does inside: it makes the socket non-blocking and calls connect(),
/// which for TCP sends the SYN and returns EINPROGRESS at once. Then it waits in poll() at
/// most `limit` for the answer, and makes the socket blocking again. An answer that refuses
/// the handshake is read with getsockopt(SO_ERROR); a timeout has no errno: poll() returned 0.
pub struct InProgress<'a> {
    pub say: &'a Narrator,
    pub limit: Duration,
    pub tcp: bool,
}

impl Pause for InProgress<'_> {
    fn before(&self) {
        if self.tcp {
            self.say.note(format!(
                "connect() on the non-blocking socket returns -1 EINPROGRESS (Operation now in progress) at once: the SYN is on its way, and poll() waits at most {:?} for the server's answer",
                self.limit
            ));
        }
    }

    fn after(&self) {}
}

impl InProgress<'_> {
    /// After a failed connect_timeout: where its error came from.
    pub fn failed(say: &Narrator, socket: &Socket, tcp: bool, error: &io::Error) {
        if error.raw_os_error().is_none() {
            say.note(
                "poll() returned 0: no answer in time. Closing the socket ends the kernel's attempts",
            );
        } else if tcp {
            // A call socket2 makes inside connect_timeout, not a line of this program: the
            // narration shows it as strace does, with no Rust of its own.
            say.note("where the error came from: poll() saw the handshake end, and connect_timeout read its outcome:");
            say.call(strace::take_error(socket), "(inside connect_timeout)");
            say.returned(explain::describe(error));
        }
    }
}
