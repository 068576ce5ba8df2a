//! The poll model: one thread, non-blocking sockets, a readiness loop.
//!
//! Nothing blocks: every socket is non-blocking, and the only place the thread waits is
//! epoll_wait, which returns the sockets that are ready. Each ready socket gets as much work
//! as it can take without waiting, then the loop waits again.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};

use mio::{Events, Interest, Poll, Token};
use socket2::Socket;
use tutor::narrate::Budget;
use tutor::{Failure, Narrator, narrate};

use crate::clients::{client_gone, is_clients_own, unheard};
use crate::moments::Moment;
use crate::shortage::{self, Shortage};
use crate::{Served, Settings, epoll, milestone};

/// What the poll model does when accept() finds no descriptor (see `shortage`).
const WAITS: &str = "the listener leaves the epoll set until a client leaves and frees a descriptor; watched, a level-triggered listener would wake the loop again at once, forever (a busy loop), and mio's edge-triggered one only when another client connects; the open clients go on being served";

/// The listener's token; clients get their number as theirs.
pub const LISTENER: Token = Token(0);

/// How many events one epoll_wait may return.
const EVENTS: usize = 1024;

/// One client of the poll model: its socket, and the bytes a partial write left over.
struct Client {
    number: u64,
    conn: Socket,
    say: Narrator,
    /// Bytes received but not yet sent back. Empty, except after a partial write.
    unsent: Vec<u8>,
    /// Whether the socket is registered for WRITABLE too (only while `unsent` is not empty).
    wants_writable: bool,
}

/// The loop's state.
struct Server<'a> {
    say: &'a Narrator,
    settings: &'a Settings,
    listener_fd: RawFd,
    poll: Poll,
    clients: HashMap<Token, Client>,
    served: Served,
    /// Whether clients are still accepted (until --max-clients).
    accepting: bool,
    /// Out of descriptors: the listener is not watched until a client leaves.
    paused: bool,
    shortage: Shortage,
    budget: Budget,
    /// The narrator of the next client, from the moment its accept() is narrated.
    next_say: Option<Narrator>,
    /// How many of the open clients are narrated (the loop narrates its wait while any is).
    loud_clients: usize,
}

pub fn serve(say: &Narrator, listener: Socket, settings: &Settings) -> Result<Served, Failure> {
    // 1. A non-blocking listener: accept() on an empty queue answers EAGAIN at once
    //    instead of waiting.
    narrate!(say, listener.set_nonblocking(true))?;

    // 2. An epoll instance: the kernel's list of sockets to watch, and of those ready.
    let poll = epoll::create(say)?;

    // 3. Watch the listener: it turns readable when a connection waits to be accepted.
    epoll::register(
        say,
        &poll,
        listener.as_raw_fd(),
        LISTENER,
        Interest::READABLE,
    )?;
    say.note("mio registers edge-triggered (EPOLLET): an event means \"something changed\", so each turn must take everything there is, until EAGAIN");

    let mut server = Server {
        say,
        listener_fd: listener.as_raw_fd(),
        settings,
        poll,
        clients: HashMap::new(),
        served: Served::default(),
        accepting: true,
        paused: false,
        shortage: Shortage::default(),
        budget: settings.budget(),
        next_say: None,
        loud_clients: 0,
    };
    let mut events = Events::with_capacity(EVENTS);
    // One receive buffer for all clients: the thread serves one at a time.
    let mut buf = vec![0u8; settings.bufsize];
    while server.accepting || !server.clients.is_empty() {
        // 4. Wait until some socket is ready. The only call in this loop that waits.
        let ready = server.wait(&mut events)?;
        for (token, _readable, _writable) in ready {
            if token == LISTENER {
                // 5. The listener is ready: accept every connection that waits.
                server.accept_all(&listener)?;
            } else if let Some(client) = server.clients.get_mut(&token) {
                // 6. A client's socket is ready: echo what can be echoed without waiting.
                let stays_open = take_turn(client, &mut buf, &server.poll, &mut server.served);
                if !stays_open {
                    // 7. The client has left: stop watching its socket, then close it.
                    server.close(token)?;
                }
            }
        }
        if server.paused && server.clients.is_empty() {
            // Out of descriptors with no client of ours to free one: try again after the
            // pause epoll_wait has just made.
            shortage::watch_listener(say, &server.poll, server.listener_fd)?;
            server.paused = false;
        }
    }
    narrate!(say, drop(listener));
    Ok(server.served)
}

impl Server<'_> {
    /// epoll_wait, narrated while a narrated client is open (or may still come); returns the
    /// ready tokens, and whether each is readable and writable.
    fn wait(&mut self, events: &mut Events) -> Result<Vec<(Token, bool, bool)>, Failure> {
        let say = if self.served.clients < self.settings.narrate || self.loud_clients > 0 {
            self.say.clone()
        } else {
            self.say.quiet()
        };
        // Paused with no client to wake the loop: wait a while, then try accept() again.
        let timeout = (self.paused && self.clients.is_empty()).then_some(shortage::PAUSE);
        let polling = Moment::Polling {
            accepted: self.served.clients,
            open: self.clients.len(),
            echoed: self.served.bytes,
        };
        let pause = self.settings.turns.at(polling);
        epoll::wait(&say, &mut self.poll, events, timeout, &pause)?;
        self.served.waits += 1;
        let ready: Vec<(Token, bool, bool)> = events
            .iter()
            .map(|e| {
                (
                    e.token(),
                    e.is_readable() || e.is_read_closed(),
                    e.is_writable(),
                )
            })
            .collect();
        self.served.events += ready.len() as u64;
        if say.is_loud() {
            say.returned(self.describe(&ready));
        }
        Ok(ready)
    }

    /// The listener's turn: accept every connection that waits, until accept() answers
    /// EAGAIN (edge-triggered: no second reminder).
    fn accept_all(&mut self, listener: &Socket) -> Result<(), Failure> {
        while self.accepting {
            if self.settings.max_clients == Some(self.served.clients) {
                let why = format!(
                    ": --max-clients {} reached, no more accept()",
                    self.served.clients
                );
                epoll::deregister(self.say, &self.poll, self.listener_fd, &why)?;
                self.accepting = false;
                break;
            }
            let number = self.served.clients + 1;
            let client_say = self
                .next_say
                .get_or_insert_with(|| self.budget.next(self.say))
                .clone();
            let accept_say = unheard(&client_say);
            let conn = match narrate!(accept_say, listener.accept()) {
                Ok((conn, _peer)) => conn,
                Err(failure) if failure.would_block() => {
                    accept_say.note("the accept queue is empty: back to waiting");
                    break;
                }
                Err(failure) if is_clients_own(&failure) => {
                    client_gone(&accept_say, &failure);
                    continue;
                }
                Err(failure) if Shortage::is_shortage(&failure) => {
                    // Stop watching the listener until a client leaves (see `shortage`):
                    // nothing else can free a descriptor.
                    self.shortage
                        .began(self.say, &self.listener_fd, &failure, WAITS);
                    shortage::unwatch_listener(self.say, &self.poll, self.listener_fd)?;
                    self.paused = true;
                    break;
                }
                Err(failure) => return Err(failure),
            };
            self.next_say = None;
            self.served.clients = number;
            self.shortage.ended(self.say, number);
            milestone(self.say, number, self.settings.narrate);

            // The new socket is blocking, like every accepted socket: make it
            // non-blocking, then watch it for bytes to read.
            narrate!(client_say, conn.set_nonblocking(true))?;
            let token = Token(number as usize);
            epoll::register(
                &client_say,
                &self.poll,
                conn.as_raw_fd(),
                token,
                Interest::READABLE,
            )?;
            if client_say.is_loud() {
                self.loud_clients += 1;
            }
            let client = Client {
                number,
                conn,
                say: client_say,
                unsent: Vec::new(),
                wants_writable: false,
            };
            self.clients.insert(token, client);
        }
        Ok(())
    }

    /// Stops watching a client's socket, then closes it. (A failed epoll_ctl is narrated;
    /// the socket is closed all the same, which unwatches it too.)
    fn close(&mut self, token: Token) -> Result<(), Failure> {
        let Some(Client { conn, say, .. }) = self.clients.remove(&token) else {
            return Ok(());
        };
        let say = unheard(&say);
        let _ = epoll::deregister(&say, &self.poll, conn.as_raw_fd(), "");
        narrate!(say, drop(conn));
        if say.is_loud() {
            self.loud_clients -= 1;
        }
        if self.paused {
            // A descriptor is free: watch the listener again. Registering it reports the
            // connections already queued at once.
            shortage::watch_listener(self.say, &self.poll, self.listener_fd)?;
            self.paused = false;
        }
        Ok(())
    }

    /// `2 events: listener (fd 3) readable; client 1 (fd 5) readable`
    fn describe(&self, ready: &[(Token, bool, bool)]) -> String {
        let mut shown = Vec::new();
        let mut silent = 0;
        for (token, readable, writable) in ready {
            let what = match (readable, writable) {
                (true, true) => "readable, writable",
                (true, false) => "readable",
                (false, true) => "writable",
                (false, false) => "error",
            };
            if *token == LISTENER {
                shown.push(format!("listener (fd {}) {what}", self.listener_fd));
                continue;
            }
            match self.clients.get(token) {
                Some(client) if client.say.is_loud() => shown.push(format!(
                    "client {} (fd {}) {what}",
                    client.number,
                    client.conn.as_raw_fd()
                )),
                _ => silent += 1,
            }
        }
        if silent > 0 {
            shown.push(format!("{silent} more (not narrated)"));
        }
        let count = ready.len();
        let plural = if count == 1 { "" } else { "s" };
        format!("{count} event{plural}: {}", shown.join("; "))
    }
}

/// One client's turn: first send what a partial write left over, then read and echo until
/// the socket has nothing more to give (EAGAIN) or cannot take more. Returns whether the
/// connection stays open.
///
/// A client that does not read its echoes fills its socket's send buffer: then send() takes
/// only part, or nothing (EAGAIN). The rest waits in `unsent`, the socket is watched for
/// WRITABLE, and nothing more is read from it until `unsent` is sent: the client slows only
/// itself, and the server's memory for it stays within one buffer.
fn take_turn(client: &mut Client, mut buf: &mut [u8], poll: &Poll, served: &mut Served) -> bool {
    let say = unheard(&client.say);
    let conn = &client.conn;
    let fd = conn.as_raw_fd();
    let token = Token(client.number as usize);
    loop {
        // a. Bytes left over from a partial write go first.
        if !client.unsent.is_empty() {
            match narrate!(say, conn.send(&client.unsent)) {
                Ok(n) => {
                    client.unsent.drain(..n);
                    served.bytes += n as u64;
                    continue;
                }
                Err(failure) if failure.would_block() => {
                    if !client.wants_writable {
                        say.note("the send buffer is full: watch for WRITABLE too, and read no more until it drains");
                        let both = Interest::READABLE | Interest::WRITABLE;
                        if epoll::reregister(&say, poll, fd, token, both).is_err() {
                            return false;
                        }
                        client.wants_writable = true;
                    }
                    return true;
                }
                Err(failure) => {
                    say.hint(&failure);
                    return false;
                }
            }
        }
        if client.wants_writable {
            // Everything is sent: readable is enough again.
            if epoll::reregister(&say, poll, fd, token, Interest::READABLE).is_err() {
                return false;
            }
            client.wants_writable = false;
        }

        // b. Read what the client sent. EAGAIN means there is nothing more: wait again.
        let received = match narrate!(say, (&conn).read(&mut buf)) {
            Ok(0) => {
                say.note("the client closed its side; no more bytes will come");
                return false;
            }
            Ok(n) => n,
            Err(failure) if failure.would_block() => {
                say.note("nothing more to read: back to waiting");
                return true;
            }
            Err(failure) => {
                say.hint(&failure);
                return false;
            }
        };

        // c. Echo it: send what the socket takes now, keep the rest for later.
        match narrate!(say, conn.send(&buf[..received])) {
            Ok(n) => {
                served.bytes += n as u64;
                if n < received {
                    say.note(format_args!(
                        "a partial write: {} bytes wait in this client's own buffer",
                        received - n
                    ));
                    client.unsent.extend_from_slice(&buf[n..received]);
                }
            }
            Err(failure) if failure.would_block() => {
                client.unsent.extend_from_slice(&buf[..received]);
            }
            Err(failure) => {
                say.hint(&failure);
                return false;
            }
        }
    }
}
