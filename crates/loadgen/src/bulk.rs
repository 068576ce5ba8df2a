//! Bulk mode: one connection, a stream written as fast as the server echoes it, every byte
//! checked; reports MB/s.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tutor::explain::describe;

use crate::cli::{Cli, Format};
use crate::payload::{PATTERN_LEN, first_difference, pattern};
use crate::progress::Progress;

/// Streams to `cli.address` for `seconds` and prints the rate.
pub fn run(cli: &Cli, seconds: Duration) -> ExitCode {
    let failed = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(1)
    };
    let stream = match TcpStream::connect_timeout(&cli.address, Duration::from_secs(5)) {
        Ok(stream) => stream,
        Err(error) => return failed(format!("connect failed: {}", describe(&error))),
    };
    let writer_stream = match stream.try_clone() {
        Ok(s) => s,
        Err(error) => return failed(format!("cannot clone the socket: {error}")),
    };
    let block = Arc::new(pattern());
    let stop = Arc::new(AtomicBool::new(false));
    let chunk = cli.size as usize;

    // The writer sends the stream as fast as the socket takes it.
    let writer = {
        let block = Arc::clone(&block);
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut stream = writer_stream;
            let mut offset = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let start = offset % PATTERN_LEN;
                let end = (start + chunk).min(PATTERN_LEN);
                match stream.write(&block[start..end]) {
                    Ok(n) => offset += n,
                    Err(_) => break,
                }
            }
        })
    };

    // The reader checks every byte that comes back, for `seconds`.
    let mut reader = stream;
    let _ = reader.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0usize;
    let started = Instant::now();
    let mut last_print = Instant::now();
    let progress = Progress::new(cli.quiet);
    let mut problem = None;
    while started.elapsed() < seconds {
        match reader.read(&mut buf) {
            Ok(0) => {
                problem = Some(format!(
                    "the server closed the connection after echoing {received} bytes"
                ));
                break;
            }
            Ok(n) => {
                let mut at = 0;
                while at < n {
                    let start = (received + at) % PATTERN_LEN;
                    let len = (n - at).min(PATTERN_LEN - start);
                    if let Some(bad) =
                        first_difference(&block[start..start + len], &buf[at..at + len])
                    {
                        problem = Some(format!(
                            "byte {} of the stream came back as 0x{:02x}, but 0x{:02x} was sent (a corrupted echo)",
                            received + at + bad,
                            buf[at + bad],
                            block[start + bad]
                        ));
                        break;
                    }
                    at += len;
                }
                if problem.is_some() {
                    break;
                }
                received += n;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                problem = Some(format!("receive failed: {}", describe(&e)));
                break;
            }
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            progress.line(&format!(
                "loadgen: {secs:4.1} s  {received} bytes echoed ({:.1} MB/s)",
                received as f64 / secs / 1e6
            ));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.end();
    // Stop without draining: what is still in flight was never counted. Closing both
    // halves wakes the writer if it is blocked in send.
    stop.store(true, Ordering::Relaxed);
    let _ = reader.shutdown(Shutdown::Both);
    let _ = writer.join();

    let rate = received as f64 / elapsed / 1e6;
    match cli.format {
        Format::Kv => {
            tutor::outln!("label={}", cli.label);
            tutor::outln!("bytes={received}");
            tutor::outln!("seconds={elapsed:.3}");
            tutor::outln!("mb_per_s={rate:.2}");
            tutor::outln!("errors={}", u32::from(problem.is_some()));
        }
        Format::Table => {
            tutor::outln!(
                "bulk{}: {received} bytes echoed in {elapsed:.2} s: {rate:.1} MB/s (1 MB = 10^6 bytes), every byte checked",
                if cli.label.is_empty() {
                    String::new()
                } else {
                    format!(" {}", cli.label)
                }
            );
        }
    }
    match problem {
        Some(problem) => failed(problem),
        None if received == 0 => failed("nothing came back: is it an echo server?".to_owned()),
        None => ExitCode::SUCCESS,
    }
}
