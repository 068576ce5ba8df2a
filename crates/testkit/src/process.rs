//! Running step binaries from tests, always within a time limit.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished program printed, and how it ended.
#[derive(Debug)]
pub struct Finished {
    /// Standard output and standard error, interleaved as a terminal would show them.
    pub output: String,
    /// The exit code; `None` if a signal ended the program.
    pub code: Option<i32>,
}

impl Finished {
    /// The output's lines that contain `needle`.
    pub fn lines_with<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.output.lines().filter(move |l| l.contains(needle))
    }

    /// Whether some line contains `needle`.
    pub fn says(&self, needle: &str) -> bool {
        self.output.lines().any(|l| l.contains(needle))
    }
}

/// Runs `program` with `args`, standard input closed, until it exits or `limit` passes (then
/// it is killed and this panics). Standard output and error go to one pipe, in order.
pub fn run<I, S>(program: &Path, args: I, limit: Duration) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args);
    run_command(command, limit)
}

/// Runs a prepared command like [`run`]. Its stdout and stderr are replaced by one pipe;
/// stdin is closed unless the command set it.
pub fn run_command(mut command: Command, limit: Duration) -> Finished {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    command
        .stdout(writer.try_clone().expect("a pipe end"))
        .stderr(writer);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
    // The command holds our copies of the pipe's write end: drop it, or we never see EOF.
    drop(command);
    let output = read_all_in_background(reader);
    let code = wait_with_limit(&mut child, limit);
    let output = output
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| "<output did not end: a child of the program holds it open>".into());
    Finished { output, code }
}

/// A standard input that holds `text` and then ends, for [`run_command`]: e.g. "\n" for a
/// program that waits for Enter (at end of input alone it would wait for a signal).
pub fn input(text: &str) -> std::process::Stdio {
    use std::io::Write;
    let (reader, mut writer) = std::io::pipe().expect("a pipe");
    // A few bytes fit in the pipe's buffer: this write never blocks.
    writer
        .write_all(text.as_bytes())
        .expect("write to the pipe");
    drop(writer);
    reader.into()
}

/// What a finished program printed on each stream, kept apart.
#[derive(Debug)]
pub struct Separate {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

/// Runs a command with a time limit, keeping standard output and standard error apart (to
/// check, say, that an error is one line on stderr).
pub fn run_separately(mut command: Command, limit: Duration) -> Separate {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
    let stdout = read_all_in_background(child.stdout.take().expect("piped stdout"));
    let stderr = read_all_in_background(child.stderr.take().expect("piped stderr"));
    let code = wait_with_limit(&mut child, limit);
    let collect =
        |rx: Receiver<String>| rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    Separate {
        stdout: collect(stdout),
        stderr: collect(stderr),
        code,
    }
}

/// Runs `program` with `args` (a DNS lookup bounded to one try of one second), checks that
/// it failed the way the course's conventions say: exit code `code`, exactly one line on
/// stderr that starts with `error: `, and no panic. Returns that line.
pub fn fails_in_one_line(program: &Path, args: &[&str], code: i32) -> String {
    let mut command = Command::new(program);
    command
        .args(args)
        .env("RES_OPTIONS", "timeout:1 attempts:1");
    let out = run_separately(command, Duration::from_secs(30));
    assert_one_line_failure(
        &format!("{} {}", program.display(), args.join(" ")),
        code,
        &out,
    );
    out.stderr.trim_end().to_owned()
}

/// Checks a finished run the way [`fails_in_one_line`] does; `what` names it in messages.
pub fn assert_one_line_failure(what: &str, code: i32, out: &Separate) {
    assert_eq!(
        out.code,
        Some(code),
        "{what}: exit code; stderr: {}",
        out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: one line on stderr, got:\n{}",
        out.stderr
    );
    assert!(lines[0].starts_with("error: "), "{what}: {}", lines[0]);
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains("panicked"), "{what} panicked:\n{text}");
        assert!(!text.contains("RUST_BACKTRACE"), "{what}:\n{text}");
    }
}

fn read_all_in_background(mut reader: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = reader.read_to_end(&mut bytes);
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

/// The address in a server's ready line, as printed: `127.0.0.1:40321` from
/// `server    ready: listening on 127.0.0.1:40321 (pid 1234)`.
pub fn ready_address(line: &str) -> Option<&str> {
    let rest = line.split_once("ready: ")?.1;
    let rest = rest
        .rsplit_once(" (pid ")
        .map_or(rest, |(before, _)| before);
    rest.rsplit(' ').next()
}

/// The pid in a server's ready line: 1234 from `ready: listening on ... (pid 1234)`.
pub fn ready_pid(line: &str) -> Option<u32> {
    let rest = line.split_once("ready: ")?.1.rsplit_once(" (pid ")?.1;
    rest.strip_suffix(')')?.parse().ok()
}

/// Waits for `child` to exit; past `limit` it is killed and the test fails.
pub fn wait_with_limit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("waitpid works") {
            Some(status) => return status.code(),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the program did not exit within {limit:?}; it was killed");
            }
            // Polling the exit status: each round is one waitpid, bounded by the deadline.
            None => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// A program left running while a test talks to it. Killed when dropped.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line read so far, for failure messages.
    pub seen: Vec<String>,
}

impl Running {
    /// Starts `program` with `args`, its stdin a pipe the test controls, its stdout and
    /// stderr merged and read line by line.
    pub fn start<I, S>(program: &Path, args: I) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(program);
        command.args(args);
        Running::start_command(command)
    }

    /// Starts a prepared command like [`Running::start`].
    pub fn start_command(mut command: Command) -> Running {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        command
            .stdin(Stdio::piped())
            .stdout(writer.try_clone().expect("a pipe end"))
            .stderr(writer);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.get_program()));
        drop(command);
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits, at most `limit`, for a line that contains `needle`, and returns it.
    pub fn expect_line(&mut self, needle: &str, limit: Duration) -> String {
        self.expect_line_where(|line| line.contains(needle), needle, limit)
    }

    /// Waits, at most `limit`, for a line that satisfies `wanted`, and returns it.
    pub fn expect_line_where(
        &mut self,
        wanted: impl Fn(&str) -> bool,
        what: &str,
        limit: Duration,
    ) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no line with {what:?} within {limit:?}; output so far:\n{}",
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the program ended before printing {what:?}; its output:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits, at most `limit`, for a server's `ready: listening on ADDRESS (pid PID)` line
    /// (or `ready: bound to ...`) and returns ADDRESS as printed: `127.0.0.1:40321`,
    /// `[::1]:40321`, or a unix socket's path.
    pub fn wait_ready(&mut self, limit: Duration) -> String {
        let line = self.expect_line_where(|l| l.contains("ready: "), "ready: ...", limit);
        ready_address(&line).unwrap_or_default().to_owned()
    }

    /// Writes to the program's standard input.
    pub fn send_stdin(&mut self, text: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            stdin.write_all(text.as_bytes()).expect("write to stdin");
            stdin.flush().expect("flush stdin");
        }
    }

    /// Closes the program's standard input (it reads end of file).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// The program's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (by number, e.g. 2 for SIGINT) with kill(1).
    pub fn signal(&self, signal: i32) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits, at most `limit`, for the program to exit, and returns its remaining output
    /// and its exit code.
    pub fn finish(mut self, limit: Duration) -> Finished {
        self.stdin.take();
        let code = wait_with_limit(&mut self.child, limit);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
        Finished {
            output: self.seen.join("\n"),
            code,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
