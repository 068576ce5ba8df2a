//! Step 7: connect, the TCP client.
//!
//! A client does not bind or listen. It creates a socket, calls `connect()` with the server's
//! address, and the kernel does the rest: it gives the socket a local address of its own (an
//! *ephemeral port*) and runs the TCP handshake. Then the client talks, `send` and `recv` in
//! a loop, and closes. These are the seed's four client steps: socket, connect, the
//! conversation, close.
//!
//! Without `--message` the client reads lines from standard input, sends each one and prints
//! the echo, so you can talk to a server by hand. `--demo` runs its own echo server in the
//! same process, and then shows what a connect to a port where nothing listens gets.
//!
//! Read it beside `lessons/07-connect.md`.

use std::io::{self, BufRead, Read};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::{ColorWhen, Failure, Family, Narrator, SockType, Step, addr, explain, interrupt, sys};

const STEP: Step = Step {
    number: 7,
    crate_name: "step7_connect",
    title: "connect: the TCP client",
    lesson: "lessons/07-connect.md",
};

/// The backlog of the demo's server: this step is not about the accept queue (step 3 is).
const BACKLOG: i32 = 8;

/// Step 7 of the socket course: connect, the TCP client.
///
/// Creates a socket and connects it to a server (--host and --port, or --path for a unix
/// socket), shows the ephemeral port the kernel gave this end, and talks: with --message it
/// sends TEXT, reads the echo until as many bytes came back, and closes; without it, it sends
/// each line you type (standard input) and prints the echo, until end of input (Ctrl-D).
/// Start a server first: step 5 (cargo run -q -p step5_recv_send), scripts/seed_server.py,
/// or `nc -l 127.0.0.1 PORT`. --demo runs its own echo server and needs nothing else.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/07-connect.md")]
struct Cli {
    /// Address family: ipv4 and ipv6 use --host and --port, unix uses --path
    #[arg(long, value_enum, default_value_t = Family::Ipv4)]
    family: Family,

    /// The server's IP address or host name [default: 127.0.0.1, or ::1 for ipv6]
    #[arg(long)]
    host: Option<String>,

    /// The server's port (required for ipv4 and ipv6, except with --demo)
    #[arg(long)]
    port: Option<u16>,

    /// The server's unix socket file, for --family unix
    #[arg(long)]
    path: Option<PathBuf>,

    /// Socket type: a TCP client needs stream; dgram shows the seed's mistake (a UDP socket)
    #[arg(long = "type", value_name = "TYPE", value_enum, default_value_t = SockType::Stream)]
    sock_type: SockType,

    /// Send TEXT (as it is, no newline added), read the echo until as many bytes came back, and close
    #[arg(long, value_name = "TEXT")]
    message: Option<String>,

    /// Give up on the handshake after SECONDS (a non-blocking connect, then poll), e.g. 0.5
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    timeout: Option<Duration>,

    /// The most bytes one recv() may return
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    bufsize: u32,

    /// Run an echo server in-process, talk to it, then connect where nothing listens, and exit
    #[arg(long, conflicts_with_all = ["port", "timeout", "sock_type"])]
    demo: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    color: ColorWhen,
}

/// `--timeout`: a number of seconds, more than 0 and at most an hour.
fn seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "'{text}' is not a number of seconds between 0 and 3600"
        )),
    }
}

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    interrupt::stop_on_ctrl_c(&say);
    let result = if cli.demo {
        demo(&say, &cli)
    } else {
        client(&say, &cli)
    };
    tutor::finish(&say, result)
}

/// The client: socket, connect, the conversation, close.
fn client(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let address = server_address(say, cli)?;

    // 1. socket(). The seed's client writes SOCK_DGRAM here; a TCP client needs SOCK_STREAM,
    //    as the server does (--type dgram shows what the seed's socket does instead).
    let domain = address.domain();
    let ty = cli.sock_type.ty();
    let protocol = match (cli.family, cli.sock_type) {
        (Family::Unix, _) => None,
        (_, SockType::Stream) => Some(Protocol::TCP),
        (_, SockType::Dgram) => Some(Protocol::UDP),
    };
    say.call_socket(domain, ty, protocol);
    let socket = say.check(Socket::new(domain, ty, protocol))?;
    let fd = socket.as_raw_fd();
    say.returned(fd);

    // 2. connect(): no bind() first. The kernel picks this end's address, and for a stream
    //    socket it runs the handshake; connect() returns when the server's kernel answered.
    let connect_call = sys::connect(fd, &address);
    let connected = match cli.timeout {
        None => {
            say.call(&connect_call, "socket.connect(&address)");
            socket.connect(&address)
        }
        Some(limit) => {
            // connect_timeout makes the socket non-blocking (fcntl O_NONBLOCK) and calls
            // connect(): for TCP it sends the SYN and returns EINPROGRESS at once. Then it
            // waits in poll() at most `limit` for the answer, and makes the socket blocking
            // again.
            say.call(
                &connect_call,
                format!("socket.connect_timeout(&address, {limit:?})"),
            );
            socket.connect_timeout(&address, limit)
        }
    };
    let tcp_with_timeout =
        cli.timeout.is_some() && cli.family != Family::Unix && cli.sock_type == SockType::Stream;
    if tcp_with_timeout {
        say.returned("-1 EINPROGRESS (Operation now in progress): the socket is non-blocking");
        say.note(format!(
            "the SYN is on its way; poll() waits at most {:?} for the server's answer",
            cli.timeout.unwrap_or_default()
        ));
    }
    if let Err(error) = connected {
        return Err(connect_failed(
            say,
            tcp_with_timeout,
            fd,
            connect_call,
            error,
        ));
    }
    match (cli.sock_type, cli.family) {
        (SockType::Stream, Family::Unix) => {
            say.returned("0: connected; the server's kernel queued this connection for accept()")
        }
        (SockType::Stream, _) => say.returned(
            "0: connected. The handshake is done; the server's kernel queued the connection for accept()",
        ),
        (SockType::Dgram, _) => {
            say.returned("0: but nothing was sent: a datagram socket's connect() only records the peer's address")
        }
    }

    // 3. getsockname(): the address connect() gave this end.
    say.call(sys::getsockname(fd), "socket.local_addr()");
    let local = say.check(socket.local_addr())?;
    say.returned(addr::show(&local));
    if let Some(inet) = local.as_socket() {
        say.note(format!(
            "port {} is this end's ephemeral port: the kernel chose it at connect() (sysctl net.ipv4.ip_local_port_range)",
            inet.port()
        ));
    } else {
        say.note("a unix client has no name of its own unless it binds one");
    }

    // 4. The conversation: send, then recv until the echo is back.
    let bufsize = cli.bufsize as usize;
    match &cli.message {
        Some(text) => {
            let echo = exchange(say, &socket, text.as_bytes(), bufsize, cli.sock_type)?;
            say.say(format!("echo: {}", printable(&echo)));
        }
        None => {
            say.say("type a line and press Enter to send it; Ctrl-D ends the input");
            let stdin = io::stdin();
            let mut line = String::new();
            loop {
                line.clear();
                match stdin.lock().read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let echo = exchange(say, &socket, line.as_bytes(), bufsize, cli.sock_type)?;
                say.say(format!("echo: {}", printable(&echo)));
            }
            say.say("end of input");

            // shutdown(SHUT_WR): "I will send nothing more". The server reads end of file,
            // and this end can still read what the server sends until it closes (step 6).
            if cli.sock_type == SockType::Stream {
                say.call(
                    sys::shutdown(fd, Shutdown::Write),
                    "socket.shutdown(Shutdown::Write)",
                );
                say.check(socket.shutdown(Shutdown::Write))?;
                say.returned("0: a FIN: the server reads end of file");
                let mut buf = vec![0u8; bufsize];
                loop {
                    say.call(sys::recv(fd, buf.len()), "(&socket).read(&mut buf)");
                    let n = say.check((&socket).read(&mut buf))?;
                    if n == 0 {
                        say.returned("0: end of file: the server closed its end too");
                        break;
                    }
                    say.returned(format!("{n}: {}", sys::bytes(&buf[..n])));
                }
            }
        }
    }

    // 5. close(): dropping the socket closes it.
    say.call(sys::close(fd), "drop(socket)");
    drop(socket);
    say.returned("done");
    Ok(())
}

/// The server's address from --family, --host, --port and --path. A host name is looked up
/// first (getaddrinfo), as Python's connect(('localhost', 8080)) does.
fn server_address(say: &Narrator, cli: &Cli) -> Result<SockAddr, Failure> {
    match cli.family {
        Family::Unix if cli.port.is_some() => {
            return Err(Failure::Usage(
                "--port does not apply to --family unix: a unix server's address is a --path"
                    .into(),
            ));
        }
        Family::Unix if cli.path.is_none() && cli.host.is_none() => {
            return Err(Failure::Usage(
                "--family unix needs --path: the file the server's socket is bound to".into(),
            ));
        }
        Family::Ipv4 | Family::Ipv6 if cli.path.is_some() => {
            return Err(Failure::Usage(format!(
                "--path applies to --family unix only, not {}",
                cli.family
            )));
        }
        _ => {}
    }
    let path = cli.path.clone().unwrap_or_default();
    let address = addr::endpoint(
        say,
        cli.family,
        cli.host.as_deref(),
        cli.port.unwrap_or(0),
        &path,
    )?;
    if cli.family != Family::Unix && cli.port.is_none() {
        return Err(Failure::Usage(
            "--port is required: the port the server listens on (its ready line shows it)".into(),
        ));
    }
    Ok(address)
}

/// A failed connect, narrated, turned into the failure that ends the step.
///
/// With --timeout, an answer that refuses a TCP handshake (a reset, an ICMP error) arrives
/// after connect() returned EINPROGRESS: connect_timeout reads it with
/// getsockopt(SO_ERROR) once poll() reports it. A timeout has no errno: poll() returned 0.
fn connect_failed(
    say: &Narrator,
    tcp_with_timeout: bool,
    fd: i32,
    call: String,
    error: io::Error,
) -> Failure {
    if error.raw_os_error().is_none() {
        say.note(
            "poll() returned 0: no answer in time. Closing the socket ends the kernel's attempts",
        );
        say.returned(explain::describe(&error));
    } else if tcp_with_timeout {
        say.call(
            sys::getsockopt(fd, "SOL_SOCKET", "SO_ERROR"),
            "socket.take_error(), inside connect_timeout: poll() reported an error",
        );
        say.returned(explain::describe(&error));
    } else {
        say.returned(format!("-1 {}", explain::describe(&error)));
    }
    Failure::Socket { call, error }
}

/// send() until all of `data` is gone: send() may take fewer bytes than it was given.
fn send_all(say: &Narrator, socket: &Socket, name: &str, data: &[u8]) -> Result<(), Failure> {
    let fd = socket.as_raw_fd();
    let mut sent = 0;
    while sent < data.len() {
        say.call(
            sys::send(fd, &data[sent..]),
            format!("{name}.send(&data[{sent}..])"),
        );
        let n = say.check(socket.send(&data[sent..]))?;
        say.returned(n);
        sent += n;
    }
    Ok(())
}

/// recv() until `expected` bytes came back: recv() returns what has arrived, at most the
/// buffer's size, so one echo may take several calls. Asking for no more than is missing
/// leaves the next message's bytes unread. End of file before the end is a failure: the
/// server vanished in mid-conversation.
fn recv_echo(
    say: &Narrator,
    socket: &Socket,
    expected: usize,
    bufsize: usize,
) -> Result<Vec<u8>, Failure> {
    let fd = socket.as_raw_fd();
    let mut echo = Vec::with_capacity(expected);
    let mut buf = vec![0u8; bufsize];
    while echo.len() < expected {
        let want = bufsize.min(expected - echo.len());
        say.call(
            sys::recv(fd, want),
            format!("(&socket).read(&mut buf[..{want}])"),
        );
        let n = say.check((&*socket).read(&mut buf[..want]))?;
        if n == 0 {
            say.returned("0: end of file: the server closed the connection");
            return Err(Failure::Peer(format!(
                "the server closed the connection after {} of {expected} bytes of the echo: it vanished in mid-conversation",
                echo.len()
            )));
        }
        say.returned(format!("{n}: {}", sys::bytes(&buf[..n])));
        echo.extend_from_slice(&buf[..n]);
    }
    Ok(echo)
}

/// One message of the conversation with an echo server: send it all, then read the echo.
/// A datagram socket's recv() fails here when its datagram reached no UDP socket.
fn exchange(
    say: &Narrator,
    socket: &Socket,
    data: &[u8],
    bufsize: usize,
    sock_type: SockType,
) -> Result<Vec<u8>, Failure> {
    send_all(say, socket, "socket", data)?;
    let echo = recv_echo(say, socket, data.len(), bufsize);
    if let Err(Failure::Socket { error, .. }) = &echo
        && sock_type == SockType::Dgram
        && error.kind() == io::ErrorKind::ConnectionRefused
    {
        say.note("the datagram reached no UDP socket, so the server's kernel answered with ICMP \"port unreachable\": a datagram socket cannot talk to a TCP server (the seed's SOCK_DGRAM client)");
    }
    echo
}

/// What came back, as text for the terminal: invalid UTF-8 shown lossily, the last newline
/// dropped.
fn printable(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    text.strip_suffix('\n').unwrap_or(&text).to_owned()
}

/// Both ends in one process, one call at a time: a server that echoes one message, a client
/// that connects and talks to it, then a client that connects where nothing listens. Every
/// call returns at once or waits for something an earlier call has already set going, so
/// the story is the same on every run.
fn demo(story: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let server = story.actor("server");
    let client_say = story.actor("client");
    story.section("an echo server, in this process");
    let path = cli.path.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("step7_connect-{}.sock", std::process::id()))
    });
    if cli.family != Family::Unix && cli.path.is_some() {
        return Err(Failure::Usage(format!(
            "--path applies to --family unix only, not {}",
            cli.family
        )));
    }
    let wanted = addr::endpoint(&server, cli.family, cli.host.as_deref(), 0, &path)?;
    let protocol = (cli.family != Family::Unix).then_some(Protocol::TCP);
    server.call_socket(wanted.domain(), Type::STREAM, protocol);
    let listener = server.check(Socket::new(wanted.domain(), Type::STREAM, protocol))?;
    let lfd = listener.as_raw_fd();
    server.returned(lfd);
    server.call(sys::bind(lfd, &wanted), "listener.bind(&address)");
    server.check(interrupt::owned_bind(&wanted, || listener.bind(&wanted)))?;
    server.returned(0);
    server.call(
        sys::listen(lfd, BACKLOG),
        format!("listener.listen({BACKLOG})"),
    );
    server.check(listener.listen(BACKLOG))?;
    server.returned(0);
    server.call(sys::getsockname(lfd), "listener.local_addr()");
    let address = server.check(listener.local_addr())?;
    server.returned(addr::show(&address));
    server.ready("listening on", &address);

    story.section("the client: socket, connect, send and recv, close");
    client_say.call_socket(address.domain(), Type::STREAM, protocol);
    let socket = client_say.check(Socket::new(address.domain(), Type::STREAM, protocol))?;
    let fd = socket.as_raw_fd();
    client_say.returned(fd);
    client_say.call(sys::connect(fd, &address), "socket.connect(&address)");
    client_say.check(socket.connect(&address))?;
    client_say.returned(
        "0: connected. The server's kernel did the handshake; the server has not called accept() yet",
    );
    client_say.call(sys::getsockname(fd), "socket.local_addr()");
    let local = client_say.check(socket.local_addr())?;
    client_say.returned(addr::show(&local));
    if let Some(inet) = local.as_socket() {
        client_say.note(format!(
            "port {} is the client's ephemeral port: no bind(), the kernel chose it at connect()",
            inet.port()
        ));
    }

    server.call(sys::accept(lfd), "listener.accept()");
    let (conn, peer) = server.check(listener.accept())?;
    let cfd = conn.as_raw_fd();
    server.returned(format!(
        "{cfd}: a new socket, connected to {}",
        addr::show(&peer)
    ));
    if peer.as_socket().is_some() && peer.as_socket() == local.as_socket() {
        server.note(
            "accept() names the client by the address its connect() got: the same ephemeral port",
        );
    }

    let message = cli
        .message
        .as_deref()
        .unwrap_or("hello, server\n")
        .as_bytes();
    send_all(&client_say, &socket, "socket", message)?;

    // The echo server's loop: recv, send back what came, until all of the message is back.
    let bufsize = cli.bufsize as usize;
    let mut buf = vec![0u8; bufsize];
    let mut echoed = 0;
    while echoed < message.len() {
        server.call(sys::recv(cfd, buf.len()), "(&conn).read(&mut buf)");
        let n = server.check((&conn).read(&mut buf))?;
        server.returned(format!("{n}: {}", sys::bytes(&buf[..n])));
        if n == 0 {
            return Err(Failure::Peer("the demo's client vanished".into()));
        }
        let mut back = 0;
        while back < n {
            server.call(
                sys::send(cfd, &buf[back..n]),
                format!("conn.send(&buf[{back}..{n}])"),
            );
            back += server.check(conn.send(&buf[back..n]))?;
            server.returned(back);
        }
        echoed += n;
    }

    let echo = recv_echo(&client_say, &socket, message.len(), bufsize)?;
    client_say.say(format!("echo: {}", printable(&echo)));
    client_say.call(sys::close(fd), "drop(socket)");
    drop(socket);
    client_say.returned("done: the client's FIN goes to the server");

    server.call(sys::recv(cfd, buf.len()), "(&conn).read(&mut buf)");
    let n = server.check((&conn).read(&mut buf))?;
    server.returned(format!("{n}: end of file: the client closed"));
    server.call(sys::close(cfd), "drop(conn)");
    drop(conn);
    server.returned("done");

    // The seed's client pseudocode creates its socket with SOCK_DGRAM. Against the same
    // server, still listening, that socket never reaches it.
    story.section(if cli.family == Family::Unix {
        "the seed's client: SOCK_DGRAM, to the same stream server"
    } else {
        "the seed's client: SOCK_DGRAM, to the same TCP server"
    });
    let seeds = story.actor("client 2");
    let udp = (cli.family != Family::Unix).then_some(Protocol::UDP);
    seeds.call_socket(address.domain(), Type::DGRAM, udp);
    let socket = seeds.check(Socket::new(address.domain(), Type::DGRAM, udp))?;
    let fd = socket.as_raw_fd();
    seeds.returned(fd);
    // A read timeout, so that the demo cannot wait for ever if no answer comes.
    let patience = Duration::from_secs(2);
    seeds.call(
        sys::setsockopt(fd, "SOL_SOCKET", "SO_RCVTIMEO", format!("{patience:?}")),
        format!("socket.set_read_timeout(Some({patience:?}))"),
    );
    seeds.check(socket.set_read_timeout(Some(patience)))?;
    seeds.returned(0);
    seeds.call(sys::connect(fd, &address), "socket.connect(&address)");
    match socket.connect(&address) {
        Ok(()) => {
            seeds.returned(
                "0: no handshake: a datagram socket's connect() only records the peer's address",
            );
            let message = b"hello, server\n";
            seeds.call(sys::send(fd, message), "socket.send(&data[0..])");
            let n = seeds.check(socket.send(message))?;
            seeds.returned(format!(
                "{n}: one UDP datagram, to a port where only TCP listens"
            ));
            seeds.call(
                sys::recv(fd, message.len()),
                format!("(&socket).read(&mut buf[..{}])", message.len()),
            );
            match (&socket).read(&mut buf[..message.len()]) {
                Ok(n) => seeds.returned(format!("{n}: {}", sys::bytes(&buf[..n]))),
                Err(error) => {
                    seeds.returned(format!("-1 {}", explain::describe(&error)));
                    if error.kind() == io::ErrorKind::ConnectionRefused {
                        seeds.note("no UDP socket has that port: the server's kernel answered with ICMP \"port unreachable\"");
                    }
                }
            }
        }
        Err(error) => {
            seeds.returned(format!("-1 {}", explain::describe(&error)));
            seeds.note("a datagram socket cannot connect to a stream socket's file");
        }
    }
    seeds.call(sys::close(fd), "drop(socket)");
    drop(socket);
    seeds.returned("done");
    if let Some(listening) = address.as_socket() {
        let waiting = tutor::observe::accept_queue_len(listening);
        server.note(format!(
            "accept queue: {} connection(s) waiting: the server never saw client 2",
            waiting.map_or("?".to_owned(), |n| n.to_string())
        ));
    }

    server.call(sys::close(lfd), "drop(listener)");
    drop(listener);
    server.returned("done: nothing listens on this address any more");

    story.section("connect where nothing listens");
    let late = story.actor("client 3");
    late.call_socket(address.domain(), Type::STREAM, protocol);
    let socket = late.check(Socket::new(address.domain(), Type::STREAM, protocol))?;
    let fd = socket.as_raw_fd();
    late.returned(fd);
    late.call(sys::connect(fd, &address), "socket.connect(&address)");
    let refused = socket.connect(&address);
    match &refused {
        Ok(()) => late.returned("0: something else listens here now"),
        Err(error) => late.error(error),
    }
    late.call(sys::close(fd), "drop(socket)");
    drop(socket);
    late.returned("done");
    interrupt::remove_socket_file(&server, &address);

    story.section("what happened");
    story.say("the client never called bind(): connect() gave it an address, and accept() told the server that address");
    story.say(if cli.family == Family::Unix {
        "a SOCK_DGRAM client, the seed's, cannot even connect to a stream server: EPROTOTYPE"
    } else {
        "a SOCK_DGRAM client, the seed's, cannot talk to a TCP server: its connect() sends nothing, and its datagram finds no UDP socket"
    });
    if refused
        .as_ref()
        .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionRefused)
    {
        story.say(if cli.family == Family::Unix {
            "a socket file with no listener behind it: connect() fails at once with ECONNREFUSED"
        } else {
            "no listener on the port: the server's kernel answered the SYN with a reset, and connect() failed at once with ECONNREFUSED"
        });
    }
    Ok(())
}
