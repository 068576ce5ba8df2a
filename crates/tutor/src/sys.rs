//! System calls written the way `strace` writes them, for [`Narrator::call`].
//!
//! Every step narrates the same call the same way: `say.call(sys::bind(fd, &address),
//! "socket.bind(&address)")`. The first text is the system call the kernel sees (its name is
//! strace's name for it, so that `strace -e trace=%network` lines up with the narration); the
//! second is the Rust in the step's source that makes it, which the step writes itself.
//!
//! Addresses are shortened to `127.0.0.1:8080` (strace prints the whole structure), and data
//! is shown as strace shows it: printable bytes as they are, others escaped, at most 32 bytes.
//!
//! [`Narrator::call`]: crate::Narrator::call

use std::fmt::Write;

use socket2::{Domain, Protocol, SockAddr, Type};

use crate::addr::show;
use crate::cli;

/// `socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP)`. socket2 adds `SOCK_CLOEXEC` on
/// Linux, so the narration does too.
pub fn socket(domain: Domain, ty: Type, protocol: Option<Protocol>) -> String {
    format!(
        "socket({}, {}|SOCK_CLOEXEC, {})",
        cli::domain_name(domain),
        cli::type_name(ty),
        cli::protocol_name(protocol)
    )
}

/// `bind(3, 127.0.0.1:8080)`
pub fn bind(fd: i32, address: &SockAddr) -> String {
    format!("bind({fd}, {})", show(address))
}

/// `listen(3, 5)`
pub fn listen(fd: i32, backlog: i32) -> String {
    format!("listen({fd}, {backlog})")
}

/// `accept4(3, SOCK_CLOEXEC)`: socket2's `accept` is `accept4` on Linux, so the new socket is
/// close-on-exec like one from `socket()`.
pub fn accept(fd: i32) -> String {
    format!("accept4({fd}, SOCK_CLOEXEC)")
}

/// `connect(3, 127.0.0.1:8080)`
pub fn connect(fd: i32, address: &SockAddr) -> String {
    format!("connect({fd}, {})", show(address))
}

/// `getsockname(3)`: the socket's own address.
pub fn getsockname(fd: i32) -> String {
    format!("getsockname({fd})")
}

/// `getpeername(3)`: the address of the peer a socket is connected to.
pub fn getpeername(fd: i32) -> String {
    format!("getpeername({fd})")
}

/// `setsockopt(3, SOL_SOCKET, SO_REUSEADDR, 1)`
pub fn setsockopt(fd: i32, level: &str, option: &str, value: impl std::fmt::Display) -> String {
    format!("setsockopt({fd}, {level}, {option}, {value})")
}

/// `getsockopt(3, SOL_SOCKET, SO_RCVBUF)`
pub fn getsockopt(fd: i32, level: &str, option: &str) -> String {
    format!("getsockopt({fd}, {level}, {option})")
}

/// `sendto(4, "hello\n", 6, 0)`: glibc's `send()` is the `sendto` system call with no address,
/// which is what strace shows.
pub fn send(fd: i32, data: &[u8]) -> String {
    format!("sendto({fd}, {}, {}, 0)", bytes(data), data.len())
}

/// `sendto(3, "ping", 4, 0, 127.0.0.1:9000)`: a datagram to an explicit address.
pub fn send_to(fd: i32, data: &[u8], address: &SockAddr) -> String {
    format!(
        "sendto({fd}, {}, {}, 0, {})",
        bytes(data),
        data.len(),
        show(address)
    )
}

/// `recvfrom(4, buf, 1024, 0)`: `recv()` is `recvfrom` with no address, as strace shows.
pub fn recv(fd: i32, capacity: usize) -> String {
    format!("recvfrom({fd}, buf, {capacity}, 0)")
}

/// `recvfrom(3, buf, 1024, 0, &from)`: receive a datagram and learn who sent it.
pub fn recv_from(fd: i32, capacity: usize) -> String {
    format!("recvfrom({fd}, buf, {capacity}, 0, &from)")
}

/// `shutdown(4, SHUT_WR)`
pub fn shutdown(fd: i32, how: std::net::Shutdown) -> String {
    let how = match how {
        std::net::Shutdown::Read => "SHUT_RD",
        std::net::Shutdown::Write => "SHUT_WR",
        std::net::Shutdown::Both => "SHUT_RDWR",
    };
    format!("shutdown({fd}, {how})")
}

/// `close(4)`
pub fn close(fd: i32) -> String {
    format!("close({fd})")
}

/// `unlink("/tmp/x.sock")`: removing a unix socket's file (a file-system call, made with
/// `std::fs::remove_file`).
pub fn unlink(path: &std::path::Path) -> String {
    format!(
        "unlink(\"{}\")",
        crate::addr::printable(&path.display().to_string())
    )
}

/// How many bytes of data a narration shows, as `strace -s 32` does.
pub const SHOWN_BYTES: usize = 32;

/// Data as strace prints it: `"hello\n"`, escaped, cut after 32 bytes with `...`.
pub fn bytes(data: &[u8]) -> String {
    let mut text = String::from("\"");
    for &byte in data.iter().take(SHOWN_BYTES) {
        match byte {
            b'\n' => text.push_str("\\n"),
            b'\r' => text.push_str("\\r"),
            b'\t' => text.push_str("\\t"),
            b'"' => text.push_str("\\\""),
            b'\\' => text.push_str("\\\\"),
            0x20..=0x7e => text.push(byte as char),
            _ => {
                let _ = write!(text, "\\x{byte:02x}");
            }
        }
    }
    text.push('"');
    if data.len() > SHOWN_BYTES {
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_shown_as_strace_shows_it() {
        assert_eq!(bytes(b"hi\n"), "\"hi\\n\"");
        assert_eq!(bytes(&[0, 255]), "\"\\x00\\xff\"");
        let long = [b'a'; 40];
        assert_eq!(bytes(&long), format!("\"{}\"...", "a".repeat(32)));
    }

    #[test]
    fn calls_read_like_strace() {
        let address = SockAddr::from("127.0.0.1:80".parse::<std::net::SocketAddr>().expect("ok"));
        assert_eq!(bind(3, &address), "bind(3, 127.0.0.1:80)");
        assert_eq!(send(4, b"ok"), "sendto(4, \"ok\", 2, 0)");
        assert_eq!(
            socket(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)),
            "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP)"
        );
    }
}
