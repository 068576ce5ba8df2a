//! What lesson 7 claims about the client: its ephemeral port, the conversation, end of input,
//! the seed's SOCK_DGRAM, unix sockets and IPv6, against in-test servers.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use testkit::process::{Running, run, run_command};
use tutor::observe;

use common::*;

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
    client.expect_line("   end of file: the server closed its end too", LIMIT);
    let done = client.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    // The server read end of file (the shutdown), then closed: it saw exactly the lines.
    assert_eq!(seen(&rx).received, b"first line\nsecond\n");
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
fn a_server_that_vanishes_mid_echo_is_one_clear_line() {
    let (server, rx) = server_on(loopback(0), Answer::HalfThenVanish(6));
    let port = server.as_socket().expect("inet").port().to_string();
    let out = step7_separately(&["--port", &port, "--message", "abcdef"]);
    assert!(
        out.stdout
            .contains("   end of file: the server closed the connection"),
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
        narration.contains("\n   but nothing was sent"),
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
