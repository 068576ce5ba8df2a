//! 10_many_clients: an echo server for many clients at once. Four clients echo 1 MiB each at
//! the same time; a silent client must not hold up the next; a client that resets in
//! mid-message must not stop the server; and when all have gone, so have their descriptors.

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::Duration;

use super::peer_sockets::{self as peer, Ended, bytes, first_difference, size};
use super::watch::{open_fds, sleeps_in_recv, threads};
use super::{Ctx, show, wait_until};
use crate::Failure;

/// How long a client waits for its echo, or for end of file after its FIN.
const ECHO: Duration = Duration::from_secs(3);

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    let mut server = ctx.start(&["127.0.0.1:0"])?;
    let at = server.expect_address("listening on")?;
    let pid = server.pid();
    let fds_before = open_fds(pid);

    let results: Vec<Result<(), Failure>> = thread::scope(|scope| {
        let clients: Vec<_> = (1..=4)
            .map(|k| scope.spawn(move || echo_client(at, k)))
            .collect();
        clients
            .into_iter()
            .map(|c| {
                c.join().unwrap_or_else(|_| {
                    Err(peer::setup(std::io::Error::other("a client panicked")))
                })
            })
            .collect()
    });
    for result in results {
        if let Err(failure) = result {
            // A server that stopped (at a todo!(), or on an error) says so itself.
            return match server.exited() {
                Some(_) => Err(Failure::new(
                    failure.what,
                    failure.expected,
                    server.what_happened(),
                )),
                None => Err(failure),
            };
        }
    }
    ctx.passed("4 clients at once, 1 MiB each, echoed byte for byte, each closed after its FIN");

    let silent = peer::connect(at, ECHO).map_err(peer::setup)?;
    let next = peer::connect(at, ECHO).map_err(peer::setup)?;
    let hello = b"hello from the second client\n";
    let _ = (&next).write_all(hello);
    // Wait for the echo; or until the kernel shows the one-at-a-time deadlock: a process of one
    // thread asleep in recv() (on the silent client) while the second client waits in the
    // accept queue, which waiting longer would not end.
    let _ = next.set_read_timeout(Some(Duration::from_millis(50)));
    let mut echo = Vec::new();
    let mut stuck = false;
    wait_until(ECHO, || {
        let _ = peer::read_all(&next, &mut echo, hello.len());
        stuck = threads(pid) == Some(1)
            && sleeps_in_recv(pid)
            && tutor::observe::accept_queue_len(at).is_some_and(|queued| queued > 0);
        echo.len() >= hello.len() || stuck
    });
    if echo != hello {
        return Err(Failure::new(
            "connect a client that says nothing, then a second client that says hello",
            format!("the second client gets its echo within {ECHO:?}, while the first is still connected"),
            format!(
                "it got {}{}: your server serves one client at a time, and the silent one holds up everyone \
                 behind it. Serve each client on a thread of its own (or with an event loop)",
                show(&echo),
                if stuck {
                    ", and never will: the server's only thread sleeps in recv(), on the silent client, while the \
                     second client's connection waits in the accept queue"
                } else {
                    ""
                }
            ),
        )
        .read("lessons/10-many-clients.md#threads-one-thread-per-client"));
    }
    ctx.passed("a silent client held up no one");
    drop(next);

    let rude = peer::connect(at, ECHO).map_err(peer::setup)?;
    let _ = (&rude).write_all(b"half a mess");
    let _ = rude.set_linger(Some(Duration::ZERO));
    drop(rude); // SO_LINGER 0: a reset instead of a FIN
    drop(silent);
    let after = echo_client(at, 5);
    if server.exited().is_some() || after.is_err() {
        let happened = match server.exited() {
            Some(_) => server.what_happened(),
            None => after.err().map(|f| f.happened).unwrap_or_default(),
        };
        return Err(Failure::new(
            "reset a connection in mid-message (SO_LINGER 0), then start another client",
            "the server goes on serving: one client's error ends that client's conversation, not the server",
            happened,
        )
        .read("lessons/05-recv-send.md#what-can-go-wrong"));
    }
    ctx.passed("a client that reset in mid-message stopped no one");

    if let Some(before) = fds_before {
        if !wait_until(ECHO, || open_fds(pid) == Some(before)) {
            return Err(Failure::new(
                "count the server's descriptors (/proc/PID/fd) once every client has gone",
                format!("as many as before the first client came: {before}"),
                format!(
                    "{}: it does not close every client's socket",
                    open_fds(pid).map_or("?".into(), |n| n.to_string())
                ),
            ));
        }
        ctx.passed(format!(
            "every client gone, the server holds {before} descriptors, as before"
        ));
    }
    Ok(())
}

/// Client `k`: 1 MiB out, from a thread of its own so that sending and reading overlap as they
/// must, then a FIN; the echo in, compared byte for byte; then end of file.
fn echo_client(at: SocketAddr, k: u64) -> Result<(), Failure> {
    let message = bytes(1 << 20, 100 + k);
    let conn = peer::connect(at, ECHO).map_err(peer::setup)?;
    let writer = conn.try_clone().map_err(peer::setup)?;
    let out = message.clone();
    let sending = thread::spawn(move || {
        let _ = (&writer).write_all(&out);
        let _ = writer.shutdown(Shutdown::Write);
    });
    let mut echo = Vec::new();
    let ended = peer::read_all(&conn, &mut echo, message.len() + 1);
    let _ = sending.join();
    let what = format!(
        "send {} from client {k} (one of several at once), then a FIN",
        size(message.len())
    );
    let expected = "the same bytes back, then end of file";
    if echo == message {
        return match ended {
            Ended::Eof => Ok(()),
            _ => Err(Failure::new(
                what,
                expected,
                format!(
                    "the whole echo came back, but then {} for {ECHO:?}: when recv() returns 0 the client has \
                     finished, so close its socket (a loop that goes on after 0 spins for ever)",
                    ended.describe()
                ),
            )
            .read("lessons/05-recv-send.md#the-calls-three-ways")),
        };
    }
    if echo.len() < message.len() && message.starts_with(&echo) {
        let cut = matches!(ended, Ended::Eof)
            || matches!(&ended, Ended::Error(e) if e.kind() == std::io::ErrorKind::ConnectionReset);
        if cut {
            return Err(Failure::new(
                what,
                expected,
                format!(
                    "the first {} bytes came back, then the server closed the connection: it echoed what its first \
                     recv() returned and stopped. Echo every recv() until recv() returns 0",
                    echo.len()
                ),
            )
            .read("lessons/05-recv-send.md#the-calls-three-ways"));
        }
        return Err(Failure::new(
            what,
            expected,
            format!(
                "the first {} bytes came back, then {}",
                echo.len(),
                ended.describe()
            ),
        ));
    }
    Err(Failure::new(
        what,
        expected,
        format!(
            "the echo differs from byte {} on",
            first_difference(&echo, &message)
        ),
    ))
}
