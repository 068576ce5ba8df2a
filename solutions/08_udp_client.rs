//! Step 8: UDP, a connected client (lessons/08-udp.md, "connect() on a datagram socket").
//!
//! Sends its message (the second argument) to a UDP server as one datagram and prints the
//! answer. connect() on a datagram socket sends nothing: it sets the default peer (send()
//! needs no address), drops datagrams from anyone else, and lets the kernel report
//! ECONNREFUSED when nothing is bound there. A read timeout ends the wait for an answer that
//! was lost.
//!
//!     cargo run -q --manifest-path solutions/Cargo.toml --bin 08_udp_server -- 127.0.0.1:0
//!     cargo run -q --manifest-path solutions/Cargo.toml --bin 08_udp_client -- 127.0.0.1:PORT hello

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
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    // s.connect((host, port)): no packet, only the default peer and a filter
    socket.connect(&SockAddr::from(address))?;
    // s.send(message): one datagram, to the connected peer
    socket.send(message.as_bytes())?;
    // s.recv(65536): one datagram, from the peer only; ECONNREFUSED if nobody is there
    let mut buf = vec![0u8; 65536];
    let n = (&socket).read(&mut buf)?;
    std::io::stdout().write_all(&buf[..n])?;
    Ok(())
}
