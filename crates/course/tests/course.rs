//! The checker is checked: every solution passes its check; every exercise as the course gives
//! it fails, naming a lesson; every wrong solution fails, naming its mistake. The learner's own
//! exercises/ files are never built here: a half-done exercise cannot turn the suite red.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Each wrong solution (fixtures/NAME/WHAT.rs, bin NAME-WHAT) and a phrase its failure must
/// contain: the mistake, named.
const WRONG: &[(&str, &str)] = &[
    ("01_create-udp", "SOCK_DGRAM is UDP"),
    (
        "02_bind-prints_requested",
        "port 0 asks the kernel to choose",
    ),
    ("02_bind-ipv4_only", "Address family not supported"),
    ("03_listen-no_listen", "listen() was not called"),
    (
        "03_listen-fixed_backlog",
        "is not the BACKLOG from the command line",
    ),
    ("04_accept-accepts_once", "accept belongs in a loop"),
    (
        "04_accept-keeps_connections",
        "keeps the client's socket open",
    ),
    (
        "04_accept-greets_listener",
        "that is not the client's address",
    ),
    (
        "05_echo-first_recv_only",
        "after echoing the first recv the server closed",
    ),
    ("05_echo-spins_on_zero", "recv returns 0 again and again"),
    ("05_echo-whole_buffer", "not the whole buffer"),
    (
        "05_echo-dies_on_reset",
        "one client's error belongs to that client",
    ),
    // Steps 6 to 10.
    (
        "06_shutdown-closes_a_copy",
        "Closing a copy of the socket (try_clone) sends no FIN",
    ),
    (
        "06_shutdown-shuts_down_both",
        "shuts the receiving half too",
    ),
    (
        "06_shutdown-one_recv",
        "it stopped reading before end of file",
    ),
    (
        "07_client-one_recv",
        "one recv() returns only what has arrived",
    ),
    (
        "07_client-ignores_send_count",
        "send() returns how many bytes the kernel took",
    ),
    (
        "07_client-reads_to_eof",
        "a client that reads until end of file waits for ever",
    ),
    (
        "08_udp_server-answers_first_sender",
        "answers every datagram to one address",
    ),
    ("08_udp_server-connects", "A UDP server never connects"),
    (
        "08_udp_server-small_buffer",
        "a buffer smaller than the datagram",
    ),
    (
        "08_udp_client-unconnected",
        "an unconnected UDP socket takes datagrams from anyone",
    ),
    ("08_udp_client-no_timeout", "set a read timeout"),
    (
        "09_lengths-recv_is_a_message",
        "A stream keeps no boundaries",
    ),
    (
        "09_lengths-newlines_in_datagrams",
        "there is no newline to wait for",
    ),
    (
        "09_lengths-small_datagram_buffer",
        "a buffer smaller than it",
    ),
    ("10_many_clients-serial", "serves one client at a time"),
    (
        "10_many_clients-first_recv_only",
        "it echoed what its first recv() returned and stopped",
    ),
    (
        "10_many_clients-spins_on_zero",
        "a loop that goes on after 0 spins for ever",
    ),
    // Step 11.
    (
        "11_frames-allocates_first",
        "it allocated a buffer for the length before checking it",
    ),
    (
        "11_frames-one_recv_header",
        "One recv() returns what has arrived, perhaps part of a header",
    ),
    (
        "11_frames-no_maximum",
        "the server waits for the 4294967295 bytes the header announces",
    ),
    // Step 12.
    (
        "12_try_each-first_only",
        "it gave up after the first address was refused",
    ),
    (
        "12_try_each-one_socket",
        "it used the socket made for the first address",
    ),
    (
        "12_try_each-exits_0",
        "it exited with code 0 though no address connected",
    ),
    // Step 13.
    ("13_patient_client-no_timeout", "no read timeout"),
    ("13_patient_client-no_keepalive", "SO_KEEPALIVE is off"),
    (
        "13_patient_client-timeout_is_success",
        "code 0 although no answer came",
    ),
];

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

/// The target directory `cargo course` itself uses for the package in `dir`, so a later
/// `cargo course check` finds it built.
fn target_dir(dir: &str) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    base.join("course").join(dir.replace('/', "-"))
}

/// Builds every program of the package in `dir`, once per test run; returns its bin directory.
fn built(dir: &'static str, once: &'static OnceLock<PathBuf>) -> &'static Path {
    once.get_or_init(|| {
        let target = target_dir(dir);
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "--bins", "--manifest-path"])
            .arg(root().join(dir).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "{dir} does not build");
        target.join("debug")
    })
}

fn solutions() -> &'static Path {
    static ONCE: OnceLock<PathBuf> = OnceLock::new();
    built("solutions", &ONCE)
}

fn fixtures() -> &'static Path {
    static ONCE: OnceLock<PathBuf> = OnceLock::new();
    built("crates/course/fixtures", &ONCE)
}

fn course(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_course"))
        .args(args)
        .output()
        .expect("course runs")
}

fn check(name: &str, program: &Path) -> (Option<i32>, String) {
    let out = course(&[
        "check",
        name,
        "--program",
        program.to_str().expect("a path"),
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn every_solution_passes_its_check() {
    for name in names() {
        let (code, out) = check(&name, &solutions().join(&name));
        assert_eq!(code, Some(0), "solutions/{name}.rs fails its check:\n{out}");
        assert!(out.contains("PASS"), "{out}");
    }
}

#[test]
fn check_builds_the_program_itself() {
    // `--solution` takes the path a learner's `cargo course check NAME` takes: cargo builds the
    // one program, then the check runs it.
    solutions();
    let out = Command::new(env!("CARGO_BIN_EXE_course"))
        .args(["check", "03_listen", "--solution"])
        .env("CARGO", env!("CARGO"))
        .output()
        .expect("course runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("Checking solutions/03_listen.rs") && text.contains("PASS"),
        "{text}"
    );
}

#[test]
fn every_untouched_exercise_fails_naming_a_lesson() {
    for name in names() {
        let (code, out) = check(&name, &fixtures().join(format!("{name}-untouched")));
        assert_eq!(code, Some(1), "{name} as given does not fail:\n{out}");
        assert!(
            out.contains("todo!()"),
            "{name}: the failure does not say where:\n{out}"
        );
        let lesson = format!(
            "read: lessons/{:02}-",
            &name[..2].parse::<u32>().expect("NN_")
        );
        assert!(out.contains(&lesson), "{name}: no lesson named:\n{out}");
    }
}

#[test]
fn every_wrong_solution_fails_naming_its_mistake() {
    for (bin, mistake) in WRONG {
        let name = bin.split('-').next().expect("NAME-WHAT");
        let (code, out) = check(name, &fixtures().join(bin));
        assert_eq!(code, Some(1), "{bin} passes:\n{out}");
        assert!(
            out.contains(mistake),
            "{bin}: the failure does not say {mistake:?}:\n{out}"
        );
        assert!(
            out.contains("read: lessons/"),
            "{bin}: no lesson named:\n{out}"
        );
    }
}

/// The `[[bin]]` names of a package's manifest.
fn bins(manifest: &str) -> BTreeSet<String> {
    let text = fs::read_to_string(root().join(manifest)).expect("a manifest");
    let table: toml::Table = text.parse().expect("it parses");
    table["bin"]
        .as_array()
        .expect("[[bin]]")
        .iter()
        .map(|b| b["name"].as_str().expect("a name").to_owned())
        .collect()
}

#[test]
fn every_exercise_has_a_solution_an_original_and_two_wrong_solutions_in_the_tables() {
    let names = names();
    let listed: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(bins("exercises/Cargo.toml"), listed);
    assert_eq!(bins("solutions/Cargo.toml"), listed);
    let fixture_bins = bins("crates/course/fixtures/Cargo.toml");
    let wrong: BTreeSet<String> = WRONG.iter().map(|(b, _)| b.to_string()).collect();
    for name in &names {
        assert!(
            fixture_bins.contains(&format!("{name}-untouched")),
            "{name}: no original"
        );
        let mistakes = wrong
            .iter()
            .filter(|b| b.starts_with(&format!("{name}-")))
            .count();
        // 01_create is neither a server nor a client; every later exercise is.
        let least = if name == "01_create" { 1 } else { 2 };
        assert!(
            mistakes >= least,
            "{name}: {mistakes} wrong solutions in WRONG"
        );
    }
    for bin in fixture_bins.iter().filter(|b| !b.ends_with("-untouched")) {
        assert!(wrong.contains(bin), "fixture {bin} is not in WRONG");
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_lesson_section_named_exists() {
    let mut named = Vec::new();
    let mut sources =
        vec![fs::read_to_string(root().join("crates/course/info.toml")).expect("info")];
    for entry in fs::read_dir(root().join("crates/course/src/checks")).expect("checks") {
        sources.push(fs::read_to_string(entry.expect("an entry").path()).expect("a check"));
    }
    for text in &sources {
        for piece in text.split("lessons/").skip(1) {
            let link: String = piece
                .chars()
                .take_while(|c| c.is_alphanumeric() || "-_.#".contains(*c))
                .collect();
            if let Some((file, section)) = link.split_once('#') {
                named.push((file.to_owned(), section.to_owned()));
            }
        }
    }
    assert!(named.len() >= 5, "{named:?}");
    for (file, section) in named {
        let lesson = fs::read_to_string(root().join("lessons").join(&file))
            .unwrap_or_else(|e| panic!("lessons/{file}: {e}"));
        let found = lesson
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .any(|h| anchor(h.trim_start_matches('#')) == section);
        assert!(found, "lessons/{file} has no section #{section}");
    }
}

#[test]
fn list_hint_and_usage() {
    let out = course(&["list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut at = 0;
    for name in names() {
        let found = text[at..]
            .find(&name)
            .unwrap_or_else(|| panic!("{name} not listed in order:\n{text}"));
        at += found;
    }

    let out = course(&["hint", "05_echo"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("In Python") && text.contains("Read: lessons/05-"),
        "{text}"
    );

    for args in [
        &["hint", "99_nothing"][..],
        &["check", "99_nothing"],
        &["watch", "99_nothing"],
        &["reset", "nope"],
        &["frobnicate"],
    ] {
        let out = course(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn reset_restores_the_original_and_keeps_the_learners_version() {
    // A course of its own: a temporary root with the files reset touches.
    let dir = std::env::temp_dir().join(format!("course-reset-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("exercises")).expect("a dir");
    fs::create_dir_all(dir.join("crates/course/fixtures/01_create")).expect("a dir");
    let original =
        fs::read(root().join("crates/course/fixtures/01_create/untouched.rs")).expect("original");
    fs::write(
        dir.join("crates/course/fixtures/01_create/untouched.rs"),
        &original,
    )
    .expect("write");
    fs::write(dir.join("exercises/01_create.rs"), "my work\n").expect("write");

    let out = Command::new(env!("CARGO_BIN_EXE_course"))
        .args(["reset", "01_create"])
        .env("COURSE_ROOT", &dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()
        .expect("course runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert_eq!(
        fs::read(dir.join("exercises/01_create.rs")).expect("reset"),
        original
    );
    let saved: Vec<_> = fs::read_dir(dir.join("target/course/reset"))
        .expect("saved")
        .collect();
    assert_eq!(saved.len(), 1, "{text}");
    let saved = saved
        .into_iter()
        .next()
        .expect("one")
        .expect("entry")
        .path();
    assert_eq!(fs::read_to_string(saved).expect("saved"), "my work\n");
    fs::remove_dir_all(&dir).expect("clean up");
}
