//! System calls written the way `strace` writes them.
//!
//! [`narrate!`](crate::narrate!) prints each socket call twice: as the system call the kernel
//! sees, and as the Rust that made it. The Rust comes from the call site itself
//! (`stringify!`); the system call comes from here. Each function is named after the socket2
//! (or std) method that makes the call, and takes the socket and that method's arguments, so
//! `narrate!(say, listener.bind(&address))` finds its line in [`bind`]. A method with no
//! function here does not compile inside `narrate!`: nothing is narrated by guesswork.
//!
//! The names are strace's (`accept4`, `sendto`, `recvfrom`), so that
//! `strace -e trace=%network` lines up with the narration row by row. Addresses are shortened
//! to `127.0.0.1:8080` (strace prints the whole structure), and data is shown as strace shows
//! it: printable bytes as they are, others escaped, at most 32 bytes.

use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Type};

use crate::show::address as show;

/// `socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP)`. socket2 adds `SOCK_CLOEXEC` on
/// Linux, so the narration does too.
pub fn socket(domain: Domain, ty: Type, protocol: Option<Protocol>) -> String {
    format!(
        "socket({}, {}|SOCK_CLOEXEC, {})",
        domain_name(domain),
        type_name(ty),
        protocol_name(protocol)
    )
}

/// `bind(3, 127.0.0.1:8080)`
pub fn bind(socket: &impl AsRawFd, address: &SockAddr) -> String {
    format!("bind({}, {})", socket.as_raw_fd(), show(address))
}

/// `listen(3, 5)`
pub fn listen(socket: &impl AsRawFd, backlog: i32) -> String {
    format!("listen({}, {backlog})", socket.as_raw_fd())
}

/// `accept4(3, SOCK_CLOEXEC)`: socket2's `accept` is `accept4` on Linux, so the new socket is
/// close-on-exec like one from `socket()`.
pub fn accept(socket: &impl AsRawFd) -> String {
    format!("accept4({}, SOCK_CLOEXEC)", socket.as_raw_fd())
}

/// `connect(3, 127.0.0.1:8080)`
pub fn connect(socket: &impl AsRawFd, address: &SockAddr) -> String {
    format!("connect({}, {})", socket.as_raw_fd(), show(address))
}

/// `connect(3, 127.0.0.1:8080)`: socket2's `connect_timeout` makes the socket non-blocking,
/// connects, and waits in `poll` at most `timeout` (strace shows the `fcntl` and `poll` too).
pub fn connect_timeout(socket: &impl AsRawFd, address: &SockAddr, _timeout: Duration) -> String {
    connect(socket, address)
}

/// `getsockname(3)`: the socket's own address.
pub fn local_addr(socket: &impl AsRawFd) -> String {
    format!("getsockname({})", socket.as_raw_fd())
}

/// `getpeername(3)`: the address of the peer a socket is connected to.
pub fn peer_addr(socket: &impl AsRawFd) -> String {
    format!("getpeername({})", socket.as_raw_fd())
}

/// `sendto(4, "hello\n", 6, 0)`: glibc's `send()` is the `sendto` system call with no address,
/// which is what strace shows.
pub fn send(socket: &impl AsRawFd, data: &[u8]) -> String {
    format!(
        "sendto({}, {}, {}, 0)",
        socket.as_raw_fd(),
        bytes(data),
        data.len()
    )
}

/// `sendto(4, "hello\n", 6, MSG_DONTWAIT)`: a send with flags.
pub fn send_with_flags(socket: &impl AsRawFd, data: &[u8], flags: i32) -> String {
    format!(
        "sendto({}, {}, {}, {})",
        socket.as_raw_fd(),
        bytes(data),
        data.len(),
        msg_flags(flags)
    )
}

/// `sendto(3, "ping", 4, 0, 127.0.0.1:9000)`: a datagram to an explicit address.
pub fn send_to(socket: &impl AsRawFd, data: &[u8], address: &SockAddr) -> String {
    format!(
        "sendto({}, {}, {}, 0, {})",
        socket.as_raw_fd(),
        bytes(data),
        data.len(),
        show(address)
    )
}

/// `sendto(3, "ping", 4, MSG_DONTWAIT, 127.0.0.1:9000)`
pub fn send_to_with_flags(
    socket: &impl AsRawFd,
    data: &[u8],
    address: &SockAddr,
    flags: i32,
) -> String {
    format!(
        "sendto({}, {}, {}, {}, {})",
        socket.as_raw_fd(),
        bytes(data),
        data.len(),
        msg_flags(flags),
        show(address)
    )
}

/// `recvfrom(4, buf, 1024, 0)`: std's `read` on a socket is `recv()`, which glibc makes as
/// `recvfrom` with no address, as strace shows. The course reads into a plain `[u8]` buffer
/// with `(&socket).read(&mut buf)` (lesson 5 says why).
pub fn read(socket: &impl AsRawFd, buf: &[u8]) -> String {
    format!("recvfrom({}, buf, {}, 0)", socket.as_raw_fd(), buf.len())
}

/// `recvfrom(4, buf, 1024, 0)`: socket2's own `recv`, into a `MaybeUninit` buffer.
pub fn recv(socket: &impl AsRawFd, buf: &[MaybeUninit<u8>]) -> String {
    format!("recvfrom({}, buf, {}, 0)", socket.as_raw_fd(), buf.len())
}

/// `recvfrom(4, buf, 1024, MSG_PEEK)`: a receive with flags.
pub fn recv_with_flags(socket: &impl AsRawFd, buf: &[MaybeUninit<u8>], flags: i32) -> String {
    format!(
        "recvfrom({}, buf, {}, {})",
        socket.as_raw_fd(),
        buf.len(),
        msg_flags(flags)
    )
}

/// `recvfrom(3, buf, 1024, 0, &from)`: receive a datagram and learn who sent it.
pub fn recv_from(socket: &impl AsRawFd, buf: &[MaybeUninit<u8>]) -> String {
    format!(
        "recvfrom({}, buf, {}, 0, &from)",
        socket.as_raw_fd(),
        buf.len()
    )
}

/// `recvfrom(3, buf, 1024, MSG_TRUNC, &from)`
pub fn recv_from_with_flags(socket: &impl AsRawFd, buf: &[MaybeUninit<u8>], flags: i32) -> String {
    format!(
        "recvfrom({}, buf, {}, {}, &from)",
        socket.as_raw_fd(),
        buf.len(),
        msg_flags(flags)
    )
}

/// `shutdown(4, SHUT_WR)`
pub fn shutdown(socket: &impl AsRawFd, how: std::net::Shutdown) -> String {
    let how = match how {
        std::net::Shutdown::Read => "SHUT_RD",
        std::net::Shutdown::Write => "SHUT_WR",
        std::net::Shutdown::Both => "SHUT_RDWR",
    };
    format!("shutdown({}, {how})", socket.as_raw_fd())
}

/// `close(4)`: what dropping a socket does.
pub fn close(socket: &impl AsRawFd) -> String {
    format!("close({})", socket.as_raw_fd())
}

/// `fcntl(3, F_GETFL)`: socket2's `nonblocking()` reads the file status flags.
pub fn nonblocking(socket: &impl AsRawFd) -> String {
    format!("fcntl({}, F_GETFL)", socket.as_raw_fd())
}

/// `fcntl(5, F_SETFL, O_RDWR|O_NONBLOCK)`: socket2's `set_nonblocking` reads the flags first
/// (F_GETFL), then sets them with O_NONBLOCK added or removed.
pub fn set_nonblocking(socket: &impl AsRawFd, on: bool) -> String {
    let flags = if on { "O_RDWR|O_NONBLOCK" } else { "O_RDWR" };
    format!("fcntl({}, F_SETFL, {flags})", socket.as_raw_fd())
}

/// `setsockopt(3, SOL_SOCKET, SO_REUSEADDR, 1)`
pub fn set_reuse_address(socket: &impl AsRawFd, on: bool) -> String {
    setsockopt(socket, "SOL_SOCKET", "SO_REUSEADDR", u8::from(on))
}

/// `setsockopt(3, SOL_SOCKET, SO_REUSEPORT, 1)`
pub fn set_reuse_port(socket: &impl AsRawFd, on: bool) -> String {
    setsockopt(socket, "SOL_SOCKET", "SO_REUSEPORT", u8::from(on))
}

/// `setsockopt(3, SOL_SOCKET, SO_KEEPALIVE, 1)`
pub fn set_keepalive(socket: &impl AsRawFd, on: bool) -> String {
    setsockopt(socket, "SOL_SOCKET", "SO_KEEPALIVE", u8::from(on))
}

/// `setsockopt(3, SOL_TCP, TCP_NODELAY, 1)`
pub fn set_tcp_nodelay(socket: &impl AsRawFd, on: bool) -> String {
    setsockopt(socket, "SOL_TCP", "TCP_NODELAY", u8::from(on))
}

/// `setsockopt(3, SOL_IPV6, IPV6_V6ONLY, 1)`
pub fn set_only_v6(socket: &impl AsRawFd, on: bool) -> String {
    setsockopt(socket, "SOL_IPV6", "IPV6_V6ONLY", u8::from(on))
}

/// `setsockopt(3, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=0})`
pub fn set_linger(socket: &impl AsRawFd, linger: Option<Duration>) -> String {
    let value = match linger {
        Some(time) => format!("{{l_onoff=1, l_linger={}}}", time.as_secs()),
        None => "{l_onoff=0, l_linger=0}".to_owned(),
    };
    format!(
        "setsockopt({}, SOL_SOCKET, SO_LINGER, {value})",
        socket.as_raw_fd()
    )
}

/// `setsockopt(3, SOL_SOCKET, SO_RCVTIMEO, 2.000s)` (strace prints the `timeval`).
pub fn set_read_timeout(socket: &impl AsRawFd, timeout: Option<Duration>) -> String {
    setsockopt(socket, "SOL_SOCKET", "SO_RCVTIMEO", timeval(timeout))
}

/// `setsockopt(3, SOL_SOCKET, SO_SNDTIMEO, 2.000s)`
pub fn set_write_timeout(socket: &impl AsRawFd, timeout: Option<Duration>) -> String {
    setsockopt(socket, "SOL_SOCKET", "SO_SNDTIMEO", timeval(timeout))
}

/// `setsockopt(3, SOL_SOCKET, SO_RCVBUF, 65536)`
pub fn set_recv_buffer_size(socket: &impl AsRawFd, size: usize) -> String {
    setsockopt(socket, "SOL_SOCKET", "SO_RCVBUF", size)
}

/// `setsockopt(3, SOL_SOCKET, SO_SNDBUF, 65536)`
pub fn set_send_buffer_size(socket: &impl AsRawFd, size: usize) -> String {
    setsockopt(socket, "SOL_SOCKET", "SO_SNDBUF", size)
}

/// `getsockopt(3, SOL_SOCKET, SO_RCVBUF)`
pub fn recv_buffer_size(socket: &impl AsRawFd) -> String {
    getsockopt(socket, "SOL_SOCKET", "SO_RCVBUF")
}

/// `getsockopt(3, SOL_SOCKET, SO_SNDBUF)`
pub fn send_buffer_size(socket: &impl AsRawFd) -> String {
    getsockopt(socket, "SOL_SOCKET", "SO_SNDBUF")
}

/// `getsockopt(3, SOL_SOCKET, SO_ERROR)`: the pending error, which reading also clears.
pub fn take_error(socket: &impl AsRawFd) -> String {
    getsockopt(socket, "SOL_SOCKET", "SO_ERROR")
}

/// `getsockopt(3, SOL_SOCKET, SO_TYPE)`
pub fn r#type(socket: &impl AsRawFd) -> String {
    getsockopt(socket, "SOL_SOCKET", "SO_TYPE")
}

/// `setsockopt(3, LEVEL, OPTION, VALUE)`, for options the functions above do not name.
pub fn setsockopt(
    socket: &impl AsRawFd,
    level: &str,
    option: &str,
    value: impl std::fmt::Display,
) -> String {
    format!(
        "setsockopt({}, {level}, {option}, {value})",
        socket.as_raw_fd()
    )
}

/// `getsockopt(3, LEVEL, OPTION)`
pub fn getsockopt(socket: &impl AsRawFd, level: &str, option: &str) -> String {
    format!("getsockopt({}, {level}, {option})", socket.as_raw_fd())
}

/// `unlink("/tmp/x.sock")`: removing a unix socket's file (a file-system call).
pub fn unlink(path: &std::path::Path) -> String {
    format!("unlink({})", quoted(&path.to_string_lossy()))
}

/// `getsockopt(3, SOL_IPV6, IPV6_V6ONLY)`: whether an IPv6 socket refuses IPv4 peers.
pub fn only_v6(socket: &impl AsRawFd) -> String {
    getsockopt(socket, "SOL_IPV6", "IPV6_V6ONLY")
}

/// `getsockopt(3, SOL_SOCKET, SO_KEEPALIVE)`: whether keepalive probes are on (off on a new
/// socket).
pub fn keepalive(socket: &impl AsRawFd) -> String {
    getsockopt(socket, "SOL_SOCKET", "SO_KEEPALIVE")
}

/// socket2's `set_tcp_keepalive` is four `setsockopt` calls: `SO_KEEPALIVE` on, then
/// `TCP_KEEPIDLE`, `TCP_KEEPINTVL` and `TCP_KEEPCNT` for the times the `TcpKeepalive` sets.
/// They are shown as four calls, one `->` line each, as strace shows them.
pub fn set_tcp_keepalive(socket: &impl AsRawFd, params: &socket2::TcpKeepalive) -> String {
    // TcpKeepalive keeps its fields private; its Debug form names them:
    // `TcpKeepalive { time: Some(1s), interval: Some(1s), retries: Some(2) }`.
    let shown = format!("{params:?}");
    let field = |name: &str| {
        let start = shown.find(&format!("{name}: Some("))? + name.len() + ": Some(".len();
        let value = &shown[start..];
        Some(value[..value.find(')')?].trim_end_matches('s').to_owned())
    };
    let mut calls = vec![setsockopt(socket, "SOL_SOCKET", "SO_KEEPALIVE", 1)];
    for (name, option) in [
        ("time", "TCP_KEEPIDLE"),
        ("interval", "TCP_KEEPINTVL"),
        ("retries", "TCP_KEEPCNT"),
    ] {
        if let Some(value) = field(name) {
            calls.push(setsockopt(socket, "SOL_TCP", option, value));
        }
    }
    calls.join("\n-> ")
}

/// `getsockopt(3, SOL_TCP, TCP_KEEPIDLE)`: seconds of silence before the first probe.
pub fn tcp_keepalive_time(socket: &impl AsRawFd) -> String {
    getsockopt(socket, "SOL_TCP", "TCP_KEEPIDLE")
}

/// `getsockopt(3, SOL_TCP, TCP_KEEPINTVL)`: seconds between probes.
pub fn tcp_keepalive_interval(socket: &impl AsRawFd) -> String {
    getsockopt(socket, "SOL_TCP", "TCP_KEEPINTVL")
}

/// `getsockopt(3, SOL_TCP, TCP_KEEPCNT)`: unanswered probes before the connection is dead.
pub fn tcp_keepalive_retries(socket: &impl AsRawFd) -> String {
    getsockopt(socket, "SOL_TCP", "TCP_KEEPCNT")
}

/// `getsockopt(3, SOL_TCP, TCP_USER_TIMEOUT)`
pub fn tcp_user_timeout(socket: &impl AsRawFd) -> String {
    getsockopt(socket, "SOL_TCP", "TCP_USER_TIMEOUT")
}

/// `setsockopt(3, SOL_TCP, TCP_USER_TIMEOUT, 1000)` (milliseconds; 0 is none).
pub fn set_tcp_user_timeout(socket: &impl AsRawFd, timeout: Option<Duration>) -> String {
    let millis = timeout.map_or(0, |time| time.as_millis());
    setsockopt(socket, "SOL_TCP", "TCP_USER_TIMEOUT", millis)
}

/// `getsockopt(3, SOL_SOCKET, SO_RCVTIMEO)`
pub fn read_timeout(socket: &impl AsRawFd) -> String {
    getsockopt(socket, "SOL_SOCKET", "SO_RCVTIMEO")
}

/// `fcntl(3, F_DUPFD_CLOEXEC, 3)`: socket2's `try_clone` makes a second descriptor for the
/// same socket.
pub fn try_clone(socket: &impl AsRawFd) -> String {
    format!("fcntl({}, F_DUPFD_CLOEXEC, 3)", socket.as_raw_fd())
}

pub use crate::show::{SHOWN_BYTES, bytes, quoted};

/// `MSG_DONTWAIT|MSG_PEEK`, or `0`.
pub fn msg_flags(flags: i32) -> String {
    let known = [
        (libc::MSG_DONTWAIT, "MSG_DONTWAIT"),
        (libc::MSG_PEEK, "MSG_PEEK"),
        (libc::MSG_TRUNC, "MSG_TRUNC"),
        (libc::MSG_NOSIGNAL, "MSG_NOSIGNAL"),
        (libc::MSG_MORE, "MSG_MORE"),
        (libc::MSG_WAITALL, "MSG_WAITALL"),
    ];
    let names: Vec<&str> = known
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "0".to_owned()
    } else {
        names.join("|")
    }
}

fn timeval(timeout: Option<Duration>) -> String {
    match timeout {
        Some(time) => format!("{}.{:03}s", time.as_secs(), time.subsec_millis()),
        None => "0 (none)".to_owned(),
    }
}

/// `socket(2)`'s protocol argument as `strace` prints it: `IPPROTO_TCP`, `IPPROTO_UDP`, or `0`.
pub fn protocol_name(protocol: Option<Protocol>) -> &'static str {
    match protocol {
        Some(p) if p == Protocol::TCP => "IPPROTO_TCP",
        Some(p) if p == Protocol::UDP => "IPPROTO_UDP",
        Some(_) => "IPPROTO_?",
        None => "0",
    }
}

/// An address family as `strace` prints it.
pub fn domain_name(domain: Domain) -> &'static str {
    if domain == Domain::IPV4 {
        "AF_INET"
    } else if domain == Domain::IPV6 {
        "AF_INET6"
    } else if domain == Domain::UNIX {
        "AF_UNIX"
    } else {
        "AF_?"
    }
}

/// A socket type as `strace` prints it.
pub fn type_name(ty: Type) -> &'static str {
    if ty == Type::STREAM {
        "SOCK_STREAM"
    } else if ty == Type::DGRAM {
        "SOCK_DGRAM"
    } else if ty == Type::SEQPACKET {
        "SOCK_SEQPACKET"
    } else {
        "SOCK_?"
    }
}

/// `setsockopt(3, SOL_TCP, TCP_CORK, 1)`: hold partial segments until uncorked (Linux).
pub fn set_tcp_cork(socket: &impl AsRawFd, on: bool) -> String {
    setsockopt(socket, "SOL_TCP", "TCP_CORK", u8::from(on))
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::Socket;

    #[test]
    fn calls_read_like_strace() {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
        let fd = sock.as_raw_fd();
        let address = SockAddr::from("127.0.0.1:80".parse::<std::net::SocketAddr>().expect("ok"));
        assert_eq!(bind(&sock, &address), format!("bind({fd}, 127.0.0.1:80)"));
        assert_eq!(send(&sock, b"ok"), format!("sendto({fd}, \"ok\", 2, 0)"));
        assert_eq!(
            send_with_flags(&sock, b"ok", libc::MSG_DONTWAIT),
            format!("sendto({fd}, \"ok\", 2, MSG_DONTWAIT)")
        );
        assert_eq!(
            socket(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)),
            "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP)"
        );
    }
}
