//! Step 7: connect, the TCP client.
//!
//! A client does not bind or listen. It creates a socket, calls `connect()` with the server's
//! address, and the kernel does the rest: it gives the socket a local address of its own (an
//! *ephemeral port*) and runs the TCP handshake. Then the client talks, `send` and `recv` in
//! a loop, and closes. These are the seed's four client steps: socket, connect, the
//! conversation, close.
//!
//! This file is the client. Its flags are in `cli.rs`; `demo.rs` runs an echo server in the
//! same process, talks to it, and then connects where nothing listens. Read it beside
//! `lessons/07-connect.md`.

mod cli;
mod demo;
mod in_progress;

use std::io::{self, BufRead};
use std::net::Shutdown;
use std::process::ExitCode;

use socket2::{Protocol, Socket};
use tutor::{Failure, Family, Narrator, SockType, Step, interrupt, narrate};

use crate::cli::Cli;
use crate::in_progress::InProgress;

const STEP: Step = Step {
    number: 7,
    crate_name: "step7_connect",
    title: "connect: the TCP client",
    lesson: "lessons/07-connect.md",
};

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    interrupt::stop_on_signals(&say);
    let result = if cli.demo {
        demo::run(&say, &cli)
    } else {
        client(&say, &cli)
    };
    tutor::finish(&say, result)
}

/// The client: socket, connect, the conversation, close.
fn client(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let address = cli.server_address(say)?;

    // 1. socket(). The seed's client writes SOCK_DGRAM here; a TCP client needs SOCK_STREAM,
    //    as the server does (--type dgram shows what the seed's socket does instead).
    let domain = address.domain();
    let ty = cli.sock_type.ty();
    let protocol = match (cli.family, cli.sock_type) {
        (Family::Unix, _) => None,
        (_, SockType::Stream) => Some(Protocol::TCP),
        (_, SockType::Dgram) => Some(Protocol::UDP),
    };
    let socket = narrate!(say, Socket::new(domain, ty, protocol))?;

    // 2. connect(): no bind() first. The kernel picks this end's address, and for a stream
    //    socket it runs the handshake; connect() returns when the server's kernel answered.
    //    With --timeout, connect_timeout bounds the wait (in_progress.rs says how).
    let tcp = cli.family != Family::Unix && cli.sock_type == SockType::Stream;
    let connected = match cli.timeout {
        None => narrate!(say, socket.connect(&address)),
        Some(limit) => narrate!(
            say,
            socket.connect_timeout(&address, limit),
            InProgress { say, limit, tcp }
        ),
    };
    if let Err(failure) = connected {
        if let (Some(_), Some(error)) = (cli.timeout, failure.io_error()) {
            InProgress::failed(say, &socket, tcp, error);
        }
        return Err(failure);
    }
    say.note(match (cli.sock_type, cli.family) {
        (SockType::Stream, Family::Unix) => {
            "connected; the server's kernel queued this connection for accept()"
        }
        (SockType::Stream, _) => {
            "connected. The handshake is done; the server's kernel queued the connection for accept()"
        }
        (SockType::Dgram, _) => {
            "but nothing was sent: a datagram socket's connect() only records the peer's address"
        }
    });

    // 3. getsockname(): the address connect() gave this end.
    let local = narrate!(say, socket.local_addr())?;
    match local.as_socket() {
        Some(inet) => say.note(format!(
            "port {} is this end's ephemeral port: the kernel chose it at connect() (sysctl net.ipv4.ip_local_port_range)",
            inet.port()
        )),
        None => say.note("a unix client has no name of its own unless it binds one"),
    }

    // 4. The conversation: each message is sent whole, then its echo is read whole.
    let mut buf = vec![0u8; cli.bufsize as usize];
    for message in messages(say, cli) {
        // send() may take fewer bytes than it was given: send the rest until all is gone.
        let mut sent = 0;
        while sent < message.len() {
            sent += narrate!(say, socket.send(&message[sent..]))?;
        }
        // recv() returns what has arrived, at most the buffer's size, so one echo may take
        // several calls. Asking for no more than is missing leaves the next echo unread.
        let mut echo = Vec::with_capacity(message.len());
        while echo.len() < message.len() {
            let want = buf.len().min(message.len() - echo.len());
            let mut buf = &mut buf[..want];
            let n = match narrate!(say, (&socket).read(&mut buf)) {
                Ok(n) => n,
                Err(failure) => {
                    if cli.sock_type == SockType::Dgram
                        && failure.io_error().map(io::Error::kind)
                            == Some(io::ErrorKind::ConnectionRefused)
                    {
                        say.note("the datagram reached no UDP socket, so the server's kernel answered with ICMP \"port unreachable\": a datagram socket cannot talk to a TCP server (the seed's SOCK_DGRAM client)");
                    }
                    return Err(failure);
                }
            };
            if n == 0 {
                say.note("end of file: the server closed the connection");
                return Err(Failure::Peer(format!(
                    "the server closed the connection after {} of {} bytes of the echo: it vanished in mid-conversation",
                    echo.len(),
                    message.len()
                )));
            }
            echo.extend_from_slice(&buf[..n]);
        }
        say.say(format!("echo: {}", printable(&echo)));
    }

    // 5. At the end of the input, shutdown(SHUT_WR): "I will send nothing more". The server
    //    reads end of file, and this end still reads what the server sends until it closes
    //    too (step 6).
    if cli.message.is_none() && cli.sock_type == SockType::Stream {
        narrate!(say, socket.shutdown(Shutdown::Write))?;
        say.note("a FIN: the server reads end of file");
        while narrate!(say, (&socket).read(&mut buf))? > 0 {}
        say.note("end of file: the server closed its end too");
    }

    // 6. close(): dropping the socket closes it.
    narrate!(say, drop(socket));
    Ok(())
}

/// The messages to send: --message, or else each line typed on standard input, newline
/// included, until end of input (Ctrl-D).
fn messages<'a>(say: &'a Narrator, cli: &Cli) -> Box<dyn Iterator<Item = Vec<u8>> + 'a> {
    if let Some(text) = &cli.message {
        return Box::new(std::iter::once(text.clone().into_bytes()));
    }
    say.say("type a line and press Enter to send it; Ctrl-D ends the input");
    let mut input = io::stdin().lock();
    Box::new(std::iter::from_fn(move || {
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => {
                say.say("end of input");
                None
            }
            Ok(_) => Some(line.into_bytes()),
        }
    }))
}

/// What came back, as text for the terminal: invalid UTF-8 shown lossily, the last newline
/// dropped.
fn printable(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    text.strip_suffix('\n').unwrap_or(&text).to_owned()
}
