//! loadgen checks what it measures: every byte of every echo. These tests give it servers
//! made here, in the test: a correct echo server, one that corrupts a byte, one that hangs up
//! early, ones that send more than they were sent, one that never closes, and a listener whose
//! accept queue is full.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::Duration;

use testkit::process::{Finished, run};

const LIMIT: Duration = Duration::from_secs(30);

fn loadgen() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_loadgen"))
}

/// What a test server does to the bytes of one connection before it sends them back.
#[derive(Clone, Copy)]
enum Fault {
    None,
    /// Flips the lowest bit of the byte at this offset of every connection's stream.
    Flip(usize),
    /// Closes the connection after echoing this many bytes.
    HangUpAfter(usize),
    /// Sends `EXTRA` after every echo, in the same write.
    Extra,
    /// Echoes faithfully, but when the client shuts down its side, sends `EXTRA` before
    /// closing.
    ExtraAtEnd,
    /// Echoes faithfully, but never closes: when the client shuts down its side, it keeps
    /// the connection open until the test ends.
    NeverCloses,
}

/// An echo server on a thread per connection, with a fault. It runs until the test ends.
fn server(fault: Fault) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut offset = 0usize;
                loop {
                    let n = match conn.read(&mut buf) {
                        Ok(0) => {
                            match fault {
                                Fault::ExtraAtEnd => {
                                    let _ = conn.write_all(b"EXTRA");
                                }
                                Fault::NeverCloses => {
                                    // Held until the test process ends.
                                    std::mem::forget(conn);
                                }
                                _ => {}
                            }
                            return;
                        }
                        Err(_) => return,
                        Ok(n) => n,
                    };
                    match fault {
                        Fault::None => {}
                        Fault::Flip(at) => {
                            if (offset..offset + n).contains(&at) {
                                buf[at - offset] ^= 1;
                            }
                        }
                        Fault::HangUpAfter(limit) => {
                            if offset + n > limit {
                                let _ = conn.write_all(&buf[..limit - offset]);
                                return;
                            }
                        }
                        Fault::Extra => {
                            let echo = [&buf[..n], b"EXTRA"].concat();
                            if conn.write_all(&echo).is_err() {
                                return;
                            }
                            continue;
                        }
                        Fault::ExtraAtEnd | Fault::NeverCloses => {}
                    }
                    offset += n;
                    if conn.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

fn load(address: SocketAddr, args: &[&str]) -> Finished {
    let mut all = vec![address.to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    all.push("--quiet".into());
    run(loadgen(), &all, LIMIT)
}

#[test]
fn every_round_trip_is_made_and_counted() {
    let address = server(Fault::None);
    let out = load(
        address,
        &["-c", "8", "-r", "25", "-s", "300", "--format", "kv"],
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("round_trips=200"), "{}", out.output);
    assert!(out.says("errors=0"), "{}", out.output);
    assert!(
        out.says("bytes=60000"),
        "8 x 25 x 300 bytes: {}",
        out.output
    );
    // (Without --hold a connection closes when done, so fewer than 8 may be open at once;
    // the --hold test checks that all are.)
    assert!(out.says("peak_open="), "{}", out.output);
}

#[test]
fn a_corrupted_echo_is_caught() {
    // One bit of byte 1000 of every connection's stream is flipped: in round trip 4 of 300
    // bytes, at byte 100 of that round trip.
    let address = server(Fault::Flip(1000));
    let out = load(address, &["-c", "3", "-r", "10", "-s", "300"]);
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(
        out.says("error: 3 of 3 connections failed"),
        "{}",
        out.output
    );
    assert!(
        out.says("round trip 4: byte 100 came back as 0x"),
        "{}",
        out.output
    );
    assert!(out.says("(a corrupted echo)"), "{}", out.output);
}

#[test]
fn a_server_that_hangs_up_early_is_caught() {
    let address = server(Fault::HangUpAfter(150));
    let out = load(address, &["-c", "2", "-r", "5", "-s", "100"]);
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(
        out.says("round trip 2: the server closed the connection after echoing 50 of 100 bytes"),
        "{}",
        out.output
    );
}

#[test]
fn a_server_that_adds_bytes_to_its_echo_is_caught() {
    // One round trip per connection: the extra bytes come after the last expected byte, so
    // only a client that reads past it sees them.
    let out = load(server(Fault::Extra), &["-c", "2", "-r", "1"]);
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(
        out.says("error: 2 of 2 connections failed"),
        "{}",
        out.output
    );
    assert!(out.says("(an echo that adds bytes)"), "{}", out.output);
    assert!(out.says("\"EXTRA\""), "{}", out.output);

    // More round trips: named as extra bytes, not as a corrupted next echo.
    let out = load(server(Fault::Extra), &["-c", "2", "-r", "3", "-s", "100"]);
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(
        out.says("round trip 1: the server sent 5 bytes more than the 100 it was sent"),
        "{}",
        out.output
    );
    assert!(!out.says("corrupted"), "{}", out.output);
}

#[test]
fn bytes_sent_after_the_last_echo_are_caught() {
    // Every echo is right; the extra bytes come only when loadgen shuts down its side. They
    // are seen because loadgen reads until the server closes.
    for hold in [false, true] {
        let mut args = vec!["-c", "3", "-r", "2"];
        if hold {
            args.push("--hold");
        }
        let out = load(server(Fault::ExtraAtEnd), &args);
        assert_eq!(out.code, Some(1), "hold {hold}: {}", out.output);
        assert!(
            out.says("error: 3 of 3 connections failed"),
            "hold {hold}: {}",
            out.output
        );
        assert!(
            out.says("after the last round trip: the server sent 5 more bytes, starting \"EXTRA\" (an echo that adds bytes)"),
            "hold {hold}: {}",
            out.output
        );
    }
}

#[test]
fn a_server_that_never_closes_is_an_error_at_the_time_limit() {
    let out = load(
        server(Fault::NeverCloses),
        &["-c", "2", "-r", "2", "--timeout", "0.5"],
    );
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(
        out.says("error: 2 of 2 connections failed"),
        "{}",
        out.output
    );
    assert!(
        out.says("time limit: the server had not closed the connection"),
        "{}",
        out.output
    );
}

/// The listening socket's accept-queue length, from the kernel's table of TCP sockets
/// (/proc/net/tcp: for a listener, `rx_queue` is the number of connections waiting in its
/// accept queue).
fn accept_queue(port: u16) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields.get(1)?;
        let state = fields.get(3)?;
        let queues = fields.get(4)?;
        if *state != "0A" || !local.ends_with(&format!(":{port:04X}")) {
            return None;
        }
        u32::from_str_radix(queues.split_once(':')?.1, 16).ok()
    })
}

#[test]
fn every_connection_that_cannot_connect_in_time_is_counted() {
    // A listener with a backlog of 1 that never accepts. Linux queues backlog + 1 connections;
    // once the queue is full it drops every new SYN, so a connect stays in progress (a Linux
    // behaviour: other systems may refuse instead). Fill it, one connection at a time, and
    // wait until the kernel's table shows each one queued.
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("a socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    listener.bind(&SockAddr::from(any)).expect("bind");
    listener.listen(1).expect("listen");
    let address = listener
        .local_addr()
        .expect("its address")
        .as_socket()
        .expect("an IP address");
    let mut fillers = Vec::new();
    for queued in 1..=2 {
        fillers.push(TcpStream::connect(address).expect("a connection into the queue"));
        let deadline = std::time::Instant::now() + LIMIT;
        while accept_queue(address.port()) != Some(queued) {
            assert!(
                std::time::Instant::now() < deadline,
                "the accept queue never held {queued}: {:?}",
                accept_queue(address.port())
            );
            thread::yield_now();
        }
    }
    // 5 connections, at most 2 connecting at once: 2 wait for a SYN-ACK that never comes,
    // 3 never start. Every one of them is a failed connection.
    let out = load(
        address,
        &[
            "-c",
            "5",
            "-r",
            "1",
            "--connect-burst",
            "2",
            "--timeout",
            "0.5",
            "--format",
            "kv",
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(out.says("errors=5"), "{}", out.output);
    assert!(
        out.says("error: 5 of 5 connections failed"),
        "{}",
        out.output
    );
    assert!(out.says("time limit"), "{}", out.output);
    assert_eq!(accept_queue(address.port()), Some(2), "still full");
    drop(fillers);
}

#[test]
fn a_refused_connection_is_an_error_not_a_hang() {
    // A port nobody listens on: bind one, note it, close it.
    let address = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let out = load(address, &["-c", "2", "-r", "1"]);
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(out.says("connect failed: ECONNREFUSED"), "{}", out.output);
}

#[test]
fn held_connections_stay_open_until_all_are_done_and_memory_is_read() {
    let address = server(Fault::None);
    // The "server" is this test process: its memory is in /proc/self.
    let pid = std::process::id().to_string();
    let out = load(
        address,
        &[
            "-c",
            "20",
            "-r",
            "3",
            "--hold",
            "--server-pid",
            &pid,
            "--format",
            "kv",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("peak_open=20"), "{}", out.output);
    let value = |key: &str| -> String {
        out.lines_with(&format!("{key}="))
            .next()
            .and_then(|l| l.split_once('='))
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default()
    };
    assert!(
        value("server_peak_kib").parse::<u64>().is_ok(),
        "{}",
        out.output
    );
    assert!(
        value("server_rss_per_conn_kib").parse::<f64>().is_ok(),
        "{}",
        out.output
    );
    // One thread per connection in this test's server: 20 more threads while all are held.
    let threads: u64 = value("server_threads_held")
        .parse()
        .expect("a thread count");
    assert!(threads >= 20, "{}", out.output);
}

#[test]
fn bulk_checks_the_stream_and_reports_mb_per_second() {
    let good = load(server(Fault::None), &["--bulk", "0.3", "--format", "kv"]);
    assert_eq!(good.code, Some(0), "{}", good.output);
    assert!(good.says("errors=0"), "{}", good.output);
    assert!(good.says("mb_per_s="), "{}", good.output);

    let bad = load(server(Fault::Flip(123_456)), &["--bulk", "2"]);
    assert_eq!(bad.code, Some(1), "{}", bad.output);
    assert!(
        bad.says("byte 123456 of the stream came back as 0x"),
        "{}",
        bad.output
    );
}

#[test]
fn a_bad_command_line_is_one_line_and_exit_2() {
    for args in [
        vec!["not-an-address"],
        vec!["127.0.0.1:1", "-c", "0"],
        vec!["127.0.0.1:1", "--bulk", "-1"],
        vec!["127.0.0.1:1", "--timeout", "0"],
        vec!["127.0.0.1:1", "--bulk", "1", "-c", "5"],
    ] {
        let mut command = std::process::Command::new(loadgen());
        command.args(&args);
        let out = testkit::process::run_separately(command, LIMIT);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("error: "),
            "{args:?}: {}",
            out.stderr
        );
    }
    // A stream the server never answers is not a success either.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = silent.local_addr().expect("address");
    let out = load(address, &["-c", "1", "-r", "1", "--timeout", "0.5"]);
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(out.says("time limit"), "{}", out.output);
    drop(silent);
    let _ = TcpStream::connect(address);
}
