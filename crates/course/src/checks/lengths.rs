//! 09_lengths: one port number, TCP and UDP, each message answered with its length. Over UDP
//! the checker sends datagrams without newlines (an empty one too, and 8000 bytes); over TCP
//! lines cut across sends the way a stream may deliver them.

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use socket2::SockAddr;

use super::peer_sockets::{self as peer, Ended, datagram};
use super::watch::all_read;
use super::{Ctx, QUICK, show, wait_until};
use crate::Failure;

const ANSWER: Duration = Duration::from_secs(2);

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    let mut server = ctx.start(&["127.0.0.1:0"])?;
    let at = server.expect_address("listening on")?;

    let (udp, _) = peer::udp(ANSWER).map_err(peer::setup)?;
    let long = vec![b'x'; 8000];
    let datagrams: [&[u8]; 5] = [b"abc", b"defgh", b"ijklmno", b"", &long];
    for message in datagrams {
        let what = format!(
            "send a UDP datagram of {} bytes, with no newline in it, to {at}",
            message.len()
        );
        let expected = format!("a datagram \"{}\" comes back", message.len());
        let _ = udp.send_to(message, &SockAddr::from(at));
        match datagram(&udp) {
            Some((answer, _)) if answer == message.len().to_string().as_bytes() => {}
            Some((answer, _)) if message.len() > 1024 => {
                return Err(Failure::new(
                    what,
                    expected,
                    format!(
                        "the answer was {}: your server received the datagram into a buffer smaller than it, and \
                         the part that does not fit is lost. Receive datagrams into 65536 bytes",
                        show(&answer)
                    ),
                )
                .read("lessons/09-stream-vs-dgram.md#each-row-explained"));
            }
            Some((answer, _)) => {
                return Err(Failure::new(
                    what,
                    expected,
                    format!("the answer was {}", show(&answer)),
                ));
            }
            None if server.exited().is_some() => {
                return Err(Failure::new(what, expected, server.what_happened()));
            }
            None => {
                let seen = server.what_happened();
                if seen.contains("todo!()") {
                    return Err(Failure::new(what, expected, seen));
                }
                return Err(Failure::new(
                    what,
                    expected,
                    format!(
                        "no answer came within {ANSWER:?}. Over UDP the datagram is the message: one recv() takes \
                         one whole datagram, and there is no newline to wait for"
                    ),
                )
                .read("lessons/09-stream-vs-dgram.md#each-row-explained"));
            }
        }
    }
    ctx.passed("5 datagrams, each answered with its length (0 and 8000 too)");

    // TCP: "abc\ndefgh\nij" in one send, and once the server has read it, "klmno\n" and a line
    // of 100000 bytes.
    let conn = peer::connect(at, QUICK).map_err(peer::setup)?;
    let (ours, theirs) = peer::addresses(&conn);
    let _ = (&conn).write_all(b"abc\ndefgh\nij");
    wait_until(QUICK, || all_read(ours, theirs));
    let mut rest = b"klmno\n".to_vec();
    rest.extend(vec![b'y'; 100_000]);
    rest.push(b'\n');
    let _ = (&conn).write_all(&rest);
    let _ = conn.shutdown(Shutdown::Write);
    let mut answers = Vec::new();
    let ended = peer::read_all(&conn, &mut answers, 1 << 20);
    let what = "over TCP, send lines of 3, 5, 7 and 100000 bytes: \"abc\\ndefgh\\nij\" in one send, then \
                \"klmno\\n\" and the long line, then a FIN";
    let expected = "the answers \"3\\n5\\n7\\n100000\\n\", then the server closes the connection";
    let want = b"3\n5\n7\n100000\n";
    if answers == want && matches!(ended, Ended::Eof) {
        ctx.passed(
            "4 lines over TCP, cut across sends, each answered with its length; then end of file",
        );
        return Ok(());
    }
    if answers == want {
        return Err(Failure::new(
            what,
            expected,
            format!(
                "every answer came, but then {}: when recv() returns 0, close the connection",
                ended.describe()
            ),
        ));
    }
    let seen = server.what_happened();
    if server.exited().is_some() || seen.contains("todo!()") {
        return Err(Failure::new(
            what,
            expected,
            format!("the answers were {}; {seen}", show(&answers)),
        ));
    }
    let happened = format!(
        "the answers were {}, then {}. A stream keeps no boundaries: one recv() may hold two lines, or part of \
         one. Collect the bytes, and answer each time a newline completes a line",
        show(&answers),
        ended.describe()
    );
    Err(Failure::new(what, expected, happened).read("lessons/09-stream-vs-dgram.md#run-it"))
}
