//! The clients of steps 6 to 10 as the checks run them: bytes in on stdin, bytes out on stdout
//! (megabytes, not lines), each pipe served by a thread of its own so that a program writing
//! a lot never stalls on a full pipe. (A server is run with [`Running`](crate::program::Running).)

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::program::describe_exit;

/// A program started by [`Piped::start`]; killed when dropped.
pub struct Piped {
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

/// What a program left behind: `status` is None when it had to be killed.
pub struct Ended {
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Ended {
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Whether it stopped at a todo!() of the exercise.
    pub fn reached_todo(&self) -> bool {
        self.stderr.contains("not yet implemented")
    }

    /// How it ended, in words, as [`Running::what_happened`](crate::program::Running) says it:
    /// still running after `limit`, a todo!() it reached, its exit code, its first error line.
    pub fn how(&self, limit: Duration) -> String {
        let Some(status) = self.status else {
            return format!("it was still running after {limit:?}, and was stopped");
        };
        if let Some(at) = self.stderr.find("not yet implemented") {
            let message = self.stderr[at..].lines().next().unwrap_or_default();
            let place = self
                .stderr
                .lines()
                .find_map(|line| line.split_once("panicked at ").map(|(_, at)| at))
                .map(|at| format!(" at {}", at.trim_end_matches(':')))
                .unwrap_or_default();
            return format!(
                "it stopped at a todo!(){place} ({message}): that part of the exercise is yours to write"
            );
        }
        let mut said = describe_exit(status);
        if let Some(line) = self.stderr.lines().find(|l| !l.trim().is_empty()) {
            said.push_str(&format!(", saying: {}", line.trim()));
        }
        said
    }
}

impl Piped {
    pub fn start(program: &Path, args: &[String], stdin: Vec<u8>) -> std::io::Result<Piped> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut input = child.stdin.take().expect("piped");
        std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let stdout = collect(child.stdout.take().expect("piped"));
        let stderr = collect(child.stderr.take().expect("piped"));
        Ok(Piped {
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits at most `limit` for the program to exit; kills it after that.
    pub fn finish(mut self, limit: Duration) -> Ended {
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        let stdout = self.stdout.take().map(|t| t.join().unwrap_or_default());
        let stderr = self.stderr.take().map(|t| t.join().unwrap_or_default());
        Ended {
            status,
            stdout: stdout.unwrap_or_default(),
            stderr: String::from_utf8_lossy(&stderr.unwrap_or_default()).into_owned(),
        }
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = from.read_to_end(&mut all);
        all
    })
}
