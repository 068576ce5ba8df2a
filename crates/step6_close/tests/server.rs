//! What lesson 6 claims about its server (without --demo), checked with real clients.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::process::Command;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use testkit::process::{run_command, run_separately};
use tutor::observe::{self, TcpState};

use common::*;

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
    assert_in_order(
        &done.output,
        &[
            "-> close(4)",
            "<- done",
            "   a FIN. Once the client closes too",
        ],
    );
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
            "<- 5: \"more\\n\"",
            "<- 0: \"\"",
            "   end of file: the client has closed its end too",
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
        assert_in_order(
            &done.output,
            &[
                "<- -1 ECONNRESET",
                "-> accept4(3, SOCK_CLOEXEC)",
                "   client 2",
            ],
        );
        assert!(!done.says("panicked"));
    }
}
