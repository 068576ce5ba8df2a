//! What lesson 3 claims about listen and the accept queue, checked against the program and
//! the kernel.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use testkit::process::{Running, run, run_command};
use testkit::strace;
use tutor::observe::{self, TcpState};

const LIMIT: Duration = Duration::from_secs(30);

fn step3() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step3_listen"))
}

fn listener(backlog: i32) -> (Socket, SockAddr) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().expect("addr").into())
        .expect("bind");
    socket.listen(backlog).expect("listen");
    let address = socket.local_addr().expect("address");
    (socket, address)
}

/// Connects clients one at a time, never accepting, until one gets no answer within
/// `timeout`; returns how many completed the handshake (at most `limit`).
///
/// Near a full queue, each client waits until the server's kernel has queued the one before
/// it, so the next SYN meets the real queue. Far from full (the first `quick` clients) there
/// is nothing to race, and reading the socket table after each would be slow.
fn count_completed_handshakes(
    address: &SockAddr,
    limit: usize,
    timeout: Duration,
    quick: usize,
) -> usize {
    let listening = address.as_socket().expect("inet");
    let mut clients = Vec::new();
    while clients.len() < limit {
        let client = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        if client.connect_timeout(address, timeout).is_err() {
            break;
        }
        clients.push(client);
        if clients.len() < quick {
            continue;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while observe::accept_queue_len(listening) != Some(clients.len() as u32) {
            assert!(
                Instant::now() < deadline,
                "the queue never reached {}",
                clients.len()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    clients.len()
}

/// What the calls narrated with this Rust returned: the text after `<- ` on the line after
/// each `socket2: RUST` line (an actor's name may start both lines).
fn results_of(output: &str, rust: &str) -> Vec<String> {
    let lines: Vec<&str> = output.lines().collect();
    let call = format!("socket2: {rust}");
    lines
        .windows(2)
        .filter(|pair| pair[0].trim_end().ends_with(&call))
        .filter_map(|pair| {
            pair[1]
                .split_once("<- ")
                .map(|(_, result)| result.to_owned())
        })
        .collect()
}

#[test]
fn backlog_n_completes_n_plus_1_handshakes_and_the_next_gets_no_answer() {
    for backlog in 0..=3 {
        let (_listener, address) = listener(backlog);
        let completed = count_completed_handshakes(
            &address,
            backlog as usize + 3,
            Duration::from_millis(300),
            0,
        );
        assert_eq!(completed, backlog as usize + 1, "backlog {backlog}");
    }
}

#[test]
fn the_demo_reports_backlog_plus_one_and_no_refusal() {
    for backlog in ["0", "2"] {
        let out = run(
            step3(),
            ["--demo", "--backlog", backlog, "--timeout-ms", "300"],
            LIMIT,
        );
        assert_eq!(out.code, Some(0), "{}", out.output);
        let n: u32 = backlog.parse().expect("a number");
        let expected = format!(
            "backlog {n}: {} of {} clients completed the handshake, 2 got no answer",
            n + 1,
            n + 3
        );
        assert!(out.says(&expected), "{expected}\n{}", out.output);
        assert!(!out.says("ECONNREFUSED"), "a full queue does not refuse");
        assert_eq!(
            out.lines_with("<- -1 EINPROGRESS").count(),
            2,
            "{}",
            out.output
        );
        assert!(out.says(&format!("accept queue: {} connection(s) waiting", n + 1)));
        let connects = results_of(&out.output, "client.connect(address)");
        assert_eq!(connects.len(), n as usize + 3, "{}", out.output);
        assert!(
            connects[..n as usize + 1].iter().all(|r| r == "0"),
            "the first backlog + 1 connect: {connects:?}"
        );
        assert_eq!(
            results_of(&out.output, "client.send(b\"hello?\")"),
            ["6"],
            "data on a queued connection: {}",
            out.output
        );
        assert!(out.says("into the server's receive buffer, though no program has accepted"));
        assert!(
            out.says("<- -1 ECONNRESET"),
            "closing the listener resets the queue"
        );
    }
}

#[test]
fn a_dropped_syn_is_counted_and_resent_by_the_clients_kernel() {
    let (_listener, address) = listener(0);
    assert_eq!(
        count_completed_handshakes(&address, 1, Duration::from_secs(1), 0),
        1
    );
    let before = observe::netstat_counter("TcpExt", "ListenOverflows").expect("the counter");
    let waiting = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    waiting.set_nonblocking(true).expect("non-blocking");
    let _ = waiting.connect(&address); // EINPROGRESS: the SYN is on its way
    let client_port = waiting
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet")
        .port();
    // The first resend comes after about a second; allow a few.
    let deadline = Instant::now() + Duration::from_secs(5);
    let resent = loop {
        let entry = observe::tcp_sockets_on_port(client_port)
            .expect("the table")
            .into_iter()
            .find(|e| e.local.port() == client_port && e.state == TcpState::SynSent);
        match entry {
            Some(e) if e.retransmits >= 1 => break e.retransmits,
            Some(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("no resent SYN within 5 s: {other:?}"),
        }
    };
    assert!(resent >= 1);
    let after = observe::netstat_counter("TcpExt", "ListenOverflows").expect("the counter");
    assert!(after > before, "ListenOverflows counted the dropped SYN");
}

#[test]
fn closing_the_listener_resets_the_connections_nobody_accepted() {
    use std::io::Read;
    let (listener, address) = listener(2);
    let mut client =
        TcpStream::connect(address.as_socket().expect("inet")).expect("the kernel accepts it");
    drop(listener);
    let error = client
        .read(&mut [0u8; 8])
        .expect_err("the connection is gone");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
}

#[test]
fn a_client_left_waiting_is_refused_once_the_listener_closes() {
    let (listener, address) = listener(0);
    assert_eq!(
        count_completed_handshakes(&address, 1, Duration::from_secs(1), 0),
        1
    );
    // The queue is full: this client's SYN is dropped, and its kernel keeps resending it.
    let waiting = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    waiting.set_nonblocking(true).expect("non-blocking");
    let _ = waiting.connect(&address); // EINPROGRESS: the SYN is on its way
    let client_port = waiting
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet")
        .port();
    let in_syn_sent = || {
        observe::tcp_sockets_on_port(client_port)
            .expect("the table")
            .iter()
            .any(|e| e.local.port() == client_port && e.state == TcpState::SynSent)
    };
    assert!(in_syn_sent(), "the client waits in SYN-SENT");
    // The server program stops: its listening socket closes. The next resent SYN finds
    // nothing listening and is answered with a reset: connect fails with ECONNREFUSED.
    drop(listener);
    let deadline = Instant::now() + Duration::from_secs(8);
    while in_syn_sent() {
        assert!(Instant::now() < deadline, "still in SYN-SENT after 8 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let error = waiting
        .take_error()
        .expect("SO_ERROR")
        .expect("the connect failed");
    assert_eq!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{error}"
    );
}

#[test]
fn the_kernel_caps_the_backlog_at_somaxconn() {
    let somaxconn: usize = observe::sysctl("net.core.somaxconn")
        .and_then(|v| v.parse().ok())
        .expect("net.core.somaxconn");
    if somaxconn > 8192 {
        testkit::skip(
            "somaxconn cap",
            "somaxconn is too large to fill in a quick test",
        );
        return;
    }
    let (_listener, address) = listener(somaxconn as i32 + 100);
    let completed = count_completed_handshakes(
        &address,
        somaxconn + 50,
        Duration::from_millis(300),
        somaxconn - 20,
    );
    assert_eq!(
        completed,
        somaxconn + 1,
        "the backlog used is somaxconn, not what we asked"
    );
    // Enter ends the live view (at end of input alone it would wait for a signal).
    let mut command = std::process::Command::new(step3());
    command
        .args(["--backlog", &(somaxconn + 100).to_string()])
        .stdin(testkit::process::input("\n"));
    let out = testkit::process::run_command(command, LIMIT);
    assert!(
        out.says(&format!(
            "the kernel caps the backlog at net.core.somaxconn = {somaxconn}"
        )),
        "{}",
        out.output
    );
}

/// Above somaxconn, every number the program prints is the one the kernel applies: the cap,
/// the cap + 1 it queues, the cap + 3 clients it suggests; never the backlog asked for.
#[test]
fn a_capped_backlog_prints_only_the_numbers_the_kernel_applies() {
    let somaxconn: u32 = observe::sysctl("net.core.somaxconn")
        .and_then(|v| v.parse().ok())
        .expect("net.core.somaxconn");
    let asked = somaxconn + 1000;
    if asked > 65535 {
        testkit::skip(
            "a capped backlog's numbers",
            "somaxconn leaves no room below the largest backlog the program takes",
        );
        return;
    }
    let asked_numbers = [asked + 1, asked + 3].map(|n| n.to_string());
    // The live view: it says what it watches, and stops on SIGTERM.
    let mut running = Running::start(step3(), ["--backlog", &asked.to_string()]);
    running.expect_line("and watch the queue", LIMIT);
    running.signal(15);
    let live = running.finish(LIMIT);
    let port = live
        .lines_with("ready: listening on 127.0.0.1:")
        .next()
        .and_then(|l| l.split("127.0.0.1:").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .expect("a ready line")
        .to_owned();
    for want in [
        format!("it uses {somaxconn}, not {asked}"),
        format!("scripts/connect-many.sh {port} {}", somaxconn + 3),
        format!("the kernel allows backlog + 1 = {}", somaxconn + 1),
    ] {
        assert!(live.says(&want), "no {want:?} in:\n{}", live.output);
    }
    // The demo, with one client: its summary counts with the cap too.
    let demo = run(
        step3(),
        ["--demo", "--backlog", &asked.to_string(), "--clients", "1"],
        LIMIT,
    );
    assert_eq!(demo.code, Some(0), "{}", demo.output);
    for want in [
        format!("backlog {somaxconn}: 1 of 1 clients completed the handshake"),
        format!("Linux queues backlog + 1 = {} finished", somaxconn + 1),
    ] {
        assert!(demo.says(&want), "no {want:?} in:\n{}", demo.output);
    }
    for out in [&live, &demo] {
        // Whole numbers only: a port or a pid may hold the same digits.
        let mut numbers = out.output.split(|c: char| !c.is_ascii_digit());
        assert!(
            !numbers.any(|n| asked_numbers.iter().any(|a| a == n)),
            "{asked_numbers:?}: not numbers the kernel applies:\n{}",
            out.output
        );
    }
}

#[test]
fn the_live_view_shows_the_queue_as_ss_would() {
    let mut server = Running::start(step3(), ["--backlog", "1"]);
    let address: SocketAddr = server.wait_ready(LIMIT).parse().expect("an address");
    server.expect_line("accept queue: 0 waiting for accept()", LIMIT);
    let _first = TcpStream::connect(address).expect("connect");
    server.expect_line("accept queue: 1 waiting for accept()", LIMIT);
    let _second = TcpStream::connect(address).expect("connect");
    server.expect_line(
        "accept queue: 2 waiting for accept() (full: new SYNs are dropped)",
        LIMIT,
    );
    server.send_stdin("\n"); // Enter: at end of input it would keep waiting for a signal
    let done = server.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
}

#[test]
fn connect_many_fills_the_queue_from_a_shell() {
    let mut server = Running::start(step3(), ["--backlog", "1"]);
    let address: SocketAddr = server.wait_ready(LIMIT).parse().expect("an address");
    let mut script = Command::new(testkit::root().join("scripts/connect-many.sh"));
    script.args([&address.port().to_string(), "3", "127.0.0.1", "2"]);
    let out = run_command(script, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert_eq!(
        out.lines_with(": connected").count(),
        2,
        "backlog 1 admits 2: {}",
        out.output
    );
    server.expect_line("accept queue: 2 waiting for accept() (full", LIMIT);
    server.send_stdin("\n"); // Enter: at end of input it would keep waiting for a signal
    server.finish(LIMIT);
}

#[test]
fn listen_on_a_datagram_socket_fails_with_eopnotsupp() {
    let out = run(step3(), ["--type", "dgram"], LIMIT);
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(
        out.says("<- -1 EOPNOTSUPP (Operation not supported)"),
        "{}",
        out.output
    );
    let errors: Vec<&str> = out.lines_with("error:").collect();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("only stream sockets listen"),
        "{}",
        errors[0]
    );
}

fn unique_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("step3-test-{}-{name}.sock", std::process::id()))
}

#[test]
fn a_full_unix_queue_makes_connect_wait_and_then_eagain() {
    let path = unique_path("demo");
    let path_arg = path.to_str().expect("utf-8");
    let out = run(
        step3(),
        [
            "--demo",
            "--family",
            "unix",
            "--path",
            path_arg,
            "--timeout-ms",
            "200",
        ],
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("backlog 2: 3 of 5 clients completed the handshake, 2 got no answer"));
    assert_eq!(out.lines_with("<- -1 EAGAIN").count(), 2, "{}", out.output);
    assert!(!path.exists(), "the socket file is removed");
}

#[test]
fn the_narration_shows_every_network_call_strace_sees() {
    for args in [
        vec!["--port", "0"],
        vec!["--demo", "--backlog", "1", "--timeout-ms", "200"],
    ] {
        // Enter ends the live view (at end of input alone it would wait for a signal).
        let Some(traced) =
            strace::trace_network_with_input("step3 vs strace", step3(), &args, "\n", LIMIT)
        else {
            return;
        };
        assert_eq!(traced.run.code, Some(0), "{}", traced.run.output);
        let narrated = strace::narrated_network_calls(&traced.run.output);
        let seen: Vec<String> = traced.calls.iter().map(|c| c.name.clone()).collect();
        assert_eq!(narrated, seen, "{args:?}");
    }
}

#[test]
fn std_tcp_listener_bind_is_four_calls_with_reuseaddr_and_its_own_backlog() {
    let example = testkit::example("std_listener");
    let Some(traced) = strace::trace_network("std listener", &example, [] as [&str; 0], LIMIT)
    else {
        return;
    };
    let names: Vec<&str> = traced.calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["socket", "setsockopt", "bind", "listen", "getsockname"]
    );
    assert!(
        traced.calls[1].line.contains("SO_REUSEADDR, [1]"),
        "{}",
        traced.calls[1].line
    );
    assert!(
        traced.calls[3].line.starts_with("listen(3, 128)"),
        "{}",
        traced.calls[3].line
    );
}

#[test]
fn accepted_connections_leave_the_queue_so_backlog_is_not_a_client_limit() {
    let (listener, address) = listener(0);
    let mut conversations = Vec::new();
    for _ in 0..5 {
        let client = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        client
            .connect_timeout(&address, Duration::from_secs(2))
            .expect("each client completes: the one before was accepted");
        let (accepted, _) = listener.accept().expect("accept");
        conversations.push((client, accepted));
    }
    assert_eq!(
        conversations.len(),
        5,
        "five clients connected at once with backlog 0"
    );
}

#[test]
fn queued_connections_take_data_before_anyone_accepts() {
    use std::io::Write;
    let (_listener, address) = listener(1);
    let listening = address.as_socket().expect("inet");
    let mut client = TcpStream::connect(listening).expect("connect");
    let client_port = client.local_addr().expect("address").port();
    client.write_all(b"hello?").expect("send succeeds");
    // The server's end of the connection (local = the listening port, remote = the client)
    // holds the six bytes in its receive queue.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let server_end = observe::tcp_sockets_on_port(client_port)
            .expect("the table")
            .into_iter()
            .find(|e| e.local == listening && e.remote.port() == client_port);
        match server_end {
            Some(e) if e.rx_queue == 6 => break,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            other => panic!("the server's end never held 6 bytes: {other:?}"),
        }
    }
}

#[test]
fn at_end_of_input_the_live_view_waits_for_a_signal() {
    for family in ["ipv4", "unix"] {
        let path = std::env::temp_dir().join(format!(
            "step3-test-{}-eof-{family}.sock",
            std::process::id()
        ));
        let path_arg = path.to_str().expect("utf-8").to_owned();
        let mut args = vec!["--family", family];
        if family == "unix" {
            args.extend(["--path", &path_arg]);
        }
        let mut server = Running::start(step3(), &args);
        server.wait_ready(LIMIT);
        server.close_stdin(); // as `</dev/null`, a script, or a background job
        server.expect_line("standard input ended", LIMIT);
        server.signal(2);
        server.expect_line("Ctrl-C: stopping.", LIMIT);
        let done = server.finish(LIMIT);
        assert_eq!(done.code, Some(0), "{}", done.output);
        assert!(!path.exists(), "the socket file is removed");
    }
}
