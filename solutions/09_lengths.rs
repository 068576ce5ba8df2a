//! Step 9: stream vs datagram, the same messages both ways (lessons/09-stream-vs-dgram.md).
//!
//! One port number, TCP and UDP; each message is answered with its length. A datagram is a
//! message; a stream has no boundaries, so there a message is a line. Stop it with Ctrl-C.
//!
//!     cargo run -q --manifest-path solutions/Cargo.toml --bin 09_lengths -- 127.0.0.1:0
//!     nc 127.0.0.1 PORT     # or nc -u: each line is answered with its length

use std::io::{Read, Write};
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// comm_loop over TCP: collect the bytes; each newline completes a message.
fn lines(conn: Socket) -> std::io::Result<()> {
    let (mut pending, mut buf) = (Vec::new(), [0u8; 1024]);
    loop {
        // data = cs.recv(1024): some bytes, not a message; 0 means the client closed
        let n = (&conn).read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
            // cs.sendall(b'%d\n' % len(line)): write_all is sendall
            (&conn).write_all(format!("{end}\n").as_bytes())?;
            pending.drain(..=end);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).ok_or("usage: 09_lengths ADDRESS, e.g. 127.0.0.1:0")?;
    let address: SocketAddr = arg.parse()?;
    // ss = socket(AF_INET, SOCK_STREAM); ss.bind(address); ss.listen(5)
    let listener = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    listener.bind(&SockAddr::from(address))?;
    listener.listen(5)?;
    // us = socket(AF_INET, SOCK_DGRAM); us.bind(...): UDP's ports are not TCP's; same number
    let local = listener.local_addr()?;
    let udp = Socket::new(Domain::for_address(address), Type::DGRAM, Some(Protocol::UDP))?;
    udp.bind(&local)?;
    println!("listening on {} (tcp and udp)", local.as_socket().ok_or("not an IP address")?);
    // The datagrams get a thread of their own (step 10): neither side waits for the other.
    std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; 65536];
        loop {
            // data, sender = us.recvfrom(65536): one whole datagram is one message
            let sender = udp.peek_sender()?;
            let n = (&udp).read(&mut buf)?;
            udp.send_to(n.to_string().as_bytes(), &sender)?;
        }
    });
    loop {
        // cs, addr = ss.accept(); one client's error is that client's, not the server's
        if let Err(error) = lines(listener.accept()?.0) {
            eprintln!("client: {error}");
        }
    }
}
