//! loadgen: a load generator for the course's echo servers (step 5, step 10, and the Python
//! baselines in `scripts/`).
//!
//! Two modes:
//!
//! - **Round trips** (the default): opens C connections at once, and on each one sends S
//!   bytes, waits until all S come back, checks every byte, and does that R times. It reports
//!   round trips per second, the latency of one round trip (p50, p99), errors, and the
//!   server's memory when it is given the server's pid. With `--hold` every connection stays
//!   open until all are done, so that the server holds all C at once.
//! - **Bulk** (`--bulk SECONDS`): one connection, a stream written as fast as the server
//!   echoes it, every byte checked; reports MB/s.
//!
//! It is a tool, not a lesson: it is written for speed, with one readiness loop (mio) per
//! thread. `lessons/10-many-clients.md` explains how such a loop works.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};

/// A load generator for echo servers: many connections, every byte checked.
///
/// Opens --connections connections to ADDRESS; on each, sends --size bytes, waits for all of
/// them to come back, compares every byte with what it sent, and repeats --round-trips
/// times. Prints a progress line while it runs and a summary at the end: round trips per
/// second, latency p50/p99, errors, and the server's memory (with --server-pid). Exits 1 if
/// any byte came back wrong, any connection failed, or the time limit passed.
///
/// With --bulk SECONDS it streams instead, on one connection, and reports MB/s.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/10-many-clients.md")]
struct Cli {
    /// The echo server's address, as its `ready: listening on` line prints it
    address: SocketAddr,

    /// How many connections to open at once
    #[arg(short, long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,

    /// How many round trips each connection makes
    #[arg(short, long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    round_trips: u32,

    /// Bytes per message (in --bulk mode: bytes per write)
    #[arg(short, long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    size: u32,

    /// Keep every connection open until all are done (so the server holds all at once)
    #[arg(long)]
    hold: bool,

    /// How many connects may be in progress at once (more would overflow the accept queue)
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connect_burst: u32,

    /// Client threads, each with its own readiness loop and its share of the connections
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,

    /// The server's process id: its memory is read from /proc/PID/status
    #[arg(long)]
    server_pid: Option<u32>,

    /// Give up after this many seconds (unfinished connections count as errors)
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,

    /// Stream on one connection for this many seconds and report MB/s
    #[arg(long, value_name = "SECONDS", conflicts_with_all = ["connections", "round_trips", "hold", "connect_burst", "threads"])]
    bulk: Option<f64>,

    /// A name for this run, printed in the summary
    #[arg(long, default_value = "")]
    label: String,

    /// How to print the summary: a table for people, or key=value lines for scripts
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,

    /// No progress line
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Kv,
}

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    if !(cli.timeout > 0.0 && cli.timeout <= 86_400.0) {
        return usage("--timeout must be between 0 and 86400 seconds");
    }
    if let Some(seconds) = cli.bulk {
        if !(seconds > 0.0 && seconds <= 3600.0) {
            return usage("--bulk must be between 0 and 3600 seconds");
        }
        return bulk(&cli, Duration::from_secs_f64(seconds));
    }
    round_trips(&cli)
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message} (see --help)");
    ExitCode::from(2)
}

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

/// Counters the client threads share with the progress line.
#[derive(Default)]
struct Shared {
    round_trips: AtomicU64,
    open: AtomicU64,
    peak_open: AtomicU64,
    errors: AtomicU64,
    /// Connections that have made all their round trips.
    finished: AtomicU64,
    /// Set when every connection of every thread is finished (for --hold).
    release: AtomicBool,
}

/// What one client thread brings back.
#[derive(Default)]
struct Outcome {
    latencies_us: Vec<u32>,
    errors: Vec<String>,
    bytes: u64,
}

fn round_trips(cli: &Cli) -> ExitCode {
    let total = cli.connections;
    let threads = cli.threads.min(total);
    let shared = Arc::new(Shared::default());
    let deadline = Instant::now() + Duration::from_secs_f64(cli.timeout);
    let memory_before = cli.server_pid.and_then(memory);
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
            let outcome = client_loop(&plan, ids, &shared);
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
        if cli.hold
            && !shared.release.load(Ordering::Relaxed)
            && (finished + errors >= u64::from(total) || Instant::now() >= deadline)
        {
            // Every connection has done its round trips and sits idle: this is the moment
            // the server holds them all. Read its memory, then let the threads close.
            memory_held = cli.server_pid.and_then(memory);
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
    let memory_after = cli.server_pid.and_then(memory);

    let mut latencies: Vec<u32> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut bytes = 0;
    for outcome in outcomes {
        latencies.extend(outcome.latencies_us);
        errors.extend(outcome.errors);
        bytes += outcome.bytes;
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

/// What every connection of one thread does.
struct Plan {
    address: SocketAddr,
    round_trips: u32,
    size: usize,
    hold: bool,
    burst: usize,
    deadline: Instant,
}

#[derive(PartialEq, Eq, Debug)]
enum Stage {
    Connecting,
    Sending,
    Receiving,
    Idle,
}

/// One client connection.
struct Conn {
    id: u32,
    stream: MioStream,
    stage: Stage,
    round: u32,
    payload: Vec<u8>,
    sent: usize,
    received: usize,
    started: Instant,
}

fn client_loop(plan: &Plan, ids: Vec<u32>, shared: &Shared) -> Outcome {
    let mut outcome = Outcome::default();
    let mut poll = match Poll::new() {
        Ok(poll) => poll,
        Err(error) => {
            outcome
                .errors
                .push(format!("epoll_create1 failed: {error}"));
            shared.errors.fetch_add(ids.len() as u64, Ordering::Relaxed);
            return outcome;
        }
    };
    let mut events = Events::with_capacity(1024);
    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut waiting = ids.into_iter();
    let mut connecting = 0usize;
    let mut remaining = waiting.len();
    let mut scratch = vec![0u8; plan.size.max(65536)];

    loop {
        // Start connects, at most `burst` in progress at once.
        while connecting < plan.burst {
            let Some(id) = waiting.next() else { break };
            match MioStream::connect(plan.address) {
                Ok(mut stream) => {
                    let token = Token(id as usize);
                    if let Err(error) = poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        fail(
                            &mut outcome,
                            shared,
                            id,
                            format!("epoll_ctl failed: {error}"),
                        );
                        remaining -= 1;
                        continue;
                    }
                    connecting += 1;
                    conns.insert(
                        token,
                        Conn {
                            id,
                            stream,
                            stage: Stage::Connecting,
                            round: 0,
                            payload: vec![0; plan.size],
                            sent: 0,
                            received: 0,
                            started: Instant::now(),
                        },
                    );
                }
                Err(error) => {
                    fail(
                        &mut outcome,
                        shared,
                        id,
                        format!("connect failed: {}", describe(&error)),
                    );
                    remaining -= 1;
                }
            }
        }
        let finished_all = remaining == 0;
        if finished_all && (!plan.hold || shared.release.load(Ordering::Relaxed)) {
            break;
        }
        let now = Instant::now();
        if now >= plan.deadline {
            let unfinished =
                conns.values().filter(|c| c.stage != Stage::Idle).count() + waiting.len();
            if unfinished > 0 {
                outcome.errors.push(format!(
                    "time limit: {unfinished} connections had not finished their round trips"
                ));
                shared
                    .errors
                    .fetch_add(unfinished as u64, Ordering::Relaxed);
            }
            break;
        }
        let wait = (plan.deadline - now).min(Duration::from_millis(100));
        if let Err(error) = poll.poll(&mut events, Some(wait)) {
            if error.kind() == ErrorKind::Interrupted {
                continue;
            }
            outcome.errors.push(format!("epoll_wait failed: {error}"));
            break;
        }
        for event in events.iter() {
            let token = event.token();
            let Some(conn) = conns.get_mut(&token) else {
                continue;
            };
            if conn.stage == Stage::Idle {
                // Done, and held open (--hold): nothing more to do on it.
                continue;
            }
            if conn.stage == Stage::Connecting {
                // A non-blocking connect is finished when the socket turns writable; then
                // SO_ERROR says whether it worked, and getpeername whether it is connected.
                if let Ok(Some(error)) | Err(error) = conn.stream.take_error() {
                    connecting -= 1;
                    remaining -= 1;
                    let id = conn.id;
                    conns.remove(&token);
                    fail(
                        &mut outcome,
                        shared,
                        id,
                        format!("connect failed: {}", describe(&error)),
                    );
                    continue;
                }
                match conn.stream.peer_addr() {
                    Ok(_) => {}
                    Err(error) if error.kind() == ErrorKind::NotConnected => continue,
                    Err(error) => {
                        connecting -= 1;
                        remaining -= 1;
                        let id = conn.id;
                        conns.remove(&token);
                        fail(
                            &mut outcome,
                            shared,
                            id,
                            format!("connect failed: {}", describe(&error)),
                        );
                        continue;
                    }
                }
                connecting -= 1;
                let open = shared.open.fetch_add(1, Ordering::Relaxed) + 1;
                shared.peak_open.fetch_max(open, Ordering::Relaxed);
                conn.begin_round();
            }
            match conn.advance(&mut scratch, &mut outcome, shared, plan.round_trips) {
                Ok(true) => {}
                Ok(false) => {
                    // All round trips made.
                    remaining -= 1;
                    shared.finished.fetch_add(1, Ordering::Relaxed);
                    if !plan.hold {
                        close(&mut conns, token, shared);
                    }
                }
                Err(problem) => {
                    remaining -= 1;
                    let id = conn.id;
                    close(&mut conns, token, shared);
                    fail(&mut outcome, shared, id, problem);
                }
            }
        }
    }
    for (_, conn) in conns.drain() {
        if conn.stage != Stage::Connecting {
            shared.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
    outcome
}

fn close(conns: &mut HashMap<Token, Conn>, token: Token, shared: &Shared) {
    if conns.remove(&token).is_some() {
        shared.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn fail(outcome: &mut Outcome, shared: &Shared, id: u32, problem: String) {
    shared.errors.fetch_add(1, Ordering::Relaxed);
    outcome
        .errors
        .push(format!("connection {}: {problem}", id + 1));
}

impl Conn {
    /// Fills the payload for the next round trip and starts its clock.
    fn begin_round(&mut self) {
        fill(&mut self.payload, self.id, self.round);
        self.sent = 0;
        self.received = 0;
        self.stage = Stage::Sending;
        self.started = Instant::now();
    }

    /// Does as much as the socket allows without waiting. `Ok(true)`: more to do later;
    /// `Ok(false)`: every round trip is made; `Err`: what went wrong.
    fn advance(
        &mut self,
        scratch: &mut [u8],
        outcome: &mut Outcome,
        shared: &Shared,
        rounds: u32,
    ) -> Result<bool, String> {
        loop {
            match self.stage {
                Stage::Connecting | Stage::Idle => return Ok(self.stage != Stage::Idle),
                Stage::Sending => match self.stream.write(&self.payload[self.sent..]) {
                    Ok(n) => {
                        self.sent += n;
                        if self.sent == self.payload.len() {
                            self.stage = Stage::Receiving;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(format!(
                            "round trip {}: send failed: {}",
                            self.round + 1,
                            describe(&e)
                        ));
                    }
                },
                Stage::Receiving => {
                    // Read no more than is still due: the next round trip's echo cannot
                    // arrive before its request is sent, so this never eats into it.
                    let want = (self.payload.len() - self.received).min(scratch.len());
                    match self.stream.read(&mut scratch[..want]) {
                        Ok(0) => {
                            return Err(format!(
                                "round trip {}: the server closed the connection after echoing {} of {} bytes",
                                self.round + 1,
                                self.received,
                                self.payload.len()
                            ));
                        }
                        Ok(n) => {
                            let expected = &self.payload[self.received..self.received + n];
                            if let Some(at) = first_difference(expected, &scratch[..n]) {
                                return Err(format!(
                                    "round trip {}: byte {} came back as 0x{:02x}, but 0x{:02x} was sent (a corrupted echo)",
                                    self.round + 1,
                                    self.received + at,
                                    scratch[at],
                                    expected[at]
                                ));
                            }
                            self.received += n;
                            outcome.bytes += n as u64;
                            if self.received == self.payload.len() {
                                let micros = self.started.elapsed().as_micros();
                                outcome
                                    .latencies_us
                                    .push(micros.min(u32::MAX as u128) as u32);
                                shared.round_trips.fetch_add(1, Ordering::Relaxed);
                                self.round += 1;
                                if self.round == rounds {
                                    self.stage = Stage::Idle;
                                    return Ok(false);
                                }
                                self.begin_round();
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            return Err(format!(
                                "round trip {}: receive failed: {}",
                                self.round + 1,
                                describe(&e)
                            ));
                        }
                    }
                }
            }
        }
    }
}

/// The bytes of round trip `round` on connection `id`: pseudo-random, different for every
/// connection and round, so that an echo sent to the wrong client or repeated is caught.
fn fill(buf: &mut [u8], id: u32, round: u32) {
    let mut state = (u64::from(id) << 32 | u64::from(round)) ^ 0x9E37_79B9_7F4A_7C15;
    for chunk in buf.chunks_mut(8) {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

fn first_difference(expected: &[u8], got: &[u8]) -> Option<usize> {
    if expected == got {
        return None;
    }
    expected.iter().zip(got).position(|(a, b)| a != b)
}

fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn describe(error: &io::Error) -> String {
    tutor::explain::describe(error)
}

// ---------------------------------------------------------------------------------------
// The server's memory
// ---------------------------------------------------------------------------------------

/// A server's memory, from /proc/PID/status (in KiB).
#[derive(Clone, Copy, Debug)]
struct Memory {
    /// Resident now (VmRSS).
    rss: u64,
    /// The most it has ever been resident (VmHWM, the "high water mark").
    peak: u64,
    /// Virtual size (VmSize): every mapping, touched or not.
    virt: u64,
    threads: u64,
    /// CPU time used so far in the program itself (user), in clock ticks (usually 1/100 s).
    user_ticks: u64,
    /// CPU time used so far in the kernel on its behalf (system calls, TCP), in clock ticks.
    system_ticks: u64,
}

fn memory(pid: u32) -> Option<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    // /proc/PID/stat: fields 14 and 15 (utime, stime) come after the name in parentheses.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let user_ticks = fields.get(11)?.parse::<u64>().ok()?;
    let system_ticks = fields.get(12)?.parse::<u64>().ok()?;
    Some(Memory {
        user_ticks,
        system_ticks,
        rss: field("VmRSS:")?,
        peak: field("VmHWM:")?,
        virt: field("VmSize:")?,
        threads: field("Threads:")?,
    })
}

// ---------------------------------------------------------------------------------------
// The summary
// ---------------------------------------------------------------------------------------

struct Summary {
    label: String,
    connections: u32,
    round_trips_each: u32,
    size: u32,
    round_trips: u64,
    expected: u64,
    seconds: f64,
    per_second: f64,
    p50_us: Option<u32>,
    p99_us: Option<u32>,
    max_us: Option<u32>,
    errors: u64,
    peak_open: u64,
    bytes: u64,
    memory_before: Option<Memory>,
    memory_held: Option<Memory>,
    memory_after: Option<Memory>,
}

fn micros(value: Option<u32>) -> String {
    match value {
        None => "-".to_owned(),
        Some(us) if us >= 10_000 => format!("{:.1} ms", f64::from(us) / 1000.0),
        Some(us) => format!("{us} us"),
    }
}

fn kib(value: Option<u64>) -> String {
    match value {
        None => "n/a".to_owned(),
        Some(k) if k >= 10 * 1024 => format!("{:.1} MiB", k as f64 / 1024.0),
        Some(k) => format!("{k} KiB"),
    }
}

impl Summary {
    /// Server memory per connection, in KiB: the growth from before the first connect to
    /// the moment all connections were open and idle (--hold), divided by their number.
    fn per_connection(&self, pick: fn(&Memory) -> u64) -> Option<f64> {
        let before = self.memory_before?;
        let held = self.memory_held?;
        Some((pick(&held) as f64 - pick(&before) as f64) / f64::from(self.connections))
    }

    /// The server's CPU time (user + system) per round trip, in microseconds. /proc counts
    /// CPU time in ticks of 10 ms: below 10 ticks (0.1 s) the figure would be mostly rounding
    /// (a short run shows 0.0), so it is left out.
    fn cpu_per_round_trip(&self) -> Option<f64> {
        let (user, system) = self.cpu_split_per_round_trip()?;
        Some(user + system)
    }

    /// The same, split into the time the server spent in its own code (user) and in the
    /// kernel on its behalf (system calls and the TCP work they do).
    fn cpu_split_per_round_trip(&self) -> Option<(f64, f64)> {
        let before = self.memory_before?;
        let after = self.memory_after?;
        let user = after.user_ticks.saturating_sub(before.user_ticks);
        let system = after.system_ticks.saturating_sub(before.system_ticks);
        if self.round_trips == 0 || user + system < 10 {
            return None;
        }
        let per = |ticks: u64| ticks as f64 * 10_000.0 / self.round_trips as f64;
        Some((per(user), per(system)))
    }

    fn peak(&self) -> Option<u64> {
        [self.memory_held, self.memory_after]
            .iter()
            .flatten()
            .map(|m| m.peak)
            .max()
    }

    fn print(&self, format: Format, hold: bool) {
        let rss_per = self.per_connection(|m| m.rss);
        let virt_per = self.per_connection(|m| m.virt);
        let threads_held = self.memory_held.map(|m| m.threads);
        match format {
            Format::Kv => {
                let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
                tutor::outln!("label={}", self.label);
                tutor::outln!("connections={}", self.connections);
                tutor::outln!("round_trips_each={}", self.round_trips_each);
                tutor::outln!("size={}", self.size);
                tutor::outln!("round_trips={}", self.round_trips);
                tutor::outln!("seconds={:.3}", self.seconds);
                tutor::outln!("per_second={:.0}", self.per_second);
                tutor::outln!("p50_us={}", opt(self.p50_us.map(|v| v.to_string())));
                tutor::outln!("p99_us={}", opt(self.p99_us.map(|v| v.to_string())));
                tutor::outln!("max_us={}", opt(self.max_us.map(|v| v.to_string())));
                tutor::outln!(
                    "server_cpu_us_per_rt={}",
                    opt(self.cpu_per_round_trip().map(|v| format!("{v:.1}")))
                );
                let split = self.cpu_split_per_round_trip();
                tutor::outln!(
                    "server_user_us_per_rt={}",
                    opt(split.map(|(user, _)| format!("{user:.1}")))
                );
                tutor::outln!(
                    "server_kernel_us_per_rt={}",
                    opt(split.map(|(_, kernel)| format!("{kernel:.1}")))
                );
                tutor::outln!("errors={}", self.errors);
                tutor::outln!("peak_open={}", self.peak_open);
                tutor::outln!("bytes={}", self.bytes);
                tutor::outln!(
                    "server_peak_kib={}",
                    opt(self.peak().map(|v| v.to_string()))
                );
                tutor::outln!(
                    "server_rss_before_kib={}",
                    opt(self.memory_before.map(|m| m.rss.to_string()))
                );
                tutor::outln!(
                    "server_rss_held_kib={}",
                    opt(self.memory_held.map(|m| m.rss.to_string()))
                );
                tutor::outln!(
                    "server_rss_per_conn_kib={}",
                    opt(rss_per.map(|v| format!("{v:.1}")))
                );
                tutor::outln!(
                    "server_virt_per_conn_kib={}",
                    opt(virt_per.map(|v| format!("{v:.1}")))
                );
                tutor::outln!(
                    "server_threads_held={}",
                    opt(threads_held.map(|v| v.to_string()))
                );
            }
            Format::Table => {
                tutor::outln!();
                tutor::outln!(
                    "| run | connections | round trips | bytes each | round trips/s | p50 | p99 | max | errors | server CPU per round trip | server peak RSS |"
                );
                tutor::outln!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
                tutor::outln!(
                    "| {} | {} | {} of {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
                    self.label,
                    self.connections,
                    self.round_trips,
                    self.expected,
                    self.size,
                    self.per_second,
                    micros(self.p50_us),
                    micros(self.p99_us),
                    micros(self.max_us),
                    self.errors,
                    self.cpu_split_per_round_trip().map_or(
                        "n/a".to_owned(),
                        |(user, kernel)| format!(
                            "{:.1} us ({user:.1} user + {kernel:.1} kernel)",
                            user + kernel
                        )
                    ),
                    kib(self.peak()),
                );
                tutor::outln!();
                tutor::outln!(
                    "{:.2} s; at most {} connections open at once; {} bytes echoed, every one checked",
                    self.seconds,
                    self.peak_open,
                    self.bytes
                );
                if hold && let (Some(rss), Some(virt)) = (rss_per, virt_per) {
                    tutor::outln!(
                        "server memory per idle connection: {rss:.1} KiB resident (VmRSS), {virt:.1} KiB virtual (VmSize); {} threads while all were held",
                        threads_held.map_or("?".to_owned(), |t| t.to_string())
                    );
                }
            }
        }
    }
}

/// The progress line: redrawn in place on a terminal, one line a second otherwise.
struct Progress {
    quiet: bool,
    terminal: bool,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        use std::io::IsTerminal;
        Progress {
            quiet,
            terminal: io::stderr().is_terminal(),
        }
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        if self.terminal {
            eprint!("\r{text}\x1b[K");
        } else {
            eprintln!("{text}");
        }
    }

    fn end(&self) {
        if !self.quiet && self.terminal {
            eprintln!();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bulk
// ---------------------------------------------------------------------------------------

/// The stream a bulk run sends: a pseudo-random block, repeated. Byte `i` of the stream is
/// `PATTERN[i % PATTERN_LEN]`.
const PATTERN_LEN: usize = 1 << 20;

fn pattern() -> Vec<u8> {
    let mut block = vec![0u8; PATTERN_LEN];
    fill(&mut block, u32::MAX, u32::MAX);
    block
}

fn bulk(cli: &Cli, seconds: Duration) -> ExitCode {
    let failed = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(1)
    };
    let stream = match TcpStream::connect_timeout(&cli.address, Duration::from_secs(5)) {
        Ok(stream) => stream,
        Err(error) => return failed(format!("connect failed: {}", describe(&error))),
    };
    let writer_stream = match stream.try_clone() {
        Ok(s) => s,
        Err(error) => return failed(format!("cannot clone the socket: {error}")),
    };
    let block = Arc::new(pattern());
    let stop = Arc::new(AtomicBool::new(false));
    let chunk = cli.size as usize;

    // The writer sends the stream as fast as the socket takes it.
    let writer = {
        let block = Arc::clone(&block);
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut stream = writer_stream;
            let mut offset = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let start = offset % PATTERN_LEN;
                let end = (start + chunk).min(PATTERN_LEN);
                match stream.write(&block[start..end]) {
                    Ok(n) => offset += n,
                    Err(_) => break,
                }
            }
        })
    };

    // The reader checks every byte that comes back, for `seconds`.
    let mut reader = stream;
    let _ = reader.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0usize;
    let started = Instant::now();
    let mut last_print = Instant::now();
    let progress = Progress::new(cli.quiet);
    let mut problem = None;
    while started.elapsed() < seconds {
        match reader.read(&mut buf) {
            Ok(0) => {
                problem = Some(format!(
                    "the server closed the connection after echoing {received} bytes"
                ));
                break;
            }
            Ok(n) => {
                let mut at = 0;
                while at < n {
                    let start = (received + at) % PATTERN_LEN;
                    let len = (n - at).min(PATTERN_LEN - start);
                    if let Some(bad) =
                        first_difference(&block[start..start + len], &buf[at..at + len])
                    {
                        problem = Some(format!(
                            "byte {} of the stream came back as 0x{:02x}, but 0x{:02x} was sent (a corrupted echo)",
                            received + at + bad,
                            buf[at + bad],
                            block[start + bad]
                        ));
                        break;
                    }
                    at += len;
                }
                if problem.is_some() {
                    break;
                }
                received += n;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                problem = Some(format!("receive failed: {}", describe(&e)));
                break;
            }
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            progress.line(&format!(
                "loadgen: {secs:4.1} s  {received} bytes echoed ({:.1} MB/s)",
                received as f64 / secs / 1e6
            ));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.end();
    // Stop without draining: what is still in flight was never counted. Closing both
    // halves wakes the writer if it is blocked in send.
    stop.store(true, Ordering::Relaxed);
    let _ = reader.shutdown(Shutdown::Both);
    let _ = writer.join();

    let rate = received as f64 / elapsed / 1e6;
    match cli.format {
        Format::Kv => {
            tutor::outln!("label={}", cli.label);
            tutor::outln!("bytes={received}");
            tutor::outln!("seconds={elapsed:.3}");
            tutor::outln!("mb_per_s={rate:.2}");
            tutor::outln!("errors={}", u32::from(problem.is_some()));
        }
        Format::Table => {
            tutor::outln!(
                "bulk{}: {received} bytes echoed in {elapsed:.2} s: {rate:.1} MB/s (1 MB = 10^6 bytes), every byte checked",
                if cli.label.is_empty() {
                    String::new()
                } else {
                    format!(" {}", cli.label)
                }
            );
        }
    }
    match problem {
        Some(problem) => failed(problem),
        None if received == 0 => failed("nothing came back: is it an echo server?".to_owned()),
        None => ExitCode::SUCCESS,
    }
}
