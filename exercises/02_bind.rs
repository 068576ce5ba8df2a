//! Exercise 2: bind, give the socket an address (lessons/02-bind.md).
//!
//! Your task: create the socket, bind it to ADDRESS, and ask the kernel which address it got,
//! where the todo!()s are. Check it: `cargo course check 02_bind`; stuck? `cargo course hint
//! 02_bind`.
//!
//! Step 1's socket, now bound to the address on the command line: `127.0.0.1:0`, `[::1]:0` or
//! a port of your choice (0 lets the kernel choose one). It prints the address it got and keeps
//! it until you press Enter.
//!
//!     cargo run -q --manifest-path exercises/Cargo.toml --bin 02_bind -- 127.0.0.1:0

use std::io::BufRead;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The seed's (host, port) pair, written as one address: 127.0.0.1:8080 or [::1]:8080.
    let arg = std::env::args().nth(1).ok_or("usage: 02_bind ADDRESS, e.g. 127.0.0.1:0")?;
    let address: SocketAddr = arg.parse()?;

    // s = socket.socket(socket.AF_INET, socket.SOCK_STREAM), with the address's family
    // (AF_INET for an IPv4 address, AF_INET6 for an IPv6 one).
    let socket: Socket = todo!("a TCP socket of the address's family: Domain::for_address(address)");

    // s.bind((host, port)): fails with "Address already in use" if the port is taken.
    todo!("bind the socket to address");

    // s.getsockname(): with port 0, only the kernel knows which port it chose.
    let bound: SockAddr = todo!("ask the socket for its address");
    let bound = bound.as_socket().ok_or("not an IP address")?;
    println!("bound to {bound}; press Enter to close it");

    std::io::stdin().lock().read_line(&mut String::new())?;
    Ok(())
}
