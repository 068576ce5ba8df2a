//! Exercise 8a: UDP, an echo server for datagrams (lessons/08-udp.md).
//!
//! Your task: where the todo!()s are, create a UDP socket, and in the loop answer each datagram
//! to the address it came from.
//! Check it: `cargo course check 08_udp_server`; stuck? `cargo course hint 08_udp_server`.
//!
//! Step 5's echo over UDP: socket and bind, then answer each datagram to the address it came
//! from. No listen, no accept, no socket per client: one socket serves every peer, and each
//! datagram brings its sender's address. Stop it with Ctrl-C.
//!
//!     cargo run -q --manifest-path exercises/Cargo.toml --bin 08_udp_server -- 127.0.0.1:0
//!     nc -u 127.0.0.1 PORT        # in another terminal: every line comes back

use std::io::Read;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).ok_or("usage: 08_udp_server ADDRESS, e.g. 127.0.0.1:0")?;
    let address: SocketAddr = arg.parse()?;
    // s = socket.socket(AF_INET, SOCK_DGRAM)
    let socket: Socket = todo!("a UDP socket: Socket::new(..., Type::DGRAM, Some(Protocol::UDP))");
    // s.bind((host, port))
    socket.bind(&SockAddr::from(address))?;
    let local = socket.local_addr()?.as_socket().ok_or("not an IP address")?;
    println!("listening on {local}");

    // 65536 bytes: room for the largest datagram; a smaller buffer loses the rest of one
    let mut buf = vec![0u8; 65536];
    loop {
        // data, sender = s.recvfrom(65536), in two calls: peek_sender() learns the sender of
        // the next datagram without taking it, read() takes it (lesson 8 says why)
        let sender: SockAddr = todo!("the next datagram's sender: socket.peek_sender()");
        let n: usize = todo!("take the datagram: (&socket).read(&mut buf)");
        // s.sendto(data, sender): the answer goes where this datagram came from
        todo!("answer it, to its sender: socket.send_to(...)");
    }
}
