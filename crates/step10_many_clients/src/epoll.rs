//! The calls of this step that are not socket2 methods: epoll's, made through mio, and the
//! thread each client of the threads model gets.
//!
//! `tutor::narrate!` narrates socket2's methods, whose strace lines it finds by method name.
//! mio's calls are another library's, with other arguments (a `Poll`, a `Token`, an
//! `Interest`), so they are narrated here, by [`narrated`]: each is written once, in the
//! [`mio!`] macro, which prints the very expression it runs (`stringify!`), labelled `mio:`.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tutor::call::Pause;
use tutor::{Failure, Narrator};

/// Makes one call through mio: prints it (unless `say` is quiet), makes it again if a signal
/// interrupted it, with `pause` around it, and prints the error if it failed, like
/// `tutor::narrate!`. What came back on success is the caller's to print ([`returned`]).
fn narrated<T>(
    say: &Narrator,
    syscall: impl Fn() -> String,
    rust: &str,
    pause: &impl Pause,
    mut call: impl FnMut() -> io::Result<T>,
) -> Result<T, Failure> {
    say.count_call();
    // tutor's Narrator labels a call `socket2:` or `std:`; these are the same two lines
    // labelled `mio:`.
    let show = |say: &Narrator| {
        say.say(format_args!("-> {}", syscall()));
        say.say(format_args!("   mio: {rust}"));
    };
    if say.is_loud() {
        show(say);
    }
    pause.before();
    let result = loop {
        match call() {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    pause.after();
    result.map_err(|error| {
        if !say.is_loud() {
            show(say);
        }
        say.returned_error(&error);
        Failure::Socket {
            call: syscall(),
            error,
        }
    })
}

/// What a call returned, when it is narrated.
fn returned(say: &Narrator, what: impl std::fmt::Display) {
    if say.is_loud() {
        say.returned(what);
    }
}

/// Narrates one mio call, written once: `mio!(say, strace line, the call)`.
macro_rules! mio {
    ($say:expr, $syscall:expr, $call:expr) => {
        narrated($say, || $syscall, stringify!($call), &(), || $call)
    };
    ($say:expr, $syscall:expr, $call:expr, $pause:expr) => {
        narrated($say, || $syscall, stringify!($call), $pause, || $call)
    };
}

/// `epoll_create1(EPOLL_CLOEXEC)`: an epoll instance, the kernel's list of sockets to watch
/// and of those ready.
pub fn create(say: &Narrator) -> Result<Poll, Failure> {
    let poll = mio!(say, "epoll_create1(EPOLL_CLOEXEC)".to_owned(), Poll::new())?;
    returned(
        say,
        format_args!("{}: an epoll instance, a descriptor too", poll.as_raw_fd()),
    );
    Ok(poll)
}

/// `epoll_ctl(EPOLL_CTL_ADD)`: watch `fd`; its events come back with `token`.
pub fn register(
    say: &Narrator,
    poll: &Poll,
    fd: RawFd,
    token: Token,
    interest: Interest,
) -> Result<(), Failure> {
    let epfd = poll.as_raw_fd();
    mio!(
        say,
        ctl(epfd, "EPOLL_CTL_ADD", fd, interest, token),
        poll.registry()
            .register(&mut SourceFd(&fd), token, interest)
    )?;
    returned(say, 0);
    Ok(())
}

/// `epoll_ctl(EPOLL_CTL_MOD)`: watch `fd` for other events.
pub fn reregister(
    say: &Narrator,
    poll: &Poll,
    fd: RawFd,
    token: Token,
    interest: Interest,
) -> Result<(), Failure> {
    let epfd = poll.as_raw_fd();
    mio!(
        say,
        ctl(epfd, "EPOLL_CTL_MOD", fd, interest, token),
        poll.registry()
            .reregister(&mut SourceFd(&fd), token, interest)
    )?;
    returned(say, 0);
    Ok(())
}

/// `epoll_ctl(EPOLL_CTL_DEL)`: stop watching `fd`. `why` follows the result.
pub fn deregister(say: &Narrator, poll: &Poll, fd: RawFd, why: &str) -> Result<(), Failure> {
    let epfd = poll.as_raw_fd();
    mio!(
        say,
        format!("epoll_ctl({epfd}, EPOLL_CTL_DEL, {fd}, NULL)"),
        poll.registry().deregister(&mut SourceFd(&fd))
    )?;
    returned(say, format_args!("0{why}"));
    Ok(())
}

/// `epoll_wait`: waits until some watched socket is ready, with no time limit (`-1`), or at
/// most `timeout`. The events are the caller's to print.
pub fn wait(
    say: &Narrator,
    poll: &mut Poll,
    events: &mut Events,
    timeout: Option<Duration>,
    pause: &impl Pause,
) -> Result<(), Failure> {
    let epfd = poll.as_raw_fd();
    let capacity = events.capacity();
    let millis = timeout.map_or(-1, |t| t.as_millis() as i64);
    mio!(
        say,
        format!("epoll_wait({epfd}, events, {capacity}, {millis})"),
        poll.poll(events, timeout),
        pause
    )
}

/// `epoll_ctl(4, EPOLL_CTL_ADD, 3, EPOLLIN|EPOLLRDHUP|EPOLLET, token 0)`. mio registers
/// every source edge-triggered (EPOLLET); READABLE is EPOLLIN|EPOLLRDHUP, WRITABLE EPOLLOUT.
fn ctl(epfd: RawFd, op: &str, fd: RawFd, interest: Interest, token: Token) -> String {
    let mut events = Vec::new();
    if interest.is_readable() {
        events.push("EPOLLIN");
    }
    if interest.is_writable() {
        events.push("EPOLLOUT");
    }
    if interest.is_readable() {
        events.push("EPOLLRDHUP");
    }
    events.push("EPOLLET");
    format!(
        "epoll_ctl({epfd}, {op}, {fd}, {}, token {})",
        events.join("|"),
        token.0
    )
}

/// `clone3(...)`: a new thread, sharing this process's memory and descriptors, as strace
/// shows what `thread::Builder::spawn` asks of the kernel.
pub fn clone_thread() -> String {
    "clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|...})".to_owned()
}
