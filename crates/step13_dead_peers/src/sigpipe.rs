//! The opposite of silence: a peer that is gone for sure. Writing to it fails with EPIPE,
//! and the kernel also raises SIGPIPE, whose default action ends the process. Rust (and
//! Python) ignore the signal; a C program does not, unless it sends with MSG_NOSIGNAL. All of
//! it on loopback.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tutor::{Failure, Narrator, narrate, observe};

/// Bit 13 of a signal mask, counted from 1: SIGPIPE.
const SIGPIPE_BIT: u64 = 1 << (libc::SIGPIPE - 1);

/// Programs that write one line to their standard output, which will be the dead connection.
/// Each is what a C program does, or what Python does, with or without the remedies.
pub const WRITERS: [(&str, &str, &str); 4] = [
    (
        "sh",
        "echo hello",
        "sh (a C program, SIGPIPE at its default)",
    ),
    (
        "python3",
        "import os; os.write(1, b'hello')",
        "python3 (Python ignores SIGPIPE, as Rust does)",
    ),
    (
        "python3",
        "import os, signal; signal.signal(signal.SIGPIPE, signal.SIG_DFL); os.write(1, b'hello')",
        "python3 with SIGPIPE back at its default",
    ),
    (
        "python3",
        "import signal, socket; signal.signal(signal.SIGPIPE, signal.SIG_DFL); socket.socket(fileno=1).send(b'hello', socket.MSG_NOSIGNAL)",
        "python3 with SIGPIPE at its default, sending with MSG_NOSIGNAL",
    ),
];

pub fn scene(say: &Narrator) -> Result<(), Failure> {
    say.section("SIGPIPE: writing to a peer that closed");
    let ignored = sigpipe_ignored();
    say.say(format!(
        "/proc/{}/status: SigIgn: {}",
        std::process::id(),
        ignored.map_or("?".to_owned(), |mask| format!("{mask:016x}"))
    ));
    if ignored.is_some_and(|mask| mask & SIGPIPE_BIT != 0) {
        say.note("bit 13 (SIGPIPE) is set: Rust's runtime ignores SIGPIPE before main runs, so a write to a dead connection fails with EPIPE instead of ending the program");
    }

    // A connection on loopback whose far end closes.
    let listener = narrate!(
        say,
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
    )?;
    let loopback = SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0)));
    narrate!(say, listener.bind(&loopback))?;
    let backlog = 1;
    narrate!(say, listener.listen(backlog))?;
    let at = narrate!(say, listener.local_addr())?;
    let client = narrate!(
        say,
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
    )?;
    narrate!(say, client.connect(&at))?;
    let own = narrate!(say, client.local_addr())?;
    let (peer, _) = narrate!(say, listener.accept())?;
    narrate!(say, drop(peer));
    say.note("the peer has closed: its FIN is on its way");

    narrate!(say, client.send(b"first"))?;
    say.note("the first send after the peer closed succeeds: the bytes leave, and the peer's kernel, which has no socket for them, answers with a reset");
    wait_until_reset(&own);
    match narrate!(say, client.send(b"second")) {
        Err(failure) if failure.errno() == Some(libc::EPIPE) => say.note(
            "EPIPE: the connection is gone. The kernel raised SIGPIPE too; ignored, it did nothing",
        ),
        Err(failure) => return Err(failure),
        Ok(_) => say.note("taken: the reset had not arrived yet"),
    }
    match narrate!(say, client.send_with_flags(b"third", libc::MSG_NOSIGNAL)) {
        Err(failure) if failure.errno() == Some(libc::EPIPE) => say.note(
            "EPIPE, and with MSG_NOSIGNAL no signal at all, whatever the process does with SIGPIPE: the remedy for one call, for code that cannot know",
        ),
        Err(failure) => return Err(failure),
        Ok(_) => say.note("taken: the reset had not arrived yet"),
    }

    // Other programs writing to the same dead connection: it becomes their standard output.
    say.say("programs that write a line to the dead connection (it is their standard output):");
    for (program, code, who) in WRITERS {
        let stdout = narrate!(say, client.try_clone())?;
        say.say(format!("writer: {program} -c \"{code}\""));
        say.note(format!(
            "{who}: {}",
            run_writer(program, code, stdout.into())
        ));
    }
    narrate!(say, drop(client));
    narrate!(say, drop(listener));
    Ok(())
}

/// The SigIgn mask of this process, from /proc/self/status.
fn sigpipe_ignored() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("SigIgn:"))?;
    u64::from_str_radix(line.trim_start_matches("SigIgn:").trim(), 16).ok()
}

/// Waits (at most two seconds) until the reset has arrived: the connection whose local end
/// is `own` has left the kernel's TCP table.
fn wait_until_reset(own: &SockAddr) {
    let Some(own) = own.as_socket() else { return };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let present = observe::tcp_sockets_on_port(own.port())
            .map(|all| all.iter().any(|e| e.local == own))
            .unwrap_or(false);
        if !present {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs one writer with `stdout` as its standard output; how it ended, in words.
fn run_writer(program: &str, code: &str, stdout: OwnedFd) -> String {
    // std gives a child SIGPIPE at its default action, whatever this process does with it.
    let child = Command::new(program)
        .args(["-c", code])
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::piped())
        .spawn();
    let Ok(child) = child else {
        return format!("not run: {program} is not installed");
    };
    let Ok(out) = child.wait_with_output() else {
        return "not run: could not wait for it".to_owned();
    };
    let last = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_owned();
    match (out.status.signal(), out.status.code()) {
        (Some(libc::SIGPIPE), _) => "killed by SIGPIPE (signal 13)".to_owned(),
        (Some(other), _) => format!("killed by signal {other}"),
        (None, Some(code)) if last.is_empty() => format!("exited {code}"),
        (None, Some(code)) => format!("exited {code}: {last}"),
        (None, None) => "ended".to_owned(),
    }
}
