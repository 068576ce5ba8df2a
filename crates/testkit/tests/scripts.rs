//! The scripts a newcomer runs in the first ten minutes: they work wherever cargo builds, a
//! benchmark run never touches the published numbers, the tour waits on a terminal, and the
//! test script says which checks were skipped and why.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testkit::process::{Running, run_command, run_separately};
use testkit::root;

const LIMIT: Duration = Duration::from_secs(120);

/// A directory of this test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("course-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A command that finds the cargo running these tests first on PATH (the scripts call cargo).
fn script(path: &Path) -> Command {
    let mut command = Command::new(path);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .and_then(|cargo| cargo.parent().map(Path::to_path_buf))
        .into_iter()
        .collect();
    dirs.extend(std::env::split_paths(&path));
    command.env("PATH", std::env::join_paths(dirs).expect("a PATH"));
    command
}

/// The repository, seen from elsewhere: a directory of symbolic links to everything in it
/// but its `target/` (and `.git`), and a target directory that is not `./target`. A script
/// that assumes `./target/debug` fails here; one that asks cargo works, and builds nothing
/// new (the link leads to the build these tests run from).
fn repository_elsewhere(dir: &Path) -> (PathBuf, PathBuf) {
    let repo = dir.join("repo");
    fs::create_dir_all(repo.join("scripts")).expect("repo/scripts");
    for entry in fs::read_dir(root()).expect("the root").flatten() {
        let name = entry.file_name();
        if name == "target" || name == ".git" || name == "scripts" {
            continue;
        }
        symlink(entry.path(), repo.join(&name)).expect("a link");
    }
    // Real files' links in a real directory: `cd "$(dirname "$0")/.."` lands in repo/.
    for entry in fs::read_dir(root().join("scripts"))
        .expect("scripts")
        .flatten()
    {
        symlink(entry.path(), repo.join("scripts").join(entry.file_name())).expect("a link");
    }
    let target = dir.join("elsewhere");
    let built = testkit::bin_dir();
    symlink(built.parent().expect("the target directory"), &target).expect("a link");
    (repo, target)
}

#[test]
fn compare_sh_and_bin_sh_work_where_cargo_builds_elsewhere() {
    let _ = testkit::bin("step9_stream_vs_dgram");
    let dir = TempDir::new("elsewhere");
    let (repo, target) = repository_elsewhere(&dir.0);

    let mut bin_sh = script(&repo.join("scripts/bin.sh"));
    bin_sh
        .arg("step9_stream_vs_dgram")
        .env("CARGO_TARGET_DIR", &target);
    let out = run_separately(bin_sh, LIMIT);
    assert_eq!(out.code, Some(0), "scripts/bin.sh: {}", out.stderr);
    let path = PathBuf::from(out.stdout.trim_end());
    assert!(
        path.starts_with(&target) && path.ends_with("step9_stream_vs_dgram") && path.is_file(),
        "scripts/bin.sh printed {path:?}, not a program in CARGO_TARGET_DIR ({})",
        target.display()
    );

    let mut compare = script(&repo.join("scripts/compare.sh"));
    compare.arg("ipv4").env("CARGO_TARGET_DIR", &target);
    let out = run_command(compare, LIMIT);
    assert_eq!(out.code, Some(0), "scripts/compare.sh:\n{}", out.output);
    assert!(out.says("== ipv4 =="), "{}", out.output);
    assert_eq!(out.lines_with("boundaries").count(), 1, "{}", out.output);
}

#[test]
fn bin_sh_says_what_it_cannot_find() {
    let mut missing = script(&root().join("scripts/bin.sh"));
    missing.arg("no_such_program");
    assert_eq!(run_separately(missing, LIMIT).code, Some(1));
    let mut usage = script(&root().join("scripts/bin.sh"));
    usage.arg("--nonsense");
    let out = run_separately(usage, LIMIT);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.starts_with("usage: "), "{}", out.stderr);
}

/// Commands a learner types, and the scripts, never assume the build is in `./target`.
#[test]
fn no_script_or_lesson_assumes_the_build_is_in_target() {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["scripts", "lessons"] {
        for entry in fs::read_dir(root().join(dir))
            .expect("a directory")
            .flatten()
        {
            files.push(entry.path());
        }
    }
    files.push(root().join("README.md"));
    let mut problems = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap_or_default();
        for (number, line) in text.lines().enumerate() {
            if line.contains("target/debug") || line.contains("target/release") {
                problems.push(format!("{}:{}: {line}", file.display(), number + 1));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "use $(scripts/bin.sh NAME) instead:\n{}",
        problems.join("\n")
    );
}

/// bench/results.md holds the published numbers lesson 10 quotes (and a test checks): a
/// learner's run goes to bench/mine/, which git ignores, and bench.sh refuses to overwrite
/// the published file.
#[test]
fn bench_sh_never_overwrites_the_published_results() {
    let published = root().join("bench/results.md");
    let before = fs::read(&published).expect("bench/results.md");
    for out in ["bench/results.md", "./bench/../bench/results.md"] {
        let mut bench = script(&root().join("scripts/bench.sh"));
        bench.arg(out);
        let result = run_separately(bench, Duration::from_secs(30));
        assert_eq!(result.code, Some(2), "{out}: {}", result.stderr);
        assert!(result.stderr.contains("bench/mine/"), "{}", result.stderr);
    }
    assert_eq!(fs::read(&published).expect("bench/results.md"), before);

    let text = fs::read_to_string(root().join("scripts/bench.sh")).expect("bench.sh");
    let default = text
        .split("out=${1:-")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("bench.sh sets out=${1:-DEFAULT}");
    assert!(
        default.starts_with("bench/mine/"),
        "default output {default}"
    );
    let ignored = fs::read_to_string(root().join(".gitignore")).expect(".gitignore");
    assert!(
        ignored.lines().any(|l| l == "/bench/mine/"),
        "git ignores bench/mine/"
    );
}

/// On a terminal (a pseudo-terminal from script(1)) the tour waits for Enter before the next
/// step: Enter goes on, end of input (Ctrl-D) stops it there.
#[test]
fn the_tour_waits_for_enter_on_a_terminal() {
    let Some(script_1) = testkit::which("script") else {
        testkit::skip("the tour on a terminal", "script is not installed");
        return;
    };
    let _ = testkit::bin("step10_many_clients");
    let tour = |input: &str| {
        let mut command = script(&script_1);
        command
            .arg("-qec")
            .arg(format!("{} 9", root().join("scripts/tour.sh").display()))
            .arg("/dev/null");
        let mut running = Running::start_command(command);
        running.send_stdin(input);
        running.close_stdin();
        running.finish(LIMIT)
    };
    let header = "################ cargo run -q -p step";
    let stopped = tour("");
    assert_eq!(stopped.code, Some(0), "{}", stopped.output);
    assert_eq!(stopped.lines_with(header).count(), 1, "{}", stopped.output);
    assert!(stopped.says("-- Enter: step 10"), "{}", stopped.output);
    assert!(
        stopped.says("tour stopped before step 10"),
        "{}",
        stopped.output
    );
    // One Enter: step 10 runs, and the tour waits again before the step after it (if any).
    let went_on = tour("\n");
    assert_eq!(went_on.code, Some(0), "{}", went_on.output);
    assert!(
        went_on.says(&format!("{header}10_many_clients -- --demo")),
        "{}",
        went_on.output
    );
    assert!(
        !went_on.says("tour stopped before step 10"),
        "{}",
        went_on.output
    );
}

/// A stand-in for cargo: prints one test binary's result, records one skipped check the way
/// testkit::skip does, writes down its arguments, and exits with $FAKE_STATUS.
fn fake_cargo(dir: &Path, reason: &str) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).expect("bin");
    let cargo = bin.join("cargo");
    fs::write(
        &cargo,
        format!(
            "#!/bin/sh\n\
             echo \"$@\" > \"{args}\"\n\
             echo 'test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s'\n\
             echo 'SKIPPED nc peer: {reason}' >> \"$COURSE_SKIP_LOG\"\n\
             exit ${{FAKE_STATUS:-0}}\n",
            args = dir.join("args").display()
        ),
    )
    .expect("the fake cargo");
    fs::set_permissions(&cargo, fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

fn test_sh(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> testkit::process::Separate {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin.to_path_buf()];
    dirs.extend(std::env::split_paths(&path));
    let mut command = Command::new(root().join("scripts/test.sh"));
    command
        .args(args)
        .env("PATH", std::env::join_paths(dirs).expect("a PATH"))
        .env_remove("CI")
        .env_remove(testkit::SKIP_LOG)
        .envs(env.iter().copied());
    run_separately(command, Duration::from_secs(30))
}

#[test]
fn test_sh_runs_every_test_binary_and_lists_the_skipped_checks() {
    let dir = TempDir::new("test-sh");
    let bin = fake_cargo(&dir.0, "nc is not installed");
    let out = test_sh(&bin, &[], &[]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let args = fs::read_to_string(dir.0.join("args")).expect("cargo ran");
    assert_eq!(args.trim_end(), "test --workspace --no-fail-fast");
    for want in [
        "passed: 2 tests in 1 test binaries; failed: 0",
        "skipped checks: 1 ",
        "  nc peer: nc is not installed",
        "ok: every test passed",
    ] {
        assert!(out.stdout.contains(want), "no {want:?}:\n{}", out.stdout);
    }

    // A failing test binary fails the run, after the summary.
    let failed = test_sh(&bin, &[], &[("FAKE_STATUS", "101")]);
    assert_eq!(failed.code, Some(1), "{}", failed.stdout);
    assert!(
        failed.stdout.contains("skipped checks: 1 "),
        "{}",
        failed.stdout
    );
}

#[test]
fn test_sh_fails_on_a_missing_tool_when_tools_are_required() {
    let dir = TempDir::new("test-sh-tools");
    let bin = fake_cargo(&dir.0, "nc is not installed");
    for (args, env) in [
        (&["--require-tools"][..], &[][..]),
        (&[][..], &[("CI", "true")][..]),
    ] {
        let out = test_sh(&bin, args, env);
        assert_eq!(out.code, Some(1), "{args:?} {env:?}: {}", out.stdout);
        assert!(
            out.stdout.contains("because a program is not installed"),
            "{}",
            out.stdout
        );
    }
    // A check skipped for another reason (no IPv6 here) is listed, and does not fail it.
    let other = TempDir::new("test-sh-other");
    let bin = fake_cargo(&other.0, "no IPv6 loopback here");
    let out = test_sh(&bin, &["--require-tools"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stdout);
    assert!(
        out.stdout.contains("no IPv6 loopback here"),
        "{}",
        out.stdout
    );
    assert_eq!(test_sh(&bin, &["--nonsense"], &[]).code, Some(2));
}

/// testkit::skip appends its line to the file COURSE_SKIP_LOG names: this test runs itself
/// again with the variable set, and the second run skips.
#[test]
fn a_skip_is_recorded_where_test_sh_reads_it() {
    if std::env::var_os("COURSE_SKIP_SELF_TEST").is_some() {
        testkit::skip("a recorded skip", "the self test is not installed");
        return;
    }
    let dir = TempDir::new("skip-log");
    let log = dir.0.join("skips");
    let mut again = Command::new(std::env::current_exe().expect("this test"));
    again
        .args(["--exact", "a_skip_is_recorded_where_test_sh_reads_it"])
        .env("COURSE_SKIP_SELF_TEST", "1")
        .env(testkit::SKIP_LOG, &log);
    let out = run_command(again, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert_eq!(
        fs::read_to_string(&log).expect("the skip log"),
        "SKIPPED a recorded skip: the self test is not installed\n"
    );
}
