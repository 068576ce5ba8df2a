//! Step 10: many clients at once.
//!
//! The seed's server is one loop: accept a client, talk to it until it leaves, accept the
//! next. While one client is connected, every other client waits. This program serves the
//! echo protocol of step 5 three ways, one module each:
//!
//! - [`serial`]: the seed's loop, unchanged in spirit.
//! - [`threads`]: one thread per client (std::thread).
//! - [`poll`]: one thread, non-blocking sockets, and a readiness loop: epoll, through the
//!   `mio` crate that Tokio is built on.
//!
//! [`demo`] runs two clients in-process against each. Read it beside
//! `lessons/10-many-clients.md`.

mod clients;
mod demo;
mod epoll;
mod moments;
mod poll;
mod serial;
mod served;
mod shortage;
mod threads;

use std::fmt;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::cli::ServerAddress;
use tutor::narrate::Budget;
use tutor::{ColorWhen, Failure, Family, Narrator, Step, interrupt, narrate};

use moments::ServerTurns;
use served::{Served, milestone, summarise};

const STEP: Step = Step {
    number: 10,
    crate_name: "step10_many_clients",
    title: "many clients at once",
    lesson: "lessons/10-many-clients.md",
};

/// Step 10 of the socket course: many clients at once.
///
/// An echo server (step 5's protocol: every byte comes back as it was sent, until the client
/// closes) in three models: serial (the seed's loop: one client at a time), threads (one
/// thread per client) and poll (one thread, non-blocking sockets, epoll through mio).
/// --demo shows each with two clients: the second one waits for the first under serial,
/// and does not under threads and poll. Measure them with scripts/bench.sh.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/10-many-clients.md")]
struct Cli {
    #[command(flatten)]
    address: ServerAddress,

    /// How the server serves many clients [default: serial; --demo alone shows all three]
    #[arg(long, value_enum)]
    model: Option<Model>,

    /// The backlog passed to listen()
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(0..=65535))]
    backlog: u32,

    /// Stop after serving this many clients [default: serve until Ctrl-C]
    #[arg(long, value_parser = tutor::cli::count::<u64>)]
    max_clients: Option<u64>,

    /// The most bytes one recv() may return (the size of the receive buffer)
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    bufsize: u32,

    /// Narrate every call of the first N clients; serve the rest silently
    #[arg(long, value_name = "N", default_value_t = 3)]
    narrate: u64,

    /// Run two clients in-process against each model and show what happens
    #[arg(long, conflicts_with_all = ["max_clients", "narrate"])]
    demo: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    color: ColorWhen,
}

/// `--model`: how one server serves many clients.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Model {
    /// The seed's loop: accept one client, serve it until it leaves, then the next
    Serial,
    /// One thread per client: each blocks in its own recv()
    Threads,
    /// One thread, non-blocking sockets, epoll (through mio) says which socket is ready
    Poll,
}

/// How a model runs: the same for all three.
struct Settings {
    bufsize: usize,
    max_clients: Option<u64>,
    /// Clients numbered up to this are narrated call by call (`--narrate`).
    narrate: u64,
    turns: ServerTurns,
}

impl Settings {
    /// The narration budget: the first `--narrate` clients in full, the rest quietly.
    fn budget(&self) -> Budget {
        Budget::new(self.narrate, "clients", "--narrate")
    }
}

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    interrupt::stop_on_signals(&say);
    let result = if cli.demo {
        demo::run(&say, cli.model, &cli.address, cli.bufsize as usize)
    } else {
        serve(&say, &cli)
    };
    tutor::finish(&say, result)
}

/// The server, as a learner runs it: listen, then serve with the chosen model.
fn serve(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let model = cli.model.unwrap_or(Model::Serial);
    let address = cli.address.resolve(say)?;
    let (listener, local) = listen(say, cli.address.family, &address, cli.backlog as i32)?;
    let settings = Settings {
        bufsize: cli.bufsize as usize,
        max_clients: cli.max_clients,
        narrate: cli.narrate,
        turns: ServerTurns::default(),
    };
    if settings.max_clients.is_none_or(|max| max > cli.narrate) {
        say.note(format!(
            "clients after the first {} are served without narration (--narrate {}); a line marks every 10th, 100th, 1000th, ...",
            cli.narrate, cli.narrate
        ));
    }
    let served = run_model(model, say, listener, &settings);
    interrupt::remove_socket_file(say, &local);
    summarise(say, model, &served?);
    Ok(())
}

fn run_model(
    model: Model,
    say: &Narrator,
    listener: Socket,
    settings: &Settings,
) -> Result<Served, Failure> {
    match model {
        Model::Serial => serial::serve(say, listener, settings),
        Model::Threads => threads::serve(say, listener, settings),
        Model::Poll => poll::serve(say, listener, settings),
    }
}

/// socket(), bind(), listen() and getsockname(), as steps 1 to 4 made them.
fn listen(
    say: &Narrator,
    family: Family,
    address: &SockAddr,
    backlog: i32,
) -> Result<(Socket, SockAddr), Failure> {
    let domain = family.domain();
    let protocol = match family {
        Family::Unix => None,
        _ => Some(Protocol::TCP),
    };
    let listener = narrate!(say, Socket::new(domain, Type::STREAM, protocol))?;
    // interrupt::owning records the file bind() creates, so that a signal removes that file
    // and nothing else (lesson 2).
    narrate!(say, listener.bind(address), interrupt::owning(address))?;
    if let Err(failure) = narrate!(say, listener.listen(backlog)) {
        interrupt::remove_socket_file(say, address);
        return Err(failure);
    }
    let local = narrate!(say, listener.local_addr())?;
    say.ready("listening on", &local);
    Ok((listener, local))
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Model::Serial => "serial",
            Model::Threads => "threads",
            Model::Poll => "poll",
        })
    }
}
