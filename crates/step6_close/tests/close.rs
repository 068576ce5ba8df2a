//! What lesson 6 claims about ending a connection, checked against the program and the kernel.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use testkit::process::{Finished, Running, run, run_command, run_separately};
use testkit::python3;
use testkit::strace;
use tutor::observe::{self, TcpState};

const LIMIT: Duration = Duration::from_secs(30);

fn step6() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step6_close"))
}

/// Runs one part of the demo, which must succeed.
fn demo_part(part: &str) -> Finished {
    let out = run(step6(), ["--demo", "--part", part], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    out
}

/// Checks that lines containing each of `needles` appear in this order (each needle on a
/// line after the previous one's line), and returns nothing; panics with the output if not.
fn assert_in_order(output: &str, needles: &[&str]) {
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
fn listener(reuse: bool) -> (Socket, SocketAddr) {
    listener_on("127.0.0.1", reuse)
}

/// A listening socket on a loopback address, port chosen by the kernel.
fn listener_on(ip: &str, reuse: bool) -> (Socket, SocketAddr) {
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
fn connect(listener: &Socket, at: SocketAddr) -> (Socket, Socket, SocketAddr) {
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
fn end_state(local: SocketAddr, remote: SocketAddr) -> Option<TcpState> {
    observe::tcp_sockets_on_port(local.port())
        .expect("/proc/net/tcp is readable")
        .into_iter()
        .find(|e| e.local == local && e.remote == remote)
        .map(|e| e.state)
}

/// Waits, at most 5 seconds, until that end is in state `want`.
fn wait_for(local: SocketAddr, remote: SocketAddr, want: Option<TcpState>) {
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
fn drain(socket: &Socket) -> usize {
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
fn fill(socket: &Socket) -> usize {
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
fn server_end_in_time_wait(listener: &Socket, at: SocketAddr) -> SocketAddr {
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
fn close_listener(listener: Socket, at: SocketAddr) {
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
fn holders(port: u16) -> String {
    observe::tcp_sockets_on_port(port)
        .map(|all| {
            all.iter()
                .map(|e| format!("{} -> {} {}", e.local, e.remote, e.state.name()))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

fn bind_error(address: SocketAddr, reuse: bool) -> Option<ErrorKind> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket.set_reuse_address(reuse).expect("SO_REUSEADDR");
    socket.bind(&address.into()).err().map(|e| e.kind())
}

#[test]
fn a_half_close_gives_the_peer_eof_and_the_half_closed_side_still_receives() {
    let out = demo_part("1");
    assert_in_order(
        &out.output,
        &[
            "client    -> sendto(4, \"what time is it?\", 16, 0)",
            "client    -> shutdown(4, SHUT_WR)",
            "client    <- 0",
            "CLOSE-WAIT, client end 127.0.0.1:",
            "server    <- 16: \"what time is it?\"",
            "server    <- 0: end of file",
            "server    -> sendto(5, \"noon\", 4, 0)",
            "server    <- 4",
            "server    -> close(5)",
            "client    <- 4: \"noon\"",
            "client    <- 0: end of file",
            "kernel    socket table: server end 127.0.0.1:",
        ],
    );
    let tables: Vec<&str> = out.lines_with("kernel    socket table:").collect();
    assert_eq!(tables.len(), 2, "{}", out.output);
    assert!(tables[0].ends_with("FIN-WAIT-2"), "{}", tables[0]);
    assert!(
        tables[1].contains(" gone, client end ") && tables[1].ends_with("TIME-WAIT"),
        "the client's FIN went first: {}",
        tables[1]
    );
    assert!(!out.says("<- -1"), "no call failed:\n{}", out.output);
}

#[test]
fn after_close_the_peers_first_send_draws_a_reset_and_the_next_fails_with_epipe() {
    let out = demo_part("2");
    assert_in_order(
        &out.output,
        &[
            "server    -> close(5)",
            "FIN-WAIT-2, client end 127.0.0.1:",
            "client    <- 0: end of file",
            "client    -> sendto(4, \"are you there?\", 14, 0)",
            "client    <- 14",
            "kernel    socket table:",
            "client    -> sendto(4, \"hello?\", 6, 0)",
            "client    <- -1 EPIPE (Broken pipe)",
            "client    <- 0: end of file",
            "client    <- done",
        ],
    );
    let tables: Vec<&str> = out.lines_with("kernel    socket table:").collect();
    assert!(tables[0].ends_with("CLOSE-WAIT"), "{}", tables[0]);
    assert!(
        tables[1].contains(" gone, client end ") && tables[1].ends_with(" gone"),
        "the reset ends both ends: {}",
        tables[1]
    );
    assert!(
        !out.says("<- -1 ECONNRESET"),
        "a reset in CLOSE-WAIT is EPIPE:\n{}",
        out.output
    );
}

#[test]
fn a_close_with_unread_data_sends_a_reset_instead_of_a_fin() {
    let out = demo_part("3");
    assert_in_order(
        &out.output,
        &[
            "client    <- 14",
            "ESTAB, 14 bytes received and not read (Recv-Q)",
            "server    -> close(5)",
            "kernel    socket table:",
            "kernel    TcpExt TCPAbortOnClose went up by ",
            "client    -> recvfrom(4, buf, 1024, 0)",
            "client    <- -1 ECONNRESET (Connection reset by peer)",
        ],
    );
    let table = out
        .lines_with("kernel    socket table:")
        .last()
        .expect("a table line");
    assert!(
        table.contains(" gone, client end ") && table.ends_with(" gone"),
        "{table}"
    );
    assert!(counted_at_least_once(&out, "TCPAbortOnClose"));

    // The same in-process: the reset is reported once, then end of file, and send fails.
    let (listener, at) = listener(false);
    let (client, conn, _) = connect(&listener, at);
    client.send(b"unread").expect("send");
    let mut reader = &conn;
    let mut one = [0u8; 1];
    assert_eq!(
        reader.read(&mut one).expect("one byte"),
        1,
        "the data arrived"
    );
    drop(conn);
    let mut reader = &client;
    let error = reader.read(&mut [0u8; 8]).expect_err("a reset");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    assert_eq!(reader.read(&mut [0u8; 8]).expect("EOF"), 0);
    let error = client.send(b"x").expect_err("EPIPE");
    assert_eq!(error.kind(), ErrorKind::BrokenPipe);
}

#[test]
fn so_linger_0_aborts_with_a_reset_and_leaves_no_time_wait() {
    let out = demo_part("4");
    assert_in_order(
        &out.output,
        &[
            "server    -> setsockopt(5, SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=0})",
            "server       socket2: conn.set_linger(Some(Duration::ZERO))",
            "server    <- 0",
            "server    -> close(5)",
            "kernel    socket table:",
            "client    <- -1 ECONNRESET (Connection reset by peer)",
        ],
    );
    let table = out
        .lines_with("kernel    socket table:")
        .last()
        .expect("a table line");
    assert!(
        table.contains(" gone, client end ") && table.ends_with(" gone"),
        "{table}"
    );
    assert!(counted_at_least_once(&out, "TCPAbortOnData"));

    // The same in-process, against an ordinary close: that one leaves TIME-WAIT, this none.
    let (listener, at) = listener(false);
    let ordinary = server_end_in_time_wait(&listener, at);
    assert_eq!(end_state(at, ordinary), Some(TcpState::TimeWait));
    let (client, conn, client_at) = connect(&listener, at);
    conn.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
    drop(conn);
    wait_for(client_at, at, None);
    assert_eq!(
        end_state(at, client_at),
        None,
        "no TIME-WAIT after an abort"
    );
    let mut reader = &client;
    let error = reader.read(&mut [0u8; 8]).expect_err("a reset");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    // The reset is reported once; after it, recv() reads end of file and send() fails.
    assert_eq!(reader.read(&mut [0u8; 8]).expect("EOF"), 0);
    let error = client.send(b"x").expect_err("EPIPE");
    assert_eq!(error.kind(), ErrorKind::BrokenPipe);
}

#[test]
fn a_reset_is_reported_once_to_whichever_call_comes_first() {
    // The table's rows for a reset: when the other end sends before it reads, the send gets
    // ECONNRESET; only after the reset has been reported do sends fail with EPIPE.
    let (listener, at) = listener(false);
    let (client, conn, client_at) = connect(&listener, at);
    conn.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
    drop(conn);
    wait_for(client_at, at, None);
    let error = client.send(b"x").expect_err("a reset");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
    let error = client.send(b"x").expect_err("EPIPE");
    assert_eq!(error.kind(), ErrorKind::BrokenPipe, "{error}");
    let mut reader = &client;
    assert_eq!(reader.read(&mut [0u8; 8]).expect("EOF"), 0);
}

fn counted_at_least_once(out: &Finished, counter: &str) -> bool {
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

#[test]
fn the_side_that_closes_first_is_left_in_time_wait() {
    // The server closes first: TIME-WAIT on the server's port; the client's end is gone.
    let (listener, at) = listener(false);
    let (client, conn, client_at) = connect(&listener, at);
    drop(conn);
    wait_for(at, client_at, Some(TcpState::FinWait2));
    wait_for(client_at, at, Some(TcpState::CloseWait));
    assert_eq!(drain(&client), 0);
    drop(client);
    wait_for(at, client_at, Some(TcpState::TimeWait));
    wait_for(client_at, at, None);

    // The client closes first: TIME-WAIT on the client's port, and the server's is free.
    // (On 127.0.0.2: once our listener is gone, other tests' clients, which talk to
    // 127.0.0.1, could be given the freed port on 127.0.0.1 and make the bind below fail.)
    let (listener, at) = listener_on("127.0.0.2", false);
    let (client, conn, client_at) = connect(&listener, at);
    drop(client);
    assert_eq!(drain(&conn), 0);
    drop(conn);
    wait_for(client_at, at, Some(TcpState::TimeWait));
    wait_for(at, client_at, None);
    close_listener(listener, at);
    assert_eq!(
        bind_error(at, false),
        None,
        "nothing waits on the server's port: {}",
        holders(at.port())
    );
}

#[test]
fn fin_wait_1_and_last_ack_last_while_a_fin_waits_behind_unsent_data() {
    // Small buffers, so that a few kilobytes fill the peer's receive window.
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    listener.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    listener.set_send_buffer_size(4096).expect("SO_SNDBUF");
    listener
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().expect("addr").into())
        .expect("bind");
    listener.listen(1).expect("listen");
    let at = listener
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet");
    let a = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    a.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    a.set_send_buffer_size(4096).expect("SO_SNDBUF");
    a.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    a.connect(&at.into()).expect("connect");
    let (b, a_at) = listener.accept().expect("accept");
    let a_at = a_at.as_socket().expect("inet");
    b.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");

    // a fills b's window, then shuts down: its FIN waits behind the unsent data.
    let sent_by_a = fill(&a);
    a.shutdown(Shutdown::Write).expect("shutdown");
    wait_for(a_at, at, Some(TcpState::FinWait1));
    assert_eq!(end_state(at, a_at), Some(TcpState::Established));

    // b reads it all: the FIN arrives and is acknowledged.
    assert_eq!(drain(&b), sent_by_a);
    wait_for(a_at, at, Some(TcpState::FinWait2));
    wait_for(at, a_at, Some(TcpState::CloseWait));

    // b fills a's window, then closes: its FIN waits too, in LAST-ACK.
    let sent_by_b = fill(&b);
    drop(b);
    wait_for(at, a_at, Some(TcpState::LastAck));
    assert_eq!(end_state(a_at, at), Some(TcpState::FinWait2));

    // a reads it all: b's FIN is acknowledged, b's end is gone, a's waits in TIME-WAIT.
    assert_eq!(drain(&a), sent_by_b);
    wait_for(at, a_at, None);
    wait_for(a_at, at, Some(TcpState::TimeWait));
}

#[test]
fn time_wait_lasts_60_seconds_on_linux() {
    let (listener, at) = listener(false);
    let client_at = server_end_in_time_wait(&listener, at);
    // /proc/net/tcp prints a TIME-WAIT entry with timer 3 and the time left, in 1/100 s.
    let text = std::fs::read_to_string("/proc/net/tcp").expect("readable");
    let hex_port = |p: u16| format!(":{p:04X}");
    let line = text
        .lines()
        .find(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 5
                && f[1].ends_with(&hex_port(at.port()))
                && f[2].ends_with(&hex_port(client_at.port()))
        })
        .expect("the TIME-WAIT entry");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3], "06", "TIME_WAIT is state 6: {line}");
    let (timer, left) = fields[5].split_once(':').expect("tr:tm->when");
    assert_eq!(timer, "03", "the TIME-WAIT timer: {line}");
    let left = u64::from_str_radix(left, 16).expect("hex") as f64 / 100.0;
    assert!(
        (55.0..=60.0).contains(&left),
        "{left} s left, of 60: {line}"
    );
}

#[test]
fn the_demo_restarts_over_time_wait_only_with_so_reuseaddr_and_never_beside_a_listener() {
    let out = demo_part("5");
    assert_in_order(
        &out.output,
        &[
            "server    -> close(5)",
            "FIN-WAIT-2, client end 127.0.0.1:",
            "client    <- 0: end of file",
            "client    -> close(4)",
            "TIME-WAIT, client end 127.0.0.1:",
            "server    -> close(3)",
            "restarted -> bind(3, 127.0.0.1:",
            "restarted <- -1 EADDRINUSE (Address already in use)",
            "kernel       what holds the port is the old connection in TIME-WAIT",
            "restarted -> setsockopt(3, SOL_SOCKET, SO_REUSEADDR, 1)",
            "restarted -> bind(3, 127.0.0.1:",
            "restarted <- 0: the old socket and this one both set SO_REUSEADDR",
            "restarted <- 0: listening on 127.0.0.1:",
            "another   -> setsockopt(4, SOL_SOCKET, SO_REUSEADDR, 1)",
            "another   <- -1 EADDRINUSE (Address already in use)",
        ],
    );
    let tables: Vec<&str> = out.lines_with("kernel    socket table:").collect();
    assert!(tables[0].ends_with("CLOSE-WAIT"), "{}", tables[0]);
    assert!(tables[1].ends_with(" gone"), "{}", tables[1]);
}

#[test]
fn so_reuseaddr_helps_only_if_the_old_server_set_it_too() {
    // socket2, like Python's socket.socket, leaves SO_REUSEADDR off until you set it.
    let fresh = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    assert!(!fresh.reuse_address().expect("SO_REUSEADDR"));
    for (old, new, refused) in [
        (false, false, true),
        (false, true, true),
        (true, false, true),
        (true, true, false),
    ] {
        let (listener, at) = listener(old);
        server_end_in_time_wait(&listener, at);
        close_listener(listener, at);
        let got = bind_error(at, new);
        if refused {
            assert_eq!(
                got,
                Some(ErrorKind::AddrInUse),
                "old SO_REUSEADDR {old}, new {new}"
            );
        } else {
            assert_eq!(
                got,
                None,
                "old SO_REUSEADDR {old}, new {new}; on the port: {}",
                holders(at.port())
            );
        }
    }
}

#[test]
fn so_reuseaddr_does_not_allow_two_listeners_on_one_port() {
    let (_first, at) = listener(true);
    assert_eq!(bind_error(at, true), Some(ErrorKind::AddrInUse));
}

#[test]
fn std_tcp_listener_restarts_over_time_wait_because_it_sets_so_reuseaddr() {
    let first = TcpListener::bind("127.0.0.1:0").expect("std bind");
    let at = first.local_addr().expect("addr");
    let mut client = TcpStream::connect(at).expect("connect");
    let (conn, client_at) = first.accept().expect("accept");
    drop(conn);
    assert_eq!(client.read(&mut [0u8; 8]).expect("EOF"), 0);
    drop(client);
    wait_for(at, client_at, Some(TcpState::TimeWait));
    close_listener(Socket::from(first), at);
    // Without SO_REUSEADDR the port is taken (so this test can tell) ...
    assert_eq!(bind_error(at, false), Some(ErrorKind::AddrInUse));
    // ... and std binds it, because it set SO_REUSEADDR on both listeners.
    if let Err(error) = TcpListener::bind(at) {
        panic!(
            "std cannot bind {at}: {error}; on the port: {}",
            holders(at.port())
        );
    }
}

#[test]
fn close_ends_the_connection_only_when_the_last_descriptor_goes() {
    let (listener, at) = listener(false);
    let (client, conn, client_at) = connect(&listener, at);
    // A second descriptor for the same socket, as fork() or dup() would make.
    let copy = conn.try_clone().expect("dup");
    drop(conn);
    // The connection is alive both ways: close() only let go of one descriptor.
    client.send(b"ping").expect("send");
    let mut buf = [0u8; 8];
    let mut reader = &copy;
    assert_eq!(reader.read(&mut buf).expect("read"), 4);
    copy.send(b"pong").expect("send");
    let mut reader = &client;
    assert_eq!(reader.read(&mut buf).expect("read"), 4);
    assert_eq!(end_state(at, client_at), Some(TcpState::Established));
    // shutdown() acts on the connection, whichever descriptor names it.
    copy.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(reader.read(&mut buf).expect("EOF"), 0);
    wait_for(at, client_at, Some(TcpState::FinWait2));
}

#[test]
fn the_seeds_server_cannot_restart_within_a_minute() {
    let Some(python) = python3() else {
        testkit::skip(
            "the_seeds_server_cannot_restart_within_a_minute",
            "python3 is not installed",
        );
        return;
    };
    // The seed's server, with a client beside it: cs.close(), then ss.close(), then the
    // same server again on the same port.
    let script = r#"
import socket
ss = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ss.bind(('127.0.0.1', 0))
ss.listen(5)
port = ss.getsockname()[1]
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.connect(('127.0.0.1', port))
cs, address = ss.accept()
c.send(b'hello')
cs.send(cs.recv(1024))
cs.close()
ss.close()
while c.recv(1024):
    pass
c.close()
ss = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    ss.bind(('127.0.0.1', port))
    print('restarted')
except OSError as e:
    print('restart failed:', e)
"#;
    let mut command = Command::new(python);
    command.args(["-c", script]);
    let out = run_command(command, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert_eq!(
        out.output.trim(),
        "restart failed: [Errno 98] Address already in use"
    );
}

#[test]
fn sigpipe_kills_a_program_that_does_not_ignore_it() {
    let Some(python) = python3() else {
        testkit::skip(
            "sigpipe_kills_a_program_that_does_not_ignore_it",
            "python3 is not installed",
        );
        return;
    };
    // Part 2 of the demo in Python: the server closes, the client keeps sending. Python,
    // like Rust, ignores SIGPIPE; with SIGPIPE's default action the process dies.
    let script = |default_sigpipe: bool| {
        format!(
            r#"
import signal, socket, time
if {default_sigpipe}:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
ss = socket.socket()
ss.bind(('127.0.0.1', 0))
ss.listen(1)
c = socket.create_connection(ss.getsockname())
cs, _ = ss.accept()
cs.close()
sends = 0
deadline = time.monotonic() + 5
try:
    while time.monotonic() < deadline:
        c.send(b'x')
        sends += 1
    print('no error')
except OSError as e:
    print('after', sends, 'send(s):', type(e).__name__)
"#,
            default_sigpipe = if default_sigpipe { "True" } else { "False" }
        )
    };
    let mut ignoring = Command::new(&python);
    ignoring.args(["-c", &script(false)]);
    let out = run_command(ignoring, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        out.output.trim().ends_with("send(s): BrokenPipeError"),
        "{}",
        out.output
    );
    assert!(!out.says("after 0 send(s)"), "the first send succeeds");

    let mut dying = Command::new(&python);
    dying.args(["-c", &script(true)]);
    let out = run_command(dying, LIMIT);
    assert_eq!(out.code, None, "killed by a signal: {}", out.output);
    assert!(!out.says("BrokenPipeError"), "{}", out.output);
}

#[test]
fn the_kernel_raises_sigpipe_with_epipe_and_rust_ignores_it() {
    let Some(strace) = testkit::which("strace") else {
        testkit::skip(
            "the_kernel_raises_sigpipe_with_epipe_and_rust_ignores_it",
            "strace is not installed",
        );
        return;
    };
    let log = std::env::temp_dir().join(format!("step6-sigpipe-{}.log", std::process::id()));
    let mut command = Command::new(strace);
    command
        .args(["-qq", "-e", "trace=sendto", "-e", "signal=SIGPIPE", "-o"])
        .arg(&log)
        .arg(step6())
        .args(["--demo", "--part", "2"]);
    let out = run_command(command, LIMIT);
    let trace = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if trace.is_empty() {
        testkit::skip(
            "the_kernel_raises_sigpipe_with_epipe_and_rust_ignores_it",
            "strace cannot trace here",
        );
        return;
    }
    assert_eq!(out.code, Some(0), "the program survives: {}", out.output);
    assert!(out.says("client    <- done"), "{}", out.output);
    let epipe = trace
        .lines()
        .position(|l| l.contains("= -1 EPIPE"))
        .expect("a send fails with EPIPE");
    let signal = trace
        .lines()
        .position(|l| l.starts_with("--- SIGPIPE"))
        .expect("the kernel raises SIGPIPE");
    assert_eq!(signal, epipe + 1, "{trace}");
}

/// Starts the interactive server and returns it with its address.
fn start_server(args: &[&str]) -> (Running, SocketAddr) {
    let mut server = Running::start(step6(), args);
    let at = server.wait_ready(LIMIT).parse().expect("an address");
    (server, at)
}

fn client(at: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(at).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

#[test]
fn the_server_ends_each_connection_the_way_how_says() {
    let mut buf = [0u8; 64];

    // close: the echo, then end of file; once the client closes, the server's end waits.
    let (server, at) = start_server(&["--max-clients", "1", "--how", "close"]);
    let mut stream = client(at);
    let me = stream.local_addr().expect("addr");
    stream.write_all(b"hello\n").expect("send");
    assert_eq!(stream.read(&mut buf).expect("echo"), 6);
    assert_eq!(stream.read(&mut buf).expect("EOF"), 0);
    drop(stream);
    let done = server.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert!(done.says("<- done: a FIN."), "{}", done.output);
    wait_for(at, me, Some(TcpState::TimeWait));

    // shutdown: the echo, end of file, and the client can still send.
    let (mut server, at) = start_server(&["--max-clients", "1", "--how", "shutdown"]);
    let mut stream = client(at);
    stream.write_all(b"hello\n").expect("send");
    assert_eq!(stream.read(&mut buf).expect("echo"), 6);
    assert_eq!(stream.read(&mut buf).expect("EOF"), 0);
    stream.write_all(b"more\n").expect("still open this way");
    server.expect_line("<- 5: \"more\\n\"", LIMIT);
    drop(stream);
    let done = server.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert_in_order(
        &done.output,
        &[
            "-> shutdown(4, SHUT_WR)",
            "<- 0: end of file",
            "-> close(4)",
        ],
    );

    // linger0: the echo, then a reset; nothing is left in the table.
    let (server, at) = start_server(&["--max-clients", "1", "--how", "linger0"]);
    let mut stream = client(at);
    let me = stream.local_addr().expect("addr");
    stream.write_all(b"hello\n").expect("send");
    assert_eq!(stream.read(&mut buf).expect("echo"), 6);
    let error = stream.read(&mut buf).expect_err("a reset");
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    let done = server.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert!(done.says("{l_onoff=1, l_linger=0}"), "{}", done.output);
    assert_eq!(end_state(at, me), None);
    assert_eq!(end_state(me, at), None);
}

#[test]
fn the_suggested_bash_client_gets_the_echo_and_end_of_file() {
    let Some(bash) = testkit::which("bash") else {
        testkit::skip("the_suggested_bash_client", "bash is not installed");
        return;
    };
    let (mut server, _) = start_server(&["--max-clients", "1"]);
    let line = server.expect_line("bash -c '", LIMIT);
    let inner = line
        .trim()
        .strip_prefix("bash -c '")
        .and_then(|rest| rest.strip_suffix('\''))
        .expect("bash -c '...'");
    let mut command = Command::new(bash);
    command.args(["-c", inner]);
    let out = run_command(command, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert_eq!(out.output, "hello\n");
    assert_eq!(server.finish(LIMIT).code, Some(0));
}

/// Runs the server to completion with one client that sends a line and reads to the end.
fn serve_one_client(args: &[&str]) -> SocketAddr {
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

#[test]
fn a_restarted_server_needs_reuse_address_on_both_runs() {
    let restart = |port: u16, reuse: bool| {
        let port = port.to_string();
        let mut args = vec!["--port", port.as_str(), "--max-clients", "1"];
        if reuse {
            args.push("--reuse-address");
        }
        let mut command = Command::new(step6());
        command.args(&args);
        run_separately(command, Duration::from_secs(3))
    };

    // A first run with --reuse-address leaves TIME-WAIT on its port.
    let at = serve_one_client(&["--max-clients", "1", "--reuse-address"]);
    // Restarted without it: refused, in one line, with the reason on stdout.
    let out = restart(at.port(), false);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let errors: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].starts_with("error: bind(3, 127.0.0.1:") && errors[0].contains("EADDRINUSE"),
        "{}",
        errors[0]
    );
    assert!(
        out.stdout.contains(&format!(
            "1 connection(s) of an earlier run wait in TIME-WAIT on port {}",
            at.port()
        )),
        "{}",
        out.stdout
    );
    // Restarted with it: it listens again.
    let (server, again) = start_server(&[
        "--port",
        &at.port().to_string(),
        "--max-clients",
        "1",
        "--reuse-address",
    ]);
    assert_eq!(again, at);
    // It takes new connections while the old one still waits in TIME-WAIT.
    let waiting = observe::tcp_sockets_on_port(at.port())
        .expect("readable")
        .into_iter()
        .any(|e| e.local == at && e.state == TcpState::TimeWait);
    assert!(waiting, "the old connection still waits");
    let mut stream = client(at);
    stream.write_all(b"again\n").expect("send");
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("echo and EOF");
    assert_eq!(all, b"again\n");
    assert_eq!(server.finish(LIMIT).code, Some(0));

    // A first run without it: even a restart with --reuse-address is refused.
    let at = serve_one_client(&["--max-clients", "1"]);
    let out = restart(at.port(), true);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("from a run without --reuse-address"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_port_where_a_server_listens_stays_taken_even_with_reuse_address() {
    let (_other, at) = listener(true);
    let port = at.port().to_string();
    let mut command = Command::new(step6());
    command.args(["--port", &port, "--reuse-address"]);
    let out = run_separately(command, LIMIT);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("EADDRINUSE"), "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "a socket listens on port {port}: stop that server first"
        )),
        "{}",
        out.stdout
    );
    assert!(!out.stderr.contains("panicked"));
}

#[test]
fn ss_shows_the_time_wait_the_program_reads() {
    let Some(ss) = testkit::which("ss") else {
        testkit::skip(
            "ss_shows_the_time_wait_the_program_reads",
            "ss is not installed",
        );
        return;
    };
    let (listener, at) = listener(false);
    let client_at = server_end_in_time_wait(&listener, at);
    let filter = format!("( sport = :{} )", at.port());
    let mut command = Command::new(&ss);
    command.args(["-tano", "state", "time-wait", &filter]);
    let out = run_command(command, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    let client_text = client_at.to_string();
    let row = out
        .lines_with(&client_text)
        .next()
        .unwrap_or_else(|| panic!("ss lists {client_at}:\n{}", out.output));
    assert!(row.contains(&at.to_string()), "{row}");
    assert!(row.contains("timer:(timewait,"), "{row}");
}

#[test]
fn the_narration_shows_every_network_call_strace_sees() {
    let Some(traced) = strace::trace_network("step6 demo vs strace", step6(), ["--demo"], LIMIT)
    else {
        return;
    };
    assert_eq!(traced.run.code, Some(0), "{}", traced.run.output);
    let narrated = strace::narrated_network_calls(&traced.run.output);
    let seen: Vec<String> = traced.calls.iter().map(|c| c.name.clone()).collect();
    assert_eq!(narrated, seen, "narrated vs traced");
    let line = |needle: &str| {
        traced
            .calls
            .iter()
            .any(|c| c.line.contains(needle) && c.line.ends_with("= 0"))
    };
    assert!(line("shutdown(4, SHUT_WR)"));
    assert!(line("SO_LINGER, {l_onoff=1, l_linger=0}, 8)"));
    assert!(line("SO_REUSEADDR, [1], 4)"));
    assert_eq!(
        traced
            .calls
            .iter()
            .filter(|c| c.name == "bind" && c.line.contains("EADDRINUSE"))
            .count(),
        2
    );

    // The interactive server, with a client from this test.
    let Some(strace) = testkit::which("strace") else {
        return;
    };
    for how in ["shutdown", "linger0"] {
        let log = std::env::temp_dir().join(format!("step6-{how}-{}.log", std::process::id()));
        let mut command = Command::new(&strace);
        command
            .args(["-f", "-qq", "-e", "trace=%network", "-o"])
            .arg(&log)
            .arg(step6())
            .args(["--max-clients", "1", "--reuse-address", "--how", how]);
        let mut server = Running::start_command(command);
        let at: SocketAddr = server.wait_ready(LIMIT).parse().expect("address");
        let mut stream = client(at);
        stream.write_all(b"hi\n").expect("send");
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all);
        drop(stream);
        let done = server.finish(LIMIT);
        assert_eq!(done.code, Some(0), "{}", done.output);
        let trace = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        let seen: Vec<String> = trace
            .lines()
            .filter_map(|l| {
                let l = l.split_once(' ').map_or(l, |(_, rest)| rest.trim_start());
                let name = l.split('(').next()?;
                strace::NETWORK_CALLS
                    .contains(&name)
                    .then(|| name.to_owned())
            })
            .collect();
        assert_eq!(
            strace::narrated_network_calls(&done.output),
            seen,
            "--how {how}"
        );
    }
}

#[test]
fn bad_command_lines_get_one_line_and_exit_2() {
    for args in [
        vec!["--how", "sideways"],
        vec!["--part", "2"],
        vec!["--demo", "--part", "0"],
        vec!["--demo", "--part", "6"],
        vec!["--demo", "--how", "close"],
        vec!["--demo", "--port", "8080"],
        vec!["--max-clients", "0"],
        vec!["--family", "unix"],
        vec!["--family", "unix", "--demo"],
    ] {
        testkit::process::fails_in_one_line(step6(), &args, 2);
    }
}

/// The demo's output with what changes from run to run (ports, the pid in the ready line,
/// counts of other programs' aborts) blanked out.
fn normalized(output: &str) -> String {
    let mut text = String::new();
    let mut chars = output.chars().peekable();
    while let Some(c) = chars.next() {
        text.push(c);
        if c == ':' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
            text.push('P');
        }
    }
    text.lines()
        .map(|l| l.split(" (pid ").next().unwrap_or(l))
        .map(|l| match l.split_once("went up by ") {
            Some((head, tail)) => {
                format!("{head}went up by N{}", &tail[tail.find(' ').unwrap_or(0)..])
            }
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_demo_tells_the_same_story_every_run() {
    let first = run(step6(), ["--demo"], LIMIT);
    assert_eq!(first.code, Some(0), "{}", first.output);
    for _ in 0..2 {
        let again = run(step6(), ["--demo"], LIMIT);
        assert_eq!(normalized(&again.output), normalized(&first.output));
    }
}

#[test]
fn ipv6_ends_connections_the_same_way() {
    if Socket::new(Domain::IPV6, Type::STREAM, None)
        .and_then(|s| s.bind(&"[::1]:0".parse::<SocketAddr>().expect("addr").into()))
        .is_err()
    {
        testkit::skip(
            "ipv6_ends_connections_the_same_way",
            "no IPv6 loopback here",
        );
        return;
    }
    let out = run(step6(), ["--demo", "--family", "ipv6"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("ready: listening on [::1]:"));
    assert_eq!(out.lines_with("<- -1 EPIPE").count(), 1, "{}", out.output);
    assert_eq!(out.lines_with("<- -1 ECONNRESET").count(), 2);
    assert_eq!(out.lines_with("<- -1 EADDRINUSE").count(), 2);
    assert_eq!(out.lines_with(" TIME-WAIT, client end [::1]:").count(), 1);
    assert!(
        out.lines_with("client end [::1]:")
            .any(|l| l.ends_with("TIME-WAIT"))
    );
}

#[test]
fn ctrl_c_closes_the_servers_sockets_and_leaves_time_wait_too() {
    let (mut server, at) = start_server(&[]);
    let mut stream = client(at);
    let me = stream.local_addr().expect("addr");
    // The server waits in recv() for this client's message; stop it there.
    server.expect_line("-> recvfrom(4, buf, 1024, 0)", LIMIT);
    server.signal(2);
    let mut buf = [0u8; 8];
    assert_eq!(
        stream.read(&mut buf).expect("EOF"),
        0,
        "the kernel closed the server's socket: a FIN"
    );
    drop(stream);
    let done = server.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert!(done.says("Ctrl-C: stopping"), "{}", done.output);
    let listening = observe::tcp_sockets_on_port(at.port())
        .expect("readable")
        .into_iter()
        .any(|e| e.local == at && e.state == TcpState::Listen);
    assert!(!listening, "the listening socket is closed");
    wait_for(at, me, Some(TcpState::TimeWait));
}

#[test]
fn python_makes_the_same_calls() {
    let Some(python) = python3() else {
        testkit::skip("python_makes_the_same_calls", "python3 is not installed");
        return;
    };
    let script = r#"
import socket, struct
ss = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ss.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ss.bind(('127.0.0.1', 0))
ss.listen(1)
c = socket.create_connection(ss.getsockname())
cs, address = ss.accept()
cs.shutdown(socket.SHUT_WR)
cs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
cs.close()
ss.close()
"#;
    let Some(traced) = strace::trace_network(
        "python_makes_the_same_calls",
        &python,
        ["-c", script],
        LIMIT,
    ) else {
        return;
    };
    assert_eq!(traced.run.code, Some(0), "{}", traced.run.output);
    for wanted in [
        "SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0",
        ", SHUT_WR)",
        "SOL_SOCKET, SO_LINGER, {l_onoff=1, l_linger=0}, 8) = 0",
    ] {
        assert!(
            traced.calls.iter().any(|c| c.line.contains(wanted)),
            "python calls {wanted}: {:?}",
            traced.calls
        );
    }
}

#[test]
fn close_returns_0_even_when_it_throws_data_away_and_resets() {
    let Some(strace) = testkit::which("strace") else {
        testkit::skip(
            "close_returns_0_even_when_it_throws_data_away_and_resets",
            "strace is not installed",
        );
        return;
    };
    let log = std::env::temp_dir().join(format!("step6-close-{}.log", std::process::id()));
    let mut command = Command::new(strace);
    command
        .args(["-qq", "-e", "trace=close,sendto,recvfrom", "-o"])
        .arg(&log)
        .arg(step6())
        .args(["--demo", "--part", "3"]);
    let out = run_command(command, LIMIT);
    let trace = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if trace.is_empty() {
        testkit::skip(
            "close_returns_0_even_when_it_throws_data_away_and_resets",
            "strace cannot trace here",
        );
        return;
    }
    assert_eq!(out.code, Some(0), "{}", out.output);
    // The server's close(5) is the first close of fd 5 after the client's data went out.
    let lines: Vec<&str> = trace.lines().collect();
    let sent = lines
        .iter()
        .position(|l| l.starts_with("sendto(4, \"one more thing\""))
        .expect("the client's data");
    let close = lines[sent..]
        .iter()
        .find(|l| l.starts_with("close(5)"))
        .expect("the server's close");
    assert!(close.ends_with("= 0"), "{close}");
    assert!(
        lines[sent..]
            .iter()
            .any(|l| l.starts_with("recvfrom(4,") && l.contains("ECONNRESET")),
        "and yet the client was reset:\n{trace}"
    );
}

#[test]
fn a_client_that_resets_is_narrated_and_the_server_goes_on() {
    for how in ["close", "shutdown", "linger0"] {
        let (mut server, at) = start_server(&["--max-clients", "2", "--how", how]);
        // Client 1 aborts its connection before saying anything.
        let rude = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        rude.connect(&at.into()).expect("connect");
        rude.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
        drop(rude);
        server.expect_line("<- -1 ECONNRESET", LIMIT);
        // Client 2 is served as usual.
        let mut stream = client(at);
        stream.write_all(b"hi\n").expect("send");
        let mut buf = [0u8; 8];
        assert_eq!(stream.read(&mut buf).expect("echo"), 3, "--how {how}");
        drop(stream);
        let done = server.finish(LIMIT);
        assert_eq!(done.code, Some(0), "--how {how}: {}", done.output);
        assert!(done.says("client 2, at"), "{}", done.output);
        assert!(!done.says("panicked"));
    }
}

#[test]
fn a_closed_socket_lives_on_while_another_process_holds_a_copy() {
    // In a Python process of its own: a socket given to a child on purpose would also be
    // inherited by every program this test process starts meanwhile (fd 3 would be taken).
    let Some(python) = python3() else {
        testkit::skip(
            "a_closed_socket_lives_on_while_another_process_holds_a_copy",
            "python3 is not installed",
        );
        return;
    };
    let script = r#"
import socket, subprocess, sys
s = socket.socket()
s.bind(('127.0.0.1', 0))
s.listen(1)
child = subprocess.Popen(['sleep', '30'], pass_fds=[s.fileno()])
port = s.getsockname()[1]
s.close()
print('closed', port, flush=True)
sys.stdin.read()
child.kill()
child.wait()
print('killed', flush=True)
"#;
    let mut holder = Running::start(&python, ["-c", script]);
    let line = holder.expect_line("closed ", LIMIT);
    let port: u16 = line
        .trim()
        .strip_prefix("closed ")
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let listening = || {
        observe::tcp_sockets_on_port(port)
            .expect("readable")
            .iter()
            .any(|e| e.local == at && e.state == TcpState::Listen)
    };
    // Python closed its descriptor, yet the socket listens: the child's copy keeps it open.
    assert!(listening(), "the child's copy keeps the socket");
    TcpStream::connect(at).expect("the kernel still completes handshakes");
    // When the last copy goes, so does the socket.
    holder.close_stdin();
    holder.expect_line("killed", LIMIT);
    let deadline = Instant::now() + Duration::from_secs(5);
    while listening() {
        assert!(Instant::now() < deadline, "{at} still listens");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(holder.finish(LIMIT).code, Some(0));
}
