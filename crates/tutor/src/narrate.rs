//! Narration: every socket call a step makes is printed as it is made.
//!
//! A call is a block of lines:
//!
//! ```text
//! -> bind(3, 127.0.0.1:0)                 the system call, as strace shows it
//!    socket2: socket.bind(&address)       the Rust that made it
//! <- 0                                    what came back
//!    the kernel chose port 40321          what that means
//! ```
//!
//! `->` marks a call going into the kernel, `<-` its answer. Colour only underlines what the
//! text already says, and is off when the output is not a terminal or `NO_COLOR` is set.

use std::fmt::Display;
use std::io::{self, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use colored::Colorize;

use crate::{Failure, Step, explain};
use clap::ValueEnum;

/// `--color`: when to colour the output.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// Colour when the output is a terminal and NO_COLOR is not set
    #[default]
    Auto,
    /// Always colour, even into a pipe or with NO_COLOR set
    Always,
    /// Never colour
    Never,
}

impl ColorWhen {
    /// Whether to colour a stream that is (or is not) a terminal. An explicit `always` or
    /// `never` wins over the `NO_COLOR` environment variable; `auto` honours it.
    pub fn enabled(self, is_terminal: bool) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
                is_terminal && !no_color
            }
        }
    }
}

/// Prints what a step does. Cheap to clone; give each thread its own with [`Narrator::actor`].
#[derive(Clone, Debug)]
pub struct Narrator {
    step: &'static Step,
    color: bool,
    color_stderr: bool,
    actor: Option<String>,
    /// A quiet narrator prints no call that succeeds ([`Narrator::quiet`]).
    quiet: bool,
    /// How many calls this narrator and its clones have made.
    calls: Arc<AtomicU64>,
    /// Where the lines go instead of stdout, for tests of the narration itself.
    record: Option<Arc<std::sync::Mutex<String>>>,
}

/// How wide an actor's name is padded, so that the calls of several actors line up.
const ACTOR_WIDTH: usize = 10;

#[derive(Copy, Clone)]
enum Paint {
    Header,
    Call,
    Rust,
    Ok,
    Error,
    Note,
}

impl Narrator {
    /// A narrator for `step`, colouring according to `--color`.
    pub fn new(step: &'static Step, color: ColorWhen) -> Narrator {
        let color_stdout = color.enabled(io::stdout().is_terminal());
        let color_stderr = color.enabled(io::stderr().is_terminal());
        // This crate decides when to colour; `colored` must not second-guess it.
        colored::control::set_override(true);
        Narrator {
            step,
            color: color_stdout,
            color_stderr,
            actor: None,
            quiet: false,
            calls: Arc::new(AtomicU64::new(0)),
            record: None,
        }
    }

    /// The same narrator, writing its lines into a buffer ([`Narrator::recorded`]) instead
    /// of stdout: for tests of the narration itself.
    pub fn recording(&self) -> Narrator {
        Narrator {
            record: Some(Arc::default()),
            ..self.clone()
        }
    }

    /// What a [`recording`](Narrator::recording) narrator has written.
    pub fn recorded(&self) -> String {
        self.record
            .as_ref()
            .and_then(|record| record.lock().ok().map(|text| text.clone()))
            .unwrap_or_default()
    }

    /// The same narrator, but quiet: calls that succeed are made and counted, not printed; a
    /// call that fails is still shown. For the calls past a [`Budget`].
    pub fn quiet(&self) -> Narrator {
        Narrator {
            quiet: true,
            ..self.clone()
        }
    }

    /// Whether calls are printed.
    pub fn is_loud(&self) -> bool {
        !self.quiet
    }

    /// Counts a call made through [`narrate!`](crate::narrate!).
    pub fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// How many calls this narrator and its clones have made.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// A narrator for one actor of a demo (`server`, `client 1`): its lines start with the
    /// actor's name, so that a story told by several actors stays readable.
    pub fn actor(&self, name: &str) -> Narrator {
        Narrator {
            actor: Some(name.to_owned()),
            calls: Arc::new(AtomicU64::new(0)),
            ..self.clone()
        }
    }

    /// The step this narrator speaks for.
    pub fn step(&self) -> &'static Step {
        self.step
    }

    /// The first line of every run: the step, what it is about, and its lesson.
    pub fn header(&self) {
        let step = self.step;
        let line = format!("== step {}: {} ==", step.number, step.title);
        self.emit(&[
            (Paint::Header, line),
            (Paint::Note, format!("lesson: {}", step.lesson)),
        ]);
    }

    /// A heading inside a run, for steps that tell their story in parts.
    pub fn section(&self, title: impl Display) {
        crate::outln!();
        self.emit(&[(Paint::Header, format!("-- {title} --"))]);
    }

    /// A system call about to be made: as `strace` shows it, and the Rust that makes it.
    pub fn call(&self, syscall: impl Display, rust: impl Display) {
        self.call_labelled(syscall, "socket2", rust);
    }

    /// A library call that is not a socket call (`getaddrinfo`, `unlink`), made through std.
    pub fn call_lib(&self, call: impl Display, rust: impl Display) {
        self.call_labelled(call, "std", rust);
    }

    fn call_labelled(&self, call: impl Display, label: &str, rust: impl Display) {
        let call = call.to_string();
        self.emit(&[
            (Paint::Call, format!("-> {call}")),
            (Paint::Rust, format!("   {label}: {rust}")),
        ]);
    }

    /// What the last call returned.
    pub fn returned(&self, value: impl Display) {
        self.emit(&[(Paint::Ok, format!("<- {value}"))]);
    }

    /// An error a call returned: `<- -1 ECONNREFUSED (Connection refused)`.
    pub fn returned_error(&self, error: &io::Error) {
        self.emit(&[(Paint::Error, self.error_result(error))]);
    }

    /// The hint for a failed call, as a note: for demos that provoke an error on purpose
    /// and go on (`Err(failure) => say.hint(&failure)`).
    pub fn hint(&self, failure: &Failure) {
        if let Failure::Socket { call, error } = failure {
            // The whole call, not only its name: a bind to a path has hints of its own.
            let (hint, _) = explain::hint_for_call(call, error);
            if !hint.is_empty() {
                self.note(hint);
            }
        }
    }

    /// An explanation: what a result means, or what to try.
    pub fn note(&self, text: impl Display) {
        let text = text.to_string();
        let lines: Vec<(Paint, String)> = text
            .lines()
            .map(|line| (Paint::Note, format!("   {line}")))
            .collect();
        self.emit(&lines);
    }

    /// Announces that a server is ready for peers, and which process it is:
    /// `ready: listening on 127.0.0.1:40321 (pid 1234)`. Tests and scripts wait for this line
    /// and read the address before the pid, so every server prints it once its socket can be
    /// reached (`what` is `listening on` for a stream server, `bound to` for a datagram one).
    /// The pid is for `/proc/PID/...` and `strace -p PID` (pgrep cuts names at 15 characters).
    pub fn ready(&self, what: &str, address: &socket2::SockAddr) {
        let (address, pid) = (crate::show::address(address), std::process::id());
        self.emit(&[(Paint::Ok, format!("ready: {what} {address} (pid {pid})"))]);
    }

    /// A line of the story that is not about one call (`waiting for Enter ...`).
    pub fn say(&self, text: impl Display) {
        self.emit(&[(Paint::Note, text.to_string())]);
    }

    /// Prints the one-line explanation of why the step failed, on stderr.
    pub fn failure_line(&self, failure: &Failure) {
        let lesson_of = |lesson: Option<&'static str>| lesson.unwrap_or(self.step.lesson);
        let line = match failure {
            Failure::Usage(message) => format!("error: {message} (see --help)"),
            Failure::Socket { call, error } => {
                let (hint, lesson) = explain::hint_for_call(call, error);
                let hint = if hint.is_empty() {
                    String::new()
                } else {
                    format!(": {hint}")
                };
                format!(
                    "error: {call} failed with {}{hint}; see {}",
                    explain::describe(error),
                    lesson_of(lesson)
                )
            }
            Failure::Lookup { host, message } => {
                let (name, hint) = explain::lookup_hint(message);
                format!(
                    "error: cannot resolve host '{host}': {name} ({message}): {hint}; see {}",
                    lesson_of(Some("lessons/02-bind.md"))
                )
            }
            Failure::Peer(message) => {
                format!("error: {message}; see {}", self.step.lesson)
            }
        };
        // Host names and paths came from the user: one line, no terminal escapes.
        let line = crate::show::printable(&line);
        let line = if self.color_stderr {
            line.red().bold().to_string()
        } else {
            line
        };
        // A closed stderr must not turn this error (exit 1) into a panic (exit 101).
        let mut err = io::stderr().lock();
        let _ = writeln!(err, "{line}");
        let _ = err.flush();
    }

    fn error_result(&self, error: &io::Error) -> String {
        match error.raw_os_error() {
            Some(_) => format!("<- -1 {}", explain::describe(error)),
            None => format!("<- {}", explain::describe(error)),
        }
    }

    /// Writes lines as one block, so that lines of other threads cannot come between them.
    fn emit(&self, lines: &[(Paint, String)]) {
        let prefix = match &self.actor {
            Some(name) => format!("{name:<ACTOR_WIDTH$}"),
            None => String::new(),
        };
        let mut block = String::new();
        for (paint, text) in lines {
            // Line breaks inside a text are the narration's own, and each line gets the
            // actor's name (one socket2 method that makes several system calls); any other
            // control character came from the user (a path, a host name) and is shown escaped.
            for line in text.split('\n') {
                block.push_str(&prefix);
                block.push_str(&self.paint(*paint, &crate::show::printable(line)));
                block.push('\n');
            }
        }
        if let Some(record) = &self.record {
            if let Ok(mut text) = record.lock() {
                text.push_str(&block);
            }
            return;
        }
        let mut out = io::stdout().lock();
        // A closed stdout (a learner piping into `head`) is no reason to stop the step.
        let _ = out.write_all(block.as_bytes());
        let _ = out.flush();
    }

    fn paint(&self, paint: Paint, text: &str) -> String {
        if !self.color {
            return text.to_owned();
        }
        match paint {
            Paint::Header => text.bold().to_string(),
            Paint::Call => text.bold().cyan().to_string(),
            Paint::Rust => text.dimmed().to_string(),
            Paint::Ok => text.green().to_string(),
            Paint::Error => text.red().bold().to_string(),
            Paint::Note => text.to_owned(),
        }
    }

    /// A library call made through a crate other than socket2 or std (`getaddrinfo` through
    /// `dns_lookup`): `label` names the crate on the line of Rust.
    pub fn call_library(&self, call: impl Display, label: &str, rust: impl Display) {
        self.call_labelled(call, label, rust);
    }
}

/// A narration budget: the first `limit` items (a client's receives, a server's connections)
/// are narrated in full, the rest quietly, so that a busy program's story does not drown in
/// its calls. Every step that narrates a loop uses this one.
#[derive(Debug, Clone)]
pub struct Budget {
    limit: u64,
    used: u64,
    what: &'static str,
    flag: &'static str,
}

impl Budget {
    /// A budget of `limit` items; `what` names them in the note printed when it runs out
    /// (`"recv() and send() calls of this client"`), `flag` the option that sets it.
    pub fn new(limit: u64, what: &'static str, flag: &'static str) -> Budget {
        Budget {
            limit,
            used: 0,
            what,
            flag,
        }
    }

    /// The narrator for the next item: `say` itself while the budget lasts, a quiet one
    /// after; the first time it runs out, a note says so.
    pub fn next(&mut self, say: &Narrator) -> Narrator {
        self.used += 1;
        if self.used <= self.limit {
            return say.clone();
        }
        if self.used == self.limit + 1 && self.limit > 0 {
            say.note(format!(
                "(the next {} are not shown: {} {}; a summary follows)",
                self.what, self.flag, self.limit
            ));
        }
        say.quiet()
    }

    /// Whether the budget has run out.
    pub fn spent(&self) -> bool {
        self.used > self.limit
    }
}
