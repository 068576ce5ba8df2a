//! Round-trip mode: C connections at once, each making R round trips of S bytes, spread over
//! the client threads; a progress line while they run, the summary at the end.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::cli::Cli;
use crate::client::{self, Plan, Shared};
use crate::progress::Progress;
use crate::server;
use crate::summary::{Summary, percentile};

/// Runs C connections of R round trips each, prints the summary, and says how it went.
pub fn run(cli: &Cli) -> ExitCode {
    let total = cli.connections;
    let threads = cli.threads.min(total);
    let shared = Arc::new(Shared::default());
    let deadline = Instant::now() + Duration::from_secs_f64(cli.timeout);
    let memory_before = cli.server_pid.and_then(server::usage);
    if !cli.quiet {
        eprintln!(
            "loadgen: {} connections x {} round trips x {} bytes to {}{}",
            total,
            cli.round_trips,
            cli.size,
            cli.address,
            if cli.hold { ", all held open" } else { "" }
        );
    }
    let started = Instant::now();
    let (done_tx, done_rx) = mpsc::channel();
    for index in 0..threads {
        // Connection ids index..total step threads: each thread gets its share.
        let ids: Vec<u32> = (index..total).step_by(threads as usize).collect();
        let plan = Plan {
            address: cli.address,
            round_trips: cli.round_trips,
            size: cli.size as usize,
            hold: cli.hold,
            burst: (cli.connect_burst / threads).max(1) as usize,
            deadline,
        };
        let shared = Arc::clone(&shared);
        let done = done_tx.clone();
        thread::spawn(move || {
            let outcome = client::run(&plan, ids, &shared);
            let _ = done.send(outcome);
        });
    }
    drop(done_tx);

    // Progress every second, until every thread has reported.
    let mut outcomes = Vec::new();
    let mut memory_held = None;
    let mut last_print = Instant::now();
    let progress = Progress::new(cli.quiet);
    while outcomes.len() < threads as usize {
        match done_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(outcome) => outcomes.push(outcome),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let finished = shared.finished.load(Ordering::Relaxed);
        let errors = shared.errors.load(Ordering::Relaxed);
        let settled = shared.settled.load(Ordering::Relaxed);
        if cli.hold
            && !shared.release.load(Ordering::Relaxed)
            && (settled >= u64::from(total) || Instant::now() >= deadline)
        {
            // Every connection has done its round trips and sits idle: this is the moment
            // the server holds them all. Read its memory, then let the threads close.
            memory_held = cli.server_pid.and_then(server::usage);
            shared.release.store(true, Ordering::Relaxed);
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let done = shared.round_trips.load(Ordering::Relaxed);
            let seconds = started.elapsed().as_secs_f64();
            progress.line(&format!(
                "loadgen: {seconds:5.1} s  {done} round trips ({:.0}/s)  {} open  {} finished  {errors} errors",
                done as f64 / seconds,
                shared.open.load(Ordering::Relaxed),
                finished,
            ));
        }
    }
    let elapsed = started.elapsed();
    progress.end();
    let memory_after = cli.server_pid.and_then(server::usage);

    let mut latencies: Vec<u32> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut bytes = 0;
    for outcome in outcomes {
        latencies.extend(outcome.tally.latencies_us);
        errors.extend(outcome.errors);
        bytes += outcome.tally.bytes;
    }
    latencies.sort_unstable();
    let done = latencies.len() as u64;
    let seconds = elapsed.as_secs_f64();
    let summary = Summary {
        label: if cli.label.is_empty() {
            cli.address.to_string()
        } else {
            cli.label.clone()
        },
        connections: total,
        round_trips_each: cli.round_trips,
        size: cli.size,
        round_trips: done,
        expected: u64::from(total) * u64::from(cli.round_trips),
        seconds,
        per_second: done as f64 / seconds,
        p50_us: percentile(&latencies, 50.0),
        p99_us: percentile(&latencies, 99.0),
        max_us: latencies.last().copied(),
        // One message per failed connection: the same count as the progress line's.
        errors: errors.len() as u64,
        peak_open: shared.peak_open.load(Ordering::Relaxed),
        bytes,
        memory_before,
        memory_held,
        memory_after,
    };
    summary.print(cli.format, cli.hold);
    if !errors.is_empty() {
        for error in errors.iter().take(5) {
            eprintln!("  {error}");
        }
        eprintln!(
            "error: {} of {} connections failed; the first: {}",
            errors.len(),
            total,
            errors[0]
        );
        return ExitCode::from(1);
    }
    if summary.round_trips != summary.expected {
        eprintln!(
            "error: only {} of {} round trips were made",
            summary.round_trips, summary.expected
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
