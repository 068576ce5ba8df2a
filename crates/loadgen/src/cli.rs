//! The command line.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

/// A load generator for echo servers: many connections, every byte checked.
///
/// Opens --connections connections to ADDRESS; on each, sends --size bytes, waits for all of
/// them to come back, compares every byte with what it sent, and repeats --round-trips
/// times; then it shuts down its sending side and reads until the server closes. Prints a
/// progress line while it runs and a summary at the end: round trips per second, latency
/// p50/p99, errors, and the server's memory (with --server-pid). Exits 1 if any byte came
/// back wrong, the server sent more than it was sent, any connection failed, or the time
/// limit passed.
///
/// With --bulk SECONDS it streams instead, on one connection, and reports MB/s.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/10-many-clients.md")]
pub struct Cli {
    /// The echo server's address, as its `ready: listening on` line prints it
    pub address: SocketAddr,

    /// How many connections to open at once
    #[arg(short, long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: u32,

    /// How many round trips each connection makes
    #[arg(short, long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub round_trips: u32,

    /// Bytes per message (in --bulk mode: bytes per write)
    #[arg(short, long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub size: u32,

    /// Keep every connection open until all are done (so the server holds all at once)
    #[arg(long)]
    pub hold: bool,

    /// How many connects may be in progress at once (more would overflow the accept queue)
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connect_burst: u32,

    /// Client threads, each with its own readiness loop and its share of the connections
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,

    /// The server's process id: its memory is read from /proc/PID/status
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Give up after this many seconds (unfinished connections count as errors)
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,

    /// Stream on one connection for this many seconds and report MB/s
    #[arg(long, value_name = "SECONDS", conflicts_with_all = ["connections", "round_trips", "hold", "connect_burst", "threads"])]
    pub bulk: Option<f64>,

    /// A name for this run, printed in the summary
    #[arg(long, default_value = "")]
    pub label: String,

    /// How to print the summary: a table for people, or key=value lines for scripts
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// No progress line
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Kv,
}

/// Bad usage: one line, exit 2.
pub fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message} (see --help)");
    ExitCode::from(2)
}
