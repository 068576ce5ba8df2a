//! What lesson 6 claims about ending a connection, checked against the kernel itself:
//! in-process sockets, /proc/net/tcp, strace and Python.

mod common;

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use testkit::process::{Running, run_command};
use testkit::python3;
use testkit::strace;
use tutor::observe::{self, TcpState};

use common::*;

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
