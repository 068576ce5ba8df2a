//! What every step of the course shares.
//!
//! It never makes the socket calls a lesson is about: each step's `main.rs` makes them
//! itself, in the order its lesson tells, each inside [`narrate!`], which prints it as it
//! runs. The modules, from the bottom up (each uses only those above it):
//!
//! - [`explain`]: an `io::Error` turned into its errno name, the OS message, a hint and the
//!   lesson to read.
//! - [`show`]: addresses and user text as the course prints them (control characters
//!   escaped). [`kind`]: the address family and socket type, as the flags name them.
//! - [`strace`]: system calls written as `strace` writes them, one function per socket2 method.
//! - [`narrate`]: the [`Narrator`] that prints (actors, colour, notes, the one-line failure),
//!   and [`narrate::Budget`], the one narration budget for busy loops.
//! - [`call`]: [`narrate!`], a socket call written once: the system call, the Rust that runs
//!   (`stringify!` of the very expression), the call itself (again after `EINTR`) and its
//!   result; a demo's [`call::Pause`] around it.
//! - [`addr`]: `--host`/`--port`/`--path` turned into a socket address (narrating the name
//!   lookup). [`cli`]: the flags every step shares and argument parsing that turns a bad
//!   command line into one line on stderr and exit code 2.
//! - [`observe`]: looking at a socket from outside, as `ls -l /proc/PID/fd` and `ss` do.
//! - [`per_client`]: whose error it is: one client's (the server goes on), or a shortage of
//!   descriptors (the server waits for one), or the server's own.
//! - [`interrupt`]: SIGINT, SIGTERM and SIGHUP stop a server cleanly, and only the socket
//!   files this process made are removed ([`interrupt::owning`]).
//! - [`turns`]: turn-taking between a demo's server and its clients in one process, so
//!   the story is told in the same order on every run.

pub mod addr;
pub mod call;
pub mod cli;
pub mod explain;
pub mod interrupt;
pub mod kind;
pub mod narrate;
pub mod observe;
pub mod per_client;
pub mod show;
pub mod strace;
pub mod turns;

use std::io;
use std::process::ExitCode;

pub use cli::{ColorWhen, Family, SockType};

/// Writes one line to standard output, like `println!`, but a closed standard output (a
/// learner piping into `head`, which has quit) is ignored instead of panicking.
pub fn print_line(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `println!` for the course's programs: formats its arguments and writes them with
/// [`print_line`], so a closed standard output never panics.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::print_line("")
    };
    ($($arg:tt)*) => {
        $crate::print_line(format_args!($($arg)*))
    };
}
pub use narrate::Narrator;

/// Who a step is: printed in its header, its `--help` and its error lines.
#[derive(Debug)]
pub struct Step {
    /// Position in the course, from 1.
    pub number: u32,
    /// The crate and binary name, e.g. `step2_bind`.
    pub crate_name: &'static str,
    /// What the step is about, in a few words.
    pub title: &'static str,
    /// The lesson file, relative to the repository root.
    pub lesson: &'static str,
}

/// Why a step stopped early. `main` turns it into one line on stderr and an exit code.
#[derive(Debug)]
pub enum Failure {
    /// The command line asks for something impossible (exit code 2).
    Usage(String),
    /// A socket call failed (exit code 1). `call` is the call as narrated.
    Socket { call: String, error: io::Error },
    /// A host name did not resolve (exit code 1).
    Lookup { host: String, message: String },
    /// The peer broke the conversation's rules, e.g. vanished in mid-message (exit code 1).
    Peer(String),
}

impl Failure {
    /// The error of a failed socket call, if this is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Failure::Socket { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The errno of a failed socket call (`libc::ECONNREFUSED`), if this is one.
    pub fn errno(&self) -> Option<i32> {
        self.io_error().and_then(io::Error::raw_os_error)
    }

    /// Whether a non-blocking call found nothing to do (EAGAIN / EWOULDBLOCK).
    pub fn would_block(&self) -> bool {
        self.io_error()
            .is_some_and(|error| error.kind() == io::ErrorKind::WouldBlock)
    }
}

impl Failure {
    /// The exit code this failure ends the program with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Ends a step: on failure, prints the one-line explanation on stderr and picks the exit code.
pub fn finish(say: &Narrator, result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            say.failure_line(&failure);
            ExitCode::from(failure.exit_code())
        }
    }
}
