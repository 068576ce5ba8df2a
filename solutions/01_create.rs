//! Step 1: create a socket (lessons/01-create.md).
//!
//! The seed's first line, `s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)`, in Rust.
//! The program prints the descriptor the kernel handed back and keeps the socket open until you
//! press Enter, so you (and `cargo course check`) can look at it in /proc/PID/fd.
//!
//!     cargo run -q --manifest-path solutions/Cargo.toml --bin 01_create

use std::io::BufRead;
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

fn main() -> std::io::Result<()> {
    // s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    // Python's protocol 0 means "the usual one"; here the choice is written out: TCP.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;

    // s.fileno(): the socket is a file descriptor, the lowest number this process had free.
    let fd = socket.as_raw_fd();
    let pid = std::process::id();
    println!("socket fd {fd}, pid {pid}: see it with ls -l /proc/{pid}/fd; press Enter to close it");

    // Keep the socket open until a line (or the end of input) comes.
    std::io::stdin().lock().read_line(&mut String::new())?;
    // s.close(): dropping the Socket closes the descriptor.
    drop(socket);
    Ok(())
}
