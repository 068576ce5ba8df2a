//! What the kernel's socket table says: the states of a connection's two ends, the bytes
//! waiting unread, and the kernel's counters, as `ss -tan` and `nstat` show them. Nothing here
//! makes a socket call: it reads `/proc/net/tcp` and `/proc/net/netstat` through
//! `tutor::observe`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::SockAddr;
use tutor::observe::{self, TcpState};
use tutor::{Failure, Narrator, addr};

/// After a failed bind(): says what holds the port, as `ss -tan` would show it.
pub fn why_the_port_is_taken(say: &Narrator, address: &SockAddr, reuse: bool) {
    let Some(wanted) = address.as_socket() else {
        return;
    };
    let port = wanted.port();
    let Ok(sockets) = observe::tcp_sockets_on_port(port) else {
        return;
    };
    // The sockets bind() weighs against this address: the same port, and the same IP
    // address or a wildcard (0.0.0.0, ::) on either side.
    let on_port = || {
        sockets.iter().filter(|e| {
            e.local.port() == port
                && e.local.is_ipv4() == wanted.is_ipv4()
                && (e.local.ip() == wanted.ip()
                    || e.local.ip().is_unspecified()
                    || wanted.ip().is_unspecified())
        })
    };
    let listening = on_port().any(|e| e.state == TcpState::Listen);
    let waiting = on_port().filter(|e| e.state == TcpState::TimeWait).count();
    if listening {
        say.note(format!(
            "a socket listens on port {port}: stop that server first; SO_REUSEADDR does not let two sockets listen on one port"
        ));
    } else if waiting > 0 && !reuse {
        say.note(format!(
            "{waiting} connection(s) of an earlier run wait in TIME-WAIT on port {port} (ss -tan state time-wait '( sport = :{port} )'): start the server with --reuse-address, this time and every time"
        ));
    } else if waiting > 0 {
        say.note(format!(
            "{waiting} connection(s) wait in TIME-WAIT on port {port}, from a run without --reuse-address: each keeps the SO_REUSEADDR of the server it came from, so bind() waits until they end (60 s)"
        ));
    }
}

/// The two addresses of a connection: the server's end and the client's.
pub struct Ends {
    pub server: SocketAddr,
    pub client: SocketAddr,
}

impl Ends {
    /// The ends of a connection between `server` and `client`, both IP addresses.
    pub fn new(server: &SockAddr, client: &SockAddr) -> Result<Ends, Failure> {
        let inet = |a: &SockAddr| {
            a.as_socket()
                .ok_or_else(|| Failure::Peer(format!("{} is not an IP address", addr::show(a))))
        };
        Ok(Ends {
            server: inet(server)?,
            client: inet(client)?,
        })
    }
}

/// The state of the server's end of the connection, now.
pub fn server_end(ends: &Ends) -> Option<TcpState> {
    states(ends).0
}

/// Both ends' states in the kernel's socket table (/proc/net/tcp, what `ss -tan` lists);
/// `None` when an end is not in the table: the kernel has forgotten it.
fn states(ends: &Ends) -> (Option<TcpState>, Option<TcpState>) {
    let port = ends.server.port();
    let all = observe::tcp_sockets_on_port(port).unwrap_or_default();
    let server = all
        .iter()
        .find(|e| e.local.port() == port && e.remote == ends.client)
        .map(|e| e.state);
    let client = all
        .iter()
        .find(|e| e.local == ends.client && e.remote.port() == port)
        .map(|e| e.state);
    (server, client)
}

/// Waits, at most two seconds, until both ends are in the states expected, and prints what
/// the table shows (what it last showed, if they never get there).
pub fn table(
    kernel: &Narrator,
    ends: &Ends,
    server: Option<TcpState>,
    client: Option<TcpState>,
) -> (Option<TcpState>, Option<TcpState>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut seen = states(ends);
    while seen != (server, client) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        seen = states(ends);
    }
    let name = |state: Option<TcpState>| state.map_or("gone", TcpState::name);
    kernel.say(format!(
        "socket table: server end {} {}, client end {} {}",
        ends.server,
        name(seen.0),
        ends.client,
        name(seen.1)
    ));
    seen
}

/// Waits, at most two seconds, until the server's end holds `bytes` received but unread
/// bytes (its Recv-Q in `ss -tan`), and prints it.
pub fn unread(kernel: &Narrator, ends: &Ends, bytes: usize) {
    let port = ends.server.port();
    let deadline = Instant::now() + Duration::from_secs(2);
    let queued = || {
        observe::tcp_sockets_on_port(port)
            .unwrap_or_default()
            .into_iter()
            .find(|e| e.local.port() == port && e.remote == ends.client)
            .map(|e| (e.state, e.rx_queue))
    };
    let mut seen = queued();
    while seen.map(|(_, rx)| rx as usize) != Some(bytes) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        seen = queued();
    }
    match seen {
        Some((state, rx)) => kernel.say(format!(
            "socket table: server end {} {}, {rx} bytes received and not read (Recv-Q)",
            ends.server,
            state.name()
        )),
        None => kernel.say(format!("socket table: server end {} gone", ends.server)),
    }
}

/// How much a counter of the kernel's (`nstat -az TcpExtNAME`) went up since `before`.
pub fn counted(kernel: &Narrator, name: &str, before: Option<u64>, meaning: &str) {
    let after = observe::netstat_counter("TcpExt", name);
    if let (Some(before), Some(after)) = (before, after) {
        kernel.say(format!(
            "TcpExt {name} went up by {} (nstat -az TcpExt{name}): {meaning}",
            after.saturating_sub(before)
        ));
    }
}
