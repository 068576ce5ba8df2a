//! Step 10: many clients at once.
//!
//! The seed's server is one loop: accept a client, talk to it until it leaves, accept the
//! next. While one client is connected, every other client waits. This program serves the
//! echo protocol of step 5 three ways:
//!
//! - `--model serial`: the seed's loop, unchanged in spirit.
//! - `--model threads`: one thread per client (std::thread).
//! - `--model poll`: one thread, non-blocking sockets, and a readiness loop: epoll, through
//!   the `mio` crate that Tokio is built on.
//!
//! Read it beside `lessons/10-many-clients.md`.

mod calls;
mod shortage;
mod voice;

use std::collections::HashMap;
use std::fmt;
use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tutor::cli::ServerAddress;
use tutor::observe::TcpState;
use tutor::{
    ColorWhen, Failure, Family, Narrator, Step, addr, interrupt, observe, per_client, sys,
};

use shortage::Shortage;

use voice::Voice;

const STEP: Step = Step {
    number: 10,
    crate_name: "step10_many_clients",
    title: "many clients at once",
    lesson: "lessons/10-many-clients.md",
};

/// Step 10 of the socket course: many clients at once.
///
/// An echo server (step 5's protocol: every byte comes back as it was sent, until the client
/// closes) in three models: serial (the seed's loop: one client at a time), threads (one
/// thread per client) and poll (one thread, non-blocking sockets, epoll through mio).
/// --demo shows each with two clients: the second one waits for the first under serial,
/// and does not under threads and poll. Measure them with scripts/bench.sh.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/10-many-clients.md")]
struct Cli {
    #[command(flatten)]
    address: ServerAddress,

    /// How the server serves many clients [default: serial; --demo alone shows all three]
    #[arg(long, value_enum)]
    model: Option<Model>,

    /// The backlog passed to listen()
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(0..=65535))]
    backlog: u32,

    /// Stop after serving this many clients [default: serve until Ctrl-C]
    #[arg(long, value_parser = tutor::cli::count::<u64>)]
    max_clients: Option<u64>,

    /// The most bytes one recv() may return (the size of the receive buffer)
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    bufsize: u32,

    /// Narrate every call of the first N clients; serve the rest silently
    #[arg(long, value_name = "N", default_value_t = 3)]
    narrate: u64,

    /// Run two clients in-process against each model and show what happens
    #[arg(long, conflicts_with_all = ["max_clients", "narrate"])]
    demo: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    color: ColorWhen,
}

/// `--model`: how one server serves many clients.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Model {
    /// The seed's loop: accept one client, serve it until it leaves, then the next
    Serial,
    /// One thread per client: each blocks in its own recv()
    Threads,
    /// One thread, non-blocking sockets, epoll (through mio) says which socket is ready
    Poll,
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Model::Serial => "serial",
            Model::Threads => "threads",
            Model::Poll => "poll",
        })
    }
}

/// How a model runs: the same for all three.
struct Settings {
    bufsize: usize,
    max_clients: Option<u64>,
    /// Clients numbered up to this are narrated call by call.
    narrate: u64,
    turns: Turns,
}

/// What a model did, for the summary.
#[derive(Default, Debug)]
struct Served {
    clients: u64,
    bytes: u64,
    /// The most threads serving clients at once (threads model).
    peak_threads: u64,
    /// epoll_wait calls, and the events they returned (poll model).
    waits: u64,
    events: u64,
}

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    interrupt::stop_on_ctrl_c(&say);
    let result = if cli.demo {
        demo(&say, &cli)
    } else {
        serve(&say, &cli)
    };
    tutor::finish(&say, result)
}

/// The server, as a learner runs it: listen, then serve with the chosen model.
fn serve(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let model = cli.model.unwrap_or(Model::Serial);
    let address = cli.address.resolve(say)?;
    let (listener, local) = listen(say, cli.address.family, &address, cli.backlog as i32)?;
    let settings = Settings {
        bufsize: cli.bufsize as usize,
        max_clients: cli.max_clients,
        narrate: cli.narrate,
        turns: Turns::none(),
    };
    if settings
        .max_clients
        .is_none_or(|max| max > settings.narrate)
    {
        say.note(format!(
            "clients after the first {} are served without narration (--narrate {}); a line marks every 10th, 100th, 1000th, ...",
            settings.narrate, settings.narrate
        ));
    }
    let served = run_model(model, say, &listener, &settings);
    let fd = listener.as_raw_fd();
    say.call(sys::close(fd), "drop(listener)");
    drop(listener);
    say.returned("done");
    interrupt::remove_socket_file(say, &local);
    summarise(say, model, &served?);
    Ok(())
}

fn run_model(
    model: Model,
    say: &Narrator,
    listener: &Socket,
    settings: &Settings,
) -> Result<Served, Failure> {
    match model {
        Model::Serial => serial(say, listener, settings),
        Model::Threads => threads(say, listener, settings),
        Model::Poll => poll(say, listener, settings),
    }
}

/// socket(), bind(), listen() and getsockname(), as steps 1 to 4 made them.
fn listen(
    say: &Narrator,
    family: Family,
    address: &SockAddr,
    backlog: i32,
) -> Result<(Socket, SockAddr), Failure> {
    let domain = family.domain();
    let protocol = match family {
        Family::Unix => None,
        _ => Some(Protocol::TCP),
    };
    say.call_socket(domain, Type::STREAM, protocol);
    let listener = say.check(Socket::new(domain, Type::STREAM, protocol))?;
    let fd = listener.as_raw_fd();
    say.returned(fd);
    say.call(sys::bind(fd, address), "listener.bind(&address)");
    say.check(interrupt::owned_bind(address, || listener.bind(address)))?;
    say.returned(0);
    say.call(
        sys::listen(fd, backlog),
        format!("listener.listen({backlog})"),
    );
    let listened = say.check(listener.listen(backlog));
    if listened.is_err() {
        interrupt::remove_socket_file(say, address);
    }
    listened?;
    say.returned(0);
    say.call(sys::getsockname(fd), "listener.local_addr()");
    let local = say.check(listener.local_addr())?;
    say.returned(addr::show(&local));
    say.ready("listening on", &local);
    Ok((listener, local))
}

// ---------------------------------------------------------------------------------------
// 1. serial: the seed's loop
// ---------------------------------------------------------------------------------------

/// What the serial model does when accept() finds no descriptor (see `shortage`).
const SERIAL_WAITS: &str = "the serial model holds no connection it could close to free one: it tries again in 250 ms (a pause, not a busy loop)";

/// accept, then echo until the client leaves, then accept the next. While one client is
/// served, the next waits in the kernel's accept queue: its connect() has succeeded, its
/// bytes sit in a receive buffer, and nobody reads them.
fn serial(say: &Narrator, listener: &Socket, settings: &Settings) -> Result<Served, Failure> {
    let fd = listener.as_raw_fd();
    let mut buf = vec![0u8; settings.bufsize];
    let mut served = Served::default();
    let mut shortage = Shortage::default();
    while settings.max_clients != Some(served.clients) {
        let number = served.clients + 1;
        // While out of descriptors, the retries are not narrated one by one.
        let voice = shortage.voice(say, number, settings.narrate);
        voice.call(|| sys::accept(fd), "listener.accept()");
        settings.turns.tell(Moment::Accepting {
            accepted: served.clients,
        });
        let accepted = listener.accept();
        settings.turns.wait_for_clients();
        let (conn, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) if per_client::is_per_client(&error) => {
                voice.error(&error);
                voice.note(per_client::client_gone(&error));
                continue;
            }
            Err(error) if per_client::is_out_of_descriptors(&error) => {
                shortage.began(say, fd, &error, SERIAL_WAITS);
                thread::sleep(shortage::PAUSE);
                continue;
            }
            Err(error) => return Err(voice.fail(|| sys::accept(fd), error)),
        };
        served.clients = number;
        let conn_fd = conn.as_raw_fd();
        voice.returned(format_args!(
            "{conn_fd}: client {number}, from {}",
            addr::show(&peer)
        ));
        shortage.ended(say, number);
        milestone(say, number, settings.narrate);

        served.bytes += echo_until_closed(&voice, &conn, &mut buf, number, &settings.turns);

        voice.call(|| sys::close(conn_fd), "drop(conn)");
        drop(conn);
        voice.returned("done: the next client can be accepted");
        settings.turns.tell(Moment::Closed { client: number });
    }
    Ok(served)
}

/// The echo loop of step 5, on a blocking socket: recv() waits for bytes, send() gives them
/// back, until recv() returns 0. Returns how many bytes were echoed. An error (a client that
/// resets the connection) ends this client, not the server.
fn echo_until_closed(
    say: &Voice,
    conn: &Socket,
    buf: &mut [u8],
    client: u64,
    turns: &Turns,
) -> u64 {
    let fd = conn.as_raw_fd();
    let mut echoed = 0u64;
    loop {
        say.call(|| sys::recv(fd, buf.len()), "(&conn).read(&mut buf)");
        turns.tell(Moment::Receiving { client, echoed });
        let received = (&*conn).read(buf);
        turns.wait_for_clients();
        let received = match received {
            Ok(0) => {
                say.returned("0: the client closed its side; no more bytes will come");
                return echoed;
            }
            Ok(n) => n,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => {
                say.error(&error);
                return echoed;
            }
        };
        say.returned(received);
        // send() may take fewer bytes than offered; a blocking socket waits for room, but
        // a signal can still cut it short. Loop until every byte is sent.
        let mut sent = 0;
        while sent < received {
            say.call(
                || sys::send(fd, &buf[sent..received]),
                "conn.send(&buf[sent..received])",
            );
            match conn.send(&buf[sent..received]) {
                Ok(n) => {
                    say.returned(n);
                    sent += n;
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => {
                    say.error(&error);
                    return echoed;
                }
            }
        }
        echoed += received as u64;
    }
}

// ---------------------------------------------------------------------------------------
// 2. threads: one thread per client
// ---------------------------------------------------------------------------------------

/// What the threads model does when accept() finds no descriptor (see `shortage`).
const THREADS_WAIT: &str = "the acceptor waits until a thread has closed its client's connection (at most 250 ms), then tries again; the other threads go on serving";

/// The acceptor accepts, and hands each client to a thread of its own, which runs the same
/// echo loop. A thread blocked in recv() blocks only itself: the kernel runs the others.
fn threads(say: &Narrator, listener: &Socket, settings: &Settings) -> Result<Served, Failure> {
    let fd = listener.as_raw_fd();
    let echoed = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicU64::new(0));
    let mut served = Served::default();
    let mut workers: Vec<thread::JoinHandle<()>> = Vec::new();
    let mut shortage = Shortage::default();
    // Each thread says here when it has closed its connection: a descriptor is free.
    let (closed, has_closed) = mpsc::channel::<()>();
    while settings.max_clients != Some(served.clients) {
        let number = served.clients + 1;
        // While out of descriptors, the retries are not narrated one by one.
        let voice = shortage.voice(say, number, settings.narrate);
        voice.call(|| sys::accept(fd), "listener.accept()");
        settings.turns.tell(Moment::Accepting {
            accepted: served.clients,
        });
        // Forget the closings of the past: only one after a failed accept() matters.
        while has_closed.try_recv().is_ok() {}
        let accepted = listener.accept();
        settings.turns.wait_for_clients();
        let (conn, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) if per_client::is_per_client(&error) => {
                voice.error(&error);
                voice.note(per_client::client_gone(&error));
                continue;
            }
            Err(error) if per_client::is_out_of_descriptors(&error) => {
                shortage.began(say, fd, &error, THREADS_WAIT);
                let _ = has_closed.recv_timeout(shortage::PAUSE);
                continue;
            }
            Err(error) => return Err(voice.fail(|| sys::accept(fd), error)),
        };
        served.clients = number;
        let conn_fd = conn.as_raw_fd();
        voice.returned(format_args!(
            "{conn_fd}: client {number}, from {}",
            addr::show(&peer)
        ));
        shortage.ended(say, number);
        milestone(say, number, settings.narrate);

        // A new thread for this client. It shares the process's memory and descriptors,
        // and gets a stack of its own (2 MiB of address space, touched as it grows).
        let thread_voice = match voice.narrator() {
            Some(narrator) => Voice::loud(narrator.actor(&format!("thread {number}"))),
            None => Voice::silent(),
        };
        let turns = settings.turns.clone();
        let (started, has_started) = mpsc::channel::<()>();
        let mut buf = vec![0u8; settings.bufsize];
        let echoed_total = Arc::clone(&echoed);
        let running_now = Arc::clone(&running);
        let closed = closed.clone();
        voice.call_via(
            "std",
            calls::clone_thread,
            "thread::Builder::new().spawn(move || echo_until_closed(..))",
        );
        running.fetch_add(1, Ordering::Relaxed);
        let spawned = thread::Builder::new()
            .name(format!("client {number}"))
            .spawn(move || {
                let echoed = echo_until_closed(
                    &thread_voice,
                    &conn,
                    &mut buf,
                    number,
                    &turns.signalling(started),
                );
                thread_voice.call(|| sys::close(conn_fd), "drop(conn)");
                drop(conn);
                let _ = closed.send(());
                thread_voice.returned("done: this thread ends");
                echoed_total.fetch_add(echoed, Ordering::Relaxed);
                running_now.fetch_sub(1, Ordering::Relaxed);
                turns.tell(Moment::Closed { client: number });
            });
        match spawned {
            Ok(handle) => {
                voice.returned(format_args!("thread {number} serves client {number}"));
                workers.push(handle);
            }
            Err(error) => {
                running.fetch_sub(1, Ordering::Relaxed);
                // No thread for this client (EAGAIN: too many threads): the closure, and
                // the connection in it, were dropped, which closes it.
                let error_voice = Voice::loud(say.clone());
                error_voice.error(&error);
                error_voice.note(format_args!(
                    "no thread for client {number}: its connection is closed"
                ));
                continue;
            }
        }
        if settings.turns.is_demo() {
            // (--demo only: let the new thread print its first call before the acceptor
            // prints its next one, so that the story reads the same on every run.)
            let _ = has_started.recv_timeout(Duration::from_secs(5));
        }
        served.peak_threads = served.peak_threads.max(running.load(Ordering::Relaxed) + 1);
        // Forget the threads that have ended (a long-running server must not keep them).
        workers.retain(|worker| !worker.is_finished());
    }
    say.note(format_args!(
        "--max-clients {} reached: no more accept(); waiting for the threads still serving",
        served.clients
    ));
    settings.turns.tell(Moment::Joining);
    for worker in workers {
        let _ = worker.join();
    }
    served.bytes = echoed.load(Ordering::Relaxed);
    Ok(served)
}

// ---------------------------------------------------------------------------------------
// 3. poll: one thread, non-blocking sockets, a readiness loop
// ---------------------------------------------------------------------------------------

/// What the poll model does when accept() finds no descriptor (see `shortage`).
const POLL_WAITS: &str = "the listener leaves the epoll set until a client leaves and frees a descriptor; watched, a level-triggered listener would wake the loop again at once, forever (a busy loop), and mio's edge-triggered one only when another client connects; the open clients go on being served";

/// The listener's token; clients get their number as theirs.
pub(crate) const LISTENER: Token = Token(0);

/// How many events one epoll_wait may return.
const EVENTS: usize = 1024;

/// One client of the poll model: its socket, and the bytes a partial write left over.
struct Client {
    number: u64,
    socket: Socket,
    say: Voice,
    /// Bytes received but not yet sent back. Empty, except after a partial write.
    unsent: Vec<u8>,
    /// Whether the socket is registered for WRITABLE too (only while `unsent` is not empty).
    wants_writable: bool,
    echoed: u64,
}

/// What to do with a client after its turn.
enum After {
    Wait,
    Close,
}

/// Nothing blocks: every socket is non-blocking, and the only place the thread waits is
/// epoll_wait, which returns the sockets that are ready. Each ready socket gets as much
/// work as it can take without waiting, then the loop waits again.
fn poll(say: &Narrator, listener: &Socket, settings: &Settings) -> Result<Served, Failure> {
    let listener_fd = listener.as_raw_fd();

    // 1. A non-blocking listener: accept() on an empty queue answers EAGAIN at once
    //    instead of waiting.
    say.call(
        calls::set_nonblocking(listener_fd),
        "listener.set_nonblocking(true)",
    );
    say.check(listener.set_nonblocking(true))?;
    say.returned(0);

    // 2. An epoll instance: the kernel's list of sockets to watch, and of those ready.
    let loud = Voice::loud(say.clone());
    loud.call_via("mio", calls::epoll_create1, "Poll::new()");
    let mut poll = say.check(Poll::new())?;
    let epfd = poll.as_raw_fd();
    say.returned(format_args!("{epfd}: an epoll instance, a descriptor too"));

    // 3. Watch the listener: it turns readable when a connection waits to be accepted.
    loud.call_via(
        "mio",
        || calls::epoll_ctl(epfd, "EPOLL_CTL_ADD", listener_fd, true, false, 0),
        "poll.registry().register(&mut SourceFd(&listener_fd), LISTENER, Interest::READABLE)",
    );
    say.check(
        poll.registry()
            .register(&mut SourceFd(&listener_fd), LISTENER, Interest::READABLE),
    )?;
    say.returned(0);
    say.note("mio registers edge-triggered (EPOLLET): an event means \"something changed\", so each turn must take everything there is, until EAGAIN");

    let mut events = Events::with_capacity(EVENTS);
    let mut clients: HashMap<Token, Client> = HashMap::new();
    // One receive buffer for all clients: the thread serves one at a time.
    let mut buf = vec![0u8; settings.bufsize];
    let mut served = Served::default();
    let mut accepting = true;
    // Out of descriptors: the listener is not watched until a client leaves.
    let mut paused = false;
    let mut shortage = Shortage::default();
    let say_all = say;
    // How many of the open clients are narrated (the loop narrates its wait while any is).
    let mut loud_clients = 0usize;

    while accepting || !clients.is_empty() {
        // 4. Wait until some socket is ready. The only call in this loop that waits.
        let voice = if served.clients < settings.narrate || loud_clients > 0 {
            Voice::loud(say.clone())
        } else {
            Voice::silent()
        };
        // Paused with no client to wake the loop: wait a while, then try accept() again.
        let timeout = (paused && clients.is_empty()).then_some(shortage::PAUSE);
        voice.call_via(
            "mio",
            || calls::epoll_wait(epfd, EVENTS, timeout),
            match timeout {
                None => "poll.poll(&mut events, None)",
                Some(_) => "poll.poll(&mut events, Some(shortage::PAUSE))",
            },
        );
        if settings.turns.is_demo() {
            settings.turns.tell(Moment::Polling {
                accepted: served.clients,
                open: clients.len(),
                echoed: served.bytes + clients.values().map(|c| c.echoed).sum::<u64>(),
            });
        }
        let polled = poll.poll(&mut events, timeout);
        settings.turns.wait_for_clients();
        match polled {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(voice.fail(|| calls::epoll_wait(epfd, EVENTS, timeout), error));
            }
        }
        served.waits += 1;
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
        served.events += ready.len() as u64;
        if voice.is_loud() {
            voice.returned(describe_events(&ready, &clients, listener_fd));
        }

        for (token, _readable, _writable) in ready {
            if token == LISTENER {
                // 5. The listener is ready: accept every connection that waits, until
                //    accept() answers EAGAIN (edge-triggered: no second reminder).
                while accepting {
                    if settings.max_clients == Some(served.clients) {
                        let voice = Voice::loud(say.clone());
                        voice.call_via(
                            "mio",
                            || {
                                calls::epoll_ctl(
                                    epfd,
                                    "EPOLL_CTL_DEL",
                                    listener_fd,
                                    false,
                                    false,
                                    0,
                                )
                            },
                            "poll.registry().deregister(&mut SourceFd(&listener_fd))",
                        );
                        say.check(poll.registry().deregister(&mut SourceFd(&listener_fd)))?;
                        voice.returned(format_args!(
                            "0: --max-clients {} reached, no more accept()",
                            served.clients
                        ));
                        accepting = false;
                        break;
                    }
                    let number = served.clients + 1;
                    let voice = Voice::within(say, number, settings.narrate);
                    voice.call(|| sys::accept(listener_fd), "listener.accept()");
                    let (socket, peer) = match listener.accept() {
                        Ok(accepted) => accepted,
                        Err(error) if error.kind() == ErrorKind::WouldBlock => {
                            voice.error(&error);
                            voice.note("the accept queue is empty: back to waiting");
                            break;
                        }
                        Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                        Err(error) if per_client::is_per_client(&error) => {
                            voice.error(&error);
                            voice.note(per_client::client_gone(&error));
                            continue;
                        }
                        Err(error) if per_client::is_out_of_descriptors(&error) => {
                            // Stop watching the listener until a client leaves (see
                            // `shortage`): nothing else can free a descriptor.
                            shortage.began(say, listener_fd, &error, POLL_WAITS);
                            let loud = Voice::loud(say.clone());
                            shortage::unwatch_listener(&loud, &poll, listener_fd)?;
                            paused = true;
                            break;
                        }
                        Err(error) => {
                            return Err(voice.fail(|| sys::accept(listener_fd), error));
                        }
                    };
                    served.clients = number;
                    let fd = socket.as_raw_fd();
                    voice.returned(format_args!(
                        "{fd}: client {number}, from {}",
                        addr::show(&peer)
                    ));
                    shortage.ended(say, number);
                    milestone(say, number, settings.narrate);

                    // The new socket is blocking, like every accepted socket: make it
                    // non-blocking, then watch it for bytes to read.
                    voice.call(
                        || calls::set_nonblocking(fd),
                        "socket.set_nonblocking(true)",
                    );
                    if let Err(error) = socket.set_nonblocking(true) {
                        return Err(voice.fail(|| calls::set_nonblocking(fd), error));
                    }
                    voice.returned(0);
                    voice.call_via(
                        "mio",
                        || calls::epoll_ctl(epfd, "EPOLL_CTL_ADD", fd, true, false, number as usize),
                        format_args!(
                            "poll.registry().register(&mut SourceFd(&fd), Token({number}), Interest::READABLE)"
                        ),
                    );
                    if let Err(error) = poll.registry().register(
                        &mut SourceFd(&fd),
                        Token(number as usize),
                        Interest::READABLE,
                    ) {
                        return Err(voice.fail(
                            || {
                                calls::epoll_ctl(
                                    epfd,
                                    "EPOLL_CTL_ADD",
                                    fd,
                                    true,
                                    false,
                                    number as usize,
                                )
                            },
                            error,
                        ));
                    }
                    voice.returned(0);
                    if voice.is_loud() {
                        loud_clients += 1;
                    }
                    clients.insert(
                        Token(number as usize),
                        Client {
                            number,
                            socket,
                            say: voice,
                            unsent: Vec::new(),
                            wants_writable: false,
                            echoed: 0,
                        },
                    );
                }
                continue;
            }

            // 6. A client's socket is ready: echo what can be echoed without waiting.
            let Some(client) = clients.get_mut(&token) else {
                continue;
            };
            let after = echo_what_is_ready(client, &mut buf, &poll, epfd);
            if let After::Close = after {
                // 7. Stop watching the socket, then close it.
                let Some(client) = clients.remove(&token) else {
                    continue;
                };
                let fd = client.socket.as_raw_fd();
                client.say.call_via(
                    "mio",
                    || calls::epoll_ctl(epfd, "EPOLL_CTL_DEL", fd, false, false, 0),
                    "poll.registry().deregister(&mut SourceFd(&fd))",
                );
                match poll.registry().deregister(&mut SourceFd(&fd)) {
                    Ok(()) => client.say.returned(0),
                    Err(error) => client.say.error(&error),
                }
                client.say.call(|| sys::close(fd), "drop(client.socket)");
                served.bytes += client.echoed;
                if client.say.is_loud() {
                    loud_clients -= 1;
                }
                let say = client.say.clone();
                drop(client);
                say.returned("done");
                if paused {
                    // A descriptor is free: watch the listener again. Registering it
                    // reports the connections already queued at once.
                    shortage::watch_listener(&Voice::loud(say_all.clone()), &poll, listener_fd)?;
                    paused = false;
                }
            }
        }
        if paused && clients.is_empty() {
            // Out of descriptors with no client of ours to free one: try again after the
            // pause epoll_wait has just made.
            shortage::watch_listener(&Voice::loud(say_all.clone()), &poll, listener_fd)?;
            paused = false;
        }
    }
    Ok(served)
}

/// One client's turn in the poll model: first send what a partial write left over, then
/// read and echo until the socket has nothing more to give (EAGAIN) or cannot take more.
/// A client that does not read its echoes fills its socket's send buffer: then send()
/// takes only part, or nothing (EAGAIN). The rest waits in `unsent`, the socket is watched
/// for WRITABLE, and nothing more is read from it until `unsent` is sent: the client
/// slows only itself, and the server's memory for it stays within one buffer.
fn echo_what_is_ready(client: &mut Client, buf: &mut [u8], poll: &Poll, epfd: RawFd) -> After {
    let fd = client.socket.as_raw_fd();
    let token = client.number as usize;
    let say = client.say.clone();
    loop {
        // a. Bytes left over from a partial write go first.
        if !client.unsent.is_empty() {
            say.call(
                || sys::send(fd, &client.unsent),
                "client.socket.send(&client.unsent)",
            );
            match client.socket.send(&client.unsent) {
                Ok(n) => {
                    say.returned(n);
                    client.unsent.drain(..n);
                    client.echoed += n as u64;
                    continue;
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    say.error(&error);
                    if !client.wants_writable {
                        say.note("the send buffer is full: watch for WRITABLE too, and read no more until it drains");
                        say.call_via(
                            "mio",
                            || calls::epoll_ctl(epfd, "EPOLL_CTL_MOD", fd, true, true, token),
                            "poll.registry().reregister(&mut SourceFd(&fd), token, Interest::READABLE | Interest::WRITABLE)",
                        );
                        match poll.registry().reregister(
                            &mut SourceFd(&fd),
                            Token(token),
                            Interest::READABLE | Interest::WRITABLE,
                        ) {
                            Ok(()) => say.returned(0),
                            Err(error) => {
                                say.error(&error);
                                return After::Close;
                            }
                        }
                        client.wants_writable = true;
                    }
                    return After::Wait;
                }
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => {
                    say.error(&error);
                    return After::Close;
                }
            }
        }
        if client.wants_writable {
            // Everything is sent: readable is enough again.
            say.call_via(
                "mio",
                || calls::epoll_ctl(epfd, "EPOLL_CTL_MOD", fd, true, false, token),
                "poll.registry().reregister(&mut SourceFd(&fd), token, Interest::READABLE)",
            );
            match poll
                .registry()
                .reregister(&mut SourceFd(&fd), Token(token), Interest::READABLE)
            {
                Ok(()) => say.returned(0),
                Err(error) => {
                    say.error(&error);
                    return After::Close;
                }
            }
            client.wants_writable = false;
        }

        // b. Read what the client sent. EAGAIN means there is nothing more: wait again.
        say.call(
            || sys::recv(fd, buf.len()),
            "(&client.socket).read(&mut buf)",
        );
        let received = match (&client.socket).read(buf) {
            Ok(0) => {
                say.returned("0: the client closed its side; no more bytes will come");
                return After::Close;
            }
            Ok(n) => n,
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                say.error(&error);
                say.note("nothing more to read: back to waiting");
                return After::Wait;
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => {
                say.error(&error);
                return After::Close;
            }
        };
        say.returned(received);

        // c. Echo it: send what the socket takes now, keep the rest for later.
        say.call(
            || sys::send(fd, &buf[..received]),
            "client.socket.send(&buf[..received])",
        );
        match client.socket.send(&buf[..received]) {
            Ok(n) => {
                say.returned(n);
                client.echoed += n as u64;
                if n < received {
                    say.note(format_args!(
                        "a partial write: {} bytes wait in this client's own buffer",
                        received - n
                    ));
                    client.unsent.extend_from_slice(&buf[n..received]);
                }
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                say.error(&error);
                client.unsent.extend_from_slice(&buf[..received]);
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => {
                client.unsent.extend_from_slice(&buf[..received]);
            }
            Err(error) => {
                say.error(&error);
                return After::Close;
            }
        }
    }
}

/// `2 events: listener (fd 3) readable; client 1 (fd 5) readable`
fn describe_events(
    ready: &[(Token, bool, bool)],
    clients: &HashMap<Token, Client>,
    listener_fd: RawFd,
) -> String {
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
            shown.push(format!("listener (fd {listener_fd}) {what}"));
        } else {
            match clients.get(token) {
                Some(client) if client.say.is_loud() => shown.push(format!(
                    "client {} (fd {}) {what}",
                    client.number,
                    client.socket.as_raw_fd()
                )),
                _ => silent += 1,
            }
        }
    }
    if silent > 0 {
        shown.push(format!("{silent} more (not narrated)"));
    }
    let count = ready.len();
    format!(
        "{count} event{}: {}",
        if count == 1 { "" } else { "s" },
        shown.join("; ")
    )
}

// ---------------------------------------------------------------------------------------
// Shared by the models
// ---------------------------------------------------------------------------------------

/// A line at the 10th, 100th, 1000th, ... client once narration has stopped.
fn milestone(say: &Narrator, number: u64, narrate: u64) {
    if number == narrate.saturating_add(1) {
        say.note(format_args!(
            "client {number} and later: served without narration (--narrate {narrate})"
        ));
    }
    if number > narrate && number >= 10 && is_power_of_ten(number) {
        say.say(format_args!("{number} clients accepted so far"));
    }
}

fn is_power_of_ten(mut n: u64) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

fn summarise(say: &Narrator, model: Model, served: &Served) {
    let mut line = format!(
        "served {} client{} ({model}), echoed {} bytes",
        served.clients,
        if served.clients == 1 { "" } else { "s" },
        served.bytes
    );
    match model {
        Model::Serial => line.push_str("; one at a time"),
        Model::Threads => line.push_str(&format!(
            "; at most {} threads at once (the acceptor and one per client)",
            served.peak_threads
        )),
        Model::Poll => line.push_str(&format!(
            "; one thread; {} epoll_wait calls returned {} events",
            served.waits, served.events
        )),
    }
    say.say(line);
}

// ---------------------------------------------------------------------------------------
// The demo: two clients against each model
// ---------------------------------------------------------------------------------------

/// Where a server is about to wait, told to the demo's clients (and to nobody otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Moment {
    /// About to wait in accept(), with `accepted` clients accepted so far.
    Accepting { accepted: u64 },
    /// About to wait in recv() for `client`, having echoed `echoed` bytes to it.
    Receiving { client: u64, echoed: u64 },
    /// About to wait in epoll_wait().
    Polling {
        accepted: u64,
        open: usize,
        echoed: u64,
    },
    /// `client`'s connection is closed.
    Closed { client: u64 },
    /// The acceptor takes no more clients and waits for its threads.
    Joining,
}

/// In --demo, the server and the clients take turns, so that the story prints in the same
/// order on every run:
///
/// - the server tells the clients each time it is about to wait (`tell`), and the clients
///   act only once the server has reached the moment they expect;
/// - when a call of the server returns, it prints the result only once the client whose
///   call woke it has printed its own (`wait_for_clients`).
///
/// Outside the demo nobody listens, and both do nothing.
#[derive(Clone)]
struct Turns {
    tell: Option<mpsc::Sender<(Moment, Option<String>)>>,
    /// Whether a client is in the middle of an action (its call and its result).
    acting: Option<Arc<(Mutex<bool>, Condvar)>>,
    /// (threads model) Also signalled at the first `tell` of a new thread.
    started: Option<mpsc::Sender<()>>,
}

impl Turns {
    /// Outside the demo: nobody listens.
    fn none() -> Turns {
        Turns {
            tell: None,
            acting: None,
            started: None,
        }
    }

    fn tell(&self, moment: Moment) {
        if let Some(tell) = &self.tell {
            // Which thread tells: "PID/task/TID" (see Stage::wait_for).
            let thread = std::fs::read_link("/proc/thread-self")
                .ok()
                .map(|path| path.display().to_string());
            let _ = tell.send((moment, thread));
        }
        if let Some(started) = &self.started {
            let _ = started.send(());
        }
    }

    /// Waits until no client is in the middle of an action (at most 10 s).
    fn wait_for_clients(&self) {
        if let Some(acting) = &self.acting {
            let (lock, changed) = &**acting;
            let Ok(guard) = lock.lock() else { return };
            let _ = changed.wait_timeout_while(guard, Duration::from_secs(10), |acting| *acting);
        }
    }

    fn is_demo(&self) -> bool {
        self.tell.is_some()
    }

    /// A copy that also signals `started` each time it tells (a new thread uses it so
    /// that the acceptor knows the thread has printed its first call).
    fn signalling(&self, started: mpsc::Sender<()>) -> Turns {
        Turns {
            started: Some(started),
            ..self.clone()
        }
    }
}

/// The clients' side of the turns.
struct Stage {
    moments: mpsc::Receiver<(Moment, Option<String>)>,
    acting: Arc<(Mutex<bool>, Condvar)>,
}

impl Stage {
    /// A stage, and the server's side of it.
    fn new() -> (Stage, Turns) {
        let (tell, moments) = mpsc::channel();
        let acting = Arc::new((Mutex::new(false), Condvar::new()));
        let turns = Turns {
            tell: Some(tell),
            acting: Some(Arc::clone(&acting)),
            started: None,
        };
        (Stage { moments, acting }, turns)
    }

    /// Runs one client action (its call, and the printing of its result) while the
    /// server holds back what it would print.
    fn act<T>(&self, action: impl FnOnce() -> T) -> T {
        self.set_acting(true);
        let result = action();
        self.set_acting(false);
        result
    }

    fn set_acting(&self, value: bool) {
        let (lock, changed) = &*self.acting;
        if let Ok(mut acting) = lock.lock() {
            *acting = value;
        }
        changed.notify_all();
    }

    /// Waits until the server reaches a moment (at most 10 s).
    fn wait_for(&self, wanted: Moment) -> Result<(), Failure> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.moments.recv_timeout(left) {
                Ok((moment, thread)) if moment == wanted => {
                    // The server told us just before its call; wait until it is inside it,
                    // asleep. (A blocked accept() has already reserved the descriptor its
                    // connection will get, so a client's socket() gets the next one.)
                    let blocks = !matches!(moment, Moment::Closed { .. } | Moment::Joining);
                    if let (true, Some(thread)) = (blocks, thread) {
                        wait_until(|| asleep(&thread));
                    }
                    return Ok(());
                }
                Ok(_) => continue,
                Err(_) => {
                    return Err(Failure::Peer(format!(
                        "the demo's server did not reach {wanted:?} within 10 s"
                    )));
                }
            }
        }
    }
}

fn demo(story: &Narrator, cli: &Cli) -> Result<(), Failure> {
    if cli.address.family != Family::Ipv4 || cli.address.port != 0 {
        return Err(Failure::Usage(
            "--demo runs on 127.0.0.1 with a port the kernel chooses; leave out --family and --port".into(),
        ));
    }
    let models = match cli.model {
        Some(model) => vec![model],
        None => vec![Model::Serial, Model::Threads, Model::Poll],
    };
    let mut waits = Vec::new();
    for model in &models {
        waits.push((*model, demo_model(story, *model, cli.bufsize as usize)?));
    }
    story.section("what happened");
    for (model, (waited, served)) in &waits {
        let how = match model {
            Model::Serial => format!(
                "client 2 waited {} ms for its echo: until client 1 left",
                waited.as_millis()
            ),
            Model::Threads => format!(
                "client 2 got its echo in {} ms, while client 1 was connected; {} threads at most",
                waited.as_millis(),
                served.peak_threads
            ),
            Model::Poll => format!(
                "client 2 got its echo in {} ms, while client 1 was connected; one thread, {} epoll_wait calls",
                waited.as_millis(),
                served.waits
            ),
        };
        story.say(format!("{:<8} {how}", model.to_string()));
    }
    Ok(())
}

/// One model's story: client 1 connects and says hello; client 2 connects and says hello
/// while client 1 is still connected; then client 1 leaves, then client 2.
fn demo_model(
    story: &Narrator,
    model: Model,
    bufsize: usize,
) -> Result<(Duration, Served), Failure> {
    story.section(format!("--model {model}"));
    let server_say = story.actor("server");
    let local_address = SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0)));
    let (listener, local) = listen(&server_say, Family::Ipv4, &local_address, 8)?;
    let (stage, turns) = Stage::new();
    let settings = Settings {
        bufsize,
        max_clients: Some(2),
        narrate: u64::MAX,
        turns,
    };
    let server = {
        let say = server_say.clone();
        thread::spawn(move || {
            let served = run_model(model, &say, &listener, &settings);
            let fd = listener.as_raw_fd();
            say.call(sys::close(fd), "drop(listener)");
            drop(listener);
            say.returned("done");
            served
        })
    };
    // What the server is doing once it has dealt with each client's move: the last moment
    // of its reaction, told just before it waits again.
    let expect = |serial: Option<Moment>, threads: Moment, poll: Moment| -> Result<(), Failure> {
        let wanted = match model {
            Model::Serial => serial,
            Model::Threads => Some(threads),
            Model::Poll => Some(poll),
        };
        match wanted {
            Some(moment) => stage.wait_for(moment),
            None => Ok(()),
        }
    };
    let polling = |accepted, open, echoed| Moment::Polling {
        accepted,
        open,
        echoed,
    };
    expect(
        Some(Moment::Accepting { accepted: 0 }),
        Moment::Accepting { accepted: 0 },
        polling(0, 0, 0),
    )?;

    let hello_1 = b"hello from client 1\n";
    let hello_2 = b"hello from client 2\n";
    let n = hello_1.len() as u64;

    // Client 1 connects and says hello.
    let say_1 = story.actor("client 1");
    let one = stage.act(|| connect(&say_1, &local))?;
    expect(
        Some(Moment::Receiving {
            client: 1,
            echoed: 0,
        }),
        Moment::Accepting { accepted: 1 },
        polling(1, 1, 0),
    )?;
    stage.act(|| send(&say_1, &one, hello_1))?;
    expect(
        Some(Moment::Receiving {
            client: 1,
            echoed: n,
        }),
        Moment::Receiving {
            client: 1,
            echoed: n,
        },
        polling(1, 1, n),
    )?;
    stage.act(|| receive(&say_1, &one))?;

    // Client 2 connects while client 1 stays connected, silent.
    let say_2 = story.actor("client 2");
    let two = stage.act(|| connect(&say_2, &local))?;
    expect(None, Moment::Joining, polling(2, 2, n))?;
    let kernel = story.actor("kernel");
    if model == Model::Serial {
        let listening = local.as_socket().expect("an IPv4 listener");
        let queued = wait_until(|| observe::accept_queue_len(listening) == Some(1));
        kernel.note(if queued {
            "client 2's connection is complete, but waits in the accept queue: the server is in recvfrom() on client 1"
        } else {
            "(the accept queue could not be read)"
        });
    }
    let timeout = Duration::from_millis(300);
    let fd_2 = two.as_raw_fd();
    say_2.call(
        sys::setsockopt(
            fd_2,
            "SOL_SOCKET",
            "SO_RCVTIMEO",
            format!("{} ms", timeout.as_millis()),
        ),
        format!("client.set_read_timeout(Some({timeout:?}))"),
    );
    say_2.check(two.set_read_timeout(Some(timeout)))?;
    say_2.returned(0);
    stage.act(|| send(&say_2, &two, hello_2))?;
    let sent_at = Instant::now();
    expect(
        None,
        Moment::Receiving {
            client: 2,
            echoed: n,
        },
        polling(2, 2, 2 * n),
    )?;
    if model == Model::Serial {
        // The server's end of client 2's connection: the one on the listening port that
        // holds unread bytes.
        let listening = local.as_socket().expect("an IPv4 listener");
        let unread = wait_until(|| {
            observe::tcp_sockets().is_ok_and(|all| {
                all.iter().any(|e| {
                    e.local == listening
                        && e.state == TcpState::Established
                        && e.rx_queue == n as u32
                })
            })
        });
        if unread {
            kernel.note(format_args!(
                "client 2's {n} bytes wait in the receive buffer of a connection nobody has accepted (Recv-Q {n})"
            ));
        }
    }
    let waited = match stage.act(|| receive(&say_2, &two))? {
        Some(_) => {
            say_2.note("the echo came back while client 1 is still connected");
            sent_at.elapsed()
        }
        None => {
            say_2.note(
                "no echo within 300 ms: the server is still blocked in recvfrom() on client 1",
            );
            Duration::ZERO
        }
    };

    // Client 1 leaves.
    stage.act(|| close(&say_1, one));
    expect(
        Some(Moment::Receiving {
            client: 2,
            echoed: n,
        }),
        Moment::Closed { client: 1 },
        polling(2, 1, 2 * n),
    )?;
    let waited = if model == Model::Serial {
        stage.act(|| receive(&say_2, &two))?;
        let waited = sent_at.elapsed();
        say_2.note(format_args!(
            "client 2 waited {} ms for its echo: until client 1 left and the server accepted client 2",
            waited.as_millis()
        ));
        waited
    } else {
        waited
    };

    // Client 2 leaves; the server has served --max-clients 2 and stops.
    stage.act(|| close(&say_2, two));
    let served = match server.join() {
        Ok(served) => served?,
        Err(_) => return Err(Failure::Peer("the demo's server thread panicked".into())),
    };
    summarise(&server_say, model, &served);
    Ok((waited, served))
}

/// A client's socket() and connect().
fn connect(say: &Narrator, address: &SockAddr) -> Result<Socket, Failure> {
    say.call_socket(Domain::IPV4, Type::STREAM, Some(Protocol::TCP));
    let socket = say.check(Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)))?;
    let fd = socket.as_raw_fd();
    say.returned(fd);
    say.call(sys::connect(fd, address), "client.connect(&address)");
    say.check(socket.connect(address))?;
    say.returned("0: connected (the kernel finished the handshake)");
    Ok(socket)
}

fn send(say: &Narrator, socket: &Socket, data: &[u8]) -> Result<(), Failure> {
    let fd = socket.as_raw_fd();
    say.call(sys::send(fd, data), "client.send(hello)");
    let sent = say.check(socket.send(data))?;
    say.returned(sent);
    Ok(())
}

/// A client's recv(): `Some(n)` with the echo, `None` when its read timeout passed first.
fn receive(say: &Narrator, socket: &Socket) -> Result<Option<usize>, Failure> {
    let fd = socket.as_raw_fd();
    let mut buf = [0u8; 64];
    say.call(sys::recv(fd, buf.len()), "(&client).read(&mut buf)");
    match (&*socket).read(&mut buf) {
        Ok(n) => {
            say.returned(format_args!("{n}: {}", sys::bytes(&buf[..n])));
            Ok(Some(n))
        }
        Err(error) if error.kind() == ErrorKind::WouldBlock => {
            say.error(&error);
            Ok(None)
        }
        Err(error) => Err(say.check::<()>(Err(error)).unwrap_err()),
    }
}

fn close(say: &Narrator, socket: Socket) {
    say.call(sys::close(socket.as_raw_fd()), "drop(client)");
    drop(socket);
    say.returned("done");
}

/// Whether a thread ("PID/task/TID") is asleep, in /proc/PID/task/TID/stat.
fn asleep(thread: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{thread}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('S'))
    })
}

/// Polls a condition on the kernel's tables, at most for a second.
fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
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
