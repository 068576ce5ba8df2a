//! 05_echo: step 4's accept loop plus the conversation: recv, send back, until recv returns 0.
//! The check: a client that sends two lines and shuts down its side; one that sends 4 MiB
//! (compared byte for byte); one that leaves mid-message with a reset; and one more after it,
//! to show the server went on.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::Socket;

use super::{Ctx, End, QUICK, connect, read_exactly, read_to_end, send_and_read_back, show};
use crate::Failure;
use crate::program::{Running, describe_exit};

const MEGABYTES: usize = 4;
/// How many times the check looks at a silent server's state.
const LOOKS: usize = 20;

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    let mut running = ctx.start(&["127.0.0.1:0"])?;
    let address = running.expect_address("listening on")?;

    // Client 1: two lines, one at a time, then the end of its side.
    let mut client = client(&mut running, address, 1)?;
    for line in [&b"hello\n"[..], b"and a second line\n"] {
        echoes(&mut running, &mut client, line, 1)?;
    }
    ends_after_shutdown(&mut running, &mut client, 1)?;
    ctx.passed("client 1: two lines echoed one by one, and the end after it shut down its side");

    // Client 2: megabytes, sent while the echo is read, compared byte for byte.
    let client = self::client(&mut running, address, 2)?;
    let data = noise(MEGABYTES << 20);
    let what = format!("client 2 sends {MEGABYTES} MiB and reads the echo as it comes");
    let (got, end) = send_and_read_back(&client, &data)
        .map_err(|e| Failure::new(&what, "a connection", e.to_string()))?;
    if let Some(at) = got.iter().zip(&data).position(|(a, b)| a != b) {
        return Err(Failure::new(
            what,
            "every byte back, in order",
            format!(
                "byte {at} differs: {} came where {} was sent",
                show(&got[at..(at + 16).min(got.len())]),
                show(&data[at..at + 16.min(data.len() - at)])
            ),
        ));
    }
    if let Some(end) = end {
        return Err(Failure::new(
            what,
            format!("all {} bytes back", data.len()),
            format!(
                "{} bytes came back, then {}: did it ignore how many bytes send() took?",
                got.len(),
                end.describe()
            ),
        )
        .read("lessons/05-recv-send.md#the-calls-three-ways"));
    }
    let mut client = client;
    ends_after_shutdown(&mut running, &mut client, 2)?;
    ctx.passed(format!(
        "client 2: {MEGABYTES} MiB echoed, every byte the same"
    ));

    // Client 3: half a message, then it leaves with a reset (close with SO_LINGER 0).
    let mut client = self::client(&mut running, address, 3)?;
    echoes(&mut running, &mut client, b"half a mess", 3)?;
    let _ = client.write_all(b"age that never ends");
    let socket = Socket::from(client);
    let _ = socket.set_linger(Some(Duration::ZERO));
    drop(socket);
    ctx.passed("client 3 sent half a message and reset the connection");

    // Client 4: the server must still be there.
    let mut client = match connect(address) {
        Ok(client) => client,
        Err(e) => return Err(after_reset(&mut running, format!("connect failed: {e}"))),
    };
    let line = b"still there?\n";
    if client.write_all(line).is_err() {
        return Err(after_reset(&mut running, "its send failed".to_owned()));
    }
    let (got, end) = read_exactly(&mut client, line.len());
    if let Some(end) = end {
        return Err(after_reset(
            &mut running,
            format!("it got {} then {}", show(&got), end.describe()),
        ));
    }
    ends_after_shutdown(&mut running, &mut client, 4)?;
    ctx.passed(
        "client 4, after the reset, got its echo: one client's error ended only that client",
    );
    Ok(())
}

fn client(running: &mut Running, address: SocketAddr, n: usize) -> Result<TcpStream, Failure> {
    connect(address).map_err(|e| {
        let mut happened = format!("connect failed: {e}");
        if let Some(status) = running.wait_exit(QUICK / 10) {
            happened.push_str(&format!(
                "; the program had ended: {}",
                describe_exit(status)
            ));
        }
        Failure::new(
            format!("client {n} connects"),
            "the server accepts it",
            happened,
        )
    })
}

/// The failure for a client after client 3's reset: the server stopped, or stopped answering.
fn after_reset(running: &mut Running, happened: String) -> Failure {
    let what = "client 4 connects after client 3's reset and sends a line";
    let expected =
        "its echo: a client's error (ECONNRESET) ends that client's conversation, not the server";
    match running.wait_exit(QUICK) {
        Some(status) => Failure::new(
            what,
            expected,
            format!(
                "{happened}; the server had ended after client 3's reset ({}): one client's error belongs to that client, report it and accept the next",
                describe_exit(status)
            ),
        ),
        None => Failure::new(what, expected, happened),
    }
}

/// Sends `line` and expects exactly it back, and nothing more.
fn echoes(
    running: &mut Running,
    client: &mut TcpStream,
    line: &[u8],
    n: usize,
) -> Result<(), Failure> {
    let what = format!("client {n} sends {} and reads the echo", show(line));
    client
        .write_all(line)
        .map_err(|e| Failure::new(&what, "the send succeeds", e.to_string()))?;
    let (got, end) = read_exactly(client, line.len());
    if let Some(end) = end {
        let mut happened = format!("it got {} then {}", show(&got), end.describe());
        if matches!(end, End::Closed) && n == 1 && line != b"hello\n" {
            happened.push_str(": after echoing the first recv the server closed; recv and send in a loop until recv returns 0");
        } else if running.wait_exit(QUICK / 10).is_some() {
            happened = format!("{happened}; {}", running.what_happened());
        }
        return Err(Failure::new(what, format!("{} back", show(line)), happened));
    }
    // Anything more than was sent is a mistake: wait a little for it.
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| Failure::new(&what, "a socket", e.to_string()))?;
    let mut more = [0u8; 2048];
    let extra = std::io::Read::read(client, &mut more);
    client.set_read_timeout(Some(QUICK)).ok();
    match extra {
        Ok(k) if k > 0 => Err(Failure::new(
            what,
            format!("{} back, and nothing more", show(line)),
            format!(
                "{} came back, then {} more bytes: {}: send only the n bytes recv returned, &buf[..n], not the whole buffer",
                show(line),
                k,
                show(&more[..k])
            ),
        )),
        _ => Ok(()),
    }
}

/// Shuts down the client's side and expects the server to close its side in turn.
fn ends_after_shutdown(
    running: &mut Running,
    client: &mut TcpStream,
    n: usize,
) -> Result<(), Failure> {
    let what = format!("client {n} shuts down its side (the server's recv returns 0)");
    client
        .shutdown(Shutdown::Write)
        .map_err(|e| Failure::new(&what, "shutdown succeeds", e.to_string()))?;
    let cpu_before = running.cpu_seconds();
    let started = Instant::now();
    let (got, end) = read_to_end(client, 1 << 20);
    match end {
        End::Closed if got.is_empty() => Ok(()),
        End::Silent => {
            let mut happened = format!("no end of the stream within {QUICK:?}");
            // A program waiting in recv sleeps (S); one whose loop goes on after recv returned
            // 0 is always running or ready to run (R), however loaded the machine is.
            let mut running_looks = 0;
            for _ in 0..LOOKS {
                if running.state() == Some('R') {
                    running_looks += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if running_looks * 2 > LOOKS {
                let cpu = match (cpu_before, running.cpu_seconds()) {
                    (Some(before), Some(after)) => format!(
                        ", {:.1} s of CPU in {:.1} s",
                        after - before,
                        started.elapsed().as_secs_f64()
                    ),
                    _ => String::new(),
                };
                happened.push_str(&format!(
                    ": it is not waiting but running (/proc/{}/stat: state R in {running_looks} of {LOOKS} looks{cpu}): recv returns 0 again and again and the loop goes on; stop when recv returns 0",
                    running.pid()
                ));
            } else {
                happened.push_str(
                    ": the server did not close the client's socket when recv returned 0",
                );
            }
            Err(Failure::new(
                what,
                "the server closes its side: the client's recv returns 0",
                happened,
            )
            .read("lessons/05-recv-send.md#the-calls-three-ways"))
        }
        other => Err(Failure::new(
            what,
            "the server closes its side: the client's recv returns 0",
            format!("{} more bytes came, then {}", got.len(), other.describe()),
        )),
    }
}

/// `len` bytes that are not all alike (xorshift), so a lost or repeated chunk shows.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}
