//! Step 2: bind a socket to an address.
//!
//! A server must be found at a known address, so after creating its socket it binds it: an
//! IP address and a port, or a path for a unix socket. This program binds once and shows
//! what the kernel gave it; `--demo` provokes each way a bind can fail.
//!
//! Read it beside `lessons/02-bind.md`.

use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tutor::cli::ServerAddress;
use tutor::{ColorWhen, Failure, Family, Narrator, SockType, Step, addr, interrupt, observe, sys};

const STEP: Step = Step {
    number: 2,
    crate_name: "step2_bind",
    title: "bind: give the socket an address",
    lesson: "lessons/02-bind.md",
};

/// Step 2 of the socket course: bind a socket to an address.
///
/// Creates a socket and binds it to --host and --port (or to --path for a unix socket), then
/// shows the address the kernel gave it. Port 0 lets the kernel choose. --demo shows each way
/// a bind fails: an address in use, an address this machine does not have, a privileged port.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/02-bind.md")]
struct Cli {
    #[command(flatten)]
    address: ServerAddress,

    /// Socket type: bind works the same for streams and datagrams
    #[arg(long = "type", value_name = "TYPE", value_enum, default_value_t = SockType::Stream)]
    sock_type: SockType,

    /// Set SO_REUSEADDR before binding
    #[arg(long)]
    reuse_address: bool,

    /// Keep the socket bound until you press Enter (run a second copy to see EADDRINUSE)
    #[arg(long)]
    hold: bool,

    /// With --family unix, leave the socket file behind when the program ends
    #[arg(long)]
    keep_file: bool,

    /// Show every way a bind can fail, one after another, then exit
    #[arg(long, conflicts_with_all = ["hold", "keep_file", "reuse_address"])]
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
    let result = if cli.demo {
        demo(&say)
    } else {
        bind(&say, &cli)
    };
    tutor::finish(&say, result)
}

fn bind(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    // 1. The address to bind. A host name is looked up first (getaddrinfo), as Python's
    //    bind(('localhost', 8080)) does; an IP address is used as it is.
    let address = cli.address.resolve(say)?;
    let family = cli.address.family;

    // 2. A socket, as in step 1.
    let domain = family.domain();
    let ty = cli.sock_type.ty();
    let protocol = protocol_for(family, cli.sock_type);
    say.call_socket(domain, ty, protocol);
    let socket = say.check(Socket::new(domain, ty, protocol))?;
    let fd = socket.as_raw_fd();
    say.returned(fd);

    // 3. Options that change how bind behaves must be set before bind.
    if cli.reuse_address {
        say.call(
            sys::setsockopt(fd, "SOL_SOCKET", "SO_REUSEADDR", 1),
            "socket.set_reuse_address(true)",
        );
        say.check(socket.set_reuse_address(true))?;
        say.returned(0);
    }

    // 4. bind(): from now on this socket owns the address. Nothing is sent on the network.
    //    A unix socket's file is recorded as bind made it (device and inode), so that the
    //    program removes it at the end only if it is still that file; --keep-file: not at all.
    say.call(sys::bind(fd, &address), "socket.bind(&address)");
    let bound = if cli.keep_file {
        socket.bind(&address)
    } else {
        interrupt::owned_bind(&address, || socket.bind(&address))
    };
    say.check(bound)?;
    say.returned(0);

    // 5. Which address did it get? With port 0 the kernel chose one: ask it.
    say.call(sys::getsockname(fd), "socket.local_addr()");
    let local = say.check(socket.local_addr())?;
    say.returned(addr::show(&local));
    explain_bound_address(say, &address, &local);

    // 6. A unix socket's address is a file: bind created it.
    if let Some(path) = local.as_pathname() {
        describe_socket_file(say, path);
    }

    if cli.hold {
        say.ready("bound to", &local);
        say.say(format!(
            "holding it. Run a second copy with the same address to see it refused. In another terminal try:\n  ls -l /proc/{}/fd\nPress Enter to close it.",
            std::process::id()
        ));
        observe::wait_for_enter();
    }

    // 7. close() releases the address at once (for a socket that never connected).
    say.call(sys::close(fd), "drop(socket)");
    drop(socket);
    say.returned("done");

    // 8. ...except a unix socket's file: close does not remove it.
    if let Some(path) = local.as_pathname() {
        if path.exists() {
            say.note(format!(
                "{} is still there: closing a socket does not remove its file",
                path.display()
            ));
        }
        if cli.keep_file {
            say.note("--keep-file: left in place; binding to it again fails with EADDRINUSE until it is removed");
        } else {
            unlink(say, path);
        }
    }
    Ok(())
}

/// The protocol for a family and type, as in step 1.
fn protocol_for(family: Family, sock_type: SockType) -> Option<Protocol> {
    match (family, sock_type) {
        (Family::Unix, _) => None,
        (_, SockType::Stream) => Some(Protocol::TCP),
        (_, SockType::Dgram) => Some(Protocol::UDP),
    }
}

/// Says what the bound address means: a port the kernel chose, every local address, loopback.
fn explain_bound_address(say: &Narrator, asked: &SockAddr, got: &SockAddr) {
    let (Some(asked), Some(got)) = (asked.as_socket(), got.as_socket()) else {
        return;
    };
    if asked.port() == 0 {
        let range = observe::sysctl("net.ipv4.ip_local_port_range").unwrap_or_default();
        say.note(format!(
            "port 0 asked the kernel to choose: it chose {} from net.ipv4.ip_local_port_range = {range}",
            got.port()
        ));
    }
    if got.ip().is_unspecified() {
        say.note("the unspecified address: the socket takes this port on every local address");
    } else if got.ip().is_loopback() {
        say.note("a loopback address: only programs on this machine can reach it");
    }
}

/// What bind left on disk for a unix socket: a file of type socket.
fn describe_socket_file(say: &Narrator, path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => say.note(format!(
            "bind created {}: a file of type socket ('s' in ls -l), so the address is visible to other processes",
            path.display()
        )),
        Ok(_) => say.note(format!("{} exists but is not a socket", path.display())),
        Err(error) => say.note(format!("{}: {error}", path.display())),
    }
}

/// Removes a unix socket's file, narrated: it is the program's job, not the kernel's. But a
/// path is only a name: someone may have removed the socket and put their own file there, or
/// bound a second server to it. So first `lstat`: only the socket this program bound (a
/// socket, with the device and inode it had after bind) is removed.
fn unlink(say: &Narrator, path: &Path) {
    if !interrupt::still_ours(path) {
        say.note(format!(
            "left {} in place: it is not the socket this program bound",
            addr::printable(&path.display().to_string())
        ));
        interrupt::forget(path);
        return;
    }
    say.note("lstat: still a socket, with the device and inode bind gave it: ours to remove");
    say.call_lib(sys::unlink(path), "std::fs::remove_file(path)");
    match std::fs::remove_file(path) {
        Ok(()) => say.returned(0),
        Err(error) => say.error(&error),
    }
    interrupt::forget(path);
}

/// The demo: every way a bind can fail, provoked on purpose, then the unix-socket file.
fn demo(say: &Narrator) -> Result<(), Failure> {
    let loopback: SockAddr = "127.0.0.1:0"
        .parse::<std::net::SocketAddr>()
        .map(SockAddr::from)
        .map_err(|e| Failure::Usage(e.to_string()))?;

    say.section("1. port 0: the kernel chooses");
    let (first, _) = try_bind(say, &loopback, false)?;
    say.call(sys::getsockname(first.as_raw_fd()), "first.local_addr()");
    let taken = say.check(first.local_addr())?;
    say.returned(addr::show(&taken));

    say.section("2. the same address again: EADDRINUSE");
    let (second, _) = try_bind(say, &taken, false)?;
    close(say, second);
    close(say, first);

    say.section("3. SO_REUSEADDR on both sockets");
    say.note("a new pair of sockets, both with SO_REUSEADDR, neither listening:");
    let (reuse_a, _) = try_bind(say, &loopback, true)?;
    say.call(
        sys::getsockname(reuse_a.as_raw_fd()),
        "reuse_a.local_addr()",
    );
    let shared = say.check(reuse_a.local_addr())?;
    say.returned(addr::show(&shared));
    let (reuse_b, shared_too) = try_bind(say, &shared, true)?;
    if shared_too {
        say.note("Linux lets both have the port, because neither listens yet. Once one listens:");
    }
    say.call(sys::listen(reuse_a.as_raw_fd(), 1), "reuse_a.listen(1)");
    say.check(reuse_a.listen(1))?;
    say.returned(0);
    let (reuse_c, _) = try_bind(say, &shared, true)?;
    say.note(
        "SO_REUSEADDR does not let two servers listen on one port; what it is for is step 6's TIME-WAIT",
    );
    for socket in [reuse_a, reuse_b, reuse_c] {
        close(say, socket);
    }

    say.section("4. an address this machine does not have: EADDRNOTAVAIL");
    // 203.0.113.0/24 is reserved for documentation: no machine should have it.
    let foreign: SockAddr = "203.0.113.7:0"
        .parse::<std::net::SocketAddr>()
        .map(SockAddr::from)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    close(say, try_bind(say, &foreign, false)?.0);

    say.section("5. a privileged port: EACCES");
    privileged_port(say);

    say.section("6. a unix socket's address is a file");
    let path = std::env::temp_dir().join(format!("step2_bind-demo-{}.sock", std::process::id()));
    let file = addr::unix(&path)?;
    let (unix, _) = try_bind_unix(say, &file)?;
    describe_socket_file(say, &path);
    close(say, unix);
    say.note(format!(
        "{} is still there after close: binding it again fails",
        path.display()
    ));
    close(say, try_bind_unix(say, &file)?.0);
    say.note("so a unix server removes its own file when it stops, and only its own: a file it did not make is left alone");
    unlink(say, &path);
    close(say, try_bind_unix(say, &file)?.0);
    unlink(say, &path);
    Ok(())
}

/// Closes a demo socket, narrated.
fn close(say: &Narrator, socket: Socket) {
    say.call(sys::close(socket.as_raw_fd()), "drop(socket)");
    drop(socket);
    say.returned("done");
}

/// Creates a TCP socket and binds it, narrating both. A refused bind is narrated, not fatal:
/// the demo provokes it on purpose. Returns the socket, and whether the bind worked.
fn try_bind(say: &Narrator, address: &SockAddr, reuse: bool) -> Result<(Socket, bool), Failure> {
    let domain = address.domain();
    say.call_socket(domain, Type::STREAM, Some(Protocol::TCP));
    let socket = say.check(Socket::new(domain, Type::STREAM, Some(Protocol::TCP)))?;
    let fd = socket.as_raw_fd();
    say.returned(fd);
    if reuse {
        say.call(
            sys::setsockopt(fd, "SOL_SOCKET", "SO_REUSEADDR", 1),
            "socket.set_reuse_address(true)",
        );
        say.check(socket.set_reuse_address(true))?;
        say.returned(0);
    }
    say.call(sys::bind(fd, address), "socket.bind(&address)");
    match socket.bind(address) {
        Ok(()) => {
            say.returned(0);
            Ok((socket, true))
        }
        Err(error) => {
            say.error(&error);
            Ok((socket, false))
        }
    }
}

/// Like [`try_bind`], for a unix stream socket.
fn try_bind_unix(say: &Narrator, address: &SockAddr) -> Result<(Socket, bool), Failure> {
    say.call_socket(Domain::UNIX, Type::STREAM, None);
    let socket = say.check(Socket::new(Domain::UNIX, Type::STREAM, None))?;
    let fd = socket.as_raw_fd();
    say.returned(fd);
    say.call(sys::bind(fd, address), "socket.bind(&address)");
    match interrupt::owned_bind(address, || socket.bind(address)) {
        Ok(()) => {
            say.returned(0);
            Ok((socket, true))
        }
        Err(error) => {
            say.error(&error);
            Ok((socket, false))
        }
    }
}

/// Ports below net.ipv4.ip_unprivileged_port_start need privilege. Root has it, so when run
/// as root the demo runs this program again as the unprivileged user `nobody` to show the
/// refusal a normal user gets.
fn privileged_port(say: &Narrator) {
    let start: u16 = observe::sysctl("net.ipv4.ip_unprivileged_port_start")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    if start <= 1 {
        say.note(format!(
            "net.ipv4.ip_unprivileged_port_start = {start}: on this machine every port is open to every user"
        ));
        return;
    }
    let port = if start > 80 { 80 } else { start - 1 };
    say.note(format!(
        "ports below net.ipv4.ip_unprivileged_port_start = {start} need root (or CAP_NET_BIND_SERVICE)"
    ));
    let euid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    if euid.is_ok_and(|uid| uid != 0) {
        let privileged: SockAddr = std::net::SocketAddr::from(([127, 0, 0, 1], port)).into();
        if let Ok((socket, _)) = try_bind(say, &privileged, false) {
            close(say, socket);
        }
        return;
    }
    say.note(format!(
        "this program runs as root, which may bind port {port}; here is the same bind run as user nobody (uid 65534):"
    ));
    let run_as_nobody = std::env::current_exe().and_then(|exe| {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(exe)
            .args(["--port", &port.to_string(), "--color", "never"])
            .uid(65534)
            .gid(65534)
            .output()
    });
    match run_as_nobody {
        Ok(output) => {
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            for line in text.lines().skip(2) {
                say.say(format!("   | {line}"));
            }
        }
        Err(error) => say.note(format!("could not run as nobody: {error}")),
    }
}
