//! What lesson 4 claims about accept, checked against the program and the kernel.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use socket2::{Protocol, SockAddr, Socket, Type};
use testkit::process::Running;
use tutor::observe;

mod common;

use common::{LIMIT, results_of, step4, unique_path};

/// Starts the server with `args` and returns it with the address it listens on.
fn start(args: &[&str]) -> (Running, SocketAddr) {
    let mut server = Running::start(step4(), args);
    let address = server.wait_ready(LIMIT).parse().expect("an address");
    (server, address)
}

/// Connects to `address`, reads until the server closes, and returns what was read and the
/// client's own address.
fn visit(address: &SockAddr) -> (String, SockAddr) {
    let protocol = address.as_socket().map(|_| Protocol::TCP);
    let client = Socket::new(address.domain(), Type::STREAM, protocol).expect("socket");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("SO_RCVTIMEO");
    client.connect(address).expect("connect");
    let own = client.local_addr().expect("own address");
    let mut text = String::new();
    (&client).read_to_string(&mut text).expect("read to EOF");
    (text, own)
}

/// The descriptor accept() returned: `<- 4, connected to 127.0.0.1:40000`.
fn accepted_fd(out: &str) -> i32 {
    let result = results_of(out, "listener.accept()")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no accept result:\n{out}"));
    result
        .split(", connected to ")
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no descriptor in {result:?}"))
}

/// The number on the first `<- N` line after the line that contains `needle`.
fn result_after(out: &str, needle: &str) -> i32 {
    out.lines()
        .skip_while(|l| !l.contains(needle))
        .find_map(|l| l.split("<- ").nth(1)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no result after {needle:?}:\n{out}"))
}

#[test]
fn accept_returns_a_new_socket_beside_the_listening_one() {
    let (server, address) = start(&["--max-clients", "1"]);
    let (greeting, _) = visit(&address.into());
    assert_eq!(greeting, "hello from step4, client 1\n");
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    let listening = result_after(&out.output, "-> socket(");
    let accepted = accepted_fd(&out.output);
    assert_ne!(accepted, listening, "{}", out.output);
    assert!(
        out.says(&format!(
            "fd {accepted} is a new socket for client 1; the listening socket {listening} still listens"
        )),
        "{}",
        out.output
    );
    assert!(
        out.says(&format!("-> accept4({listening}, SOCK_CLOEXEC)")),
        "accept is called on the listening socket"
    );
    assert!(
        out.says(&format!("-> sendto({accepted}, ")),
        "the conversation uses the new socket"
    );
}

#[test]
fn the_peer_address_is_the_clients_own_address() {
    let (server, address) = start(&["--max-clients", "1"]);
    let (_, own) = visit(&address.into());
    let own = own.as_socket().expect("inet");
    let out = server.finish(LIMIT);
    // accept's second result, and getpeername on the server, are getsockname on the client.
    assert_eq!(
        results_of(&out.output, "listener.accept()"),
        [format!("4, connected to {own}")],
        "{}",
        out.output
    );
    assert_eq!(
        results_of(&out.output, "conn.peer_addr()"),
        [own.to_string()]
    );
    assert!(out.says("the client's end: the address the client has as its own"));
    // getsockname on the accepted socket: the listener's address.
    assert_eq!(
        results_of(&out.output, "conn.local_addr()"),
        [address.to_string()]
    );
    assert!(out.says("the server's end: the listening socket's address"));
}

#[test]
fn the_listening_socket_still_listens_after_accept() {
    let (mut server, address) = start(&["--max-clients", "2"]);
    let (first, own) = visit(&address.into());
    assert_eq!(first, "hello from step4, client 1\n");
    let own = own.as_socket().expect("inet");
    // The server narrated the table while client 1 was connected: LISTEN and ESTAB side by
    // side, on the same local address.
    let listen_line = server.expect_line("LISTEN ", LIMIT);
    assert!(
        listen_line.contains(&format!("LISTEN {address} <-> *:*  fd 3")),
        "{listen_line}"
    );
    let estab_line = server.expect_line("ESTAB ", LIMIT);
    assert!(
        estab_line.contains(&format!("{address} <-> {own}")),
        "{estab_line}"
    );
    server.expect_line("client 2)", LIMIT);
    assert_eq!(
        observe::accept_queue_len(address),
        Some(0),
        "the kernel still lists the socket as LISTEN"
    );
    let (second, _) = visit(&address.into());
    assert_eq!(second, "hello from step4, client 2\n");
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
}

#[test]
fn max_clients_n_stops_after_n_clients_with_exit_0() {
    let (server, address) = start(&["--max-clients", "3"]);
    for n in 1..=3 {
        let (greeting, _) = visit(&address.into());
        assert_eq!(greeting, format!("hello from step4, client {n}\n"));
    }
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert_eq!(out.lines_with("-> accept4(").count(), 3, "{}", out.output);
    assert!(out.says("accepted 3 client(s): --max-clients reached"));
    assert_eq!(
        observe::accept_queue_len(address),
        None,
        "nothing listens after the server stopped"
    );
}

/// `/proc/PID/stat`'s state and `/proc/PID/syscall`'s system call number.
fn in_the_kernel(pid: u32) -> (Option<char>, Option<i64>) {
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ")?.1.chars().next());
    let call = std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok());
    (state, call)
}

#[test]
fn accept_blocks_until_a_client_comes() {
    let (mut server, address) = start(&[]);
    server.expect_line("waiting in accept()", LIMIT);
    server.expect_line("socket2: listener.accept()", LIMIT);
    // The program is asleep in accept4, and stays there: nobody has connected.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = in_the_kernel(server.pid());
    while seen != (Some('S'), Some(libc::SYS_accept4)) {
        assert!(
            Instant::now() < deadline,
            "never asleep in accept4: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
        seen = in_the_kernel(server.pid());
    }
    let early: Vec<&String> = server
        .seen
        .iter()
        .filter(|l| l.contains("a new socket for client"))
        .collect();
    assert!(
        early.is_empty(),
        "accept returned before any client came: {early:?}"
    );
    let (greeting, _) = visit(&address.into());
    assert_eq!(greeting, "hello from step4, client 1\n");
    server.expect_line("<- 4, connected to 127.0.0.1:", LIMIT);
    server.expect_line("waiting in accept()", LIMIT);
    server.signal(2);
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "Ctrl-C stops it cleanly: {}", out.output);
    assert!(out.says("Ctrl-C: stopping."), "{}", out.output);
}

/// Polls `condition` every few milliseconds for at most 10 s; panics with `what` if it never
/// holds.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Lesson 4's "a client that leaves before it is accepted": the connection is complete in the
/// accept queue, then the client resets it (SO_LINGER 0, close). Linux still hands it to
/// accept(); getpeername() on it fails with ENOTCONN. That error is the client's: the server
/// narrates it and serves the next client. (Before: exit 1, `getpeername(4) failed with
/// ENOTCONN`.) The server is stopped (SIGSTOP) while this happens, so that the reset reaches
/// the queued connection before the server can look at it, on every run.
#[test]
fn a_client_that_resets_in_the_queue_does_not_stop_the_server() {
    let (mut server, address) = start(&["--max-clients", "2"]);
    server.expect_line("socket2: listener.accept()", LIMIT);
    let pid = server.pid();
    wait_until("the server sleeps in accept4", || {
        in_the_kernel(pid) == (Some('S'), Some(libc::SYS_accept4))
    });
    server.signal(libc::SIGSTOP);
    wait_until("the server is stopped", || {
        in_the_kernel(pid).0 == Some('T')
    });

    let client =
        Socket::new(socket2::Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    client.connect(&address.into()).expect("connect");
    let own = client.local_addr().expect("own").as_socket().expect("inet");
    wait_until("the connection waits in the accept queue", || {
        observe::accept_queue_len(address) == Some(1)
    });
    client
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(client);
    wait_until("the reset has reached the queued connection", || {
        observe::tcp_sockets_on_port(address.port())
            .is_ok_and(|entries| entries.iter().all(|e| e.remote != own))
    });
    server.signal(libc::SIGCONT);

    server.expect_line("<- -1 ENOTCONN", LIMIT);
    server.expect_line("ENOTCONN belongs to this one client", LIMIT);
    let (greeting, _) = visit(&address.into());
    assert_eq!(greeting, "hello from step4, client 2\n");
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "the server went on: {}", out.output);
    assert!(!out.says("error:"), "{}", out.output);
    // The lesson shows these four lines, one after the other.
    let block = "-> getpeername(4)\n   socket2: conn.peer_addr()\n<- -1 ENOTCONN (Transport endpoint is not connected)\n   ENOTCONN belongs to this one client (it reset or abandoned its connection): close its socket, if any, and go on serving\n";
    assert!(out.output.contains(block), "{}", out.output);
}

#[test]
fn a_unix_server_accepts_and_removes_its_socket_file() {
    let path = unique_path("serve");
    let path_arg = path.to_str().expect("utf-8");
    let mut server = Running::start(
        step4(),
        ["--family", "unix", "--path", path_arg, "--max-clients", "1"],
    );
    assert_eq!(server.wait_ready(LIMIT), path_arg);
    assert!(path.exists(), "bind created the file");
    let (greeting, _) = visit(&SockAddr::unix(&path).expect("a path"));
    assert_eq!(greeting, "hello from step4, client 1\n");
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert_eq!(
        results_of(&out.output, "conn.peer_addr()"),
        ["(unnamed)"],
        "{}",
        out.output
    );
    assert!(out.says(&format!("-> unlink(\"{path_arg}\")")));
    assert!(!path.exists(), "the socket file is removed");
}

#[test]
fn ctrl_c_removes_the_unix_socket_file() {
    let path = unique_path("ctrl-c");
    let path_arg = path.to_str().expect("utf-8");
    let mut server = Running::start(step4(), ["--family", "unix", "--path", path_arg]);
    server.wait_ready(LIMIT);
    server.expect_line("socket2: listener.accept()", LIMIT);
    server.signal(2);
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(!path.exists(), "the socket file is removed on Ctrl-C");
}

fn fails(args: &[&str], code: i32, needle: &str) {
    let line = testkit::process::fails_in_one_line(step4(), args, code);
    assert!(line.contains(needle), "{args:?}: {line}");
}

#[test]
fn bad_inputs_get_one_line_and_the_right_exit_code() {
    fails(&["--max-clients", "0"], 2, "--max-clients");
    fails(&["--max-clients", "many"], 2, "--max-clients");
    fails(&["--backlog", "70000"], 2, "--backlog");
    fails(&["--port", "70000"], 2, "--port");
    fails(
        &["--path", "/tmp/x.sock"],
        2,
        "--path applies to --family unix",
    );
    fails(
        &["--family", "unix", "--port", "80"],
        2,
        "--port does not apply",
    );
    fails(
        &["--host", "no-such-host.invalid"],
        1,
        "cannot resolve host 'no-such-host.invalid'",
    );
    let (_taken, port) = testkit::port_in_use();
    fails(&["--port", &port.to_string()], 1, "EADDRINUSE");
}

#[test]
fn nc_is_a_client_too() {
    let Some(nc) = testkit::which("nc") else {
        testkit::skip(
            "nc_is_a_client_too",
            "nc is not installed (.ci/run installs it)",
        );
        return;
    };
    let (server, address) = start(&["--max-clients", "1"]);
    let mut command = Command::new(nc);
    command
        .arg(address.ip().to_string())
        .arg(address.port().to_string());
    let out = testkit::process::run_command(command, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert_eq!(out.output, "hello from step4, client 1\n");
    let done = server.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
}

// ---- issue 8: remove only what this program made; every signal stops it cleanly ----

/// Starts a unix server at a fresh path and waits until it listens.
fn unix_server(name: &str, extra: &[&str]) -> (Running, PathBuf) {
    let path = unique_path(name);
    let path_arg = path.to_str().expect("utf-8").to_owned();
    let mut args = vec!["--family", "unix", "--path", &path_arg];
    args.extend_from_slice(extra);
    let mut server = Running::start(step4(), &args);
    assert_eq!(server.wait_ready(LIMIT), path_arg);
    server.expect_line("socket2: listener.accept()", LIMIT);
    (server, path)
}

#[test]
fn a_file_the_user_put_in_place_of_the_socket_survives_ctrl_c() {
    let (server, path) = unix_server("replaced", &[]);
    std::fs::remove_file(&path).expect("the user removes the socket file");
    std::fs::write(&path, "the user's notes\n").expect("and puts a file of their own there");
    server.signal(2);
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert_eq!(
        std::fs::read_to_string(&path).expect("the user's file is still there"),
        "the user's notes\n"
    );
    assert!(
        out.says("in place: it is no longer the socket this program bound"),
        "one line says why the file stays: {}",
        out.output
    );
    assert!(!out.says("-> unlink("), "{}", out.output);
    std::fs::remove_file(&path).expect("clean up");
}

#[test]
fn a_second_server_that_took_the_path_keeps_its_socket_file() {
    let (first, path) = unix_server("taken", &["--max-clients", "1"]);
    // The learner removes the first server's file and starts a second one on the same path.
    std::fs::remove_file(&path).expect("remove the first server's file");
    let path_arg = path.to_str().expect("utf-8");
    let mut second = Running::start(step4(), ["--family", "unix", "--path", path_arg]);
    assert_eq!(second.wait_ready(LIMIT), path_arg);
    // The first server's one client never comes; stop it normally with SIGTERM.
    first.signal(15);
    let out = first.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        path.exists(),
        "the second server's socket file stays: {}",
        out.output
    );
    let (greeting, _) = visit(&SockAddr::unix(&path).expect("a path"));
    assert_eq!(
        greeting, "hello from step4, client 1\n",
        "the second server is reachable"
    );
    second.signal(2);
    assert_eq!(second.finish(LIMIT).code, Some(0));
    assert!(!path.exists(), "the second server removes its own file");
}

#[test]
fn sigterm_and_sighup_stop_the_server_like_ctrl_c() {
    for (signal, name) in [(15, "SIGTERM"), (1, "SIGHUP")] {
        let (server, path) = unix_server(name, &[]);
        server.signal(signal);
        let out = server.finish(LIMIT);
        assert_eq!(out.code, Some(0), "{name}: {}", out.output);
        assert!(out.says(&format!("{name}: stopping.")), "{}", out.output);
        assert!(
            out.says(&format!("-> unlink(\"{}\")", path.display())),
            "{}",
            out.output
        );
        assert!(!path.exists(), "{name} removes the socket file");
    }
}

/// The wait channel of a process's main thread, as `ps -o wchan` shows it.
fn wchan(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default()
}

#[test]
fn ctrl_c_stops_a_server_whose_stdout_nobody_reads() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let (reader, writer) = std::io::pipe().expect("a pipe");
    let mut child = Command::new(step4())
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::null())
        .spawn()
        .expect("start step4");
    // Read up to the ready line, then never again: the pipe fills up.
    let mut lines = BufReader::new(reader);
    let mut line = String::new();
    let address: SocketAddr = loop {
        line.clear();
        assert!(
            lines.read_line(&mut line).expect("read") > 0,
            "no ready line"
        );
        if line.starts_with("ready: listening on ") {
            let at = testkit::process::ready_address(line.trim_end()).expect("an address");
            break at.parse().expect("an address");
        }
    };
    // Clients until the server's main thread sleeps in a write to the full pipe, holding
    // the lock of its standard output (bounded: a 1 MiB pipe would need about 2000).
    let mut clients = Vec::new();
    let blocked = (0..4000).any(|_| {
        if wchan(child.id()).contains("pipe_write") {
            return true;
        }
        let client = std::net::TcpStream::connect(address).expect("connect");
        client
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("SO_RCVTIMEO");
        let mut greeting = String::new();
        // Either the greeting and the server's close, or a timeout once it is stuck.
        let _ = (&client).read_to_string(&mut greeting);
        clients.push(client);
        false
    });
    assert!(blocked, "the server never blocked on its standard output");
    let status = Command::new("kill")
        .args(["-2", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = testkit::process::wait_with_limit(&mut child, LIMIT);
    assert_eq!(code, Some(0), "Ctrl-C stops it, output stuck or not");
    drop(lines);
}
