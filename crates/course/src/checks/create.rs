//! 01_create: the program creates an IPv4 TCP socket, prints its descriptor and keeps it open
//! until Enter. The check finds the descriptor in /proc/PID/fd and asks the kernel, through a
//! copy of it (pidfd_getfd), what socket it is.

use socket2::{Domain, Protocol, Type};

use super::{Ctx, QUICK, exits_cleanly_after_enter};
use crate::Failure;

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    let mut running = ctx.start(&[])?;
    let fd: i32 = running.expect_line("socket fd N, ...", QUICK, |line| {
        let (_, rest) = line.split_once("fd ")?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })?;
    let pid = running.pid();
    let sockets = running.socket_fds();
    let Some(&(_, inode)) = sockets.iter().find(|(n, _)| *n == fd) else {
        return Err(Failure::new(
            format!("look at /proc/{pid}/fd/{fd}"),
            format!("descriptor {fd} is a socket, open while the program waits for Enter"),
            format!(
                "the program's sockets are {sockets:?} (descriptor, inode): {fd} is not one of them"
            ),
        )
        .read("lessons/01-create.md#look-from-outside"));
    };
    ctx.passed(format!("/proc/{pid}/fd/{fd} -> socket:[{inode}]"));

    match running.copy_socket(fd) {
        Ok(socket) => {
            let what = format!("ask the kernel what socket {fd} is");
            let domain = socket.domain().ok();
            let ty = socket.r#type().ok();
            let protocol = socket.protocol().ok().flatten();
            let expected = "an IPv4 TCP socket: AF_INET, SOCK_STREAM, IPPROTO_TCP";
            let name = |x: Option<String>| x.unwrap_or_else(|| "?".to_owned());
            let got = format!(
                "{}, {}, {}",
                name(domain.map(|d| format!("{d:?}"))),
                name(ty.map(|t| format!("{t:?}"))),
                name(protocol.map(|p| format!("{p:?}")))
            );
            if domain != Some(Domain::IPV4) {
                return Err(Failure::new(
                    what,
                    expected,
                    format!("it is {got}: the seed's AF_INET is Domain::IPV4"),
                ));
            }
            if ty != Some(Type::STREAM) {
                return Err(Failure::new(
                    what,
                    expected,
                    format!(
                        "it is {got}: the seed's SOCK_STREAM is Type::STREAM; SOCK_DGRAM is UDP, step 8"
                    ),
                ));
            }
            if protocol != Some(Protocol::TCP) {
                return Err(Failure::new(what, expected, format!("it is {got}")));
            }
            ctx.passed(format!("it is {got}"));
            let local = socket.local_addr().ok().and_then(|a| a.as_socket());
            if local.is_some_and(|a| a.port() != 0) {
                return Err(Failure::new(
                    "ask the kernel for its address",
                    "no address yet (0.0.0.0:0): binding is step 2",
                    format!("it is bound to {local:?}"),
                )
                .read("lessons/01-create.md#look-from-outside"));
            }
            ctx.passed("it has no address yet (0.0.0.0:0)");
        }
        Err(why) => ctx.skipped(format!("the socket's family and type ({why})")),
    }
    exits_cleanly_after_enter(&mut running, "press Enter")?;
    ctx.passed("after Enter it closed the socket and exited with code 0");

    // The call itself, as strace sees it, where strace is installed.
    match ctx.trace(&[], "socket") {
        None => ctx.skipped("the system call as strace shows it (strace is not installed)"),
        Some(Err(why)) => ctx.skipped(format!("the system call as strace shows it ({why})")),
        Some(Ok(lines)) => {
            let Some(call) = lines.iter().find(|l| l.starts_with("socket(")) else {
                return Err(Failure::new(
                    "run it under strace -e trace=socket",
                    "one socket() call",
                    format!("strace saw no socket() call: {lines:?}"),
                ));
            };
            if !(call.contains("AF_INET,")
                && call.contains("SOCK_STREAM")
                && call.contains("IPPROTO_TCP"))
            {
                return Err(Failure::new(
                    "run it under strace -e trace=socket",
                    "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = 3",
                    format!("strace saw {call}"),
                ));
            }
            ctx.passed(format!("strace: {call}"));
        }
    }
    Ok(())
}
