//! What `std::net::TcpListener::bind` does in one call, for lesson 3: run it under strace.
//!
//!     cargo build -q -p step3_listen --example std_listener
//!     strace -e trace=%network $(scripts/bin.sh --example std_listener)

use std::net::TcpListener;

fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("std listens on {}", listener.local_addr()?);
    Ok(())
}
