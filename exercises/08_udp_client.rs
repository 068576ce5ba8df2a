//! Exercise 8b: UDP, a connected client (lessons/08-udp.md, "connect() on a datagram socket").
//!
//! Your task: where the todo!()s are, set a read timeout, connect the UDP socket to the server,
//! send the message as one datagram, and receive the answer. A refusal or a timeout is an
//! error: return it with `?`.
//! Check it: `cargo course check 08_udp_client`; stuck? `cargo course hint 08_udp_client`.
//!
//! Sends its message (the second argument) to a UDP server as one datagram and prints the
//! answer. connect() on a datagram socket sends nothing: it sets the default peer (send()
//! needs no address), drops datagrams from anyone else, and lets the kernel report
//! ECONNREFUSED when nothing is bound there. A read timeout ends the wait for an answer that
//! was lost.
//!
//!     cargo run -q --manifest-path solutions/Cargo.toml --bin 08_udp_server -- 127.0.0.1:0
//!     cargo run -q --manifest-path exercises/Cargo.toml --bin 08_udp_client -- 127.0.0.1:PORT hello

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: 08_udp_client 127.0.0.1:PORT MESSAGE";
    let address: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let message = args.next().ok_or(usage)?;

    // s = socket.socket(AF_INET, SOCK_DGRAM)
    let socket = Socket::new(Domain::for_address(address), Type::DGRAM, Some(Protocol::UDP))?;
    // s.settimeout(2): a lost datagram or a lost answer is silence; give up after 2 s
    todo!("give up on an answer after 2 s: socket.set_read_timeout(...)");
    // s.connect((host, port)): no packet, only the default peer and a filter
    todo!("connect to the server: socket.connect(...)");
    // s.send(message): one datagram, to the connected peer
    todo!("send the message, one datagram: socket.send(...)");
    // s.recv(65536): one datagram, from the peer only; ECONNREFUSED if nobody is there
    let mut buf = vec![0u8; 65536];
    let n: usize = todo!("the answer: (&socket).read(&mut buf)");
    std::io::stdout().write_all(&buf[..n])?;
    Ok(())
}
