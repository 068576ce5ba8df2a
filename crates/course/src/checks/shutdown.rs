//! 06_shutdown: a client that sends its request, shuts down its sending half, and reads the
//! answer to end of file. The checker is the server, one that answers only after the
//! client's FIN, with 1 MiB, in two parts.

use std::io::Write;
use std::time::Duration;

use super::peer_sockets::{self as peer, Ended, bytes, first_difference, size};
use super::piped::Piped;
use super::watch::{all_read, gone, queues, sleeps_in_recv, state};
use super::{Ctx, QUICK, show, wait_until};
use crate::Failure;
use tutor::observe::TcpState;

/// How long the server waits for the client's FIN.
const FIN: Duration = Duration::from_secs(3);

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    let request = b"what time is it?".to_vec();
    let answer = bytes(1 << 20, 6);
    let (listener, at) = peer::listener(QUICK).map_err(peer::setup)?;
    let client =
        Piped::start(&ctx.program, &[at.to_string()], request.clone()).map_err(peer::setup)?;
    let pid = client.pid();
    let what = format!(
        "run your client against a server at {at} that answers only after the client's FIN"
    );
    let (conn, client) = peer::accept(&listener, client, &what)?;
    let (ours, theirs) = peer::addresses(&conn);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));

    // Read until end of file; or until the client is seen waiting for the answer with no FIN
    // sent (its end has nothing unacknowledged, ours is still ESTABLISHED): a deadlock, which
    // waiting longer would not end.
    let mut got = Vec::new();
    let mut ended = Ended::Silence;
    let no_fin_sent = || {
        sleeps_in_recv(pid)
            && queues(theirs, ours) == Some((0, 0))
            && state(ours, theirs) == Some(TcpState::Established)
    };
    wait_until(FIN, || {
        ended = peer::read_all(&conn, &mut got, 1 << 20);
        !matches!(ended, Ended::Silence) || gone(pid) || (got == request && no_fin_sent())
    });
    if matches!(ended, Ended::Silence) {
        // A client that has just exited: its FIN is here by now.
        ended = peer::read_all(&conn, &mut got, 1 << 20);
    }
    match ended {
        Ended::Eof if got == request => ctx.passed("the request came, then the client's FIN"),
        Ended::Silence if got == request => {
            return Err(Failure::new(
                what,
                "the request, then a FIN (shutdown(Shutdown::Write)): the server's recv() returns 0 and it answers",
                format!(
                    "the whole request came ({} bytes), then no FIN, and your client waits in recv() for the answer. \
                     It never shut down its sending half, so the server cannot know that the request is complete: \
                     each waits for the other. Closing a copy of the socket (try_clone) sends no FIN while another \
                     descriptor is open; shutdown(Shutdown::Write) does",
                    request.len()
                ),
            )
            .read("lessons/06-close.md#run-it"));
        }
        _ => {
            let ended = client.finish(Duration::ZERO);
            return Err(Failure::new(
                what,
                format!(
                    "the request, {} (the client's standard input), then a FIN",
                    show(&request)
                ),
                format!(
                    "the server received {}; {}",
                    show(&got),
                    ended.how(Duration::ZERO)
                ),
            ));
        }
    }

    // Answer once the client waits in recv() (or has given up), in two parts: the first is read
    // before the second is sent, so what it prints never depends on timing.
    wait_until(FIN, || gone(pid) || sleeps_in_recv(pid));
    let (first, rest) = answer.split_at(65536);
    let _ = (&conn).write_all(first);
    wait_until(FIN, || gone(pid) || all_read(ours, theirs));
    let _ = (&conn).write_all(rest);
    drop(conn); // the server's FIN: end of file after the answer

    let ended = client.finish(QUICK);
    let out = &ended.stdout;
    let expected = format!(
        "it prints the whole answer ({}, which the server sends after the client's FIN, then closes) and exits with code 0",
        size(answer.len())
    );
    if *out == answer && ended.code() == Some(0) {
        ctx.passed(format!(
            "the whole answer, {} byte for byte, and exit code 0",
            size(answer.len())
        ));
        return Ok(());
    }
    let what = "read the answer that comes after the client's FIN";
    if ended.reached_todo() {
        return Err(Failure::new(what, expected, ended.how(QUICK)));
    }
    if out.is_empty() && ended.code() == Some(0) {
        return Err(Failure::new(
            what,
            expected,
            "it printed nothing and exited 0: its first recv() returned 0 before any answer came. \
             shutdown(Shutdown::Both) (or Read) shuts the receiving half too, so recv() returns 0 at once; \
             shutdown(Shutdown::Write) shuts only the sending half",
        )
        .read("lessons/06-close.md#the-calls-three-ways"));
    }
    if out.len() < answer.len() && answer.starts_with(out) {
        return Err(Failure::new(
            what,
            expected,
            format!(
                "it printed the first {} bytes, and {}: it stopped reading before end of file. One recv() returns \
                 what has arrived so far; read until recv() returns 0",
                out.len(),
                ended.how(QUICK)
            ),
        )
        .read("lessons/05-recv-send.md#the-calls-three-ways"));
    }
    Err(Failure::new(
        what,
        expected,
        format!(
            "it printed {} bytes, different from the answer from byte {} on; {}",
            out.len(),
            first_difference(out, &answer),
            ended.how(QUICK)
        ),
    ))
}
