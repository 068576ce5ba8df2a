//! What lesson 7 claims about connect and the TCP client, checked against the program, the
//! kernel and other peers (Python, nc, step 5).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use testkit::process::{Finished, Running, Separate, run, run_command, run_separately};
use testkit::python3;
use testkit::strace;
use tutor::observe;

const LIMIT: Duration = Duration::from_secs(30);

fn step7() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step7_connect"))
}

fn step7_separately(args: &[&str]) -> Separate {
    let mut command = Command::new(step7());
    command.args(args);
    run_separately(command, LIMIT)
}

/// What the in-test server saw of its one client.
#[derive(Debug)]
struct Seen {
    /// The client's address, as accept() returned it.
    peer: SockAddr,
    /// Every byte the client sent.
    received: Vec<u8>,
}

/// How the in-test server answers.
#[derive(Copy, Clone)]
enum Answer {
    /// Echo everything until the client closes.
    Echo,
    /// Read `n` bytes, send back only the first half of them, and close.
    HalfThenVanish(usize),
}

/// A server on a kernel-chosen port of `address` (port 0 or a unix path) that serves one
/// client in a thread, and reports what it saw.
fn server_on(address: SockAddr, answer: Answer) -> (SockAddr, Receiver<Seen>) {
    let protocol = address.as_socket().map(|_| Protocol::TCP);
    let listener = Socket::new(address.domain(), Type::STREAM, protocol).expect("socket");
    listener.bind(&address).expect("bind");
    listener.listen(8).expect("listen");
    let local = listener.local_addr().expect("address");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (conn, peer) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(LIMIT)).expect("a read timeout");
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        let mut reader = &conn;
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
            match answer {
                Answer::Echo => {
                    if (&conn).write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Answer::HalfThenVanish(whole) => {
                    if received.len() >= whole {
                        let _ = (&conn).write_all(&received[..whole / 2]);
                        break;
                    }
                }
            }
        }
        drop(conn);
        let _ = tx.send(Seen { peer, received });
    });
    (local, rx)
}

fn echo_server() -> (SocketAddr, Receiver<Seen>) {
    let (local, rx) = server_on(loopback(0), Answer::Echo);
    (local.as_socket().expect("inet"), rx)
}

fn loopback(port: u16) -> SockAddr {
    SocketAddr::from(([127, 0, 0, 1], port)).into()
}

fn seen(rx: &Receiver<Seen>) -> Seen {
    rx.recv_timeout(LIMIT).expect("the server saw its client")
}

/// A port where nothing listens: bind port 0, read the port the kernel chose, close.
fn free_port() -> u16 {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket.bind(&loopback(0)).expect("bind");
    let port = socket
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet")
        .port();
    drop(socket);
    port
}

/// The port the client's getsockname() showed: `<- 127.0.0.1:PORT` after `getsockname(`.
fn ephemeral_port(output: &str) -> u16 {
    let lines: Vec<&str> = output.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("-> getsockname("))
        .expect("a getsockname call");
    let result = lines[at + 2];
    result
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {result:?}"))
}

fn assert_one_error_line(out: &Separate, code: i32, needles: &[&str]) {
    testkit::process::assert_one_line_failure("step7_connect", code, out);
    let lines: Vec<&str> = out.stderr.lines().collect();
    for needle in needles {
        assert!(lines[0].contains(needle), "{needle:?} in {}", lines[0]);
    }
}

#[test]
fn a_message_comes_back_as_its_echo() {
    let (server, rx) = echo_server();
    let port = server.port().to_string();
    let out = run(
        step7(),
        ["--port", &port, "--message", "hello, echo"],
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("<- 11: \"hello, echo\""), "{}", out.output);
    assert!(out.says("echo: hello, echo"), "{}", out.output);
    assert_eq!(seen(&rx).received, b"hello, echo");
}

#[test]
fn connect_gives_the_client_an_ephemeral_port_and_the_server_sees_it() {
    let (server, rx) = echo_server();
    let port = server.port().to_string();
    let out = run(step7(), ["--port", &port, "--message", "x"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(!out.says("-> bind("), "a client does not bind");
    let ephemeral = ephemeral_port(&out.output);
    let peer = seen(&rx).peer.as_socket().expect("inet");
    assert_eq!(peer.port(), ephemeral, "accept() names the same port");
    assert_ne!(ephemeral, server.port());
    // The kernel picks it from net.ipv4.ip_local_port_range.
    let range: Vec<u16> = observe::sysctl("net.ipv4.ip_local_port_range")
        .expect("the range")
        .split_whitespace()
        .map(|p| p.parse().expect("a port"))
        .collect();
    assert!(
        (range[0]..=range[1]).contains(&ephemeral),
        "{ephemeral} in {range:?}"
    );
}

#[test]
fn a_long_message_with_a_small_buffer_takes_several_recvs() {
    let (server, rx) = echo_server();
    let port = server.port().to_string();
    let message = "abcdefghij";
    let out = run(
        step7(),
        ["--port", &port, "--message", message, "--bufsize", "4"],
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    let recvs = out.lines_with("-> recvfrom(").count();
    assert!(
        recvs >= 3,
        "10 bytes in at most 4 at a time: {}",
        out.output
    );
    assert!(out.says("echo: abcdefghij"), "{}", out.output);
    assert_eq!(seen(&rx).received, message.as_bytes());
}

#[test]
fn stdin_lines_are_sent_one_by_one_and_eof_shuts_down_the_write_half() {
    let (server, rx) = echo_server();
    let port = server.port().to_string();
    let mut client = Running::start(step7(), ["--port", &port, "--bufsize", "3"]);
    client.expect_line("type a line", LIMIT);
    client.send_stdin("first line\n");
    client.expect_line("echo: first line", LIMIT);
    client.send_stdin("second\n");
    client.expect_line("echo: second", LIMIT);
    client.close_stdin();
    client.expect_line("-> shutdown(3, SHUT_WR)", LIMIT);
    client.expect_line("<- 0: end of file: the server closed its end too", LIMIT);
    let done = client.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    // The server read end of file (the shutdown), then closed: it saw exactly the lines.
    assert_eq!(seen(&rx).received, b"first line\nsecond\n");
}

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
    assert!(out.stdout.contains("<- -1 EINPROGRESS"), "{}", out.stdout);
    assert!(
        out.stdout.contains("<- ECONNREFUSED (Connection refused)"),
        "{}",
        out.stdout
    );
    assert_one_error_line(&out, 1, &["ECONNREFUSED", "lessons/07-connect.md"]);
}

/// A listener whose accept queue is full: backlog 0 and one client waiting in it. Linux
/// drops the next SYN without an answer (lessons/03-listen.md).
fn full_listener() -> (Socket, Socket, SocketAddr) {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    listener.bind(&loopback(0)).expect("bind");
    listener.listen(0).expect("listen");
    let address = listener.local_addr().expect("address");
    let queued = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    queued
        .connect_timeout(&address, Duration::from_secs(5))
        .expect("the first client fits");
    let at = address.as_socket().expect("inet");
    let deadline = Instant::now() + Duration::from_secs(5);
    while observe::accept_queue_len(at) != Some(1) {
        assert!(Instant::now() < deadline, "the queue never held the client");
        thread::sleep(Duration::from_millis(1));
    }
    (listener, queued, at)
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
            .contains("<- -1 EINPROGRESS (Operation now in progress)"),
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
        out.says("socket2: socket.connect_timeout(&address, 5s)"),
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
fn a_server_that_vanishes_mid_echo_is_one_clear_line() {
    let (server, rx) = server_on(loopback(0), Answer::HalfThenVanish(6));
    let port = server.as_socket().expect("inet").port().to_string();
    let out = step7_separately(&["--port", &port, "--message", "abcdef"]);
    assert!(
        out.stdout
            .contains("<- 0: end of file: the server closed the connection"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("echo: "), "no echo is complete");
    assert_one_error_line(
        &out,
        1,
        &[
            "the server closed the connection after 3 of 6 bytes of the echo",
            "vanished",
            "lessons/07-connect.md",
        ],
    );
    assert_eq!(seen(&rx).received, b"abcdef");
}

#[test]
fn a_dgram_client_cannot_talk_to_a_tcp_server() {
    // The seed's client: socket(AF_INET, SOCK_DGRAM), then connect and talk, to a TCP server.
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    listener.bind(&loopback(0)).expect("bind");
    listener.listen(8).expect("listen");
    let at = listener
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet");
    let port = at.port().to_string();
    let out = step7_separately(&["--port", &port, "--type", "dgram", "--message", "hello"]);
    let narration = &out.stdout;
    assert!(
        narration.contains("-> socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, IPPROTO_UDP)"),
        "{narration}"
    );
    // connect() "succeeds" at once: no handshake, nothing sent.
    assert!(
        narration.contains("<- 0: but nothing was sent"),
        "{narration}"
    );
    // The datagram goes out, and the answer is an ICMP "port unreachable": ECONNREFUSED.
    assert!(
        narration.contains("-> sendto(3, \"hello\", 5, 0)"),
        "{narration}"
    );
    assert!(narration.contains("<- 5\n"), "{narration}");
    assert!(
        narration.contains("<- -1 ECONNREFUSED (Connection refused)"),
        "{narration}"
    );
    assert_one_error_line(
        &out,
        1,
        &["recvfrom(3, buf, 5, 0) failed with ECONNREFUSED"],
    );
    // The TCP server never saw a client: nothing in its accept queue, nothing to accept.
    assert_eq!(observe::accept_queue_len(at), Some(0));
    listener.set_nonblocking(true).expect("non-blocking");
    let accepted = listener.accept().map(|_| ());
    assert_eq!(
        accepted.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock)
    );
}

/// A unix socket path in a directory of its own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "step7-test-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_unix_client_connects_by_path_and_has_no_name() {
    let dir = TempDir::new("unix");
    let path = dir.0.join("echo.sock");
    let (_, rx) = server_on(SockAddr::unix(&path).expect("a path"), Answer::Echo);
    let path_arg = path.to_str().expect("utf-8");
    let out = run(
        step7(),
        [
            "--family",
            "unix",
            "--path",
            path_arg,
            "--message",
            "over a file",
        ],
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        out.says("-> socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0)"),
        "{}",
        out.output
    );
    assert!(out.says("<- (unnamed)"), "{}", out.output);
    assert!(out.says("echo: over a file"), "{}", out.output);
    assert_eq!(seen(&rx).received, b"over a file");

    // The server gone and its file removed: ENOENT. A datagram socket: EPROTOTYPE.
    std::fs::remove_file(&path).expect("remove the socket file");
    let gone = step7_separately(&["--family", "unix", "--path", path_arg, "--message", "x"]);
    assert_one_error_line(&gone, 1, &["ENOENT", "no socket file at that path"]);
}

#[test]
fn a_unix_datagram_socket_cannot_connect_to_a_stream_server() {
    let dir = TempDir::new("proto");
    let path = dir.0.join("stream.sock");
    let listener = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
    listener
        .bind(&SockAddr::unix(&path).expect("a path"))
        .expect("bind");
    listener.listen(1).expect("listen");
    let path_arg = path.to_str().expect("utf-8");
    let out = step7_separately(&[
        "--family",
        "unix",
        "--path",
        path_arg,
        "--type",
        "dgram",
        "--message",
        "x",
    ]);
    assert_one_error_line(&out, 1, &["EPROTOTYPE"]);
}

#[test]
fn ipv6_connects_to_the_ipv6_loopback() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        testkit::skip("ipv6", "no IPv6 loopback here");
        return;
    };
    let at = listener.local_addr().expect("address");
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 16];
        let n = conn.read(&mut buf).expect("read");
        conn.write_all(&buf[..n]).expect("write");
        n
    });
    let port = at.port().to_string();
    let out = run(
        step7(),
        ["--family", "ipv6", "--port", &port, "--message", "six"],
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        out.says("-> socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP)"),
        "{}",
        out.output
    );
    assert!(
        out.says(&format!("-> connect(3, [::1]:{port})")),
        "{}",
        out.output
    );
    assert!(out.says("<- [::1]:"), "{}", out.output);
    assert!(out.says("echo: six"), "{}", out.output);
    assert_eq!(server.join().expect("the server thread"), 3);
}

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

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
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
fn the_shutdown_after_end_of_input_lets_the_server_finish_first() {
    // A server that answers only once the client has said everything: it reads until end of
    // file, then sends its reply and closes. The client's shutdown(SHUT_WR) makes that work.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let at = listener.local_addr().expect("address");
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(LIMIT)).expect("timeout");
        let mut all = Vec::new();
        conn.read_to_end(&mut all).expect("read to end of file");
        conn.write_all(b"you said it all\n").expect("write");
        conn.shutdown(Shutdown::Write).expect("shutdown");
        all
    });
    let mut command = Command::new(step7());
    command
        .args(["--port", &at.port().to_string()])
        .stdin(Stdio::null());
    let out = run_command(command, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        out.says("<- 16: \"you said it all\\n\""),
        "the reply after the shutdown: {}",
        out.output
    );
    assert_eq!(server.join().expect("the server"), b"");
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
