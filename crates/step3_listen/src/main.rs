//! Step 3: listen.
//!
//! `listen()` turns a bound socket into a server socket: from that moment the kernel answers
//! clients' handshakes by itself and queues the finished connections until the program calls
//! `accept()` (step 4). This program listens and never accepts, so you can watch that queue
//! fill up, and see what happens to the clients that find it full.
//!
//! Read it beside `lessons/03-listen.md`.

use std::io::Read;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::cli::ServerAddress;
use tutor::observe::{self, TcpState};
use tutor::{ColorWhen, Failure, Family, Narrator, SockType, Step, addr, interrupt, sys};

const STEP: Step = Step {
    number: 3,
    crate_name: "step3_listen",
    title: "listen: let the kernel queue connections",
    lesson: "lessons/03-listen.md",
};

/// Step 3 of the socket course: listen, and watch the accept queue.
///
/// Binds, calls listen(backlog), and never calls accept: the kernel completes the clients'
/// handshakes by itself and queues them. Without --demo it shows the queue live while you
/// connect clients from another terminal (scripts/connect-many.sh); with --demo it starts its
/// own clients and shows how many complete the handshake and what happens to the rest.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/03-listen.md")]
struct Cli {
    #[command(flatten)]
    address: ServerAddress,

    /// The backlog passed to listen(): how many finished connections may wait for accept()
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=65535))]
    backlog: u32,

    /// Socket type (listen works on streams only: try dgram to see it refused)
    #[arg(long = "type", value_name = "TYPE", value_enum, default_value_t = SockType::Stream)]
    sock_type: SockType,

    /// Start this many clients in-process, one after another [default: backlog + 3]
    #[arg(long, requires = "demo", value_parser = clap::value_parser!(u32).range(1..=10000))]
    clients: Option<u32>,

    /// How long each demo client waits for its handshake, in milliseconds
    #[arg(long, default_value_t = 500, requires = "demo", value_parser = clap::value_parser!(u64).range(1..=60000))]
    timeout_ms: u64,

    /// Connect clients in-process, show the queue fill up, then exit
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
    let result = listen(&say, &cli);
    tutor::finish(&say, result)
}

fn listen(story: &Narrator, cli: &Cli) -> Result<(), Failure> {
    // In the demo several actors speak, so the server's lines say "server".
    let say = &if cli.demo {
        story.actor("server")
    } else {
        story.clone()
    };
    let family = cli.address.family;
    let address = cli.address.resolve(say)?;
    let backlog = cli.backlog as i32;

    // 1. socket() and bind(), as in steps 1 and 2.
    let domain = family.domain();
    let ty = cli.sock_type.ty();
    let protocol = match (family, cli.sock_type) {
        (Family::Unix, _) => None,
        (_, SockType::Stream) => Some(Protocol::TCP),
        (_, SockType::Dgram) => Some(Protocol::UDP),
    };
    say.call_socket(domain, ty, protocol);
    let listener = say.check(Socket::new(domain, ty, protocol))?;
    let fd = listener.as_raw_fd();
    say.returned(fd);
    say.call(sys::bind(fd, &address), "listener.bind(&address)");
    say.check(interrupt::owned_bind(&address, || listener.bind(&address)))?;
    say.returned(0);

    // 2. listen(): the socket becomes a server socket. From now on the kernel answers
    //    handshakes for it and keeps each finished connection in the accept queue.
    say.call(
        sys::listen(fd, backlog),
        format!("listener.listen({backlog})"),
    );
    let listened = say.check(listener.listen(backlog));
    if listened.is_err() {
        interrupt::remove_socket_file(say, &address);
    }
    listened?;
    say.returned(0);
    // From here on, every number printed is the backlog the kernel applies.
    let applied = explain_backlog(say, cli.backlog);

    // 3. Which port? (With --port 0 the kernel chose it at bind.)
    say.call(sys::getsockname(fd), "listener.local_addr()");
    let local = say.check(listener.local_addr())?;
    say.returned(addr::show(&local));
    say.ready("listening on", &local);

    // 4. Nobody calls accept(). Watch the queue, or fill it with our own clients.
    let clients = if cli.demo {
        let count = cli.clients.unwrap_or(applied + 3);
        let timeout = Duration::from_millis(cli.timeout_ms);
        fill_the_queue(story, &local, applied, count, timeout)?
    } else {
        watch_the_queue(say, &local, applied);
        Vec::new()
    };

    // 5. Closing the listening socket ends the connections still in its queue: nobody
    //    accepted them, so the kernel resets them.
    say.call(sys::close(fd), "drop(listener)");
    drop(listener);
    say.returned("done");
    interrupt::remove_socket_file(say, &local);
    after_the_listener_closed(story, clients);
    Ok(())
}

/// The backlog the kernel really uses, and says so: at most net.core.somaxconn.
fn explain_backlog(say: &Narrator, backlog: u32) -> u32 {
    let somaxconn: Option<u32> = observe::sysctl("net.core.somaxconn").and_then(|v| v.parse().ok());
    match somaxconn {
        Some(max) if backlog > max => {
            say.note(format!(
                "the kernel caps the backlog at net.core.somaxconn = {max}, silently: it uses {max}, not {backlog}"
            ));
            max
        }
        Some(max) => {
            say.note(format!(
                "backlog {backlog} (the kernel would cap it at net.core.somaxconn = {max})"
            ));
            backlog
        }
        None => backlog,
    }
}

/// Connects `clients` clients one after another and never accepts them: each either
/// completes its handshake (the kernel queues it) or gets no answer within `timeout`.
fn fill_the_queue(
    say: &Narrator,
    local: &SockAddr,
    backlog: u32,
    clients: u32,
    timeout: Duration,
) -> Result<Vec<(i32, Socket)>, Failure> {
    let server = say.actor("server");
    let inet = local.as_socket();
    let mut connected: Vec<(i32, Socket)> = Vec::new();
    let mut unanswered = 0;
    let protocol = inet.map(|_| Protocol::TCP);
    for number in 1..=clients {
        let client = say.actor(&format!("client {number}"));
        client.call_socket(local.domain(), Type::STREAM, protocol);
        let socket = client.check(Socket::new(local.domain(), Type::STREAM, protocol))?;
        let fd = socket.as_raw_fd();
        client.returned(fd);

        // A send timeout (SO_SNDTIMEO) bounds how long a blocking connect() waits for the
        // handshake, so that a client the kernel does not answer gives up after `timeout`.
        client.call(
            sys::setsockopt(
                fd,
                "SOL_SOCKET",
                "SO_SNDTIMEO",
                format!("{} ms", timeout.as_millis()),
            ),
            format!("client.set_write_timeout(Some({timeout:?}))"),
        );
        client.check(socket.set_write_timeout(Some(timeout)))?;
        client.returned(0);
        let overflows_before = observe::netstat_counter("TcpExt", "ListenOverflows");
        client.call(sys::connect(fd, local), "client.connect(&address)");
        match socket.connect(local) {
            Ok(()) => {
                client.returned(
                    "0: connected. The kernel finished the handshake; nobody called accept()",
                );
                connected.push((fd, socket));
                if let Some(listening) = inet {
                    let queued = wait_for_queue(listening, connected.len() as u32);
                    server.note(format!(
                        "accept queue: {} connection(s) waiting for accept()",
                        queued.map_or("?".to_owned(), |n| n.to_string())
                    ));
                }
            }
            Err(error) => {
                unanswered += 1;
                client.error(&error);
                if inet.is_some() {
                    let overflows_after = observe::netstat_counter("TcpExt", "ListenOverflows");
                    if let (Some(before), Some(after)) = (overflows_before, overflows_after) {
                        server.note(format!(
                            "the queue is full, so the server's kernel dropped the SYN, and counted it: TcpExt ListenOverflows went up by {} (nstat -az TcpExtListenOverflows)",
                            after.saturating_sub(before)
                        ));
                    }
                }
                client.call(sys::close(fd), "drop(client)");
                drop(socket);
                client.returned("done");
            }
        }
    }

    say.section("what happened");
    say.say(format!(
        "backlog {backlog}: {} of {clients} clients completed the handshake, {unanswered} got no answer",
        connected.len()
    ));
    say.note(format!(
        "Linux queues backlog + 1 = {} finished connections. A full queue does not refuse a client:",
        backlog + 1
    ));
    say.note(if inet.is_some() {
        "its SYN gets no answer, and the client's kernel keeps resending it until connect gives up"
    } else {
        "a unix client's connect() waits for room in the queue (here until its SO_SNDTIMEO ran out)"
    });

    // Data can even be sent on a queued connection: the kernel buffers it for a program
    // that has not accepted the connection yet.
    if let Some((fd, first)) = connected.first() {
        let client = say.actor("client 1");
        let data = b"hello?";
        client.call(sys::send(*fd, data), "client.send(b\"hello?\")");
        let sent = client.check(first.send(data))?;
        client.returned(format!(
            "{sent}: into the server's receive buffer, though no program has accepted the connection"
        ));
    }
    Ok(connected)
}

/// What the queued clients see once the listener is gone: a reset.
fn after_the_listener_closed(say: &Narrator, clients: Vec<(i32, Socket)>) {
    for (number, (fd, socket)) in clients.into_iter().enumerate() {
        let client = say.actor(&format!("client {}", number + 1));
        if number == 0 {
            let mut buf = [0u8; 64];
            client.call(sys::recv(fd, buf.len()), "(&client).read(&mut buf)");
            match (&socket).read(&mut buf) {
                Ok(n) => client.returned(n),
                Err(error) => client.error(&error),
            }
        }
        client.call(sys::close(fd), "drop(client)");
        drop(socket);
        client.returned("done");
    }
}

/// Polls the kernel's socket table until the queue of the socket listening on `listening`
/// holds `expected` connections, at most for a second; returns what it last saw.
fn wait_for_queue(listening: SocketAddr, expected: u32) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let queued = observe::accept_queue_len(listening);
        if queued == Some(expected) || Instant::now() >= deadline {
            return queued;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Shows the accept queue live until Enter (or Ctrl-C), for clients started elsewhere.
fn watch_the_queue(say: &Narrator, local: &SockAddr, backlog: u32) {
    let Some(listening) = local.as_socket() else {
        say.say("the accept queue of a unix socket is not in /proc; `ss -xl` shows it as Recv-Q. Press Enter to stop.");
        observe::wait_for_enter();
        return;
    };
    say.say(format!(
        "nobody calls accept(). Connect clients from another terminal, e.g.\n  scripts/connect-many.sh {} {}\nand watch the queue (the kernel allows backlog + 1 = {}). Press Enter to stop.",
        listening.port(),
        backlog + 3,
        backlog + 1
    ));
    let (stop, stopped) = mpsc::channel();
    std::thread::spawn(move || {
        observe::wait_for_enter();
        let _ = stop.send(());
    });
    let mut last = None;
    loop {
        let queued = observe::accept_queue_len(listening).unwrap_or(0);
        let half_open = observe::tcp_sockets()
            .map(|all| {
                all.iter()
                    .filter(|e| e.local == listening && e.state == TcpState::SynRecv)
                    .count()
            })
            .unwrap_or(0);
        if last != Some((queued, half_open)) {
            let full = if queued > backlog {
                " (full: new SYNs are dropped)"
            } else {
                ""
            };
            say.say(format!(
                "accept queue: {queued} waiting for accept(){full}; half-open (SYN-RECV): {half_open}"
            ));
            last = Some((queued, half_open));
        }
        match stopped.recv_timeout(Duration::from_millis(100)) {
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            _ => break,
        }
    }
}
