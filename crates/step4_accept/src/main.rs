//! Step 4: accept.
//!
//! A listening socket never carries a conversation. `accept()` takes one finished connection
//! out of its queue and returns a *new* socket for it, with a descriptor of its own, while
//! the listening socket goes on listening. If the queue is empty, `accept()` waits: the
//! program sleeps in the kernel until a client comes. This is the seed's outer loop:
//! socket, bind, listen, then accept, accept, accept.
//!
//! Each client here only gets one line and a close; the conversation itself is step 5.
//!
//! Read it beside `lessons/04-accept.md`.

mod turns;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::thread;

use clap::Parser;
use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::cli::ServerAddress;
use tutor::observe::{self, TcpState};
use tutor::{ColorWhen, Failure, Family, Narrator, Step, addr, interrupt, per_client, sys};

use turns::{Moment, Stage, Turns};

const STEP: Step = Step {
    number: 4,
    crate_name: "step4_accept",
    title: "accept: a new socket for each client",
    lesson: "lessons/04-accept.md",
};

/// How many clients the demo starts.
const DEMO_CLIENTS: u32 = 2;

/// Step 4 of the socket course: accept a client, and get a new socket for it.
///
/// Listens, then loops on accept(): each call waits until a client has connected and returns
/// a new socket for that client, beside the listening one. The server shows both sockets and
/// both addresses, greets the client with one line, and closes its socket (the conversation
/// is step 5). Connect from another terminal with `nc 127.0.0.1 PORT`. With --demo it starts
/// its own clients in-process.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/04-accept.md")]
struct Cli {
    #[command(flatten)]
    address: ServerAddress,

    /// The backlog passed to listen() (step 3)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=65535))]
    backlog: u32,

    /// Stop after accepting this many clients [default: accept until Ctrl-C; 2 with --demo]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_clients: Option<u32>,

    /// Start clients in-process (2, or --max-clients), accept each, then exit
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

/// The seed's server, up to its outer loop: socket, bind, listen, then accept clients one
/// after another.
fn serve(story: &Narrator, cli: &Cli) -> Result<(), Failure> {
    // In the demo the clients speak too, so the server's lines say "server".
    let say = &if cli.demo {
        story.actor("server")
    } else {
        story.clone()
    };
    let address = cli.address.resolve(say)?;
    let backlog = cli.backlog as i32;

    // 1. socket(), bind(), listen(): steps 1 to 3.
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

    // The demo's clients run in a thread of their own, taking turns with the server.
    let (turns, clients) = if cli.demo {
        let (turns, stage) = Turns::demo();
        let count = cli.max_clients.unwrap_or(DEMO_CLIENTS);
        let client_story = story.clone();
        let at = local.clone();
        let handle = thread::spawn(move || demo_clients(&client_story, &stage, &at, count));
        (turns, Some(handle))
    } else {
        say.say(format!(
            "connect from another terminal, e.g. {}",
            try_it(&local)
        ));
        (Turns::none(), None)
    };
    let max_clients = match (cli.demo, cli.max_clients) {
        (true, None) => Some(DEMO_CLIENTS),
        (_, max) => max,
    };

    // 2. The outer loop: one accept() per client.
    let mut accepted = 0;
    while max_clients.is_none_or(|max| accepted < max) {
        say.say(format!(
            "waiting in accept(): the program sleeps until a client has connected (client {})",
            accepted + 1
        ));
        say.call(sys::accept(fd), "listener.accept()");
        turns.tell(Moment::Accepting { accepted });
        let result = listener.accept();
        turns.wait_for_clients();
        // accept() returns a NEW socket, connected to this one client, and the client's
        // address. The listening socket is untouched: it goes on listening. (Linux passes on
        // the error of a connection that died in the queue: that client's, not the server's.)
        let (conn, peer) = match result {
            Err(error) if per_client::is_per_client(&error) => {
                say.error(&error);
                say.note(per_client::client_gone(&error));
                continue;
            }
            result => say.check(result)?,
        };
        accepted += 1;
        let conn_fd = conn.as_raw_fd();
        say.returned(format!(
            "{conn_fd}: a new socket for client {accepted}; the listening socket {fd} still listens"
        ));
        say.note(format!(
            "accept's second result, the client's address: {}",
            addr::show(&peer)
        ));
        match greet(say, &conn, &local, fd, accepted) {
            // A client that reset its connection before we got to it: its error, not ours.
            Err(Failure::Socket { error, .. }) if per_client::is_per_client(&error) => {
                say.note(per_client::client_gone(&error));
            }
            other => other?,
        }
        say.call(sys::close(conn_fd), "drop(conn)");
        drop(conn);
        say.returned("done: this client's socket is closed; the listening socket is not");
        turns.tell(Moment::Closed { client: accepted });
        turns.wait_for_clients();
    }

    // 3. The seed's last line, ss.close(): no more clients.
    say.say(format!(
        "accepted {accepted} client(s): --max-clients reached"
    ));
    say.call(sys::close(fd), "drop(listener)");
    drop(listener);
    say.returned("done");
    interrupt::remove_socket_file(say, &local);
    if let Some(handle) = clients {
        handle
            .join()
            .map_err(|_| Failure::Peer("the demo's client thread failed".into()))??;
    }
    Ok(())
}

/// One client's turn: both addresses of its socket, the kernel's table, and a greeting.
/// An error here is narrated and returned; the caller decides whose it is.
fn greet(
    say: &Narrator,
    conn: &Socket,
    local: &SockAddr,
    fd: i32,
    accepted: u32,
) -> Result<(), Failure> {
    let conn_fd = conn.as_raw_fd();
    // Each socket has two addresses: its own (getsockname) and its peer's (getpeername).
    say.call(sys::getpeername(conn_fd), "conn.peer_addr()");
    let peer = say.check(conn.peer_addr())?;
    say.returned(format!("{}: the client's end", addr::show(&peer)));
    if peer.is_unnamed() {
        say.note("a unix client that did not bind has no name: its address is empty");
    }
    say.call(sys::getsockname(conn_fd), "conn.local_addr()");
    let own = say.check(conn.local_addr())?;
    say.returned(format!(
        "{}: the server's end, the listening socket's address",
        addr::show(&own)
    ));
    show_socket_table(say, local, &peer, fd, conn_fd);

    // Greet the client (the caller closes its socket); step 5 holds a conversation instead.
    let greeting = format!("hello from step4, client {accepted}\n");
    say.call(
        sys::send(conn_fd, greeting.as_bytes()),
        "conn.send(greeting.as_bytes())",
    );
    match conn.send(greeting.as_bytes()) {
        Ok(sent) => say.returned(sent),
        // A client that has already gone is its own problem, not the server's.
        Err(error) => say.error(&error),
    }
    Ok(())
}

/// The kernel's socket table for the server's port, as `ss -tan` shows it: the listening
/// socket, and the connection accept() returned.
fn show_socket_table(say: &Narrator, local: &SockAddr, peer: &SockAddr, fd: i32, conn_fd: i32) {
    let (Some(listening), Some(client)) = (local.as_socket(), peer.as_socket()) else {
        say.note("unix sockets are not in /proc/net/tcp; `ss -xa` lists them");
        return;
    };
    let Ok(entries) = observe::tcp_sockets_on_port(listening.port()) else {
        return;
    };
    let mut lines = vec!["the kernel's socket table for this port (ss -tan):".to_owned()];
    if let Some(e) = entries
        .iter()
        .find(|e| e.state == TcpState::Listen && e.local == listening)
    {
        lines.push(format!(
            "  {:<6} {} <-> *:*  fd {fd}, the listening socket",
            e.state.name(),
            e.local
        ));
    }
    if let Some(e) = entries
        .iter()
        .find(|e| e.local == listening && e.remote == client)
    {
        lines.push(format!(
            "  {:<6} {} <-> {}  fd {conn_fd}, the new socket",
            e.state.name(),
            e.local,
            e.remote
        ));
    }
    say.note(lines.join("\n"));
}

/// What to type in another terminal to connect.
fn try_it(local: &SockAddr) -> String {
    match local.as_socket() {
        Some(inet) => format!("nc {} {}", inet.ip(), inet.port()),
        None => format!("nc -U {}", addr::show(local)),
    }
}

// ---- the demo's clients (step 7 looks at clients closely) ----

/// Connects `count` clients, one after another, each once the server sleeps in accept(),
/// and reads the line each is sent.
fn demo_clients(story: &Narrator, stage: &Stage, at: &SockAddr, count: u32) -> Result<(), Failure> {
    let lost = || Failure::Peer("the demo's server stopped taking turns".into());
    for number in 1..=count {
        let client = story.actor(&format!("client {number}"));
        if !stage.wait_for(Moment::Accepting {
            accepted: number - 1,
        }) {
            return Err(lost());
        }
        if number == 1 {
            let kernel = story.actor("kernel");
            let state = if stage.server_sleeps() {
                "S (sleeping)"
            } else {
                "not sleeping"
            };
            let (call, path) = stage.server_syscall();
            let call = match call {
                Some(n) if n == libc::SYS_accept4 => "accept4".to_owned(),
                Some(n) => format!("system call {n}"),
                None => "(unknown)".to_owned(),
            };
            kernel.say(format!(
                "the server's thread is {state}, inside {call} ({})",
                path.replace("self", &std::process::id().to_string())
            ));
        }
        let socket = connect(&client, at);
        stage.done();
        let socket = socket?;

        if !stage.wait_for(Moment::Closed { client: number }) {
            return Err(lost());
        }
        let fd = socket.as_raw_fd();
        let mut buf = [0u8; 128];
        for _ in 0..2 {
            client.call(sys::recv(fd, buf.len()), "(&client).read(&mut buf)");
            match (&socket).read(&mut buf) {
                Ok(0) => client.returned("0: the server closed the connection"),
                Ok(n) => client.returned(format!("{n}: {}", sys::bytes(&buf[..n]))),
                Err(error) => client.error(&error),
            }
        }
        client.call(sys::close(fd), "drop(client)");
        drop(socket);
        client.returned("done");
        stage.done();
    }
    Ok(())
}

/// socket(), connect(), and the client's own address.
fn connect(client: &Narrator, at: &SockAddr) -> Result<Socket, Failure> {
    let protocol = at.as_socket().map(|_| Protocol::TCP);
    client.call_socket(at.domain(), Type::STREAM, protocol);
    let socket = client.check(Socket::new(at.domain(), Type::STREAM, protocol))?;
    let fd = socket.as_raw_fd();
    client.returned(fd);
    client.call(sys::connect(fd, at), "client.connect(&address)");
    client.check(socket.connect(at))?;
    client.returned(0);
    client.call(sys::getsockname(fd), "client.local_addr()");
    let own = client.check(socket.local_addr())?;
    client.returned(format!("{}: the client's own address", addr::show(&own)));
    Ok(socket)
}
