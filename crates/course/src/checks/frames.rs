//! 11_frames: length-prefixed messages. The checker sends "hello" with its header cut in two
//! (the second half only once the server has read the first), then an empty message, one with
//! newlines and zero bytes, and one of the maximum size; then, from a second client, a header
//! announcing 4 GiB, which must be refused before anything is allocated for it (the server's
//! VmPeak in /proc says); then a third client, to show the server went on.

use std::io::Write;
use std::net::{Shutdown, SocketAddr};

use super::peer_sockets::{self as peer, Ended};
use super::watch::all_read;
use super::{Ctx, QUICK, show, wait_until};
use crate::Failure;
use crate::program::Running;

/// The exercise's maximum message.
const MAX: usize = 65536;
/// How much the server's virtual memory may grow while it refuses a 4 GiB length.
const SLACK_KB: u64 = 512 * 1024;
const WALK: &str = "lessons/11-framing.md#walk-through-the-code";

fn frame(message: &[u8]) -> Vec<u8> {
    let mut wire = (message.len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(message);
    wire
}

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    let mut server = ctx.start(&["127.0.0.1:0"])?;
    let at = server.expect_address("listening on")?;

    // Client 1: a header cut in two.
    let conn = peer::connect(at, QUICK).map_err(peer::setup)?;
    let (ours, theirs) = peer::addresses(&conn);
    let hello = frame(b"hello");
    let _ = (&conn).write_all(&hello[..2]);
    wait_until(QUICK, || all_read(ours, theirs));
    let _ = (&conn).write_all(&hello[2..]);
    let what = "send the frame of \"hello\" (\\x00\\x00\\x00\\x05hello), its header in two sends, the second \
                once the server has read the first";
    let (got, ended) = read(&conn, hello.len());
    if got != hello {
        let mut happened = format!("the answer was {}, then {}", show(&got), describe(&ended));
        if !got.is_empty() && got.starts_with(&[0, 0, 0, 0]) {
            happened.push_str(
                ". One recv() returns what has arrived, perhaps part of a header: receive until all 4 \
                 bytes are there",
            );
        }
        return Err(stopped(&mut server, what, "the same frame back", happened));
    }

    // Then an empty message, one with newlines and zero bytes, and one of MAX bytes.
    let messages = [Vec::new(), b"a\nb\x00c\n".to_vec(), peer::bytes(MAX, 11)];
    let wire: Vec<u8> = messages.iter().flat_map(|m| frame(m)).collect();
    let _ = (&conn).write_all(&wire);
    let _ = conn.shutdown(Shutdown::Write);
    let what = format!(
        "send 3 frames in one send: an empty message, \"a\\nb\\x00c\\n\", and {MAX} bytes (the maximum); \
         then a FIN"
    );
    let (got, ended) = read(&conn, wire.len() + 1);
    if got != wire {
        let at = peer::first_difference(&got, &wire);
        let happened = format!(
            "{} of {} bytes came back as sent (then {}, from byte {at}), then {}",
            at,
            wire.len(),
            show(&got[at.min(got.len())..(at + 16).min(got.len())]),
            describe(&ended)
        );
        let expected = "the same frames back: any bytes, any length from 0 to the maximum";
        return Err(stopped(&mut server, &what, expected, happened));
    }
    if !matches!(ended, Ended::Eof) {
        let happened = format!("every frame came back, then {}", describe(&ended));
        let expected = "then the server closes: a recv() of 0 between two messages is a clean end";
        return Err(stopped(&mut server, &what, expected, happened).read(WALK));
    }
    ctx.passed("client 1: a header cut in two, an empty message, newlines and zero bytes, and the maximum; then end of file");

    // Client 2: a header that asks for 4 GiB.
    let pid = server.pid();
    let before = vm_peak_kb(pid);
    let hostile = peer::connect(at, QUICK).map_err(peer::setup)?;
    let _ = (&hostile).write_all(&u32::MAX.to_be_bytes());
    let what = "client 2 sends the header \\xff\\xff\\xff\\xff: a message of 4294967295 bytes";
    let expected = format!(
        "the server refuses it (more than {MAX}) and closes the connection, without allocating anything for it"
    );
    let (_, ended) = read(&hostile, 1);
    let after = vm_peak_kb(pid);
    if let (Some(before), Some(after)) = (before, after)
        && after > before + SLACK_KB
    {
        let happened = format!(
            "the server's virtual memory peaked {} MiB higher (VmPeak in /proc/{pid}/status): it allocated a \
             buffer for the length before checking it. Check the length against the maximum first",
            (after - before) / 1024
        );
        return Err(Failure::new(what, expected, happened).read(WALK));
    }
    if server.exited().is_some() {
        let happened = format!(
            "the server ended: {}. Did it allocate the length before checking it, or end on a client's error?",
            server.what_happened()
        );
        return Err(Failure::new(what, expected, happened).read(WALK));
    }
    if matches!(ended, Ended::Silence) {
        let happened = format!(
            "the connection stayed open: the server waits for the 4294967295 bytes the header announces. Check \
             the length against the maximum ({MAX}) and close the connection"
        );
        return Err(Failure::new(what, expected, happened).read(WALK));
    }
    ctx.passed("client 2: a 4 GiB length refused, the connection closed, nothing allocated");

    // Client 3: the server goes on.
    still_there(&mut server, at)?;
    ctx.passed("client 3, after that, got its answer: one client's error ended only that client");
    Ok(())
}

fn still_there(server: &mut Running, at: SocketAddr) -> Result<(), Failure> {
    let what = "client 3 sends the frame of \"still there?\"";
    let expected =
        "the same frame back: a client's error ends that client's conversation, not the server";
    let sent = frame(b"still there?");
    let conn = match peer::connect(at, QUICK) {
        Ok(conn) => conn,
        Err(e) => {
            return Err(stopped(
                server,
                what,
                expected,
                format!("connect failed: {e}"),
            ));
        }
    };
    let _ = (&conn).write_all(&sent);
    let (got, ended) = read(&conn, sent.len());
    if got == sent {
        return Ok(());
    }
    let happened = format!("the answer was {}, then {}", show(&got), describe(&ended));
    Err(stopped(server, what, expected, happened))
}

/// Reads until `len` bytes came, or the stream ended or fell silent.
fn read(conn: &socket2::Socket, len: usize) -> (Vec<u8>, Ended) {
    let mut got = Vec::new();
    let ended = peer::read_all(conn, &mut got, len);
    (got, ended)
}

fn describe(ended: &Ended) -> String {
    ended.describe()
}

/// A failure, saying so when the server has ended (a todo!(), a panic, an error it returned).
fn stopped(
    server: &mut Running,
    what: impl AsRef<str>,
    expected: impl AsRef<str>,
    happened: String,
) -> Failure {
    let seen = server.what_happened();
    if server.exited().is_some() || seen.contains("todo!()") {
        Failure::new(
            what.as_ref(),
            expected.as_ref(),
            format!("{happened}; {seen}"),
        )
    } else {
        Failure::new(what.as_ref(), expected.as_ref(), happened)
    }
}

/// `VmPeak` of a process, in kB: the most virtual memory it has ever had.
fn vm_peak_kb(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
