//! Building the program under check and watching it run: its output lines, its exit, and what
//! the kernel says about it under /proc. Every wait here is bounded.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::Failure;

/// The course's root directory (where the workspace's Cargo.toml is); `COURSE_ROOT` overrides
/// it (the checker's own tests use a copy).
pub fn root() -> PathBuf {
    match std::env::var_os("COURSE_ROOT") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    }
}

/// Where `cargo course` builds the package in `dir` (e.g. "exercises"): a target directory of
/// its own under the workspace's, so building an exercise never waits for, or disturbs, the
/// workspace's build.
pub fn target_dir(dir: &str) -> PathBuf {
    let base = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(target) => PathBuf::from(target),
        None => root().join("target"),
    };
    base.join("course").join(dir.replace('/', "-"))
}

/// Builds program `bin` of the package in `root()/dir` and returns the path of the executable.
/// Cargo's own messages (compile errors) go to the terminal. `Err` says why there is none.
pub fn build(dir: &str, bin: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = root().join(dir).join("Cargo.toml");
    let target = target_dir(dir);
    let status = Command::new(cargo)
        .args(["build", "-q", "--bin", bin, "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "{dir}/{bin}.rs does not compile: cargo's messages above say where"
        ));
    }
    Ok(target.join("debug").join(bin))
}

/// One line the program printed, and where.
enum Line {
    Out(String),
    Err(String),
}

/// A program under check, started by [`Running::start`]. Killed when dropped.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    /// Every line read so far (stderr's marked), for failure messages.
    seen: Vec<String>,
    status: Option<ExitStatus>,
}

impl Running {
    /// Starts `program` with `args`, stdin a pipe the checker controls, stdout and stderr read
    /// line by line.
    pub fn start(program: &Path, args: &[&str]) -> Result<Running, Failure> {
        let mut child = Command::new(program)
            .args(args)
            // A panic's message is what matters here, not a backtrace.
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Failure::new(
                    "start the program",
                    format!("{} to run", program.display()),
                    format!("it could not be started: {e}"),
                )
            })?;
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().map(BufReader::new);
        let err = child.stderr.take().map(BufReader::new);
        let tx_err = tx.clone();
        if let Some(out) = out {
            thread::spawn(move || {
                for line in out.lines().map_while(Result::ok) {
                    if tx.send(Line::Out(line)).is_err() {
                        break;
                    }
                }
            });
        }
        if let Some(err) = err {
            thread::spawn(move || {
                for line in err.lines().map_while(Result::ok) {
                    if tx_err.send(Line::Err(line)).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Running {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            status: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits, at most `limit`, for a stdout line from which `parse` gets a value.
    /// `wanted` describes the line for the failure message, e.g. "listening on ADDRESS".
    pub fn expect_line<T>(
        &mut self,
        wanted: &str,
        limit: Duration,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, Failure> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Line::Out(line)) => {
                    self.seen.push(line.clone());
                    if let Some(value) = parse(&line) {
                        return Ok(value);
                    }
                }
                Ok(Line::Err(line)) => self.seen.push(format!("(stderr) {line}")),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    // Disconnected: both pipes closed, so it has exited or is about to.
                    if matches!(self.lines.try_recv(), Err(mpsc::TryRecvError::Disconnected)) {
                        self.wait_exit(Duration::from_secs(2));
                    }
                    return Err(Failure::new(
                        "wait for the program's first line",
                        format!("a line `{wanted}` within {limit:?}"),
                        self.what_happened(),
                    ));
                }
            }
        }
    }

    /// The address in the first line that contains `prefix`, taken from the word after it:
    /// `listening on 127.0.0.1:40321` gives 127.0.0.1:40321.
    pub fn expect_address(&mut self, prefix: &str) -> Result<std::net::SocketAddr, Failure> {
        let wanted = format!("{prefix} ADDRESS");
        self.expect_line(&wanted, Duration::from_secs(10), |line| {
            let (_, rest) = line.split_once(prefix)?;
            let word = rest.split_whitespace().next()?;
            word.trim_end_matches([';', ',', '.', ':']).parse().ok()
        })
    }

    /// Sends a line to the program's stdin (Enter), then closes it.
    pub fn press_enter(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            // A program that has already exited closed its end: nothing to tell it.
            let _ = stdin.write_all(b"\n");
        }
    }

    /// Waits, at most `limit`, for the program to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The program's exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Lines printed so far, after collecting whatever is waiting in the pipes.
    fn drain(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Line::Out(line)) => self.seen.push(line),
                Ok(Line::Err(line)) => self.seen.push(format!("(stderr) {line}")),
                Err(_) => return,
            }
        }
    }

    /// What the program did, in words, for a failure's "happened": still running, or how it
    /// exited (a todo!() it reached, a panic, an error it returned), and its last lines.
    pub fn what_happened(&mut self) -> String {
        let exited = self.exited();
        // An exited program's pipes end soon; a running one's lines so far are enough.
        self.drain(Duration::from_millis(if exited.is_some() {
            500
        } else {
            50
        }));
        let text = self.seen.join("\n");
        let mut said = match exited {
            None => "it is still running".to_owned(),
            Some(status) => describe_exit(status),
        };
        if let Some(at) = text.find("not yet implemented") {
            let rest = &text[at..];
            let message = rest.lines().next().unwrap_or(rest);
            // "thread 'main' panicked at exercises/01_create.rs:17:26:"
            let place = text
                .lines()
                .find_map(|line| line.split_once("panicked at ").map(|(_, at)| at))
                .map(|at| format!(" at {}", at.trim_end_matches(':')))
                .unwrap_or_default();
            said = format!(
                "it stopped at a todo!(){place} ({message}): that part of the exercise is yours to write"
            );
        } else if text.contains("panicked at") {
            said.push_str(": it panicked (an unwrap() or expect() on an error?)");
        }
        if self.seen.is_empty() {
            format!("{said}, and printed nothing")
        } else {
            let last: Vec<&str> = self
                .seen
                .iter()
                .rev()
                .take(6)
                .rev()
                .map(String::as_str)
                .collect();
            format!("{said}; its last lines:\n      {}", last.join("\n      "))
        }
    }

    /// The descriptors the program has open that are sockets: (fd, inode).
    pub fn socket_fds(&self) -> Vec<(i32, u64)> {
        let Ok(entries) = fs::read_dir(format!("/proc/{}/fd", self.pid())) else {
            return Vec::new();
        };
        let mut fds: Vec<(i32, u64)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let fd = entry.file_name().to_str()?.parse().ok()?;
                let target = fs::read_link(entry.path()).ok()?;
                let inode = target
                    .to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()?;
                Some((fd, inode))
            })
            .collect();
        fds.sort();
        fds
    }

    /// A copy of descriptor `fd` of the program (pidfd_getfd), to ask the kernel about the
    /// socket itself. `Err` says why not (an old kernel, or no permission to look).
    pub fn copy_socket(&self, fd: i32) -> Result<Socket, String> {
        use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, pidfd_getfd, pidfd_open};
        let pid = Pid::from_raw(self.pid() as i32).ok_or("no pid")?;
        let pidfd = pidfd_open(pid, PidfdFlags::empty()).map_err(|e| format!("pidfd_open: {e}"))?;
        let target = rustix::fd::RawFd::from(fd);
        let copy: OwnedFd = pidfd_getfd(pidfd.as_fd(), target, PidfdGetfdFlags::empty())
            .map_err(|e| format!("pidfd_getfd: {e}"))?;
        Ok(Socket::from(copy))
    }

    /// The program's scheduling state from /proc/PID/stat: 'R' running (or ready to run), 'S'
    /// asleep, e.g. waiting in recv.
    pub fn state(&self) -> Option<char> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .next()?
            .chars()
            .next()
    }

    /// CPU seconds the program has used (user + system), from /proc/PID/stat.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // The command name is in parentheses and may hold spaces: count fields after it.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        Some((utime + stime) / ticks)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// "it exited with code 1", "it was killed by signal 9".
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(101), _) => "it exited with code 101 (a panic)".to_owned(),
        (Some(code), _) => format!("it exited with code {code}"),
        (None, Some(signal)) => format!("it was killed by signal {signal}"),
        (None, None) => "it ended".to_owned(),
    }
}

/// Where strace is installed, if it is: checks use it when they can, and say so when not.
pub fn strace() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("strace"))
            .find(|path| path.is_file())
    })
}

/// Runs `program` with `args` under `strace -f -e trace=CALLS`, its stdin at end of file, and
/// returns strace's lines for those calls (`socket(AF_INET, ...) = 3`). `None` when strace is
/// not installed; `Some(Err)` says what went wrong.
pub fn trace(program: &Path, args: &[&str], calls: &str) -> Option<Result<Vec<String>, String>> {
    let strace = strace()?;
    // A file of this run's own: the process id and a counter, for checks run in parallel.
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // Made new (a name that is taken is passed over), so that removing it removes only ours.
    let log = (0..1000)
        .map(|_| {
            let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::env::temp_dir().join(format!("course-strace-{}-{run}.log", std::process::id()))
        })
        .find(|path| {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .is_ok()
        })?;
    let mut child = match Command::new(strace)
        .args(["-f", "-qq", "-e"])
        .arg(format!("trace={calls}"))
        .arg("-o")
        .arg(&log)
        .arg(program)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Some(Err(format!("strace could not start: {e}"))),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let finished = loop {
        match child.try_wait() {
            Ok(Some(_)) => break true,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            _ => break false,
        }
    };
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = fs::read_to_string(&log);
    // The log is this run's own file: remove it, and only it.
    let _ = fs::remove_file(&log);
    match text {
        Ok(text) if finished => Some(Ok(text
            .lines()
            // -f prefixes each line with the pid of the thread that made the call.
            .map(|line| {
                line.split_once(' ')
                    .map_or(line, |(_, rest)| rest)
                    .trim()
                    .to_owned()
            })
            .filter(|line| !line.starts_with("+++") && !line.starts_with("---"))
            .collect())),
        Ok(_) => Some(Err("the traced program did not end within 10 s".to_owned())),
        Err(e) => Some(Err(format!("no strace log: {e}"))),
    }
}
