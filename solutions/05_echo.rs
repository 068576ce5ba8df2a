//! Step 5: recv and send, an echo server (lessons/05-recv-send.md).
//!
//! Step 4's accept loop, plus the conversation: recv and send back what came, until recv
//! returns 0 (the client closed its side). A client whose connection fails ends only its own
//! conversation; the server goes on to the next client. Stop it with Ctrl-C.
//!
//!     cargo run -q --manifest-path solutions/Cargo.toml --bin 05_echo -- 127.0.0.1:0
//!     nc 127.0.0.1 PORT        # in another terminal: every line comes back

use std::io::Read;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// comm_loop: recv, send back, until the client closes. Returns how many bytes were echoed.
/// Taking `conn` by value means it is dropped, closed (the seed's `cs.close()`), on return.
fn echo(conn: Socket) -> std::io::Result<u64> {
    let mut buf = [0u8; 1024];
    let mut echoed = 0;
    loop {
        // data = cs.recv(1024): at most 1024 bytes, whatever has arrived; 0 means closed.
        let n = (&conn).read(&mut buf)?;
        if n == 0 {
            return Ok(echoed);
        }
        // cs.sendall(data): send returns how many bytes the kernel took; send the rest too.
        let mut sent = 0;
        while sent < n {
            sent += conn.send(&buf[sent..n])?;
        }
        echoed += n as u64;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).ok_or("usage: 05_echo ADDRESS, e.g. 127.0.0.1:0")?;
    let address: SocketAddr = arg.parse()?;

    // ss = socket(...); ss.bind(address); ss.listen(5): step 4, unchanged.
    let listener = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    listener.bind(&SockAddr::from(address))?;
    listener.listen(5)?;
    let local = listener.local_addr()?;
    println!("listening on {}", local.as_socket().ok_or("not an IP address")?);

    // inf_loop:
    loop {
        // cs = ss.accept()
        let (conn, peer) = listener.accept()?;
        let peer = peer.as_socket().ok_or("not an IP address")?;
        // One client's error is that client's: report it and accept the next.
        match echo(conn) {
            Ok(echoed) => println!("client {peer} left after {echoed} bytes"),
            Err(error) => eprintln!("client {peer}: {error}"),
        }
    }
}
