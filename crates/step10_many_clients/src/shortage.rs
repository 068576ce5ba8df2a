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

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Interest, Poll};
use tutor::{Failure, Narrator, explain, sys};

use crate::voice::Voice;
use crate::{LISTENER, calls};

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
    /// accept() on `listener_fd` failed with `error`, for want of a descriptor. `then` says
    /// what this model does until one is free.
    pub fn began(&mut self, say: &Narrator, listener_fd: RawFd, error: &io::Error, then: &str) {
        if self.short {
            return;
        }
        self.short = true;
        say.say(format_args!(
            "{} failed with {}: no descriptor for a new connection (ulimit -n); it waits in the accept queue",
            sys::accept(listener_fd),
            explain::describe(error)
        ));
        say.note(then);
    }

    /// The voice for the next accept(): as usual, but silent while a shortage is on, so
    /// that the retries are not narrated one by one.
    pub fn voice(&self, say: &Narrator, number: u64, budget: u64) -> Voice {
        if self.short {
            Voice::silent()
        } else {
            Voice::within(say, number, budget)
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

/// Watches the listener again: epoll_ctl(EPOLL_CTL_ADD).
pub fn watch_listener(voice: &Voice, poll: &Poll, listener_fd: RawFd) -> Result<(), Failure> {
    let epfd = poll.as_raw_fd();
    voice.call_via(
        "mio",
        || calls::epoll_ctl(epfd, "EPOLL_CTL_ADD", listener_fd, true, false, 0),
        "poll.registry().register(&mut SourceFd(&listener_fd), LISTENER, Interest::READABLE)",
    );
    let registered =
        poll.registry()
            .register(&mut SourceFd(&listener_fd), LISTENER, Interest::READABLE);
    match registered {
        Ok(()) => {
            voice.returned("0: the listener is watched again");
            Ok(())
        }
        Err(error) => Err(voice.fail(
            || calls::epoll_ctl(epfd, "EPOLL_CTL_ADD", listener_fd, true, false, 0),
            error,
        )),
    }
}

/// Stops watching the listener: epoll_ctl(EPOLL_CTL_DEL).
pub fn unwatch_listener(voice: &Voice, poll: &Poll, listener_fd: RawFd) -> Result<(), Failure> {
    let epfd = poll.as_raw_fd();
    let call = || calls::epoll_ctl(epfd, "EPOLL_CTL_DEL", listener_fd, false, false, 0);
    voice.call_via(
        "mio",
        call,
        "poll.registry().deregister(&mut SourceFd(&listener_fd))",
    );
    match poll.registry().deregister(&mut SourceFd(&listener_fd)) {
        Ok(()) => {
            voice.returned("0: the listener is not watched until a client leaves");
            Ok(())
        }
        Err(error) => Err(voice.fail(call, error)),
    }
}
