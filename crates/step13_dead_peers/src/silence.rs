//! Silence, measured: a connect nobody answers, and a peer that vanishes in mid-connection.
//! Both happen on the demo's own little network ([`crate::netns`]): "here" at 10.13.0.1 and
//! "peer" at 10.13.0.2, joined by a virtual cable.

use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};
use tutor::{Failure, Narrator, narrate};

use crate::netns::{NOBODY, Namespace, PEER, Wire};

/// The read timeout of the vanish scene: shorter than the keepalive's verdict.
const READ_TIMEOUT: Duration = Duration::from_millis(500);
/// How long sent data may go unacknowledged on the connection that sends (TCP_USER_TIMEOUT).
const USER_TIMEOUT: Duration = Duration::from_secs(1);

/// A TCP socket made in namespace `ns`: it lives there, whichever thread uses it.
fn socket_in(ns: &Namespace, say: &Narrator) -> Result<Socket, Failure> {
    let say = say.clone();
    ns.run(move || {
        narrate!(
            say,
            Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        )
    })
}

fn address(ip: &str, port: u16) -> SockAddr {
    let ip: IpAddr = ip.parse().expect("the demo's addresses are valid");
    SockAddr::from(SocketAddr::new(ip, port))
}

/// A connect to an address whose SYNs are dropped: ETIMEDOUT, when the kernel gives up.
pub fn silent_connect(say: &Narrator, wire: &Wire, syn_retries: u32) -> Result<(), Failure> {
    say.section("a connect nobody answers");
    let here = say.actor("here");
    wire.here
        .sysctl("net.ipv4.tcp_syn_retries", &syn_retries.to_string())
        .map_err(Failure::Peer)?;
    here.say(format!(
        "net.ipv4.tcp_syn_retries = {syn_retries} in this private namespace: the SYN is sent, then resent {syn_retries} time(s), each wait twice the last: {} s in all",
        crate::give_up_after(syn_retries)
    ));
    here.say(format!(
        "{NOBODY} is an address on the demo's cable that nobody has: the peer's kernel drops its packets without a word"
    ));
    let socket = socket_in(&wire.here, &here)?;
    let nobody = address(NOBODY, 80);
    let started = Instant::now();
    match narrate!(here, socket.connect(&nobody)) {
        Err(failure) if failure.errno() == Some(libc::ETIMEDOUT) => here.note(format!(
            "after {:.1} s: no answer to any SYN, and the kernel gave up. A timeout the kernel decides is an errno: ETIMEDOUT",
            started.elapsed().as_secs_f64()
        )),
        Err(failure) => return Err(failure),
        Ok(()) => here.note("answered: something on this machine's network took the address"),
    }
    narrate!(here, drop(socket));
    Ok(())
}

/// A peer that vanishes without a FIN: data sent to it goes unacknowledged until
/// TCP_USER_TIMEOUT ends it with ETIMEDOUT; a read timeout ends a wait with EAGAIN, keepalive
/// with ETIMEDOUT; and a connection with none of them goes on waiting.
pub fn vanished_peer(say: &Narrator, wire: &Wire, keepalive: &TcpKeepalive) -> Result<(), Failure> {
    say.section("a peer that vanishes without a word");
    let (here, peer) = (say.actor("here"), say.actor("peer"));

    // The peer listens on its end of the cable.
    let listener = socket_in(&wire.peer, &peer)?;
    let anywhere_on_the_cable = address(PEER, 0);
    narrate!(peer, listener.bind(&anywhere_on_the_cable))?;
    let backlog = 2;
    narrate!(peer, listener.listen(backlog))?;
    let at = narrate!(peer, listener.local_addr())?;

    // Three connections to it: one as every socket starts, one watched by keepalive and a
    // read timeout, and one that will send with a user timeout.
    let plain = socket_in(&wire.here, &here)?;
    narrate!(here, plain.connect(&at))?;
    let watched = socket_in(&wire.here, &here)?;
    narrate!(here, watched.set_tcp_keepalive(keepalive))?;
    narrate!(here, watched.set_read_timeout(Some(READ_TIMEOUT)))?;
    narrate!(here, watched.connect(&at))?;
    let sender = socket_in(&wire.here, &here)?;
    narrate!(here, sender.set_tcp_user_timeout(Some(USER_TIMEOUT)))?;
    narrate!(here, sender.connect(&at))?;
    let (to_plain, _) = narrate!(peer, listener.accept())?;
    let (to_watched, _) = narrate!(peer, listener.accept())?;
    let (to_sender, _) = narrate!(peer, listener.accept())?;
    narrate!(peer, to_watched.send(b"hello\n"))?;
    let mut buf = [0u8; 64];
    narrate!(here, (&watched).read(&mut buf))?;
    here.note("the connection works: the peer's bytes arrive");

    // The peer vanishes: no FIN, no reset, nothing.
    wire.pull_cable().map_err(Failure::Peer)?;
    let pulled = Instant::now();
    peer.say("ip link set vpeer down: the peer's cable is pulled. No FIN, no reset: from now on nothing arrives, and nothing answers");
    let since = || pulled.elapsed().as_secs_f64();

    // Data sent now is never acknowledged: the kernel resends it, until the user timeout.
    narrate!(here, sender.send(b"are you there?\n"))?;
    here.note("taken: send only hands the bytes to the kernel, which sends them on the dead cable");
    let started = Instant::now();
    match narrate!(here, (&sender).read(&mut buf)) {
        Err(failure) if failure.errno() == Some(libc::ETIMEDOUT) => here.note(format!(
            "after {:.1} s: ETIMEDOUT. The bytes sent stayed unacknowledged for TCP_USER_TIMEOUT (1 s) while the kernel resent them, and it gave up",
            started.elapsed().as_secs_f64()
        )),
        Err(failure) => return Err(failure),
        Ok(n) => here.note(format!("{n} bytes: the peer was not silent after all")),
    }

    let started = Instant::now();
    match narrate!(here, (&watched).read(&mut buf)) {
        Err(failure) if failure.would_block() => here.note(format!(
            "after {:.1} s: EAGAIN, the read timeout (SO_RCVTIMEO) ran out. It is this program's own: the kernel still has the connection, and does not know the peer is gone",
            started.elapsed().as_secs_f64()
        )),
        Err(failure) if failure.errno() == Some(libc::ETIMEDOUT) => here.note(format!(
            "after {:.1} s: ETIMEDOUT: keepalive gave up before the read timeout ran out",
            started.elapsed().as_secs_f64()
        )),
        Err(failure) => return Err(failure),
        Ok(n) => here.note(format!("{n} bytes: the peer was not silent after all")),
    }
    let no_timeout = None;
    narrate!(here, watched.set_read_timeout(no_timeout))?;
    match narrate!(here, (&watched).read(&mut buf)) {
        Err(failure) if failure.errno() == Some(libc::ETIMEDOUT) => here.note(format!(
            "after {:.1} s since the cable was pulled: ETIMEDOUT. After TCP_KEEPIDLE of silence the kernel sent a probe, then one every TCP_KEEPINTVL; TCP_KEEPCNT went unanswered, and it declared the connection dead",
            since()
        )),
        Err(failure) => return Err(failure),
        Ok(n) => here.note(format!("{n}: the peer was not silent after all")),
    }
    if narrate!(here, (&watched).read(&mut buf))? == 0 {
        here.note("0: after ETIMEDOUT the kernel has closed the connection; it is over, unlike after EAGAIN");
    }

    // The plain connection knows nothing.
    narrate!(here, plain.take_error())?;
    let mut probe = [MaybeUninit::<u8>::uninit(); 64];
    match narrate!(here, plain.recv_with_flags(&mut probe, libc::MSG_DONTWAIT)) {
        Err(failure) if failure.would_block() => here.note(format!(
            "EAGAIN after {:.1} s: no error, nothing to read. Without keepalive or a timeout the kernel never learns the peer is gone: a blocking recv here would wait forever",
            since()
        )),
        Err(failure) => return Err(failure),
        Ok(n) => here.note(format!("{n}: the peer was not silent after all")),
    }
    for socket in [
        plain, watched, sender, to_plain, to_watched, to_sender, listener,
    ] {
        narrate!(say, drop(socket));
    }
    Ok(())
}
