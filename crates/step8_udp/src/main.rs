//! Step 8: UDP.
//!
//! A datagram socket has no connections: no listen(), no accept(). The server binds one socket
//! and every datagram that arrives on it brings its sender's address along; the server answers
//! each sender with send_to. One socket talks to any number of peers. connect() on a datagram
//! socket sends nothing: it only fixes the default peer and filters what the socket receives.
//! And a datagram is taken whole or not at all: what does not fit into the buffer is lost.
//!
//! This file is the server. The client is in `client.rs`, the flags of both in `cli.rs`;
//! `demo.rs` plays a server and its clients in one process. Read it beside
//! `lessons/08-udp.md`.

mod cli;
mod client;
mod demo;

use std::process::ExitCode;

use libc::{MSG_DONTWAIT, MSG_PEEK, MSG_TRUNC};
use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::{Failure, Family, Narrator, Step, addr, interrupt, narrate};

use crate::cli::{Cli, Role};

const STEP: Step = Step {
    number: 8,
    crate_name: "step8_udp",
    title: "UDP: datagrams, no connection",
    lesson: "lessons/08-udp.md",
};

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    interrupt::stop_on_signals(&say);
    let result = match (cli.demo, cli.role) {
        (true, _) => demo::run(&say, &cli),
        (false, Role::Server) => serve(&say, &cli),
        (false, Role::Client) => client::run(&say, &cli),
    };
    tutor::finish(&say, result)
}

/// The protocol argument of socket(): UDP for ipv4 and ipv6, the default (0) for unix.
fn datagram_protocol(family: Family) -> Option<Protocol> {
    (family != Family::Unix).then_some(Protocol::UDP)
}

/// The server: socket() and bind(), and nothing else: a datagram socket is ready for peers
/// once it has an address. Then, for each datagram: who sent it, take it, answer it.
fn serve(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let address = cli.address.resolve(say)?;
    let domain = address.domain();
    let protocol = datagram_protocol(cli.address.family);
    let socket = narrate!(say, Socket::new(domain, Type::DGRAM, protocol))?;
    narrate!(say, socket.bind(&address), interrupt::owning(&address))?;
    let local = narrate!(say, socket.local_addr())?;
    say.ready("bound to", &local);
    say.say("no listen(), no accept(): datagrams from any peer arrive on this one socket");

    let mut buf = vec![0u8; cli.bufsize as usize];
    let mut answered = 0;
    while cli.max_datagrams.is_none_or(|max| answered < max) {
        let (length, from) = next_datagram(say, &socket)?;
        let n = narrate!(say, (&socket).read(&mut buf))?;
        if n < length {
            say.note(format!(
                "the datagram had {length} bytes and the buffer holds {n}: the other {} are lost",
                length - n
            ));
        }
        answer(say, &socket, &buf[..n], &from);
        answered += 1;
    }
    narrate!(say, drop(socket));
    interrupt::remove_socket_file(say, &local);
    Ok(())
}

/// Who sent the next datagram, and how long it is, without taking it off the queue: a
/// receive with MSG_PEEK (look, do not take) and MSG_TRUNC (say the datagram's real length,
/// not what fitted) into an empty buffer.
///
/// socket2's `recv_from` fills a `MaybeUninit` buffer, which safe Rust cannot read back; this
/// course reads bytes with `read` (lesson 5), so it learns the sender first, with this peek.
fn next_datagram(say: &Narrator, socket: &Socket) -> Result<(usize, SockAddr), Failure> {
    let (length, from) = narrate!(
        say,
        socket.recv_from_with_flags(&mut [], MSG_PEEK | MSG_TRUNC)
    )?;
    say.note(format!(
        "a datagram of {length} bytes from {} is next",
        sender(&from)
    ));
    Ok((length, from))
}

/// A sender's address as the narration shows it.
fn sender(from: &SockAddr) -> String {
    if has_no_address(from) {
        "(no address)".to_owned()
    } else {
        addr::show(from)
    }
}

/// A unix socket that never bound a path sends with no address: the kernel reports an empty one.
fn has_no_address(from: &SockAddr) -> bool {
    from.as_socket().is_none()
        && from.as_pathname().is_none()
        && from.as_abstract_namespace().is_none()
}

/// The answer goes back to the address the datagram came from, with MSG_DONTWAIT: an answer
/// must never make the server wait. Over UDP a full receive buffer at the peer drops the
/// datagram there, but a unix datagram socket makes the sender wait until the peer has read
/// (its queue holds `net.unix.max_dgram_qlen` datagrams): one peer that never reads its
/// answers would stop the server for every other peer. Without waiting, the kernel says
/// EAGAIN instead, and the answer is dropped, as UDP would drop it. No error of one peer
/// stops the server.
fn answer(say: &Narrator, socket: &Socket, data: &[u8], from: &SockAddr) {
    if has_no_address(from) {
        say.note("the sender's socket has no address (an unbound unix socket): there is nowhere to send an answer");
        return;
    }
    match narrate!(say, socket.send_to_with_flags(data, from, MSG_DONTWAIT)) {
        Ok(_) => {}
        Err(failure) if failure.would_block() => say.note(format!(
            "{}'s queue is full: it does not read its answers. This answer is dropped, as UDP would drop it; the server does not wait for one peer",
            addr::show(from)
        )),
        Err(failure) => say.hint(&failure),
    }
}
