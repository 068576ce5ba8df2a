//! Two small writes, then a read: a request's header and its body sent separately, then the
//! answer awaited. Measured four ways on one TCP connection.
//!
//! Nagle's algorithm (on by default) holds back a small segment while an earlier one is not
//! yet acknowledged: the body waits for the ACK of the header. The server, which needs the
//! body before it can answer, has nothing to send, so it delays its ACK (delayed ACK, at
//! least 40 ms on Linux) hoping to carry it on data. Each side waits for the other until
//! the ACK timer fires. One write, `MSG_MORE` on the header, or `TCP_NODELAY` each avoid it.

use std::time::{Duration, Instant};

use socket2::{SockAddr, Socket};
use tutor::narrate::Budget;
use tutor::{Failure, Narrator, narrate};

use crate::demo::{Both, connect, quiet_as};
use crate::frame::{self, Framing, Next, Reader};

/// How the client sends its request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    TwoWrites,
    OneWrite,
    MsgMore,
    Cork,
    NoDelay,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::TwoWrites => "two writes, header then body",
            Way::OneWrite => "one write, header and body together",
            Way::MsgMore => "two writes, MSG_MORE on the header",
            Way::Cork => "two writes between TCP_CORK on and off",
            Way::NoDelay => "two writes, TCP_NODELAY set",
        }
    }
}

/// Measures each way for `rounds` rounds and prints the median of each.
pub fn measure(
    story: &Narrator,
    both: Both,
    listener: &Socket,
    local: &SockAddr,
    rounds: u32,
    show: u64,
) -> Result<(), Failure> {
    story.section("two small writes, then a read: Nagle's algorithm meets delayed ACKs");
    if local.is_unix() {
        story.say("a unix socket has no Nagle's algorithm and no ACKs: this part needs TCP (--family ipv4 or ipv6)");
        return Ok(());
    }
    let (server_says, client_says) = both;
    let (client, conn) = connect(both, listener, local)?;
    let mut medians = Vec::new();
    for way in [
        Way::TwoWrites,
        Way::OneWrite,
        Way::MsgMore,
        Way::Cork,
        Way::NoDelay,
    ] {
        story.section(way.name());
        if way == Way::NoDelay {
            narrate!(client_says, client.set_tcp_nodelay(true))?;
        }
        let mut budget = Budget::new(show, "rounds", "--show-calls");
        let mut times = Vec::new();
        for round in 1..=rounds {
            let client_says = budget.next(client_says);
            let server_says = quiet_as(server_says, &client_says);
            let took = one_round(way, (&server_says, &client_says), &client, &conn)?;
            if client_says.is_loud() {
                client_says.say(format!("round {round}: {} ms", ms(took)));
            }
            times.push(took);
        }
        let median = median(&mut times);
        story.say(format!(
            "{}: median {} ms over {rounds} rounds",
            way.name(),
            ms(median)
        ));
        medians.push((way, median));
    }
    story.section("compared");
    for (way, median) in medians {
        story.say(format!("{:<40} median {:>9} ms", way.name(), ms(median)));
    }
    narrate!(server_says, drop(conn));
    narrate!(client_says, drop(client));
    Ok(())
}

/// One request (a 4-byte header, then a 16-byte body) and its answer; how long it took.
fn one_round(way: Way, both: Both, client: &Socket, conn: &Socket) -> Result<Duration, Failure> {
    let (server_says, client_says) = both;
    let request = frame::encode(Framing::Length, b"what time is it?");
    let (header, body) = request.split_at(4);
    let started = Instant::now();
    match way {
        Way::TwoWrites | Way::NoDelay => {
            frame::send_all(client_says, client, header)?;
            frame::send_all(client_says, client, body)?;
        }
        Way::OneWrite => {
            frame::send_all(client_says, client, &request)?;
        }
        Way::MsgMore => {
            // "More is coming": the kernel holds the header until the next send.
            let flags = libc::MSG_MORE;
            let taken = narrate!(client_says, client.send_with_flags(header, flags))?;
            frame::send_all(client_says, client, &header[taken..])?;
            frame::send_all(client_says, client, body)?;
        }
        Way::Cork => {
            // A cork holds every partial segment until it is taken out.
            narrate!(client_says, client.set_tcp_cork(true))?;
            frame::send_all(client_says, client, header)?;
            frame::send_all(client_says, client, body)?;
            narrate!(client_says, client.set_tcp_cork(false))?;
        }
    }
    // The server reads the whole request, then answers in one write.
    let mut at_server = Reader::new(Framing::Length, 1024, 1024, u64::MAX);
    expect_message(at_server.next(server_says, conn)?)?;
    frame::send_all(server_says, conn, &frame::encode(Framing::Length, b"noon"))?;
    let mut at_client = Reader::new(Framing::Length, 1024, 1024, u64::MAX);
    expect_message(at_client.next(client_says, client)?)?;
    Ok(started.elapsed())
}

fn expect_message(next: Next) -> Result<(), Failure> {
    match next {
        Next::Message(_) => Ok(()),
        other => Err(Failure::Peer(format!(
            "the demo's peer broke off: {other:?}"
        ))),
    }
}

/// The middle time (the mean of the two middle ones for an even count).
fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    let n = times.len();
    if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2
    }
}

/// Milliseconds with three decimals: `44.012`.
fn ms(time: Duration) -> String {
    format!("{:.3}", time.as_secs_f64() * 1000.0)
}
