//! Lesson 7's narration: every network call strace sees, and the demo, the same on every run.

mod common;

use std::path::Path;

use testkit::process::{Finished, run};
use testkit::strace;

use common::*;

#[test]
fn the_narration_shows_every_network_call_strace_sees() {
    let refused = free_port().to_string();
    let (_full, _queued, full_at) = full_listener();
    let full = full_at.port().to_string();
    let cases: Vec<(Vec<String>, Option<i32>)> = vec![
        (vec!["--demo".into()], Some(0)),
        (
            vec!["--demo".into(), "--family".into(), "unix".into()],
            Some(0),
        ),
        (args(&["--port", &refused, "--message", "x"]), Some(1)),
        (args(&["--port", &refused, "--timeout", "5"]), Some(1)),
        (args(&["--port", &full, "--timeout", "0.3"]), Some(1)),
        (
            args(&["--port", &refused, "--type", "dgram", "--message", "x"]),
            Some(1),
        ),
        (vec!["echo".into()], Some(0)),
        (vec!["echo-timeout".into()], Some(0)),
    ];
    for (case, code) in cases {
        let (case, _rx) = match case[0].as_str() {
            "echo" | "echo-timeout" => {
                let (server, rx) = echo_server();
                let mut with = args(&["--port", &server.port().to_string(), "--message", "hi"]);
                if case[0] == "echo-timeout" {
                    with.extend(args(&["--timeout", "5"]));
                }
                (with, Some(rx))
            }
            _ => (case, None),
        };
        let Some(traced) = strace::trace_network("step7 vs strace", step7(), &case, LIMIT) else {
            return;
        };
        assert_eq!(traced.run.code, code, "{case:?}: {}", traced.run.output);
        let narrated = strace::narrated_network_calls(&traced.run.output);
        let seen: Vec<String> = traced.calls.iter().map(|c| c.name.clone()).collect();
        assert_eq!(narrated, seen, "{case:?}\n{:#?}", traced.calls);
        // With --timeout a TCP connect() really is non-blocking: EINPROGRESS.
        if case.iter().any(|a| a == "--timeout") && !case.contains(&"dgram".to_owned()) {
            let connect = traced
                .calls
                .iter()
                .find(|c| c.name == "connect")
                .expect("a connect");
            assert!(connect.line.contains("EINPROGRESS"), "{}", connect.line);
        }
    }
}

#[test]
fn the_demo_talks_then_is_refused_in_one_terminal() {
    for family in ["ipv4", "ipv6", "unix"] {
        let out = run(step7(), ["--demo", "--family", family], LIMIT);
        assert_eq!(out.code, Some(0), "{family}: {}", out.output);
        assert!(out.says("client    echo: hello, server"), "{}", out.output);
        assert!(
            out.says("client 3  <- -1 ECONNREFUSED (Connection refused)"),
            "{family}: {}",
            out.output
        );
        // The seed's SOCK_DGRAM client, against the same server while it listens.
        let dgram = if family == "unix" {
            "client 2  <- -1 EPROTOTYPE (Protocol wrong type for socket)"
        } else {
            "client 2  <- -1 ECONNREFUSED (Connection refused)"
        };
        assert!(out.says(dgram), "{family}: {}", out.output);
        if family != "unix" {
            assert!(
                out.says("accept queue: 0 connection(s) waiting: the server never saw client 2"),
                "{family}: {}",
                out.output
            );
            assert!(
                out.says("accept() names the client by the address its connect() got"),
                "{family}: {}",
                out.output
            );
        } else {
            let path = out
                .lines_with("ready: listening on ")
                .next()
                .and_then(testkit::process::ready_address)
                .expect("the ready line")
                .to_owned();
            assert!(!Path::new(&path).exists(), "the demo removes {path}");
        }
    }
}

/// The demo's output with ports (the digits after a `:`) blanked out.
fn without_ports(output: &str) -> String {
    let mut text = String::new();
    let mut in_port = false;
    for c in output.chars() {
        if c.is_ascii_digit() && (in_port || text.ends_with(':')) {
            if !in_port {
                text.push('P');
            }
            in_port = true;
        } else {
            in_port = false;
            text.push(c);
        }
    }
    text
}

#[test]
fn the_demo_tells_the_same_story_every_run() {
    let first = run(step7(), ["--demo"], LIMIT);
    let second = run(step7(), ["--demo"], LIMIT);
    assert_eq!(first.code, Some(0));
    let strip = |out: &Finished| {
        without_ports(&out.output)
            .lines()
            .filter(|l| !l.contains("ephemeral port"))
            // The ready line ends with the server's pid, another each run.
            .map(|l| l.split(" (pid ").next().unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&first), strip(&second));
}
