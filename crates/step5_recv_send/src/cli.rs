//! The server's flags.

use clap::Parser;
use tutor::ColorWhen;
use tutor::cli::ServerAddress;

/// Step 5 of the socket course: recv and send: an echo server.
///
/// Accepts clients one at a time and sends back every byte each one sends, until it closes.
/// Every recv() and send() is narrated (the first --show-calls of each client; after that a
/// summary when the client leaves). --bufsize sets how many bytes one recv() may return: make
/// it small to watch a message arrive in pieces. Try it with `nc -N 127.0.0.1 PORT` or
/// `python3 scripts/seed_client.py 127.0.0.1 PORT hello`. With --demo a client in the same
/// process sends two messages and reads the echo.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/05-recv-send.md")]
pub struct Cli {
    #[command(flatten)]
    pub address: ServerAddress,

    /// The backlog passed to listen() (step 3)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=65535))]
    pub backlog: u32,

    /// Stop after serving this many clients [default: serve until Ctrl-C; 1 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_clients: Option<u32>,

    /// The most bytes one recv() may return, 1 to 1048576 [default: 1024; 8 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub bufsize: Option<u32>,

    /// Narrate the first N recv() calls of each client (and their sends), then only count
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub show_calls: u64,

    /// A client in-process sends two messages, reads the echo and closes; then exit
    #[arg(long)]
    pub demo: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorWhen,
}
