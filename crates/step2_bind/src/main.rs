//! Step 2: bind a socket to an address.
//!
//! A server must be found at a known address, so after creating its socket it binds it: an
//! IP address and a port, or a path for a unix socket. This program binds once and shows
//! what the kernel gave it; `--demo` provokes each way a bind can fail.
//!
//! Read it beside `lessons/02-bind.md`.

mod demo;

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use socket2::{Protocol, SockAddr, Socket};
use tutor::cli::ServerAddress;
use tutor::{
    ColorWhen, Failure, Family, Narrator, SockType, Step, addr, interrupt, narrate, observe, strace,
};

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
    interrupt::stop_on_signals(&say);
    let result = if cli.demo {
        demo::run(&say)
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
    let protocol = match (family, cli.sock_type) {
        (Family::Unix, _) => None,
        (_, SockType::Stream) => Some(Protocol::TCP),
        (_, SockType::Dgram) => Some(Protocol::UDP),
    };
    let socket = narrate!(say, Socket::new(domain, ty, protocol))?;

    // 3. Options that change how bind behaves must be set before bind.
    if cli.reuse_address {
        narrate!(say, socket.set_reuse_address(true))?;
    }

    // 4. bind(): from now on this socket owns the address. Nothing is sent on the network.
    //    A unix socket's file is recorded as bind made it (device and inode), so that the
    //    program removes it at the end only if it is still that file; --keep-file: not at all.
    if cli.keep_file {
        narrate!(say, socket.bind(&address))?;
    } else {
        narrate!(say, socket.bind(&address), interrupt::owning(&address))?;
    }

    // 5. Which address did it get? With port 0 the kernel chose one: ask it.
    let local = narrate!(say, socket.local_addr())?;
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
    narrate!(say, drop(socket));

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
    // A file-system call, not a socket2 method, so not narrate!: the Rust is written out here.
    say.call_lib(strace::unlink(path), "std::fs::remove_file(path)");
    match std::fs::remove_file(path) {
        Ok(()) => say.returned(0),
        Err(error) => say.returned_error(&error),
    }
    interrupt::forget(path);
}
