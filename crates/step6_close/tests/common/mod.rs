//! Helpers the tests of step 6 share: the program, connections made in-process, and the
//! states of their ends in the kernel's table.
#![allow(dead_code)] // each test file uses some of them

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use testkit::process::{Finished, Running, run};
use tutor::observe::{self, TcpState};

pub const LIMIT: Duration = Duration::from_secs(30);

pub fn step6() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step6_close"))
}

/// Runs one part of the demo, which must succeed.
pub fn demo_part(part: &str) -> Finished {
    let out = run(step6(), ["--demo", "--part", part], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    out
}

/// Checks that lines containing each of `needles` appear in this order (each needle on a
/// line after the previous one's line), and returns nothing; panics with the output if not.
pub fn assert_in_order(output: &str, needles: &[&str]) {
    let lines: Vec<&str> = output.lines().collect();
    let mut from = 0;
    for needle in needles {
        match lines[from..].iter().position(|l| l.contains(needle)) {
            Some(at) => from += at + 1,
            None => panic!("no line with {needle:?} after line {from}:\n{output}"),
        }
    }
}

/// A listening socket on 127.0.0.1, port chosen by the kernel.
pub fn listener(reuse: bool) -> (Socket, SocketAddr) {
    listener_on("127.0.0.1", reuse)
}

/// A listening socket on a loopback address, port chosen by the kernel.
pub fn listener_on(ip: &str, reuse: bool) -> (Socket, SocketAddr) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket.set_reuse_address(reuse).expect("SO_REUSEADDR");
    socket
        .bind(
            &format!("{ip}:0")
                .parse::<SocketAddr>()
                .expect("addr")
                .into(),
        )
        .expect("bind");
    socket.listen(8).expect("listen");
    let address = socket
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet");
    (socket, address)
}

/// A connection to `listener`: the client's socket, the server's, and the client's address.
pub fn connect(listener: &Socket, at: SocketAddr) -> (Socket, Socket, SocketAddr) {
    let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    client.connect(&at.into()).expect("connect");
    let (conn, peer) = listener.accept().expect("accept");
    for socket in [&client, &conn] {
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("SO_RCVTIMEO");
    }
    (client, conn, peer.as_socket().expect("inet"))
}

/// The state of the end of a connection whose own address is `local` and whose peer is
/// `remote`, in /proc/net/tcp; `None` if the kernel no longer lists it.
pub fn end_state(local: SocketAddr, remote: SocketAddr) -> Option<TcpState> {
    observe::tcp_sockets_on_port(local.port())
        .expect("/proc/net/tcp is readable")
        .into_iter()
        .find(|e| e.local == local && e.remote == remote)
        .map(|e| e.state)
}

/// Waits, at most 5 seconds, until that end is in state `want`.
pub fn wait_for(local: SocketAddr, remote: SocketAddr, want: Option<TcpState>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = end_state(local, remote);
        if seen == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{local} -> {remote}: still {seen:?}, never {want:?}; on the port: {}",
            holders(local.port())
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Reads until end of file (or until `limit` bytes), returning how many bytes came.
pub fn drain(socket: &Socket) -> usize {
    let mut total = 0;
    let mut buf = [0u8; 4096];
    let mut reader = socket;
    for _ in 0..1_000_000 {
        match reader.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) => panic!("read failed after {total} bytes: {e}"),
        }
    }
    panic!("no end of file after {total} bytes");
}

/// Sends from a non-blocking socket until its send buffer is full; returns the bytes sent.
pub fn fill(socket: &Socket) -> usize {
    socket.set_nonblocking(true).expect("O_NONBLOCK");
    let chunk = [7u8; 1024];
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match socket.send(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("send failed: {e}"),
        }
    }
    socket.set_nonblocking(false).expect("blocking again");
    assert!(total > 0, "nothing was sent");
    total
}

/// Produces a connection whose server end is in TIME-WAIT: the server closes first.
pub fn server_end_in_time_wait(listener: &Socket, at: SocketAddr) -> SocketAddr {
    let (client, conn, client_at) = connect(listener, at);
    drop(conn);
    let mut reader = &client;
    assert_eq!(reader.read(&mut [0u8; 16]).expect("EOF"), 0);
    drop(client);
    wait_for(at, client_at, Some(TcpState::TimeWait));
    client_at
}

/// Closes a listening socket and waits, at most 5 seconds, until the kernel no longer lists
/// it. Closing our descriptor is not always the end of the socket: another test thread may
/// be starting a program at that moment, and between fork() and exec() the child holds a
/// copy of every descriptor (SOCK_CLOEXEC closes it only at exec).
pub fn close_listener(listener: Socket, at: SocketAddr) {
    drop(listener);
    let deadline = Instant::now() + Duration::from_secs(5);
    while observe::tcp_sockets_on_port(at.port())
        .expect("readable")
        .iter()
        .any(|e| e.local == at && e.state == TcpState::Listen)
    {
        assert!(Instant::now() < deadline, "{at} still listens");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Every socket on `port` in the kernel's table, for failure messages.
pub fn holders(port: u16) -> String {
    observe::tcp_sockets_on_port(port)
        .map(|all| {
            all.iter()
                .map(|e| format!("{} -> {} {}", e.local, e.remote, e.state.name()))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

pub fn bind_error(address: SocketAddr, reuse: bool) -> Option<ErrorKind> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket.set_reuse_address(reuse).expect("SO_REUSEADDR");
    socket.bind(&address.into()).err().map(|e| e.kind())
}

/// Starts the interactive server and returns it with its address.
pub fn start_server(args: &[&str]) -> (Running, SocketAddr) {
    let mut server = Running::start(step6(), args);
    let at = server.wait_ready(LIMIT).parse().expect("an address");
    (server, at)
}

pub fn client(at: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(at).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// Runs the server to completion with one client that sends a line and reads to the end.
pub fn serve_one_client(args: &[&str]) -> SocketAddr {
    let (server, at) = start_server(args);
    let mut stream = client(at);
    let me = stream.local_addr().expect("addr");
    stream.write_all(b"hi\n").expect("send");
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("echo and EOF");
    drop(stream);
    assert_eq!(server.finish(LIMIT).code, Some(0));
    wait_for(at, me, Some(TcpState::TimeWait));
    at
}

pub fn counted_at_least_once(out: &Finished, counter: &str) -> bool {
    out.lines_with(&format!("TcpExt {counter} went up by "))
        .filter_map(|l| {
            l.split("went up by ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .any(|n| n >= 1)
}
