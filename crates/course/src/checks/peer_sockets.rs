//! The peers the checks of steps 6 to 10 run against the learner's programs: socket2 sockets
//! on 127.0.0.1, ports the kernel chooses, every wait bounded by a timeout.

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// 127.0.0.1, port 0: the kernel chooses the port.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A TCP listener on a port of the kernel's choosing; its accept() gives up after `limit`.
pub fn listener(limit: Duration) -> std::io::Result<(Socket, SocketAddr)> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SockAddr::from(loopback()))?;
    socket.listen(8)?;
    // On Linux SO_RCVTIMEO bounds accept() too.
    socket.set_read_timeout(Some(limit))?;
    let address = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("no IPv4 address"))?;
    Ok((socket, address))
}

/// A UDP socket on a port of the kernel's choosing; its recv() gives up after `limit`.
pub fn udp(limit: Duration) -> std::io::Result<(Socket, SocketAddr)> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.bind(&SockAddr::from(loopback()))?;
    socket.set_read_timeout(Some(limit))?;
    let address = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("no IPv4 address"))?;
    Ok((socket, address))
}

/// A TCP client of `address`; its connect, recv and send give up after `limit`.
pub fn connect(address: SocketAddr, limit: Duration) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.connect_timeout(&SockAddr::from(address), limit)?;
    socket.set_read_timeout(Some(limit))?;
    socket.set_write_timeout(Some(limit))?;
    Ok(socket)
}

/// A connected socket's own address and its peer's.
pub fn addresses(socket: &Socket) -> (SocketAddr, SocketAddr) {
    let local = socket.local_addr().ok().and_then(|a| a.as_socket());
    let peer = socket.peer_addr().ok().and_then(|a| a.as_socket());
    (local.unwrap_or(loopback()), peer.unwrap_or(loopback()))
}

/// How a read loop ended.
pub enum Ended {
    /// recv() returned 0: the peer closed its sending half.
    Eof,
    /// Nothing came for the read timeout.
    Silence,
    Error(std::io::Error),
}

impl Ended {
    pub fn describe(&self) -> String {
        match self {
            Ended::Eof => "the server closed the connection (recv returned 0)".to_owned(),
            Ended::Silence => "nothing more came".to_owned(),
            Ended::Error(e) => format!("recv failed: {e}"),
        }
    }
}

/// Reads until end of file, silence or an error, at most `max` bytes.
pub fn read_all(socket: &Socket, into: &mut Vec<u8>, max: usize) -> Ended {
    let mut buf = vec![0u8; 65536];
    while into.len() < max {
        match (&*socket).read(&mut buf) {
            Ok(0) => return Ended::Eof,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ended::Silence;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Ended::Error(e),
        }
    }
    Ended::Silence
}

/// Pseudo-random bytes, the same for the same seed (xorshift): data no program could guess.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Where two byte strings first differ.
pub fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// "1 MiB", "65536 bytes", for messages.
pub fn size(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// The next datagram on `socket`, and who sent it; None after its read timeout.
pub fn datagram(socket: &Socket) -> Option<(Vec<u8>, Option<SocketAddr>)> {
    let from = socket.peek_sender().ok()?.as_socket();
    let mut buf = vec![0u8; 65536];
    let n = (&*socket).read(&mut buf).ok()?;
    buf.truncate(n);
    Some((buf, from))
}

/// A failure of the checker's own sockets: not the learner's doing, and said so.
pub fn setup(e: std::io::Error) -> crate::Failure {
    crate::Failure::new(
        "set up the checker's own sockets and start the program",
        "the checker can make its sockets on 127.0.0.1 and start the program",
        format!("it could not: {e}"),
    )
}

/// Accepts the client's connection, or says how the client ended instead: waits at most
/// [`QUICK`](super::QUICK), and no longer than the client lives.
pub fn accept(
    listener: &Socket,
    client: super::piped::Piped,
    what: &str,
) -> Result<(Socket, super::piped::Piped), crate::Failure> {
    let pid = client.pid();
    let _ = listener.set_read_timeout(Some(Duration::from_millis(50)));
    let mut accepted = None;
    super::wait_until(super::QUICK, || {
        accepted = listener.accept().ok();
        accepted.is_some() || super::watch::gone(pid)
    });
    match accepted.or_else(|| listener.accept().ok()) {
        Some((conn, _)) => Ok((conn, client)),
        None => {
            let ended = client.finish(Duration::ZERO);
            Err(crate::Failure::new(
                what,
                "it connects to the address in its first argument",
                format!("no connection came; {}", ended.how(super::QUICK)),
            ))
        }
    }
}

/// The first datagram on `socket`, and its sender; waits at most [`QUICK`](super::QUICK), and
/// no longer than the process `pid` lives.
pub fn first_datagram(socket: &Socket, pid: u32) -> Option<(Vec<u8>, Option<SocketAddr>)> {
    let _ = socket.set_read_timeout(Some(Duration::from_millis(50)));
    let mut got = None;
    super::wait_until(super::QUICK, || {
        got = datagram(socket);
        got.is_some() || super::watch::gone(pid)
    });
    got.or_else(|| datagram(socket))
}
