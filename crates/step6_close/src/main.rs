//! Step 6: close.
//!
//! A TCP connection carries data both ways, and each end closes its own direction: it sends
//! a FIN, "I will send nothing more". `shutdown(SHUT_WR)` sends the FIN and keeps the socket,
//! so the peer can still answer; `close()` sends the FIN and gives the socket up, so whatever
//! the peer sends after that is answered with a reset (RST). A close that throws away unread
//! data, or one with SO_LINGER 0, sends only the reset. And the end whose FIN went first keeps
//! the connection in TIME-WAIT for a minute, which is why a restarted server needs
//! SO_REUSEADDR.
//!
//! This file is the server (`--how`); `demo.rs` plays both ends of five connections, and
//! `kernel.rs` reads the kernel's socket table for them. Read it beside `lessons/06-close.md`.

mod demo;
mod kernel;

use std::net::Shutdown;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use socket2::{Protocol, Socket, Type};
use tutor::cli::ServerAddress;
use tutor::{ColorWhen, Failure, Family, Narrator, Step, interrupt, narrate};

const STEP: Step = Step {
    number: 6,
    crate_name: "step6_close",
    title: "close: end a connection",
    lesson: "lessons/06-close.md",
};

/// The backlog for listen(): this step is not about the accept queue (step 3 is).
const BACKLOG: i32 = 8;

/// The most bytes one recv() may return.
const BUF: usize = 1024;

/// How the server ends a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum How {
    /// close(): a FIN; once the client closes too, the server's end waits in TIME-WAIT
    Close,
    /// shutdown(SHUT_WR): a FIN, but the server keeps reading until the client closes
    Shutdown,
    /// SO_LINGER 0, then close(): an abortive close, a reset (RST) and no TIME-WAIT
    Linger0,
}

/// Step 6 of the socket course: end a connection: close, shutdown, a reset, TIME-WAIT.
///
/// A server that reads one message from each client, echoes it, and ends the connection the
/// way --how says: close (a FIN), shutdown (a half-close: the client can still send), or
/// linger0 (an abortive close: a reset). Watch the connections with `ss -tan`. With --demo
/// it plays both ends in one process and shows, part by part, what each end sees and what
/// the kernel's socket table says.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/06-close.md")]
struct Cli {
    #[command(flatten)]
    address: ServerAddress,

    /// How the server ends each connection
    #[arg(long, value_enum, default_value_t = How::Close)]
    how: How,

    /// Set SO_REUSEADDR before bind(), so that a restarted server can bind its port while its old connections wait in TIME-WAIT
    #[arg(long)]
    reuse_address: bool,

    /// Stop after serving this many clients [default: serve until Ctrl-C]
    #[arg(long, value_parser = tutor::cli::count::<u32>)]
    max_clients: Option<u32>,

    /// Play both ends in-process: five ways a connection ends, then exit
    #[arg(long, conflicts_with_all = ["how", "reuse_address", "max_clients", "port", "path"])]
    demo: bool,

    /// With --demo, only this part: 1 shutdown, 2 close, 3 unread data, 4 SO_LINGER 0, 5 TIME-WAIT
    #[arg(long, requires = "demo", value_parser = clap::value_parser!(u8).range(1..=5))]
    part: Option<u8>,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    color: ColorWhen,
}

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    interrupt::stop_on_signals(&say);
    let result = if cli.address.family == Family::Unix {
        Err(Failure::Usage(
            "--family unix: this step is about how TCP ends a connection (FIN, RST, TIME-WAIT), which unix sockets do not have; use ipv4 or ipv6".into(),
        ))
    } else if cli.demo {
        cli.address
            .resolve(&say.actor("server"))
            .and_then(|address| demo::run(&say, &address, cli.part))
    } else {
        serve(&say, &cli)
    };
    tutor::finish(&say, result)
}

/// Without --demo: a server that reads one message from each client, echoes it, and ends
/// the connection the way --how says.
fn serve(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let address = cli.address.resolve(say)?;
    let listener = narrate!(
        say,
        Socket::new(address.domain(), Type::STREAM, Some(Protocol::TCP))
    )?;
    if cli.reuse_address {
        narrate!(say, listener.set_reuse_address(true))?;
    }
    if let Err(failure) = narrate!(say, listener.bind(&address)) {
        kernel::why_the_port_is_taken(say, &address, cli.reuse_address);
        return Err(failure);
    }
    narrate!(say, listener.listen(BACKLOG))?;
    let local = narrate!(say, listener.local_addr())?;
    say.ready("listening on", &local);
    if let Some(inet) = local.as_socket() {
        let (ip, port) = (inet.ip(), inet.port());
        say.say(format!(
            "try from another terminal:\n  bash -c 'exec 3<>/dev/tcp/{ip}/{port}; echo hello >&3; cat <&3'\n  ss -tan '( sport = :{port} or dport = :{port} )'"
        ));
    }

    let mut served = 0;
    while cli.max_clients.is_none_or(|max| served < max) {
        let (conn, _peer) = narrate!(say, listener.accept())?;
        served += 1;
        say.note(format!("client {served}"));
        end_connection(say, conn, cli.how);
    }
    narrate!(say, drop(listener));
    Ok(())
}

/// One client: read a message, echo it, end the connection. A client that misbehaves (a
/// reset, say) is narrated, and the server goes on to the next.
fn end_connection(say: &Narrator, conn: Socket, how: How) {
    let mut buf = [0u8; BUF];
    match narrate!(say, (&conn).read(&mut buf)) {
        Ok(0) => say.note("end of file: the client closed without sending anything"),
        Ok(n) => {
            if let Err(failure) = narrate!(say, conn.send(&buf[..n])) {
                say.hint(&failure);
            }
        }
        Err(failure) => say.hint(&failure),
    }
    match how {
        How::Close => {
            narrate!(say, drop(conn));
            say.note("a FIN. Once the client closes too, this end waits in TIME-WAIT for 60 s");
        }
        How::Shutdown => {
            match narrate!(say, conn.shutdown(Shutdown::Write)) {
                Ok(()) => {
                    say.note("a FIN: the client reads end of file, and may still send");
                    // Read what the client still sends, until it closes its end too.
                    loop {
                        match narrate!(say, (&conn).read(&mut buf)) {
                            Ok(0) => {
                                say.note("end of file: the client has closed its end too");
                                break;
                            }
                            Ok(_) => {}
                            Err(failure) => {
                                say.hint(&failure);
                                break;
                            }
                        }
                    }
                }
                Err(failure) => say.hint(&failure),
            }
            narrate!(say, drop(conn));
        }
        How::Linger0 => {
            if let Err(failure) = narrate!(say, conn.set_linger(Some(Duration::ZERO))) {
                say.hint(&failure);
            }
            narrate!(say, drop(conn));
            say.note("a reset (RST), no FIN, no TIME-WAIT");
        }
    }
}
