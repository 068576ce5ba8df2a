//! The lessons cannot drift from the code: every transcript is run, every excerpt is found
//! in its file, and the course map names every step in order.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use testkit::{excerpt, process, root, transcript};

fn lesson_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join("lessons"))
        .expect("lessons/ exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files.push(root().join("README.md"));
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_transcript_is_what_the_programs_print() {
    let bin_dir = testkit::bin_dir();
    // Build once before the lessons run in parallel: the workspace (with the course's
    // checker), and the bare programs its `cargo course check NAME --solution` runs.
    let _ = testkit::bin("step1_create");
    testkit::build_solutions();
    let handles: Vec<_> = lesson_files()
        .into_iter()
        .map(|file| {
            let bin_dir = bin_dir.clone();
            thread::spawn(move || {
                let text = fs::read_to_string(&file).expect("a lesson is readable");
                let name = relative(&file);
                let mut problems = Vec::new();
                let mut ran = 0;
                for block in transcript::blocks(&text, &name) {
                    if let Some(missing) =
                        block.requires.iter().find(|p| testkit::which(p).is_none())
                    {
                        testkit::skip(&block.origin, &format!("{missing} is not installed"));
                        continue;
                    }
                    ran += 1;
                    if let Err(problem) = transcript::check_block(&block, &root(), &bin_dir) {
                        problems.push(problem);
                    }
                }
                (name, ran, problems)
            })
        })
        .collect();
    let mut problems = Vec::new();
    let mut ran = 0;
    for handle in handles {
        let (_, count, found) = handle.join().expect("a lesson thread finished");
        ran += count;
        problems.extend(found);
    }
    assert!(ran > 0, "no transcript ran at all");
    assert!(problems.is_empty(), "\n{}", problems.join("\n\n"));
}

#[test]
fn every_excerpt_is_in_the_file_it_names() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in lesson_files() {
        let text = fs::read_to_string(&file).expect("a lesson is readable");
        match excerpt::excerpts(&text, &relative(&file)) {
            Ok(found) => {
                for one in found {
                    checked += 1;
                    if let Err(problem) = excerpt::check(&one, &root()) {
                        problems.push(problem);
                    }
                }
            }
            Err(found) => problems.extend(found),
        }
    }
    assert!(checked > 0, "no excerpt was checked at all");
    assert!(problems.is_empty(), "\n{}", problems.join("\n\n"));
}

/// A step's main.rs reads top to bottom in the order its lesson tells: a lesson's excerpts of
/// a `main.rs` come in the order of that file.
#[test]
fn a_lesson_walks_through_main_rs_from_top_to_bottom() {
    let mut problems = Vec::new();
    for file in lesson_files() {
        let text = fs::read_to_string(&file).expect("a lesson is readable");
        let Ok(found) = excerpt::excerpts(&text, &relative(&file)) else {
            continue;
        };
        let mut last: Option<(String, usize, String)> = None;
        for one in found.iter().filter(|e| e.file.ends_with("src/main.rs")) {
            let Ok(start) = excerpt::check(one, &root()) else {
                continue; // every_excerpt_is_in_the_file_it_names reports it
            };
            if let Some((file, before, origin)) = &last
                && *file == one.file
                && start < *before
            {
                problems.push(format!(
                    "{}: this excerpt (line {} of {}) comes before the one at {origin} (line {})",
                    one.origin,
                    start + 1,
                    one.file,
                    before + 1
                ));
            }
            last = Some((one.file.clone(), start, one.origin.clone()));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// One row of the course map in lessons/README.md: `| 1 | [create](01-create.md) | `step1_create` | ... |`.
struct MapRow {
    number: u32,
    lesson: String,
    crate_name: String,
}

fn course_map() -> Vec<MapRow> {
    let text = fs::read_to_string(root().join("lessons/README.md")).expect("lessons/README.md");
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let number = cells.get(1)?.parse().ok()?;
            let lesson = cells
                .get(2)?
                .split("](")
                .nth(1)?
                .trim_end_matches(')')
                .to_owned();
            let crate_name = cells.get(3)?.trim_matches('`').to_owned();
            Some(MapRow {
                number,
                lesson,
                crate_name,
            })
        })
        .collect()
}

#[test]
fn the_course_map_lists_every_step_in_order() {
    let map = course_map();
    assert!(!map.is_empty(), "lessons/README.md has no course map table");
    for (index, row) in map.iter().enumerate() {
        let number = index as u32 + 1;
        assert_eq!(row.number, number, "the course map skips or repeats a step");
        assert!(
            row.crate_name.starts_with(&format!("step{number}_")),
            "row {number} names crate {} (expected step{number}_…)",
            row.crate_name
        );
        assert!(
            row.lesson.starts_with(&format!("{number:02}-")),
            "row {number} names lesson {} (expected {number:02}-…)",
            row.lesson
        );
        assert!(
            root().join("lessons").join(&row.lesson).is_file(),
            "lessons/{} is missing",
            row.lesson
        );
        assert!(
            root()
                .join("crates")
                .join(&row.crate_name)
                .join("Cargo.toml")
                .is_file(),
            "crates/{} is missing",
            row.crate_name
        );
    }
    let steps: BTreeSet<String> = fs::read_dir(root().join("crates"))
        .expect("crates/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("step"))
        .collect();
    let mapped: BTreeSet<String> = map.iter().map(|r| r.crate_name.clone()).collect();
    assert_eq!(
        steps, mapped,
        "every step crate is in the course map, and only those"
    );
}

#[test]
fn every_step_names_its_lesson_in_help() {
    for row in course_map() {
        let help = process::run(
            &testkit::bin(&row.crate_name),
            ["--help"],
            Duration::from_secs(10),
        );
        assert_eq!(help.code, Some(0), "{} --help failed", row.crate_name);
        let lesson = format!("lessons/{}", row.lesson);
        assert!(
            help.says(&lesson),
            "{} --help does not name {lesson}:\n{}",
            row.crate_name,
            help.output
        );
    }
}

#[test]
fn every_lesson_the_code_names_exists() {
    let mut named = BTreeSet::new();
    for dir in ["crates", "scripts"] {
        collect_lesson_names(&root().join(dir), &mut named);
    }
    assert!(!named.is_empty(), "the programs name no lesson at all");
    let missing: Vec<&String> = named
        .iter()
        .filter(|lesson| !root().join(lesson).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "the code names lessons that do not exist: {missing:?}"
    );
}

fn collect_lesson_names(dir: &Path, named: &mut BTreeSet<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                collect_lesson_names(&path, named);
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "rs" || e == "sh" || e == "py")
        {
            let text = fs::read_to_string(&path).unwrap_or_default();
            let mut rest = text.as_str();
            while let Some(at) = rest.find("lessons/") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "/-_.".contains(c)))
                    .unwrap_or(tail.len());
                let name = tail[..end].trim_end_matches('.');
                if name.ends_with(".md") {
                    named.insert(name.to_owned());
                }
                rest = &tail[end.max(1)..];
            }
        }
    }
}

/// Lessons end with "What the tests check": lines such as
/// `` - `test_name` (crates/step1_create/tests/create.rs) ``, with or without a description
/// after a colon. Each named test must exist,
/// so a lesson cannot point at a check that was renamed or removed.
#[test]
fn every_test_a_lesson_names_exists() {
    let mut problems = Vec::new();
    let mut named = 0;
    for file in lesson_files() {
        let text = fs::read_to_string(&file).expect("readable");
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("- `") else {
                continue;
            };
            let Some((name, rest)) = rest.split_once("` (") else {
                continue;
            };
            // The path may be followed by a description: `(crates/...rs): what it checks`.
            let Some((path, _)) = rest.split_once(')') else {
                continue;
            };
            if !path.ends_with(".rs") || name.contains(' ') {
                continue;
            }
            named += 1;
            let source = fs::read_to_string(root().join(path)).unwrap_or_default();
            if !source.contains(&format!("fn {name}(")) {
                problems.push(format!("{}: no test `{name}` in {path}", relative(&file)));
            }
        }
    }
    assert!(named > 0, "no lesson names a test");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Each step's lesson says, on its third line, where to go before and after it: the step
/// before it in the course map (none for step 1) and the one after (none for the last).
#[test]
fn each_lesson_links_to_the_steps_before_and_after_it() {
    let map = course_map();
    let mut problems = Vec::new();
    for (index, row) in map.iter().enumerate() {
        let text = fs::read_to_string(root().join("lessons").join(&row.lesson)).expect("lesson");
        let nav = text.lines().nth(2).unwrap_or("");
        if index > 0 {
            let want = format!("Previous: [step {}, ", index);
            let target = format!("]({})", map[index - 1].lesson);
            if !(nav.contains(&want) && nav.contains(&target)) {
                problems.push(format!(
                    "{}: no `Previous: [step {index}, ...]({})`",
                    row.lesson,
                    map[index - 1].lesson
                ));
            }
        }
        if let Some(next) = map.get(index + 1) {
            let want = format!("Next: [step {}, ", index + 2);
            let target = format!("]({})", next.lesson);
            if !(nav.contains(&want) && nav.contains(&target)) {
                problems.push(format!(
                    "{}: no `Next: [step {}, ...]({})`",
                    row.lesson,
                    index + 2,
                    next.lesson
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Every step's lesson has the parts lessons/README.md promises, in the same order, so a
/// learner always knows where to look.
#[test]
fn every_lesson_has_the_promised_parts_in_order() {
    const PARTS: [&str; 8] = [
        "## The call", // "The call, three ways" or "The calls, three ways"
        "## Run it",
        "## Walk through the code",
        "## Look from outside",
        "## Experiments",
        "## What can go wrong",
        "## Check yourself",
        "## What the tests check",
    ];
    let mut problems = Vec::new();
    for row in course_map() {
        let text = fs::read_to_string(root().join("lessons").join(&row.lesson)).expect("lesson");
        let headings: Vec<&str> = text.lines().filter(|l| l.starts_with("## ")).collect();
        let mut from = 0;
        for part in PARTS {
            match headings[from..].iter().position(|h| h.starts_with(part)) {
                Some(at) => from += at + 1,
                None => problems.push(format!(
                    "{}: no `{part}` section (after the ones before it)",
                    row.lesson
                )),
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
