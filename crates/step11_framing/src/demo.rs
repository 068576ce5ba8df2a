//! `--demo`: one thread plays the server and its client in turn, so the story is told in the
//! same order on every run. Its sockets are real; each part has a connection of its own:
//! lines, lengths, sending everything, and (in [`crate::nagle`]) two small writes measured.

use std::thread;
use std::time::{Duration, Instant};

use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::narrate::Budget;
use tutor::{Failure, Narrator, narrate, observe};

use crate::Cli;
use crate::frame::{self, Framing, Next, Reader};

/// The demo's maximum message: small, so that a long line shows it.
pub const MAX: usize = 16;

/// The whole story.
pub fn run(
    story: &Narrator,
    listener: &Socket,
    local: &SockAddr,
    cli: &Cli,
) -> Result<(), Failure> {
    let server_says = story.actor("server");
    let client_says = story.actor("client");
    let bufsize = cli.bufsize.unwrap_or(8) as usize;
    let show = cli.show_calls.unwrap_or(1);
    let both = (&server_says, &client_says);

    story.section("lines: a newline ends each message");
    lines(both, listener, local, bufsize)?;
    story.section("a length prefix: 4 bytes of length, then the message");
    lengths(both, listener, local, bufsize)?;
    story.section("sending everything: send() may take fewer bytes than it is given");
    send_everything(both, listener, local, show)?;
    crate::nagle::measure(story, both, listener, local, cli.rounds, show)
}

/// The narrators of the server and of the client.
pub type Both<'a> = (&'a Narrator, &'a Narrator);

/// The client connects, the server accepts: the two ends of one connection.
pub fn connect(
    (server_says, client_says): Both,
    listener: &Socket,
    local: &SockAddr,
) -> Result<(Socket, Socket), Failure> {
    let protocol = local.as_socket().map(|_| Protocol::TCP);
    let client = narrate!(
        client_says,
        Socket::new(local.domain(), Type::STREAM, protocol)
    )?;
    narrate!(client_says, client.connect(local))?;
    let (conn, _peer) = narrate!(server_says, listener.accept())?;
    Ok((client, conn))
}

/// A client's messages in two sends cut across the lines; the server's reader finds the
/// lines in its recv()s; then a line longer than the maximum, which is refused.
fn lines(both: Both, listener: &Socket, local: &SockAddr, bufsize: usize) -> Result<(), Failure> {
    let (server_says, client_says) = both;
    let (client, conn) = connect(both, listener, local)?;
    narrate!(client_says, client.send(b"hello\nwor"))?;
    narrate!(client_says, client.send(b"ld\n"))?;
    wait_until_queued(local, 12);
    let mut reader = Reader::new(Framing::Lines, bufsize, MAX, u64::MAX);
    for _ in 0..2 {
        tell(server_says, reader.next(server_says, &conn)?, reader.held());
    }
    client_says.say("a line with no end in sight:");
    narrate!(
        client_says,
        client.send(b"this line goes on and on and never ends")
    )?;
    wait_until_queued(local, 39);
    tell(server_says, reader.next(server_says, &conn)?, reader.held());
    narrate!(server_says, drop(conn));
    narrate!(client_says, drop(client));
    Ok(())
}

/// Two length-prefixed messages in one send, read back; then a header announcing 4 GiB.
fn lengths(both: Both, listener: &Socket, local: &SockAddr, bufsize: usize) -> Result<(), Failure> {
    let (server_says, client_says) = both;
    let (client, conn) = connect(both, listener, local)?;
    let two = [
        frame::encode(Framing::Length, b"hello"),
        frame::encode(Framing::Length, b"world!"),
    ]
    .concat();
    frame::send_all(client_says, &client, &two)?;
    wait_until_queued(local, two.len());
    let mut reader = Reader::new(Framing::Length, bufsize, MAX, u64::MAX);
    for _ in 0..2 {
        tell(server_says, reader.next(server_says, &conn)?, reader.held());
    }
    client_says.say("a header that asks for 4 GiB:");
    let huge = u32::MAX.to_be_bytes();
    narrate!(client_says, client.send(&huge))?;
    wait_until_queued(local, 4);
    tell(server_says, reader.next(server_says, &conn)?, reader.held());
    server_says.note(
        "nothing was allocated for it: the length was checked first (vec![0; len] would have asked for 4 GiB on the peer's word)",
    );
    narrate!(server_says, drop(conn));
    narrate!(client_says, drop(client));
    Ok(())
}

/// Narrates what the reader found.
fn tell(say: &Narrator, next: Next, held: usize) {
    match next {
        Next::Message(message) => say.say(format!(
            "a whole message: {} ({} bytes); {held} bytes after it are kept for the next",
            tutor::strace::bytes(&message),
            message.len()
        )),
        Next::TooLong(why) => say.say(format!("refused: {why}; the server closes the connection")),
        Next::Closed => say.say("the peer closed between two messages"),
        Next::Cut(n) => say.say(format!("the peer closed {n} bytes into a message")),
    }
}

/// 4 MiB to a server that reads nothing yet, with a send timeout: send() returns early with
/// part of it. Then the loop on send()'s count sends the rest while the server reads.
fn send_everything(
    (server_says, client_says): Both,
    listener: &Socket,
    local: &SockAddr,
    show: u64,
) -> Result<(), Failure> {
    let (client, conn) = connect((server_says, client_says), listener, local)?;
    let timeout = Some(Duration::from_millis(100));
    narrate!(client_says, client.set_write_timeout(timeout))?;
    let data = vec![b'x'; 4 << 20];
    let mut sent = narrate!(client_says, client.send(&data))?;
    if sent < data.len() {
        client_says.note(format!(
            "a short send: the kernel took {sent} of {} bytes; the server reads nothing yet, so the buffers filled, and SO_SNDTIMEO ran out",
            data.len()
        ));
    }
    client_says.say("the rest, in a loop on send()'s count, the server reading in between:");
    client_says.note(
        "(one thread plays both sides here, so the client must not wait for room only the server can make: MSG_DONTWAIT takes what fits now)",
    );
    let mut buf = vec![0u8; 4 << 20];
    let dontwait = libc::MSG_DONTWAIT;
    let (mut received, mut sends, mut recvs) = (0, 1, 0);
    let mut budget = Budget::new(show, "turns of the loop", "--show-calls");
    while sent < data.len() {
        let client_says = budget.next(client_says);
        let server_says = quiet_as(server_says, &client_says);
        received += narrate!(server_says, (&conn).read(&mut buf))?;
        recvs += 1;
        sent += match narrate!(client_says, client.send_with_flags(&data[sent..], dontwait)) {
            Ok(taken) => taken,
            Err(failure) if failure.would_block() => 0, // no room at all yet: again
            Err(failure) => return Err(failure),
        };
        sends += 1;
    }
    while received < data.len() {
        let server_says = budget.next(server_says);
        match narrate!(server_says, (&conn).read(&mut buf))? {
            0 => break,
            n => (received, recvs) = (received + n, recvs + 1),
        }
    }
    client_says.say(format!(
        "{sent} bytes sent in {sends} send() calls; the server received {received} bytes in {recvs} recv() calls"
    ));
    if received != data.len() {
        return Err(Failure::Peer(format!(
            "{received} of {} bytes arrived",
            data.len()
        )));
    }
    narrate!(server_says, drop(conn));
    narrate!(client_says, drop(client));
    Ok(())
}

/// `say`, made quiet when `like` is.
pub fn quiet_as(say: &Narrator, like: &Narrator) -> Narrator {
    if like.is_loud() {
        say.clone()
    } else {
        say.quiet()
    }
}

/// Waits (at most two seconds) until `bytes` bytes wait unread at the server's end of a TCP
/// connection to `local` (Recv-Q in `ss -tan`): on loopback they are there almost at once,
/// and waiting makes the story the same on every run. A unix socket delivers within send().
pub fn wait_until_queued(local: &SockAddr, bytes: usize) {
    let Some(server) = local.as_socket() else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let queued = observe::tcp_sockets_on_port(server.port())
            .unwrap_or_default()
            .into_iter()
            .any(|e| e.local.port() == server.port() && e.rx_queue as usize == bytes);
        if queued {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
}
