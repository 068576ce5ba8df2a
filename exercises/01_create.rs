//! Exercise 1: create a socket (lessons/01-create.md).
//!
//! Your task: create an IPv4 TCP socket, the seed's
//! `s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)`, where the todo!() is. The rest is
//! written: it prints the socket's descriptor and keeps the socket open until you press Enter.
//!
//! Check it:  cargo course check 01_create        Stuck?  cargo course hint 01_create
//! Run it:    cargo run -q --manifest-path exercises/Cargo.toml --bin 01_create

use std::io::BufRead;
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

fn main() -> std::io::Result<()> {
    // s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    let socket: Socket = todo!("create an IPv4 TCP socket with Socket::new");

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
