//! The progress line a run prints while it runs.

use std::io::{self, IsTerminal};

/// The progress line: redrawn in place on a terminal, one line a second otherwise.
pub struct Progress {
    quiet: bool,
    terminal: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            terminal: io::stderr().is_terminal(),
        }
    }

    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        if self.terminal {
            eprint!("\r{text}\x1b[K");
        } else {
            eprintln!("{text}");
        }
    }

    pub fn end(&self) {
        if !self.quiet && self.terminal {
            eprintln!();
        }
    }
}
