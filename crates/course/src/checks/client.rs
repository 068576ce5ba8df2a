//! 07_client: the client of step 5's echo server. The checker is the server: it takes 16 MiB
//! (more than the kernel's buffers hold, so the client's send() must wait for room), stops and
//! continues the client while it waits (its send() then returns early: a short send), and
//! sends the echo back in two parts.

use std::io::Write;
use std::time::Duration;

use super::peer_sockets::{self as peer, bytes, first_difference, size};
use super::piped::Piped;
use super::watch::{all_read, gone, sleeps_in_recv, sleeps_in_send, stop_and_continue, where_is};
use super::{Ctx, QUICK, wait_until};
use crate::Failure;

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    let message = bytes(16 << 20, 7);
    let (listener, at) = peer::listener(QUICK).map_err(peer::setup)?;
    let client =
        Piped::start(&ctx.program, &[at.to_string()], message.clone()).map_err(peer::setup)?;
    let pid = client.pid();
    let what = format!(
        "run your client against an echo server at {at}, with {} on its standard input",
        size(message.len())
    );
    let (conn, client) = peer::accept(&listener, client, &what)?;
    let (ours, theirs) = peer::addresses(&conn);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));

    // Read nothing until the client's send() sleeps for room; then Ctrl-Z and fg, in effect.
    wait_until(QUICK, || {
        gone(pid) || sleeps_in_send(pid) || sleeps_in_recv(pid)
    });
    let interrupted = sleeps_in_send(pid) && stop_and_continue(pid);
    if !interrupted {
        ctx.skipped(match where_is(pid) {
            Some((_, None)) => "a short send: /proc/PID/syscall cannot be read here",
            _ => "a short send: the client's send() never waited for room",
        });
    }
    let mut got = Vec::new();
    // Everything the client sent has been read here, and it waits for the echo.
    let waits_with_nothing_in_flight = || sleeps_in_recv(pid) && all_read(theirs, ours);
    let flowing = wait_until(Duration::from_secs(20), || {
        let _ = peer::read_all(&conn, &mut got, message.len());
        got.len() >= message.len() || gone(pid) || waits_with_nothing_in_flight()
    });
    let expected = format!(
        "it sends all of its standard input ({})",
        size(message.len())
    );
    if got.len() < message.len() && waits_with_nothing_in_flight() {
        return Err(Failure::new(
            what,
            expected,
            format!(
                "the server received {} bytes; then your client stopped sending and waited for the echo. Its send() \
                 took only part of the message{} and the rest was never sent. send() returns how many bytes the \
                 kernel took: send the rest in a loop, as Python's sendall does",
                got.len(),
                if interrupted { " (it returned early because the process was stopped and continued, as Ctrl-Z and fg do)" } else { "" }
            ),
        )
        .read("lessons/07-connect.md#the-calls-three-ways"));
    }
    if got.len() < message.len() {
        let ended = client.finish(QUICK);
        let silent = if flowing {
            ""
        } else {
            ", then nothing for 20 s"
        };
        return Err(Failure::new(
            what,
            expected,
            format!(
                "the server received {} bytes{silent}; {}",
                got.len(),
                ended.how(QUICK)
            ),
        ));
    }
    if got != message {
        return Err(Failure::new(
            what,
            "it sends its standard input unchanged",
            format!(
                "what it sent differs from its input from byte {} on",
                first_difference(&got, &message)
            ),
        ));
    }
    ctx.passed(format!(
        "all {} came{}",
        size(message.len()),
        if interrupted {
            ", though a send() was cut short by a stop and continue"
        } else {
            ""
        }
    ));

    // The echo, in two parts: the client reads the first before the rest is sent.
    let (first, rest) = message.split_at(1000);
    let _ = (&conn).write_all(first);
    wait_until(QUICK, || gone(pid) || all_read(ours, theirs));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(20)));
    let _ = (&conn).write_all(rest);
    let what = "send the echo back, in two parts (1000 bytes, then the rest), and keep the connection open, as step 5's server does";
    let expected = format!(
        "it prints the whole echo ({}) and exits with code 0",
        size(message.len())
    );
    wait_until(QUICK, || {
        gone(pid) || (all_read(ours, theirs) && sleeps_in_recv(pid))
    });
    if !gone(pid) && all_read(ours, theirs) && sleeps_in_recv(pid) {
        return Err(Failure::new(
            what,
            expected,
            "it read the whole echo, then went on waiting in recv(). An echo server closes only after its client \
             does, so a client that reads until end of file waits for ever: stop when as many bytes came back as \
             you sent",
        )
        .read("lessons/07-connect.md#walk-through-the-code"));
    }
    let ended = client.finish(QUICK);
    drop(conn);
    let out = &ended.stdout;
    if ended.reached_todo() {
        return Err(Failure::new(what, expected, ended.how(QUICK)));
    }
    if *out == message && ended.code() == Some(0) {
        ctx.passed(format!(
            "the whole echo printed, {} byte for byte, and exit code 0",
            size(message.len())
        ));
        return Ok(());
    }
    if out.len() < message.len() && message.starts_with(out) {
        return Err(Failure::new(
            what,
            expected,
            format!(
                "it printed the first {} bytes, and {}: one recv() returns only what has arrived. Read until every \
                 byte you sent has come back",
                out.len(),
                ended.how(QUICK)
            ),
        )
        .read("lessons/07-connect.md#walk-through-the-code"));
    }
    Err(Failure::new(
        what,
        expected,
        format!(
            "it printed {} bytes, different from the echo from byte {} on; {}",
            out.len(),
            first_difference(out, &message),
            ended.how(QUICK)
        ),
    ))
}
