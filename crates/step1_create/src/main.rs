//! Step 1: create a socket.
//!
//! A server's first step, and a client's: ask the kernel for a socket. This program makes
//! that one call, `socket(2)`, and then looks at what came back: a file descriptor, a socket
//! with no address yet, and the options every new socket starts with.
//!
//! Read it beside `lessons/01-create.md`.

use std::os::fd::AsRawFd;
use std::process::ExitCode;

use clap::Parser;
use socket2::{Protocol, Socket};
use tutor::{ColorWhen, Failure, Family, Narrator, SockType, Step, narrate, observe};

const STEP: Step = Step {
    number: 1,
    crate_name: "step1_create",
    title: "create a socket",
    lesson: "lessons/01-create.md",
};

/// Step 1 of the socket course: create a socket and look at it.
///
/// Makes one socket(2) call, then shows what the kernel handed back: a file descriptor, a
/// socket with no address yet, and its default options (blocking mode, SO_RCVBUF,
/// SO_SNDBUF). Try --family and --type to see how the call and the defaults change.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/01-create.md")]
struct Cli {
    /// Address family: the first argument of socket(2)
    #[arg(long, value_enum, default_value_t = Family::Ipv4)]
    family: Family,

    /// Socket type: the second argument of socket(2)
    #[arg(long = "type", value_enum, default_value_t = SockType::Stream)]
    sock_type: SockType,

    /// Create this many sockets and keep them all open: watch the descriptor numbers climb
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    count: u32,

    /// Keep the socket open until you press Enter, to look at it from another terminal
    #[arg(long)]
    hold: bool,

    /// Create one socket of every family and type in turn, then compare them in a table
    #[arg(long, conflicts_with_all = ["family", "sock_type", "count", "hold"])]
    demo: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    color: ColorWhen,
}

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    let result = if cli.demo {
        demo(&say)
    } else {
        create(&say, cli.family, cli.sock_type, cli.count, cli.hold).map(|_| ())
    };
    tutor::finish(&say, result)
}

/// What one socket looked like, for the demo's table.
struct Seen {
    family: Family,
    sock_type: SockType,
    fd: i32,
    rcvbuf: usize,
    sndbuf: usize,
}

fn create(
    say: &Narrator,
    family: Family,
    sock_type: SockType,
    count: u32,
    hold: bool,
) -> Result<Seen, Failure> {
    // 1. The three arguments of socket(2): the address family, the socket type, and the
    //    protocol. For IP sockets the type decides the protocol (a stream is TCP, datagrams
    //    are UDP); passing it explicitly says so. Unix sockets have no protocol to choose.
    let domain = family.domain();
    let ty = sock_type.ty();
    let protocol = match (family, sock_type) {
        (Family::Unix, _) => None,
        (_, SockType::Stream) => Some(Protocol::TCP),
        (_, SockType::Dgram) => Some(Protocol::UDP),
    };

    // 2. Ask the kernel for a socket. What comes back is a file descriptor: a small number
    //    that names the socket in every later call, as it would name an open file.
    let socket = narrate!(say, Socket::new(domain, ty, protocol))?;
    let fd = socket.as_raw_fd();
    say.note(format!(
        "file descriptor {fd}: the lowest number this process had free (0, 1 and 2 are stdin, stdout, stderr)"
    ));
    if let Some(target) = observe::fd_target(fd) {
        say.note(format!(
            "/proc/{}/fd/{fd} -> {target}: the kernel's socket, known by its inode number",
            std::process::id()
        ));
    }

    // With --count, more sockets: each takes the lowest descriptor still free, until the
    // process reaches its limit (`ulimit -n`) and socket() fails with EMFILE.
    let mut more = Vec::new();
    for _ in 1..count {
        let another = narrate!(say, Socket::new(domain, ty, protocol))?;
        more.push(another);
    }

    // 3. A new socket has no address: no IP address, no port, no path.
    narrate!(say, socket.local_addr())?;
    match family {
        Family::Unix => say.note("no path yet: bind() gives the socket one (step 2)"),
        _ => say.note("no address and port 0: bind() gives the socket an address (step 2)"),
    }

    // 4. Its options start at the kernel's defaults. A socket starts in blocking mode: a call
    //    that cannot finish yet (accept, recv) waits rather than failing.
    let nonblocking = narrate!(say, socket.nonblocking())?;
    say.note(if nonblocking {
        "O_NONBLOCK is set: non-blocking mode"
    } else {
        "O_NONBLOCK is not set: blocking mode"
    });

    // 5. The kernel keeps a receive buffer and a send buffer for every socket. Their
    //    default sizes come from sysctl settings that depend on the family and type.
    let (rcv_setting, snd_setting) = default_buffer_settings(family, sock_type);
    let rcvbuf = narrate!(say, socket.recv_buffer_size())?;
    say.note(setting_origin(rcv_setting));
    let sndbuf = narrate!(say, socket.send_buffer_size())?;
    say.note(setting_origin(snd_setting));

    // 6. Optionally keep the socket open, so that it can be seen from outside.
    if hold {
        let pid = std::process::id();
        say.say(format!(
            "holding fd {fd} open. In another terminal try:\n  ls -l /proc/{pid}/fd\nPress Enter to close it."
        ));
        observe::wait_for_enter();
    }

    // 7. Close it: dropping a socket2 Socket calls close(2). Drop does not report what
    //    close returned. The number is free again.
    narrate!(say, drop(socket));
    for another in more {
        narrate!(say, drop(another));
    }

    Ok(Seen {
        family,
        sock_type,
        fd,
        rcvbuf,
        sndbuf,
    })
}

/// Which sysctl settings give a new socket its receive and send buffer sizes.
fn default_buffer_settings(family: Family, sock_type: SockType) -> (&'static str, &'static str) {
    match (family, sock_type) {
        (Family::Unix, _) | (_, SockType::Dgram) => {
            ("net.core.rmem_default", "net.core.wmem_default")
        }
        (_, SockType::Stream) => ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"),
    }
}

/// "the default comes from net.ipv4.tcp_rmem = 4096 131072 6291456 (min default max)".
fn setting_origin(setting: &str) -> String {
    match observe::sysctl(setting) {
        Some(value) if value.contains(' ') => {
            format!("the default is the middle of {setting} = {value} (min default max)")
        }
        Some(value) => format!("the default is {setting} = {value}"),
        None => format!("the default comes from {setting}"),
    }
}

/// Creates a socket of every family and type in turn, then compares them.
fn demo(say: &Narrator) -> Result<(), Failure> {
    let mut seen = Vec::new();
    for family in [Family::Ipv4, Family::Ipv6, Family::Unix] {
        for sock_type in [SockType::Stream, SockType::Dgram] {
            say.section(format!("--family {family} --type {sock_type}"));
            match create(say, family, sock_type, 1, false) {
                Ok(one) => seen.push(one),
                // One kind this machine cannot create (IPv6 switched off, say) is part of
                // the story, not the end of it: the error has been narrated.
                Err(Failure::Socket { .. }) => continue,
                Err(other) => return Err(other),
            }
        }
    }
    say.section("compared");
    say.say(format!(
        "{:<8} {:<8} {:>4} {:>10} {:>10}",
        "family", "type", "fd", "SO_RCVBUF", "SO_SNDBUF"
    ));
    for one in &seen {
        say.say(format!(
            "{:<8} {:<8} {:>4} {:>10} {:>10}",
            one.family.to_string(),
            one.sock_type.to_string(),
            one.fd,
            one.rcvbuf,
            one.sndbuf
        ));
    }
    say.note("every socket got the same fd: each was closed before the next was created");
    Ok(())
}
