//! Helpers the tests of step 7 share: the program, in-test servers that report what they
//! saw, and a listener whose accept queue is full.
#![allow(dead_code)] // each test file uses some of them

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use testkit::process::{Separate, run_separately};
use tutor::observe;

pub const LIMIT: Duration = Duration::from_secs(30);

pub fn step7() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step7_connect"))
}

pub fn step7_separately(args: &[&str]) -> Separate {
    let mut command = Command::new(step7());
    command.args(args);
    run_separately(command, LIMIT)
}

/// What the in-test server saw of its one client.
#[derive(Debug)]
pub struct Seen {
    /// The client's address, as accept() returned it.
    pub peer: SockAddr,
    /// Every byte the client sent.
    pub received: Vec<u8>,
}

/// How the in-test server answers.
#[derive(Copy, Clone)]
pub enum Answer {
    /// Echo everything until the client closes.
    Echo,
    /// Read `n` bytes, send back only the first half of them, and close.
    HalfThenVanish(usize),
}

/// A server on a kernel-chosen port of `address` (port 0 or a unix path) that serves one
/// client in a thread, and reports what it saw.
pub fn server_on(address: SockAddr, answer: Answer) -> (SockAddr, Receiver<Seen>) {
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

pub fn echo_server() -> (SocketAddr, Receiver<Seen>) {
    let (local, rx) = server_on(loopback(0), Answer::Echo);
    (local.as_socket().expect("inet"), rx)
}

pub fn loopback(port: u16) -> SockAddr {
    SocketAddr::from(([127, 0, 0, 1], port)).into()
}

pub fn seen(rx: &Receiver<Seen>) -> Seen {
    rx.recv_timeout(LIMIT).expect("the server saw its client")
}

/// A port where nothing listens: bind port 0, read the port the kernel chose, close.
pub fn free_port() -> u16 {
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
pub fn ephemeral_port(output: &str) -> u16 {
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

pub fn assert_one_error_line(out: &Separate, code: i32, needles: &[&str]) {
    testkit::process::assert_one_line_failure("step7_connect", code, out);
    let lines: Vec<&str> = out.stderr.lines().collect();
    for needle in needles {
        assert!(lines[0].contains(needle), "{needle:?} in {}", lines[0]);
    }
}

/// A listener whose accept queue is full: backlog 0 and one client waiting in it. Linux
/// drops the next SYN without an answer (lessons/03-listen.md).
pub fn full_listener() -> (Socket, Socket, SocketAddr) {
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

pub fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}
