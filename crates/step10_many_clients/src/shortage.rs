//! Running out of descriptors.
//!
//! Every connection is a descriptor. Past `ulimit -n`, `accept()` fails with `EMFILE`
//! (`ENFILE` when the whole system is out), and the connection it could not take stays in
//! the accept queue. That is no reason to stop: the clients already connected are still
//! served, and each one that leaves frees a descriptor. So a server waits for one, then
//! accepts again; what it must not do is try again at once, in a loop, which burns a core and
//! frees nothing. Each model waits its own way:
//!
//! - serial holds no connection it could close: it pauses ([`PAUSE`]) and tries again;
//! - threads: the acceptor waits until a client's thread has closed its connection (at most
//!   [`PAUSE`]), while the other threads go on serving;
//! - poll: the listener leaves the epoll set until a client leaves. Left in it, a
//!   level-triggered listener would be reported ready again at once, forever (a busy loop),
//!   and an edge-triggered one (mio's) only when yet another client connects, so that the
//!   queued ones could wait for nobody.

use std::os::fd::RawFd;
use std::time::Duration;

use mio::{Interest, Poll};
use tutor::{Failure, Narrator, explain, strace};

use crate::epoll;
use crate::poll::LISTENER;

/// How long a model waits before it tries `accept()` again when nothing it holds can free a
/// descriptor: a few attempts a second, not millions.
pub const PAUSE: Duration = Duration::from_millis(250);

/// Whether the server is out of descriptors, narrated once when a shortage begins and once
/// when it ends (even beyond the narration budget: it matters more than any one client).
#[derive(Default)]
pub struct Shortage {
    short: bool,
}

impl Shortage {
    /// Whether `failure`, of accept(), says that no descriptor is left for a new connection
    /// (see `tutor::per_client::is_out_of_descriptors`).
    pub fn is_shortage(failure: &Failure) -> bool {
        failure
            .io_error()
            .is_some_and(tutor::per_client::is_out_of_descriptors)
    }

    /// accept() on `listener` failed with `failure`, for want of a descriptor. `then` says
    /// what this model does until one is free.
    pub fn began(
        &mut self,
        say: &Narrator,
        listener: &impl std::os::fd::AsRawFd,
        failure: &Failure,
        then: &str,
    ) {
        if self.short {
            return;
        }
        self.short = true;
        if let Some(error) = failure.io_error() {
            say.say(format_args!(
                "{} failed with {}: no descriptor for a new connection (ulimit -n); it waits in the accept queue",
                strace::accept(listener),
                explain::describe(error)
            ));
        }
        say.note(then);
    }

    /// The narrator for the next accept(): `next` as usual, but unheard while a shortage is
    /// on, so that the retries are not narrated one by one.
    pub fn narrator(&self, next: &Narrator) -> Narrator {
        if self.short {
            crate::clients::unheard(&next.quiet())
        } else {
            crate::clients::unheard(next)
        }
    }

    /// accept() succeeded: if a shortage was on, it is over.
    pub fn ended(&mut self, say: &Narrator, client: u64) {
        if !self.short {
            return;
        }
        self.short = false;
        say.say(format_args!(
            "a descriptor is free again: accepted client {client}; serving as before"
        ));
    }
}

/// Watches the listener again: epoll_ctl(EPOLL_CTL_ADD). Registering it reports the
/// connections already queued at once.
pub fn watch_listener(say: &Narrator, poll: &Poll, listener_fd: RawFd) -> Result<(), Failure> {
    epoll::register(say, poll, listener_fd, LISTENER, Interest::READABLE)?;
    say.note("the listener is watched again");
    Ok(())
}

/// Stops watching the listener: epoll_ctl(EPOLL_CTL_DEL).
pub fn unwatch_listener(say: &Narrator, poll: &Poll, listener_fd: RawFd) -> Result<(), Failure> {
    epoll::deregister(
        say,
        poll,
        listener_fd,
        ": the listener is not watched until a client leaves",
    )
}
