//! Step 5: recv and send, an echo server.
//!
//! The seed's whole server: socket, bind, listen, then for each client accept, and recv and
//! send until the client has nothing more to say, then close. What the step shows is what
//! the two calls really promise: `recv(bufsize)` waits for bytes and returns at most bufsize
//! of them, leaving the rest in the kernel for the next call; TCP keeps no message
//! boundaries, so two sends can arrive as one recv and one send as several; `recv` returning
//! 0 means the peer closed; and `send` returns how many bytes the kernel took, which a
//! program that must send everything checks, and loops on.
//!
//! Read it beside `lessons/05-recv-send.md`.

mod turns;

use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::cli::ServerAddress;
use tutor::observe;
use tutor::{ColorWhen, Failure, Family, Narrator, Step, addr, explain, interrupt, sys};

use turns::{Moment, Stage, Turns};

const STEP: Step = Step {
    number: 5,
    crate_name: "step5_recv_send",
    title: "recv and send: an echo server",
    lesson: "lessons/05-recv-send.md",
};

/// recv()'s buffer without --bufsize, and with --demo (small, so the chunks show).
const BUFSIZE: u32 = 1024;
const DEMO_BUFSIZE: u32 = 8;

/// Step 5 of the socket course: recv and send: an echo server.
///
/// Accepts clients one at a time and sends back every byte each one sends, until it closes.
/// Every recv() and send() is narrated (the first --show-calls of each client; after that a
/// summary when the client leaves). --bufsize sets how many bytes one recv() may return: make
/// it small to watch a message arrive in pieces. Try it with `nc -N 127.0.0.1 PORT` or
/// `python3 scripts/seed_client.py 127.0.0.1 PORT hello`. With --demo a client in the same
/// process sends two messages and reads the echo.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/05-recv-send.md")]
struct Cli {
    #[command(flatten)]
    address: ServerAddress,

    /// The backlog passed to listen() (step 3)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=65535))]
    backlog: u32,

    /// Stop after serving this many clients [default: serve until Ctrl-C; 1 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_clients: Option<u32>,

    /// The most bytes one recv() may return, 1 to 1048576 [default: 1024; 8 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    bufsize: Option<u32>,

    /// Narrate the first N recv() calls of each client (and their sends), then only count
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    show_calls: u64,

    /// A client in-process sends two messages, reads the echo and closes; then exit
    #[arg(long)]
    demo: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    color: ColorWhen,
}

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    interrupt::stop_on_ctrl_c(&say);
    let result = serve(&say, &cli);
    tutor::finish(&say, result)
}

/// What one client's conversation amounted to, for the summary when it leaves.
#[derive(Default)]
struct Conversation {
    recvs: u64,
    sends: u64,
    short_sends: u64,
    echoed: u64,
    largest: usize,
    /// Bytes echoed since the last newline.
    after_newline: u64,
}

/// The seed's server: socket, bind, listen; then accept a client, recv and send until it
/// closes, close; and again.
fn serve(story: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let say = &if cli.demo {
        story.actor("server")
    } else {
        story.clone()
    };
    let bufsize = cli
        .bufsize
        .unwrap_or(if cli.demo { DEMO_BUFSIZE } else { BUFSIZE }) as usize;
    let address = cli.address.resolve(say)?;
    let backlog = cli.backlog as i32;

    // ss = socket(AF_INET, SOCK_STREAM); ss.bind(...); ss.listen(...)
    let domain = address.domain();
    let protocol = (cli.address.family != Family::Unix).then_some(Protocol::TCP);
    say.call_socket(domain, Type::STREAM, protocol);
    let listener = say.check(Socket::new(domain, Type::STREAM, protocol))?;
    let fd = listener.as_raw_fd();
    say.returned(fd);
    say.call(sys::bind(fd, &address), "listener.bind(&address)");
    say.check(interrupt::owned_bind(&address, || listener.bind(&address)))?;
    say.returned(0);
    say.call(
        sys::listen(fd, backlog),
        format!("listener.listen({backlog})"),
    );
    say.check(listener.listen(backlog))?;
    say.returned(0);
    say.call(sys::getsockname(fd), "listener.local_addr()");
    let local = say.check(listener.local_addr())?;
    say.returned(addr::show(&local));
    say.ready("listening on", &local);

    let (turns, client) = if cli.demo {
        let (turns, stage) = Turns::demo();
        let client_say = story.actor("client");
        let at = local.clone();
        (
            turns,
            Some(thread::spawn(move || demo_client(&client_say, &stage, &at))),
        )
    } else {
        say.say(format!(
            "talk to it from another terminal: {}",
            try_it(&local)
        ));
        (Turns::none(), None)
    };
    let max_clients = cli.max_clients.or(cli.demo.then_some(1));

    // One buffer for every recv: recv(bufsize) in the seed's Python.
    let mut buf = vec![0u8; bufsize];
    let mut served = 0;
    // inf_loop: the server's endless loop.
    while max_clients.is_none_or(|max| served < max) {
        let client = served + 1;
        say.say(format!("waiting in accept() for client {client}"));
        say.call(sys::accept(fd), "listener.accept()");
        turns.tell(Moment::Accepting { accepted: served });
        let accepted = listener.accept();
        turns.wait_for_clients();
        let (conn, peer) = say.check(accepted)?;
        served += 1;
        let conn_fd = conn.as_raw_fd();
        say.returned(format!(
            "{conn_fd}: client {client}, at {}",
            addr::show(&peer)
        ));

        // comm_loop: recv, send back, until the client closes.
        let mut talk = Conversation::default();
        let ended = 'conversation: loop {
            let loud = talk.recvs < cli.show_calls;
            if talk.recvs == cli.show_calls && cli.show_calls > 0 {
                say.note(format!(
                    "(the next recv() and send() calls of client {client} are not shown: --show-calls {}; a summary follows when it leaves)",
                    cli.show_calls
                ));
            }
            let recv_call = || {
                say.call(sys::recv(conn_fd, bufsize), "(&conn).read(&mut buf)");
            };
            if loud {
                recv_call();
            }
            turns.tell(Moment::Receiving {
                client,
                echoed: talk.echoed,
            });
            let received = (&conn).read(&mut buf);
            turns.wait_for_clients();
            let n = match received {
                Ok(0) => {
                    if !loud {
                        recv_call();
                    }
                    say.returned("0: the client closed its side: no more bytes will come");
                    break 'conversation None;
                }
                Ok(n) => n,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => {
                    if !loud {
                        recv_call();
                    }
                    say.error(&error);
                    break 'conversation Some(error);
                }
            };
            talk.recvs += 1;
            talk.largest = talk.largest.max(n);
            if loud {
                say.returned(format!("{n}: {}", sys::bytes(&buf[..n])));
                if n == buf.len() {
                    say.note(
                        "the buffer is full: whatever else has arrived waits in the kernel for the next recv()",
                    );
                }
            }

            // send() may take fewer bytes than it is given: send the rest until none is left
            // (Python's sendall, Rust's write_all).
            let mut sent = 0;
            while sent < n {
                if loud {
                    say.call(
                        sys::send(conn_fd, &buf[sent..n]),
                        "conn.send(&buf[sent..n])",
                    );
                }
                match conn.send(&buf[sent..n]) {
                    Ok(taken) => {
                        talk.sends += 1;
                        if loud {
                            say.returned(taken);
                        }
                        if taken < n - sent {
                            talk.short_sends += 1;
                            if loud {
                                say.note(format!(
                                    "a short send: the kernel took {taken} of {} bytes; the loop sends the rest",
                                    n - sent
                                ));
                            }
                        }
                        sent += taken;
                    }
                    Err(error) if error.kind() == ErrorKind::Interrupted => {}
                    Err(error) => {
                        if !loud {
                            say.call(
                                sys::send(conn_fd, &buf[sent..n]),
                                "conn.send(&buf[sent..n])",
                            );
                        }
                        say.error(&error);
                        break 'conversation Some(error);
                    }
                }
            }
            talk.echoed += n as u64;
            talk.after_newline = match buf[..n].iter().rposition(|&b| b == b'\n') {
                Some(at) => (n - at - 1) as u64,
                None => talk.after_newline + n as u64,
            };
        };
        summarise(say, client, bufsize, &talk, ended.as_ref());

        // cs.close()
        say.call(sys::close(conn_fd), "drop(conn)");
        drop(conn);
        say.returned("done");
    }

    // ss.close()
    say.say(format!("served {served} client(s): --max-clients reached"));
    say.call(sys::close(fd), "drop(listener)");
    drop(listener);
    say.returned("done");
    interrupt::remove_socket_file(say, &local);
    if let Some(handle) = client {
        handle
            .join()
            .map_err(|_| Failure::Peer("the demo's client failed".into()))??;
    }
    Ok(())
}

/// One line on how a client's conversation went, and how it ended.
fn summarise(
    say: &Narrator,
    client: u32,
    bufsize: usize,
    talk: &Conversation,
    ended: Option<&std::io::Error>,
) {
    say.say(format!(
        "client {client}: {} bytes echoed; {} recv() calls returned data, the largest {} bytes (bufsize {bufsize}); {} send() calls, {} of them short",
        talk.echoed, talk.recvs, talk.largest, talk.sends, talk.short_sends
    ));
    match ended {
        Some(error) => say.say(format!(
            "client {client} is gone ({}): the server closes its socket and goes on to the next client",
            explain::error_name(error)
        )),
        None if talk.after_newline > 0 => say.say(format!(
            "client {client} closed {} bytes after its last newline: if it spoke in lines, it left in mid-message",
            talk.after_newline
        )),
        None => {}
    }
}

/// What to type in another terminal to talk to the server.
fn try_it(local: &SockAddr) -> String {
    match local.as_socket() {
        Some(inet) => format!(
            "nc -N {ip} {port}   or   python3 scripts/seed_client.py {ip} {port} hello",
            ip = inet.ip(),
            port = inet.port()
        ),
        None => format!("nc -NU {}", addr::show(local)),
    }
}

// ---- the demo's client (step 7 looks at clients closely) ----

/// The demo's client: connects while the server sleeps in accept(), sends two messages at
/// once, waits until the server has echoed them all and sleeps in recv() again, reads the
/// echo, and closes.
fn demo_client(say: &Narrator, stage: &Stage, at: &SockAddr) -> Result<(), Failure> {
    let lost = || Failure::Peer("the demo's server stopped taking turns".into());
    let messages: [&[u8]; 2] = [b"hello\n", b"a longer message\n"];
    let total: usize = messages.iter().map(|m| m.len()).sum();

    if !stage.wait_for(Moment::Accepting { accepted: 0 }) {
        return Err(lost());
    }
    let talked = talk(say, at, &messages);
    if let Ok((_, own)) = &talked {
        wait_until_queued(own, at, total, Side::Server);
    }
    stage.done();
    let (socket, own) = talked?;

    // The server has echoed everything and sleeps in recv() for more.
    if !stage.wait_for(Moment::Receiving {
        client: 1,
        echoed: total as u64,
    }) {
        return Err(lost());
    }
    wait_until_queued(&own, at, total, Side::Client);
    let fd = socket.as_raw_fd();
    let mut buf = [0u8; 64];
    say.call(sys::recv(fd, buf.len()), "(&client).read(&mut buf)");
    match (&socket).read(&mut buf) {
        Ok(n) => say.returned(format!("{n}: {}", sys::bytes(&buf[..n]))),
        Err(error) => say.error(&error),
    }
    say.call(sys::close(fd), "drop(client)");
    drop(socket);
    say.returned("done: the server's recv() returns 0");
    stage.done();
    Ok(())
}

/// socket(), connect(), the client's own address, and one send() per message, back to back.
fn talk(say: &Narrator, at: &SockAddr, messages: &[&[u8]]) -> Result<(Socket, SockAddr), Failure> {
    let protocol = at.as_socket().map(|_| Protocol::TCP);
    say.call_socket(at.domain(), Type::STREAM, protocol);
    let socket = say.check(Socket::new(at.domain(), Type::STREAM, protocol))?;
    let fd = socket.as_raw_fd();
    say.returned(fd);
    say.call(sys::connect(fd, at), "client.connect(&address)");
    say.check(socket.connect(at))?;
    say.returned(0);
    say.call(sys::getsockname(fd), "client.local_addr()");
    let own = say.check(socket.local_addr())?;
    say.returned(format!("{}: the client's own address", addr::show(&own)));
    for message in messages {
        say.call(
            sys::send(fd, message),
            format!("client.send(b{})", sys::bytes(message)),
        );
        let sent = say.check(socket.send(message))?;
        say.returned(sent);
    }
    Ok((socket, own))
}

#[derive(Clone, Copy)]
enum Side {
    Server,
    Client,
}

/// Waits (at most two seconds) until `bytes` bytes wait unread at one end of the client's TCP
/// connection, as the kernel's socket table shows (Recv-Q in `ss -tan`). On loopback the
/// bytes are there almost at once; waiting makes the demo's story the same on every run. A
/// unix socket delivers within send() itself, and is not in the table.
fn wait_until_queued(own: &SockAddr, at: &SockAddr, bytes: usize, side: Side) {
    let (Some(server), Some(client)) = (at.as_socket(), own.as_socket()) else {
        return;
    };
    let (local, remote) = match side {
        Side::Server => (server, client),
        Side::Client => (client, server),
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let queued = observe::tcp_sockets_on_port(server.port())
            .unwrap_or_default()
            .into_iter()
            .find(|e| e.local == local && e.remote == remote)
            .map(|e| e.rx_queue as usize);
        if queued == Some(bytes) {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
}
