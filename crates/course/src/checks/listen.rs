//! 03_listen: the program listens on the address on its command line with the backlog on its
//! command line, and never accepts. The check looks for the LISTEN socket in /proc/net/tcp and
//! counts the handshakes the kernel completes: backlog + 1, then the next SYN gets no answer.

use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tutor::observe::{self, TcpState};

use super::{Ctx, QUICK, exits_cleanly_after_enter, wait_until};
use crate::Failure;

/// The backlog the check asks for: Linux then queues 2 connections.
const BACKLOG: usize = 1;
/// How long a client waits for an answer to its SYN before the check calls it dropped.
const NO_ANSWER: Duration = Duration::from_millis(500);

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    let mut running = ctx.start(&["127.0.0.1:0", &BACKLOG.to_string()])?;
    let address = running.expect_address("listening on")?;
    let listening = |a: SocketAddr| {
        observe::tcp_sockets_on_port(a.port())
            .unwrap_or_default()
            .iter()
            .any(|e| e.state == TcpState::Listen && e.local == a)
    };
    if !listening(address) {
        return Err(Failure::new(
            format!("look for a LISTEN socket at {address} in /proc/net/tcp"),
            format!("a socket in state LISTEN at {address}"),
            "there is none: the socket is bound but listen() was not called (or failed)",
        )
        .read("lessons/03-listen.md#look-from-outside"));
    }
    ctx.passed(format!("/proc/net/tcp: LISTEN at {address}"));

    // Clients one at a time, never accepted; each waits until the kernel has queued the one
    // before it, so the next SYN meets the real queue.
    let mut clients = Vec::new();
    let most = BACKLOG + 3;
    while clients.len() < most {
        let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| Failure::new("create a client", "a socket", e.to_string()))?;
        match client.connect_timeout(&SockAddr::from(address), NO_ANSWER) {
            Ok(()) => clients.push(client),
            Err(e) if clients.is_empty() => {
                return Err(Failure::new(
                    format!("connect a client to {address}"),
                    "the handshake completes: the kernel answers for a listening socket",
                    format!("connect failed: {e}"),
                ));
            }
            Err(_) => break,
        }
        let queued = clients.len() as u32;
        wait_until(QUICK, || observe::accept_queue_len(address) == Some(queued));
    }
    let expected = format!(
        "listen({BACKLOG}): {} clients complete the handshake and wait in the accept queue; the next client's SYN gets no answer",
        BACKLOG + 1
    );
    match clients.len() {
        n if n == BACKLOG + 1 => {}
        n if n >= most => {
            return Err(Failure::new(
                format!(
                    "connect clients without accepting (backlog {BACKLOG} on the command line)"
                ),
                expected,
                format!(
                    "{n} clients completed the handshake and all wait in the queue: the backlog given to listen() is not the BACKLOG from the command line"
                ),
            ));
        }
        n => {
            return Err(Failure::new(
                format!(
                    "connect clients without accepting (backlog {BACKLOG} on the command line)"
                ),
                expected,
                format!(
                    "{n} completed the handshake, then a client got no answer within {NO_ANSWER:?}: the backlog given to listen() is smaller than BACKLOG"
                ),
            ));
        }
    }
    ctx.passed(format!(
        "{} clients queued with backlog {BACKLOG}, the next got no answer: Linux queues backlog + 1",
        BACKLOG + 1
    ));
    exits_cleanly_after_enter(&mut running, "press Enter")?;
    if !wait_until(QUICK, || !listening(address)) {
        return Err(Failure::new(
            "look at /proc/net/tcp after it exited",
            "no LISTEN socket at the address any more",
            "the socket is still listening",
        ));
    }
    ctx.passed("after Enter it exited with code 0, and nothing listens there any more");
    Ok(())
}
