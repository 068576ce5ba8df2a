//! 12_try_each: a client given several addresses (HOST:PORT arguments, as a lookup lists
//! them) tries each in turn until one connects, then sends `hello\n`. The check runs it three
//! times against servers of its own: the first address refuses and the second answers; both
//! answer (the first must win); both refuse (it must fail, not claim success).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{Ctx, QUICK, show, wait_until};
use crate::Failure;

const READ: &str = "lessons/12-addresses.md#walk-through-the-code";

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    // The first address of each list: ::1 where this machine has IPv6, else 127.0.0.2 (also
    // this machine: all of 127.0.0.0/8 is loopback).
    let first_ip = if TcpListener::bind("[::1]:0").is_ok() {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
    };
    the_second_answers_when_the_first_refuses(ctx, first_ip)?;
    the_first_that_answers_wins(ctx, first_ip)?;
    none_answers(ctx, first_ip)
}

fn the_second_answers_when_the_first_refuses(ctx: &Ctx, first_ip: IpAddr) -> Result<(), Failure> {
    let server = listener(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0))?;
    let second = server.local_addr().map_err(setup)?;
    // A socket bound there, not listening: a connect to it is refused.
    let first = SocketAddr::new(first_ip, second.port());
    let _holder = holder(first)?;
    let what = format!("run it with {first} (refuses) {second} (a server listens)");
    let mut running = ctx.start(&[&first.to_string(), &second.to_string()])?;
    let exit = running.wait_exit(QUICK);
    match accepted(&server) {
        Some(got) if got == b"hello\n" && exit.is_some_and(|s| s.success()) => {
            ctx.passed(format!(
                "refused at {first}, it connected to {second}, sent \"hello\\n\" and exited 0"
            ));
            Ok(())
        }
        Some(got) => Err(Failure::new(
            what,
            "a connection to the second address, \"hello\\n\" on it, then exit code 0",
            format!(
                "the server got {}; the program: {}",
                show(&got),
                running.what_happened()
            ),
        )),
        None => {
            let happened = running.what_happened();
            let why = if happened.contains("todo!()") {
                "nobody connected to the second address"
            } else if happened.contains("Invalid argument") || happened.contains("os error 22") {
                "the second connect failed with EINVAL: it used the socket made for the first address; make a new socket for each address, of that address's family"
            } else if exit.is_some() {
                "nobody connected to the second address: it gave up after the first address was refused; try each address in turn, as socket.create_connection does"
            } else {
                "nobody connected to the second address"
            };
            Err(Failure::new(
                what,
                format!("refused at {first}, a new socket for {second}, connected"),
                format!("{why}; {happened}"),
            )
            .read(READ))
        }
    }
}

fn the_first_that_answers_wins(ctx: &Ctx, first_ip: IpAddr) -> Result<(), Failure> {
    // Two servers on one port number, one per address; a few tries in case another program
    // holds the port on the second address.
    let (one, two) = (1..=5)
        .find_map(|_| {
            let one = listener(SocketAddr::new(first_ip, 0)).ok()?;
            let port = one.local_addr().ok()?.port();
            let two = listener(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)).ok()?;
            Some((one, two))
        })
        .ok_or_else(|| setup("no port free on both addresses"))?;
    let first = one.local_addr().map_err(setup)?;
    let second = two.local_addr().map_err(setup)?;
    let mut running = ctx.start(&[&first.to_string(), &second.to_string()])?;
    running.wait_exit(QUICK);
    let (at_first, at_second) = (accepted(&one), accepted(&two));
    if at_first.is_some() && at_second.is_none() {
        ctx.passed(format!(
            "both answer: it connected to the first, {first}, only"
        ));
        return Ok(());
    }
    let happened = match (at_first, at_second) {
        (None, Some(_)) => format!(
            "it connected to {second}, the second: the addresses come in the order to try them, the first first"
        ),
        (Some(_), Some(_)) => {
            "it connected to both: the first that connects ends the search".to_owned()
        }
        _ => format!("nobody got a connection; {}", running.what_happened()),
    };
    Err(Failure::new(
        format!("run it with {first} {second}, a server on each"),
        format!("one connection, to {first}"),
        happened,
    )
    .read(READ))
}

fn none_answers(ctx: &Ctx, first_ip: IpAddr) -> Result<(), Failure> {
    let second_holder = holder(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0))?;
    let second = second_holder
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| setup("no address"))?;
    let first = SocketAddr::new(first_ip, second.port());
    let _first_holder = holder(first)?;
    let what = format!("run it with {first} {second}, both refusing");
    let mut running = ctx.start(&[&first.to_string(), &second.to_string()])?;
    match running.wait_exit(QUICK) {
        Some(status) if !status.success() => {
            ctx.passed("every address refused: it failed, with a non-zero exit code");
            Ok(())
        }
        Some(_) => Err(Failure::new(
            what,
            "an error and a non-zero exit code: no address connected",
            format!(
                "it exited with code 0 though no address connected; {}",
                running.what_happened()
            ),
        )
        .read(READ)),
        None => Err(Failure::new(
            what,
            format!("an error and a non-zero exit code within {QUICK:?}"),
            running.what_happened(),
        )),
    }
}

fn setup(e: impl std::fmt::Display) -> Failure {
    Failure::new(
        "set up the check's servers",
        "sockets on this machine's loopback addresses",
        e.to_string(),
    )
}

fn listener(address: SocketAddr) -> Result<TcpListener, Failure> {
    let listener = TcpListener::bind(address).map_err(setup)?;
    listener.set_nonblocking(true).map_err(setup)?;
    Ok(listener)
}

/// A TCP socket bound to `address` that does not listen: a connect there is refused.
fn holder(address: SocketAddr) -> Result<Socket, Failure> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(setup)?;
    socket.bind(&SockAddr::from(address)).map_err(setup)?;
    Ok(socket)
}

/// What the first client of `listener` sent before closing, if one connected (within
/// [`QUICK`]; the program has exited or had its chance already).
fn accepted(listener: &TcpListener) -> Option<Vec<u8>> {
    let mut conn: Option<TcpStream> = None;
    wait_until(QUICK / 5, || {
        conn = listener.accept().ok().map(|(c, _)| c);
        conn.is_some()
    });
    let conn = conn?;
    conn.set_nonblocking(false).ok()?;
    conn.set_read_timeout(Some(QUICK)).ok()?;
    let mut got = Vec::new();
    let _ = conn.take(64).read_to_end(&mut got);
    Some(got)
}
