//! Step 9: stream vs datagram, measured.
//!
//! The same seven experiments over a SOCK_STREAM pair and a SOCK_DGRAM pair of sockets, and
//! a table of what happened, side by side: whether a handshake comes first, message
//! boundaries, a buffer too small, a peer that is not there, a fast sender and a slow
//! receiver, ordering, and the end of a conversation. Nothing in the table is written in:
//! every cell is measured on the spot, for --family ipv4 (TCP, UDP), ipv6, or unix.
//!
//! Read it beside `lessons/09-stream-vs-dgram.md`.

use std::fmt::Display;
use std::io::{self, ErrorKind, Read};
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tutor::explain::error_name;
use tutor::{ColorWhen, Failure, Family, Narrator, Step, interrupt, sys};

const STEP: Step = Step {
    number: 9,
    crate_name: "step9_stream_vs_dgram",
    title: "stream vs datagram, measured",
    lesson: "lessons/09-stream-vs-dgram.md",
};

/// How long any one wait in an experiment may last.
const WAIT: Duration = Duration::from_millis(200);

/// The experiments, in the table's order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Row {
    /// Is a handshake needed before data?
    Handshake,
    /// Three sends of different sizes: how many receives?
    Boundaries,
    /// A receive buffer smaller than the message
    ShortBuffer,
    /// The peer is not there
    NoPeer,
    /// A fast sender and a slow receiver with a small receive buffer
    Pressure,
    /// 100 numbered messages: order and duplicates
    Order,
    /// How the receiver learns the conversation is over
    End,
}

const ROWS: [Row; 7] = [
    Row::Handshake,
    Row::Boundaries,
    Row::ShortBuffer,
    Row::NoPeer,
    Row::Pressure,
    Row::Order,
    Row::End,
];

impl Row {
    fn name(self) -> &'static str {
        match self {
            Row::Handshake => "handshake",
            Row::Boundaries => "boundaries",
            Row::ShortBuffer => "short-buffer",
            Row::NoPeer => "no-peer",
            Row::Pressure => "pressure",
            Row::Order => "order",
            Row::End => "end",
        }
    }
}

/// How to print the results.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The calls of each experiment, then the table
    Text,
    /// Only the table, as tab-separated values: row, stream, dgram
    Tsv,
}

/// Step 9 of the socket course: stream vs datagram, measured side by side.
///
/// Runs seven experiments over a SOCK_STREAM pair and a SOCK_DGRAM pair (TCP and UDP for
/// ipv4 and ipv6; unix-domain sockets for unix) and prints what happened in a table. Every
/// cell is measured on this run. --only ROW runs one experiment; --format tsv prints the
/// table alone, for scripts (scripts/compare.sh draws it for every family).
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/09-stream-vs-dgram.md")]
struct Cli {
    /// Address family: ipv4 (TCP/UDP on 127.0.0.1), ipv6 (on ::1), unix (paths in a temp dir)
    #[arg(long, value_enum, default_value_t = Family::Ipv4)]
    family: Family,

    /// Run only this experiment
    #[arg(long, value_enum)]
    only: Option<Row>,

    /// How to print the results
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// The same as running without it: draw the table and exit (every step has a --demo)
    #[arg(long)]
    demo: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    color: ColorWhen,
}

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    interrupt::stop_on_signals(&say);
    let text = cli.format == Format::Text;
    if text {
        say.header();
    }
    let result = run(&say, &cli, text);
    tutor::finish(&say, result)
}

fn run(say: &Narrator, cli: &Cli, text: bool) -> Result<(), Failure> {
    let lab = Lab::new(cli.family, text.then(|| say.clone()))?;
    let mut table = Vec::new();
    for row in ROWS {
        if cli.only.is_some_and(|only| only != row) {
            continue;
        }
        if text {
            say.section(format!("{}: {}", row.name(), describe(row)));
        }
        let stream = lab.measure(row, Type::STREAM);
        let dgram = lab.measure(row, Type::DGRAM);
        table.push((row, cell(stream), cell(dgram)));
    }
    lab.clean_up();
    let (stream_name, dgram_name) = match cli.family {
        Family::Unix => ("SOCK_STREAM (unix)", "SOCK_DGRAM (unix)"),
        _ => ("SOCK_STREAM (TCP)", "SOCK_DGRAM (UDP)"),
    };
    if text {
        say.section(format!("the table ({})", cli.family));
        print_table(stream_name, dgram_name, &table);
    } else {
        tutor::outln!("row\t{stream_name}\t{dgram_name}");
        for (row, stream, dgram) in &table {
            tutor::outln!("{}\t{stream}\t{dgram}", row.name());
        }
    }
    Ok(())
}

fn describe(row: Row) -> &'static str {
    match row {
        Row::Handshake => "is a handshake needed before data?",
        Row::Boundaries => "three sends of 3, 5 and 7 bytes: how many receives?",
        Row::ShortBuffer => "a 10-byte message meets a 4-byte buffer",
        Row::NoPeer => "nothing is at the address",
        Row::Pressure => "a fast sender, a receiver with a small buffer that reads late",
        Row::Order => "100 numbered messages: order and duplicates",
        Row::End => "how does the receiver learn that the conversation is over?",
    }
}

/// A failed experiment still fills its cell: with the error, so the table says what broke.
fn cell(result: io::Result<String>) -> String {
    result.unwrap_or_else(|error| format!("failed: {}", error_name(&error)))
}

fn print_table(stream_name: &str, dgram_name: &str, table: &[(Row, String, String)]) {
    let first = table
        .iter()
        .map(|(_, s, _)| s.len())
        .chain([stream_name.len()])
        .max()
        .unwrap_or(0);
    tutor::outln!(
        "{:<13} {:<first$}   {dgram_name}",
        "experiment",
        stream_name
    );
    tutor::outln!(
        "{:<13} {:<first$}   {}",
        "-".repeat(10),
        "-".repeat(first),
        "-".repeat(dgram_name.len())
    );
    for (row, stream, dgram) in table {
        tutor::outln!("{:<13} {stream:<first$}   {dgram}", row.name());
    }
}

/// Where the experiments make their sockets, and the narrator (none for --format tsv).
struct Lab {
    family: Family,
    say: Option<Narrator>,
    dir: Option<PathBuf>,
}

/// A pair of connected sockets for one experiment: `a` sends, `b` receives.
struct Pair {
    a: Socket,
    b: Socket,
    /// For a stream: the listening socket, kept until the pair is dropped.
    _listener: Option<Socket>,
}

impl Lab {
    fn new(family: Family, say: Option<Narrator>) -> Result<Lab, Failure> {
        // The unix sockets live in a directory of this run's own: made new (mkdir fails if
        // the name exists, and another name is tried), so nothing that was there is touched.
        let dir = match family {
            Family::Unix => {
                Some(
                    interrupt::fresh_dir("step9").map_err(|error| Failure::Socket {
                        call: format!("mkdir(\"{}/step9-...\")", std::env::temp_dir().display()),
                        error,
                    })?,
                )
            }
            _ => None,
        };
        Ok(Lab { family, say, dir })
    }

    /// Removes the socket files this run bound and its directory, and nothing else.
    fn clean_up(&self) {
        if let Some(dir) = &self.dir {
            for why in interrupt::remove_fresh_dir(dir) {
                if let Some(say) = &self.say {
                    say.note(why);
                }
            }
        }
    }

    // ---- narration: the calls each experiment makes, and what it measured ----

    fn call(&self, who: &str, syscall: impl Display, rust: impl Display) {
        if let Some(say) = &self.say {
            say.actor(who).call(syscall, rust);
        }
    }

    fn returned<T: Display>(&self, who: &str, result: &io::Result<T>) {
        if let Some(say) = &self.say {
            match result {
                Ok(value) => say.actor(who).returned(value),
                Err(error) => say
                    .actor(who)
                    .returned(format!("-1 {}", tutor::explain::describe(error))),
            }
        }
    }

    fn note(&self, text: impl Display) {
        if let Some(say) = &self.say {
            say.note(text);
        }
    }

    // ---- addresses and sockets ----

    fn domain(&self) -> Domain {
        self.family.domain()
    }

    fn protocol(&self, ty: Type) -> Option<Protocol> {
        match (self.family, ty == Type::STREAM) {
            (Family::Unix, _) => None,
            (_, true) => Some(Protocol::TCP),
            (_, false) => Some(Protocol::UDP),
        }
    }

    /// A fresh address to bind: port 0 on loopback, or a new path.
    fn fresh(&self, name: &str) -> io::Result<SockAddr> {
        match (&self.dir, self.family) {
            (Some(dir), _) => {
                use std::sync::atomic::{AtomicU32, Ordering};
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                SockAddr::unix(dir.join(format!("{name}-{n}.sock")))
            }
            (None, Family::Ipv6) => Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0).into()),
            (None, _) => Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).into()),
        }
    }

    fn socket(&self, who: &str, ty: Type) -> io::Result<Socket> {
        let protocol = self.protocol(ty);
        if let Some(say) = &self.say {
            say.actor(who).call_socket(self.domain(), ty, protocol);
        }
        let socket = Socket::new(self.domain(), ty, protocol);
        self.returned(
            who,
            &socket.as_ref().map(|s| s.as_raw_fd()).map_err(clone_error),
        );
        let socket = socket?;
        // Every wait is bounded: a receive gives up after WAIT.
        self.set_timeout(who, &socket, WAIT)?;
        Ok(socket)
    }

    /// SO_RCVTIMEO: a blocking receive gives up after `timeout` (EAGAIN).
    fn set_timeout(&self, who: &str, socket: &Socket, timeout: Duration) -> io::Result<()> {
        self.call(
            who,
            sys::setsockopt(
                socket.as_raw_fd(),
                "SOL_SOCKET",
                "SO_RCVTIMEO",
                format!("{} ms", timeout.as_millis()),
            ),
            format!(
                "socket.set_read_timeout(Some(Duration::from_millis({})))",
                timeout.as_millis()
            ),
        );
        let result = socket.set_read_timeout(Some(timeout));
        self.returned(who, &result.as_ref().map(|_| 0).map_err(clone_error));
        result
    }

    /// O_NONBLOCK on or off: a call that would wait fails with EAGAIN instead.
    fn set_nonblocking(&self, who: &str, socket: &Socket, on: bool) -> io::Result<()> {
        let flags = if on { "O_RDWR|O_NONBLOCK" } else { "O_RDWR" };
        self.call(
            who,
            format!("fcntl({}, F_SETFL, {flags})", socket.as_raw_fd()),
            format!("socket.set_nonblocking({on})"),
        );
        let result = socket.set_nonblocking(on);
        self.returned(who, &result.as_ref().map(|_| 0).map_err(clone_error));
        result
    }

    fn shutdown(&self, who: &str, socket: &Socket, how: Shutdown) -> io::Result<()> {
        self.call(
            who,
            sys::shutdown(socket.as_raw_fd(), how),
            format!("socket.shutdown(Shutdown::{how:?})"),
        );
        let result = socket.shutdown(how);
        self.returned(who, &result.as_ref().map(|_| 0).map_err(clone_error));
        result
    }

    fn bind(&self, who: &str, socket: &Socket, name: &str) -> io::Result<SockAddr> {
        let address = self.fresh(name)?;
        self.call(
            who,
            sys::bind(socket.as_raw_fd(), &address),
            "socket.bind(&address)",
        );
        let result = interrupt::owned_bind(&address, || socket.bind(&address));
        self.returned(who, &result.as_ref().map(|_| 0).map_err(clone_error));
        result?;
        self.call(
            who,
            sys::getsockname(socket.as_raw_fd()),
            "socket.local_addr()",
        );
        let bound = socket.local_addr();
        self.returned(
            who,
            &bound.as_ref().map(tutor::addr::show).map_err(clone_error),
        );
        bound
    }

    /// A connected pair. Stream: a listener, a client that connects, the accepted socket.
    /// Datagram: two bound sockets, each connected to the other.
    fn pair(&self, ty: Type) -> io::Result<Pair> {
        if ty == Type::STREAM {
            let listener = self.socket("receiver", ty)?;
            let at = self.bind("receiver", &listener, "listener")?;
            self.call(
                "receiver",
                sys::listen(listener.as_raw_fd(), 8),
                "listener.listen(8)",
            );
            let r = listener.listen(8);
            self.returned("receiver", &r.as_ref().map(|_| 0).map_err(clone_error));
            r?;
            let a = self.socket("sender", ty)?;
            self.connect("sender", &a, &at)?;
            self.call(
                "receiver",
                sys::accept(listener.as_raw_fd()),
                "listener.accept()",
            );
            let accepted = listener.accept();
            self.returned(
                "receiver",
                &accepted
                    .as_ref()
                    .map(|(s, _)| s.as_raw_fd())
                    .map_err(clone_error),
            );
            let (b, _) = accepted?;
            self.set_timeout("receiver", &b, WAIT)?;
            Ok(Pair {
                a,
                b,
                _listener: Some(listener),
            })
        } else {
            let a = self.socket("sender", ty)?;
            let a_at = self.bind("sender", &a, "sender")?;
            let b = self.socket("receiver", ty)?;
            let b_at = self.bind("receiver", &b, "receiver")?;
            self.connect("sender", &a, &b_at)?;
            self.connect("receiver", &b, &a_at)?;
            Ok(Pair {
                a,
                b,
                _listener: None,
            })
        }
    }

    fn connect(&self, who: &str, socket: &Socket, to: &SockAddr) -> io::Result<()> {
        self.call(
            who,
            sys::connect(socket.as_raw_fd(), to),
            "socket.connect(&address)",
        );
        let result = socket.connect(to);
        self.returned(who, &result.as_ref().map(|_| 0).map_err(clone_error));
        result
    }

    fn send(&self, who: &str, socket: &Socket, data: &[u8]) -> io::Result<usize> {
        self.call(
            who,
            sys::send(socket.as_raw_fd(), data),
            format!("socket.send(b{})", sys::bytes(data)),
        );
        let result = socket.send(data);
        self.returned(who, &result.as_ref().map(|n| *n).map_err(clone_error));
        result
    }

    fn send_to(&self, who: &str, socket: &Socket, data: &[u8], to: &SockAddr) -> io::Result<usize> {
        self.call(
            who,
            sys::send_to(socket.as_raw_fd(), data, to),
            format!("socket.send_to(b{}, &address)", sys::bytes(data)),
        );
        let result = socket.send_to(data, to);
        self.returned(who, &result.as_ref().map(|n| *n).map_err(clone_error));
        result
    }

    fn recv(&self, who: &str, socket: &Socket, size: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; size];
        self.call(
            who,
            sys::recv(socket.as_raw_fd(), size),
            "(&socket).read(&mut buf)",
        );
        let result = (&*socket).read(&mut buf).map(|n| buf[..n].to_vec());
        self.returned(
            who,
            &result
                .as_ref()
                .map(|d| format!("{}: {}", d.len(), sys::bytes(d)))
                .map_err(clone_error),
        );
        result
    }

    /// Waits, at most WAIT, until `bytes` bytes can be read from a stream socket, without
    /// reading them: recv with MSG_PEEK|MSG_WAITALL. So a later recv sees all of them at once.
    fn wait_for_bytes(&self, who: &str, socket: &Socket, bytes: usize) -> io::Result<usize> {
        let mut peek = vec![MaybeUninit::<u8>::uninit(); bytes];
        self.call(
            who,
            format!(
                "recvfrom({}, buf, {bytes}, MSG_PEEK|MSG_WAITALL)",
                socket.as_raw_fd()
            ),
            "socket.recv_with_flags(&mut peek, MSG_PEEK | MSG_WAITALL)",
        );
        let result = socket.recv_with_flags(&mut peek, libc::MSG_PEEK | libc::MSG_WAITALL);
        self.returned(who, &result.as_ref().map(|n| *n).map_err(clone_error));
        result
    }

    fn close(&self, who: &str, socket: Socket) {
        self.call(who, sys::close(socket.as_raw_fd()), "drop(socket)");
        drop(socket);
        if let Some(say) = &self.say {
            say.actor(who).returned("done");
        }
    }

    // ---- the experiments ----

    fn measure(&self, row: Row, ty: Type) -> io::Result<String> {
        match row {
            Row::Handshake => self.handshake(ty),
            Row::Boundaries => self.boundaries(ty),
            Row::ShortBuffer => self.short_buffer(ty),
            Row::NoPeer => self.no_peer(ty),
            Row::Pressure => self.pressure(ty),
            Row::Order => self.order(ty),
            Row::End => self.end(ty),
        }
    }

    /// Stream: send on a socket that never connected fails; a connected client's data waits
    /// for a server that has not called accept yet. Datagram: a fresh socket sends at once.
    fn handshake(&self, ty: Type) -> io::Result<String> {
        if ty == Type::STREAM {
            let lone = self.socket("sender", ty)?;
            let error = match self.send("sender", &lone, b"hello") {
                Ok(n) => format!("sent {n}"),
                Err(e) => error_name(&e),
            };
            self.close("sender", lone);
            let listener = self.socket("receiver", ty)?;
            let at = self.bind("receiver", &listener, "listener")?;
            self.call(
                "receiver",
                sys::listen(listener.as_raw_fd(), 8),
                "listener.listen(8)",
            );
            listener.listen(8)?;
            self.returned("receiver", &Ok::<_, io::Error>(0));
            let client = self.socket("sender", ty)?;
            self.connect("sender", &client, &at)?;
            self.send("sender", &client, b"early")?;
            self.call(
                "receiver",
                sys::accept(listener.as_raw_fd()),
                "listener.accept()",
            );
            let (conn, _) = listener.accept()?;
            self.returned("receiver", &Ok::<_, io::Error>(conn.as_raw_fd()));
            self.set_timeout("receiver", &conn, WAIT)?;
            let got = self.recv("receiver", &conn, 64)?;
            self.note("the connection existed before accept(): the kernel did the handshake and kept the data");
            Ok(format!(
                "connect first (send without: {error}); {} B sent before accept arrived",
                got.len()
            ))
        } else {
            let receiver = self.socket("receiver", ty)?;
            let at = self.bind("receiver", &receiver, "receiver")?;
            let sender = self.socket("sender", ty)?;
            if self.family == Family::Unix {
                // A unix datagram socket needs a path of its own only to be answered.
                self.note("(the sender does not bind: it will not be answered)");
            }
            let sent = self.send_to("sender", &sender, b"hello", &at)?;
            let got = self.recv("receiver", &receiver, 64)?;
            self.note("no call before send_to: no connect, no bind, no handshake");
            Ok(format!(
                "none: a fresh socket's send_to ({sent} B) arrived: {} B",
                got.len()
            ))
        }
    }

    /// Three sends; then, once everything has arrived, receive until nothing is left.
    fn boundaries(&self, ty: Type) -> io::Result<String> {
        let pair = self.pair(ty)?;
        let messages: [&[u8]; 3] = [b"abc", b"defgh", b"ijklmno"];
        for m in messages {
            self.send("sender", &pair.a, m)?;
        }
        if ty == Type::STREAM {
            self.wait_for_bytes("receiver", &pair.b, 15)?;
        }
        let sizes = self.drain_sizes(&pair.b, ty)?;
        let shown: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
        Ok(format!(
            "3 sends (3, 5, 7 B) -> {} recv: {} B",
            sizes.len(),
            shown.join(", ")
        ))
    }

    /// Receives with a 1024-byte buffer, without waiting, until nothing is left; returns
    /// the size of each receive.
    fn drain_sizes(&self, socket: &Socket, ty: Type) -> io::Result<Vec<usize>> {
        self.set_nonblocking("receiver", socket, true)?;
        let mut sizes = Vec::new();
        for _ in 0..1000 {
            match self.recv("receiver", socket, 1024) {
                Ok(data) if data.is_empty() && ty == Type::STREAM => break,
                Ok(data) => sizes.push(data.len()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        self.set_nonblocking("receiver", socket, false)?;
        Ok(sizes)
    }

    /// "0123456789" and "next"; the receiver reads 4 bytes, then whatever comes next.
    fn short_buffer(&self, ty: Type) -> io::Result<String> {
        let pair = self.pair(ty)?;
        self.send("sender", &pair.a, b"0123456789")?;
        self.send("sender", &pair.a, b"next")?;
        if ty == Type::STREAM {
            self.wait_for_bytes("receiver", &pair.b, 14)?;
        }
        let first = self.recv("receiver", &pair.b, 4)?;
        let second = self.recv("receiver", &pair.b, 1024)?;
        let kept = if second.starts_with(b"456789") {
            "rest kept"
        } else {
            "rest lost"
        };
        Ok(format!(
            "recv(4): {}, next recv: {} ({kept})",
            String::from_utf8_lossy(&first),
            String::from_utf8_lossy(&second)
        ))
    }

    /// An address where nothing is: a port bound a moment ago and closed, or a path that
    /// does not exist.
    fn nobody(&self, ty: Type) -> io::Result<SockAddr> {
        if self.dir.is_some() {
            return self.fresh("nobody");
        }
        let probe = self.socket("probe", ty)?;
        let at = self.bind("probe", &probe, "probe")?;
        self.close("probe", probe);
        Ok(at)
    }

    fn no_peer(&self, ty: Type) -> io::Result<String> {
        let nobody = self.nobody(ty)?;
        if ty == Type::STREAM {
            let client = self.socket("sender", ty)?;
            let result = self.connect("sender", &client, &nobody);
            return Ok(match result {
                Ok(()) => "connect: succeeded?".to_owned(),
                Err(e) => format!("connect fails at once: {}", error_name(&e)),
            });
        }
        // Unconnected: send_to, then wait for anything at all.
        let lone = self.socket("sender", ty)?;
        let _ = self.bind("sender", &lone, "lone");
        let unconnected = match self.send_to("sender", &lone, b"anyone?", &nobody) {
            Err(e) => format!("send_to: {}", error_name(&e)),
            Ok(_) => match self.recv("sender", &lone, 64) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    "send_to ok, then silence".to_owned()
                }
                Err(e) => format!("send_to ok, then {}", error_name(&e)),
                Ok(_) => "send_to ok, then an answer?".to_owned(),
            },
        };
        // Connected: connect, send, and the next call.
        let connected = self.socket("sender", ty)?;
        let _ = self.bind("sender", &connected, "connected");
        let told = match self.connect("sender", &connected, &nobody) {
            Err(e) => format!("connect: {}", error_name(&e)),
            Ok(()) => match self.send("sender", &connected, b"anyone?") {
                Err(e) => format!("connect ok, send: {}", error_name(&e)),
                Ok(_) => match self.recv("sender", &connected, 64) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => "connected: silence".to_owned(),
                    Err(e) => format!("connected: {} on recv", error_name(&e)),
                    Ok(_) => "connected: an answer?".to_owned(),
                },
            },
        };
        Ok(format!("{unconnected}; {told}"))
    }

    /// The sender sends without blocking until it has offered 200 messages of 1000 bytes
    /// or the kernel refuses more (EAGAIN); only then does the receiver read.
    fn pressure(&self, ty: Type) -> io::Result<String> {
        let pair = self.pair(ty)?;
        let fd = pair.b.as_raw_fd();
        self.call(
            "receiver",
            sys::setsockopt(fd, "SOL_SOCKET", "SO_RCVBUF", 4096),
            "socket.set_recv_buffer_size(4096)",
        );
        pair.b.set_recv_buffer_size(4096)?;
        self.returned("receiver", &Ok::<_, io::Error>(0));
        if ty == Type::STREAM {
            // A small send buffer too, so the sender soon finds the kernel full.
            self.call(
                "sender",
                sys::setsockopt(pair.a.as_raw_fd(), "SOL_SOCKET", "SO_SNDBUF", 4096),
                "socket.set_send_buffer_size(4096)",
            );
            pair.a.set_send_buffer_size(4096)?;
            self.returned("sender", &Ok::<_, io::Error>(0));
            // The receiver reads until end of file; a slow trickle must not time it out.
            self.set_timeout("receiver", &pair.b, Duration::from_secs(2))?;
        }
        let chunk = [b'x'; 1000];
        self.set_nonblocking("sender", &pair.a, true)?;
        self.note("the sender offers 200 messages of 1000 bytes without blocking; the calls are counted, not shown");
        let mut sent_msgs = 0;
        let mut sent_bytes = 0;
        let mut refused = None;
        let deadline = Instant::now() + Duration::from_secs(1);
        for _ in 0..200 {
            match pair.a.send(&chunk) {
                Ok(n) => {
                    sent_msgs += 1;
                    sent_bytes += n;
                }
                Err(e) => {
                    refused = Some(error_name(&e));
                    break;
                }
            }
            if Instant::now() > deadline {
                break;
            }
        }
        if ty == Type::STREAM {
            // The end of the data: a FIN after the last byte the kernel took.
            self.shutdown("sender", &pair.a, Shutdown::Write)?;
        }
        // The receiver reads everything there is, without waiting for more.
        let mut got_msgs = 0;
        let mut got_bytes = 0;
        let mut buf = [0u8; 4096];
        if ty == Type::DGRAM {
            self.set_nonblocking("receiver", &pair.b, true)?;
        }
        self.note("the receiver reads everything there is; the calls are counted, not shown");
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match (&pair.b).read(&mut buf) {
                Ok(0) if ty == Type::STREAM => break,
                Ok(n) => {
                    got_msgs += 1;
                    got_bytes += n;
                }
                Err(_) => break,
            }
        }
        let stop = refused.map_or("never refused".to_owned(), |e| format!("then {e}"));
        self.note(format!(
            "sent {sent_msgs} sends ({sent_bytes} B), {stop}; received {got_bytes} B"
        ));
        Ok(if ty == Type::STREAM {
            let lost = sent_bytes - got_bytes.min(sent_bytes);
            format!(
                "kernel took {sent_bytes} of 200000 B, {stop}; received {got_bytes} B, {lost} lost"
            )
        } else {
            format!(
                "{sent_msgs} of 200 sent, {stop}; {got_msgs} received, {} dropped",
                sent_msgs - got_msgs.min(sent_msgs)
            )
        })
    }

    /// 100 messages numbered 0..99 (4 bytes each); the receiver checks order and duplicates.
    fn order(&self, ty: Type) -> io::Result<String> {
        let pair = self.pair(ty)?;
        self.note("100 sends of a 4-byte number, then receives until all 400 bytes came; the calls are counted, not shown");
        for i in 0u32..100 {
            pair.a.send(&i.to_be_bytes())?;
        }
        let mut bytes = Vec::new();
        let mut buf = [0u8; 1024];
        let deadline = Instant::now() + Duration::from_secs(2);
        while bytes.len() < 400 && Instant::now() < deadline {
            match (&pair.b).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        let numbers: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let in_order = numbers.windows(2).all(|w| w[0] < w[1]);
        let mut unique = numbers.clone();
        unique.sort_unstable();
        unique.dedup();
        let duplicates = numbers.len() - unique.len();
        Ok(format!(
            "{} of 100 arrived, {}, {duplicates} duplicates",
            numbers.len(),
            if in_order { "in order" } else { "out of order" }
        ))
    }

    /// Stream: the sender closes, the receiver's recv returns 0. Datagram: an empty
    /// datagram also makes recv return 0, and a close sends nothing at all.
    fn end(&self, ty: Type) -> io::Result<String> {
        let pair = self.pair(ty)?;
        if ty == Type::STREAM {
            self.close("sender", pair.a);
            let data = self.recv("receiver", &pair.b, 64)?;
            return Ok(format!("peer closes -> recv returns {}", data.len()));
        }
        self.send("sender", &pair.a, b"")?;
        let empty = self.recv("receiver", &pair.b, 64)?;
        self.close("sender", pair.a);
        let after = match self.recv("receiver", &pair.b, 64) {
            Ok(d) => format!("recv returns {}", d.len()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                "nothing: recv waits (timeout)".to_owned()
            }
            Err(e) => error_name(&e),
        };
        Ok(format!(
            "an empty datagram -> recv returns {}; peer closes -> {after}",
            empty.len()
        ))
    }
}

/// io::Error is not Clone; narration needs a copy of it.
fn clone_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}
