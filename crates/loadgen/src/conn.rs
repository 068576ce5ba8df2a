//! One client connection: its round trips, every byte checked, and its close.
//!
//! An echo sends back what it is sent, no more, no less. So a connection reads past the last
//! byte it expects: during a round trip, whatever comes beyond the echo is an error (the next
//! request is not sent yet, so nothing else can be due); after the last round trip it shuts
//! down its sending side and reads until the server closes, and any byte before that close
//! is an error too.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::Instant;

use mio::net::TcpStream;
use tutor::explain::describe;

use crate::payload::{fill, first_difference, shown};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stage {
    /// The non-blocking connect is in progress.
    Connecting,
    Sending,
    Receiving,
    /// Every round trip is made and checked; held open (--hold) until every connection is.
    Idle,
    /// loadgen has shut down its sending side and reads until the server closes.
    Closing,
}

/// What [`Conn::advance`] got done.
#[derive(PartialEq, Eq, Debug)]
pub enum Advance {
    /// Nothing more to do until the socket is ready again.
    Waiting,
    /// The last round trip's echo is in and checked (the connection is now [`Stage::Idle`]).
    Echoed,
    /// The server closed the connection after loadgen shut down its side: done, and right.
    Closed,
}

pub struct Conn {
    pub id: u32,
    pub stream: TcpStream,
    pub stage: Stage,
    round: u32,
    rounds: u32,
    payload: Vec<u8>,
    sent: usize,
    received: usize,
    started: Instant,
}

/// What a connection's reads add to its thread's results.
#[derive(Default)]
pub struct Tally {
    pub latencies_us: Vec<u32>,
    pub bytes: u64,
}

impl Conn {
    pub fn new(id: u32, stream: TcpStream, rounds: u32, size: usize) -> Conn {
        Conn {
            id,
            stream,
            stage: Stage::Connecting,
            round: 0,
            rounds,
            payload: vec![0; size],
            sent: 0,
            received: 0,
            started: Instant::now(),
        }
    }

    /// The round trip in progress, counted from 1.
    pub fn round(&self) -> u32 {
        self.round + 1
    }

    /// Fills the payload for the next round trip and starts its clock.
    pub fn begin_round(&mut self) {
        fill(&mut self.payload, self.id, self.round);
        self.sent = 0;
        self.received = 0;
        self.stage = Stage::Sending;
        self.started = Instant::now();
    }

    /// Shuts down the sending side (the server reads end of file) and waits for its close.
    pub fn finish(&mut self) -> Result<(), String> {
        self.stage = Stage::Closing;
        self.stream.shutdown(Shutdown::Write).map_err(|e| {
            format!(
                "after the last round trip: shutdown failed: {}",
                describe(&e)
            )
        })
    }

    /// Does as much as the socket allows without waiting. `scratch` must hold more than one
    /// message, so that bytes beyond the echo are seen.
    pub fn advance(&mut self, scratch: &mut [u8], tally: &mut Tally) -> Result<Advance, String> {
        loop {
            match self.stage {
                Stage::Connecting => return Ok(Advance::Waiting),
                Stage::Sending => match self.stream.write(&self.payload[self.sent..]) {
                    Ok(n) => {
                        self.sent += n;
                        if self.sent == self.payload.len() {
                            self.stage = Stage::Receiving;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Advance::Waiting),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.failed("send", &e)),
                },
                Stage::Receiving => match self.stream.read(scratch) {
                    Ok(0) => {
                        return Err(format!(
                            "round trip {}: the server closed the connection after echoing {} of {} bytes",
                            self.round(),
                            self.received,
                            self.payload.len()
                        ));
                    }
                    Ok(n) => {
                        if self.check(&scratch[..n], tally)? {
                            return Ok(Advance::Echoed);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Advance::Waiting),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(self.failed("receive", &e)),
                },
                Stage::Idle | Stage::Closing => match self.stream.read(scratch) {
                    Ok(0) if self.stage == Stage::Closing => return Ok(Advance::Closed),
                    Ok(0) => {
                        return Err("after the last round trip: the server closed the connection while loadgen held it open (--hold)".to_owned());
                    }
                    Ok(n) => {
                        return Err(format!(
                            "after the last round trip: the server sent {n} more bytes, starting {} (an echo that adds bytes)",
                            shown(&scratch[..n])
                        ));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Advance::Waiting),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(format!(
                            "after the last round trip: receive failed: {}",
                            describe(&e)
                        ));
                    }
                },
            }
        }
    }

    /// Checks bytes that came back in a round trip. `Ok(true)`: the last round trip is done.
    fn check(&mut self, got: &[u8], tally: &mut Tally) -> Result<bool, String> {
        let due = self.payload.len() - self.received;
        let echo = &got[..got.len().min(due)];
        let expected = &self.payload[self.received..self.received + echo.len()];
        if let Some(at) = first_difference(expected, echo) {
            return Err(format!(
                "round trip {}: byte {} came back as 0x{:02x}, but 0x{:02x} was sent (a corrupted echo)",
                self.round(),
                self.received + at,
                echo[at],
                expected[at]
            ));
        }
        self.received += echo.len();
        tally.bytes += echo.len() as u64;
        if got.len() > due {
            return Err(format!(
                "round trip {}: the server sent {} bytes more than the {} it was sent, starting {} (an echo that adds bytes)",
                self.round(),
                got.len() - due,
                self.payload.len(),
                shown(&got[due..])
            ));
        }
        if self.received < self.payload.len() {
            return Ok(false);
        }
        let micros = self.started.elapsed().as_micros();
        tally
            .latencies_us
            .push(micros.min(u128::from(u32::MAX)) as u32);
        self.round += 1;
        if self.round == self.rounds {
            self.stage = Stage::Idle;
            return Ok(true);
        }
        self.begin_round();
        Ok(false)
    }

    fn failed(&self, what: &str, error: &std::io::Error) -> String {
        format!(
            "round trip {}: {what} failed: {}",
            self.round(),
            describe(error)
        )
    }
}
