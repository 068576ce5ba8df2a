//! Holding the narration to what `strace` sees.
//!
//! The programs print every socket call they make; `strace -e trace=%network` prints every
//! socket call the kernel sees. The two lists must be the same.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{Finished, run_command};

/// The system calls `strace -e trace=%network` shows.
pub const NETWORK_CALLS: &[&str] = &[
    "socket",
    "socketpair",
    "bind",
    "listen",
    "accept",
    "accept4",
    "connect",
    "getsockname",
    "getpeername",
    "setsockopt",
    "getsockopt",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
    "shutdown",
];

/// A run under strace: the program's own output, and the network calls strace saw, by name
/// with their result (`bind = 0`, `connect = -1 ECONNREFUSED`).
#[derive(Debug)]
pub struct Traced {
    pub run: Finished,
    pub calls: Vec<TracedCall>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedCall {
    pub name: String,
    /// The whole line strace printed.
    pub line: String,
}

/// Runs `program` under `strace -f -e trace=%network`, or returns `None` (and says so) when
/// strace is not installed or cannot trace here.
pub fn trace_network<I, S>(test: &str, program: &Path, args: I, limit: Duration) -> Option<Traced>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    trace_network_with_input(test, program, args, "", limit)
}

/// Like [`trace_network`], with `input` on the program's standard input (then end of input).
pub fn trace_network_with_input<I, S>(
    test: &str,
    program: &Path,
    args: I,
    input: &str,
    limit: Duration,
) -> Option<Traced>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let Some(strace) = crate::which("strace") else {
        crate::skip(test, "strace is not installed (.ci/run installs it)");
        return None;
    };
    // A log file of this run's own, made new (a name that is taken is passed over), so that
    // removing it afterwards removes nothing anyone else made.
    let log = (0..1000)
        .map(|_| {
            std::env::temp_dir().join(format!("strace-{}-{}.log", std::process::id(), unique()))
        })
        .find(|path| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .is_ok()
        })
        .expect("a new file for strace's log in the temp dir");
    let mut command = Command::new(strace);
    command
        .args(["-f", "-qq", "-e", "trace=%network", "-o"])
        .arg(&log)
        .arg(program)
        .args(args);
    if !input.is_empty() {
        command.stdin(crate::process::input(input));
    }
    let run = run_command(command, limit);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if text.is_empty() && run.output.contains("ptrace") {
        crate::skip(test, "strace cannot trace in this environment");
        return None;
    }
    let calls = text
        .lines()
        .filter_map(|line| {
            // With -f every line starts with the thread id: "1234  bind(3, ...) = 0".
            let line = line.split_once(' ').map_or(line, |(first, rest)| {
                if first.chars().all(|c| c.is_ascii_digit()) {
                    rest.trim_start()
                } else {
                    line
                }
            });
            let name = line.split('(').next()?;
            NETWORK_CALLS.contains(&name).then(|| TracedCall {
                name: name.to_owned(),
                line: line.to_owned(),
            })
        })
        .collect();
    Some(Traced { run, calls })
}

/// The network calls a program narrated (`-> bind(3, ...)` lines), by name, in order.
/// Narrated calls that are not network calls (`close`, `fcntl`, `getaddrinfo`) are left out.
pub fn narrated_network_calls(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| {
            let at = line.find("-> ")?;
            // The arrow starts the line, or follows an actor's name ("client 1  -> ...").
            if !line[..at].chars().all(|c| c.is_alphanumeric() || c == ' ') {
                return None;
            }
            let name = line[at + 3..].split('(').next()?;
            NETWORK_CALLS.contains(&name).then(|| name.to_owned())
        })
        .collect()
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
