//! One client thread: its share of the connections, driven by one readiness loop (mio).
//!
//! Every connection ends in exactly one way: closed cleanly after its last round trip, or
//! failed with one message (counted once, in the progress line and in the summary alike).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use tutor::explain::describe;

use crate::conn::{Advance, Conn, Stage, Tally};

/// Counters the client threads share with the progress line.
#[derive(Default)]
pub struct Shared {
    pub round_trips: AtomicU64,
    pub open: AtomicU64,
    pub peak_open: AtomicU64,
    pub errors: AtomicU64,
    /// Connections that have made all their round trips.
    pub finished: AtomicU64,
    /// Connections that have made all their round trips or failed before they could: when
    /// every one is, the server holds all that it will (for --hold).
    pub settled: AtomicU64,
    /// Set when every connection of every thread is settled (for --hold).
    pub release: AtomicBool,
}

/// What one client thread brings back.
#[derive(Default)]
pub struct Outcome {
    pub tally: Tally,
    /// One message per failed connection.
    pub errors: Vec<String>,
}

/// What every connection of one thread does.
pub struct Plan {
    pub address: SocketAddr,
    pub round_trips: u32,
    pub size: usize,
    pub hold: bool,
    /// How many connects may be in progress at once.
    pub burst: usize,
    pub deadline: Instant,
}

/// Runs the connections `ids` to the end and reports.
pub fn run(plan: &Plan, ids: Vec<u32>, shared: &Shared) -> Outcome {
    let mut client = Client {
        plan,
        shared,
        outcome: Outcome::default(),
        conns: HashMap::new(),
        connecting: 0,
        // Large enough to read past one message: bytes beyond the echo must be seen.
        scratch: vec![0u8; (plan.size + 1).max(65536)],
    };
    let mut waiting = ids.into_iter();
    let mut poll = match Poll::new() {
        Ok(poll) => poll,
        Err(error) => {
            let problem = format!("epoll_create1 failed: {}", describe(&error));
            waiting.for_each(|id| client.fail(id, Stage::Connecting, problem.clone()));
            return client.outcome;
        }
    };
    let mut events = Events::with_capacity(1024);
    let mut released = false;
    loop {
        client.start_connects(&poll, &mut waiting);
        if plan.hold && !released && shared.release.load(Ordering::Relaxed) {
            released = true;
            client.release();
        }
        if client.conns.is_empty() && waiting.len() == 0 {
            break;
        }
        let now = Instant::now();
        if now >= plan.deadline {
            client.give_up(waiting, "time limit");
            break;
        }
        let wait = (plan.deadline - now).min(Duration::from_millis(100));
        if let Err(error) = poll.poll(&mut events, Some(wait)) {
            if error.kind() == ErrorKind::Interrupted {
                continue;
            }
            client.give_up(waiting, &format!("epoll_wait failed: {}", describe(&error)));
            break;
        }
        for event in events.iter() {
            client.on_ready(event.token());
        }
    }
    client.outcome
}

struct Client<'a> {
    plan: &'a Plan,
    shared: &'a Shared,
    outcome: Outcome,
    conns: HashMap<Token, Conn>,
    connecting: usize,
    scratch: Vec<u8>,
}

impl Client<'_> {
    /// Starts connects, at most `burst` in progress at once.
    fn start_connects(&mut self, poll: &Poll, waiting: &mut impl Iterator<Item = u32>) {
        while self.connecting < self.plan.burst {
            let Some(id) = waiting.next() else { break };
            let mut stream = match TcpStream::connect(self.plan.address) {
                Ok(stream) => stream,
                Err(error) => {
                    let problem = format!("connect failed: {}", describe(&error));
                    self.fail(id, Stage::Connecting, problem);
                    continue;
                }
            };
            let token = Token(id as usize);
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(error) = poll.registry().register(&mut stream, token, interest) {
                let problem = format!("epoll_ctl failed: {}", describe(&error));
                self.fail(id, Stage::Connecting, problem);
                continue;
            }
            self.connecting += 1;
            let conn = Conn::new(id, stream, self.plan.round_trips, self.plan.size);
            self.conns.insert(token, conn);
        }
    }

    /// The socket of `token` is ready: do what can be done on it.
    fn on_ready(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.stage == Stage::Connecting {
            // A non-blocking connect is finished when the socket turns writable; then
            // SO_ERROR says whether it worked, and getpeername whether it is connected.
            let error = match conn.stream.take_error() {
                Ok(Some(error)) | Err(error) => Some(error),
                Ok(None) => match conn.stream.peer_addr() {
                    Ok(_) => None,
                    Err(error) if error.kind() == ErrorKind::NotConnected => return,
                    Err(error) => Some(error),
                },
            };
            self.connecting -= 1;
            if let Some(error) = error {
                self.end(token, Err(format!("connect failed: {}", describe(&error))));
                return;
            }
            let open = self.shared.open.fetch_add(1, Ordering::Relaxed) + 1;
            self.shared.peak_open.fetch_max(open, Ordering::Relaxed);
            conn.begin_round();
        }
        self.drive(token);
    }

    /// Advances the connection of `token` as far as its socket allows.
    fn drive(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let before = self.outcome.tally.latencies_us.len();
        let mut result = conn.advance(&mut self.scratch, &mut self.outcome.tally);
        let made = self.outcome.tally.latencies_us.len() - before;
        self.shared
            .round_trips
            .fetch_add(made as u64, Ordering::Relaxed);
        if result == Ok(Advance::Echoed) {
            self.shared.finished.fetch_add(1, Ordering::Relaxed);
            self.shared.settled.fetch_add(1, Ordering::Relaxed);
            if !self.plan.hold {
                result = conn
                    .finish()
                    .and_then(|()| conn.advance(&mut self.scratch, &mut self.outcome.tally));
            }
        }
        match result {
            Ok(Advance::Waiting | Advance::Echoed) => {}
            Ok(Advance::Closed) => self.end(token, Ok(())),
            Err(problem) => self.end(token, Err(problem)),
        }
    }

    /// Every connection is settled (--hold): close the idle ones, as without --hold.
    fn release(&mut self) {
        let idle: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, conn)| conn.stage == Stage::Idle)
            .map(|(token, _)| *token)
            .collect();
        for token in idle {
            let conn = self.conns.get_mut(&token).expect("an idle connection");
            match conn.finish() {
                Ok(()) => self.drive(token),
                Err(problem) => self.end(token, Err(problem)),
            }
        }
    }

    /// Ends every connection that is not done: `why` (a time limit, a failed epoll_wait).
    /// Idle ones (--hold, not yet released) made all their round trips and are not failures.
    fn give_up(&mut self, waiting: impl Iterator<Item = u32>, why: &str) {
        let mut left: Vec<(u32, Stage, u32)> = self
            .conns
            .values()
            .map(|conn| (conn.id, conn.stage, conn.round()))
            .collect();
        left.sort_unstable_by_key(|&(id, _, _)| id);
        for (id, stage, round) in left {
            let token = Token(id as usize);
            let problem = match stage {
                Stage::Idle => continue,
                Stage::Connecting => format!("{why}: the connect had not completed"),
                Stage::Sending | Stage::Receiving => format!(
                    "{why}: round trip {round} of {} had not finished",
                    self.plan.round_trips
                ),
                Stage::Closing => format!(
                    "{why}: the server had not closed the connection after loadgen shut down its side (an echo server closes when its client does)"
                ),
            };
            self.end(token, Err(problem));
        }
        for id in waiting {
            let problem = format!("{why}: not started (at most --connect-burst connects at once)");
            self.fail(id, Stage::Connecting, problem);
        }
    }

    /// The connection of `token` is done: closed cleanly, or failed with `result`'s message.
    fn end(&mut self, token: Token, result: Result<(), String>) {
        let Some(conn) = self.conns.remove(&token) else {
            return;
        };
        if conn.stage != Stage::Connecting {
            self.shared.open.fetch_sub(1, Ordering::Relaxed);
        }
        if let Err(problem) = result {
            self.fail(conn.id, conn.stage, problem);
        }
    }

    /// Counts connection `id` as failed, once, in the stage it had reached.
    fn fail(&mut self, id: u32, stage: Stage, problem: String) {
        self.shared.errors.fetch_add(1, Ordering::Relaxed);
        if !matches!(stage, Stage::Idle | Stage::Closing) {
            self.shared.settled.fetch_add(1, Ordering::Relaxed);
        }
        self.outcome
            .errors
            .push(format!("connection {}: {problem}", id + 1));
    }
}
