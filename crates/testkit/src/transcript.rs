//! Lessons' transcripts, run for real.
//!
//! A transcript is a fenced block with the info string `console`:
//!
//! ````text
//! ```console
//! $ cargo run -q -p step2_bind -- --port 0
//! == step 2: bind: give the socket an address ==
//! ...
//! <- 127.0.0.1:[..]
//! $ echo $?
//! 0
//! ```
//! ````
//!
//! - `$ ` starts a command; the lines after it, up to the next command, are its output
//!   (standard output and standard error together, as a terminal shows them).
//! - `cargo run [-q] -p NAME [-- ARGS]` runs the workspace binary NAME with ARGS, and
//!   `cargo run [-q] -p NAME --example EX [-- ARGS]` its example EX; any other program runs
//!   as it is, from the repository root, and `VAR=value` before a command sets a variable.
//!   `cargo course ARGS` (the alias in `.cargo/config.toml`) runs the workspace binary
//!   `course` with ARGS, e.g. `cargo course check 05_echo --solution`.
//!   `$(scripts/bin.sh [--example] NAME)` names the program NAME the tests built.
//! - `$ echo $?` prints the exit code of the command before it. A command that fails must be
//!   followed by `$ echo $?`: a transcript may not hide a failure.
//! - In expected output, `[..]` matches any text within a line, and a line holding only
//!   `...` matches any number of lines, none included.
//! - `console requires=strace` marks a block that needs a program that may not be
//!   installed; without it the block is skipped, and the skip is reported.
//! - A word that starts with `/tmp/` names a file in a directory of the block's own, so that
//!   transcripts run in parallel (or by two test runs at once) never share a file; in the
//!   output, that directory reads `/tmp` again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{Finished, run_command};

/// How long one command of a transcript may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// One console block of a lesson.
#[derive(Debug, Clone)]
pub struct Block {
    /// The lesson file and the line the block starts on, for messages.
    pub origin: String,
    /// Programs the block needs (`requires=strace`).
    pub requires: Vec<String>,
    pub commands: Vec<Step>,
}

/// One `$ command` and the output the lesson shows for it.
#[derive(Debug, Clone)]
pub struct Step {
    pub line: usize,
    pub command: String,
    pub expected: Vec<String>,
}

/// The console blocks of a markdown text.
pub fn blocks(markdown: &str, file: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut words = info.split_whitespace();
        let is_console = words.next() == Some("console");
        let requires: Vec<String> = words
            .filter_map(|w| w.strip_prefix("requires="))
            .flat_map(|list| list.split(','))
            .map(str::to_owned)
            .collect();
        let mut body = Vec::new();
        for (inner_number, inner) in lines.by_ref() {
            if inner.starts_with("```") {
                break;
            }
            body.push((inner_number, inner));
        }
        if !is_console {
            continue;
        }
        let mut commands: Vec<Step> = Vec::new();
        for (inner_number, inner) in body {
            if let Some(command) = inner.strip_prefix("$ ") {
                commands.push(Step {
                    line: inner_number + 1,
                    command: command.trim().to_owned(),
                    expected: Vec::new(),
                });
            } else if let Some(step) = commands.last_mut() {
                step.expected.push(inner.trim_end().to_owned());
            }
        }
        found.push(Block {
            origin: format!("{file}:{}", number + 1),
            requires,
            commands,
        });
    }
    found
}

/// The outcome of running a block: `Ok` or a readable account of every difference.
pub fn check_block(block: &Block, root: &Path, bin_dir: &Path) -> Result<(), String> {
    let scratch = scratch_dir();
    let result = check_block_in(block, root, bin_dir, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// A new, empty directory for one block's `/tmp/` files: made fresh (a name that is taken is
/// passed over, never emptied), so removing it afterwards removes only what this run made.
fn scratch_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("transcript-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => panic!("a scratch directory for a transcript: {error}"),
        }
    }
    panic!("no free name for a transcript's scratch directory in the temp dir")
}

fn check_block_in(
    block: &Block,
    root: &Path,
    bin_dir: &Path,
    scratch: &Path,
) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut last: Option<(String, Finished)> = None;
    for step in &block.commands {
        if step.command == "echo $?" {
            let Some((_, finished)) = last.as_mut() else {
                problems.push(format!(
                    "line {}: `echo $?` with no command before it",
                    step.line
                ));
                continue;
            };
            let code = finished
                .code
                .map_or("(killed by a signal)".to_owned(), |c| c.to_string());
            // A shown exit code counts as acknowledging a failure.
            finished.code = Some(0);
            compare(step, &code, &mut problems);
            continue;
        }
        report_unshown_failure(&last, &mut problems);
        let command = match prepare_in(&step.command, root, bin_dir, Some(scratch)) {
            Ok(command) => command,
            Err(message) => {
                problems.push(format!("line {}: {message}", step.line));
                last = None;
                continue;
            }
        };
        let mut finished = run_command(command, COMMAND_LIMIT);
        finished.output = finished
            .output
            .replace(&scratch.display().to_string(), "/tmp");
        compare(step, &finished.output, &mut problems);
        last = Some((step.command.clone(), finished));
    }
    report_unshown_failure(&last, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}:\n{}", block.origin, problems.join("\n")))
    }
}

fn report_unshown_failure(last: &Option<(String, Finished)>, problems: &mut Vec<String>) {
    if let Some((command, finished)) = last
        && finished.code != Some(0)
    {
        problems.push(format!(
            "`{command}` exited with {:?}, but the transcript does not show it: add `$ echo $?`",
            finished.code
        ));
    }
}

fn compare(step: &Step, actual: &str, problems: &mut Vec<String>) {
    let actual: Vec<&str> = actual.lines().map(str::trim_end).collect();
    let expected: Vec<&str> = step.expected.iter().map(String::as_str).collect();
    if !lines_match(&expected, &actual) {
        let first = first_difference(&expected, &actual);
        problems.push(format!(
            "line {}: `$ {}` printed something else.\n{first}\n--- the lesson shows:\n{}\n--- the program printed:\n{}\n---",
            step.line,
            step.command,
            expected.join("\n"),
            actual.join("\n")
        ));
    }
}

/// Where a transcript and the real output part ways, for a short first hint: the first line
/// that neither matches nor is covered by a `...` before it.
fn first_difference(expected: &[&str], actual: &[&str]) -> String {
    let mut shown = 0;
    let mut printed = 0;
    while shown < expected.len() && printed < actual.len() {
        if expected[shown] == "..." {
            return format!(
                "first difference after line {} of the lesson's output (a `...` there)",
                shown + 1
            );
        }
        if !line_matches(expected[shown], actual[printed]) {
            return format!(
                "first difference at output line {}:\n  lesson:  {}\n  program: {}",
                printed + 1,
                expected[shown],
                actual[printed]
            );
        }
        shown += 1;
        printed += 1;
    }
    format!(
        "the lesson shows {} lines, the program printed {}",
        expected.len(),
        actual.len()
    )
}

/// Turns a transcript's command line into a command to run.
pub fn prepare(line: &str, root: &Path, bin_dir: &Path) -> Result<Command, String> {
    prepare_in(line, root, bin_dir, None)
}

/// [`prepare`], with words that start with `/tmp/` moved into `scratch`.
fn prepare_in(
    line: &str,
    root: &Path,
    bin_dir: &Path,
    scratch: Option<&Path>,
) -> Result<Command, String> {
    let words = split_words(&crate::bin_sh::expand(line, bin_dir)?)?;
    // A program's own path is left as it is, even when the build lives under /tmp.
    let built = bin_dir.display().to_string();
    let words: Vec<String> = match scratch {
        Some(dir) => words
            .into_iter()
            .map(|w| match w.strip_prefix("/tmp/") {
                Some(rest) if !w.starts_with(&built) => dir.join(rest).display().to_string(),
                _ => w,
            })
            .collect(),
        None => words,
    };
    let mut env = HashMap::new();
    let mut rest = words.as_slice();
    while let Some((first, tail)) = rest.split_first() {
        match first.split_once('=') {
            Some((name, value)) if is_env_name(name) => {
                env.insert(name.to_owned(), value.to_owned());
                rest = tail;
            }
            _ => break,
        }
    }
    let (program, args) = match rest.split_first() {
        Some((cargo, tail)) if cargo == "cargo" => cargo_run(tail, bin_dir)?,
        Some((program, tail)) => (PathBuf::from(program), tail.to_vec()),
        None => return Err("an empty command".into()),
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env)
        .env_remove("CLICOLOR_FORCE")
        .current_dir(root)
        .stdin(Stdio::null());
    Ok(command)
}

/// `cargo run [-q] -p NAME [--example EX] [-- ARGS]` becomes the built binary and ARGS;
/// `cargo course ARGS` (an alias for `cargo run -q -p course -- ARGS`) the course's checker.
fn cargo_run(words: &[String], bin_dir: &Path) -> Result<(PathBuf, Vec<String>), String> {
    let usage = || {
        format!(
            "only `cargo run [-q] -p NAME [--example EX] [-- ARGS]` or `cargo course ARGS` can run in a transcript, not `cargo {}`",
            words.join(" ")
        )
    };
    if let Some(("course", args)) = words.split_first().map(|(a, rest)| (a.as_str(), rest)) {
        return Ok((bin_dir.join("course"), args.to_vec()));
    }
    let (cargo_args, args) = match words.iter().position(|w| w == "--") {
        Some(at) => (&words[..at], words[at + 1..].to_vec()),
        None => (words, Vec::new()),
    };
    let mut package = None;
    let mut example = None;
    let mut iter = cargo_args.iter();
    match iter.next().map(String::as_str) {
        Some("run") => {}
        _ => return Err(usage()),
    }
    while let Some(word) = iter.next() {
        match word.as_str() {
            "-q" | "--quiet" => {}
            "-p" | "--package" => package = iter.next().cloned(),
            "--example" => example = iter.next().cloned(),
            _ => return Err(usage()),
        }
    }
    let package = package.ok_or_else(usage)?;
    let program = match example {
        Some(example) => bin_dir.join("examples").join(example),
        None => bin_dir.join(package),
    };
    Ok((program, args))
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Splits a command line into words: spaces separate, quotes group, `\` escapes.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
        if quote.is_some() || !c.is_whitespace() {
            in_word = true;
        }
    }
    if quote.is_some() {
        return Err(format!("unclosed quote in `{line}`"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Whether `actual` matches `expected`, where an expected line `...` matches any number of
/// lines and `[..]` within a line matches any text.
pub fn lines_match(expected: &[&str], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((&"...", rest)) => (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..])),
        Some((line, rest)) => match actual.split_first() {
            Some((first, actual_rest)) => {
                line_matches(line, first) && lines_match(rest, actual_rest)
            }
            None => false,
        },
    }
}

/// Whether one line matches a pattern in which `[..]` stands for any text.
pub fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("[..]").collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || line.len() < first.len() + last.len() || !line.ends_with(last) {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests;
