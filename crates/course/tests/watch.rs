//! `cargo course watch`, run on a course of its own (a temporary copy of the exercises as the
//! course gives them): it checks, waits without spinning, checks again when the file is saved,
//! moves on once it passes, and stops on Ctrl-C. The learner's own exercises/ are never touched.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The exercises' names, in order, from info.toml.
fn names() -> Vec<String> {
    let text = fs::read_to_string(root().join("crates/course/info.toml")).expect("info.toml");
    let table: toml::Table = text.parse().expect("info.toml parses");
    table["exercise"]
        .as_array()
        .expect("[[exercise]]")
        .iter()
        .map(|e| e["name"].as_str().expect("a name").to_owned())
        .collect()
}

/// `course watch` and its temporary course. Dropping it kills the checker if it still runs, and
/// removes the directory. (It stays in the test's process group: a Ctrl-C that stops the test
/// run stops it too.)
struct Watch {
    child: Child,
    dir: PathBuf,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Watch {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32).expect("a pid")
    }

    /// Waits until `deadline` for a line that starts with `start`; panics with every line seen.
    fn expect(&mut self, start: &str, deadline: Instant) {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.starts_with(start);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(e) => panic!(
                    "no line `{start}...` ({e}); watch printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Whether the checker ignores SIGINT: it inherits that from a test run started in the
    /// background of a script (where a shell ignores SIGINT for it), never from a terminal.
    fn ignores_sigint(&self) -> bool {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("SigIgn:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (2 - 1)) != 0)
    }

    /// The scheduling state of the checker's main thread: 'S' asleep, 'R' running or ready.
    fn state(&self) -> char {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("stat");
        let (_, after) = stat.rsplit_once(')').expect("(comm)");
        after.trim_start().chars().next().expect("a state")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = kill_process(self.pid(), Signal::KILL);
            let _ = self.child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Sends every line of `from` (stdout or stderr) to `to`.
fn forward(from: impl Read + Send + 'static, to: mpsc::Sender<String>) {
    thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if to.send(line).is_err() {
                return;
            }
        }
    });
}

/// A temporary course: exercises/ with its manifest and every exercise as the course gives it.
fn course_copy() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("course-watch-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let exercises = dir.join("exercises");
    fs::create_dir_all(&exercises).expect("a dir");
    for file in ["Cargo.toml", "Cargo.lock"] {
        fs::copy(root().join("exercises").join(file), exercises.join(file)).expect("copy");
    }
    for name in names() {
        let untouched = root().join(format!("crates/course/fixtures/{name}/untouched.rs"));
        fs::copy(untouched, exercises.join(format!("{name}.rs"))).expect("copy");
    }
    dir
}

#[test]
fn watch_checks_on_each_save_moves_on_and_stops_on_ctrl_c() {
    let dir = course_copy();
    let mut child = Command::new(env!("CARGO_BIN_EXE_course"))
        .args(["watch", "01_create"])
        .env("COURSE_ROOT", &dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("CARGO", env!("CARGO"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("course runs");
    let (tx, lines) = mpsc::channel();
    forward(child.stdout.take().expect("stdout"), tx.clone());
    forward(child.stderr.take().expect("stderr"), tx);
    let mut watch = Watch {
        child,
        dir,
        lines,
        seen: Vec::new(),
    };
    // Two builds of one small program (socket2 the first time) and three short checks: a few
    // seconds; the deadline is for a machine that is busy with other tests.
    let deadline = Instant::now() + Duration::from_secs(60);

    watch.expect("FAIL exercises/01_create.rs", deadline);
    watch.expect("Watching exercises/01_create.rs", deadline);
    let solution = fs::read(root().join("solutions/01_create.rs")).expect("the solution");
    fs::write(watch.dir.join("exercises/01_create.rs"), solution).expect("save");
    watch.expect("PASS exercises/01_create.rs", deadline);
    watch.expect(
        "On to the next exercise: exercises/02_bind.rs (step 2)",
        deadline,
    );
    watch.expect("FAIL exercises/02_bind.rs", deadline);
    watch.expect("Watching exercises/02_bind.rs", deadline);

    // Waiting for a save, it sleeps: a loop that polled without sleeping would be found
    // running (or ready to run) at nearly every look, whatever the machine's load.
    let looks = 20;
    let mut asleep = 0;
    for _ in 0..looks {
        if watch.state() == 'S' {
            asleep += 1;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        asleep * 4 >= looks * 3,
        "watch was asleep at only {asleep} of {looks} looks while waiting for a save"
    );

    // Ctrl-C: SIGINT, what a terminal sends (to the whole foreground group; between checks the
    // checker has no children to send it to).
    if watch.ignores_sigint() {
        eprintln!(
            "not checked: watch stops on Ctrl-C (this test run ignores SIGINT, and so does watch)"
        );
        return;
    }
    kill_process(watch.pid(), Signal::INT).expect("SIGINT");
    let stopped_by = loop {
        if let Some(status) = watch.child.try_wait().expect("wait") {
            break status.signal();
        }
        assert!(
            Instant::now() < deadline,
            "watch did not stop on SIGINT; it printed:\n{}",
            watch.seen.join("\n")
        );
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(stopped_by, Some(2), "{}", watch.seen.join("\n"));
}
