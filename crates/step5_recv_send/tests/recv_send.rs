//! What lesson 5 claims about recv and send, checked against the echo server and the kernel.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use testkit::process::{Finished, Running, run};
use testkit::strace;
use tutor::observe;

const LIMIT: Duration = Duration::from_secs(30);

fn step5() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step5_recv_send"))
}

fn start(args: &[&str]) -> (Running, SocketAddr) {
    let mut server = Running::start(step5(), args);
    let address = server.wait_ready(LIMIT).parse().expect("an address");
    (server, address)
}

fn client(address: SocketAddr) -> Socket {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("SO_RCVTIMEO");
    socket.connect(&address.into()).expect("connect");
    socket
}

/// Reads exactly `len` bytes.
fn read_exactly(socket: &Socket, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    (&*socket).read_exact(&mut data).expect("the echo");
    data
}

/// Pseudo-random bytes from a xorshift generator: the same seed, the same bytes.
fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        bytes.extend_from_slice(&seed.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// FNV-1a, 64 bits: a digest that changes when any byte changes or moves.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Sends `payload` from one thread while this one reads the echo until the server closes;
/// returns what came back. (Sending all before reading would deadlock once both sides'
/// buffers are full: the server blocks in send, the client in send.)
fn echo_through(address: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let socket = client(address);
    let writer = socket.try_clone().expect("a second handle");
    let data = payload.to_vec();
    let sending = std::thread::spawn(move || {
        (&writer).write_all(&data).expect("send all");
        writer.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut echo = Vec::with_capacity(payload.len());
    (&socket).read_to_end(&mut echo).expect("read the echo");
    sending.join().expect("the sender");
    echo
}

fn big_echo(bufsize: &str, len: usize) -> Finished {
    let (server, address) = start(&["--bufsize", bufsize, "--max-clients", "1"]);
    let payload = random_bytes(len, 0x9e37_79b9_7f4a_7c15 ^ len as u64);
    let echo = echo_through(address, &payload);
    assert_eq!(
        echo.len(),
        payload.len(),
        "bufsize {bufsize}: every byte back"
    );
    assert_eq!(fnv1a(&echo), fnv1a(&payload), "bufsize {bufsize}: in order");
    assert_eq!(echo, payload);
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    // The narration stays short: the first calls, then a summary.
    let lines = out.output.lines().count();
    assert!(lines < 120, "bufsize {bufsize}: {lines} lines of output");
    assert!(out.says("are not shown: --show-calls 8"), "{}", out.output);
    // The recv() that returns 0 is past the budget, not shown, but said.
    assert!(
        out.says("recv() returned 0: the client closed its side; no more bytes will come"),
        "{}",
        out.output
    );
    let summary = format!("client 1: {len} bytes echoed; ");
    assert!(out.says(&summary), "{summary}\n{}", out.output);
    assert!(
        out.says(&format!("the largest {bufsize} bytes (bufsize {bufsize})")),
        "{}",
        out.output
    );
    out
}

#[test]
fn megabytes_come_back_byte_for_byte() {
    let out = big_echo("1024", 4 << 20);
    // A blocking send on Linux waits for room instead of returning early.
    assert!(out.says(" send() calls, 0 of them short"), "{}", out.output);
}

#[test]
fn tiny_buffers_still_echo_every_byte() {
    let _ = big_echo("1", 256 << 10);
    let _ = big_echo("7", 1 << 20);
}

#[test]
fn a_blocking_send_is_short_only_when_its_send_timeout_runs_out() {
    // Lesson 5: a blocking send waits for room; with SO_SNDTIMEO it returns what it took so
    // far when the time runs out, and EAGAIN when it could take nothing at all.
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    listener.listen(1).expect("listen");
    let sender = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    sender.set_send_buffer_size(4096).expect("SO_SNDBUF");
    sender
        .set_write_timeout(Some(Duration::from_millis(100)))
        .expect("SO_SNDTIMEO");
    sender
        .connect(&listener.local_addr().expect("address"))
        .expect("connect");
    let (receiver, _) = listener.accept().expect("accept");
    receiver.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let data = vec![7u8; 4 << 20];
    let started = Instant::now();
    let taken = sender.send(&data).expect("a short send");
    assert!(
        taken > 0 && taken < data.len(),
        "took {taken} of {} bytes",
        data.len()
    );
    // It waited before returning short (a send that did not wait returns in microseconds).
    // Not the whole 100 ms: under system-wide TCP memory pressure (many parallel tests) the
    // kernel's wait for memory may end early, and the send is short all the same.
    assert!(
        started.elapsed() >= Duration::from_millis(20),
        "it waited first: {:?}",
        started.elapsed()
    );
    let error = sender.send(&data).expect_err("no room at all");
    assert_eq!(
        error.kind(),
        std::io::ErrorKind::WouldBlock,
        "EAGAIN: {error}"
    );
    drop(receiver);
}

/// The byte counts of every narrated recv result: the `<- N` line that answers a
/// `-> recvfrom(` line of the same actor (the text before the arrow).
fn recv_results(output: &str) -> Vec<usize> {
    let mut results = Vec::new();
    let mut waiting: Vec<String> = Vec::new();
    for line in output.lines() {
        if let Some(at) = line.find("-> recvfrom(") {
            waiting.push(line[..at].to_owned());
        } else if let Some(at) = line.find("<- ") {
            let actor = &line[..at];
            if let Some(pending) = waiting.iter().position(|a| a == actor) {
                waiting.remove(pending);
                let n: Option<usize> = line[at + 3..]
                    .split(':')
                    .next()
                    .and_then(|n| n.parse().ok());
                results.extend(n);
            }
        } else if let Some(at) = line.find("-> ") {
            // Another call of the same actor: its recv was answered already.
            let actor = &line[..at];
            waiting.retain(|a| a != actor);
        }
    }
    results
}

#[test]
fn recv_returns_at_most_bufsize_and_the_rest_waits() {
    let (server, address) = start(&[
        "--bufsize",
        "7",
        "--show-calls",
        "1000",
        "--max-clients",
        "1",
    ]);
    let payload: Vec<u8> = (0..100u8).map(|i| b'a' + i % 26).collect();
    let echo = echo_through(address, &payload);
    assert_eq!(echo, payload);
    let out = server.finish(LIMIT);
    let results = recv_results(&out.output);
    assert!(
        results.len() >= 15,
        "100 bytes need 15 recvs of 7: {results:?}"
    );
    assert!(results.iter().all(|&n| n <= 7), "{results:?}");
    assert_eq!(results.iter().sum::<usize>(), 100);
    assert_eq!(*results.last().expect("a last recv"), 0, "then end of file");
    assert!(out.says("the buffer is full: whatever else has arrived waits"));
}

/// The server's end of the connection from `client` to a server at `server`: how many bytes
/// wait unread in it (its Recv-Q).
fn unread_at_server(server: SocketAddr, client: SocketAddr) -> Option<u32> {
    observe::tcp_sockets_on_port(server.port())
        .ok()?
        .into_iter()
        .find(|e| e.local == server && e.remote == client)
        .map(|e| e.rx_queue)
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
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

/// A client that connects and sends nothing holds the one-at-a-time server in recv(); the
/// next client's connection and data wait in the kernel meanwhile. Returns the silent
/// client, the waiting one, and the server.
fn behind_a_silent_client(args: &[&str], data: &[&[u8]]) -> (Running, Socket, Socket) {
    let (mut server, address) = start(args);
    let silent = client(address);
    server.expect_line("client 1 connected", LIMIT);
    server.expect_line("socket2: (&conn).read(&mut buf)", LIMIT);
    let waiting = client(address);
    let own = waiting
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet");
    let total: usize = data.iter().map(|d| d.len()).sum();
    for piece in data {
        (&waiting).write_all(piece).expect("send");
    }
    wait_for("the second client's bytes wait at the server", || {
        unread_at_server(address, own) == Some(total as u32)
    });
    assert_eq!(
        observe::accept_queue_len(address),
        Some(1),
        "the second client waits in the accept queue"
    );
    wait_for("the server sleeps in recvfrom", || {
        in_the_kernel(server.pid()) == (Some('S'), Some(libc::SYS_recvfrom))
    });
    (server, silent, waiting)
}

#[test]
fn a_silent_client_makes_the_next_one_wait() {
    let (mut server, silent, waiting) = behind_a_silent_client(&["--max-clients", "2"], &[b"hi\n"]);
    assert!(
        !server.seen.iter().any(|l| l.contains("client 2 connected")),
        "the server has not accepted client 2"
    );
    drop(silent);
    server.expect_line("client 2 connected", LIMIT);
    assert_eq!(read_exactly(&waiting, 3), b"hi\n");
    drop(waiting);
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("client 1: 0 bytes echoed"), "{}", out.output);
}

#[test]
fn two_sends_can_arrive_as_one_recv() {
    // Both sends are in the server's receive buffer before it accepts the connection, so
    // its first recv() finds them together.
    let (mut server, silent, waiting) =
        behind_a_silent_client(&["--max-clients", "2"], &[b"one\n", b"two\n"]);
    drop(silent);
    server.expect_line("client 2 connected", LIMIT);
    let first = server.expect_line("<- ", LIMIT);
    assert_eq!(first, "<- 8: \"one\\ntwo\\n\"", "two sends, one recv");
    assert_eq!(read_exactly(&waiting, 8), b"one\ntwo\n");
    drop(waiting);
    assert_eq!(server.finish(LIMIT).code, Some(0));
}

#[test]
fn one_send_can_take_several_recvs() {
    let (mut server, silent, waiting) = behind_a_silent_client(
        &["--max-clients", "2", "--bufsize", "4"],
        &[b"a longer message\n"],
    );
    drop(silent);
    server.expect_line("client 2 connected", LIMIT);
    assert_eq!(read_exactly(&waiting, 17), b"a longer message\n");
    drop(waiting);
    let out = server.finish(LIMIT);
    let client2 = out
        .output
        .split("client 2 connected")
        .nth(1)
        .expect("client 2");
    assert_eq!(recv_results(client2), [4, 4, 4, 4, 1, 0], "{client2}");
}

#[test]
fn a_client_that_leaves_mid_message_is_reported_and_the_next_is_served() {
    let (server, address) = start(&["--max-clients", "2"]);
    let leaving = client(address);
    (&leaving).write_all(b"half a mess").expect("send");
    assert_eq!(read_exactly(&leaving, 11), b"half a mess");
    drop(leaving);
    assert_eq!(echo_through(address, b"next\n"), b"next\n");
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        out.says("recv() returned 0: the client closed its side"),
        "{}",
        out.output
    );
    assert!(
        out.says("client 1 closed 11 bytes after its last newline: if it spoke in lines, it left in mid-message"),
        "{}",
        out.output
    );
    assert!(out.says("client 2: 5 bytes echoed"));
    assert!(!out.says("client 2 closed"), "client 2 ended on a newline");
}

#[test]
fn a_reset_is_reported_as_econnreset_and_the_server_goes_on() {
    let (server, address) = start(&["--max-clients", "2"]);
    let resetting = client(address);
    (&resetting).write_all(b"bye\n").expect("send");
    assert_eq!(read_exactly(&resetting, 4), b"bye\n");
    resetting
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(resetting); // an abortive close: a reset
    assert_eq!(echo_through(address, b"still there?\n"), b"still there?\n");
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        out.says("<- -1 ECONNRESET (Connection reset by peer)"),
        "{}",
        out.output
    );
    assert!(out.says(
        "client 1 is gone (ECONNRESET): the server closes its socket and goes on to the next client"
    ));
    assert!(out.says("client 2: 13 bytes echoed"));
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's fd table")
        .count()
}

#[test]
fn no_descriptor_leaks_after_many_clients() {
    let (mut server, address) = start(&[]);
    server.expect_line("waiting in accept() for client 1", LIMIT);
    let before = open_fds(server.pid());
    for n in 1..=20 {
        assert_eq!(echo_through(address, b"ping\n"), b"ping\n");
        server.expect_line(&format!("waiting in accept() for client {}", n + 1), LIMIT);
    }
    let after = open_fds(server.pid());
    assert_eq!(before, after, "20 clients later, the same descriptors");
    assert!(
        before >= 4,
        "stdin, stdout, stderr and the listener: {before}"
    );
}

#[test]
fn max_clients_stops_the_server_with_exit_0() {
    let (server, address) = start(&["--max-clients", "3"]);
    for _ in 0..3 {
        assert_eq!(echo_through(address, b"x"), b"x");
    }
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("served 3 client(s): --max-clients reached"));
}

fn unique_path(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("step5-{}-{n}-{name}.sock", std::process::id()))
}

fn demo(args: &[&str]) -> Finished {
    let mut all = vec!["--demo"];
    all.extend_from_slice(args);
    let out = run(step5(), &all, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    out
}

#[test]
fn the_demo_shows_no_message_boundaries() {
    let out = demo(&[]);
    // Two sends (6 and 17 bytes) come out as recvs of 8, 8 and 7, the first spanning both.
    assert!(out.says("server    <- 8: \"hello\\na \""), "{}", out.output);
    assert!(out.says("server    <- 8: \"longer m\""));
    assert!(out.says("server    <- 7: \"essage\\n\""));
    assert!(out.says("client    <- 23: \"hello\\na longer message\\n\""));
    assert!(out.says("server       recv() returned 0: the client closed its side"));
    let path = unique_path("demo");
    let path_arg = path.to_str().expect("utf-8");
    let unix = demo(&["--family", "unix", "--path", path_arg, "--bufsize", "5"]);
    assert_eq!(
        recv_results(&unix.output),
        [5, 5, 5, 5, 3, 23, 0],
        "{}",
        unix.output
    );
    assert!(!path.exists(), "the socket file is removed");
}

#[test]
fn the_narration_shows_every_network_call_strace_sees() {
    let path = unique_path("strace");
    let path_arg = path.to_str().expect("utf-8").to_owned();
    for args in [
        vec!["--demo"],
        // 8 recvs of 3 bytes, the recv that returns 0 and 8 sends: all narrated (--show-calls
        // stops narrating after its count, on purpose).
        vec!["--demo", "--bufsize", "3", "--show-calls", "100"],
        vec!["--demo", "--family", "unix", "--path", &path_arg],
    ] {
        let Some(traced) = strace::trace_network("step5 vs strace", step5(), &args, LIMIT) else {
            return;
        };
        assert_eq!(traced.run.code, Some(0), "{}", traced.run.output);
        let narrated = strace::narrated_network_calls(&traced.run.output);
        let seen: Vec<String> = traced.calls.iter().map(|c| c.name.clone()).collect();
        assert_eq!(narrated, seen, "{args:?}\n{}", traced.run.output);
    }
}

fn fails(args: &[&str], code: i32, needle: &str) {
    let line = testkit::process::fails_in_one_line(step5(), args, code);
    assert!(line.contains(needle), "{args:?}: {line}");
}

#[test]
fn bad_inputs_get_one_line_and_the_right_exit_code() {
    fails(&["--bufsize", "0"], 2, "--bufsize");
    fails(&["--bufsize", "2000000"], 2, "--bufsize");
    fails(&["--bufsize", "big"], 2, "--bufsize");
    fails(&["--max-clients", "0"], 2, "--max-clients");
    fails(&["--port", "70000"], 2, "--port");
    fails(
        &["--family", "unix", "--host", "127.0.0.1"],
        2,
        "--host does not apply",
    );
    fails(
        &["--host", "no-such-host.invalid"],
        1,
        "cannot resolve host 'no-such-host.invalid'",
    );
    let (_taken, port) = testkit::port_in_use();
    fails(&["--port", &port.to_string()], 1, "EADDRINUSE");
}
