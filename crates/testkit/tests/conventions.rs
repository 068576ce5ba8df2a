//! The contract every step keeps (README, "Conventions every step shares"), checked for every
//! step in the course map: bad input gets one line and exit 2 (or 1), never a panic; every
//! demo exits on its own; colour follows --color and NO_COLOR.

use std::fs;
use std::process::Command;
use std::time::Duration;

use testkit::process::{Separate, run_separately};
use testkit::root;

const LIMIT: Duration = Duration::from_secs(30);

/// The step crates, in course order, from the course map.
fn steps() -> Vec<String> {
    let text = fs::read_to_string(root().join("lessons/README.md")).expect("the course map");
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            cells.get(1)?.parse::<u32>().ok()?;
            Some(cells.get(3)?.trim_matches('`').to_owned())
        })
        .collect()
}

fn run_step(step: &str, args: &[&str]) -> Separate {
    let mut command = Command::new(testkit::bin(step));
    command
        .args(args)
        // Bound a DNS lookup of a name that does not exist: one try, one second.
        .env("RES_OPTIONS", "timeout:1 attempts:1");
    run_separately(command, LIMIT)
}

fn help(step: &str) -> String {
    run_step(step, &["--help"]).stdout
}

/// Checks that a run failed the way the conventions say: the exit code, and exactly one line
/// on stderr that starts with "error:", and no panic.
fn assert_one_line_failure(step: &str, args: &[&str], code: i32, out: &Separate) {
    testkit::process::assert_one_line_failure(&format!("{step} {}", args.join(" ")), code, out);
}

#[test]
fn bad_command_lines_get_one_line_and_exit_2() {
    let steps = steps();
    assert!(!steps.is_empty());
    for step in &steps {
        let help = help(step);
        let mut cases: Vec<Vec<&str>> = vec![vec!["--bogus"], vec!["--color", "rainbow"]];
        let has = |flag: &str| help.contains(&format!("{flag} <"));
        if has("--family") {
            cases.push(vec!["--family", "ipx"]);
        }
        if has("--type") {
            cases.push(vec!["--type", "seqpacket"]);
        }
        if has("--port") {
            cases.push(vec!["--port", "70000"]);
            cases.push(vec!["--port", "http"]);
            cases.push(vec!["--port", "-1"]);
        }
        if has("--backlog") {
            cases.push(vec!["--backlog", "many"]);
        }
        if has("--max-clients") {
            cases.push(vec!["--max-clients", "-3"]);
        }
        if has("--host") && has("--family") {
            cases.push(vec!["--family", "ipv6", "--host", "127.0.0.1"]);
        }
        if has("--path") && has("--family") && has("--host") {
            cases.push(vec!["--family", "unix", "--host", "127.0.0.1"]);
        }
        for args in cases {
            let out = run_step(step, &args);
            assert_one_line_failure(step, &args, 2, &out);
        }
    }
}

#[test]
fn an_unknown_host_gets_one_line_and_exit_1() {
    for step in steps() {
        if !help(&step).contains("--host <") {
            continue;
        }
        let args = ["--host", "no-such-host.invalid"];
        let out = run_step(&step, &args);
        assert_one_line_failure(&step, &args, 1, &out);
        assert!(
            out.stderr
                .contains("cannot resolve host 'no-such-host.invalid'"),
            "{step}: {}",
            out.stderr
        );
    }
}

#[test]
fn every_demo_tells_its_story_and_exits_0() {
    for step in steps() {
        if !help(&step).contains("--demo") {
            panic!("{step} has no --demo: every step needs one (the tour runs it)");
        }
        let out = run_step(&step, &["--demo"]);
        assert_eq!(
            out.code,
            Some(0),
            "{step} --demo:\n{}\n{}",
            out.stdout,
            out.stderr
        );
        assert!(out.stdout.contains("-> "), "{step} --demo narrates calls");
        assert!(
            !out.stdout.contains('\u{1b}'),
            "{step}: no colour into a pipe"
        );
    }
}

#[test]
fn the_tour_runs_every_step_in_course_order() {
    let tour = fs::read_to_string(root().join("scripts/tour.sh")).expect("scripts/tour.sh");
    let listed: Vec<String> = tour
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("step") && l.contains('_') && !l.contains([' ', '=']))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        listed,
        steps(),
        "scripts/tour.sh lists every step of the course map, in order"
    );
}

#[test]
fn the_tour_runs_every_demo_to_the_end() {
    let mut tour = Command::new(root().join("scripts/tour.sh"));
    // The tour calls cargo; use the one running these tests.
    if let Some(cargo) = std::env::var_os("CARGO").map(std::path::PathBuf::from)
        && let Some(dir) = cargo.parent()
    {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![dir.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        tour.env("PATH", std::env::join_paths(dirs).expect("a PATH"));
    }
    let out = run_separately(tour, Duration::from_secs(240));
    assert_eq!(out.code, Some(0), "the tour failed:\n{}", out.stderr);
    let ran: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("################ cargo run -q -p "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ran, steps(), "the tour runs every step's demo, in order");
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains("panicked"), "{text}");
    }
}

#[test]
fn a_closed_stdout_is_no_reason_to_panic() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    // `cargo run -q -p STEP -- --demo | head -1`: the reader quits after one line.
    for step in steps() {
        let mut child = Command::new(testkit::bin(&step))
            .arg("--demo")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the step starts");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("a first line");
        // The reader is gone now: every later write to stdout fails with EPIPE.
        let code = testkit::process::wait_with_limit(&mut child, LIMIT);
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("stderr is readable");
        assert!(first.starts_with("== step"), "{step}: {first}");
        assert!(!stderr.contains("panicked"), "{step} panicked:\n{stderr}");
        assert_eq!(code, Some(0), "{step}: exit code; stderr: {stderr}");
    }
}

/// Every demo runs over each family its step offers: it tells its story (exit 0) or, where a
/// family makes no sense for the step, says so in one line (exit 2). Never a socket error or a
/// panic.
#[test]
fn every_demo_runs_over_ipv6_and_unix_or_says_why_not() {
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    for step in steps() {
        if !help(&step).contains("--family <") {
            continue;
        }
        for family in ["ipv6", "unix"] {
            if family == "ipv6" && !ipv6 {
                testkit::skip("demos over ipv6", "this machine has no ::1");
                continue;
            }
            let mut args = vec!["--demo", "--family", family];
            // A socket file of this run's own: another test run may be at the same step.
            let path = std::env::temp_dir()
                .join(format!("conventions-{}-{step}.sock", std::process::id()));
            let path = path.to_str().expect("a UTF-8 temp dir").to_owned();
            if family == "unix" && help(&step).contains("--path <") {
                args.extend(["--path", &path]);
            }
            let mut out = run_step(&step, &args);
            if out.code == Some(2) && out.stderr.contains("'--path") {
                // This demo picks its own paths and takes no --path.
                args.truncate(3);
                out = run_step(&step, &args);
            }
            match out.code {
                Some(0) => assert!(out.stdout.contains("-> "), "{step} {family}: narrates"),
                Some(2) => assert_one_line_failure(&step, &args, 2, &out),
                other => panic!(
                    "{step} --demo --family {family}: exit {other:?}\n{}\n{}",
                    out.stdout, out.stderr
                ),
            }
        }
    }
}

/// A server that serves until stopped (no --max-clients) stops cleanly on Ctrl-C: it says
/// so and exits 0. (Steps 2 and 4 also check that a unix socket file is removed.)
#[test]
fn every_server_stops_cleanly_on_ctrl_c() {
    let mut servers = 0;
    for step in steps() {
        if !help(&step).contains("--max-clients <") {
            continue;
        }
        servers += 1;
        let mut server = testkit::process::Running::start(&testkit::bin(&step), ["--port", "0"]);
        server.wait_ready(LIMIT);
        server.signal(2); // SIGINT, what Ctrl-C sends
        let done = server.finish(LIMIT);
        assert_eq!(done.code, Some(0), "{step}: {}", done.output);
        assert!(
            done.output.contains("Ctrl-C: stopping"),
            "{step}: {}",
            done.output
        );
        assert!(!done.output.contains("panicked"), "{step}: {}", done.output);
    }
    assert!(servers >= 4, "the servers of steps 4, 5, 6 and 10 at least");
}

#[test]
fn colour_follows_color_and_no_color() {
    let step = "step1_create";
    let always = run_step(step, &["--color", "always"]);
    assert!(
        always.stdout.contains("\u{1b}["),
        "--color always colours even a pipe"
    );
    let never = run_step(step, &["--color", "never"]);
    assert!(!never.stdout.contains('\u{1b}'), "--color never");
    let auto = run_step(step, &[]);
    assert!(
        !auto.stdout.contains('\u{1b}'),
        "auto: a pipe is not a terminal"
    );

    // On a terminal (a pseudo-terminal from script(1)), auto colours unless NO_COLOR is set.
    let Some(script) = testkit::which("script") else {
        testkit::skip("colour on a terminal", "script(1) is not installed");
        return;
    };
    let on_terminal = |no_color: Option<&str>| {
        let mut command = Command::new(&script);
        command
            .args(["-qec"])
            .arg(testkit::bin(step))
            .arg("/dev/null");
        match no_color {
            Some(value) => command.env("NO_COLOR", value),
            None => command.env_remove("NO_COLOR"),
        };
        run_separately(command, LIMIT).stdout
    };
    assert!(
        on_terminal(None).contains("\u{1b}["),
        "auto colours a terminal"
    );
    assert!(
        !on_terminal(Some("1")).contains('\u{1b}'),
        "NO_COLOR=1 turns colour off"
    );
}
