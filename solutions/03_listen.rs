//! Step 3: listen, and the accept queue (lessons/03-listen.md).
//!
//! Step 2's bound socket, now listening with the backlog on the command line. It never
//! accepts: the kernel completes clients' handshakes by itself and queues them (backlog + 1 of
//! them on Linux) until you press Enter.
//!
//!     cargo run -q --manifest-path solutions/Cargo.toml --bin 03_listen -- 127.0.0.1:0 2

use std::io::BufRead;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: 03_listen ADDRESS BACKLOG, e.g. 127.0.0.1:0 2";
    let address: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let backlog: i32 = args.next().ok_or(usage)?.parse()?;

    // ss = socket.socket(socket.AF_INET, socket.SOCK_STREAM); ss.bind(address)
    let listener = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    listener.bind(&SockAddr::from(address))?;

    // ss.listen(backlog): from now on the kernel answers clients by itself.
    listener.listen(backlog)?;

    let local = listener.local_addr()?;
    let local = local.as_socket().ok_or("not an IP address")?;
    println!("listening on {local} with backlog {backlog}; press Enter to stop");

    std::io::stdin().lock().read_line(&mut String::new())?;
    Ok(())
}
