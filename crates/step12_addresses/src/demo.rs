//! `--demo`: the whole story in one terminal, one thread, in a fixed order.
//!
//! 1. One name, two addresses: the lookup and its attempts (main.rs's client against a
//!    listener on 127.0.0.1 only).
//! 2. Dual stack: an IPv6 socket bound to `[::]` takes IPv4 clients too, and holds the port
//!    for IPv4, until `IPV6_V6ONLY` is set.
//! 3. SO_REUSEPORT: two listeners on one port, and the kernel spreads the connections.
//!
//! No thread is needed: a client's `connect` completes in the kernel, which queues the
//! connection for the listener's `accept`, so every call can be made in the order told.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use dns_lookup::AddrInfoHints;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tutor::narrate::Budget;
use tutor::observe::{self, TcpState};
use tutor::{Failure, Narrator, narrate};

use crate::{BACKLOG, port_of};

pub fn run(
    say: &Narrator,
    hints: AddrInfoHints,
    clients: u32,
    show_calls: u32,
) -> Result<(), Failure> {
    say.section("one name, two addresses: try each in turn");
    crate::connect(say, None, None, hints)?;
    say.section("dual stack: an IPv6 listener on [::] takes IPv4 clients too");
    dual_stack(say)?;
    say.section("SO_REUSEPORT: two listeners on one port");
    reuse_port(say, clients, show_calls)
}

fn v4(ip: Ipv4Addr, port: u16) -> SockAddr {
    SockAddr::from(SocketAddr::from((ip, port)))
}

fn v6(ip: Ipv6Addr, port: u16) -> SockAddr {
    SockAddr::from(SocketAddr::from((ip, port)))
}

fn dual_stack(story: &Narrator) -> Result<(), Failure> {
    let (server, client, another) = (
        story.actor("server"),
        story.actor("client"),
        story.actor("another"),
    );
    if let Some(value) = observe::sysctl("net.ipv6.bindv6only") {
        story.say(format!(
            "net.ipv6.bindv6only = {value}: the IPV6_V6ONLY a new IPv6 socket starts with (a Linux setting)"
        ));
    }
    let (tcp, ipv4, ipv6) = (Some(Protocol::TCP), Domain::IPV4, Domain::IPV6);
    let listener = narrate!(server, Socket::new(ipv6, Type::STREAM, tcp))?;
    narrate!(server, listener.only_v6())?;
    let any = v6(Ipv6Addr::UNSPECIFIED, 0);
    narrate!(server, listener.bind(&any))?;
    narrate!(server, listener.listen(BACKLOG))?;
    let local = narrate!(server, listener.local_addr())?;
    let port = port_of(&local);

    let to = v4(Ipv4Addr::LOCALHOST, port);
    let socket = narrate!(client, Socket::new(ipv4, Type::STREAM, tcp))?;
    narrate!(client, socket.connect(&to))?;
    let (conn, _peer) = narrate!(server, listener.accept())?;
    server.note("an IPv4 client, seen through an IPv6 socket: 127.0.0.1 as an IPv4-mapped address");
    narrate!(server, conn.local_addr())?;

    // The dual-stack socket holds the port for IPv4 as well.
    let v4_any = v4(Ipv4Addr::UNSPECIFIED, port);
    let second = narrate!(another, Socket::new(ipv4, Type::STREAM, tcp))?;
    match narrate!(another, second.bind(&v4_any)) {
        Ok(()) => another.note("bound: the IPv6 socket did not hold the IPv4 port"),
        Err(failure) if failure.errno() == Some(libc::EADDRINUSE) => {
            another.note("the [::] socket holds this port for IPv4 too")
        }
        Err(failure) => return Err(failure),
    }
    narrate!(another, drop(second));
    narrate!(client, drop(socket));
    narrate!(server, drop(conn));
    narrate!(server, drop(listener));

    // IPV6_V6ONLY: one socket per family on one port. The IPv4 socket binds first, so the
    // kernel picks a port that no IPv4 socket holds.
    let ipv4_server = narrate!(another, Socket::new(ipv4, Type::STREAM, tcp))?;
    narrate!(another, ipv4_server.bind(&v4(Ipv4Addr::UNSPECIFIED, 0)))?;
    narrate!(another, ipv4_server.listen(BACKLOG))?;
    let local = narrate!(another, ipv4_server.local_addr())?;
    let port = port_of(&local);
    let same = v6(Ipv6Addr::UNSPECIFIED, port);
    let only6 = narrate!(server, Socket::new(ipv6, Type::STREAM, tcp))?;
    match narrate!(server, only6.bind(&same)) {
        Err(failure) if failure.errno() == Some(libc::EADDRINUSE) => {
            server.note("a dual-stack socket needs the IPv4 port too, and 0.0.0.0 holds it")
        }
        other => other?,
    }
    narrate!(server, only6.set_only_v6(true))?;
    narrate!(server, only6.bind(&same))?;
    narrate!(server, only6.listen(BACKLOG))?;
    story.say(format!(
        "port {port}: 0.0.0.0 listens for IPv4, [::] (IPv6 only) for IPv6"
    ));
    let socket = narrate!(client, Socket::new(ipv4, Type::STREAM, tcp))?;
    narrate!(client, socket.connect(&v4(Ipv4Addr::LOCALHOST, port)))?;
    let (conn, _peer) = narrate!(another, ipv4_server.accept())?;
    another.note("the IPv4 client came to the IPv4 socket: an IPv6-only socket takes none");
    narrate!(client, drop(socket));
    narrate!(another, drop(conn));
    narrate!(another, drop(ipv4_server));
    narrate!(server, drop(only6));
    Ok(())
}

fn reuse_port(story: &Narrator, clients: u32, show_calls: u32) -> Result<(), Failure> {
    let (one, two, another) = (
        story.actor("server 1"),
        story.actor("server 2"),
        story.actor("another"),
    );
    let (tcp, ipv4) = (Some(Protocol::TCP), Domain::IPV4);
    let first = narrate!(one, Socket::new(ipv4, Type::STREAM, tcp))?;
    narrate!(one, first.set_reuse_port(true))?;
    narrate!(one, first.bind(&v4(Ipv4Addr::LOCALHOST, 0)))?;
    narrate!(one, first.listen(BACKLOG))?;
    let local = narrate!(one, first.local_addr())?;
    let second = narrate!(two, Socket::new(ipv4, Type::STREAM, tcp))?;
    narrate!(two, second.set_reuse_port(true))?;
    narrate!(two, second.bind(&local))?;
    narrate!(two, second.listen(BACKLOG))?;
    story.say(format!(
        "two sockets listen on {}: both set SO_REUSEPORT before bind",
        tutor::addr::show(&local)
    ));

    let third = narrate!(another, Socket::new(ipv4, Type::STREAM, tcp))?;
    match narrate!(another, third.bind(&local)) {
        Ok(()) => another.note("bound without SO_REUSEPORT"),
        Err(failure) if failure.errno() == Some(libc::EADDRINUSE) => {
            another.note("without SO_REUSEPORT of its own, a third socket may not join them")
        }
        Err(failure) => return Err(failure),
    }
    narrate!(another, drop(third));

    let mut connected = Vec::new();
    let mut budget = Budget::new(
        show_calls.into(),
        "clients, who connect the same way,",
        "--show-calls",
    );
    for n in 0..clients {
        let say = budget.next(story).actor(&format!("client {}", n + 1));
        let socket = narrate!(say, Socket::new(ipv4, Type::STREAM, tcp))?;
        narrate!(say, socket.connect(&local))?;
        connected.push(socket);
    }
    wait_until_queued(&local, clients);

    // Each listener has an accept queue of its own: take what each holds, without waiting.
    let (first, mut accepted) = take_all(&one, first, 1, show_calls)?;
    let counts = [accepted.len(), 0];
    let (second, more) = take_all(&two, second, 2, show_calls)?;
    let counts = [counts[0], more.len()];
    accepted.extend(more);
    story.say(format!(
        "of {clients} connections, server 1 accepted {} and server 2 accepted {}: the kernel chose a listener for each connection as it arrived",
        counts[0], counts[1]
    ));
    let quiet = story.quiet();
    for socket in connected.into_iter().chain(accepted) {
        narrate!(quiet, drop(socket));
    }
    narrate!(one, drop(first));
    narrate!(two, drop(second));
    Ok(())
}

/// Accepts every connection waiting in `listener`'s queue, without waiting for more: the
/// first `show_calls` narrated, the rest quietly; the accept that finds the queue empty
/// fails with EAGAIN.
fn take_all(
    say: &Narrator,
    listener: Socket,
    number: u32,
    show_calls: u32,
) -> Result<(Socket, Vec<Socket>), Failure> {
    narrate!(say, listener.set_nonblocking(true))?;
    let mut accepted = Vec::new();
    let mut budget = Budget::new(show_calls.into(), "accept calls", "--show-calls");
    loop {
        let said = budget.next(say);
        match narrate!(said, listener.accept()) {
            Ok((conn, _)) => accepted.push(conn),
            Err(failure) if failure.would_block() => break,
            Err(failure) => return Err(failure),
        }
    }
    say.note(format!(
        "EAGAIN: the queue is empty; server {number} accepted {}",
        accepted.len()
    ));
    Ok((listener, accepted))
}

/// Waits (at most two seconds) until the listeners on `local` hold `count` connections in
/// their accept queues between them, as /proc/net/tcp shows (Recv-Q of each LISTEN line).
/// On loopback they are there as soon as connect returns, or very nearly.
fn wait_until_queued(local: &SockAddr, count: u32) {
    let Some(local) = local.as_socket() else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let queued: u32 = observe::tcp_sockets()
            .unwrap_or_default()
            .iter()
            .filter(|e| e.state == TcpState::Listen && e.local == local)
            .map(|e| e.rx_queue)
            .sum();
        if queued >= count {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
