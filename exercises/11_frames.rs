//! Exercise 11: messages over a stream, a length prefix (lessons/11-framing.md).
//!
//! Your task: the todo!()s in `recv_exactly` and `frames`: receive until the buffer is full
//! (one recv returns whatever has arrived), read the 4-byte header, refuse a length over MAX
//! before allocating anything, read the message, and send header and message back whole.
//! Check it: `cargo course check 11_frames`; stuck? `cargo course hint 11_frames`.
//!
//!     cargo run -q --manifest-path exercises/Cargo.toml --bin 11_frames -- 127.0.0.1:0

use std::io::{Read, Write};
use std::net::SocketAddr;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const MAX: usize = 65536; // the largest message the server accepts

fn recv_exactly(mut conn: &Socket, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        // data = cs.recv(len(buf) - got): whatever has arrived, at most what is still missing
        let n: usize = todo!("recv into buf[got..]: conn.read(&mut buf[got..])");
        todo!("0 means the client closed: return Ok(false); otherwise count the n bytes");
    }
    Ok(true)
}

/// comm_loop: 4 bytes of length (big-endian), then that many bytes; both go back. The length is
/// the client's word: it is checked against MAX before anything is allocated for it.
fn frames(conn: Socket) -> std::io::Result<u64> {
    let (mut header, mut answered) = ([0u8; 4], 0);
    while todo!("recv exactly 4 bytes into header: true, or false if the client closed") {
        let len = u32::from_be_bytes(header) as usize;
        todo!("a len over MAX: return an error (std::io::Error::other) before any allocation");
        let mut message = vec![0u8; len];
        todo!("recv exactly len bytes into message (the client may close: break)");
        // cs.sendall(header + message): one buffer, one write_all (lesson 11: Nagle).
        todo!("send header and message back together, all of it");
        answered += 1;
    }
    Ok(answered)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).ok_or("usage: 11_frames ADDRESS, e.g. 127.0.0.1:0")?;
    let address: SocketAddr = arg.parse()?;
    // ss = socket(...); ss.bind(address); ss.listen(5): step 4, unchanged.
    let listener = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    listener.bind(&SockAddr::from(address))?;
    listener.listen(5)?;
    println!("listening on {}", listener.local_addr()?.as_socket().ok_or("not an IP address")?);
    loop {
        // cs, addr = ss.accept(); one client's error is that client's, not the server's
        let (conn, peer) = listener.accept()?;
        let peer = peer.as_socket().ok_or("not an IP address")?;
        match frames(conn) {
            Ok(answered) => println!("client {peer} left after {answered} messages"),
            Err(error) => eprintln!("client {peer}: {error}"),
        }
    }
}
