//! 08_udp_server: a UDP echo server. Two clients on ports of their own take turns; each must
//! get its own datagrams back, whole, from the server's address.

use std::time::Duration;

use socket2::{SockAddr, Socket};

use super::peer_sockets::{self as peer, bytes, datagram};
use super::{Ctx, show, wait_until};
use crate::Failure;

/// How long a client waits for its answer: silence is the only sign UDP gives.
const ANSWER: Duration = Duration::from_secs(2);

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    let mut server = ctx.start(&["127.0.0.1:0"])?;
    let at = server.expect_address("listening on")?;
    let (a, _) = peer::udp(ANSWER).map_err(peer::setup)?;
    let (b, _) = peer::udp(ANSWER).map_err(peer::setup)?;
    for client in [&a, &b] {
        client.set_nonblocking(true).map_err(peer::setup)?;
    }
    let to = SockAddr::from(at);
    let big = bytes(8000, 8);
    let turns: [(&str, &Socket, &Socket, &[u8]); 5] = [
        ("A", &a, &b, b"hello from A"),
        ("B", &b, &a, b"hello from B"),
        ("B", &b, &a, b"B again"),
        ("A", &a, &b, b"A again"),
        ("A", &a, &b, &big),
    ];
    for (turn, (name, own, other, message)) in turns.into_iter().enumerate() {
        let what = format!(
            "send datagram {} of 5 ({} bytes) from client {name}; clients A and B have ports of their own",
            turn + 1,
            message.len()
        );
        let expected = format!("client {name} gets its datagram back, whole, from {at}");
        let _ = own.send_to(message, &to);
        // Watch both clients: the answer may go to the wrong one.
        let (mut answered, mut misdirected) = (None, None);
        wait_until(ANSWER, || {
            answered = datagram(own);
            misdirected = datagram(other).filter(|(answer, _)| answer == message);
            answered.is_some() || misdirected.is_some()
        });
        match answered {
            Some((answer, from)) if answer == message && from == Some(at) => continue,
            Some((answer, _)) if message.starts_with(&answer) && answer.len() < message.len() => {
                return Err(Failure::new(
                    what,
                    expected,
                    format!(
                        "{} of its {} bytes came back: your server received into a buffer smaller than the datagram, \
                         and the part of a datagram that does not fit is lost. Receive into 65536 bytes, room for the \
                         largest datagram",
                        answer.len(),
                        message.len()
                    ),
                )
                .read("lessons/08-udp.md#a-buffer-too-small"));
            }
            Some((answer, from)) => {
                return Err(Failure::new(
                    what,
                    expected,
                    format!("it got {} from {from:?}", show(&answer)),
                ));
            }
            None => {}
        }
        if misdirected.is_some() {
            let other_name = if name == "A" { "B" } else { "A" };
            return Err(Failure::new(
                what,
                expected,
                format!(
                    "the answer went to client {other_name}: your server answers every datagram to one address (the \
                     first sender's, or one it keeps). Each datagram comes with its sender's address: answer there"
                ),
            )
            .read("lessons/08-udp.md#run-it"));
        }
        let mut happened = format!("no answer came within {ANSWER:?}");
        if turn > 0 {
            happened.push_str(", though the datagrams before it were answered");
        }
        if server.exited().is_some() {
            happened = format!("{happened}; {}", server.what_happened());
        } else {
            happened.push_str(
                ". A server that connect()s its socket to its first client never hears from anyone else: the \
                 kernel drops their datagrams. A UDP server never connects",
            );
        }
        return Err(Failure::new(what, expected, happened)
            .read("lessons/08-udp.md#connect-on-a-datagram-socket"));
    }
    ctx.passed("5 datagrams from two clients, each answered to its sender, whole (8000 bytes too)");
    if server.exited().is_some() {
        return Err(Failure::new(
            "look at the server after its 5 answers",
            "it is still running, ready for the next datagram",
            server.what_happened(),
        ));
    }
    Ok(())
}
