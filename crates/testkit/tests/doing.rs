//! Lessons for doing, not only reading (issue 10): every lesson with an exercise opens with
//! what you will build, its bare program shown whole (from the file, never pasted), a checked
//! run of it, and the exercise; every "Check yourself" question has a folded answer that
//! points to a test or an experiment; every glossary term is linked from the lessons.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use testkit::{excerpt, root};

/// One `[[exercise]]` of crates/course/info.toml: its name and its step.
struct Exercise {
    name: String,
    step: u32,
}

/// The exercises in course order. info.toml is read line by line (testkit has no TOML
/// parser): `name = "..."` and `step = N` inside each `[[exercise]]` table.
fn exercises() -> Vec<Exercise> {
    let text = fs::read_to_string(root().join("crates/course/info.toml")).expect("info.toml");
    let mut found: Vec<Exercise> = Vec::new();
    for line in text.lines() {
        if line.trim() == "[[exercise]]" {
            found.push(Exercise {
                name: String::new(),
                step: 0,
            });
        } else if let (Some(last), Some((key, value))) = (found.last_mut(), line.split_once('=')) {
            match key.trim() {
                "name" if last.name.is_empty() => last.name = value.trim().trim_matches('"').into(),
                "step" if last.step == 0 => last.step = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    assert!(
        found.iter().all(|e| !e.name.is_empty() && e.step > 0),
        "every [[exercise]] in info.toml has a name and a step"
    );
    found
}

/// The lesson of step `n`: lessons/NN-*.md.
fn lesson(step: u32) -> PathBuf {
    let prefix = format!("{step:02}-");
    fs::read_dir(root().join("lessons"))
        .expect("lessons/")
        .map(|e| e.expect("an entry").path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .unwrap_or_else(|| panic!("no lesson lessons/{prefix}*.md"))
}

/// The steps that have an exercise: their lessons carry the parts this file checks.
fn steps_with_exercises() -> BTreeSet<u32> {
    exercises().iter().map(|e| e.step).collect()
}

fn relative(path: &std::path::Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// GitHub's (and mdBook's) anchor for a heading: lower case, punctuation dropped, spaces to
/// hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The lines of the section under `## heading` (up to the next `## `), outside code blocks.
fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(heading));
    lines.next();
    lines.take_while(|l| !l.starts_with("## ")).collect()
}

/// The bare program is shown whole: a ```rust block naming solutions/NAME.rs whose lines are
/// the file's, every one, in order. A change to the program that the lesson does not follow
/// fails here; so does a lesson that shows only part of it.
#[test]
fn every_lesson_shows_its_bare_programs_whole() {
    let mut problems = Vec::new();
    for exercise in exercises() {
        let path = lesson(exercise.step);
        let name = relative(&path);
        let text = fs::read_to_string(&path).expect("readable");
        let file = format!("solutions/{}.rs", exercise.name);
        let source = fs::read_to_string(root().join(&file)).expect("the solution is readable");
        let source: Vec<&str> = source.lines().map(str::trim_end).collect();
        let shown = excerpt::excerpts(&text, &name)
            .unwrap_or_default()
            .into_iter()
            .find(|e| e.file == file);
        match shown {
            None => problems.push(format!("{name}: no ```rust block starting `// {file}`")),
            Some(shown) => {
                let lines: Vec<&str> = shown.lines.iter().map(|l| l.trim_end()).collect();
                if lines != source {
                    problems.push(format!(
                        "{}: the block is not {file} as it is, whole (copy the file in again)",
                        shown.origin
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Each exercise is in its lesson: a transcript of its check on the bare program (run by the
/// lessons' transcript test), and the commands the learner types.
#[test]
fn every_lesson_runs_its_bare_program_and_gives_its_exercise() {
    let mut problems = Vec::new();
    for exercise in exercises() {
        let path = lesson(exercise.step);
        let text = fs::read_to_string(&path).expect("readable");
        let name = &exercise.name;
        let blocks = testkit::transcript::blocks(&text, &relative(&path));
        let checked = blocks.iter().flat_map(|b| &b.commands).any(|c| {
            c.command == format!("cargo course check {name} --solution")
                && c.expected.iter().any(|l| l.starts_with("PASS "))
        });
        if !checked {
            problems.push(format!(
                "{}: no transcript of `$ cargo course check {name} --solution` ending in PASS",
                relative(&path)
            ));
        }
        let turn = section(&text, "## Your turn").join("\n");
        for wanted in [
            format!("exercises/{name}.rs"),
            format!("`cargo course check {name}`"),
            format!("`cargo course hint {name}`"),
        ] {
            if !turn.contains(&wanted) {
                problems.push(format!(
                    "{}: its \"Your turn\" does not name {wanted}",
                    relative(&path)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// What is essential comes first, and the deep dive is marked: what you will build, the bare
/// program, your turn, the call(s), the narrated run; then "Going deeper" before the code walk.
#[test]
fn every_lesson_with_an_exercise_opens_with_it_and_marks_the_deep_dive() {
    const PARTS: [&str; 8] = [
        "## What you will build",
        "## The bare program",
        "## Your turn",
        "## The call", // "The call, three ways" or "The calls, three ways"
        "## Run it",
        "## Going deeper",
        "## Walk through the code",
        "## Check yourself",
    ];
    let mut problems = Vec::new();
    for step in steps_with_exercises() {
        let path = lesson(step);
        let text = fs::read_to_string(&path).expect("readable");
        let headings: Vec<&str> = text.lines().filter(|l| l.starts_with("## ")).collect();
        if headings.first().copied() != Some(PARTS[0]) {
            problems.push(format!(
                "{}: the first section is not `{}`",
                relative(&path),
                PARTS[0]
            ));
        }
        let mut from = 0;
        for part in PARTS {
            match headings[from..].iter().position(|h| h.starts_with(part)) {
                Some(at) => from += at + 1,
                None => problems.push(format!(
                    "{}: no `{part}` section (after the ones before it)",
                    relative(&path)
                )),
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// A test a text names as `` `name` (crates/.../x.rs) ``: every one must exist.
fn named_tests(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("` (") {
            let before = &rest[..at];
            let after = &rest[at + 3..];
            rest = after;
            let Some(name) = before.rsplit('`').next() else {
                continue;
            };
            let Some((path, _)) = after.split_once(')') else {
                continue;
            };
            let is_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if is_name && path.ends_with(".rs") && !path.contains(' ') {
                found.push((name.to_owned(), path.to_owned()));
            }
        }
    }
    found
}

const SUMMARY: &str = "<details><summary>Answer</summary>";

/// The questions of a "Check yourself" section (`- ` items, which may go on over indented
/// lines), each with its folded answer if one follows it: a line starting
/// `<details><summary>Answer</summary>` (blank lines before it allowed), up to `</details>`,
/// on the same line or a later one. `Err` names what is missing.
fn questions_and_answers(lines: &[&str]) -> Vec<(String, Result<String, &'static str>)> {
    let mut found = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let Some(question) = lines[at].strip_prefix("- ") else {
            at += 1;
            continue;
        };
        at += 1;
        while lines
            .get(at)
            .is_some_and(|l| l.starts_with("  ") && !l.trim().starts_with(SUMMARY))
        {
            at += 1;
        }
        while lines.get(at).is_some_and(|l| l.trim().is_empty()) {
            at += 1;
        }
        let Some(first) = lines.get(at).and_then(|l| l.trim().strip_prefix(SUMMARY)) else {
            found.push((question.to_owned(), Err("is not followed by")));
            continue;
        };
        let mut body = Vec::new();
        let mut rest = Some(first);
        let closed = loop {
            let Some(line) = rest else { break false };
            // The next question: this answer was never closed.
            if line.starts_with("- ") {
                break false;
            }
            if let Some((before, _)) = line.split_once("</details>") {
                body.push(before);
                break true;
            }
            body.push(line);
            at += 1;
            rest = lines.get(at).copied();
        };
        let answer = if closed {
            at += 1;
            Ok(body.join("\n"))
        } else {
            Err("has no </details> after")
        };
        found.push((question.to_owned(), answer));
    }
    found
}

/// Every question of "Check yourself" is followed by its answer, folded:
/// `<details><summary>Answer</summary>` ... `</details>`; each answer names the test that
/// shows it (`` `name` (path.rs) ``, and that test exists) or the experiment (a `` `cargo ...` ``
/// command).
#[test]
fn every_check_yourself_question_has_a_folded_answer_with_its_evidence() {
    let mut problems = Vec::new();
    let mut answers = 0;
    for step in steps_with_exercises() {
        let path = lesson(step);
        let name = relative(&path);
        let text = fs::read_to_string(&path).expect("readable");
        let found = questions_and_answers(&section(&text, "## Check yourself"));
        if found.is_empty() {
            problems.push(format!("{name}: \"Check yourself\" asks nothing"));
        }
        for (question, answer) in found {
            let body = match answer {
                Ok(body) => body,
                Err(missing) => {
                    problems.push(format!("{name}: \"{question}\" {missing} {SUMMARY}"));
                    continue;
                }
            };
            answers += 1;
            let tests = named_tests(&body);
            for (test, file) in &tests {
                let source = fs::read_to_string(root().join(file)).unwrap_or_default();
                if !source.contains(&format!("fn {test}(")) {
                    problems.push(format!("{name}: no test `{test}` in {file}"));
                }
            }
            if tests.is_empty() && !body.contains("`cargo ") {
                problems.push(format!(
                    "{name}: the answer to \"{question}\" names no test (`name` (path.rs)) and no experiment (`cargo ...`)"
                ));
            }
        }
    }
    assert!(answers > 0, "no answer found at all");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn questions_and_answers_are_read_in_either_layout() {
    let text = "- One?\n  <details><summary>Answer</summary>\n\n  Yes.\n\n  </details>\n\
                - Two, over\n  two lines?\n\n  <details><summary>Answer</summary>No.</details>\n\
                - Three?\n\nNo answer here.\n\
                - Four?\n  <details><summary>Answer</summary>\n  never closed\n\
                - Five?\n  <details><summary>Answer</summary>Five.</details>\n";
    let lines: Vec<&str> = text.lines().collect();
    let found = questions_and_answers(&lines);
    let bodies: Vec<Result<String, &str>> = found.into_iter().map(|(_, a)| a).collect();
    assert_eq!(bodies.len(), 5);
    assert!(bodies[0].as_ref().is_ok_and(|b| b.contains("Yes.")));
    assert_eq!(bodies[1], Ok("No.".to_owned()));
    assert!(bodies[2].is_err());
    assert!(bodies[3].is_err());
    assert_eq!(bodies[4], Ok("Five.".to_owned()));
}

/// The glossary: every term (a `## ` heading of lessons/glossary.md) is linked from a lesson;
/// every link into the glossary lands on a term; the course map links to it.
#[test]
fn every_glossary_term_is_linked_and_every_link_lands() {
    let glossary = fs::read_to_string(root().join("lessons/glossary.md")).expect("the glossary");
    let terms: BTreeSet<String> = glossary
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(anchor)
        .collect();
    assert!(terms.len() >= 10, "the glossary has {} terms", terms.len());
    let mut linked = BTreeSet::new();
    let mut problems = Vec::new();
    let mut files: Vec<PathBuf> = fs::read_dir(root().join("lessons"))
        .expect("lessons/")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    for file in &files {
        let text = fs::read_to_string(file).expect("readable");
        let own = file.file_name().is_some_and(|n| n == "glossary.md");
        let mut rest = text.as_str();
        let link = if own { "](#" } else { "](glossary.md#" };
        while let Some(at) = rest.find(link) {
            let tail = &rest[at + link.len()..];
            let end = tail.find(')').unwrap_or(tail.len());
            let target = &tail[..end];
            rest = &tail[end..];
            if own && !terms.contains(target) {
                // The glossary's links to its own terms must land too.
                problems.push(format!(
                    "lessons/glossary.md: link to #{target}: no such term"
                ));
            } else if !own {
                if terms.contains(target) {
                    linked.insert(target.to_owned());
                } else {
                    problems.push(format!(
                        "{}: link to glossary.md#{target}: no such term",
                        relative(file)
                    ));
                }
            }
        }
    }
    for term in terms.difference(&linked) {
        problems.push(format!("glossary term #{term} is linked from no lesson"));
    }
    let map = fs::read_to_string(root().join("lessons/README.md")).expect("the course map");
    if !map.contains("](glossary.md)") {
        problems.push("lessons/README.md does not link to the glossary".into());
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_bare_program_is_15_to_60_lines() {
    // A bare program reads like the seed's Python: short enough to take in at once.
    let exercises = exercises();
    assert!(!exercises.is_empty(), "info.toml lists the exercises");
    let mut wrong = Vec::new();
    for exercise in exercises {
        let path = root()
            .join("solutions")
            .join(format!("{}.rs", exercise.name));
        let lines = fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} is readable", relative(&path)))
            .lines()
            .count();
        if !(15..=60).contains(&lines) {
            wrong.push(format!("{}: {lines} lines", relative(&path)));
        }
    }
    assert!(
        wrong.is_empty(),
        "bare programs outside 15-60 lines: {wrong:?}"
    );
}
