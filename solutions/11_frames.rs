//! Step 11: messages over a stream, a length prefix (lessons/11-framing.md).
//!
//!     cargo run -q --manifest-path solutions/Cargo.toml --bin 11_frames -- 127.0.0.1:0

use std::io::{Read, Write};
use std::net::SocketAddr;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const MAX: usize = 65536; // the largest message the server accepts

fn recv_exactly(mut conn: &Socket, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        // data = cs.recv(len(buf) - got): whatever has arrived, at most what is still missing
        match conn.read(&mut buf[got..])? {
            0 => return Ok(false), // the client closed before `buf` was full
            n => got += n,
        }
    }
    Ok(true)
}

/// comm_loop: 4 bytes of length (big-endian), then that many bytes; both go back. The length is
/// the client's word: it is checked against MAX before anything is allocated for it.
fn frames(conn: Socket) -> std::io::Result<u64> {
    let (mut header, mut answered) = ([0u8; 4], 0);
    while recv_exactly(&conn, &mut header)? {
        let len = u32::from_be_bytes(header) as usize;
        if len > MAX {
            return Err(std::io::Error::other(format!("{len} bytes announced, more than {MAX}")));
        }
        let mut message = vec![0u8; len];
        if !recv_exactly(&conn, &mut message)? {
            break; // the client closed in the middle of a message
        }
        // cs.sendall(header + message): one buffer, one write_all (lesson 11: Nagle).
        (&conn).write_all(&[&header[..], &message].concat())?;
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
