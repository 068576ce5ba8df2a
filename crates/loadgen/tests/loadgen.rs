//! loadgen checks what it measures: every byte of every echo. These tests give it servers
//! made here, in the test: a correct echo server, one that corrupts a byte, and one that
//! hangs up early.

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
                        Ok(0) | Err(_) => return,
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
