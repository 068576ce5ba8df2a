//! Step 6: close.
//!
//! A TCP connection carries data both ways, and each end closes its own direction: it sends
//! a FIN, "I will send nothing more". `shutdown(SHUT_WR)` sends the FIN and keeps the socket,
//! so the peer can still answer; `close()` sends the FIN and gives the socket up, so whatever
//! the peer sends after that is answered with a reset (RST). A close that throws away unread
//! data, or one with SO_LINGER 0, sends only the reset. And the end whose FIN went first keeps
//! the connection in TIME-WAIT for a minute, which is why a restarted server needs
//! SO_REUSEADDR.
//!
//! Read it beside `lessons/06-close.md`.

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::cli::ServerAddress;
use tutor::observe::{self, TcpState};
use tutor::{ColorWhen, Failure, Family, Narrator, Step, addr, interrupt, sys};

const STEP: Step = Step {
    number: 6,
    crate_name: "step6_close",
    title: "close: end a connection",
    lesson: "lessons/06-close.md",
};

/// The backlog for listen(): this step is not about the accept queue (step 3 is).
const BACKLOG: i32 = 8;

/// The most bytes one recv() may return.
const BUF: usize = 1024;

/// How the server ends a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum How {
    /// close(): a FIN; once the client closes too, the server's end waits in TIME-WAIT
    Close,
    /// shutdown(SHUT_WR): a FIN, but the server keeps reading until the client closes
    Shutdown,
    /// SO_LINGER 0, then close(): an abortive close, a reset (RST) and no TIME-WAIT
    Linger0,
}

/// Step 6 of the socket course: end a connection: close, shutdown, a reset, TIME-WAIT.
///
/// A server that reads one message from each client, echoes it, and ends the connection the
/// way --how says: close (a FIN), shutdown (a half-close: the client can still send), or
/// linger0 (an abortive close: a reset). Watch the connections with `ss -tan`. With --demo
/// it plays both ends in one process and shows, part by part, what each end sees and what
/// the kernel's socket table says.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/06-close.md")]
struct Cli {
    #[command(flatten)]
    address: ServerAddress,

    /// How the server ends each connection
    #[arg(long, value_enum, default_value_t = How::Close)]
    how: How,

    /// Set SO_REUSEADDR before bind(), so that a restarted server can bind its port while its old connections wait in TIME-WAIT
    #[arg(long)]
    reuse_address: bool,

    /// Stop after serving this many clients [default: serve until Ctrl-C]
    #[arg(long, value_parser = tutor::cli::count::<u32>)]
    max_clients: Option<u32>,

    /// Play both ends in-process: five ways a connection ends, then exit
    #[arg(long, conflicts_with_all = ["how", "reuse_address", "max_clients", "port", "path"])]
    demo: bool,

    /// With --demo, only this part: 1 shutdown, 2 close, 3 unread data, 4 SO_LINGER 0, 5 TIME-WAIT
    #[arg(long, requires = "demo", value_parser = clap::value_parser!(u8).range(1..=5))]
    part: Option<u8>,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    color: ColorWhen,
}

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    interrupt::stop_on_ctrl_c(&say);
    let result = if cli.address.family == Family::Unix {
        Err(Failure::Usage(
            "--family unix: this step is about how TCP ends a connection (FIN, RST, TIME-WAIT), which unix sockets do not have; use ipv4 or ipv6".into(),
        ))
    } else if cli.demo {
        demo(&say, &cli)
    } else {
        serve(&say, &cli)
    };
    tutor::finish(&say, result)
}

/// Both ends of each connection, played in one thread, one call at a time. Every call either
/// returns at once or waits for something an earlier call has already set going, so the
/// story is the same on every run.
fn demo(story: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let server = story.actor("server");
    let address = cli.address.resolve(&server)?;
    let (listener, local) = listen(&server, &address)?;
    let wanted = |part: u8| cli.part.is_none_or(|only| only == part);
    if wanted(1) {
        half_close(story, &listener, &local)?;
    }
    if wanted(2) {
        close_then_write(story, &listener, &local)?;
    }
    if wanted(3) {
        close_with_unread_data(story, &listener, &local)?;
    }
    if wanted(4) {
        abortive_close(story, &listener, &local)?;
    }
    if wanted(5) {
        return time_wait_and_restart(story, listener, &local);
    }
    // The seed's last line, ss.close(): the listening socket goes too.
    server.call(sys::close(listener.as_raw_fd()), "drop(listener)");
    drop(listener);
    server.returned("done");
    Ok(())
}

/// The demo's server socket: socket(), SO_REUSEADDR, bind(), listen(), as every server should
/// (part 5 shows why SO_REUSEADDR).
fn listen(server: &Narrator, address: &SockAddr) -> Result<(Socket, SockAddr), Failure> {
    let protocol = Some(Protocol::TCP);
    server.call_socket(address.domain(), Type::STREAM, protocol);
    let listener = server.check(Socket::new(address.domain(), Type::STREAM, protocol))?;
    let fd = listener.as_raw_fd();
    server.returned(fd);
    server.call(
        sys::setsockopt(fd, "SOL_SOCKET", "SO_REUSEADDR", 1),
        "listener.set_reuse_address(true)",
    );
    server.check(listener.set_reuse_address(true))?;
    server.returned("0: as every server should (part 5 shows why)");
    server.call(sys::bind(fd, address), "listener.bind(&address)");
    server.check(listener.bind(address))?;
    server.returned(0);
    server.call(
        sys::listen(fd, BACKLOG),
        format!("listener.listen({BACKLOG})"),
    );
    server.check(listener.listen(BACKLOG))?;
    server.returned(0);
    server.call(sys::getsockname(fd), "listener.local_addr()");
    let local = server.check(listener.local_addr())?;
    server.returned(addr::show(&local));
    server.ready("listening on", &local);
    Ok((listener, local))
}

/// Part 1. The client sends its request and shuts down its sending half. The server reads to
/// end of file, which tells it the request is complete, and answers over the half still open.
fn half_close(story: &Narrator, listener: &Socket, local: &SockAddr) -> Result<(), Failure> {
    story.section("1. shutdown(SHUT_WR): the client half-closes, and still gets its answer");
    let (server, client_say, kernel) = actors(story);
    let (client, conn, ends) = connect(story, listener, local)?;
    let fd = client.as_raw_fd();
    let _ = write(&client_say, &client, "client", b"what time is it?");

    // shutdown(SHUT_WR) closes one direction only: the kernel sends a FIN after the data,
    // and the socket stays open for reading.
    client_say.call(
        sys::shutdown(fd, Shutdown::Write),
        "client.shutdown(Shutdown::Write)",
    );
    client_say.check(client.shutdown(Shutdown::Write))?;
    client_say.returned("0: a FIN follows the data: the client will send nothing more");
    table(
        &kernel,
        &ends,
        Some(TcpState::CloseWait),
        Some(TcpState::FinWait2),
    );

    // The server reads until recv() returns 0: end of file, the request is complete.
    let _ = read(&server, &conn, "conn");
    if let Ok(0) = read(&server, &conn, "conn") {
        server.note(
            "the client will send no more, so the request is complete; the server can still answer",
        );
    }
    let _ = write(&server, &conn, "conn", b"noon");
    server.call(sys::close(conn.as_raw_fd()), "drop(conn)");
    drop(conn);
    server.returned("done: the server's FIN follows the answer");

    if matches!(read(&client_say, &client, "client"), Ok(n) if n > 0) {
        client_say
            .note("the half-closed client still receives: only its sending direction is closed");
    }
    let _ = read(&client_say, &client, "client");
    let seen = table(&kernel, &ends, None, Some(TcpState::TimeWait));
    if seen == (None, Some(TcpState::TimeWait)) {
        kernel.note("the client's FIN went first, so the client's end waits in TIME-WAIT (part 5); the server's end is gone");
    }
    client_say.call(sys::close(fd), "drop(client)");
    drop(client);
    client_say.returned("done: the descriptor goes; the connection stays in TIME-WAIT without it");
    Ok(())
}

/// Part 2. The server closes. The client reads end of file, and sends anyway: nothing on the
/// server's side can read it any more, so the server's kernel answers with a reset.
fn close_then_write(story: &Narrator, listener: &Socket, local: &SockAddr) -> Result<(), Failure> {
    story.section("2. close(): the client reads end of file, and writes anyway");
    let (server, client_say, kernel) = actors(story);
    let (client, conn, ends) = connect(story, listener, local)?;

    // The seed's cs.close(): close() gives the socket up. The kernel sends a FIN and finishes
    // the connection on its own, but no program can read from it any more.
    server.call(sys::close(conn.as_raw_fd()), "drop(conn)");
    drop(conn);
    server.returned("done: the server's kernel sends a FIN");
    table(
        &kernel,
        &ends,
        Some(TcpState::FinWait2),
        Some(TcpState::CloseWait),
    );

    if let Ok(0) = read(&client_say, &client, "client") {
        client_say.note("end of file says the server sends no more; it cannot say whether the server still reads (part 1) or has closed");
    }
    if write(&client_say, &client, "client", b"are you there?").is_ok() {
        client_say.note(
            "send() succeeds: the kernel took the bytes and sent them; no answer has come yet",
        );
    }
    if table(&kernel, &ends, None, None) == (None, None) {
        kernel.note("the server's kernel answered the data with a reset (RST): its socket is closed, nothing can read it. Both ends are gone");
    }
    if let Err(error) = write(&client_say, &client, "client", b"hello?")
        && error.kind() == io::ErrorKind::BrokenPipe
    {
        client_say.note("(in C this send would also raise SIGPIPE, which ends a process; Rust ignores SIGPIPE, so send just fails)");
    }
    if let Ok(0) = read(&client_say, &client, "client") {
        client_say.note("still end of file: the reset came after the FIN, in CLOSE-WAIT, and Linux reports that as EPIPE, not ECONNRESET");
    }
    client_say.call(sys::close(client.as_raw_fd()), "drop(client)");
    drop(client);
    client_say.returned("done");
    Ok(())
}

/// Part 3. The client sends something the server never reads, and the server closes: with
/// data still unread, the kernel sends a reset instead of a FIN.
fn close_with_unread_data(
    story: &Narrator,
    listener: &Socket,
    local: &SockAddr,
) -> Result<(), Failure> {
    story.section("3. close() with unread data: a reset instead of a FIN");
    let (server, client_say, kernel) = actors(story);
    let (client, conn, ends) = connect(story, listener, local)?;
    let data = b"one more thing";
    let _ = write(&client_say, &client, "client", data);
    unread(&kernel, &ends, data.len());

    let before = observe::netstat_counter("TcpExt", "TCPAbortOnClose");
    server.call(sys::close(conn.as_raw_fd()), "drop(conn)");
    drop(conn);
    server.returned("done");
    if table(&kernel, &ends, None, None) == (None, None) {
        kernel.note("the kernel threw the unread bytes away and sent a reset (RST), not a FIN: both ends are gone, and there is no TIME-WAIT");
    }
    counted(
        &kernel,
        "TCPAbortOnClose",
        before,
        "a close that threw unread data away",
    );
    let _ = read(&client_say, &client, "client");
    client_say.call(sys::close(client.as_raw_fd()), "drop(client)");
    drop(client);
    client_say.returned("done");
    Ok(())
}

/// Part 4. SO_LINGER with a time of 0 makes close() abort the connection on purpose.
fn abortive_close(story: &Narrator, listener: &Socket, local: &SockAddr) -> Result<(), Failure> {
    story.section("4. SO_LINGER 0: an abortive close");
    let (server, client_say, kernel) = actors(story);
    let (client, conn, ends) = connect(story, listener, local)?;
    let fd = conn.as_raw_fd();

    // SO_LINGER says what close() does with data not yet delivered: on, with a time of 0,
    // means "throw it away and reset the connection".
    server.call(
        sys::setsockopt(fd, "SOL_SOCKET", "SO_LINGER", "{l_onoff=1, l_linger=0}"),
        "conn.set_linger(Some(Duration::ZERO))",
    );
    server.check(conn.set_linger(Some(Duration::ZERO)))?;
    server.returned(0);
    let before = observe::netstat_counter("TcpExt", "TCPAbortOnData");
    server.call(sys::close(fd), "drop(conn)");
    drop(conn);
    server.returned("done");
    if table(&kernel, &ends, None, None) == (None, None) {
        kernel.note("with a linger time of 0, close() sent a reset (RST) and no FIN: both ends are gone at once, and there is no TIME-WAIT");
    }
    counted(
        &kernel,
        "TCPAbortOnData",
        before,
        "the kernel's name for an abort by SO_LINGER 0",
    );
    let _ = read(&client_say, &client, "client");
    client_say.call(sys::close(client.as_raw_fd()), "drop(client)");
    drop(client);
    client_say.returned("done");
    Ok(())
}

/// Part 5. The server closes first, so TIME-WAIT lands on its port; then the server stops
/// and starts again on the same port.
fn time_wait_and_restart(
    story: &Narrator,
    listener: Socket,
    local: &SockAddr,
) -> Result<(), Failure> {
    story.section("5. TIME-WAIT: the server closes first, then restarts on the same port");
    let (server, client_say, kernel) = actors(story);
    let (client, conn, ends) = connect(story, &listener, local)?;

    // The seed's order: the server closes the client's socket, cs.close() ...
    server.call(sys::close(conn.as_raw_fd()), "drop(conn)");
    drop(conn);
    server.returned("done: the server's FIN goes first");
    table(
        &kernel,
        &ends,
        Some(TcpState::FinWait2),
        Some(TcpState::CloseWait),
    );
    let _ = read(&client_say, &client, "client");
    client_say.call(sys::close(client.as_raw_fd()), "drop(client)");
    drop(client);
    client_say.returned("done: the client's FIN; the server's kernel acknowledges it");
    if table(&kernel, &ends, Some(TcpState::TimeWait), None) == (Some(TcpState::TimeWait), None) {
        kernel.note("the server's FIN went first, so the server's end waits in TIME-WAIT, 60 s on Linux; the client's end went through LAST-ACK and is gone");
    }

    // ... then its own socket, ss.close(): the server program is done.
    server.call(sys::close(listener.as_raw_fd()), "drop(listener)");
    drop(listener);
    server.returned("done: the server has stopped, and its old connection is still in TIME-WAIT");

    // The server starts again on the same port. Without SO_REUSEADDR, bind() refuses.
    let restarted = story.actor("restarted");
    let protocol = Some(Protocol::TCP);
    restarted.call_socket(local.domain(), Type::STREAM, protocol);
    let listener = restarted.check(Socket::new(local.domain(), Type::STREAM, protocol))?;
    let fd = listener.as_raw_fd();
    restarted.returned(fd);
    restarted.call(sys::bind(fd, local), "listener.bind(&address)");
    match listener.bind(local) {
        Ok(()) => restarted.returned(0),
        Err(error) => {
            restarted.error(&error);
            if server_end(&ends) == Some(TcpState::TimeWait) {
                kernel.note(format!(
                    "what holds the port is the old connection in TIME-WAIT, {} -> {}",
                    ends.server, ends.client
                ));
            }
        }
    }
    restarted.call(sys::close(fd), "drop(listener)");
    drop(listener);
    restarted.returned("done");

    // With SO_REUSEADDR, set before bind() as the first run did too, the port is free to
    // bind while connections on it wait in TIME-WAIT.
    restarted.call_socket(local.domain(), Type::STREAM, protocol);
    let listener = restarted.check(Socket::new(local.domain(), Type::STREAM, protocol))?;
    let fd = listener.as_raw_fd();
    restarted.returned(fd);
    restarted.call(
        sys::setsockopt(fd, "SOL_SOCKET", "SO_REUSEADDR", 1),
        "listener.set_reuse_address(true)",
    );
    restarted.check(listener.set_reuse_address(true))?;
    restarted.returned(0);
    restarted.call(sys::bind(fd, local), "listener.bind(&address)");
    restarted.check(listener.bind(local))?;
    restarted.returned("0: the old socket and this one both set SO_REUSEADDR, so bind() passes the connection in TIME-WAIT");
    restarted.call(
        sys::listen(fd, BACKLOG),
        format!("listener.listen({BACKLOG})"),
    );
    restarted.check(listener.listen(BACKLOG))?;
    restarted.returned(format!("0: listening on {} again", addr::show(local)));

    // What SO_REUSEADDR does not allow: a second socket on a port where one listens.
    let another = story.actor("another");
    another.call_socket(local.domain(), Type::STREAM, protocol);
    let second = another.check(Socket::new(local.domain(), Type::STREAM, protocol))?;
    let second_fd = second.as_raw_fd();
    another.returned(second_fd);
    another.call(
        sys::setsockopt(second_fd, "SOL_SOCKET", "SO_REUSEADDR", 1),
        "second.set_reuse_address(true)",
    );
    another.check(second.set_reuse_address(true))?;
    another.returned(0);
    another.call(sys::bind(second_fd, local), "second.bind(&address)");
    match second.bind(local) {
        Ok(()) => another.returned(0),
        Err(error) => {
            another.error(&error);
            another.note("SO_REUSEADDR shares a port with connections in TIME-WAIT, not with a listening socket: one port, one listener");
        }
    }
    another.call(sys::close(second_fd), "drop(second)");
    drop(second);
    another.returned("done");
    restarted.call(sys::close(fd), "drop(listener)");
    drop(listener);
    restarted.returned("done");
    Ok(())
}

/// Without --demo: a server that reads one message from each client, echoes it, and ends
/// the connection the way --how says.
fn serve(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let address = cli.address.resolve(say)?;
    let protocol = Some(Protocol::TCP);
    say.call_socket(address.domain(), Type::STREAM, protocol);
    let listener = say.check(Socket::new(address.domain(), Type::STREAM, protocol))?;
    let fd = listener.as_raw_fd();
    say.returned(fd);
    if cli.reuse_address {
        say.call(
            sys::setsockopt(fd, "SOL_SOCKET", "SO_REUSEADDR", 1),
            "listener.set_reuse_address(true)",
        );
        say.check(listener.set_reuse_address(true))?;
        say.returned(0);
    }
    say.call(sys::bind(fd, &address), "listener.bind(&address)");
    let bound = say.check(listener.bind(&address));
    if bound.is_err() {
        why_the_port_is_taken(say, &address, cli.reuse_address);
    }
    bound?;
    say.returned(0);
    say.call(
        sys::listen(fd, BACKLOG),
        format!("listener.listen({BACKLOG})"),
    );
    say.check(listener.listen(BACKLOG))?;
    say.returned(0);
    say.call(sys::getsockname(fd), "listener.local_addr()");
    let local = say.check(listener.local_addr())?;
    say.returned(addr::show(&local));
    say.ready("listening on", &local);
    if let Some(inet) = local.as_socket() {
        let (ip, port) = (inet.ip(), inet.port());
        say.say(format!(
            "try from another terminal:\n  bash -c 'exec 3<>/dev/tcp/{ip}/{port}; echo hello >&3; cat <&3'\n  ss -tan '( sport = :{port} or dport = :{port} )'"
        ));
    }

    let mut served = 0;
    while cli.max_clients.is_none_or(|max| served < max) {
        say.call(sys::accept(fd), "listener.accept()");
        let (conn, peer) = say.check(listener.accept())?;
        served += 1;
        say.returned(format!(
            "{}: client {served}, at {}",
            conn.as_raw_fd(),
            addr::show(&peer)
        ));
        end_connection(say, conn, cli.how);
    }
    say.call(sys::close(fd), "drop(listener)");
    drop(listener);
    say.returned("done");
    Ok(())
}

/// One client: read a message, echo it, end the connection. A client that misbehaves is
/// narrated, and the server goes on to the next.
fn end_connection(say: &Narrator, conn: Socket, how: How) {
    let fd = conn.as_raw_fd();
    if let Ok(message) = read_and_keep(say, &conn, "conn")
        && !message.is_empty()
    {
        let _ = write(say, &conn, "conn", &message);
    }
    match how {
        How::Close => {
            say.call(sys::close(fd), "drop(conn)");
            drop(conn);
            say.returned(
                "done: a FIN. Once the client closes too, this end waits in TIME-WAIT for 60 s",
            );
        }
        How::Shutdown => {
            say.call(
                sys::shutdown(fd, Shutdown::Write),
                "conn.shutdown(Shutdown::Write)",
            );
            match conn.shutdown(Shutdown::Write) {
                Ok(()) => {
                    say.returned("0: a FIN: the client reads end of file, and may still send");
                    // Read what the client still sends, until it closes its end too.
                    while let Ok(data) = read_and_keep(say, &conn, "conn") {
                        if data.is_empty() {
                            break;
                        }
                    }
                }
                Err(error) => say.error(&error),
            }
            say.call(sys::close(fd), "drop(conn)");
            drop(conn);
            say.returned("done");
        }
        How::Linger0 => {
            say.call(
                sys::setsockopt(fd, "SOL_SOCKET", "SO_LINGER", "{l_onoff=1, l_linger=0}"),
                "conn.set_linger(Some(Duration::ZERO))",
            );
            match conn.set_linger(Some(Duration::ZERO)) {
                Ok(()) => say.returned(0),
                Err(error) => say.error(&error),
            }
            say.call(sys::close(fd), "drop(conn)");
            drop(conn);
            say.returned("done: a reset (RST), no FIN, no TIME-WAIT");
        }
    }
}

/// After a failed bind(): says what holds the port, as `ss -tan` would show it.
fn why_the_port_is_taken(say: &Narrator, address: &SockAddr, reuse: bool) {
    let Some(wanted) = address.as_socket() else {
        return;
    };
    let port = wanted.port();
    let Ok(sockets) = observe::tcp_sockets_on_port(port) else {
        return;
    };
    // The sockets bind() weighs against this address: the same port, and the same IP
    // address or a wildcard (0.0.0.0, ::) on either side.
    let on_port = || {
        sockets.iter().filter(|e| {
            e.local.port() == port
                && e.local.is_ipv4() == wanted.is_ipv4()
                && (e.local.ip() == wanted.ip()
                    || e.local.ip().is_unspecified()
                    || wanted.ip().is_unspecified())
        })
    };
    let listening = on_port().any(|e| e.state == TcpState::Listen);
    let waiting = on_port().filter(|e| e.state == TcpState::TimeWait).count();
    if listening {
        say.note(format!(
            "a socket listens on port {port}: stop that server first; SO_REUSEADDR does not let two sockets listen on one port"
        ));
    } else if waiting > 0 && !reuse {
        say.note(format!(
            "{waiting} connection(s) of an earlier run wait in TIME-WAIT on port {port} (ss -tan state time-wait '( sport = :{port} )'): start the server with --reuse-address, this time and every time"
        ));
    } else if waiting > 0 {
        say.note(format!(
            "{waiting} connection(s) wait in TIME-WAIT on port {port}, from a run without --reuse-address: each keeps the SO_REUSEADDR of the server it came from, so bind() waits until they end (60 s)"
        ));
    }
}

// ---- the demo's helpers: connecting, reading, writing, and looking at the kernel's table ----

/// The demo's three voices: the server, the client, and the kernel's socket table.
fn actors(story: &Narrator) -> (Narrator, Narrator, Narrator) {
    (
        story.actor("server"),
        story.actor("client"),
        story.actor("kernel"),
    )
}

/// The two addresses of a connection: the server's end and the client's.
struct Ends {
    server: SocketAddr,
    client: SocketAddr,
}

/// A fresh connection for one part of the demo: the client connects, the server accepts.
fn connect(
    story: &Narrator,
    listener: &Socket,
    local: &SockAddr,
) -> Result<(Socket, Socket, Ends), Failure> {
    let (server, client_say, _) = actors(story);
    let protocol = Some(Protocol::TCP);
    client_say.call_socket(local.domain(), Type::STREAM, protocol);
    let client = client_say.check(Socket::new(local.domain(), Type::STREAM, protocol))?;
    let fd = client.as_raw_fd();
    client_say.returned(fd);
    client_say.call(sys::connect(fd, local), "client.connect(&address)");
    client_say.check(client.connect(local))?;
    client_say.returned(0);
    server.call(sys::accept(listener.as_raw_fd()), "listener.accept()");
    let (conn, peer) = server.check(listener.accept())?;
    server.returned(format!(
        "{}: connected to the client at {}",
        conn.as_raw_fd(),
        addr::show(&peer)
    ));
    let inet = |a: &SockAddr| {
        a.as_socket()
            .ok_or_else(|| Failure::Peer(format!("{} is not an IP address", addr::show(a))))
    };
    let ends = Ends {
        server: inet(local)?,
        client: inet(&peer)?,
    };
    Ok((client, conn, ends))
}

/// recv(): narrates the call and what came back: bytes, 0 for end of file, or an error.
fn read(say: &Narrator, socket: &Socket, name: &str) -> io::Result<usize> {
    read_and_keep(say, socket, name).map(|data| data.len())
}

/// recv(), narrated, returning the bytes.
fn read_and_keep(say: &Narrator, socket: &Socket, name: &str) -> io::Result<Vec<u8>> {
    let mut buf = [0u8; BUF];
    say.call(
        sys::recv(socket.as_raw_fd(), buf.len()),
        format!("(&{name}).read(&mut buf)"),
    );
    let mut reader = socket;
    let result = reader.read(&mut buf);
    match &result {
        Ok(0) => say.returned("0: end of file"),
        Ok(n) => say.returned(format!("{n}: {}", sys::bytes(&buf[..*n]))),
        Err(error) => say.error(error),
    }
    result.map(|n| buf[..n].to_vec())
}

/// send(), narrated.
fn write(say: &Narrator, socket: &Socket, name: &str, data: &[u8]) -> io::Result<usize> {
    say.call(
        sys::send(socket.as_raw_fd(), data),
        format!("{name}.send(b{})", sys::bytes(data)),
    );
    let result = socket.send(data);
    match &result {
        Ok(n) => say.returned(n),
        Err(error) => say.error(error),
    }
    result
}

/// The state of the server's end of the connection, now.
fn server_end(ends: &Ends) -> Option<TcpState> {
    states(ends).0
}

/// Both ends' states in the kernel's socket table (/proc/net/tcp, what `ss -tan` lists);
/// `None` when an end is not in the table: the kernel has forgotten it.
fn states(ends: &Ends) -> (Option<TcpState>, Option<TcpState>) {
    let port = ends.server.port();
    let all = observe::tcp_sockets_on_port(port).unwrap_or_default();
    let server = all
        .iter()
        .find(|e| e.local.port() == port && e.remote == ends.client)
        .map(|e| e.state);
    let client = all
        .iter()
        .find(|e| e.local == ends.client && e.remote.port() == port)
        .map(|e| e.state);
    (server, client)
}

/// Waits, at most two seconds, until both ends are in the states expected, and prints what
/// the table shows (what it last showed, if they never get there).
fn table(
    kernel: &Narrator,
    ends: &Ends,
    server: Option<TcpState>,
    client: Option<TcpState>,
) -> (Option<TcpState>, Option<TcpState>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut seen = states(ends);
    while seen != (server, client) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        seen = states(ends);
    }
    let name = |state: Option<TcpState>| state.map_or("gone", TcpState::name);
    kernel.say(format!(
        "socket table: server end {} {}, client end {} {}",
        ends.server,
        name(seen.0),
        ends.client,
        name(seen.1)
    ));
    seen
}

/// Waits, at most two seconds, until the server's end holds `bytes` received but unread
/// bytes (its Recv-Q in `ss -tan`), and prints it.
fn unread(kernel: &Narrator, ends: &Ends, bytes: usize) {
    let port = ends.server.port();
    let deadline = Instant::now() + Duration::from_secs(2);
    let queued = || {
        observe::tcp_sockets_on_port(port)
            .unwrap_or_default()
            .into_iter()
            .find(|e| e.local.port() == port && e.remote == ends.client)
            .map(|e| (e.state, e.rx_queue))
    };
    let mut seen = queued();
    while seen.map(|(_, rx)| rx as usize) != Some(bytes) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        seen = queued();
    }
    match seen {
        Some((state, rx)) => kernel.say(format!(
            "socket table: server end {} {}, {rx} bytes received and not read (Recv-Q)",
            ends.server,
            state.name()
        )),
        None => kernel.say(format!("socket table: server end {} gone", ends.server)),
    }
}

/// How much a counter of the kernel's (`nstat -az TcpExtNAME`) went up since `before`.
fn counted(kernel: &Narrator, name: &str, before: Option<u64>, meaning: &str) {
    let after = observe::netstat_counter("TcpExt", name);
    if let (Some(before), Some(after)) = (before, after) {
        kernel.say(format!(
            "TcpExt {name} went up by {} (nstat -az TcpExt{name}): {meaning}",
            after.saturating_sub(before)
        ));
    }
}
