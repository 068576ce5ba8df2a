//! The client: one datagram to the server, and its answer. Without --connect it addresses
//! each datagram (send_to) and learns who answered; with it, connect() fixes the peer, which
//! sends nothing, and send and recv need no address.

use std::time::Duration;

use socket2::{SockAddr, Socket, Type};
use tutor::{Failure, Narrator, interrupt, narrate};

use crate::cli::Cli;
use crate::{datagram_protocol, next_datagram};

/// The client: socket(), (for unix: bind its own path), optionally connect(), one datagram
/// out, one answer back, close.
pub fn run(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let (server, own) = cli.client_addresses(say)?;
    let domain = server.domain();
    let protocol = datagram_protocol(cli.address.family);
    let socket = narrate!(say, Socket::new(domain, Type::DGRAM, protocol))?;
    // A unix datagram socket gets no address unless it binds one: without it, the server
    // would see no sender and have nowhere to send its answer.
    if let Some(own_path) = &own {
        let bound = narrate!(say, socket.bind(own_path), interrupt::owning(own_path));
        if bound.is_err() {
            say.note("this path is the client's own address: choose another with --client-path");
        }
        bound?;
        say.note("the server can answer this path");
    }
    let result = send_and_wait(say, &socket, &server, cli);
    narrate!(say, drop(socket));
    if let Some(own_path) = &own {
        interrupt::remove_socket_file(say, own_path);
    }
    result
}

/// One datagram to the server, and its answer: with send_to and a peek at the sender, or,
/// with --connect, with connect(), send and recv.
fn send_and_wait(
    say: &Narrator,
    socket: &Socket,
    server: &SockAddr,
    cli: &Cli,
) -> Result<(), Failure> {
    let timeout = Duration::from_millis(cli.timeout_ms);
    narrate!(say, socket.set_read_timeout(Some(timeout)))?;
    say.note("a receive that hears nothing gives up after this long");
    let message = cli.message.as_bytes();
    let mut buf = vec![0u8; cli.bufsize as usize];
    if cli.connect {
        // connect() on a datagram socket: no handshake, no packet. The kernel notes the
        // default peer, and from now on delivers only datagrams from that address.
        narrate!(say, socket.connect(server))?;
        say.note("the default peer is set; nothing was sent");
        narrate!(say, socket.send(message))?;
        say.note("one datagram, to the connected peer");
        let received = narrate!(say, (&socket).read(&mut buf));
        received.map_err(|failure| no_answer(say, failure, timeout, true))?;
    } else {
        narrate!(say, socket.send_to(message, server))?;
        let (_, from) = next_datagram(say, socket)
            .map_err(|failure| no_answer(say, failure, timeout, false))?;
        if from != *server {
            say.note("this answer comes from another address than the one the datagram went to: an unconnected socket takes datagrams from anyone");
        }
        narrate!(say, (&socket).read(&mut buf))?;
    }
    Ok(())
}

/// A connected datagram socket's ECONNREFUSED: not a reset (UDP has none), an ICMP message.
pub const REFUSED: &str = "the datagram was answered with an ICMP \"port unreachable\": nothing is bound at that address. The kernel kept it as this connected socket's error, and this call reports it";

/// What a failed receive means: an error the kernel kept for a connected socket
/// (ECONNREFUSED), or silence until the timeout (EAGAIN).
fn no_answer(say: &Narrator, failure: Failure, timeout: Duration, connected: bool) -> Failure {
    if failure.errno() == Some(libc::ECONNREFUSED) {
        say.note(REFUSED);
        return Failure::Peer(
            "recvfrom failed with ECONNREFUSED (Connection refused): nothing is bound to the server's address; start the server first, or check --host and --port".into(),
        );
    }
    if !failure.would_block() {
        return failure;
    }
    let also = if connected {
        ""
    } else {
        " (an unconnected socket is not told when nothing listens: try --connect)"
    };
    Failure::Peer(format!(
        "no answer within {} ms: UDP does not say whether the datagram arrived{also}",
        timeout.as_millis()
    ))
}
