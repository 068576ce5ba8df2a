//! Step 11: messages over a stream, a length prefix (lessons/11-framing.md).
//!
//! Each message is 4 bytes of length (big-endian), then that many bytes. The server answers
//! each message with the same message, framed the same way, and closes a client that announces
//! more than MAX bytes before allocating anything for it. Stop it with Ctrl-C.
//!
//!     cargo run -q --manifest-path solutions/Cargo.toml --bin 11_frames -- 127.0.0.1:0

use std::io::{Read, Write};
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// The largest message the server accepts.
const MAX: usize = 65536;

/// Receives until `buf` is full; `false` if the client closed first.
fn recv_exactly(mut conn: &Socket, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        // data = cs.recv(len(buf) - got): whatever has arrived, at most what is still missing
        match conn.read(&mut buf[got..])? {
            0 => return Ok(false),
            n => got += n,
        }
    }
    Ok(true)
}

/// comm_loop: a header, a message, an answer; until the client closes. Returns how many
/// messages were answered; a length over MAX is an error, which closes the connection.
fn frames(conn: Socket) -> std::io::Result<u64> {
    let mut answered = 0;
    loop {
        let mut header = [0u8; 4];
        if !recv_exactly(&conn, &mut header)? {
            return Ok(answered);
        }
        let len = u32::from_be_bytes(header) as usize;
        // The length is the client's word: check it before allocating anything.
        if len > MAX {
            return Err(std::io::Error::other(format!("{len} bytes announced, more than {MAX}")));
        }
        let mut message = vec![0u8; len];
        if !recv_exactly(&conn, &mut message)? {
            return Ok(answered);
        }
        // cs.sendall(header + message): one buffer, one write_all (lesson 11: Nagle).
        (&conn).write_all(&[&header[..], &message].concat())?;
        answered += 1;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).ok_or("usage: 11_frames ADDRESS, e.g. 127.0.0.1:0")?;
    let address: SocketAddr = arg.parse()?;
    // ss = socket(...); ss.bind(address); ss.listen(5): step 4, unchanged.
    let listener = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    listener.bind(&SockAddr::from(address))?;
    listener.listen(5)?;
    let local = listener.local_addr()?;
    println!("listening on {}", local.as_socket().ok_or("not an IP address")?);
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
