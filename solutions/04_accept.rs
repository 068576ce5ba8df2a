//! Step 4: accept, a new socket for each client (lessons/04-accept.md).
//!
//! Step 3's listener, now taking its clients out of the queue, one after another, forever (stop
//! it with Ctrl-C). Each client gets one line naming the address it came from, then a close.
//!
//!     cargo run -q --manifest-path solutions/Cargo.toml --bin 04_accept -- 127.0.0.1:0
//!     nc 127.0.0.1 PORT        # in another terminal

use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).ok_or("usage: 04_accept ADDRESS, e.g. 127.0.0.1:0")?;
    let address: SocketAddr = arg.parse()?;

    // ss = socket(...); ss.bind(address); ss.listen(5)
    let listener = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    listener.bind(&SockAddr::from(address))?;
    listener.listen(5)?;
    let local = listener.local_addr()?;
    println!("listening on {}", local.as_socket().ok_or("not an IP address")?);

    // inf_loop: the server's endless loop.
    loop {
        // cs, address = ss.accept(): waits for a client, then returns a NEW socket for it.
        let (conn, peer) = listener.accept()?;
        let peer = peer.as_socket().ok_or("not an IP address")?;
        println!("accepted a client from {peer}");

        // cs.send(...): one line on the client's own socket, never on the listener.
        conn.send(format!("hello, {peer}\n").as_bytes())?;

        // cs.close(): dropping conn closes the client's socket; the listener goes on.
        drop(conn);
    }
}
