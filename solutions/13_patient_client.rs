//! Step 13: time and silence, a client that does not wait forever (lessons/13-dead-peers.md).
//!
//! Connects to a server, sends one line and reads the answer, but not at any price: a read
//! timeout ends the wait for a server that says nothing (recv fails with EAGAIN), and
//! keepalive probes end a connection whose server has vanished (ETIMEDOUT) in seconds, not
//! the kernel's two hours. It prints the answer, or says why none came, and exits 1.
//!
//!     cargo run -q --manifest-path solutions/Cargo.toml --bin 13_patient_client -- 127.0.0.1:PORT

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};

/// How long one recv may wait for the answer.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let arg = std::env::args()
        .nth(1)
        .ok_or("usage: 13_patient_client ADDRESS, e.g. 127.0.0.1:8080")?;
    let address: SocketAddr = arg.parse()?;
    // s = socket(AF_INET, SOCK_STREAM)
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    // s.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1), then TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT:
    // the first probe after 10 s of silence, then one every 5 s, and 3 unanswered end it.
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    socket.set_tcp_keepalive(&keepalive)?;
    // s.setsockopt(SOL_SOCKET, SO_RCVTIMEO, ...): one recv waits at most READ_TIMEOUT.
    socket.set_read_timeout(Some(READ_TIMEOUT))?;
    // s.connect(address); s.sendall(b"hello\n"): write_all is sendall (lesson 11)
    socket.connect(&SockAddr::from(address))?;
    (&socket).write_all(b"hello\n")?;
    // data = s.recv(1024)
    let mut buf = [0u8; 1024];
    match (&socket).read(&mut buf) {
        Ok(0) => {
            eprintln!("the server closed the connection without answering");
            Ok(ExitCode::FAILURE)
        }
        Ok(n) => {
            println!("answer: {}", String::from_utf8_lossy(&buf[..n]).trim_end());
            Ok(ExitCode::SUCCESS)
        }
        // EAGAIN: the read timeout ran out. The connection is still there; the server is silent.
        Err(error) if error.kind() == ErrorKind::WouldBlock => {
            eprintln!("no answer within {READ_TIMEOUT:?}: the server is silent");
            Ok(ExitCode::FAILURE)
        }
        // ETIMEDOUT (keepalive gave up), ECONNRESET, ...: the connection is gone.
        Err(error) => Err(error.into()),
    }
}
