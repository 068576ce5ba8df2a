//! What lesson 10 claims about the three models, checked against the program and the kernel.
//! Small and fast: a handful of clients, a few hundred kilobytes. The benchmark
//! (scripts/bench.sh) measures; these tests only check behaviour, never timing.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use testkit::process::{Running, run, run_command};
use testkit::python3;

const LIMIT: Duration = Duration::from_secs(30);
/// How long a client waits for an echo that must come.
const DEADLINE: Duration = Duration::from_secs(10);
const MODELS: [&str; 3] = ["serial", "threads", "poll"];

fn step10() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step10_many_clients"))
}

/// Starts a server and returns it with its address.
fn server(model: &str, extra: &[&str]) -> (Running, SocketAddr) {
    let mut args = vec!["--model", model, "--color", "never"];
    args.extend_from_slice(extra);
    let mut running = Running::start(step10(), &args);
    let address = running.wait_ready(LIMIT);
    (running, address.parse().expect("an IP address and port"))
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&address, DEADLINE).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream.set_write_timeout(Some(DEADLINE)).expect("timeout");
    stream
}

/// Sends `data` and reads the echo of it, with the stream's read timeout as the bound.
fn round_trip(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).expect("send");
    let mut echo = vec![0u8; data.len()];
    stream
        .read_exact(&mut echo)
        .expect("the echo, within the deadline");
    echo
}

/// Pseudo-random bytes, different for each seed.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Writes `data` in uneven chunks from one thread while reading the echo in another; the
/// two halves run at once, so a large payload cannot fill every buffer and stall.
fn echo_concurrently(stream: TcpStream, data: Vec<u8>, seed: u64) -> Vec<u8> {
    let mut writer = stream.try_clone().expect("clone");
    let expected = data.len();
    let sending = thread::spawn(move || {
        let mut at = 0;
        let mut size = (seed as usize % 5000) + 1;
        while at < data.len() {
            let end = (at + size).min(data.len());
            writer.write_all(&data[at..end]).expect("send");
            at = end;
            size = size * 7 % 9973 + 1;
        }
        writer.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut reader = stream;
    let mut echo = Vec::with_capacity(expected);
    reader.read_to_end(&mut echo).expect("the whole echo");
    sending.join().expect("the writer finished");
    echo
}

#[test]
fn every_model_echoes_concurrent_clients_without_losing_a_byte() {
    for model in MODELS {
        let clients = 5u64;
        let (server, address) = server(model, &["--narrate", "0", "--max-clients", "5"]);
        let mut total = 0;
        let handles: Vec<_> = (0..clients)
            .map(|seed| {
                let data = payload(seed + 1, 20_000 + seed as usize * 37_000);
                total += data.len();
                let stream = connect(address);
                thread::spawn(move || {
                    let echo = echo_concurrently(stream, data.clone(), seed);
                    (data, echo)
                })
            })
            .collect();
        for (number, handle) in handles.into_iter().enumerate() {
            let (sent, echo) = handle.join().expect("a client finished");
            assert_eq!(echo.len(), sent.len(), "{model}: client {number}: length");
            assert!(echo == sent, "{model}: client {number}: the echo differs");
        }
        let done = server.finish(LIMIT);
        assert_eq!(done.code, Some(0), "{model}: {}", done.output);
        assert!(
            done.says(&format!("served 5 clients ({model}), echoed {total} bytes")),
            "{model}: {}",
            done.output
        );
    }
}

#[test]
fn a_silent_client_does_not_block_the_threads_and_poll_models() {
    for model in ["threads", "poll"] {
        let (server, address) = server(model, &["--narrate", "0", "--max-clients", "2"]);
        let silent = connect(address);
        let mut talker = connect(address);
        // The deadline is the stream's read timeout: a blocked server fails here.
        let echo = round_trip(&mut talker, b"are you there?");
        assert_eq!(echo, b"are you there?", "{model}");
        // The silent client is still connected, and is still served when it speaks.
        let mut silent = silent;
        assert_eq!(round_trip(&mut silent, b"me too"), b"me too", "{model}");
        drop((silent, talker));
        assert_eq!(server.finish(LIMIT).code, Some(0), "{model}");
    }
}

#[test]
fn the_serial_model_makes_the_second_client_wait_until_the_first_leaves() {
    let (server, address) = server("serial", &["--narrate", "0", "--max-clients", "2"]);
    let mut first = connect(address);
    assert_eq!(round_trip(&mut first, b"one"), b"one");
    let mut second = connect(address);
    second.write_all(b"two").expect("send");
    // While the first client stays, no echo comes: the server is in recv() on it.
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut buf = [0u8; 3];
    let waited = second.read(&mut buf);
    assert!(
        matches!(&waited, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the second client got an answer while the first was connected: {waited:?}"
    );
    // The first one leaves: the echo comes.
    drop(first);
    second.set_read_timeout(Some(DEADLINE)).expect("timeout");
    second
        .read_exact(&mut buf)
        .expect("the echo after the first left");
    assert_eq!(&buf, b"two");
    drop(second);
    assert_eq!(server.finish(LIMIT).code, Some(0));
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's fd table")
        .count()
}

/// Waits (at most `limit`) until `condition` holds; returns whether it did.
fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    condition()
}

#[test]
fn no_descriptor_is_leaked() {
    for model in MODELS {
        let (server, address) = server(model, &["--narrate", "0"]);
        let pid = server.pid();
        // A first client, served and gone: after it, the server has made every descriptor
        // it keeps (poll makes its epoll instance after the ready line).
        let mut first = connect(address);
        assert_eq!(round_trip(&mut first, b"first"), b"first", "{model}");
        let before = fd_count(pid) - 1;
        drop(first);
        assert!(
            eventually(Duration::from_secs(5), || fd_count(pid) == before),
            "{model}: the first client's descriptor was not closed"
        );
        let mut open = Vec::new();
        for round in 0..20u64 {
            let mut client = connect(address);
            let data = payload(round, 100 + round as usize * 50);
            if model == "serial" {
                assert_eq!(round_trip(&mut client, &data), data, "{model}");
            } else {
                // Threads and poll serve all at once: keep them open, then close together.
                assert_eq!(round_trip(&mut client, &data), data, "{model}");
                open.push(client);
                continue;
            }
            if round % 5 == 0 {
                // A client that resets the connection instead of closing it.
                socket2::SockRef::from(&client)
                    .set_linger(Some(Duration::ZERO))
                    .expect("linger");
            }
        }
        if model != "serial" {
            let with_all_open = fd_count(pid);
            assert!(
                with_all_open >= before + 20,
                "{model}: {with_all_open} fds with 20 clients open, {before} before"
            );
        }
        drop(open);
        let back = eventually(Duration::from_secs(5), || fd_count(pid) == before);
        assert!(
            back,
            "{model}: {} fds after every client left, {before} before",
            fd_count(pid)
        );
    }
}

#[test]
fn a_client_that_does_not_read_its_echo_gets_partial_writes_and_stalls_no_one() {
    for model in ["poll", "threads"] {
        let (mut server, address) = server(
            model,
            &["--narrate", "1", "--max-clients", "2", "--bufsize", "65536"],
        );
        // Client 1 sends 8 MiB and reads nothing yet: its echo fills the buffers.
        let hog = connect(address);
        let data = payload(99, 8 << 20);
        let mut writer = hog.try_clone().expect("clone");
        let sent = data.clone();
        let sending = thread::spawn(move || writer.write_all(&sent).expect("send all"));
        if model == "poll" {
            // The server's narration shows the send buffer filling up.
            server.expect_line("the send buffer is full", LIMIT);
        }
        // Meanwhile client 2 is served at once.
        let mut other = connect(address);
        assert_eq!(
            round_trip(&mut other, b"still served?"),
            b"still served?",
            "{model}"
        );
        drop(other);
        // Client 1 reads, and gets every byte back, in order.
        let mut reader = hog;
        let mut echo = vec![0u8; data.len()];
        reader.read_exact(&mut echo).expect("the whole echo");
        sending.join().expect("the writer finished");
        assert!(echo == data, "{model}: the echo of the 8 MiB differs");
        drop(reader);
        let done = server.finish(LIMIT);
        assert_eq!(done.code, Some(0), "{model}: {}", done.output);
        if model == "poll" {
            assert!(
                done.says("EPOLL_CTL_MOD") && done.says("EPOLLOUT"),
                "poll watches for WRITABLE while bytes wait: {}",
                done.output
            );
        }
    }
}

fn threads_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

#[test]
fn threads_runs_a_thread_per_client_and_poll_one_thread_for_all() {
    for (model, extra_per_client) in [("threads", 1), ("poll", 0), ("serial", 0)] {
        let (server, address) = server(model, &["--narrate", "0"]);
        let pid = server.pid();
        let base = threads_of(pid);
        let mut clients = Vec::new();
        for number in 0..3 {
            let mut client = connect(address);
            if model != "serial" || number == 0 {
                // An echo proves the server has accepted the client.
                assert_eq!(round_trip(&mut client, b"hi"), b"hi", "{model}");
            }
            clients.push(client);
        }
        let expected = base + 3 * extra_per_client;
        assert!(
            eventually(Duration::from_secs(5), || threads_of(pid) == expected),
            "{model}: {} threads with 3 clients, {base} before (expected {expected})",
            threads_of(pid)
        );
        drop(clients);
        if model == "threads" {
            assert!(
                eventually(Duration::from_secs(5), || threads_of(pid) == base),
                "each client's thread ends when its client leaves"
            );
        }
    }
}

/// A network, epoll or close call, keyed by its first argument (a descriptor, mostly).
fn key_and_name(call: &str) -> Option<(String, String)> {
    let (name, rest) = call.split_once('(')?;
    let first = rest.split([',', ')']).next()?.trim().to_owned();
    Some((first, name.to_owned()))
}

const TRACED: &[&str] = &[
    "socket",
    "bind",
    "listen",
    "accept4",
    "connect",
    "getsockname",
    "setsockopt",
    "sendto",
    "recvfrom",
    "shutdown",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
];

/// Call names per first argument (a descriptor, mostly), in order.
type Calls = BTreeMap<String, Vec<String>>;

/// The calls a program narrated, per first argument, in order.
fn narrated(output: &str) -> BTreeMap<String, Vec<String>> {
    let mut calls: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in output.lines() {
        let Some(at) = line.find("-> ") else { continue };
        if !line[..at].chars().all(|c| c.is_alphanumeric() || c == ' ') {
            continue;
        }
        if let Some((key, name)) = key_and_name(&line[at + 3..])
            && TRACED.contains(&name.as_str())
        {
            calls.entry(key).or_default().push(name);
        }
    }
    calls
}

/// Runs the program under strace (network calls and epoll), returning its output and the
/// traced calls per first argument; `None` when strace is missing.
fn traced(test: &str, args: &[&str]) -> Option<(String, Calls, Vec<String>)> {
    let Some(strace) = testkit::which("strace") else {
        testkit::skip(test, "strace is not installed");
        return None;
    };
    let log = std::env::temp_dir().join(format!("step10-{test}-{}.log", std::process::id()));
    let mut command = Command::new(strace);
    command
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=%network,epoll_create1,epoll_ctl,epoll_wait,epoll_pwait",
            "-o",
        ])
        .arg(&log)
        .arg(step10())
        .args(args);
    let out = run_command(command, LIMIT);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if text.is_empty() {
        testkit::skip(test, "strace cannot trace here");
        return None;
    }
    assert_eq!(out.code, Some(0), "{test}: {}", out.output);
    let mut calls: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut lines = Vec::new();
    for line in text.lines() {
        // "1234  name(args" (with -f every line starts with the thread id).
        let line = line.split_once(' ').map_or(line, |(first, rest)| {
            if first.chars().all(|c| c.is_ascii_digit()) {
                rest.trim_start()
            } else {
                line
            }
        });
        if let Some((key, name)) = key_and_name(line)
            && TRACED.contains(&name.as_str())
        {
            calls.entry(key).or_default().push(name);
            lines.push(line.to_owned());
        }
    }
    Some((out.output, calls, lines))
}

#[test]
fn the_narration_of_every_demo_is_what_strace_sees() {
    for model in MODELS {
        let Some((output, seen, lines)) = traced(
            &format!("demo-{model}"),
            &["--demo", "--model", model, "--color", "never"],
        ) else {
            return;
        };
        let told = narrated(&output);
        assert!(!told.is_empty());
        assert_eq!(told, seen, "{model}: narrated vs traced, per descriptor");
        if model == "poll" {
            // mio asks for an epoll instance, and registers every socket edge-triggered.
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("epoll_create1(EPOLL_CLOEXEC)"))
            );
            let adds: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with("epoll_ctl(") && l.contains("EPOLL_CTL_ADD"))
                .collect();
            assert_eq!(adds.len(), 3, "the listener and two clients: {adds:?}");
            assert!(
                adds.iter()
                    .all(|l| l.contains("EPOLLIN|EPOLLRDHUP|EPOLLET")),
                "{adds:?}"
            );
        }
    }
}

#[test]
fn beyond_the_narration_budget_what_is_printed_is_still_true() {
    for model in MODELS {
        let test = format!("budget-{model}");
        let Some(strace) = testkit::which("strace") else {
            testkit::skip(&test, "strace is not installed");
            return;
        };
        // The server runs under strace in the background; three clients come one by one.
        let log = std::env::temp_dir().join(format!("step10-{test}-{}.log", std::process::id()));
        let mut command = Command::new(strace);
        command
            .args([
                "-f",
                "-qq",
                "-e",
                "trace=%network,epoll_create1,epoll_ctl,epoll_wait",
                "-o",
            ])
            .arg(&log)
            .arg(step10())
            .args(["--model", model, "--narrate", "1", "--max-clients", "3"]);
        let mut server = Running::start_command(command);
        let address: SocketAddr = server.wait_ready(LIMIT).parse().expect("an address");
        for number in 0..3u64 {
            let mut client = connect(address);
            let data = payload(number, 10 + number as usize);
            assert_eq!(round_trip(&mut client, &data), data);
        }
        let done = server.finish(LIMIT);
        assert_eq!(done.code, Some(0), "{model}: {}", done.output);
        assert!(
            done.says("(the next clients are not shown: --narrate 1; a summary follows)"),
            "{}",
            done.output
        );
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            let line = line.split_once(' ').map_or(line, |(first, rest)| {
                if first.chars().all(|c| c.is_ascii_digit()) {
                    rest.trim_start()
                } else {
                    line
                }
            });
            if let Some((key, name)) = key_and_name(line)
                && TRACED.contains(&name.as_str())
            {
                seen.entry(key).or_default().push(name);
            }
        }
        let told = narrated(&done.output);
        let (told_calls, seen_calls): (usize, usize) = (
            told.values().map(Vec::len).sum(),
            seen.values().map(Vec::len).sum(),
        );
        assert!(
            told_calls < seen_calls,
            "{model}: clients 2 and 3 are not narrated ({told_calls} narrated, {seen_calls} made)"
        );
        // What is narrated happened, in that order: per descriptor, the narrated calls are
        // among the calls strace saw on it, in the same order.
        for (key, calls) in &told {
            let made = seen.get(key).map(Vec::as_slice).unwrap_or(&[]);
            let mut rest = made.iter();
            assert!(
                calls.iter().all(|call| rest.any(|m| m == call)),
                "{model}: on {key}, narrated {calls:?} but strace saw {made:?}"
            );
        }
    }
}

/// Past the budget a client is served in silence: not one of its calls is printed, not even
/// the EAGAIN a non-blocking server meets at every turn (a quiet narrator would still show a
/// failed call; the poll model's clients and the listener's empty queue would fill the
/// output with them).
#[test]
fn past_the_budget_not_even_a_clients_eagain_is_printed() {
    for model in MODELS {
        let (server, address) = server(model, &["--narrate", "0", "--max-clients", "3"]);
        for number in 0..3u64 {
            let mut client = connect(address);
            let data = payload(number, 100);
            assert_eq!(round_trip(&mut client, &data), data, "{model}");
        }
        let done = server.finish(LIMIT);
        assert_eq!(done.code, Some(0), "{model}: {}", done.output);
        // Only the listener's set-up and close are narrated: no client's accept4, recvfrom
        // or sendto.
        let client_calls: Vec<&str> = ["-> accept4(", "-> recvfrom(", "-> sendto("]
            .iter()
            .flat_map(|call| done.lines_with(call))
            .collect();
        assert!(client_calls.is_empty(), "{model}: {client_calls:?}");
        assert!(!done.says("<- -1 EAGAIN"), "{model}: {}", done.output);
        assert!(done.says("served 3 clients"), "{model}: {}", done.output);
    }
}

#[test]
fn loadgen_finds_every_model_correct() {
    let loadgen = testkit::bin("loadgen");
    for model in MODELS {
        let (server, address) = server(model, &["--narrate", "0"]);
        let pid = server.pid().to_string();
        let out = run(
            &loadgen,
            [
                &address.to_string(),
                "-c",
                "20",
                "-r",
                "30",
                "-s",
                "100",
                "--server-pid",
                &pid,
                "--quiet",
                "--format",
                "kv",
            ],
            LIMIT,
        );
        assert_eq!(out.code, Some(0), "{model}: {}", out.output);
        assert!(out.says("round_trips=600"), "{model}: {}", out.output);
        assert!(out.says("errors=0"), "{model}: {}", out.output);
        drop(server);
    }
}

#[test]
fn the_python_baselines_speak_the_same_protocol() {
    let Some(python) = python3() else {
        testkit::skip("python baselines", "python3 is not installed");
        return;
    };
    let loadgen = testkit::bin("loadgen");
    for script in ["seed_echo_server.py", "selectors_echo_server.py"] {
        let mut command = Command::new(&python);
        command.arg(testkit::root().join("scripts").join(script));
        let mut server = Running::start_command(command);
        let address = server.wait_ready(LIMIT);
        let out = run(
            &loadgen,
            [
                address.as_str(),
                "-c",
                "10",
                "-r",
                "20",
                "--quiet",
                "--format",
                "kv",
            ],
            LIMIT,
        );
        assert_eq!(out.code, Some(0), "{script}: {}", out.output);
        assert!(out.says("round_trips=200"), "{script}: {}", out.output);
        drop(server);
    }
}

#[test]
fn step_specific_bad_flags_get_one_line_and_exit_2() {
    for args in [
        vec!["--model", "fork"],
        vec!["--bufsize", "0"],
        vec!["--max-clients", "0"],
        vec!["--demo", "--port", "8080"],
        vec!["--demo", "--max-clients", "3"],
    ] {
        testkit::process::fails_in_one_line(step10(), &args, 2);
    }
}

#[test]
fn the_demo_tells_each_models_story() {
    let serial = run(step10(), ["--demo", "--model", "serial"], LIMIT);
    assert_eq!(serial.code, Some(0), "{}", serial.output);
    assert!(serial.says("client 2  <- -1 EAGAIN (Resource temporarily unavailable)"));
    assert!(serial.says("waits in the accept queue"));
    assert!(serial.says("client 2 waited"));
    for model in ["threads", "poll"] {
        let out = run(step10(), ["--demo", "--model", model], LIMIT);
        assert_eq!(out.code, Some(0), "{}", out.output);
        assert!(
            out.says("client 2     the echo came back while client 1 is still connected"),
            "{model}: {}",
            out.output
        );
        assert!(!out.says("EAGAIN (Resource temporarily unavailable)\nclient 2"));
    }
    let all = run(step10(), ["--demo"], LIMIT);
    assert_eq!(all.code, Some(0), "{}", all.output);
    for model in MODELS {
        assert!(
            all.says(&format!("-- --model {model} --")),
            "{}",
            all.output
        );
    }
}

#[test]
fn each_thread_gets_a_stack_mapping_and_a_clone3() {
    let test = "each_thread_gets_a_stack_mapping_and_a_clone3";
    let Some(strace) = testkit::which("strace") else {
        testkit::skip(test, "strace is not installed");
        return;
    };
    let log = std::env::temp_dir().join(format!("step10-{test}-{}.log", std::process::id()));
    let mut command = Command::new(strace);
    command
        .args(["-f", "-qq", "-e", "trace=clone3,mmap", "-o"])
        .arg(&log)
        .arg(step10())
        .args(["--model", "threads", "--narrate", "0", "--max-clients", "3"]);
    let mut server = Running::start_command(command);
    let address: SocketAddr = server.wait_ready(LIMIT).parse().expect("an address");
    let clients: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut client = connect(address);
            assert_eq!(round_trip(&mut client, b"x"), b"x");
            client
        })
        .collect();
    drop(clients);
    assert_eq!(server.finish(LIMIT).code, Some(0));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let threads = text
        .lines()
        .filter(|l| l.contains("clone3(") && l.contains("CLONE_THREAD"))
        .count();
    // 2 MiB of stack and a 4 KiB guard page: 2101248 bytes, mapped for each thread.
    let stacks = text
        .lines()
        .filter(|l| l.contains("mmap(NULL, 2101248, PROT_NONE") && l.contains("MAP_STACK"))
        .count();
    // One thread for each client, and one for the Ctrl-C handler.
    assert_eq!(threads, 4, "{text}");
    assert_eq!(stacks, threads, "{text}");
}

/// The lesson's account of mio's edge-triggered readiness: an event says that bytes arrived,
/// once; a handler that reads only part of them and waits again gets no new event for the rest,
/// only for bytes that arrive later. (A level-triggered poll would report the socket again at
/// once, since bytes are still there.)
#[test]
fn an_edge_triggered_event_comes_once_per_arrival_not_while_bytes_remain() {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use std::os::fd::AsRawFd;

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut sender = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (receiver, _) = listener.accept().expect("accept");
    receiver.set_nonblocking(true).expect("non-blocking");

    let mut poll = Poll::new().expect("epoll");
    let mut events = Events::with_capacity(8);
    let fd = receiver.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), Token(7), Interest::READABLE)
        .expect("register");
    let mut readable_events = |poll: &mut Poll, timeout: Duration| -> usize {
        poll.poll(&mut events, Some(timeout)).expect("epoll_wait");
        events
            .iter()
            .filter(|e| e.token() == Token(7) && e.is_readable())
            .count()
    };

    sender.write_all(b"0123456789").expect("send");
    assert_eq!(readable_events(&mut poll, DEADLINE), 1, "the bytes arrived");
    let mut part = [0u8; 4];
    (&receiver).read_exact(&mut part).expect("read 4 of 10");
    // Six bytes are still there, and nothing new arrived: no event.
    assert_eq!(
        readable_events(&mut poll, Duration::ZERO),
        0,
        "edge-triggered: no second event for bytes already reported"
    );
    sender.write_all(b"!").expect("send");
    assert_eq!(
        readable_events(&mut poll, DEADLINE),
        1,
        "new bytes: a new event"
    );
    let mut rest = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match (&receiver).read(&mut buf) {
            Ok(n) if n > 0 => rest.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        rest, b"456789!",
        "the bytes the first event reported were all still there"
    );
}

/// Lesson 10 copies its measured tables from bench/results.md. Every number of five or more
/// digits in the lesson's "Measured" section (round trips per second, connection counts,
/// MB/s figures' whole parts are shorter) must be in bench/results.md, and the lesson must
/// give the date of that run: a re-run of scripts/bench.sh that is not copied into the lesson
/// fails here.
#[test]
fn the_lessons_measured_numbers_are_those_of_bench_results() {
    let root = testkit::root();
    let lesson = std::fs::read_to_string(root.join("lessons/10-many-clients.md")).expect("lesson");
    let results = std::fs::read_to_string(root.join("bench/results.md")).expect("results");
    let start = lesson.find("## Measured").expect("a Measured section");
    let end = lesson[start..]
        .find("\n## Look from outside")
        .map_or(lesson.len(), |at| start + at);
    let measured = &lesson[start..end];
    let numbers: Vec<&str> = measured
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| n.len() >= 5)
        .collect();
    assert!(numbers.len() >= 10, "the section quotes measured numbers");
    let missing: Vec<&&str> = numbers
        .iter()
        .filter(|n| !results.contains(**n) && **n != "10000" && **n != "100000")
        .collect();
    assert!(
        missing.is_empty(),
        "lessons/10-many-clients.md quotes numbers that bench/results.md does not have: {missing:?}"
    );
    let date = results
        .split("on ")
        .nth(1)
        .and_then(|rest| rest.get(..10))
        .expect("results.md says when it was measured");
    assert!(
        measured.contains(date),
        "the lesson does not say the run was on {date}"
    );
}

// ---- issue 8: every model removes only its own socket file, and reads counts in words ----

#[test]
fn every_model_leaves_a_file_that_replaced_its_socket() {
    for model in MODELS {
        let path = std::env::temp_dir().join(format!(
            "step10-test-{}-replaced-{model}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let path_arg = path.to_str().expect("utf-8");
        let mut server = Running::start(
            step10(),
            ["--model", model, "--family", "unix", "--path", path_arg],
        );
        assert_eq!(server.wait_ready(LIMIT), path_arg);
        std::fs::remove_file(&path).expect("the user removes the socket file");
        std::fs::write(&path, "mine\n").expect("and saves a file there");
        server.signal(15);
        let done = server.finish(LIMIT);
        assert_eq!(done.code, Some(0), "{model}: {}", done.output);
        assert!(done.says("SIGTERM: stopping."), "{model}: {}", done.output);
        assert!(
            done.says("it is no longer the socket this program bound"),
            "{model}: {}",
            done.output
        );
        assert_eq!(std::fs::read_to_string(&path).expect("kept"), "mine\n");
        std::fs::remove_file(&path).expect("clean up");
    }
}

#[test]
fn max_clients_0_is_refused_in_words() {
    let line = testkit::process::fails_in_one_line(step10(), &["--max-clients", "0"], 2);
    assert!(line.contains("1 or more"), "{line}");
    assert!(!line.contains("18446744073709551615"), "{line}");
}
