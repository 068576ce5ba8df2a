//! What lesson 7 claims about a connect that fails: refused, timed out, an unknown host, bad
//! command lines; and Python's connect with a timeout beside the client's.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use testkit::process::{run, run_separately};
use testkit::python3;
use testkit::strace;

use common::*;

#[test]
fn nothing_listening_is_econnrefused_in_one_line() {
    let port = free_port().to_string();
    let out = step7_separately(&["--port", &port, "--message", "hello"]);
    assert!(
        out.stdout
            .contains("<- -1 ECONNREFUSED (Connection refused)"),
        "{}",
        out.stdout
    );
    assert_one_error_line(
        &out,
        1,
        &[
            &format!("connect(3, 127.0.0.1:{port}) failed with ECONNREFUSED"),
            "nothing listens",
            "lessons/07-connect.md",
        ],
    );
    // With --timeout the refusal comes back through poll() and SO_ERROR.
    let out = step7_separately(&["--port", &port, "--timeout", "5"]);
    assert!(
        out.stdout
            .contains("returns -1 EINPROGRESS (Operation now in progress) at once"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("<- ECONNREFUSED (Connection refused)"),
        "{}",
        out.stdout
    );
    assert_one_error_line(&out, 1, &["ECONNREFUSED", "lessons/07-connect.md"]);
}

#[test]
fn a_connect_to_a_full_queue_times_out_after_timeout() {
    let (_listener, _queued, at) = full_listener();
    let port = at.port().to_string();
    let started = Instant::now();
    let out = step7_separately(&["--port", &port, "--message", "x", "--timeout", "0.5"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450),
        "gave up only after the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "and not much later: {took:?}"
    );
    assert!(
        out.stdout
            .contains("returns -1 EINPROGRESS (Operation now in progress) at once"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("<- timeout (timed out)"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("ECONNREFUSED"),
        "a full queue does not refuse"
    );
    assert_one_error_line(
        &out,
        1,
        &[&format!("connect(3, 127.0.0.1:{port}) failed with timeout")],
    );
}

#[test]
fn a_connect_with_a_timeout_that_is_answered_talks_as_usual() {
    let (server, rx) = echo_server();
    let port = server.port().to_string();
    let out = run(
        step7(),
        ["--port", &port, "--message", "quick", "--timeout", "5"],
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        out.says("socket2: socket.connect_timeout(&address, limit)")
            && out.says("poll() waits at most 5s"),
        "{}",
        out.output
    );
    assert!(out.says("echo: quick"), "{}", out.output);
    assert_eq!(seen(&rx).received, b"quick");
}

#[test]
fn an_unknown_host_is_exit_1_cannot_resolve() {
    let mut command = Command::new(step7());
    command
        .args(["--host", "no-such-host.invalid", "--port", "7"])
        .env("RES_OPTIONS", "timeout:1 attempts:1");
    let out = run_separately(command, LIMIT);
    assert!(
        out.stdout
            .contains("-> getaddrinfo(\"no-such-host.invalid\")")
    );
    assert!(
        !out.stdout.contains("-> socket("),
        "no socket without an address"
    );
    assert_one_error_line(&out, 1, &["cannot resolve host 'no-such-host.invalid'"]);
}

#[test]
fn bad_command_lines_get_one_line_and_exit_2() {
    for args in [
        vec!["--message", "x"],
        vec!["--family", "unix"],
        vec!["--family", "unix", "--path", "/tmp/x.sock", "--port", "80"],
        vec!["--path", "/tmp/x.sock", "--port", "80"],
        vec!["--port", "80", "--timeout", "0"],
        vec!["--port", "80", "--timeout", "-1"],
        vec!["--port", "80", "--timeout", "soon"],
        vec!["--port", "80", "--bufsize", "0"],
        vec!["--demo", "--port", "80"],
        vec!["--demo", "--timeout", "1"],
        vec!["--demo", "--type", "dgram"],
        vec!["--family", "ipv4", "--host", "::1", "--port", "80"],
        vec!["--type", "raw", "--port", "80"],
    ] {
        let out = step7_separately(&args);
        assert_one_error_line(&out, 2, &[]);
        assert!(
            !out.stdout.contains("-> socket("),
            "{args:?}: no socket made"
        );
    }
}

#[test]
fn python_with_a_timeout_connects_the_same_way_and_raises_an_oserror() {
    let Some(python) = python3() else {
        testkit::skip("python connect", "python3 is not installed");
        return;
    };
    let port = free_port().to_string();
    // settimeout() then connect(): Python's own non-blocking connect and poll.
    let script = format!(
        r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(('127.0.0.1', {port}))
except ConnectionRefusedError as e:
    print('refused', isinstance(e, OSError), socket.error is OSError, e.errno)
s.close()
"#
    );
    let Some(py) = strace::trace_network("python connect", &python, ["-c", &script], LIMIT) else {
        return;
    };
    assert_eq!(py.run.code, Some(0), "{}", py.run.output);
    assert!(
        py.run.output.contains("refused True True 111"),
        "{}",
        py.run.output
    );
    let Some(rust) = strace::trace_network(
        "step7 connect",
        step7(),
        ["--port", &port, "--timeout", "5"],
        LIMIT,
    ) else {
        return;
    };
    // The first three network calls from socket() on, with their results.
    let first_three = |calls: &[strace::TracedCall]| -> Vec<String> {
        let start = calls
            .iter()
            .position(|c| c.name == "socket")
            .expect("a socket call");
        calls[start..]
            .iter()
            .take(3)
            .map(|c| format!("{} = {}", c.name, c.line.rsplit(" = ").next().unwrap_or("")))
            .collect()
    };
    let python_calls = first_three(&py.calls);
    assert_eq!(
        python_calls,
        [
            "socket = 3",
            "connect = -1 EINPROGRESS (Operation now in progress)",
            "getsockopt = 0"
        ],
        "{:#?}",
        py.calls
    );
    assert_eq!(first_three(&rust.calls), python_calls, "{:#?}", rust.calls);
    for calls in [&py.calls, &rust.calls] {
        assert!(
            calls
                .iter()
                .any(|c| c.line.contains("SO_ERROR, [ECONNREFUSED]")),
            "{calls:#?}"
        );
    }
}
