//! Step 9: stream vs datagram, measured.
//!
//! The same seven experiments over a SOCK_STREAM pair and a SOCK_DGRAM pair of sockets, and
//! a table of what happened, side by side: whether a handshake comes first, message
//! boundaries, a buffer too small, a peer that is not there, a fast sender and a slow
//! receiver, ordering, and the end of a conversation. Nothing in the table is written in:
//! every cell is measured on the spot, for --family ipv4 (TCP, UDP), ipv6, or unix.
//!
//! This file runs the experiments and draws the table. `lab.rs` makes the sockets (a
//! connected pair for each experiment), `experiments.rs` holds the seven experiments, and
//! `cli.rs` the flags. Read it beside `lessons/09-stream-vs-dgram.md`.

mod cli;
mod experiments;
mod lab;

use std::process::ExitCode;

use socket2::Type;
use tutor::{Failure, Family, Narrator, Step, interrupt};

use crate::cli::{Cli, Format, ROWS, Row};
use crate::lab::Lab;

const STEP: Step = Step {
    number: 9,
    crate_name: "step9_stream_vs_dgram",
    title: "stream vs datagram, measured",
    lesson: "lessons/09-stream-vs-dgram.md",
};

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    interrupt::stop_on_signals(&say);
    if cli.format == Format::Text {
        say.header();
    }
    let result = run(&say, &cli);
    tutor::finish(&say, result)
}

/// Each experiment, once over a stream pair and once over a datagram pair, then the table.
fn run(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let text = cli.format == Format::Text;
    // With --format tsv the calls are made all the same, but narrated into a buffer that
    // nobody reads: standard output holds the table alone.
    let narrator = if text {
        say.clone()
    } else {
        say.recording().quiet()
    };
    let lab = Lab::new(cli.family, &narrator)?;
    let mut table = Vec::new();
    for row in ROWS {
        if cli.only.is_some_and(|only| only != row) {
            continue;
        }
        if text {
            say.section(format!("{}: {}", row.name(), row.question()));
        }
        let stream = lab.measure(row, Type::STREAM);
        let dgram = lab.measure(row, Type::DGRAM);
        table.push((row, cell(stream), cell(dgram)));
    }
    lab.clean_up();
    let (stream_name, dgram_name) = match cli.family {
        Family::Unix => ("SOCK_STREAM (unix)", "SOCK_DGRAM (unix)"),
        _ => ("SOCK_STREAM (TCP)", "SOCK_DGRAM (UDP)"),
    };
    if text {
        say.section(format!("the table ({})", cli.family));
        print_table(stream_name, dgram_name, &table);
    } else {
        tutor::outln!("row\t{stream_name}\t{dgram_name}");
        for (row, stream, dgram) in &table {
            tutor::outln!("{}\t{stream}\t{dgram}", row.name());
        }
    }
    Ok(())
}

/// A failed experiment still fills its cell: with the error, so the table says what broke.
fn cell(result: Result<String, Failure>) -> String {
    result.unwrap_or_else(|failure| format!("failed: {}", experiments::error_name(&failure)))
}

fn print_table(stream_name: &str, dgram_name: &str, table: &[(Row, String, String)]) {
    let first = table
        .iter()
        .map(|(_, s, _)| s.len())
        .chain([stream_name.len()])
        .max()
        .unwrap_or(0);
    tutor::outln!(
        "{:<13} {:<first$}   {dgram_name}",
        "experiment",
        stream_name
    );
    tutor::outln!(
        "{:<13} {:<first$}   {}",
        "-".repeat(10),
        "-".repeat(first),
        "-".repeat(dgram_name.len())
    );
    for (row, stream, dgram) in table {
        tutor::outln!("{:<13} {stream:<first$}   {dgram}", row.name());
    }
}
