//! What lesson 10 claims about running out of descriptors, checked against the program and
//! the kernel: past `ulimit -n` the server keeps serving, does not spin, and accepts again
//! once a client leaves.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use testkit::process::{Running, run_command};
use testkit::python3;

const LIMIT: Duration = Duration::from_secs(30);
/// How long a client waits for an echo that must come.
const DEADLINE: Duration = Duration::from_secs(10);

fn step10() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step10_many_clients"))
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

/// The CPU time a process has used, user and system, in clock ticks (`/proc/PID/stat`'s
/// utime and stime; 100 a second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server runs");
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .expect("a stat line")
        .1
        .split_whitespace()
        .collect();
    // After "pid (comm) ": state is field 3, utime 14, stime 15.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// How many descriptor numbers below `limit` the process has free.
fn free_below(pid: u32, limit: usize) -> usize {
    let used = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's descriptors")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<usize>().ok())
        .filter(|fd| *fd < limit)
        .count();
    limit - used
}

/// Whether the process holds an epoll instance (`anon_inode:[eventpoll]` in /proc/PID/fd).
fn has_epoll_instance(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries.filter_map(Result::ok).any(|entry| {
                std::fs::read_link(entry.path())
                    .is_ok_and(|target| target.to_string_lossy() == "anon_inode:[eventpoll]")
            })
        })
        .unwrap_or(false)
}

/// Starts a model under `prlimit --nofile=LIMIT`, narrating the first `narrate` clients.
fn server_with_few_descriptors(
    prlimit: &Path,
    model: &str,
    limit: usize,
    narrate: &str,
) -> (Running, SocketAddr) {
    let mut command = Command::new(prlimit);
    command
        .arg(format!("--nofile={limit}"))
        .arg(step10())
        .args(["--model", model, "--narrate", narrate, "--color", "never"]);
    let mut server = Running::start_command(command);
    let address = server.wait_ready(LIMIT).parse().expect("an address");
    (server, address)
}

/// Measures the server's CPU time over a fixed window while it is out of descriptors. The
/// window is a measurement, not a wait for something: a server that retried accept() in a
/// loop would use all of it, one that waits uses next to nothing.
fn assert_does_not_spin(server: &Running, model: &str, during: impl FnOnce()) {
    const WINDOW: Duration = Duration::from_millis(600);
    let pid = server.pid();
    let before = cpu_ticks(pid);
    let started = Instant::now();
    during();
    thread::sleep(WINDOW.saturating_sub(started.elapsed()));
    let used = cpu_ticks(pid) - before;
    // 12 ticks is 120 ms of 600: a loop that never waits would use several times that.
    assert!(
        used <= 12,
        "{model}: {used} ticks of CPU in {WINDOW:?} while out of descriptors: a busy loop\n{}",
        server.seen.join("\n")
    );
}

/// Lesson 10's "Running out of descriptors": past `ulimit -n`, accept() fails with EMFILE and
/// the connection stays queued. The threads and poll models keep serving the clients they
/// have, use no CPU while they wait (no busy loop), and accept the queued client once
/// another one has left. (Before: both stopped with `accept4 failed with EMFILE`, exit 1.)
#[test]
fn running_out_of_descriptors_pauses_accept_until_a_client_leaves() {
    let Some(prlimit) = testkit::which("prlimit") else {
        testkit::skip("emfile", "prlimit is not installed");
        return;
    };
    const NOFILE: usize = 16;
    for model in ["threads", "poll"] {
        let (mut server, address) = server_with_few_descriptors(&prlimit, model, NOFILE, "0");
        if model == "poll" {
            // The epoll instance comes after the ready line: count once it is there.
            let deadline = Instant::now() + DEADLINE;
            while !has_epoll_instance(server.pid()) {
                assert!(Instant::now() < deadline, "no epoll instance");
                thread::sleep(Duration::from_millis(5));
            }
        }
        let room = free_below(server.pid(), NOFILE);
        assert!(room >= 2, "{model}: {room} descriptors free");
        // Fill every free descriptor with a client that is served (its echo comes back).
        let mut served: Vec<TcpStream> = (0..room)
            .map(|n| {
                let mut client = connect(address);
                let data = format!("client {n}");
                assert_eq!(round_trip(&mut client, data.as_bytes()), data.as_bytes());
                client
            })
            .collect();
        // One more: its connect succeeds (the kernel queues it), accept() has no descriptor.
        let mut queued = connect(address);
        queued.write_all(b"queued").expect("send");
        server.expect_line("no descriptor for a new connection", LIMIT);
        assert_does_not_spin(&server, model, || {
            for (n, client) in served.iter_mut().enumerate() {
                let data = format!("still served {n}");
                assert_eq!(round_trip(client, data.as_bytes()), data.as_bytes());
            }
        });
        // A client leaves: its descriptor is free, and the queued client is accepted.
        drop(served.pop());
        let mut echo = [0u8; 6];
        queued
            .read_exact(&mut echo)
            .unwrap_or_else(|e| panic!("{model}: the queued client is never served: {e}"));
        assert_eq!(&echo, b"queued");
        server.expect_line("a descriptor is free again", LIMIT);
        drop(served);
        drop(queued);
        server.signal(2);
        let done = server.finish(LIMIT);
        assert_eq!(done.code, Some(0), "{model}: {}", done.output);
        assert!(!done.says("error:"), "{model}: {}", done.output);
    }
}

/// The serial model holds one connection at most, so it runs out of descriptors only when
/// even that one does not fit: then it pauses and tries again, without spinning, and stops
/// cleanly on Ctrl-C.
#[test]
fn the_serial_model_out_of_descriptors_waits_without_spinning() {
    let Some(prlimit) = testkit::which("prlimit") else {
        testkit::skip("emfile", "prlimit is not installed");
        return;
    };
    // 0, 1, 2 and the listener: not one descriptor left for a client.
    let (mut server, address) = server_with_few_descriptors(&prlimit, "serial", 4, "3");
    assert_eq!(free_below(server.pid(), 4), 0);
    let _client = connect(address);
    server.expect_line("no descriptor for a new connection", LIMIT);
    assert_does_not_spin(&server, "serial", || {});
    server.signal(2);
    let done = server.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert!(!done.says("error:"), "{}", done.output);
    assert_eq!(
        done.lines_with("no descriptor for a new connection")
            .count(),
        1,
        "said once, not at every attempt: {}",
        done.output
    );
    // Client 1 is within --narrate 3, but its accept4 is narrated once, not at every retry.
    assert_eq!(done.lines_with("-> accept4(").count(), 1, "{}", done.output);
}

/// Lesson 10's pitfall: while a connection waits in the accept queue (accept() failing with
/// EMFILE takes nothing off it), a level-triggered poll(2) reports the listener readable at
/// every call, so a loop that only goes back to waiting never waits; mio's edge-triggered
/// epoll reports it once, and again when the listener is registered anew.
#[test]
fn a_level_triggered_listener_stays_ready_while_a_connection_waits() {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use std::os::fd::AsRawFd;

    // Level-triggered: Python's select.epoll without EPOLLET, the same kernel object.
    if let Some(python) = python3() {
        let script = "import select, socket\n\
            l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(8)\n\
            c = socket.create_connection(l.getsockname())\n\
            ep = select.epoll(); ep.register(l.fileno(), select.EPOLLIN)\n\
            print(*[len(ep.poll(10)) for _ in range(3)])\n";
        let mut command = Command::new(python);
        command.args(["-c", script]);
        let out = run_command(command, LIMIT);
        assert_eq!(out.code, Some(0), "{}", out.output);
        assert_eq!(
            out.output.trim(),
            "1 1 1",
            "level-triggered: the queued connection is reported at every call"
        );
    } else {
        testkit::skip("level-triggered listener", "python3 is not installed");
    }

    // Edge-triggered: mio.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let fd = listener.as_raw_fd();
    let _queued = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let mut poll = Poll::new().expect("epoll");
    let mut events = Events::with_capacity(8);
    let mut listener_events = |poll: &mut Poll, timeout: Duration| -> usize {
        poll.poll(&mut events, Some(timeout)).expect("epoll_wait");
        events.iter().filter(|e| e.token() == Token(0)).count()
    };
    poll.registry()
        .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)
        .expect("register");
    assert_eq!(
        listener_events(&mut poll, DEADLINE),
        1,
        "the queued connection"
    );
    assert_eq!(
        listener_events(&mut poll, Duration::ZERO),
        0,
        "edge-triggered: not again while it still waits"
    );
    poll.registry()
        .deregister(&mut SourceFd(&fd))
        .expect("deregister");
    poll.registry()
        .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)
        .expect("register again");
    assert_eq!(
        listener_events(&mut poll, DEADLINE),
        1,
        "registered anew, the listener is reported at once"
    );
}
