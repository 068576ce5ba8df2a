//! Step 11: messages over a stream.
//!
//! TCP carries bytes, not messages (step 5 showed two sends arrive as one recv). This step
//! builds messages on top: a server that reads them framed by a newline or by a 4-byte length,
//! refuses one larger than its maximum, and answers each with the same message framed the
//! same way, sent whole with a loop on send()'s count. `--demo` tells the rest: a short send,
//! and what two small writes followed by a read cost when Nagle's algorithm meets delayed
//! ACKs, measured.
//!
//! Read it beside `lessons/11-framing.md`.

mod demo;
mod frame;
mod nagle;

use std::process::ExitCode;

use clap::Parser;
use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::cli::ServerAddress;
use tutor::{ColorWhen, Failure, Narrator, Step, addr, explain, interrupt, narrate};

use frame::{Framing, Next, Reader};

const STEP: Step = Step {
    number: 11,
    crate_name: "step11_framing",
    title: "messages over a stream",
    lesson: "lessons/11-framing.md",
};

/// Step 11 of the socket course: messages over a stream.
///
/// A server that reads messages, each ended by a newline (--framing lines) or announced by a
/// 4-byte big-endian length (--framing length), refuses any longer than --max-message, and
/// sends each back framed the same way. Try it with `nc -N 127.0.0.1 PORT`. With --demo it
/// runs its own client: lines and lengths cut across recv()s, a line that never ends, a length
/// of 4 GiB, a short send(), and the cost of two small writes then a read (Nagle's algorithm
/// and delayed ACKs), measured five ways: as is, in one write, with MSG_MORE, with TCP_CORK and
/// with TCP_NODELAY.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/11-framing.md")]
pub struct Cli {
    #[command(flatten)]
    address: ServerAddress,

    /// How a message ends: a newline, or a length before it
    #[arg(long, value_enum, default_value_t = Framing::Lines)]
    framing: Framing,

    /// The largest message accepted, in bytes; a client that sends a longer one is closed [default: 65536; the demo uses 16]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16_777_216), conflicts_with = "demo")]
    max_message: Option<u32>,

    /// The most bytes one recv() may return [default: 1024; 8 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    bufsize: Option<u32>,

    /// The backlog passed to listen() (step 3)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=65535))]
    backlog: u32,

    /// Stop after serving this many clients [default: serve until Ctrl-C]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_clients: Option<u32>,

    /// Narrate the first N calls of each loop (a client's recv() calls; the demo's send loop
    /// and each measurement's rounds), then only count [default: 8; 1 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    show_calls: Option<u64>,

    /// Rounds of each --demo measurement of two small writes then a read, 1 to 200
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    rounds: u32,

    /// Run a client in-process and tell the whole story (see above); then exit
    #[arg(long, conflicts_with = "max_clients")]
    demo: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    color: ColorWhen,
}

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    interrupt::stop_on_signals(&say);
    let result = run(&say, &cli);
    tutor::finish(&say, result)
}

fn run(story: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let say = &if cli.demo {
        story.actor("server")
    } else {
        story.clone()
    };
    let address = cli.address.resolve(say)?;
    let (listener, local) = listen(say, &address, cli.backlog as i32)?;
    let result = if cli.demo {
        demo::run(story, &listener, &local, cli)
    } else {
        serve(say, &listener, &local, cli)
    };
    narrate!(say, drop(listener));
    interrupt::remove_socket_file(say, &local);
    result
}

/// socket, bind, listen (steps 1 to 3), and the address the kernel gave.
fn listen(say: &Narrator, address: &SockAddr, backlog: i32) -> Result<(Socket, SockAddr), Failure> {
    let domain = address.domain();
    let protocol = address.as_socket().map(|_| Protocol::TCP);
    let listener = narrate!(say, Socket::new(domain, Type::STREAM, protocol))?;
    // bind, recording the socket file it makes (a unix socket's) so that the end of the
    // program removes that file and nothing else.
    narrate!(say, listener.bind(address), interrupt::owning(address))?;
    narrate!(say, listener.listen(backlog))?;
    let local = narrate!(say, listener.local_addr())?;
    say.ready("listening on", &local);
    Ok((listener, local))
}

/// Accepts clients one at a time and converses with each until it leaves.
fn serve(say: &Narrator, listener: &Socket, local: &SockAddr, cli: &Cli) -> Result<(), Failure> {
    say.say(format!(
        "talk to it from another terminal: {}",
        try_it(local)
    ));
    let mut served = 0;
    while cli.max_clients.is_none_or(|max| served < max) {
        say.say(format!("waiting in accept() for client {}", served + 1));
        let (conn, _peer) = narrate!(say, listener.accept())?;
        served += 1;
        converse(say, &conn, served, cli);
        narrate!(say, drop(conn));
    }
    say.say(format!("served {served} client(s): --max-clients reached"));
    Ok(())
}

/// Reads one client's messages and sends each back framed the same way, until it leaves or
/// breaks the rules. Whatever this client does ends only its own conversation.
fn converse(say: &Narrator, conn: &Socket, client: u32, cli: &Cli) {
    let max = cli.max_message.unwrap_or(65_536) as usize;
    let bufsize = cli.bufsize.unwrap_or(1024) as usize;
    let mut reader = Reader::new(cli.framing, bufsize, max, cli.show_calls.unwrap_or(8));
    let mut messages = 0u64;
    let ended = loop {
        let message = match reader.next(say, conn) {
            Ok(Next::Message(message)) => message,
            Ok(Next::Closed) => break "closed its side between two messages: a clean end".into(),
            Ok(Next::Cut(n)) => {
                break format!("closed in the middle of a message, {n} bytes into it");
            }
            Ok(Next::TooLong(why)) => break format!("was refused: {why}; the server closes it"),
            Err(failure) => break gone(&failure),
        };
        messages += 1;
        let say = if reader.quiet() {
            say.quiet()
        } else {
            say.clone()
        };
        if say.is_loud() {
            say.note(format!("message {messages}: {} bytes", message.len()));
        }
        let reply = frame::encode(cli.framing, &message);
        if let Err(failure) = frame::send_all(&say, conn, &reply) {
            break gone(&failure);
        }
    };
    say.say(format!(
        "client {client}: {messages} message(s) answered; it {ended}"
    ));
}

/// What a failed call says about the client: it is gone (ECONNRESET, EPIPE, ...).
fn gone(failure: &Failure) -> String {
    match failure.io_error() {
        Some(error) => format!("is gone ({})", explain::error_name(error)),
        None => "is gone".into(),
    }
}

/// What to type in another terminal to talk to the server.
fn try_it(local: &SockAddr) -> String {
    match local.as_socket() {
        Some(inet) => format!("nc -N {} {}", inet.ip(), inet.port()),
        None => format!("nc -NU {}", addr::show(local)),
    }
}
