//! One check per exercise, and the peers and observations they share.
//!
//! A check gets a [`Ctx`] (the built program) and returns `Ok(())` or the first [`Failure`]:
//! what it did, what it expected, what happened. It judges behaviour only: the program's
//! output lines, its exit code, real clients talking to it, and /proc. To add one: write
//! `fn check(ctx: &Ctx) -> Result<(), Failure>` in a module here and name it in [`find`].

mod accept;
mod bind;
mod create;
mod echo;
mod listen;

// Steps 6 to 10: their checks, and the peers, pipes and /proc readings they share.
mod client;
mod lengths;
mod many_clients;
mod peer_sockets;
mod piped;
mod shutdown;
mod udp_client;
mod udp_server;
mod watch;

// Step 11.
mod frames;
// Step 12.
mod try_each;
// Step 13.
mod patient;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::Failure;
use crate::program::Running;

/// A check: Ok when the program behaves as the exercise asks.
pub type Check = fn(&Ctx) -> Result<(), Failure>;

/// The check of each exercise, by name.
pub fn find(name: &str) -> Option<Check> {
    let check: Check = match name {
        "01_create" => create::check,
        "02_bind" => bind::check,
        "03_listen" => listen::check,
        "04_accept" => accept::check,
        "05_echo" => echo::check,
        "06_shutdown" => shutdown::check,
        "07_client" => client::check,
        "08_udp_server" => udp_server::check,
        "08_udp_client" => udp_client::check,
        "09_lengths" => lengths::check,
        "10_many_clients" => many_clients::check,
        "11_frames" => frames::check,
        "12_try_each" => try_each::check,
        "13_patient_client" => patient::check,
        _ => return None,
    };
    Some(check)
}

/// How long a program may take for something that should be quick (print its first line,
/// answer a client, exit): long enough for a loaded machine, short enough for a learner.
pub const QUICK: Duration = Duration::from_secs(5);

/// What a check works with: the program under check.
pub struct Ctx {
    program: PathBuf,
}

impl Ctx {
    pub fn new(program: PathBuf) -> Ctx {
        Ctx { program }
    }

    /// Starts the program with `args`.
    pub fn start(&self, args: &[&str]) -> Result<Running, Failure> {
        Running::start(&self.program, args)
    }

    /// Runs the program to its end under strace (stdin at end of file), keeping the lines of
    /// `calls` (e.g. "socket,bind"). `None` where strace is not installed: a check uses it
    /// when it can and says when it cannot, never requires it.
    pub fn trace(&self, args: &[&str], calls: &str) -> Option<Result<Vec<String>, String>> {
        crate::program::trace(&self.program, args, calls)
    }

    /// Reports one part of the check that passed.
    pub fn passed(&self, what: impl AsRef<str>) {
        tutor::outln!("  ok: {}", what.as_ref());
    }

    /// Reports what the check could not look at here, and why (it still passes).
    pub fn skipped(&self, what: impl AsRef<str>) {
        tutor::outln!("  skipped: {}", what.as_ref());
    }
}

/// The program must exit with code 0 within [`QUICK`] after its stdin gets a line.
pub fn exits_cleanly_after_enter(running: &mut Running, what: &str) -> Result<(), Failure> {
    running.press_enter();
    match running.wait_exit(QUICK) {
        Some(status) if status.success() => Ok(()),
        _ => Err(Failure::new(
            what,
            format!("after Enter, exit with code 0 within {QUICK:?}"),
            running.what_happened(),
        )),
    }
}

/// A client of the program's server at `address`, connected within [`QUICK`].
pub fn connect(address: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&address, QUICK)?;
    stream.set_read_timeout(Some(QUICK))?;
    stream.set_write_timeout(Some(QUICK))?;
    Ok(stream)
}

/// How a read from the server ended.
#[derive(Debug)]
pub enum End {
    /// recv returned 0: the server closed the connection.
    Closed,
    /// Nothing came for a whole [`QUICK`].
    Silent,
    Error(io::Error),
}

impl End {
    pub fn describe(&self) -> String {
        match self {
            End::Closed => "the server closed the connection (recv returned 0)".to_owned(),
            End::Silent => format!("nothing more came for {QUICK:?}"),
            End::Error(e) => format!("recv failed: {e}"),
        }
    }
}

/// Reads until `n` bytes have come, or the stream ends, or it is silent for [`QUICK`].
/// Returns what came, and `Some(End)` when fewer than `n` bytes came.
pub fn read_exactly(stream: &mut TcpStream, n: usize) -> (Vec<u8>, Option<End>) {
    let mut got = Vec::with_capacity(n);
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < n {
        let want = (n - got.len()).min(buf.len());
        match stream.read(&mut buf[..want]) {
            Ok(0) => return (got, Some(End::Closed)),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return (got, Some(End::Silent)),
            Err(e) => return (got, Some(End::Error(e))),
        }
    }
    (got, None)
}

/// Reads until the stream ends, or it is silent for [`QUICK`], or `limit` bytes came.
pub fn read_to_end(stream: &mut TcpStream, limit: usize) -> (Vec<u8>, End) {
    let (got, end) = read_exactly(stream, limit);
    (got, end.unwrap_or(End::Silent))
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Bytes as a learner would read them: `"hello\n"`, shortened.
pub fn show(bytes: &[u8]) -> String {
    const MAX: usize = 60;
    let text: String = bytes
        .iter()
        .take(MAX)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if bytes.len() > MAX {
        format!("\"{text}\"... ({} bytes)", bytes.len())
    } else {
        format!("\"{text}\"")
    }
}

/// Sends all of `data` from a thread while this thread reads the echo: a server that echoes
/// as it reads never waits on a client that only writes. Returns what came back and how the
/// reading ended if it ended before `data.len()` bytes.
pub fn send_and_read_back(stream: &TcpStream, data: &[u8]) -> io::Result<(Vec<u8>, Option<End>)> {
    let mut writer = stream.try_clone()?;
    let mut reader = stream.try_clone()?;
    thread::scope(|scope| {
        let sending = scope.spawn(move || writer.write_all(data));
        let (got, end) = read_exactly(&mut reader, data.len());
        // The writer gives up within its write timeout if the server stopped reading.
        let _ = sending.join();
        Ok((got, end))
    })
}

/// Polls `condition` until it holds, at most `limit`; whether it held.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}
