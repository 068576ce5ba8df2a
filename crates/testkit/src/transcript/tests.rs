//! Unit tests of the transcript runner: wildcards, command lines, scratch files.

use super::*;

#[test]
fn tmp_words_move_into_the_blocks_own_directory() {
    let scratch = Path::new("/x/scratch");
    let command = prepare_in(
        "sed -e s/a/b/ /tmp/log",
        Path::new("/"),
        Path::new("/bin"),
        Some(scratch),
    )
    .expect("a command");
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(args, ["-e", "s/a/b/", "/x/scratch/log"]);
}

#[test]
fn a_build_under_tmp_keeps_its_programs_path() {
    // A checkout in /tmp (CI may clone there): the program is not a scratch file.
    let command = prepare_in(
        "strace -o /tmp/log $(scripts/bin.sh step1_create)",
        Path::new("/"),
        Path::new("/tmp/clone/target/debug"),
        Some(Path::new("/x/scratch")),
    )
    .expect("a command");
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        args,
        [
            "-o",
            "/x/scratch/log",
            "/tmp/clone/target/debug/step1_create"
        ]
    );
}

#[test]
fn wildcards_match_what_varies_and_nothing_else() {
    assert!(line_matches("<- 127.0.0.1:[..]", "<- 127.0.0.1:40321"));
    assert!(line_matches("bind([..], [..])", "bind(3, 127.0.0.1:0)"));
    assert!(!line_matches("<- 127.0.0.1:[..]", "<- 0.0.0.0:40321"));
    assert!(!line_matches("a[..]a", "a"));
    assert!(!line_matches("<- 3", "<- 4"));
}

#[test]
fn an_ellipsis_line_skips_lines_but_the_rest_must_follow() {
    assert!(lines_match(&["a", "...", "d"], &["a", "b", "c", "d"]));
    assert!(lines_match(&["a", "...", "b"], &["a", "b"]));
    assert!(!lines_match(&["a", "...", "d"], &["a", "b", "c"]));
    assert!(!lines_match(&["a"], &["a", "extra"]));
}

#[test]
fn commands_split_like_a_shell_would() {
    let words = split_words(r#"NO_COLOR=1 cargo run -q -p x -- --host '' "a b""#).expect("valid");
    assert_eq!(
        words,
        [
            "NO_COLOR=1",
            "cargo",
            "run",
            "-q",
            "-p",
            "x",
            "--",
            "--host",
            "",
            "a b"
        ]
    );
}

#[test]
fn cargo_run_maps_to_the_built_binary() {
    let bin = Path::new("/t/debug");
    let words: Vec<String> = ["run", "-q", "-p", "step2_bind", "--", "--port", "0"]
        .map(String::from)
        .to_vec();
    let (program, args) = cargo_run(&words, bin).expect("understood");
    assert_eq!(program, Path::new("/t/debug/step2_bind"));
    assert_eq!(args, ["--port", "0"]);
    let build: Vec<String> = ["build"].map(String::from).to_vec();
    assert!(cargo_run(&build, bin).is_err());
    let course: Vec<String> = ["course", "check", "05_echo", "--solution"]
        .map(String::from)
        .to_vec();
    let (program, args) = cargo_run(&course, bin).expect("the alias");
    assert_eq!(program, Path::new("/t/debug/course"));
    assert_eq!(args, ["check", "05_echo", "--solution"]);
}

#[test]
fn a_drifted_transcript_is_reported() {
    let md = "text\n```console\n$ echo hello\nhello, world\n```\n";
    let found = blocks(md, "x.md");
    assert_eq!(found.len(), 1);
    let result = check_block(&found[0], Path::new("/"), Path::new("/"));
    let message = result.expect_err("the output differs");
    assert!(message.contains("x.md:2"), "{message}");
    assert!(message.contains("hello, world"), "{message}");
}

#[test]
fn a_hidden_failure_is_reported_and_a_shown_one_is_not() {
    let hidden = blocks("```console\n$ false\n```\n", "x.md");
    assert!(check_block(&hidden[0], Path::new("/"), Path::new("/")).is_err());
    let shown = blocks("```console\n$ false\n$ echo $?\n1\n```\n", "x.md");
    assert!(check_block(&shown[0], Path::new("/"), Path::new("/")).is_ok());
}
