//! `--demo`: every way a bind can fail, provoked on purpose one after another, then a unix
//! socket's file. A refused bind is narrated with its hint, and the demo goes on.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tutor::{Failure, Narrator, addr, interrupt, narrate, observe};

use crate::{describe_socket_file, unlink};

/// The demo, section by section, as lesson 2 tells it.
pub fn run(say: &Narrator) -> Result<(), Failure> {
    let loopback = ip_address("127.0.0.1:0")?;

    say.section("1. port 0: the kernel chooses");
    let (first, _) = try_bind(say, &loopback, false)?;
    let taken = narrate!(say, first.local_addr())?;

    say.section("2. the same address again: EADDRINUSE");
    let (second, _) = try_bind(say, &taken, false)?;
    narrate!(say, drop(second));
    narrate!(say, drop(first));

    say.section("3. SO_REUSEADDR on both sockets");
    say.note("a new pair of sockets, both with SO_REUSEADDR, neither listening:");
    let (reuse_a, _) = try_bind(say, &loopback, true)?;
    let shared = narrate!(say, reuse_a.local_addr())?;
    let (reuse_b, shared_too) = try_bind(say, &shared, true)?;
    if shared_too {
        say.note("Linux lets both have the port, because neither listens yet. Once one listens:");
    }
    narrate!(say, reuse_a.listen(1))?;
    let (reuse_c, _) = try_bind(say, &shared, true)?;
    say.note(
        "SO_REUSEADDR does not let two servers listen on one port; what it is for is step 6's TIME-WAIT",
    );
    narrate!(say, drop(reuse_a));
    narrate!(say, drop(reuse_b));
    narrate!(say, drop(reuse_c));

    say.section("4. an address this machine does not have: EADDRNOTAVAIL");
    // 203.0.113.0/24 is reserved for documentation: no machine should have it.
    let foreign = ip_address("203.0.113.7:0")?;
    let (unlucky, _) = try_bind(say, &foreign, false)?;
    narrate!(say, drop(unlucky));

    say.section("5. a privileged port: EACCES");
    privileged_port(say);

    say.section("6. a unix socket's address is a file");
    let path = std::env::temp_dir().join(format!("step2_bind-demo-{}.sock", std::process::id()));
    let file = addr::unix(&path)?;
    let (unix, _) = try_bind_unix(say, &file)?;
    describe_socket_file(say, &path);
    narrate!(say, drop(unix));
    say.note(format!(
        "{} is still there after close: binding it again fails",
        path.display()
    ));
    let (again, _) = try_bind_unix(say, &file)?;
    narrate!(say, drop(again));
    say.note("so a unix server removes its own file when it stops, and only its own: a file it did not make is left alone");
    unlink(say, &path);
    let (after_unlink, _) = try_bind_unix(say, &file)?;
    narrate!(say, drop(after_unlink));
    unlink(say, &path);
    Ok(())
}

/// `127.0.0.1:0` as a socket address.
fn ip_address(text: &str) -> Result<SockAddr, Failure> {
    text.parse::<std::net::SocketAddr>()
        .map(SockAddr::from)
        .map_err(|e| Failure::Usage(e.to_string()))
}

/// Creates a TCP socket and binds it, narrating both. A refused bind is narrated with its
/// hint, not fatal: the demo provokes it on purpose. Returns the socket, and whether the bind
/// worked.
fn try_bind(say: &Narrator, address: &SockAddr, reuse: bool) -> Result<(Socket, bool), Failure> {
    let domain = address.domain();
    let socket = narrate!(say, Socket::new(domain, Type::STREAM, Some(Protocol::TCP)))?;
    if reuse {
        narrate!(say, socket.set_reuse_address(true))?;
    }
    match narrate!(say, socket.bind(address)) {
        Ok(()) => Ok((socket, true)),
        Err(failure) => {
            say.hint(&failure);
            Ok((socket, false))
        }
    }
}

/// Like [`try_bind`], for a unix stream socket; the file a bind creates is recorded, so that
/// only that very file is removed (lesson 2, "Remove only what you made").
fn try_bind_unix(say: &Narrator, address: &SockAddr) -> Result<(Socket, bool), Failure> {
    let socket = narrate!(say, Socket::new(Domain::UNIX, Type::STREAM, None))?;
    match narrate!(say, socket.bind(address), interrupt::owning(address)) {
        Ok(()) => Ok((socket, true)),
        Err(failure) => {
            say.hint(&failure);
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
            narrate!(say, drop(socket));
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
