//! Exercise 6: close vs shutdown, a client that half-closes (lessons/06-close.md, part 1).
//!
//! Your task: where the todo!()s are, shut down the sending half after the request, then read
//! the answer until recv() returns 0, writing each piece to stdout. The server answers only
//! after your FIN.
//! Check it: `cargo course check 06_shutdown`; stuck? `cargo course hint 06_shutdown`.
//!
//! Step 5's conversation seen from the client, for a server that answers only once the
//! request is complete: the client sends its request (its standard input), shuts down its
//! sending half so that the server's recv() returns 0, then reads the answer until the server
//! closes too, and prints it. A close() instead of the shutdown would give up the socket
//! before the answer came.
//!
//!     cargo run -q -p step6_close -- --how shutdown     # a server; it prints its port
//!     printf hello | cargo run -q --manifest-path exercises/Cargo.toml --bin 06_shutdown -- 127.0.0.1:PORT

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).ok_or("usage: 06_shutdown 127.0.0.1:PORT < request")?;
    let address: SocketAddr = arg.parse()?;
    let mut request = Vec::new();
    std::io::stdin().read_to_end(&mut request)?;

    // cs = socket.socket(AF_INET, SOCK_STREAM)
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    // cs.connect((host, port))
    socket.connect(&SockAddr::from(address))?;
    // cs.sendall(request): send() may take fewer bytes than it is given
    let mut sent = 0;
    while sent < request.len() {
        sent += socket.send(&request[sent..])?;
    }
    // cs.shutdown(socket.SHUT_WR): a FIN follows the request; the server's recv() returns 0.
    // Only the sending half is closed: the answer can still come in.
    todo!("shut down the sending half only: socket.shutdown(...)");
    // while data := cs.recv(4096): ...  read until recv() returns 0, the server's FIN
    let mut buf = [0u8; 4096];
    let mut stdout = std::io::stdout().lock();
    loop {
        let n: usize = todo!("recv into buf: (&socket).read(&mut buf)");
        todo!("when recv returns 0 the server has closed: the answer is complete, break");
        stdout.write_all(&buf[..n])?;
    }
    // cs.close(): both FINs have gone, so the connection ends cleanly; ours went first, so
    // our end waits in TIME-WAIT (lesson 6, part 5)
    drop(socket);
    Ok(())
}
