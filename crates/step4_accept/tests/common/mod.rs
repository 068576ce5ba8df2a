//! Helpers the tests of step 4 share: the program, and reading its narration.
#![allow(dead_code)] // each test file uses some of them

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const LIMIT: Duration = Duration::from_secs(30);

pub fn step4() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step4_accept"))
}

/// What each call whose Rust is `rust` returned: the text after `<- ` on the next line of the
/// same actor (in a demo, the text before the arrow names the actor).
pub fn results_of(out: &str, rust: &str) -> Vec<String> {
    let lines: Vec<&str> = out.lines().collect();
    let mut results = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(start) = line.find(&format!("   socket2: {rust}")) else {
            continue;
        };
        let result_prefix = format!("{}<- ", &line[..start]);
        if let Some(result) = lines[at + 1..]
            .iter()
            .find_map(|l| l.strip_prefix(&result_prefix))
        {
            results.push(result.to_owned());
        }
    }
    results
}

/// A socket path of its own for each test, in the temporary directory.
pub fn unique_path(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("step4-{}-{n}-{name}.sock", std::process::id()))
}
