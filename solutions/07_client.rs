//! Step 7: connect, the TCP client (lessons/07-connect.md).
//!
//! The client of step 5's echo server: socket, connect, send, recv, close, the seed's four
//! client steps. It sends its standard input, reads the echo until as many bytes came back
//! as it sent, and prints them. No bind: connect() gives the socket an ephemeral port.
//!
//!     cargo run -q --manifest-path solutions/Cargo.toml --bin 05_echo -- 127.0.0.1:0
//!     echo hello | cargo run -q --manifest-path solutions/Cargo.toml --bin 07_client -- 127.0.0.1:PORT

use std::io::{Read, Write};
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1).ok_or("usage: 07_client 127.0.0.1:PORT < message")?;
    let address: SocketAddr = arg.parse()?;
    let mut message = Vec::new();
    std::io::stdin().read_to_end(&mut message)?;

    // cs = socket.socket(AF_INET, SOCK_STREAM): the server's type (the seed says SOCK_DGRAM)
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    // cs.connect((host, port)): the handshake; the kernel picks our port
    socket.connect(&SockAddr::from(address))?;
    // cs.sendall(message): send() returns how many bytes the kernel took; send the rest
    let mut sent = 0;
    while sent < message.len() {
        sent += socket.send(&message[sent..])?;
    }
    // cs.recv(1024), in a loop: one recv() may bring only part of the echo
    let mut echo = vec![0u8; message.len()];
    let mut received = 0;
    while received < echo.len() {
        let n = (&socket).read(&mut echo[received..])?;
        if n == 0 {
            return Err(format!("the server closed after {received} of {sent} bytes").into());
        }
        received += n;
    }
    std::io::stdout().write_all(&echo)?;
    // cs.close()
    drop(socket);
    Ok(())
}
