//! Test helpers for the course.
//!
//! - [`transcript`]: runs every ```` ```console ```` block of a lesson and compares the real
//!   output with the block, wildcards allowed (`[..]` within a line, `...` for any lines).
//! - [`excerpt`]: checks that every code block naming a file (`// crates/…/main.rs` as its
//!   first line) is found in that file.
//! - [`bin_sh`]: `$(scripts/bin.sh NAME)` in a transcript's command is the program under test.
//! - [`process`]: runs a step binary with a time limit, or keeps one running and waits,
//!   bounded in time, for a line of its output.
//!
//! Everything here is bounded in time: a test that hangs is a test that lies.

pub mod bin_sh;
pub mod excerpt;
pub mod process;
pub mod strace;
pub mod transcript;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root (the workspace directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit sits two levels below the root")
        .to_path_buf()
}

/// The directory cargo puts binaries in for this build (`target/debug`), found from the
/// running test executable (`target/debug/deps/<test>`), so that a custom target directory
/// works too.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps")
        .to_path_buf()
}

/// The path of a workspace binary, building every binary and example of the workspace once
/// per test process first (a no-op when `cargo test --workspace` has built them already).
pub fn bin(name: &str) -> PathBuf {
    build_workspace();
    bin_dir().join(name)
}

/// The path of a workspace example, built like [`bin`].
pub fn example(name: &str) -> PathBuf {
    build_workspace();
    bin_dir().join("examples").join(name)
}

fn build_workspace() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let profile = bin_dir()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "--workspace", "--bins", "--examples"])
            .current_dir(root());
        if profile == "release" {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "cargo build of the workspace failed");
    });
}

/// Builds the bare programs (the `solutions` package, not a workspace member) where
/// `cargo course check NAME --solution` looks for them (`target/course/solutions`), once per
/// test process, so that the lessons' transcripts of those checks never wait for a compiler.
pub fn build_solutions() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target"))
            .join("course/solutions");
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--bins", "--manifest-path"])
            .arg(root().join("solutions/Cargo.toml"))
            .arg("--target-dir")
            .arg(target)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build of solutions/ failed");
    });
}

/// Where a program is on `PATH`, if it is installed.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The real python3 executable, past any shim script (pyenv's `python3` on `PATH` is a shell
/// script, which strace and process counts would see instead of Python), if there is one.
pub fn python3() -> Option<PathBuf> {
    let out = Command::new(which("python3")?)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let exe = String::from_utf8(out.stdout).ok()?;
    let exe = exe.trim();
    (!exe.is_empty()).then(|| PathBuf::from(exe))
}

/// A port on 127.0.0.1 that a listening socket holds, for testing EADDRINUSE: keep the
/// listener alive while the port must stay taken.
pub fn port_in_use() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("its address").port();
    (listener, port)
}

/// Says why a check is skipped: on stderr, where `cargo test -- --nocapture` shows it, and,
/// when the variable [`SKIP_LOG`] names a file, as one line appended to that file, which
/// `scripts/test.sh` reads to list every skipped check after the run. The test still passes,
/// so the reason must be honest and specific; a check skipped for want of a program says
/// "NAME is not installed" (with `--require-tools`, and in CI, scripts/test.sh fails on those).
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIPPED {test}: {reason}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os(SKIP_LOG) {
        use std::io::Write;
        // One write of one short line to a file opened for appending: lines written by tests
        // running in parallel never mix.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            panic!(
                "cannot record the skip in {}: {e}",
                Path::new(&log).display()
            );
        }
    }
}

/// The environment variable naming the file [`skip`] appends to (set by `scripts/test.sh`).
pub const SKIP_LOG: &str = "COURSE_SKIP_LOG";
