//! `cargo course watch [NAME]`: check an exercise, then again each time the learner saves it;
//! once it passes, go on to the next one not passed. Ctrl-C stops it (the default action of
//! SIGINT: there is nothing of its own to clean up between checks).
//!
//! Saving is seen by polling the file's modification time and length every 300 ms: no crate,
//! no busy loop (the thread sleeps between polls), and it works for editors that write in
//! place and for those that write a new file and rename it.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, SystemTime};

use crate::info::{self, Exercise};

/// How often the file is looked at.
const POLL: Duration = Duration::from_millis(300);

/// What a poll compares: the file's modification time and length; `None` while it is missing
/// (an editor between removing and renaming, or a learner who deleted it).
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Sleeps until the file at `path` is saved: its stamp differs from `before` and then stays the
/// same for one more poll, so an editor's save in two writes (truncate, then write) is checked
/// once, whole. A missing file is waited for, not checked.
fn wait_for_save(path: &Path, before: Stamp) {
    let mut last = before;
    loop {
        thread::sleep(POLL);
        let now = stamp(path);
        if now.is_some() && now != before && now == last {
            return;
        }
        last = now;
    }
}

/// Runs until every exercise passes (exit 0) or Ctrl-C stops it.
pub fn watch(first: Exercise) -> ExitCode {
    // The exercises passed while watching, so one whose pass could not be written down (see
    // `remember_pass`) is not taken up again.
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut exercise = first;
    loop {
        let file = crate::exercise_file(&exercise);
        let shown = format!("exercises/{}.rs", exercise.name);
        // Taken before the check, so a save during the build or the check is checked too.
        let mut before = stamp(&file);
        let mut passed = match crate::run_check(&exercise, false, None) {
            Some(passed) => passed,
            None => return ExitCode::from(2),
        };
        while !passed {
            tutor::outln!("Watching {shown}: save it to check it again (Ctrl-C stops).");
            wait_for_save(&file, before);
            before = stamp(&file);
            tutor::outln!();
            passed = match crate::run_check(&exercise, false, None) {
                Some(passed) => passed,
                None => return ExitCode::from(2),
            };
        }
        done.insert(exercise.name.clone());
        let next = info::exercises()
            .into_iter()
            .find(|e| !done.contains(&e.name) && !crate::passed(e));
        match next {
            Some(next) => {
                tutor::outln!(
                    "\nOn to the next exercise: exercises/{}.rs (step {}).",
                    next.name,
                    next.step
                );
                exercise = next;
            }
            None => {
                tutor::outln!("Every exercise passes. Well done.");
                return ExitCode::SUCCESS;
            }
        }
    }
}
