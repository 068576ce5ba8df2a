//! 08_udp_client: a connected UDP client. The checker is its server, a stranger who sends to
//! the client's port first, a server that never answers, and an address where nothing is.

use std::time::Duration;

use super::peer_sockets as peer;
use super::piped::Piped;
use super::{Ctx, QUICK, show};
use crate::Failure;

/// How long a client may wait for an answer that never comes before it must give up.
const GIVE_UP: Duration = Duration::from_secs(4);

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    let (server, at) = peer::udp(QUICK).map_err(peer::setup)?;
    let (stranger, _) = peer::udp(QUICK).map_err(peer::setup)?;
    let client = Piped::start(&ctx.program, &[at.to_string(), "hello".into()], Vec::new())
        .map_err(peer::setup)?;
    let what = format!("run your client with a server at {at} and the message \"hello\"");
    let Some((message, Some(from))) = peer::first_datagram(&server, client.pid()) else {
        let ended = client.finish(Duration::ZERO);
        return Err(Failure::new(
            what,
            "a datagram \"hello\" reaches the server",
            format!("nothing came; {}", ended.how(QUICK)),
        ));
    };
    if message != b"hello" {
        return Err(Failure::new(
            what,
            "a datagram \"hello\" reaches the server",
            format!("the server received {}", show(&message)),
        ));
    }
    // A stranger's datagram reaches the client's port before the server's answer does.
    let _ = stranger.send_to(b"not for you", &from.into());
    let _ = server.send_to(b"HELLO", &from.into());
    let ended = client.finish(QUICK);
    let out = ended.stdout.strip_suffix(b"\n").unwrap_or(&ended.stdout);
    let what = "answer \"HELLO\" from the server, after a stranger sent \"not for you\" to the client's port";
    let expected = "it prints the server's answer, HELLO, and exits with code 0";
    if out == b"not for you" {
        return Err(Failure::new(
            what,
            expected,
            "it printed the stranger's datagram: an unconnected UDP socket takes datagrams from anyone. connect() it \
             to the server, and the kernel delivers the server's datagrams only",
        )
        .read("lessons/08-udp.md#connect-on-a-datagram-socket"));
    }
    if out != b"HELLO" || ended.code() != Some(0) {
        return Err(Failure::new(
            what,
            expected,
            format!("it printed {}; {}", show(out), ended.how(QUICK)),
        ));
    }
    ctx.passed("the server's answer, not the stranger's datagram that came first");

    // A server that never answers: the client must give up by itself, with an error.
    let (silent, at) = peer::udp(QUICK).map_err(peer::setup)?;
    let ended = Piped::start(
        &ctx.program,
        &[at.to_string(), "anyone?".into()],
        Vec::new(),
    )
    .map_err(peer::setup)?
    .finish(GIVE_UP);
    drop(silent);
    let what = format!(
        "run your client with a server at {at} that never answers (as if a datagram were lost)"
    );
    let expected = format!("it gives up within {GIVE_UP:?} and exits with a non-zero code");
    if ended.status.is_none() {
        return Err(Failure::new(
            what,
            expected,
            format!(
                "{}. UDP never says that an answer is not coming: set a read timeout (set_read_timeout) before \
                 recv(), and fail when it runs out",
                ended.how(GIVE_UP)
            ),
        )
        .read("lessons/08-udp.md#what-can-go-wrong"));
    }
    if ended.code() == Some(0) {
        return Err(Failure::new(
            what,
            expected,
            format!("it exited with code 0 and printed {}", show(&ended.stdout)),
        ));
    }
    ctx.passed("without an answer it gave up, with a non-zero exit code");

    // Nothing bound at the address: a connected socket hears ECONNREFUSED.
    let at = peer::udp(QUICK).map_err(peer::setup)?.1; // bound, and closed again at once
    let ended = Piped::start(
        &ctx.program,
        &[at.to_string(), "anyone?".into()],
        Vec::new(),
    )
    .map_err(peer::setup)?
    .finish(GIVE_UP);
    if ended.code().is_none_or(|code| code == 0) {
        return Err(Failure::new(
            format!("run your client with {at}, where nothing is bound"),
            "it exits with a non-zero code: its connected socket hears ECONNREFUSED",
            ended.how(GIVE_UP),
        )
        .read("lessons/08-udp.md#nobody-there"));
    }
    ctx.passed("with nothing at the address it failed, with a non-zero exit code");
    Ok(())
}
