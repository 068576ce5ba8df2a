//! Lesson 7's client against other peers: the seed's server in Python, nc, step 5's server.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use testkit::process::{Running, run};
use testkit::python3;
use tutor::observe;

use common::*;

#[test]
fn the_client_talks_to_the_python_seed_server() {
    let Some(python) = python3() else {
        testkit::skip("python interop", "python3 is not installed");
        return;
    };
    let mut command = Command::new(python);
    command
        .arg(testkit::root().join("scripts/seed_server.py"))
        .args(["--port", "0", "--max-clients", "2"]);
    let mut server = Running::start_command(command);
    let address: SocketAddr = server.wait_ready(LIMIT).parse().expect("an address");
    let port = address.port().to_string();

    let out = run(step7(), ["--port", &port, "--message", "from rust"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("echo: from rust"), "{}", out.output);
    let ephemeral = ephemeral_port(&out.output);
    server.expect_line(
        &format!("client 1 connected from 127.0.0.1:{ephemeral}"),
        LIMIT,
    );
    server.expect_line("client 1 left after 9 bytes", LIMIT);

    // Lines from standard input, then end of input: Python's recv() returns b''.
    let mut lines = Command::new(step7());
    lines.args(["--port", &port]);
    let mut client = Running::start_command(lines);
    client.send_stdin("one\ntwo\n");
    client.close_stdin();
    let done = client.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert!(
        done.says("echo: one") && done.says("echo: two"),
        "{}",
        done.output
    );
    server.expect_line("client 2 left after 8 bytes", LIMIT);
    let finished = server.finish(LIMIT);
    assert_eq!(finished.code, Some(0), "{}", finished.output);
}

/// `nc -l 127.0.0.1 PORT`, listening, with `reply` on its standard input. nc cannot listen on
/// port 0 and say which port it got, so the test picks a free port and tries again (a few
/// times) if another program took it first.
fn nc_listening(nc: &Path, reply: &str) -> (Running, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut command = Command::new(nc);
        command.args(["-l", "127.0.0.1", &port.to_string()]);
        let mut server = Running::start_command(command);
        server.send_stdin(reply);
        let at = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if observe::accept_queue_len(at).is_some() {
                return (server, port);
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
    panic!("nc never listened on a free port in 5 tries");
}

#[test]
fn the_client_talks_to_nc() {
    let Some(nc) = testkit::which("nc") else {
        testkit::skip("nc interop", "nc is not installed");
        return;
    };
    // nc is no echo server: it sends what it reads on its standard input, and prints what
    // it receives. Given a reply as long as the message, the client reads it as the "echo".
    let (nc, port) = nc_listening(&nc, "pong\n");
    let out = run(
        step7(),
        ["--port", &port.to_string(), "--message", "ping\n"],
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("<- 5: \"pong\\n\""), "{}", out.output);
    assert!(out.says("echo: pong"), "{}", out.output);
    let done = nc.finish(LIMIT);
    assert!(done.output.contains("ping"), "nc printed: {}", done.output);
}

#[test]
fn the_client_talks_to_step_5s_echo_server() {
    if !testkit::root()
        .join("crates/step5_recv_send/src/main.rs")
        .is_file()
    {
        testkit::skip(
            "step 5 interop",
            "crates/step5_recv_send does not exist yet",
        );
        return;
    }
    let mut server = Running::start(
        &testkit::bin("step5_recv_send"),
        ["--port", "0", "--max-clients", "1", "--bufsize", "4"],
    );
    let address: SocketAddr = server.wait_ready(LIMIT).parse().expect("an address");
    let port = address.port().to_string();
    let out = run(
        step7(),
        ["--port", &port, "--message", "hello, step 5"],
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("echo: hello, step 5"), "{}", out.output);
    let ephemeral = ephemeral_port(&out.output);
    // Step 5 echoes in pieces of at most 4 bytes; the client reads until all 13 are back.
    server.expect_line(&format!("127.0.0.1:{ephemeral}"), LIMIT);
    let done = server.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
}
