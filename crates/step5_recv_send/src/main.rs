//! Step 5: recv and send, an echo server.
//!
//! The seed's whole server: socket, bind, listen, then for each client accept, and recv and
//! send until the client has nothing more to say, then close. What the step shows is what
//! the two calls really promise: `recv(bufsize)` waits for bytes and returns at most bufsize
//! of them, leaving the rest in the kernel for the next call; TCP keeps no message
//! boundaries, so two sends can arrive as one recv and one send as several; `recv` returning
//! 0 means the peer closed; and `send` returns how many bytes the kernel took, which a
//! program that must send everything checks, and loops on.
//!
//! This file is the server; `demo.rs` is `--demo`'s client, `moments.rs` the points where it
//! takes turns with the server. Read it beside `lessons/05-recv-send.md`.

mod cli;
mod conversation;
mod demo;
mod moments;

use std::process::ExitCode;

use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::narrate::Budget;
use tutor::turns::Turns;
use tutor::{Failure, Family, Narrator, Step, addr, interrupt, narrate};

use cli::Cli;
use conversation::Conversation;
use moments::Moment;

const STEP: Step = Step {
    number: 5,
    crate_name: "step5_recv_send",
    title: "recv and send: an echo server",
    lesson: "lessons/05-recv-send.md",
};

/// recv()'s buffer without --bufsize, and with --demo (small, so the chunks show).
const BUFSIZE: u32 = 1024;
const DEMO_BUFSIZE: u32 = 8;

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    interrupt::stop_on_signals(&say);
    let result = serve(&say, &cli);
    tutor::finish(&say, result)
}

/// The seed's server: socket, bind, listen; then accept a client, recv and send until it
/// closes, close; and again.
fn serve(story: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let say = &if cli.demo {
        story.actor("server")
    } else {
        story.clone()
    };
    let bufsize = cli
        .bufsize
        .unwrap_or(if cli.demo { DEMO_BUFSIZE } else { BUFSIZE }) as usize;
    let address = cli.address.resolve(say)?;
    let backlog = cli.backlog as i32;

    // ss = socket(AF_INET, SOCK_STREAM); ss.bind(...); ss.listen(...)
    let domain = address.domain();
    let protocol = (cli.address.family != Family::Unix).then_some(Protocol::TCP);
    let listener = narrate!(say, Socket::new(domain, Type::STREAM, protocol))?;
    // interrupt::owning records the socket file bind() creates, so that only that very file
    // is removed at the end (lesson 2).
    narrate!(say, listener.bind(&address), interrupt::owning(&address))?;
    narrate!(say, listener.listen(backlog))?;
    let local = narrate!(say, listener.local_addr())?;
    say.ready("listening on", &local);

    let (turns, client) = if cli.demo {
        let (turns, client) = demo::start(story, &local);
        (turns, Some(client))
    } else {
        say.say(format!(
            "talk to it from another terminal: {}",
            try_it(&local)
        ));
        (Turns::none(), None)
    };
    let max_clients = cli.max_clients.or(cli.demo.then_some(1));

    let mut served = 0;
    // inf_loop: the server's endless loop.
    while max_clients.is_none_or(|max| served < max) {
        let client = served + 1;
        say.say(format!("waiting in accept() for client {client}"));
        let moment = Moment::Accepting { accepted: served };
        let (conn, _peer) = narrate!(say, listener.accept(), turns.at(moment))?;
        served += 1;
        say.note(format!(
            "client {client} connected: echo what it sends, until it closes"
        ));
        let calls = Budget::new(
            cli.show_calls,
            "recv() and send() calls of this client",
            "--show-calls",
        );
        echo(say, conn, client, bufsize, calls, &turns);
    }

    // ss.close()
    say.say(format!("served {served} client(s): --max-clients reached"));
    narrate!(say, drop(listener));
    interrupt::remove_socket_file(say, &local);
    if let Some(handle) = client {
        handle
            .join()
            .map_err(|_| Failure::Peer("the demo's client failed".into()))??;
    }
    Ok(())
}

/// comm_loop: recv from one client and send every byte back, until it closes; then close its
/// socket (cs.close()). The first receives are narrated, as many as `calls` allows, the rest
/// only counted. An error ends this client's conversation, not the server.
fn echo(
    server: &Narrator,
    conn: Socket,
    client: u32,
    bufsize: usize,
    mut calls: Budget,
    turns: &Turns<Moment>,
) {
    // One buffer for every recv of this client: recv(bufsize) in the seed's Python.
    let mut buf = vec![0u8; bufsize];
    let mut conversation = Conversation::default();
    let ended = 'conversation: loop {
        let say = calls.next(server);
        let moment = Moment::Receiving {
            client,
            echoed: conversation.echoed,
        };
        let n = match narrate!(say, (&conn).read(&mut buf), turns.at(moment)) {
            Ok(0) => break None,
            Ok(n) => n,
            Err(failure) => break Some(failure),
        };
        conversation.received(n);
        if n == buf.len() && say.is_loud() {
            say.note("the buffer is full: whatever else has arrived waits in the kernel for the next recv()");
        }

        // send() may take fewer bytes than it is given: send the rest until none is left
        // (Python's sendall, Rust's write_all).
        let mut sent = 0;
        while sent < n {
            let taken = match narrate!(say, conn.send(&buf[sent..n])) {
                Ok(taken) => taken,
                Err(failure) => break 'conversation Some(failure),
            };
            conversation.sent(taken, n - sent);
            if taken < n - sent && say.is_loud() {
                say.note(format!(
                    "a short send: the kernel took {taken} of {} bytes; the loop sends the rest",
                    n - sent
                ));
            }
            sent += taken;
        }
        conversation.record_echo(&buf[..n]);
    };
    conversation.summarise(server, client, bufsize, ended.as_ref());
    // cs.close()
    narrate!(server, drop(conn));
}

/// What to type in another terminal to talk to the server.
fn try_it(local: &SockAddr) -> String {
    match local.as_socket() {
        Some(inet) => format!(
            "nc -N {ip} {port}   or   python3 scripts/seed_client.py {ip} {port} hello",
            ip = inet.ip(),
            port = inet.port()
        ),
        None => format!("nc -NU {}", addr::show(local)),
    }
}
