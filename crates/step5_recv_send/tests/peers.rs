//! Lesson 5's "Look from outside": ready-made clients (python3, nc) talk to the echo server.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::process::{Running, run_command};

const LIMIT: Duration = Duration::from_secs(30);

fn step5() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step5_recv_send"))
}

fn start(args: &[&str]) -> (Running, SocketAddr) {
    let mut server = Running::start(step5(), args);
    let address = server.wait_ready(LIMIT).parse().expect("an address");
    (server, address)
}

#[test]
fn the_seed_style_python_client_talks_to_the_rust_server() {
    let Some(python) = testkit::which("python3") else {
        testkit::skip("python client", "python3 is not installed");
        return;
    };
    let (server, address) = start(&["--max-clients", "1"]);
    let mut command = Command::new(python);
    command
        .arg(testkit::root().join("scripts/seed_client.py"))
        .arg(address.ip().to_string())
        .arg(address.port().to_string())
        .arg("你好, echo");
    let out = run_command(command, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert_eq!(out.output, "你好, echo\n");
    let done = server.finish(LIMIT);
    // "你好, echo\n" is 8 characters and a newline, but 13 bytes.
    assert!(done.says("client 1: 13 bytes echoed"), "{}", done.output);
}

#[test]
fn nc_is_a_peer_too() {
    let Some(nc) = testkit::which("nc") else {
        testkit::skip("nc peer", "nc is not installed (.ci/run installs it)");
        return;
    };
    let (server, address) = start(&["--max-clients", "1"]);
    let mut command = Command::new(nc);
    command
        .arg("-N")
        .arg(address.ip().to_string())
        .arg(address.port().to_string())
        .stdin(Stdio::piped());
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("nc starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"hi\n")
        .expect("to nc");
    // Dropping stdin: nc reads end of file, and -N makes it shut down its sending half.
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "nc did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut echo = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut echo)
        .expect("nc's output");
    assert_eq!(echo, "hi\n");
    let done = server.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert!(done.says("<- 3: \"hi\\n\""), "{}", done.output);
}
