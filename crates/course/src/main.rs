//! `cargo course`: the socket course's exercises, checked from outside.
//!
//! The learner writes `exercises/NAME.rs`; `cargo course check NAME` builds it (as a program of
//! the `exercises` package, which is not a workspace member) and runs it against real peers,
//! watching what the kernel says about it under /proc. It never reads the learner's source.
//! How to add an exercise: crates/course/README.md.

mod checks;
mod info;
mod program;
mod watch;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use colored::Colorize;

use info::Exercise;

/// The socket course's exercises: write exercises/NAME.rs, then check it.
///
/// Start with `cargo course check`: it checks the first exercise you have not passed yet. Or
/// leave `cargo course watch` running: it checks again each time you save.
#[derive(Parser)]
#[command(
    name = "cargo course",
    after_help = "Exit codes: 0 the check passed, 1 it failed, 2 a bad command line.\nHow it works: crates/course/README.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every exercise in order, and whether you have passed it
    List,
    /// Build exercises/NAME.rs and check how it behaves (without NAME: the next one to do)
    Check {
        name: Option<String>,
        /// Check the course's own solution (solutions/NAME.rs) instead of your exercise
        #[arg(long, conflicts_with = "program")]
        solution: bool,
        /// Check this already-built program instead of building one (the checker's tests use it)
        #[arg(long, value_name = "PATH")]
        program: Option<PathBuf>,
    },
    /// Check exercises/NAME.rs, then again each time you save it (Ctrl-C stops)
    ///
    /// Without NAME: the next one to do. Once it passes, watch goes on to the next exercise not
    /// passed yet, and says so; it ends when every exercise passes.
    Watch { name: Option<String> },
    /// The hint for an exercise, and the lesson section to read
    Hint { name: String },
    /// Put exercises/NAME.rs back as the course gave it (your version is saved first)
    Reset { name: String },
    /// For the course's CI: every exercises/NAME.rs is as the course gives it
    #[command(hide = true)]
    Verify,
}

/// Why a check failed: what it did, what it expected, what happened instead.
#[derive(Debug)]
pub struct Failure {
    pub what: String,
    pub expected: String,
    pub happened: String,
    /// The lesson section that explains this mistake, when it is more precise than the
    /// exercise's own (`lessons/05-recv-send.md#...`).
    pub read: Option<&'static str>,
}

impl Failure {
    pub fn new(
        what: impl Into<String>,
        expected: impl Into<String>,
        happened: impl Into<String>,
    ) -> Failure {
        Failure {
            what: what.into(),
            expected: expected.into(),
            happened: happened.into(),
            read: None,
        }
    }

    /// Names the lesson section that explains this failure.
    pub fn read(mut self, section: &'static str) -> Failure {
        self.read = Some(section);
        self
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::List => list(),
        Cmd::Check {
            name,
            solution,
            program,
        } => {
            let exercise = match named_or_next(name) {
                Ok(Some(exercise)) => exercise,
                Ok(None) => return all_passed(),
                Err(code) => return code,
            };
            check(&exercise, solution, program)
        }
        Cmd::Watch { name } => match named_or_next(name) {
            Ok(Some(exercise)) => watch::watch(exercise),
            Ok(None) => all_passed(),
            Err(code) => code,
        },
        Cmd::Hint { name } => match known(&name) {
            Ok(exercise) => {
                tutor::outln!("{}\n\nRead: {}", exercise.hint, exercise.read);
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Cmd::Reset { name } => match known(&name) {
            Ok(exercise) => reset(&exercise),
            Err(code) => code,
        },
        Cmd::Verify => verify(),
    }
}

/// The exercise called `name`, or without a name the first one not passed yet (`None`: every
/// exercise passes); an unknown name is a one-line usage error (exit 2).
fn named_or_next(name: Option<String>) -> Result<Option<Exercise>, ExitCode> {
    match name {
        Some(name) => known(&name).map(Some),
        None => Ok(info::exercises().into_iter().find(|e| !passed(e))),
    }
}

fn all_passed() -> ExitCode {
    tutor::outln!("Every exercise passes. Well done.");
    ExitCode::SUCCESS
}

/// The exercise called `name`, or a one-line usage error (exit 2).
fn known(name: &str) -> Result<Exercise, ExitCode> {
    let name = name.trim_end_matches(".rs");
    let name = name.rsplit('/').next().unwrap_or(name);
    info::find(name).ok_or_else(|| {
        let names: Vec<String> = info::exercises().into_iter().map(|e| e.name).collect();
        eprintln!(
            "error: no exercise called {name:?}; the exercises are: {}",
            names.join(", ")
        );
        ExitCode::from(2)
    })
}

fn exercise_file(exercise: &Exercise) -> PathBuf {
    program::root()
        .join("exercises")
        .join(format!("{}.rs", exercise.name))
}

/// The exercise as the course gives it: the fixture every untouched exercise must fail as.
fn untouched_file(exercise: &Exercise) -> PathBuf {
    program::root()
        .join("crates/course/fixtures")
        .join(&exercise.name)
        .join("untouched.rs")
}

/// A small, stable hash of a file's bytes (FNV-1a), to tell whether a passed file has changed.
fn fingerprint(path: &Path) -> Option<u64> {
    let bytes = fs::read(path).ok()?;
    Some(bytes.iter().fold(0xcbf29ce484222325u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x100000001b3)
    }))
}

/// Where the checker remembers which exercises passed: one line "NAME FINGERPRINT" each.
fn passed_file() -> PathBuf {
    program::target_dir("state").join("passed")
}

/// Whether exercises/NAME.rs passed its check as it is now.
fn passed(exercise: &Exercise) -> bool {
    let Some(now) = fingerprint(&exercise_file(exercise)) else {
        return false;
    };
    let record = format!("{} {now:x}", exercise.name);
    fs::read_to_string(passed_file()).is_ok_and(|text| text.lines().any(|line| line == record))
}

fn remember_pass(exercise: &Exercise) {
    let Some(now) = fingerprint(&exercise_file(exercise)) else {
        return;
    };
    let path = passed_file();
    let mut lines: Vec<String> = fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.split(' ').next() != Some(exercise.name.as_str()))
        .map(str::to_owned)
        .collect();
    lines.push(format!("{} {now:x}", exercise.name));
    // Only a convenience for `list`: a failure to write it changes no result.
    let _ = fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
    let _ = fs::write(&path, lines.join("\n") + "\n");
}

fn list() -> ExitCode {
    let mut next_marked = false;
    tutor::outln!("step  exercise         status");
    for exercise in info::exercises() {
        let file = exercise_file(&exercise);
        let status = if passed(&exercise) {
            "passed".green().to_string()
        } else if fingerprint(&file).is_none() {
            "missing (cargo course reset restores it)".red().to_string()
        } else if fingerprint(&file) == fingerprint(&untouched_file(&exercise)) {
            "not started".to_string()
        } else {
            "started".yellow().to_string()
        };
        let next = if !next_marked && !passed(&exercise) {
            next_marked = true;
            "  <- next: cargo course check"
        } else {
            ""
        };
        tutor::outln!(
            "{:>4}  {:<15}  {status}{next}",
            exercise.step,
            exercise.name
        );
    }
    ExitCode::SUCCESS
}

fn check(exercise: &Exercise, solution: bool, program: Option<PathBuf>) -> ExitCode {
    let mine = !solution && program.is_none();
    match run_check(exercise, solution, program) {
        None => ExitCode::from(2),
        Some(true) => {
            if mine && let Some(next) = info::exercises().into_iter().find(|e| !passed(e)) {
                tutor::outln!("Next: cargo course check {}", next.name);
            }
            ExitCode::SUCCESS
        }
        Some(false) => ExitCode::from(1),
    }
}

/// Builds the program (exercises/NAME.rs, solutions/NAME.rs with `solution`, or the given
/// `program` as it is), checks it and prints the verdict: `Some(true)` it passed (an exercise's
/// pass is remembered for `list`), `Some(false)` it failed, `None` there is no check to run.
fn run_check(exercise: &Exercise, solution: bool, program: Option<PathBuf>) -> Option<bool> {
    let Some(run_check) = checks::find(&exercise.name) else {
        eprintln!("error: {} has no check yet", exercise.name);
        return None;
    };
    // Only a pass of the learner's own file is remembered: not the course's solution, nor a
    // program built elsewhere (`--program`).
    let mine = !solution && program.is_none();
    let (what, path) = match program {
        Some(path) => (path.display().to_string(), Ok(path)),
        None if solution => (
            format!("solutions/{}.rs", exercise.name),
            program::build("solutions", &exercise.name),
        ),
        None => (
            format!("exercises/{}.rs", exercise.name),
            program::build("exercises", &exercise.name),
        ),
    };
    tutor::outln!("Checking {what} (step {}):", exercise.step);
    let result = path
        .map_err(|why| Failure::new("build it", "it compiles", why))
        .and_then(|path| run_check(&checks::Ctx::new(path)));
    match result {
        Ok(()) => {
            tutor::outln!(
                "{} {what} does what step {} asks.",
                "PASS".green().bold(),
                exercise.step
            );
            if mine {
                remember_pass(exercise);
            }
            Some(true)
        }
        Err(failure) => {
            tutor::outln!("{} {what}: {}", "FAIL".red().bold(), failure.what);
            tutor::outln!("  expected: {}", failure.expected);
            tutor::outln!("  happened: {}", failure.happened);
            tutor::outln!("  hint: {}", exercise.hint.replace('\n', "\n        "));
            tutor::outln!("  read: {}", failure.read.unwrap_or(&exercise.read));
            Some(false)
        }
    }
}

fn reset(exercise: &Exercise) -> ExitCode {
    let file = exercise_file(exercise);
    let original = match fs::read(untouched_file(exercise)) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!(
                "error: cannot read the original, {}: {e}",
                untouched_file(exercise).display()
            );
            return ExitCode::from(1);
        }
    };
    // Nothing lost: the learner's version is kept under target/course/reset/ first.
    if let Ok(mine) = fs::read(&file) {
        if mine == original {
            tutor::outln!(
                "exercises/{}.rs is already as the course gives it",
                exercise.name
            );
            return ExitCode::SUCCESS;
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let saved = program::target_dir("reset").join(format!("{}-{stamp}.rs", exercise.name));
        let kept = fs::create_dir_all(program::target_dir("reset"))
            .and_then(|()| fs::write(&saved, &mine));
        if let Err(e) = kept {
            eprintln!(
                "error: could not save your version to {}: {e}; nothing reset",
                saved.display()
            );
            return ExitCode::from(1);
        }
        tutor::outln!("your version is saved as {}", saved.display());
    }
    if let Err(e) = fs::write(&file, original) {
        eprintln!("error: cannot write {}: {e}", file.display());
        return ExitCode::from(1);
    }
    tutor::outln!(
        "exercises/{}.rs is back as the course gives it",
        exercise.name
    );
    ExitCode::SUCCESS
}

fn verify() -> ExitCode {
    let mut ok = true;
    for exercise in info::exercises() {
        if fs::read(exercise_file(&exercise)).ok() != fs::read(untouched_file(&exercise)).ok() {
            tutor::outln!(
                "exercises/{0}.rs differs from crates/course/fixtures/{0}/untouched.rs (or one is missing)",
                exercise.name
            );
            ok = false;
        }
    }
    if ok {
        tutor::outln!("every exercise is as the course gives it");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
