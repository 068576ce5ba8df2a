//! `--demo`: both ends of each connection, played in one thread, one call at a time. Every
//! call either returns at once or waits for something an earlier call has already set going
//! (a `recv` waits for data or a FIN that is on its way), so the story is the same on every
//! run. After each move the kernel's socket table says what the two ends' states are.

use std::io;
use std::net::Shutdown;
use std::time::Duration;

use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::observe::{self, TcpState};
use tutor::{Failure, Narrator, addr, narrate};

use crate::kernel::{self, Ends, counted, table, unread};
use crate::{BACKLOG, BUF};

/// The demo's three voices: each narrates one actor's calls, its lines starting with the
/// actor's name.
struct Voices {
    server: Narrator,
    client: Narrator,
    kernel: Narrator,
}

impl Voices {
    fn new(say: &Narrator) -> Voices {
        Voices {
            server: say.actor("server"),
            client: say.actor("client"),
            kernel: say.actor("kernel"),
        }
    }
}

/// What each part shows, in order.
const PARTS: [&str; 5] = [
    "1. shutdown(SHUT_WR): the client half-closes, and still gets its answer",
    "2. close(): the client reads end of file, and writes anyway",
    "3. close() with unread data: a reset instead of a FIN",
    "4. SO_LINGER 0: an abortive close",
    "5. TIME-WAIT: the server closes first, then restarts on the same port",
];

/// The five parts, or only `only`, on a listening socket at `address`.
pub fn run(say: &Narrator, address: &SockAddr, only: Option<u8>) -> Result<(), Failure> {
    let (listener, address) = listen(&say.actor("server"), address)?;
    for (part, title) in (1..).zip(PARTS) {
        if only.is_some_and(|only| only != part) {
            continue;
        }
        say.section(title);
        let voice = Voices::new(say);
        // Every part starts with a new connection: the client connects, the server accepts.
        let client = narrate!(
            voice.client,
            Socket::new(address.domain(), Type::STREAM, Some(Protocol::TCP))
        )?;
        narrate!(voice.client, client.connect(&address))?;
        let (conn, peer) = narrate!(voice.server, listener.accept())?;
        let ends = Ends::new(&address, &peer)?;
        match part {
            1 => half_close(&voice, client, conn, &ends)?,
            2 => close_then_write(&voice, client, conn, &ends)?,
            3 => close_with_unread_data(&voice, client, conn, &ends)?,
            4 => abortive_close(&voice, client, conn, &ends)?,
            _ => {
                return time_wait_and_restart(
                    say,
                    &voice,
                    (listener, &address),
                    client,
                    conn,
                    &ends,
                );
            }
        }
    }
    // The seed's last line, ss.close(): the listening socket goes too.
    narrate!(say.actor("server"), drop(listener));
    Ok(())
}

/// The demo's server socket: socket(), SO_REUSEADDR, bind(), listen(), as every server should
/// (part 5 shows why SO_REUSEADDR).
fn listen(server: &Narrator, address: &SockAddr) -> Result<(Socket, SockAddr), Failure> {
    let listener = narrate!(
        server,
        Socket::new(address.domain(), Type::STREAM, Some(Protocol::TCP))
    )?;
    narrate!(server, listener.set_reuse_address(true))?;
    server.note("as every server should (part 5 shows why)");
    narrate!(server, listener.bind(address))?;
    narrate!(server, listener.listen(BACKLOG))?;
    let local = narrate!(server, listener.local_addr())?;
    server.ready("listening on", &local);
    Ok((listener, local))
}

/// Part 1. The client sends its request and shuts down its sending half. The server reads to
/// end of file, which tells it the request is complete, and answers over the half still open.
fn half_close(voice: &Voices, client: Socket, conn: Socket, ends: &Ends) -> Result<(), Failure> {
    let mut buf = [0u8; BUF];
    narrate!(voice.client, client.send(b"what time is it?"))?;

    // shutdown(SHUT_WR) closes one direction only: the kernel sends a FIN after the data,
    // and the socket stays open for reading.
    narrate!(voice.client, client.shutdown(Shutdown::Write))?;
    voice
        .client
        .note("a FIN follows the data: the client will send nothing more");
    table(
        &voice.kernel,
        ends,
        Some(TcpState::CloseWait),
        Some(TcpState::FinWait2),
    );

    // The server reads until recv() returns 0: end of file, the request is complete.
    narrate!(voice.server, (&conn).read(&mut buf))?;
    if narrate!(voice.server, (&conn).read(&mut buf))? == 0 {
        voice.server.note("end of file: the client will send no more, so the request is complete; the server can still answer");
    }
    narrate!(voice.server, conn.send(b"noon"))?;
    narrate!(voice.server, drop(conn));
    voice.server.note("the server's FIN follows the answer");

    if narrate!(voice.client, (&client).read(&mut buf))? > 0 {
        voice
            .client
            .note("the half-closed client still receives: only its sending direction is closed");
    }
    if narrate!(voice.client, (&client).read(&mut buf))? == 0 {
        voice.client.note("end of file: the server has closed too");
    }
    let seen = table(&voice.kernel, ends, None, Some(TcpState::TimeWait));
    if seen == (None, Some(TcpState::TimeWait)) {
        voice.kernel.note("the client's FIN went first, so the client's end waits in TIME-WAIT (part 5); the server's end is gone");
    }
    narrate!(voice.client, drop(client));
    voice
        .client
        .note("the descriptor goes; the connection stays in TIME-WAIT without it");
    Ok(())
}

/// Part 2. The server closes. The client reads end of file, and sends anyway: nothing on the
/// server's side can read it any more, so the server's kernel answers with a reset.
fn close_then_write(
    voice: &Voices,
    client: Socket,
    conn: Socket,
    ends: &Ends,
) -> Result<(), Failure> {
    let mut buf = [0u8; BUF];

    // The seed's cs.close(): close() gives the socket up. The kernel sends a FIN and finishes
    // the connection on its own, but no program can read from it any more.
    narrate!(voice.server, drop(conn));
    voice.server.note("the server's kernel sends a FIN");
    table(
        &voice.kernel,
        ends,
        Some(TcpState::FinWait2),
        Some(TcpState::CloseWait),
    );

    if narrate!(voice.client, (&client).read(&mut buf))? == 0 {
        voice.client.note("end of file: the server sends no more; it cannot say whether the server still reads (part 1) or has closed");
    }
    narrate!(voice.client, client.send(b"are you there?"))?;
    voice
        .client
        .note("send() succeeds: the kernel took the bytes and sent them; no answer has come yet");
    if table(&voice.kernel, ends, None, None) == (None, None) {
        voice.kernel.note("the server's kernel answered the data with a reset (RST): its socket is closed, nothing can read it. Both ends are gone");
    }
    if let Err(failure) = narrate!(voice.client, client.send(b"hello?")) {
        voice.client.hint(&failure);
        if failure.io_error().map(io::Error::kind) == Some(io::ErrorKind::BrokenPipe) {
            voice.client.note("(in C this send would also raise SIGPIPE, which ends a process; Rust ignores SIGPIPE, so send just fails)");
        }
    }
    if narrate!(voice.client, (&client).read(&mut buf))? == 0 {
        voice.client.note("still end of file: the reset came after the FIN, in CLOSE-WAIT, and Linux reports that as EPIPE, not ECONNRESET");
    }
    narrate!(voice.client, drop(client));
    Ok(())
}

/// Part 3. The client sends something the server never reads, and the server closes: with
/// data still unread, the kernel sends a reset instead of a FIN.
fn close_with_unread_data(
    voice: &Voices,
    client: Socket,
    conn: Socket,
    ends: &Ends,
) -> Result<(), Failure> {
    let sent = narrate!(voice.client, client.send(b"one more thing"))?;
    unread(&voice.kernel, ends, sent);

    let before = observe::netstat_counter("TcpExt", "TCPAbortOnClose");
    narrate!(voice.server, drop(conn));
    reset_seen(
        voice,
        client,
        ends,
        "the kernel threw the unread bytes away and sent a reset (RST), not a FIN: both ends are gone, and there is no TIME-WAIT",
        (
            "TCPAbortOnClose",
            before,
            "a close that threw unread data away",
        ),
    )
}

/// Part 4. SO_LINGER with a time of 0 makes close() abort the connection on purpose.
fn abortive_close(
    voice: &Voices,
    client: Socket,
    conn: Socket,
    ends: &Ends,
) -> Result<(), Failure> {
    // SO_LINGER says what close() does with data not yet delivered: on, with a time of 0,
    // means "throw it away and reset the connection".
    narrate!(voice.server, conn.set_linger(Some(Duration::ZERO)))?;
    let before = observe::netstat_counter("TcpExt", "TCPAbortOnData");
    narrate!(voice.server, drop(conn));
    reset_seen(
        voice,
        client,
        ends,
        "with a linger time of 0, close() sent a reset (RST) and no FIN: both ends are gone at once, and there is no TIME-WAIT",
        (
            "TCPAbortOnData",
            before,
            "the kernel's name for an abort by SO_LINGER 0",
        ),
    )
}

/// How parts 3 and 4 end: the server's close sent a reset, so both ends are gone at once
/// (`gone`: why), the kernel counted the abort (`counter`: its name, its value before, and
/// what it counts), and the client's next recv() reports the reset.
fn reset_seen(
    voice: &Voices,
    client: Socket,
    ends: &Ends,
    gone: &str,
    (counter, before, meaning): (&str, Option<u64>, &str),
) -> Result<(), Failure> {
    if table(&voice.kernel, ends, None, None) == (None, None) {
        voice.kernel.note(gone);
    }
    counted(&voice.kernel, counter, before, meaning);
    let mut buf = [0u8; BUF];
    if let Err(failure) = narrate!(voice.client, (&client).read(&mut buf)) {
        voice.client.hint(&failure);
    }
    narrate!(voice.client, drop(client));
    Ok(())
}

/// Part 5. The server closes first, so TIME-WAIT lands on its port; then the server stops
/// and starts again on the same port.
fn time_wait_and_restart(
    say: &Narrator,
    voice: &Voices,
    (listener, address): (Socket, &SockAddr),
    client: Socket,
    conn: Socket,
    ends: &Ends,
) -> Result<(), Failure> {
    let mut buf = [0u8; BUF];

    // The seed's order: the server closes the client's socket, cs.close() ...
    narrate!(voice.server, drop(conn));
    voice.server.note("the server's FIN goes first");
    table(
        &voice.kernel,
        ends,
        Some(TcpState::FinWait2),
        Some(TcpState::CloseWait),
    );
    if narrate!(voice.client, (&client).read(&mut buf))? == 0 {
        voice.client.note("end of file");
    }
    narrate!(voice.client, drop(client));
    voice
        .client
        .note("the client's FIN; the server's kernel acknowledges it");
    let seen = table(&voice.kernel, ends, Some(TcpState::TimeWait), None);
    if seen == (Some(TcpState::TimeWait), None) {
        voice.kernel.note("the server's FIN went first, so the server's end waits in TIME-WAIT, 60 s on Linux; the client's end went through LAST-ACK and is gone");
    }

    // ... then its own socket, ss.close(): the server program is done.
    narrate!(voice.server, drop(listener));
    voice
        .server
        .note("the server has stopped, and its old connection is still in TIME-WAIT");

    // The server starts again on the same port. Without SO_REUSEADDR, bind() refuses.
    let restarted = say.actor("restarted");
    let listener = narrate!(
        restarted,
        Socket::new(address.domain(), Type::STREAM, Some(Protocol::TCP))
    )?;
    if let Err(failure) = narrate!(restarted, listener.bind(address)) {
        restarted.hint(&failure);
        if kernel::server_end(ends) == Some(TcpState::TimeWait) {
            voice.kernel.note(format!(
                "what holds the port is the old connection in TIME-WAIT, {} -> {}",
                ends.server, ends.client
            ));
        }
    }
    narrate!(restarted, drop(listener));

    // With SO_REUSEADDR, set before bind() as the first run did too, the port is free to
    // bind while connections on it wait in TIME-WAIT.
    let listener = narrate!(
        restarted,
        Socket::new(address.domain(), Type::STREAM, Some(Protocol::TCP))
    )?;
    narrate!(restarted, listener.set_reuse_address(true))?;
    narrate!(restarted, listener.bind(address))?;
    restarted.note("the old socket and this one both set SO_REUSEADDR, so bind() passes the connection in TIME-WAIT");
    narrate!(restarted, listener.listen(BACKLOG))?;
    restarted.note(format!("listening on {} again", addr::show(address)));

    // What SO_REUSEADDR does not allow: a second socket on a port where one listens.
    let another = say.actor("another");
    let second = narrate!(
        another,
        Socket::new(address.domain(), Type::STREAM, Some(Protocol::TCP))
    )?;
    narrate!(another, second.set_reuse_address(true))?;
    if let Err(failure) = narrate!(another, second.bind(address)) {
        another.hint(&failure);
        another.note("SO_REUSEADDR shares a port with connections in TIME-WAIT, not with a listening socket: one port, one listener (two only when both set SO_REUSEPORT: step 12)");
    }
    narrate!(another, drop(second));
    narrate!(restarted, drop(listener));
    Ok(())
}
