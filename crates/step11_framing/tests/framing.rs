//! What lesson 11 claims about messages over a stream, checked against the server, the
//! demo and the kernel.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use testkit::process::{Finished, Running, run, run_command};
use testkit::strace;

const LIMIT: Duration = Duration::from_secs(30);

fn step11() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step11_framing"))
}

fn start(args: &[&str]) -> (Running, SocketAddr) {
    let mut server = Running::start(step11(), args);
    let address = server.wait_ready(LIMIT).parse().expect("an address");
    (server, address)
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("SO_RCVTIMEO");
    stream
}

/// Writes `pieces` one write each, shuts down the sending half, and reads until the server
/// closes: what came back.
fn talk(address: SocketAddr, pieces: &[&[u8]]) -> Vec<u8> {
    let mut stream = connect(address);
    for piece in pieces {
        stream.write_all(piece).expect("send");
    }
    stream.shutdown(Shutdown::Write).expect("shutdown");
    let mut back = Vec::new();
    stream.read_to_end(&mut back).expect("the answer");
    back
}

/// Reads until the server closes; `Ok(bytes)` on a clean close, `Err` on a reset.
fn until_closed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut back = Vec::new();
    stream.read_to_end(&mut back).map(|_| back)
}

#[test]
fn lines_are_found_across_recvs_and_answered_one_by_one() {
    let (server, address) = start(&["--bufsize", "3", "--max-clients", "1"]);
    let back = talk(address, &[b"hello\nwor", b"ld\n", b"\n", b"part"]);
    assert_eq!(
        back, b"hello\nworld\n\n",
        "every whole line, the empty one too"
    );
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        out.says(
            "client 1: 3 message(s) answered; it closed in the middle of a message, 4 bytes into it"
        ),
        "{}",
        out.output
    );
    let largest = recv_counts(&out.output).into_iter().max();
    assert_eq!(largest, Some(3), "recv() returns at most --bufsize bytes");
}

fn frame(message: &[u8]) -> Vec<u8> {
    let mut wire = (message.len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(message);
    wire
}

#[test]
fn length_prefixed_messages_come_back_whatever_the_pieces() {
    let (server, address) = start(&[
        "--framing",
        "length",
        "--bufsize",
        "2",
        "--max-clients",
        "1",
    ]);
    let messages: [&[u8]; 4] = [b"hello", b"", b"a\nb\x00c", &[0xff; 300]];
    let wire: Vec<u8> = messages.iter().flat_map(|m| frame(m)).collect();
    // One byte per write: headers and bodies cut anywhere.
    let pieces: Vec<&[u8]> = wire.chunks(1).collect();
    let back = talk(address, &pieces);
    assert_eq!(
        back, wire,
        "the same frames, newline and zero bytes included"
    );
    let out = server.finish(LIMIT);
    assert!(
        out.says("client 1: 4 message(s) answered; it closed its side between two messages"),
        "{}",
        out.output
    );
}

/// The byte counts of the narrated recv results (`<- N: "..."` after `-> recvfrom(`).
fn recv_counts(output: &str) -> Vec<usize> {
    let lines: Vec<&str> = output.lines().collect();
    lines
        .windows(3)
        .filter(|w| w[0].contains("-> recvfrom("))
        .filter_map(|w| {
            w[2].trim_start()
                .strip_prefix("<- ")?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// `VmPeak` of a process, in kB: the most virtual memory it has ever had mapped.
fn vm_peak_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmPeak")
}

#[test]
fn a_4_gib_length_is_refused_not_allocated_and_the_next_client_is_served() {
    let (mut server, address) = start(&["--framing", "length", "--max-clients", "2"]);
    server.expect_line("waiting in accept() for client 1", LIMIT);
    let before = vm_peak_kb(server.pid());
    let mut hostile = connect(address);
    hostile.write_all(&u32::MAX.to_be_bytes()).expect("send");
    server.expect_line(
        "announces 4294967295 bytes, more than the maximum of 65536",
        LIMIT,
    );
    // The server read the whole header and closes: a clean end of file.
    assert_eq!(
        until_closed(&mut hostile).expect("a close, not a reset"),
        b""
    );
    let after = vm_peak_kb(server.pid());
    assert!(
        after < before + 512 * 1024,
        "VmPeak grew from {before} kB to {after} kB: something was allocated for the length"
    );
    assert_eq!(talk(address, &[&frame(b"next")]), frame(b"next"));
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        out.says("client 2: 1 message(s) answered"),
        "{}",
        out.output
    );
}

#[test]
fn a_line_longer_than_the_maximum_is_refused_and_the_next_client_is_served() {
    let (mut server, address) = start(&["--max-message", "16", "--max-clients", "3"]);
    let mut endless = connect(address);
    endless.write_all(&[b'a'; 100]).expect("send");
    server.expect_line(
        "was refused: no newline in 100 bytes, more than the maximum of 16",
        LIMIT,
    );
    // Nothing comes back; the connection ends (a reset, if the server left bytes unread).
    let ended = until_closed(&mut endless);
    assert!(
        matches!(&ended, Ok(b) if b.is_empty()) || ended.is_err(),
        "{ended:?}"
    );
    // A newline after too many bytes does not make the line acceptable (one send: the server
    // finds the newline in the same recv).
    let long_line = [&[b'b'; 17][..], b"\n"].concat();
    assert_eq!(talk(address, &[&long_line]), b"");
    server.expect_line(
        "was refused: a line of 17 bytes, more than the maximum of 16",
        LIMIT,
    );
    assert_eq!(
        talk(address, &[&[b'c'; 16], b"\n"]),
        [&[b'c'; 16][..], b"\n"].concat()
    );
    assert_eq!(server.finish(LIMIT).code, Some(0));
}

#[test]
fn a_client_that_resets_is_gone_and_the_next_is_served() {
    let (mut server, address) = start(&["--max-clients", "2"]);
    let resetting = connect(address);
    (&resetting).write_all(b"half a line").expect("send");
    server.expect_line("<- 11: \"half a line\"", LIMIT);
    socket2::SockRef::from(&resetting)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(resetting); // an abortive close: a reset
    server.expect_line(
        "client 1: 0 message(s) answered; it is gone (ECONNRESET)",
        LIMIT,
    );
    assert_eq!(talk(address, &[b"next\n"]), b"next\n");
    assert_eq!(server.finish(LIMIT).code, Some(0));
}

#[test]
fn nc_speaks_lines_with_the_server() {
    let Some(nc) = testkit::which("nc") else {
        testkit::skip("nc peer", "nc is not installed (.ci/run installs it)");
        return;
    };
    let (server, address) = start(&["--max-clients", "1"]);
    let mut child = Command::new(nc)
        .arg("-N")
        .arg(address.ip().to_string())
        .arg(address.port().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nc starts");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"hi\nthere\npart").expect("to nc");
    drop(stdin); // end of input: nc -N shuts down its sending half
    let deadline = std::time::Instant::now() + LIMIT;
    while child.try_wait().expect("wait").is_none() {
        assert!(std::time::Instant::now() < deadline, "nc did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut echo = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut echo)
        .expect("nc's output");
    assert_eq!(echo, "hi\nthere\n");
    let out = server.finish(LIMIT);
    assert!(
        out.says(
            "client 1: 2 message(s) answered; it closed in the middle of a message, 4 bytes into it"
        ),
        "{}",
        out.output
    );
}

fn demo() -> &'static Finished {
    static DEMO: OnceLock<Finished> = OnceLock::new();
    DEMO.get_or_init(|| {
        let out = run(step11(), ["--demo", "--rounds", "10"], LIMIT);
        assert_eq!(out.code, Some(0), "{}", out.output);
        out
    })
}

#[test]
fn the_demo_cuts_messages_out_of_the_stream_and_refuses_the_oversized() {
    let out = demo();
    for line in [
        "server    <- 8: \"hello\\nwo\"",
        "server    a whole message: \"hello\" (5 bytes); 2 bytes after it are kept for the next",
        "server    <- 4: \"rld\\n\"",
        "server    a whole message: \"world\" (5 bytes); 0 bytes after it are kept for the next",
        "server    refused: no newline in 24 bytes, more than the maximum of 16",
        "server    a whole message: \"world!\" (6 bytes)",
        "server    refused: the header announces 4294967295 bytes, more than the maximum of 16",
    ] {
        assert!(out.says(line), "{line}\n{}", out.output);
    }
}

/// `a short send: the kernel took N of 4194304 bytes`: N.
fn short_send(output: &str) -> Option<usize> {
    let line = output
        .lines()
        .find(|l| l.contains("a short send: the kernel took "))?;
    line.split("took ").nth(1)?.split(' ').next()?.parse().ok()
}

#[test]
fn a_send_with_a_timeout_returns_short_and_the_loop_sends_the_rest() {
    let out = demo();
    let taken = short_send(&out.output).unwrap_or_else(|| panic!("no short send:\n{}", out.output));
    assert!(taken > 0 && taken < 4 << 20, "{taken}");
    assert!(
        out.says("4194304 bytes sent in ") && out.says("the server received 4194304 bytes in "),
        "{}",
        out.output
    );
}

/// The median of each way from the demo's `compared` table, in ms.
fn medians(output: &str) -> Vec<(String, f64)> {
    output
        .split("-- compared --")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (way, rest) = l.split_once(" median ")?;
            let ms = rest.trim().strip_suffix(" ms")?.trim().parse().ok()?;
            Some((way.trim().to_owned(), ms))
        })
        .collect()
}

#[test]
fn two_small_writes_then_a_read_wait_for_the_delayed_ack_unless_told_otherwise() {
    let out = demo();
    let medians = medians(&out.output);
    assert_eq!(medians.len(), 5, "{}", out.output);
    let first: f64 = out
        .output
        .lines()
        .find_map(|l| {
            l.strip_prefix("client    round 1: ")?
                .strip_suffix(" ms")?
                .parse()
                .ok()
        })
        .expect("round 1 of two writes");
    assert!(
        first < 20.0,
        "a new connection ACKs at once: round 1 took {first} ms"
    );
    let (slow_way, slow) = &medians[0];
    assert_eq!(slow_way, "two writes, header then body");
    // Linux's delayed ACK waits at least 40 ms; allow for timer slack on a busy machine.
    assert!(*slow > 20.0, "two writes: median {slow} ms\n{}", out.output);
    for (way, fast) in &medians[1..] {
        assert!(
            fast * 10.0 < *slow,
            "{way}: median {fast} ms is not a tenth of {slow} ms\n{}",
            out.output
        );
    }
}

#[test]
fn a_unix_socket_has_no_nagle_to_measure() {
    let path = std::env::temp_dir().join(format!("step11-{}-unix.sock", std::process::id()));
    let path_arg = path.to_str().expect("utf-8");
    let out = run(
        step11(),
        ["--demo", "--family", "unix", "--path", path_arg],
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        out.says("a unix socket has no Nagle's algorithm"),
        "{}",
        out.output
    );
    assert!(
        out.says("the server received 4194304 bytes in "),
        "{}",
        out.output
    );
    assert!(!path.exists(), "the socket file is removed");
}

#[test]
fn python_send_with_settimeout_can_be_short_and_sendall_is_not() {
    let Some(python) = testkit::python3() else {
        testkit::skip("python short send", "python3 is not installed");
        return;
    };
    // The peer accepts and reads nothing at first; then reads everything.
    let script = r#"
import socket, threading
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM); c.connect(l.getsockname())
s, _ = l.accept()
data = b"x" * (4 << 20)
c.settimeout(5.0)
n = c.send(data)
got = []
def drain():
    total = 0
    while total < len(data) + n:
        chunk = s.recv(1 << 20)
        if not chunk: break
        total += len(chunk)
    got.append(total)
t = threading.Thread(target=drain); t.start()
c.sendall(data)
c.shutdown(socket.SHUT_WR); t.join(20)
print(n, len(data), got[0])
"#;
    let mut command = Command::new(python);
    command.args(["-c", script]);
    let out = run_command(command, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    let numbers: Vec<usize> = out
        .output
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [sent, len, received] = numbers[..] else {
        panic!("{}", out.output)
    };
    assert!(sent < len, "send() took {sent} of {len}: short");
    assert_eq!(received, sent + len, "sendall() sent every byte");
}

fn unique_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("step11-{}-{name}.sock", std::process::id()))
}

#[test]
fn the_narration_shows_every_network_call_strace_sees() {
    let path = unique_path("strace");
    let path_arg = path.to_str().expect("utf-8").to_owned();
    let all = ["--demo", "--show-calls", "1000000", "--rounds", "2"];
    for extra in [vec![], vec!["--family", "unix", "--path", &path_arg]] {
        let args: Vec<&str> = all.iter().copied().chain(extra).collect();
        let Some(traced) = strace::trace_network("step11 vs strace", step11(), &args, LIMIT) else {
            return;
        };
        assert_eq!(traced.run.code, Some(0), "{}", traced.run.output);
        let narrated = strace::narrated_network_calls(&traced.run.output);
        let seen: Vec<String> = traced.calls.iter().map(|c| c.name.clone()).collect();
        assert_eq!(narrated, seen, "{args:?}\n{}", traced.run.output);
    }
}

fn fails(args: &[&str], code: i32, needle: &str) {
    let line = testkit::process::fails_in_one_line(step11(), args, code);
    assert!(line.contains(needle), "{args:?}: {line}");
}

#[test]
fn bad_inputs_get_one_line_and_the_right_exit_code() {
    fails(&["--max-message", "0"], 2, "--max-message");
    fails(&["--max-message", "99999999"], 2, "--max-message");
    fails(&["--framing", "json"], 2, "--framing");
    fails(&["--rounds", "0"], 2, "--rounds");
    fails(&["--demo", "--max-message", "8"], 2, "--max-message");
    fails(&["--bufsize", "0"], 2, "--bufsize");
    let (_taken, port) = testkit::port_in_use();
    fails(&["--port", &port.to_string()], 1, "EADDRINUSE");
}
