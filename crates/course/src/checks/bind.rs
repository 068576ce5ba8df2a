//! 02_bind: the program binds a TCP socket to the address on its command line, prints the
//! address the kernel gave it, and keeps it until Enter. The check asks the kernel (a copy of
//! the socket, and a bind of its own to the same address) and tries an address in use.

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{Ctx, QUICK, exits_cleanly_after_enter};
use crate::Failure;

/// Runs the program with `asked` and checks the address it got.
fn bound(ctx: &Ctx, asked: &str) -> Result<(), Failure> {
    let want: SocketAddr = asked.parse().expect("the checker asks for a valid address");
    let mut running = ctx.start(&[asked])?;
    let got = running.expect_address("bound to")?;
    let what = format!("run it with {asked}");
    if got.port() == 0 {
        return Err(Failure::new(
            what,
            "the port the kernel chose, from socket.local_addr()",
            format!("it printed {got}: port 0 asks the kernel to choose; local_addr() says which port it chose"),
        )
        .read("lessons/02-bind.md#walk-through-the-code"));
    }
    if got.ip() != want.ip() {
        return Err(Failure::new(
            what,
            format!("an address on {} (the host it was given)", want.ip()),
            format!("it printed {got}: bind the address from the command line"),
        ));
    }
    // The kernel's view: a socket of the program holds that address.
    let sockets = running.socket_fds();
    let held = sockets.iter().find_map(|&(fd, _)| {
        let copy = running.copy_socket(fd).ok()?;
        let local = copy.local_addr().ok()?.as_socket()?;
        (local == got).then_some(())
    });
    match (
        held,
        sockets
            .iter()
            .find_map(|&(fd, _)| running.copy_socket(fd).err()),
    ) {
        (Some(()), _) => ctx.passed(format!("a socket of the program is bound to {got}")),
        (None, Some(why)) => ctx.skipped(format!("which socket holds {got} ({why})")),
        (None, None) => {
            return Err(Failure::new(
                format!("ask the kernel which address the program's sockets have ({asked})"),
                format!("one of them bound to {got}, the address it printed"),
                "none of its sockets has that address",
            ));
        }
    }
    // A second bind to the same address must fail: the port is taken.
    let other =
        Socket::new(Domain::for_address(got), Type::STREAM, Some(Protocol::TCP)).map_err(|e| {
            Failure::new(
                "create a socket of the checker's",
                "a socket",
                e.to_string(),
            )
        })?;
    if other.bind(&SockAddr::from(got)).is_ok() {
        return Err(Failure::new(
            format!("bind another socket to {got}"),
            "EADDRINUSE: the program's socket holds that port",
            "the bind succeeded: nothing holds the address the program printed",
        ));
    }
    ctx.passed(format!(
        "{got} is taken: another bind to it gets EADDRINUSE"
    ));
    exits_cleanly_after_enter(&mut running, &format!("press Enter ({asked})"))?;
    Ok(())
}

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    bound(ctx, "127.0.0.1:0")?;
    match Socket::new(Domain::IPV6, Type::STREAM, None).and_then(|s| {
        s.bind(&SockAddr::from(
            "[::1]:0".parse::<SocketAddr>().expect("an address"),
        ))
    }) {
        Ok(()) => bound(ctx, "[::1]:0")?,
        Err(e) => ctx.skipped(format!(
            "binding [::1]:0: this machine has no IPv6 loopback ({e})"
        )),
    }

    // An address in use: bind fails, and the program says so and exits with an error.
    let taken = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| Ok((l.local_addr()?, l)))
        .map_err(|e| Failure::new("take a port", "a listener", e.to_string()))?;
    let (address, _listener) = taken;
    let asked = address.to_string();
    let mut running = ctx.start(&[&asked])?;
    let what = format!("run it with {asked}, an address another socket holds");
    running.press_enter();
    match running.wait_exit(QUICK) {
        Some(status) if status.code() == Some(1) => {
            ctx.passed(format!("with {asked} in use, bind's error ends it with code 1"));
            Ok(())
        }
        _ => Err(Failure::new(
            what,
            "bind fails with EADDRINUSE (\"Address already in use\"); `?` returns the error from main, which exits with code 1",
            running.what_happened(),
        )
        .read("lessons/02-bind.md#what-can-go-wrong")),
    }
}
