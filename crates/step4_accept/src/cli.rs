//! The server's flags.

use clap::Parser;
use tutor::ColorWhen;
use tutor::cli::ServerAddress;

/// Step 4 of the socket course: accept a client, and get a new socket for it.
///
/// Listens, then loops on accept(): each call waits until a client has connected and returns
/// a new socket for that client, beside the listening one. The server shows both sockets and
/// both addresses, greets the client with one line, and closes its socket (the conversation
/// is step 5). Connect from another terminal with `nc 127.0.0.1 PORT`. With --demo it starts
/// its own clients in-process.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/04-accept.md")]
pub struct Cli {
    #[command(flatten)]
    pub address: ServerAddress,

    /// The backlog passed to listen() (step 3)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=65535))]
    pub backlog: u32,

    /// Stop after accepting this many clients [default: accept until Ctrl-C; 2 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_clients: Option<u32>,

    /// Start clients in-process (2, or --max-clients), accept each, then exit
    #[arg(long)]
    pub demo: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorWhen,
}
