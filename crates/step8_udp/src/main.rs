//! Step 8: UDP.
//!
//! A datagram socket has no connections: no listen(), no accept(). The server binds one socket
//! and every datagram that arrives on it brings its sender's address along; the server answers
//! each sender with send_to. One socket talks to any number of peers. connect() on a datagram
//! socket sends nothing: it only fixes the default peer and filters what the socket receives.
//! And a datagram is taken whole or not at all: what does not fit into the buffer is lost.
//!
//! Read it beside `lessons/08-udp.md`.

use std::io::{self, ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::cli::ServerAddress;
use tutor::{ColorWhen, Failure, Family, Narrator, Step, addr, interrupt, sys};

const STEP: Step = Step {
    number: 8,
    crate_name: "step8_udp",
    title: "UDP: datagrams, no connection",
    lesson: "lessons/08-udp.md",
};

/// Which end this run plays.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Bind, then answer every datagram to whoever sent it (an echo server)
    Server,
    /// Send one datagram to the server and wait for its answer
    Client,
}

/// Step 8 of the socket course: UDP: datagrams, no connection.
///
/// --role server (the default) binds a datagram socket and echoes every datagram back to its
/// sender: no listen, no accept, and one socket for every peer. --role client sends one
/// datagram (--message) to the server at --host/--port (or --path) and waits for the answer;
/// with --connect it first calls connect(), which sends nothing. --demo tells the whole story
/// in one process: many peers, connect, nobody there, and a buffer too small.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/08-udp.md")]
struct Cli {
    /// The server's address: where the server binds, and where the client sends
    #[command(flatten)]
    address: ServerAddress,

    /// Which end to play
    #[arg(long, value_enum, default_value_t = Role::Server)]
    role: Role,

    /// The client's message: one datagram
    #[arg(long, default_value = "hello", conflicts_with = "demo")]
    message: String,

    /// The client calls connect() before it sends (send/recv instead of send_to/recv_from)
    #[arg(long, conflicts_with = "demo")]
    connect: bool,

    /// The unix client's own path, so the server can answer it [default: $TMPDIR/step8_udp-client-<pid>.sock]
    #[arg(long, value_name = "PATH", conflicts_with = "demo")]
    client_path: Option<PathBuf>,

    /// The most bytes one recv may take: the rest of a longer datagram is lost
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    bufsize: u32,

    /// The server stops after answering this many datagrams [default: serve until Ctrl-C]
    #[arg(long, value_parser = tutor::cli::count::<u32>, conflicts_with = "demo")]
    max_datagrams: Option<u32>,

    /// How long the client waits for an answer, in milliseconds
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60000))]
    timeout_ms: u64,

    /// Play server and clients in-process: many peers, connect, nobody there, a short buffer
    #[arg(long, conflicts_with_all = ["port", "path", "role"])]
    demo: bool,

    /// With --demo, only this part: 1 many peers, 2 connect, 3 nobody there, 4 a short buffer
    #[arg(long, requires = "demo", value_parser = clap::value_parser!(u8).range(1..=4))]
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
    let result = if cli.demo {
        demo(&say, &cli)
    } else {
        match cli.role {
            Role::Server => serve(&say, &cli),
            Role::Client => client(&say, &cli),
        }
    };
    tutor::finish(&say, result)
}

/// The protocol argument of socket(): UDP for ipv4 and ipv6, the default (0) for unix.
fn protocol(family: Family) -> Option<Protocol> {
    (family != Family::Unix).then_some(Protocol::UDP)
}

// ---- the server ----

/// socket(), bind(), and nothing else: a datagram socket is ready for peers once it has an
/// address.
fn serve(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let address = cli.address.resolve(say)?;
    let (socket, local) = bind_server(say, &address, cli.address.family)?;
    say.say("no listen(), no accept(): datagrams from any peer arrive on this one socket");

    let mut answered = 0;
    while cli.max_datagrams.is_none_or(|max| answered < max) {
        let (length, from) = say.check(next_datagram(say, &socket))?;
        let data = say.check(receive(say, &socket, cli.bufsize as usize))?;
        if data.len() < length {
            say.note(format!(
                "the datagram had {length} bytes and the buffer holds {}: the other {} are lost",
                data.len(),
                length - data.len()
            ));
        }
        answer(say, &socket, &data, &from)?;
        answered += 1;
    }
    say.call(sys::close(socket.as_raw_fd()), "drop(socket)");
    drop(socket);
    say.returned("done");
    interrupt::remove_socket_file(say, &local);
    Ok(())
}

/// The server's socket: socket(AF_*, SOCK_DGRAM), bind(), getsockname(), and the ready line.
fn bind_server(
    say: &Narrator,
    address: &SockAddr,
    family: Family,
) -> Result<(Socket, SockAddr), Failure> {
    let domain = address.domain();
    say.call_socket(domain, Type::DGRAM, protocol(family));
    let socket = say.check(Socket::new(domain, Type::DGRAM, protocol(family)))?;
    let fd = socket.as_raw_fd();
    say.returned(fd);
    say.call(sys::bind(fd, address), "socket.bind(&address)");
    say.check(interrupt::owned_bind(address, || socket.bind(address)))?;
    say.returned(0);
    say.call(sys::getsockname(fd), "socket.local_addr()");
    let local = say.check(socket.local_addr())?;
    say.returned(addr::show(&local));
    say.ready("bound to", &local);
    Ok((socket, local))
}

/// Who sent the next datagram, and how long it is, without taking it off the queue:
/// recvfrom with MSG_PEEK (look, do not take) and MSG_TRUNC (say the datagram's real length,
/// not what fitted into the buffer), into no buffer at all.
///
/// socket2's `recv_from` fills a `MaybeUninit` buffer, which safe Rust cannot read back; this
/// course reads bytes with `read` (lesson 5), so it learns the sender first, with this peek.
fn next_datagram(say: &Narrator, socket: &Socket) -> io::Result<(usize, SockAddr)> {
    let fd = socket.as_raw_fd();
    say.call(
        format!("recvfrom({fd}, NULL, 0, MSG_PEEK|MSG_TRUNC, &from)"),
        "socket.recv_from_with_flags(&mut [], MSG_PEEK | MSG_TRUNC)",
    );
    let result = socket.recv_from_with_flags(&mut [], libc::MSG_PEEK | libc::MSG_TRUNC);
    if let Ok((length, from)) = &result {
        say.returned(format!(
            "{length}: a datagram of {length} bytes from {} is next",
            sender(from)
        ));
    }
    result
}

/// A sender's address as the narration shows it. A unix socket that never bound a path
/// sends with no address at all: the kernel reports an empty one.
fn sender(from: &SockAddr) -> String {
    if has_no_address(from) {
        "(no address)".to_owned()
    } else {
        addr::show(from)
    }
}

fn has_no_address(from: &SockAddr) -> bool {
    from.as_socket().is_none()
        && from.as_pathname().is_none()
        && from.as_abstract_namespace().is_none()
}

/// recv() without narration, for callers that narrate the result themselves.
fn receive_quietly(socket: &Socket, bufsize: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; bufsize];
    let n = (&*socket).read(&mut buf)?;
    Ok(buf[..n].to_vec())
}

/// recv(): takes one whole datagram off the queue, at most `bufsize` bytes of it.
fn receive(say: &Narrator, socket: &Socket, bufsize: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; bufsize];
    say.call(
        sys::recv(socket.as_raw_fd(), buf.len()),
        "(&socket).read(&mut buf)",
    );
    let n = (&*socket).read(&mut buf)?;
    say.returned(format!("{n}: {}", sys::bytes(&buf[..n])));
    Ok(buf[..n].to_vec())
}

/// send_to(): the answer goes to the address the datagram came from.
///
/// With MSG_DONTWAIT: an answer must never make the server wait. Over UDP a full receive
/// buffer at the peer drops the datagram there, but a unix datagram socket makes the sender
/// wait until the peer has read (its queue holds `net.unix.max_dgram_qlen` datagrams): one
/// peer that never reads its answers would stop the server for every other peer. Without
/// waiting, the kernel says EAGAIN instead, and the answer is dropped, as UDP would drop it.
fn answer(say: &Narrator, socket: &Socket, data: &[u8], to: &SockAddr) -> Result<(), Failure> {
    let fd = socket.as_raw_fd();
    if has_no_address(to) {
        say.note("the sender's socket has no address (an unbound unix socket): there is nowhere to send an answer");
        return Ok(());
    }
    say.call(
        format!(
            "sendto({fd}, {}, {}, MSG_DONTWAIT, {})",
            sys::bytes(data),
            data.len(),
            addr::show(to)
        ),
        "socket.send_to_with_flags(&data, &from, MSG_DONTWAIT)",
    );
    match socket.send_to_with_flags(data, to, libc::MSG_DONTWAIT) {
        Ok(n) => say.returned(format!("{n}: back to {}", addr::show(to))),
        Err(error) if error.kind() == ErrorKind::WouldBlock => {
            say.error(&error);
            say.note(format!(
                "{}'s queue is full: it does not read its answers. This answer is dropped, as UDP would drop it; the server does not wait for one peer",
                addr::show(to)
            ));
        }
        // A peer that vanished is no reason to stop serving the others.
        Err(error) => say.error(&error),
    }
    Ok(())
}

// ---- the client ----

/// socket(), (for unix: bind its own path), optionally connect(), send, receive, close.
fn client(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let family = cli.address.family;
    if family != Family::Unix && cli.address.port == 0 {
        return Err(Failure::Usage(
            "--role client needs the server's --port (the server prints it on its ready line)"
                .into(),
        ));
    }
    if family != Family::Unix && cli.client_path.is_some() {
        return Err(Failure::Usage(format!(
            "--client-path applies to --family unix only, not {family}"
        )));
    }
    let server = cli.address.resolve(say)?;
    let own_path = cli.client_path.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("step8_udp-client-{}.sock", std::process::id()))
    });
    let own = (family == Family::Unix)
        .then(|| {
            SockAddr::unix(&own_path).map_err(|_| {
                Failure::Usage(format!(
                    "--client-path {} is {} bytes long; a unix socket path holds at most 107 bytes",
                    addr::printable(&own_path.display().to_string()),
                    own_path.as_os_str().len()
                ))
            })
        })
        .transpose()?;
    let message = cli.message.as_bytes();

    say.call_socket(server.domain(), Type::DGRAM, protocol(family));
    let socket = say.check(Socket::new(server.domain(), Type::DGRAM, protocol(family)))?;
    let fd = socket.as_raw_fd();
    say.returned(fd);

    // A unix datagram socket gets no address unless it binds one: without it, the server
    // would see "(unnamed)" as the sender and have nowhere to send its answer.
    if let Some(own) = &own {
        say.call(sys::bind(fd, own), "socket.bind(&own_path)");
        let bound = say.check(interrupt::owned_bind(own, || socket.bind(own)));
        if bound.is_err() {
            say.note("this path is the client's own address: choose another with --client-path");
        }
        bound?;
        say.returned("0: the server can answer this path");
    }
    let result = talk(say, &socket, &server, message, cli);
    say.call(sys::close(fd), "drop(socket)");
    drop(socket);
    say.returned("done");
    if let Some(own) = &own {
        interrupt::remove_socket_file(say, own);
    }
    result
}

/// The client's conversation: one datagram out, one answer back.
fn talk(
    say: &Narrator,
    socket: &Socket,
    server: &SockAddr,
    message: &[u8],
    cli: &Cli,
) -> Result<(), Failure> {
    let fd = socket.as_raw_fd();
    let timeout = Duration::from_millis(cli.timeout_ms);
    say.call(
        sys::setsockopt(
            fd,
            "SOL_SOCKET",
            "SO_RCVTIMEO",
            format!("{} ms", timeout.as_millis()),
        ),
        format!("socket.set_read_timeout(Some({timeout:?}))"),
    );
    say.check(socket.set_read_timeout(Some(timeout)))?;
    say.returned("0: a receive that hears nothing gives up after this long");

    if cli.connect {
        // connect() on a datagram socket: no handshake, no packet. The kernel notes the
        // default peer, and from now on delivers only datagrams from that address.
        say.call(sys::connect(fd, server), "socket.connect(&server)");
        say.check(socket.connect(server))?;
        say.returned("0: the default peer is set; nothing was sent");
        say.call(sys::send(fd, message), "socket.send(message)");
        let sent = say.check(socket.send(message))?;
        say.returned(format!("{sent}: one datagram, to the connected peer"));
        say.call(
            sys::recv(fd, cli.bufsize as usize),
            "(&socket).read(&mut buf)",
        );
        let mut buf = vec![0u8; cli.bufsize as usize];
        match (&*socket).read(&mut buf) {
            Ok(n) => {
                say.returned(format!("{n}: {}", sys::bytes(&buf[..n])));
                Ok(())
            }
            Err(error) => Err(no_answer(say, error, timeout, true)),
        }
    } else {
        say.call(
            sys::send_to(fd, message, server),
            "socket.send_to(message, &server)",
        );
        let sent = say.check(socket.send_to(message, server))?;
        say.returned(format!(
            "{sent}: one datagram, addressed to {}",
            addr::show(server)
        ));
        let (_, from) =
            next_datagram(say, socket).map_err(|e| no_answer(say, e, timeout, false))?;
        if from != *server {
            say.note("this answer comes from another address than the one the datagram went to: an unconnected socket takes datagrams from anyone");
        }
        let data = say.check(receive(say, socket, cli.bufsize as usize))?;
        let _ = data;
        Ok(())
    }
}

/// What a failed receive means: an error the kernel kept for a connected socket
/// (ECONNREFUSED), or silence until the timeout (EAGAIN).
fn no_answer(say: &Narrator, error: io::Error, timeout: Duration, connected: bool) -> Failure {
    if error.raw_os_error() == Some(libc::ECONNREFUSED) {
        refused(say, &error);
        return Failure::Peer(
            "recvfrom failed with ECONNREFUSED (Connection refused): nothing is bound to the server's address; start the server first, or check --host and --port".into(),
        );
    }
    say.error(&error);
    if error.kind() == ErrorKind::WouldBlock {
        let also = if connected {
            ""
        } else {
            " (an unconnected socket is not told when nothing listens: try --connect)"
        };
        Failure::Peer(format!(
            "no answer within {} ms: UDP does not say whether the datagram arrived{also}",
            timeout.as_millis()
        ))
    } else {
        Failure::Peer(format!(
            "recvfrom failed with {}",
            tutor::explain::describe(&error)
        ))
    }
}

/// ECONNREFUSED on a datagram socket: not a reset (UDP has none), but an ICMP message.
fn refused(say: &Narrator, error: &io::Error) {
    say.returned(format!("-1 {}", tutor::explain::describe(error)));
    say.note("the datagram was answered with an ICMP \"port unreachable\": nothing is bound at that address. The kernel kept it as this connected socket's error, and this call reports it");
}

// ---- the demo ----

/// Where the demo's peers live: for ipv4/ipv6 the loopback address (ports chosen by the
/// kernel); for unix, a fresh directory with one path per socket.
struct Places {
    family: Family,
    server: SockAddr,
    dir: Option<PathBuf>,
}

impl Places {
    /// The address a client binds: port 0 (the kernel chooses), or its own path.
    fn own(&self, name: &str) -> Result<SockAddr, Failure> {
        match &self.dir {
            Some(dir) => addr::unix(&dir.join(format!("{name}.sock"))),
            None => {
                let ip = self.server.as_socket().map(|a| a.ip());
                let ip = ip.ok_or_else(|| Failure::Peer("not an IP address".into()))?;
                Ok(SockAddr::from(std::net::SocketAddr::new(ip, 0)))
            }
        }
    }
}

fn demo(story: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let family = cli.address.family;
    let server_say = story.actor("server");
    // The unix peers' files go in a directory made new for this run (mkdir fails if the name
    // exists): nothing that was there before is touched.
    let dir = match family {
        Family::Unix => {
            Some(
                interrupt::fresh_dir("step8_udp-demo").map_err(|error| Failure::Socket {
                    call: format!(
                        "mkdir(\"{}/step8_udp-demo-...\")",
                        std::env::temp_dir().display()
                    ),
                    error,
                })?,
            )
        }
        _ => None,
    };
    let address = match &dir {
        Some(dir) => addr::unix(&dir.join("server.sock"))?,
        None => cli.address.resolve(&server_say)?,
    };
    let result = (|| {
        let (socket, server) = bind_server(&server_say, &address, family)?;
        let places = Places {
            family,
            server,
            dir: dir.clone(),
        };
        let wanted = |part: u8| cli.part.is_none_or(|only| only == part);
        if wanted(1) {
            many_peers(story, &socket, &places)?;
        }
        if wanted(2) {
            connected(story, &socket, &places)?;
        }
        if wanted(3) {
            nobody_there(story, &places)?;
        }
        if wanted(4) {
            short_buffer(story, &socket, &places)?;
        }
        close(&server_say, socket, &places.server);
        Ok(())
    })();
    if let Some(dir) = &dir {
        for why in interrupt::remove_fresh_dir(dir) {
            story.note(why);
        }
    }
    result
}

/// A client socket for the demo: socket(), and bind() to its own address, so that its port
/// (or path) is known before it sends.
fn demo_client(say: &Narrator, places: &Places, name: &str) -> Result<(Socket, SockAddr), Failure> {
    let own = places.own(name)?;
    say.call_socket(own.domain(), Type::DGRAM, protocol(places.family));
    let socket = say.check(Socket::new(
        own.domain(),
        Type::DGRAM,
        protocol(places.family),
    ))?;
    let fd = socket.as_raw_fd();
    say.returned(fd);
    say.call(sys::bind(fd, &own), "socket.bind(&own)");
    say.check(interrupt::owned_bind(&own, || socket.bind(&own)))?;
    say.returned(0);
    say.call(sys::getsockname(fd), "socket.local_addr()");
    let local = say.check(socket.local_addr())?;
    say.returned(addr::show(&local));
    Ok((socket, local))
}

/// send_to(), narrated, its error narrated too (the demo provokes some on purpose).
fn send_to(say: &Narrator, socket: &Socket, data: &[u8], to: &SockAddr) -> io::Result<usize> {
    say.call(
        sys::send_to(socket.as_raw_fd(), data, to),
        format!("socket.send_to(b{}, &address)", sys::bytes(data)),
    );
    let result = socket.send_to(data, to);
    match &result {
        Ok(n) => say.returned(n),
        Err(error) => say.error(error),
    }
    result
}

/// A server's turn: learn the sender, take the datagram, answer it.
fn serve_one(say: &Narrator, socket: &Socket, bufsize: usize) -> Result<(), Failure> {
    let (_, from) = say.check(next_datagram(say, socket))?;
    let data = say.check(receive(say, socket, bufsize))?;
    answer(say, socket, &data, &from)
}

/// A client's turn to read its answer, narrated; errors are narrated, not fatal.
fn read_answer(say: &Narrator, socket: &Socket) -> io::Result<Vec<u8>> {
    let result = receive(say, socket, 1024);
    if let Err(error) = &result {
        say.error(error);
    }
    result
}

/// Part 1. Two clients on two ports send to one server socket. Each datagram arrives with
/// its sender's address, and the server answers each one on the same socket.
fn many_peers(story: &Narrator, server: &Socket, places: &Places) -> Result<(), Failure> {
    story.section("1. one socket, many peers: each datagram brings its sender's address");
    let server_say = story.actor("server");
    let a_say = story.actor("client A");
    let b_say = story.actor("client B");
    let (a, a_at) = demo_client(&a_say, places, "client-a")?;
    let (b, b_at) = demo_client(&b_say, places, "client-b")?;
    let _ = send_to(&a_say, &a, b"hello from A", &places.server);
    let _ = send_to(&b_say, &b, b"hello from B", &places.server);
    serve_one(&server_say, server, 1024)?;
    serve_one(&server_say, server, 1024)?;
    server_say.note("two peers, one socket: no listen, no accept, no new socket per peer");
    for (say, socket) in [(&a_say, &a), (&b_say, &b)] {
        let (_, from) = say.check(next_datagram(say, socket))?;
        if from == places.server {
            say.note("the answer comes from the server's address");
        }
        say.check(receive(say, socket, 1024))?;
    }
    close(&a_say, a, &a_at);
    close(&b_say, b, &b_at);
    Ok(())
}

/// Part 2. connect() on a datagram socket sends nothing; it sets the default peer (send and
/// recv work without an address) and filters: datagrams from any other address are dropped.
fn connected(story: &Narrator, server: &Socket, places: &Places) -> Result<(), Failure> {
    story.section("2. connect() on a datagram socket: a default peer and a filter, no packet");
    let server_say = story.actor("server");
    let c_say = story.actor("client C");
    let stranger_say = story.actor("stranger");
    let (c, own) = demo_client(&c_say, places, "client-c")?;
    let fd = c.as_raw_fd();
    c_say.call(sys::connect(fd, &places.server), "socket.connect(&server)");
    c_say.check(c.connect(&places.server))?;
    c_say.returned("0: at once: no handshake; the kernel only noted the peer");

    // Did anything reach the server? Look without waiting (MSG_DONTWAIT).
    let sfd = server.as_raw_fd();
    server_say.call(
        format!("recvfrom({sfd}, NULL, 0, MSG_PEEK|MSG_TRUNC|MSG_DONTWAIT, &from)"),
        "socket.recv_from_with_flags(&mut [], MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT)",
    );
    match server.recv_from_with_flags(
        &mut [],
        libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_DONTWAIT,
    ) {
        Ok((n, from)) => server_say.returned(format!("{n}: from {}", addr::show(&from))),
        Err(error) => {
            server_say.error(&error);
            if error.kind() == ErrorKind::WouldBlock {
                server_say.note("nothing arrived: connect() on a datagram socket sent no packet");
            }
        }
    }

    c_say.call(sys::getpeername(fd), "socket.peer_addr()");
    let peer = c_say.check(c.peer_addr())?;
    c_say.returned(format!("{}: the default peer", addr::show(&peer)));

    // A stranger sends to client C. The kernel drops it: C is connected to the server.
    let (stranger, stranger_at) = demo_client(&stranger_say, places, "stranger")?;
    let stranger_sent = match send_to(&stranger_say, &stranger, b"not for you", &own) {
        Ok(_) => {
            stranger_say.note("sent: the stranger does not learn whether anyone took it");
            true
        }
        Err(error) => {
            if error.raw_os_error() == Some(libc::EPERM) {
                stranger_say.note("a unix datagram socket connected to another peer refuses other senders, and says so (EPERM); UDP drops them silently");
            }
            false
        }
    };

    c_say.call(sys::send(fd, b"hi"), "socket.send(b\"hi\")");
    let sent = c_say.check(c.send(b"hi"))?;
    c_say.returned(format!(
        "{sent}: no address needed: it goes to the connected peer"
    ));
    serve_one(&server_say, server, 1024)?;
    if let Ok(data) = read_answer(&c_say, &c)
        && data == b"hi"
        && stranger_sent
    {
        c_say.note("the server's answer, and not the stranger's datagram, which was sent first: a connected datagram socket takes datagrams from its peer only");
    }
    close(&stranger_say, stranger, &stranger_at);
    close(&c_say, c, &own);
    Ok(())
}

/// Part 3. Nobody there. A connected socket hears about it: the ICMP "port unreachable"
/// becomes ECONNREFUSED on its next call. An unconnected socket hears nothing at all.
fn nobody_there(story: &Narrator, places: &Places) -> Result<(), Failure> {
    story.section("3. nobody there: a connected socket is told, an unconnected one is not");
    let d_say = story.actor("client D");
    let e_say = story.actor("client E");
    let nobody = match &places.dir {
        Some(dir) => addr::unix(&dir.join("nobody.sock"))?,
        None => {
            // A port where nothing is bound: bind to port 0, note the port, close.
            let (probe, nobody) = demo_client(&d_say, places, "probe")?;
            d_say.call(sys::close(probe.as_raw_fd()), "drop(socket)");
            drop(probe);
            d_say.returned(format!(
                "done: nothing is bound to {} any more",
                addr::show(&nobody)
            ));
            nobody
        }
    };
    let timeout = Duration::from_millis(300);

    // Client D connects, sends, and reads.
    let (d, d_at) = demo_client(&d_say, places, "client-d")?;
    let fd = d.as_raw_fd();
    d_say.call(sys::connect(fd, &nobody), "socket.connect(&nobody)");
    match d.connect(&nobody) {
        Ok(()) => {
            d_say.returned("0: connect() cannot know that nobody is there: it sends nothing");
            d_say.call(sys::send(fd, b"anyone?"), "socket.send(b\"anyone?\")");
            match d.send(b"anyone?") {
                Ok(n) => d_say.returned(n),
                Err(error) => d_say.error(&error),
            }
            set_timeout(&d_say, &d, timeout)?;
            d_say.call(sys::recv(fd, 1024), "(&socket).read(&mut buf)");
            match receive_quietly(&d, 1024) {
                Ok(data) => d_say.returned(format!("{}: {}", data.len(), sys::bytes(&data))),
                Err(error) if error.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    refused(&d_say, &error)
                }
                Err(error) => d_say.error(&error),
            }
        }
        Err(error) => {
            d_say.error(&error);
            d_say.note("a unix datagram socket finds out at once: the path names no socket");
        }
    }
    close(&d_say, d, &d_at);

    // Client E does not connect: it sends with send_to and waits.
    let (e, e_at) = demo_client(&e_say, places, "client-e")?;
    set_timeout(&e_say, &e, timeout)?;
    if send_to(&e_say, &e, b"anyone?", &nobody).is_ok() {
        match next_datagram(&e_say, &e) {
            Ok(_) => {}
            Err(error) => {
                e_say.error(&error);
                if error.kind() == ErrorKind::WouldBlock {
                    e_say.note("300 ms of silence: the same ICMP message came back, but Linux tells an unconnected UDP socket nothing (unless it sets IP_RECVERR)");
                }
            }
        }
    }
    close(&e_say, e, &e_at);
    Ok(())
}

/// SO_RCVTIMEO, narrated: a receive gives up after `timeout`.
fn set_timeout(say: &Narrator, socket: &Socket, timeout: Duration) -> Result<(), Failure> {
    say.call(
        sys::setsockopt(
            socket.as_raw_fd(),
            "SOL_SOCKET",
            "SO_RCVTIMEO",
            format!("{} ms", timeout.as_millis()),
        ),
        format!("socket.set_read_timeout(Some({timeout:?}))"),
    );
    say.check(socket.set_read_timeout(Some(timeout)))?;
    say.returned(0);
    Ok(())
}

/// Part 4. A receive buffer smaller than the datagram: recv returns what fitted, MSG_TRUNC
/// tells the datagram's real length, and the rest is gone: the next recv gets the next
/// datagram.
fn short_buffer(story: &Narrator, server: &Socket, places: &Places) -> Result<(), Failure> {
    story.section("4. a buffer too small: the rest of the datagram is lost");
    let server_say = story.actor("server");
    let f_say = story.actor("client F");
    let (f, f_at) = demo_client(&f_say, places, "client-f")?;
    for data in [&b"0123456789"[..], b"0123456789", b"next"] {
        let _ = send_to(&f_say, &f, data, &places.server);
    }
    let fd = server.as_raw_fd();

    // A 4-byte buffer for a 10-byte datagram.
    let first = server_say.check(receive(&server_say, server, 4))?;
    if first == b"0123" {
        server_say.note("four bytes, and nothing says that six more were sent");
    }

    // MSG_TRUNC: recv returns the datagram's real length, though only 4 bytes were copied.
    let mut small = [std::mem::MaybeUninit::<u8>::uninit(); 4];
    server_say.call(
        format!("recvfrom({fd}, buf, {}, MSG_TRUNC)", small.len()),
        "socket.recv_with_flags(&mut small, MSG_TRUNC)",
    );
    let real = server_say.check(server.recv_with_flags(&mut small, libc::MSG_TRUNC))?;
    server_say.returned(format!(
        "{real}: the datagram's real length; {} bytes fitted",
        small.len()
    ));

    // The rest, 456789, is not waiting: the next recv takes the next datagram.
    let next = server_say.check(receive(&server_say, server, 1024))?;
    if next == b"next" {
        server_say.note("the next datagram, not \"456789\": what did not fit was thrown away (a TCP socket would have kept it)");
    }
    close(&f_say, f, &f_at);
    Ok(())
}

/// close(), and for unix the socket's file too.
fn close(say: &Narrator, socket: Socket, local: &SockAddr) {
    say.call(sys::close(socket.as_raw_fd()), "drop(socket)");
    drop(socket);
    say.returned("done");
    interrupt::remove_socket_file(say, local);
}
