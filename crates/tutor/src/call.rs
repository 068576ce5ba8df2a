//! A narrated call, written once: [`narrate!`](crate::narrate!).
//!
//! ```ignore
//! let listener = narrate!(say, Socket::new(domain, Type::STREAM, Some(Protocol::TCP)))?;
//! narrate!(say, listener.bind(&address))?;
//! narrate!(say, listener.listen(backlog))?;
//! let (conn, peer) = narrate!(say, listener.accept())?;
//! let n = narrate!(say, (&conn).read(&mut buf))?;
//! narrate!(say, drop(conn));
//! ```
//!
//! Each line prints the system call as `strace` shows it (from [`crate::strace`], the function
//! named after the method), the Rust that made it (`stringify!` of the very expression that
//! runs, so it cannot drift from the code), makes the call, and prints what came back:
//!
//! ```text
//! -> bind(3, 127.0.0.1:0)
//!    socket2: listener.bind(&address)
//! <- 0
//! ```
//!
//! The result is a `Result<T, Failure>`: `?` ends the step with the one-line error, which
//! names the failed call without any hidden state. A call interrupted by a signal (`EINTR`)
//! is made again. A quiet narrator ([`Narrator::quiet`], [`Budget`]) prints nothing for calls
//! that succeed, nor for a non-blocking call that would block; any other failed call is shown.
//!
//! [`Narrator::quiet`]: crate::Narrator::quiet
//! [`Budget`]: crate::narrate::Budget

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{SockAddr, Socket};

use crate::{Failure, Narrator};

/// Something that happens just before a call may block, and just after it returns: a demo's
/// turn-taking ([`crate::turns::Turns::at`]) uses it to tell its story in the same order on
/// every run.
pub trait Pause {
    /// Just before the call.
    fn before(&self);
    /// Just after the call, before its result is printed.
    fn after(&self);
    /// Just after the call, knowing whether it succeeded: what [`Call::make`] calls. By
    /// default the same as [`after`](Pause::after).
    fn after_result(&self, succeeded: bool) {
        let _ = succeeded;
        self.after();
    }
}

/// No pause.
impl Pause for () {
    fn before(&self) {}
    fn after(&self) {}
}

/// One narrated call in progress. Made by [`narrate!`](crate::narrate!); rarely used by hand.
#[derive(Debug)]
pub struct Call<'a> {
    say: &'a Narrator,
    rust: &'static str,
    shown: bool,
}

impl<'a> Call<'a> {
    /// Prints the call (unless `say` is quiet): the system call and the Rust that makes it.
    pub fn start(say: &'a Narrator, syscall: impl FnOnce() -> String, rust: &'static str) -> Self {
        say.count_call();
        let shown = say.is_loud();
        if shown {
            say.call(syscall(), rust);
        }
        Call { say, rust, shown }
    }

    /// Makes the call, again if a signal interrupted it, with `pause` around it.
    pub fn make<T>(
        &self,
        pause: &impl Pause,
        mut call: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        pause.before();
        let result = loop {
            match call() {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {
                    if self.shown {
                        self.say.note(
                            "EINTR: a signal interrupted the call before it did anything; again",
                        );
                    }
                }
                other => break other,
            }
        };
        pause.after_result(result.is_ok());
        result
    }

    /// Prints what came back and turns an error into a [`Failure`] that names the call.
    /// `syscall` is asked again only when a quiet call failed, to show it after all.
    pub fn finish<T: Shown>(
        self,
        result: io::Result<T>,
        syscall: impl FnOnce() -> String,
    ) -> Result<T, Failure> {
        self.finish_with(result, syscall, T::shown)
    }

    /// [`finish`](Self::finish) with a result shown by `show` instead of [`Shown`].
    pub fn finish_with<T>(
        self,
        result: io::Result<T>,
        syscall: impl FnOnce() -> String,
        show: impl FnOnce(&T) -> String,
    ) -> Result<T, Failure> {
        match result {
            Ok(value) => {
                if self.shown {
                    self.say.returned(show(&value));
                }
                Ok(value)
            }
            // A quiet non-blocking call that finds nothing to do is routine, not a failure
            // to show (an event loop meets one at every turn); the caller decides.
            Err(error) if !self.shown && error.kind() == io::ErrorKind::WouldBlock => {
                Err(Failure::Socket {
                    call: self.rust.to_owned(),
                    error,
                })
            }
            Err(error) => {
                let call = syscall();
                if !self.shown {
                    self.say.call(&call, self.rust);
                }
                self.say.returned_error(&error);
                Err(Failure::Socket { call, error })
            }
        }
    }
}

/// How a call's result is printed after `<-`.
pub trait Shown {
    /// The text after `<- `.
    fn shown(&self) -> String;
}

/// A call that returns nothing returned 0 to the kernel.
impl Shown for () {
    fn shown(&self) -> String {
        "0".to_owned()
    }
}

/// A count of bytes.
impl Shown for usize {
    fn shown(&self) -> String {
        self.to_string()
    }
}

/// A new socket is its file descriptor.
impl Shown for Socket {
    fn shown(&self) -> String {
        self.as_raw_fd().to_string()
    }
}

/// `accept`: the new socket's descriptor and who it is connected to.
impl Shown for (Socket, SockAddr) {
    fn shown(&self) -> String {
        format!(
            "{}, connected to {}",
            self.0.as_raw_fd(),
            crate::addr::show(&self.1)
        )
    }
}

/// `recv_from`: how many bytes, from whom.
impl Shown for (usize, SockAddr) {
    fn shown(&self) -> String {
        format!("{}, from {}", self.0, crate::addr::show(&self.1))
    }
}

/// An address (`local_addr`, `peer_addr`).
impl Shown for SockAddr {
    fn shown(&self) -> String {
        crate::addr::show(self)
    }
}

/// A yes/no option (`nonblocking()`, `tcp_nodelay()`).
impl Shown for bool {
    fn shown(&self) -> String {
        self.to_string()
    }
}

/// A timeout or a linger time; `None` is none.
impl Shown for Option<Duration> {
    fn shown(&self) -> String {
        match self {
            Some(time) => format!("{time:?}"),
            None => "none".to_owned(),
        }
    }
}

/// `take_error`: the pending error, if any.
impl Shown for Option<io::Error> {
    fn shown(&self) -> String {
        match self {
            Some(error) => crate::explain::describe(error),
            None => "0: no pending error".to_owned(),
        }
    }
}

/// A count (`tcp_keepalive_retries`).
impl Shown for u32 {
    fn shown(&self) -> String {
        self.to_string()
    }
}

/// A time the kernel keeps (`tcp_keepalive_time`, `tcp_keepalive_interval`).
impl Shown for Duration {
    fn shown(&self) -> String {
        format!("{self:?}")
    }
}

/// Narrates one socket call written once: prints the system call (from
/// [`tutor::strace`](crate::strace)), the Rust (the expression itself, by `stringify!`), makes
/// the call and prints its result. Evaluates to `Result<T, Failure>`.
///
/// The forms:
/// - `narrate!(say, Socket::new(domain, ty, protocol))`
/// - `narrate!(say, socket.method(args...))`: `tutor::strace::method(&socket, args...)` gives
///   the system call; the arguments are evaluated for it too, so pass plain values
///   (`&address`, `backlog`, `&buf[..n]`).
/// - `narrate!(say, (&socket).read(&mut buf))`: a receive into a plain byte buffer, its
///   result shown with the bytes.
/// - `narrate!(say, drop(socket))`: the `close` that dropping a socket makes (evaluates to
///   `()`: Drop reports nothing).
///
/// In the first three, `socket` may be a `Socket` or a `&Socket` (a function that is lent a
/// connection narrates its calls too).
///
/// Any of the first three may end with `, pause` (a [`Pause`], e.g. a demo's
/// `turns.at(moment)`), run just before and after the call.
#[macro_export]
macro_rules! narrate {
    ($say:expr, drop($socket:ident)) => {{
        let say: &$crate::Narrator = &$say;
        say.count_call();
        if say.is_loud() {
            say.call($crate::strace::close(&$socket), concat!("drop(", stringify!($socket), ")"));
        }
        drop($socket);
        if say.is_loud() {
            say.returned("done");
        }
    }};
    ($say:expr, Socket::new($domain:expr, $ty:expr, $protocol:expr $(,)?) $(, $pause:expr)?) => {{
        let say: &$crate::Narrator = &$say;
        let call = $crate::call::Call::start(
            say,
            || $crate::strace::socket($domain, $ty, $protocol),
            concat!("Socket::new(", stringify!($domain), ", ", stringify!($ty), ", ", stringify!($protocol), ")"),
        );
        let result = call.make(&$crate::narrate!(@pause $($pause)?), || {
            Socket::new($domain, $ty, $protocol)
        });
        call.finish(result, || $crate::strace::socket($domain, $ty, $protocol))
    }};
    ($say:expr, (&$socket:ident).read(&mut $buf:ident) $(, $pause:expr)?) => {{
        let say: &$crate::Narrator = &$say;
        let call = $crate::call::Call::start(
            say,
            || $crate::strace::read(&::std::os::fd::AsFd::as_fd(&$socket), &$buf),
            concat!("(&", stringify!($socket), ").read(&mut ", stringify!($buf), ")"),
        );
        let result = call.make(&$crate::narrate!(@pause $($pause)?), || {
            ::std::io::Read::read(&mut ::std::borrow::Borrow::<::socket2::Socket>::borrow(&$socket), &mut $buf)
        });
        call.finish_with(
            result,
            || $crate::strace::read(&::std::os::fd::AsFd::as_fd(&$socket), &$buf),
            |&n: &usize| format!("{n}: {}", $crate::strace::bytes(&$buf[..n])),
        )
    }};
    ($say:expr, $socket:ident . $method:ident ( $($arg:expr),* $(,)? ) $(, $pause:expr)?) => {{
        let say: &$crate::Narrator = &$say;
        let call = $crate::call::Call::start(
            say,
            || $crate::strace::$method(&::std::os::fd::AsFd::as_fd(&$socket) $(, $arg)*),
            concat!(stringify!($socket), ".", stringify!($method), "(", stringify!($($arg),*), ")"),
        );
        let result = call.make(&$crate::narrate!(@pause $($pause)?), || $socket.$method($($arg),*));
        call.finish(result, || $crate::strace::$method(&::std::os::fd::AsFd::as_fd(&$socket) $(, $arg)*))
    }};
    (@pause) => { () };
    (@pause $pause:expr) => { $pause };
}

#[cfg(test)]
mod tests {
    use socket2::{Domain, Protocol, Socket, Type};

    use crate::{Failure, Narrator, Step};

    static STEP: Step = Step {
        number: 0,
        crate_name: "tutor",
        title: "test",
        lesson: "lessons/README.md",
    };

    #[test]
    fn a_failed_call_names_itself() {
        let say = Narrator::new(&STEP, crate::ColorWhen::Never).quiet();
        let socket = narrate!(
            say,
            Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        )
        .expect("a socket");
        let backlog = 5;
        narrate!(say, socket.listen(backlog)).expect("listen on an unbound socket works");
        let address =
            socket2::SockAddr::from("127.0.0.1:0".parse::<std::net::SocketAddr>().expect("ok"));
        let failed = narrate!(say, socket.bind(&address)).expect_err("already bound by listen");
        match failed {
            Failure::Socket { call, error } => {
                assert!(call.starts_with("bind("), "{call}");
                assert_eq!(error.raw_os_error(), Some(libc::EINVAL));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(say.calls(), 3);
    }

    #[test]
    fn the_rust_printed_is_the_rust_that_ran() {
        let say = Narrator::new(&STEP, crate::ColorWhen::Never).recording();
        let sock = narrate!(say, Socket::new(Domain::IPV6, Type::DGRAM, None)).expect("a socket");
        let address =
            socket2::SockAddr::from("[::1]:0".parse::<std::net::SocketAddr>().expect("ok"));
        narrate!(say, sock.bind(&address)).expect("bind");
        let buf = [1u8; 40];
        let (sent, n) = (1, 3);
        let here = narrate!(say, sock.local_addr()).expect("its address");
        narrate!(say, sock.send_to(&buf[sent..n], &here)).expect("a datagram to itself");
        narrate!(say, drop(sock));
        let rust: Vec<String> = say
            .recorded()
            .lines()
            .filter_map(|line| line.trim().strip_prefix("socket2: ").map(str::to_owned))
            .collect();
        assert_eq!(
            rust,
            [
                "Socket::new(Domain::IPV6, Type::DGRAM, None)",
                "sock.bind(&address)",
                "sock.local_addr()",
                "sock.send_to(&buf[sent..n], &here)",
                "drop(sock)",
            ]
        );
    }
    /// A function that is lent a socket (`&Socket`) narrates its calls as the owner would.
    fn send_and_read(say: &Narrator, socket: &Socket, peer: &Socket) -> Result<usize, Failure> {
        narrate!(say, socket.send(b"ping"))?;
        let mut buf = [0u8; 8];
        narrate!(say, (&peer).read(&mut buf))
    }

    #[test]
    fn a_lent_socket_narrates_too() {
        use std::os::fd::AsRawFd;
        let say = Narrator::new(&STEP, crate::ColorWhen::Never).recording();
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM, None).expect("a pair");
        assert_eq!(send_and_read(&say, &a, &b).expect("ping"), 4);
        let text = say.recorded();
        assert!(
            text.contains(&format!("-> sendto({}, \"ping\", 4, 0)", a.as_raw_fd())),
            "{text}"
        );
        assert!(text.contains("socket2: (&peer).read(&mut buf)"), "{text}");
        assert!(text.contains("<- 4: \"ping\""), "{text}");
    }
}
