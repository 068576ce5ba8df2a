//! What lesson 6 claims about ending a connection, checked in the demo's narration (and
//! against strace).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use testkit::process::{Running, run, run_command};
use testkit::strace;
use tutor::observe::TcpState;

use common::*;

#[test]
fn a_half_close_gives_the_peer_eof_and_the_half_closed_side_still_receives() {
    let out = demo_part("1");
    assert_in_order(
        &out.output,
        &[
            "client    -> sendto(4, \"what time is it?\", 16, 0)",
            "client    -> shutdown(4, SHUT_WR)",
            "client    <- 0",
            "client       a FIN follows the data",
            "CLOSE-WAIT, client end 127.0.0.1:",
            "server    <- 16: \"what time is it?\"",
            "server    <- 0: \"\"",
            "server       end of file: the client will send no more",
            "server    -> sendto(5, \"noon\", 4, 0)",
            "server    <- 4",
            "server    -> close(5)",
            "client    <- 4: \"noon\"",
            "client    <- 0: \"\"",
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
            "client    <- 0: \"\"",
            "client       end of file",
            "client    -> sendto(4, \"are you there?\", 14, 0)",
            "client    <- 14",
            "kernel    socket table:",
            "client    -> sendto(4, \"hello?\", 6, 0)",
            "client    <- -1 EPIPE (Broken pipe)",
            "client       (in C this send would also raise SIGPIPE",
            "client    <- 0: \"\"",
            "client       still end of file",
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
fn the_demo_restarts_over_time_wait_only_with_so_reuseaddr_and_never_beside_a_listener() {
    let out = demo_part("5");
    assert_in_order(
        &out.output,
        &[
            "server    -> close(5)",
            "FIN-WAIT-2, client end 127.0.0.1:",
            "client    <- 0: \"\"",
            "client    -> close(4)",
            "TIME-WAIT, client end 127.0.0.1:",
            "server    -> close(3)",
            "restarted -> bind(3, 127.0.0.1:",
            "restarted <- -1 EADDRINUSE (Address already in use)",
            "kernel       what holds the port is the old connection in TIME-WAIT",
            "restarted -> setsockopt(3, SOL_SOCKET, SO_REUSEADDR, 1)",
            "restarted -> bind(3, 127.0.0.1:",
            "restarted <- 0",
            "restarted    the old socket and this one both set SO_REUSEADDR",
            "restarted <- 0",
            "restarted    listening on 127.0.0.1:",
            "another   -> setsockopt(4, SOL_SOCKET, SO_REUSEADDR, 1)",
            "another   <- -1 EADDRINUSE (Address already in use)",
        ],
    );
    let tables: Vec<&str> = out.lines_with("kernel    socket table:").collect();
    assert!(tables[0].ends_with("CLOSE-WAIT"), "{}", tables[0]);
    assert!(tables[1].ends_with(" gone"), "{}", tables[1]);
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
