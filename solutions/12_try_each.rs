//! Step 12: names and addresses, a client that tries each address in turn
//! (lessons/12-addresses.md).
//!
//! A name can have several addresses, and the first may refuse while the next answers. This
//! client looks up each HOST:PORT on its command line (a name such as `localhost:8080`, or the
//! addresses a lookup gave, `[::1]:8080 127.0.0.1:8080`) and tries every address in order
//! until one connects, as Python's socket.create_connection does. Then it sends one line.
//!
//!     cargo run -q --manifest-path solutions/Cargo.toml --bin 12_try_each -- localhost:8080

use std::net::ToSocketAddrs;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let targets: Vec<String> = std::env::args().skip(1).collect();
    if targets.is_empty() {
        return Err("usage: 12_try_each HOST:PORT..., e.g. localhost:8080".into());
    }
    let mut last_error = None;
    // for af, socktype, proto, _, sa in socket.getaddrinfo(host, port, type=SOCK_STREAM):
    for target in &targets {
        for address in target.to_socket_addrs()? {
            // s = socket.socket(af, socktype, proto): a new socket for each address, of its
            // family (an IPv6 socket cannot connect to an IPv4 address).
            let socket = Socket::new(
                Domain::for_address(address),
                Type::STREAM,
                Some(Protocol::TCP),
            )?;
            // s.connect(sa): the first address that connects ends the search.
            match socket.connect(&SockAddr::from(address)) {
                Ok(()) => {
                    println!("connected to {address}");
                    socket.send(b"hello\n")?;
                    return Ok(());
                }
                // s.close(), and on to the next address (dropping the socket closes it).
                Err(error) => {
                    println!("{address}: {error}");
                    last_error = Some(error);
                }
            }
        }
    }
    // Every address failed: the last error is the answer.
    match last_error {
        Some(error) => Err(format!("no address connected; the last error: {error}").into()),
        None => Err("the lookup gave no address".into()),
    }
}
