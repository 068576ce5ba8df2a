//! What lesson 9 claims about streams and datagrams: every cell of the table, measured by
//! the program on this run, is checked here.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::process::{run, run_command};

const LIMIT: Duration = Duration::from_secs(30);

fn step9() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step9_stream_vs_dgram"))
}

/// The table for a family, as row -> (stream cell, dgram cell).
fn table(family: &str) -> HashMap<String, (String, String)> {
    let out = run(step9(), ["--family", family, "--format", "tsv"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    let rows: HashMap<String, (String, String)> = out
        .output
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            (cells.len() == 3).then(|| {
                (
                    cells[0].to_owned(),
                    (cells[1].to_owned(), cells[2].to_owned()),
                )
            })
        })
        .collect();
    assert_eq!(rows.len(), 7, "seven rows:\n{}", out.output);
    rows
}

fn ipv6_works() -> bool {
    let ok = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None)
        .and_then(|s| {
            s.bind(
                &"[::1]:0"
                    .parse::<std::net::SocketAddr>()
                    .expect("addr")
                    .into(),
            )
        })
        .is_ok();
    if !ok {
        testkit::skip("ipv6 table", "::1 is not available here");
    }
    ok
}

/// The numbers in a cell, in order.
fn numbers(cell: &str) -> Vec<u64> {
    cell.split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().expect("a number"))
        .collect()
}

fn check_common_rows(t: &HashMap<String, (String, String)>, family: &str) {
    let (s, d) = &t["handshake"];
    assert!(s.starts_with("connect first"), "{family}: {s}");
    assert!(
        s.contains("5 B sent before accept arrived"),
        "{family}: {s}"
    );
    assert!(
        d.starts_with("none: a fresh socket's send_to (5 B) arrived: 5 B"),
        "{family}: {d}"
    );

    let (s, d) = &t["boundaries"];
    assert_eq!(s, "3 sends (3, 5, 7 B) -> 1 recv: 15 B", "{family}");
    assert_eq!(d, "3 sends (3, 5, 7 B) -> 3 recv: 3, 5, 7 B", "{family}");

    let (s, d) = &t["short-buffer"];
    assert_eq!(
        s, "recv(4): 0123, next recv: 456789next (rest kept)",
        "{family}"
    );
    assert_eq!(d, "recv(4): 0123, next recv: next (rest lost)", "{family}");

    let (s, d) = &t["order"];
    assert_eq!(s, "100 of 100 arrived, in order, 0 duplicates", "{family}");
    assert_eq!(d, "100 of 100 arrived, in order, 0 duplicates", "{family}");

    let (s, d) = &t["end"];
    assert_eq!(s, "peer closes -> recv returns 0", "{family}");
    assert_eq!(
        d, "an empty datagram -> recv returns 0; peer closes -> nothing: recv waits (timeout)",
        "{family}"
    );

    // A stream loses nothing under pressure: the sender is stopped (EAGAIN) instead.
    let (s, _) = &t["pressure"];
    let n = numbers(s);
    assert!(s.contains("then EAGAIN"), "{family}: {s}");
    assert_eq!(n[0], n[2], "{family}: received all the kernel took: {s}");
    assert!(n[0] < 200_000, "{family}: the sender was held back: {s}");
    assert!(s.ends_with(", 0 lost"), "{family}: {s}");
}

fn check_ip_rows(t: &HashMap<String, (String, String)>, family: &str) {
    let (s, d) = &t["handshake"];
    assert!(s.contains("(send without: EPIPE)"), "{family}: {s}");
    let _ = d;
    let (s, d) = &t["no-peer"];
    assert_eq!(s, "connect fails at once: ECONNREFUSED", "{family}");
    assert_eq!(
        d, "send_to ok, then silence; connected: ECONNREFUSED on recv",
        "{family}"
    );
    // UDP under pressure: every send succeeds, and most datagrams are dropped.
    let (_, d) = &t["pressure"];
    let n = numbers(d);
    assert!(d.contains("never refused"), "{family}: {d}");
    assert_eq!(n[0], 200, "{family}: all 200 sends succeeded: {d}");
    assert!(n[2] < 200, "{family}: fewer received: {d}");
    assert_eq!(n[2] + n[3], 200, "{family}: received + dropped = sent: {d}");
}

#[test]
fn tcp_and_udp_differ_in_every_row_but_order() {
    let t = table("ipv4");
    check_common_rows(&t, "ipv4");
    check_ip_rows(&t, "ipv4");
}

#[test]
fn ipv6_draws_the_same_table_as_ipv4() {
    if !ipv6_works() {
        return;
    }
    let t = table("ipv6");
    check_common_rows(&t, "ipv6");
    check_ip_rows(&t, "ipv6");
}

#[test]
fn unix_datagrams_are_reliable_and_a_missing_peer_is_enoent() {
    let t = table("unix");
    check_common_rows(&t, "unix");
    let (s, _) = &t["handshake"];
    assert!(s.contains("(send without: ENOTCONN)"), "{s}");
    let (s, d) = &t["no-peer"];
    assert_eq!(s, "connect fails at once: ENOENT");
    assert_eq!(d, "send_to: ENOENT; connect: ENOENT");
    // A full unix receiver holds the sender back (EAGAIN) and drops nothing.
    let (_, d) = &t["pressure"];
    let n = numbers(d);
    assert!(d.contains("then EAGAIN"), "{d}");
    assert!(n[0] < 200, "the sender was stopped: {d}");
    assert_eq!(n[0], n[2], "every datagram sent was received: {d}");
    assert!(d.ends_with(", 0 dropped"), "{d}");
}

/// Udp RcvbufErrors from /proc/net/snmp (`nstat -az UdpRcvbufErrors`).
fn rcvbuf_errors() -> u64 {
    tutor::observe::netstat_counter("Udp", "RcvbufErrors")
        .expect("/proc/net/snmp has Udp RcvbufErrors")
}

#[test]
fn udp_drops_are_counted_in_rcvbuf_errors() {
    let before = rcvbuf_errors();
    let out = run(step9(), ["--only", "pressure", "--format", "tsv"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    let after = rcvbuf_errors();
    let line = out
        .lines_with("pressure")
        .next()
        .expect("the row")
        .to_owned();
    let dgram = line.split('\t').nth(2).expect("the dgram cell");
    let dropped = numbers(dgram)[3];
    assert!(dropped > 0, "{dgram}");
    // The counter is the whole machine's: other programs may add to it, never take away.
    assert!(
        after - before >= dropped,
        "counted {} of {dropped}",
        after - before
    );
}

#[test]
fn only_runs_one_row_and_the_text_table_is_plain() {
    let out = run(step9(), ["--only", "boundaries", "--format", "tsv"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert_eq!(out.output.lines().count(), 2, "{}", out.output);
    let out = run(step9(), ["--demo"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("-- the table (ipv4) --"), "{}", out.output);
    assert!(
        out.says("experiment    SOCK_STREAM (TCP)"),
        "{}",
        out.output
    );
    assert!(!out.output.contains('\u{1b}'), "no colour into a pipe");
    assert!(
        out.says("-> socket(AF_INET, SOCK_DGRAM"),
        "the calls are narrated"
    );
}

#[test]
fn a_whole_run_takes_under_three_seconds() {
    for family in ["ipv4", "unix"] {
        let start = Instant::now();
        let out = run(step9(), ["--family", family], LIMIT);
        assert_eq!(out.code, Some(0), "{}", out.output);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{family}: {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn compare_sh_draws_the_table_for_each_family() {
    let mut script = Command::new(testkit::root().join("scripts/compare.sh"));
    script.args(["ipv4", "unix"]);
    let out = run_command(script, Duration::from_secs(120));
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("== ipv4 =="), "{}", out.output);
    assert!(out.says("== unix =="), "{}", out.output);
    assert_eq!(out.lines_with("boundaries").count(), 2, "{}", out.output);
}

#[test]
fn bad_command_lines_get_one_line_and_exit_2() {
    for args in [
        vec!["--only", "everything"],
        vec!["--format", "json"],
        vec!["--family", "ipx"],
        vec!["--port", "1"],
    ] {
        let out = run(step9(), &args, LIMIT);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.output);
        assert_eq!(
            out.lines_with("error: ").count(),
            1,
            "{args:?}: {}",
            out.output
        );
    }
}

/// How many 1000-byte datagrams a non-blocking sender gets in before EAGAIN (at most 1000).
fn datagrams_taken(sender: &socket2::Socket) -> usize {
    sender.set_nonblocking(true).expect("non-blocking");
    let mut sent = 0;
    while sent < 1000 {
        match sender.send(&[b'x'; 1000]) {
            Ok(_) => sent += 1,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EAGAIN), "{e}");
                break;
            }
        }
    }
    sent
}

#[test]
fn so_rcvbuf_is_doubled_and_has_a_minimum() {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("socket");
    s.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    assert_eq!(s.recv_buffer_size().expect("getsockopt"), 8192);
    s.set_recv_buffer_size(1).expect("SO_RCVBUF");
    let least = s.recv_buffer_size().expect("getsockopt");
    assert!(least >= 2048, "the kernel keeps a minimum: {least}");
}

/// The unix rows of the pressure experiment: what holds a unix datagram sender back is its own
/// send buffer (each datagram stays charged to it until it is read), not the receiver's
/// SO_RCVBUF; the receiver's queue length (net.unix.max_dgram_qlen) limits a sender only
/// when the receiver is not connected back to it. The program's pair is connected both ways.
#[test]
fn a_unix_datagram_sender_is_held_back_by_its_own_send_buffer() {
    use socket2::{Domain, Socket, Type};
    let pair = || Socket::pair(Domain::UNIX, Type::DGRAM, None).expect("socketpair");

    let (a, _b) = pair();
    let default = datagrams_taken(&a);
    assert!(default > 20 && default < 1000, "{default}");

    let (a, b) = pair();
    b.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    assert_eq!(
        datagrams_taken(&a),
        default,
        "the receiver's SO_RCVBUF changes nothing"
    );

    let (a, _b) = pair();
    a.set_send_buffer_size(4096).expect("SO_SNDBUF");
    let small = datagrams_taken(&a);
    assert!(
        (1..10).contains(&small),
        "a small SO_SNDBUF stops the sender sooner: {small}"
    );

    // A receiver that is not connected back: its queue length counts.
    let qlen: usize = std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .expect("max_dgram_qlen")
        .trim()
        .parse()
        .expect("a number");
    let dir = std::env::temp_dir().join(format!("step9-qlen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("receiver.sock");
    let receiver = Socket::new(Domain::UNIX, Type::DGRAM, None).expect("socket");
    receiver
        .bind(&socket2::SockAddr::unix(&path).expect("path"))
        .expect("bind");
    let sender = Socket::new(Domain::UNIX, Type::DGRAM, None).expect("socket");
    sender
        .connect(&socket2::SockAddr::unix(&path).expect("path"))
        .expect("connect");
    let taken = datagrams_taken(&sender);
    drop((sender, receiver));
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
    if qlen + 1 < default {
        assert_eq!(taken, qlen + 1, "max_dgram_qlen is {qlen}");
    }
}

#[test]
fn a_unix_socket_file_whose_socket_is_closed_refuses() {
    // Lesson 9: a path with no file is ENOENT, but a file left behind by a closed socket is
    // ECONNREFUSED, for a stream's connect and a datagram's send_to alike.
    use socket2::{Domain, SockAddr, Socket, Type};
    let dir = std::env::temp_dir().join(format!("step9-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (ty, name) in [(Type::STREAM, "stream.sock"), (Type::DGRAM, "dgram.sock")] {
        let path = dir.join(name);
        let address = SockAddr::unix(&path).expect("path");
        let server = Socket::new(Domain::UNIX, ty, None).expect("socket");
        server.bind(&address).expect("bind");
        if ty == Type::STREAM {
            server.listen(1).expect("listen");
        }
        drop(server);
        assert!(path.exists(), "close leaves the socket file behind");
        let client = Socket::new(Domain::UNIX, ty, None).expect("socket");
        let error = if ty == Type::STREAM {
            client.connect(&address).expect_err("refused")
        } else {
            client.send_to(b"anyone?", &address).expect_err("refused")
        };
        assert_eq!(
            error.raw_os_error(),
            Some(libc::ECONNREFUSED),
            "{name}: {error}"
        );
        let missing = SockAddr::unix(dir.join("missing.sock")).expect("path");
        let error = if ty == Type::STREAM {
            client.connect(&missing).expect_err("no file")
        } else {
            client.send_to(b"anyone?", &missing).expect_err("no file")
        };
        assert_eq!(error.raw_os_error(), Some(libc::ENOENT), "{name}: {error}");
    }
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}

/// Every socket call of a row is narrated as strace sees it, except the counted loops of the
/// pressure and order rows, which the program says it does not show one by one.
#[test]
fn the_narration_shows_every_network_call_strace_sees() {
    use testkit::strace;
    for family in ["ipv4", "unix"] {
        for row in ["handshake", "boundaries", "short-buffer", "no-peer", "end"] {
            let args = ["--family", family, "--only", row];
            let Some(traced) = strace::trace_network("step9 vs strace", step9(), args, LIMIT)
            else {
                return;
            };
            assert_eq!(traced.run.code, Some(0), "{}", traced.run.output);
            let narrated = strace::narrated_network_calls(&traced.run.output);
            let seen: Vec<String> = traced.calls.iter().map(|c| c.name.clone()).collect();
            assert_eq!(narrated, seen, "{args:?}\n{}", traced.run.output);
        }
    }
}

// ---- issue 8: the unix run's temporary directory is its own, also on Ctrl-C ----

/// An empty directory of this test's own, to be the program's TMPDIR.
fn own_tmpdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("step9-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("a test dir");
    dir
}

#[test]
fn a_directory_that_was_there_before_is_never_touched() {
    let Some(sh) = testkit::which("sh") else {
        testkit::skip("step9 old dir", "sh is not installed");
        return;
    };
    let tmp = own_tmpdir("before");
    // The shell makes the directory the old program would have chosen (step9-PID: exec
    // keeps the shell's pid) with a file in it, then becomes step 9.
    let mut command = Command::new(sh);
    command
        .env("TMPDIR", &tmp)
        .arg("-c")
        .arg(r#"mkdir "$TMPDIR/step9-$$" && echo mine > "$TMPDIR/step9-$$/notes" && exec "$0" --family unix"#)
        .arg(step9());
    let out = run_command(command, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    let theirs: Vec<_> = std::fs::read_dir(&tmp)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(
        theirs.len(),
        1,
        "only the user's directory is left: {theirs:?}"
    );
    assert_eq!(
        std::fs::read_to_string(theirs[0].join("notes")).expect("the user's file"),
        "mine\n"
    );
    std::fs::remove_dir_all(&tmp).expect("clean up");
}

#[test]
fn ctrl_c_in_the_middle_removes_the_temporary_sockets_and_directory() {
    use std::io::Write;
    let tmp = own_tmpdir("ctrl-c");
    // Standard output is a pipe nobody reads, filled up to 1500 bytes before the end: the
    // program gets past making its directory and binding its first sockets, then blocks.
    let (reader, mut writer) = std::io::pipe().expect("a pipe");
    writer
        .write_all(&vec![b'.'; 65536 - 1500])
        .expect("fill the pipe");
    let mut child = Command::new(step9())
        .args(["--family", "unix"])
        .env("TMPDIR", &tmp)
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start step9");
    let wchan = format!("/proc/{}/wchan", child.id());
    let deadline = Instant::now() + LIMIT;
    // Bounded poll for the condition: the program sleeps in a write to the full pipe.
    while !std::fs::read_to_string(&wchan)
        .unwrap_or_default()
        .contains("pipe_write")
    {
        assert!(
            Instant::now() < deadline,
            "step 9 never blocked on its output"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let made: Vec<_> = std::fs::read_dir(&tmp).expect("read dir").collect();
    assert_eq!(made.len(), 1, "step 9 made its directory");
    let status = Command::new("kill")
        .args(["-2", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = testkit::process::wait_with_limit(&mut child, LIMIT);
    drop(reader);
    assert_eq!(code, Some(0), "Ctrl-C stops it cleanly");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
    std::fs::remove_dir(&tmp).expect("clean up");
}
