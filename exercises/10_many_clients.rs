//! Exercise 10: many clients at once (lessons/10-many-clients.md).
//!
//! Your task: where the todo!() is, serve each accepted client on a thread of its own, so that
//! the loop goes straight back to accept().
//! Check it: `cargo course check 10_many_clients`; stuck? `cargo course hint 10_many_clients`.
//!
//! Step 5's echo server with one change: each client is served on a thread of its own. The
//! main loop only accepts, so a client that connects and says nothing holds up no one but
//! itself, and one client's error ends only that client's thread. Stop it with Ctrl-C.
//!
//!     cargo run -q --manifest-path exercises/Cargo.toml --bin 10_many_clients -- 127.0.0.1:0
//!     nc 127.0.0.1 PORT        # in two other terminals: both get their echo at once

use std::io::Read;
use std::net::SocketAddr;
use std::thread;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// comm_loop, as in step 5: recv, send back, until the client closes.
fn echo(conn: Socket) -> std::io::Result<u64> {
    let mut buf = [0u8; 1024];
    let mut echoed = 0;
    loop {
        // data = cs.recv(1024): at most 1024 bytes, whatever has arrived; 0 means closed.
        let n = (&conn).read(&mut buf)?;
        if n == 0 {
            return Ok(echoed);
        }
        // cs.sendall(data)
        let mut sent = 0;
        while sent < n {
            sent += conn.send(&buf[sent..n])?;
        }
        echoed += n as u64;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).ok_or("usage: 10_many_clients ADDRESS, e.g. 127.0.0.1:0")?;
    let address: SocketAddr = arg.parse()?;

    // ss = socket(...); ss.bind(address); ss.listen(128): a longer queue for many clients.
    let listener = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    listener.bind(&SockAddr::from(address))?;
    listener.listen(128)?;
    let local = listener.local_addr()?;
    println!("listening on {}", local.as_socket().ok_or("not an IP address")?);

    // inf_loop:
    loop {
        // cs = ss.accept()
        let (conn, peer) = listener.accept()?;
        let peer = peer.as_socket().ok_or("not an IP address")?;
        // threading.Thread(target=echo, args=(cs,)).start(): the new thread talks to this
        // client; this one goes straight back to accept() for the next.
        todo!("a thread of its own for this client: thread::spawn(move || ...) calls echo(conn)");
    }
}
