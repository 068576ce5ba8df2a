//! The step's flags, and the experiments they name.

use clap::{Parser, ValueEnum};
use tutor::{ColorWhen, Family};

/// The experiments, in the table's order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Row {
    /// Is a handshake needed before data?
    Handshake,
    /// Three sends of different sizes: how many receives?
    Boundaries,
    /// A receive buffer smaller than the message
    ShortBuffer,
    /// The peer is not there
    NoPeer,
    /// A fast sender and a slow receiver with a small receive buffer
    Pressure,
    /// 100 numbered messages: order and duplicates
    Order,
    /// How the receiver learns the conversation is over
    End,
}

pub const ROWS: [Row; 7] = [
    Row::Handshake,
    Row::Boundaries,
    Row::ShortBuffer,
    Row::NoPeer,
    Row::Pressure,
    Row::Order,
    Row::End,
];

impl Row {
    /// The row's name in the table and in --only.
    pub fn name(self) -> &'static str {
        match self {
            Row::Handshake => "handshake",
            Row::Boundaries => "boundaries",
            Row::ShortBuffer => "short-buffer",
            Row::NoPeer => "no-peer",
            Row::Pressure => "pressure",
            Row::Order => "order",
            Row::End => "end",
        }
    }

    /// The question the experiment asks, as its section heading.
    pub fn question(self) -> &'static str {
        match self {
            Row::Handshake => "is a handshake needed before data?",
            Row::Boundaries => "three sends of 3, 5 and 7 bytes: how many receives?",
            Row::ShortBuffer => "a 10-byte message meets a 4-byte buffer",
            Row::NoPeer => "nothing is at the address",
            Row::Pressure => "a fast sender, a receiver with a small buffer that reads late",
            Row::Order => "100 numbered messages: order and duplicates",
            Row::End => "how does the receiver learn that the conversation is over?",
        }
    }
}

/// How to print the results.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The calls of each experiment, then the table
    Text,
    /// Only the table, as tab-separated values: row, stream, dgram
    Tsv,
}

/// Step 9 of the socket course: stream vs datagram, measured side by side.
///
/// Runs seven experiments over a SOCK_STREAM pair and a SOCK_DGRAM pair (TCP and UDP for
/// ipv4 and ipv6; unix-domain sockets for unix) and prints what happened in a table. Every
/// cell is measured on this run. --only ROW runs one experiment; --format tsv prints the
/// table alone, for scripts (scripts/compare.sh draws it for every family).
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/09-stream-vs-dgram.md")]
pub struct Cli {
    /// Address family: ipv4 (TCP/UDP on 127.0.0.1), ipv6 (on ::1), unix (paths in a temp dir)
    #[arg(long, value_enum, default_value_t = Family::Ipv4)]
    pub family: Family,

    /// Run only this experiment
    #[arg(long, value_enum)]
    pub only: Option<Row>,

    /// How to print the results
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// The same as running without it: draw the table and exit (every step has a --demo)
    #[arg(long)]
    pub demo: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorWhen,
}
