//! loadgen: a load generator for the course's echo servers (step 5, step 10, and the Python
//! baselines in `scripts/`).
//!
//! Two modes:
//!
//! - **Round trips** (the default): opens C connections at once, and on each one sends S
//!   bytes, waits until all S come back, checks every byte, and does that R times; then it
//!   shuts down its sending side and reads until the server closes, so that an echo that
//!   sends more than it was sent is caught too. It reports round trips per second, the
//!   latency of one round trip (p50, p99), errors, and the server's memory when it is given
//!   the server's pid. With `--hold` every connection stays open until all are done, so that
//!   the server holds all C at once.
//! - **Bulk** (`--bulk SECONDS`): one connection, a stream written as fast as the server
//!   echoes it, every byte checked; reports MB/s.
//!
//! It is a tool, not a lesson: it is written for speed, with one readiness loop (mio) per
//! thread. `lessons/10-many-clients.md` explains how such a loop works.
//!
//! The modules, in the order a run uses them: `cli` (the command line), `round_trips` (the
//! run: threads, progress, summary), `client` (one thread's readiness loop), `conn` (one
//! connection's round trips and close), `payload` (the bytes sent and how they are checked),
//! `server` (the server's memory and CPU time from /proc), `summary`, `progress`, and `bulk`.

mod bulk;
mod cli;
mod client;
mod conn;
mod payload;
mod progress;
mod round_trips;
mod server;
mod summary;

use std::process::ExitCode;
use std::time::Duration;

use cli::{Cli, usage};

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    if !(cli.timeout > 0.0 && cli.timeout <= 86_400.0) {
        return usage("--timeout must be between 0 and 86400 seconds");
    }
    if let Some(seconds) = cli.bulk {
        if !(seconds > 0.0 && seconds <= 3600.0) {
            return usage("--bulk must be between 0 and 3600 seconds");
        }
        return bulk::run(&cli, Duration::from_secs_f64(seconds));
    }
    round_trips::run(&cli)
}
