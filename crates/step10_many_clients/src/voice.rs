//! Narration with a budget.
//!
//! A server with 10,000 clients cannot print every call it makes: the story would drown in
//! it. So the first few connections (`--narrate N`) are narrated in full, exactly as in the
//! earlier steps, and the rest are served in silence. A [`Voice`] is either a
//! [`Narrator`] or nothing; the calls it narrates take closures, so that a silent
//! connection does not even format the text nobody will read.

use std::fmt::Display;
use std::io;

use tutor::{Failure, Narrator};

/// A narrator for one connection, or silence.
#[derive(Clone)]
pub struct Voice {
    say: Option<Narrator>,
}

impl Voice {
    /// A voice that narrates every call.
    pub fn loud(say: Narrator) -> Voice {
        Voice { say: Some(say) }
    }

    /// A voice that says nothing.
    pub fn silent() -> Voice {
        Voice { say: None }
    }

    /// Loud for the first `budget` items (counting from 1), silent after.
    pub fn within(say: &Narrator, number: u64, budget: u64) -> Voice {
        if number <= budget {
            Voice::loud(say.clone())
        } else {
            Voice::silent()
        }
    }

    pub fn is_loud(&self) -> bool {
        self.say.is_some()
    }

    /// The narrator, when loud.
    pub fn narrator(&self) -> Option<&Narrator> {
        self.say.as_ref()
    }

    /// A socket call, made through socket2.
    pub fn call(&self, syscall: impl FnOnce() -> String, rust: impl Display) {
        if let Some(say) = &self.say {
            say.call(syscall(), rust);
        }
    }

    /// A call made through mio (epoll) or std (a thread), labelled as such.
    pub fn call_via(&self, label: &str, syscall: impl FnOnce() -> String, rust: impl Display) {
        if let Some(say) = &self.say {
            // tutor's Narrator labels calls "socket2:" or "std:"; these lines are the same
            // block with another label.
            say.say(format!("-> {}", syscall()));
            say.say(format!("   {label}: {rust}"));
        }
    }

    pub fn returned(&self, value: impl Display) {
        if let Some(say) = &self.say {
            say.returned(value);
        }
    }

    pub fn error(&self, error: &io::Error) {
        if let Some(say) = &self.say {
            say.error(error);
        }
    }

    pub fn note(&self, text: impl Display) {
        if let Some(say) = &self.say {
            say.note(text);
        }
    }

    /// A call that failed in a way that ends the server: narrated even when silent, since
    /// the one-line error must name the call.
    pub fn fail(&self, syscall: impl FnOnce() -> String, error: io::Error) -> Failure {
        let call = syscall();
        match &self.say {
            Some(say) => say.check::<()>(Err(error)).unwrap_err(),
            None => Failure::Socket { call, error },
        }
    }
}
