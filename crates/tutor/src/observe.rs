//! Looking at sockets from outside, the way `ls -l /proc/PID/fd`, `sysctl` and `ss` do.
//!
//! Nothing here makes a socket call: it reads the files the kernel publishes under `/proc`.

use std::fs;
use std::io::{self, BufRead};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// What `/proc/self/fd/FD` points to: `socket:[INODE]` for a socket.
pub fn fd_target(fd: i32) -> Option<String> {
    fs::read_link(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(|target| target.display().to_string())
}

/// How many file descriptors this process has open (the entries of `/proc/self/fd`).
pub fn open_fd_count() -> Option<usize> {
    // read_dir opens a descriptor of its own; it is not counted.
    fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count().saturating_sub(1))
}

/// A kernel setting, as `sysctl NAME` prints it: `sysctl("net.core.somaxconn")`.
pub fn sysctl(name: &str) -> Option<String> {
    let path = Path::new("/proc/sys").join(name.replace('.', "/"));
    fs::read_to_string(path)
        .ok()
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A TCP state, as the kernel numbers it in `/proc/net/tcp` and `ss` names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    Other(u8),
}

impl TcpState {
    fn from_code(code: u8) -> TcpState {
        match code {
            0x01 => TcpState::Established,
            0x02 => TcpState::SynSent,
            0x03 => TcpState::SynRecv,
            0x04 => TcpState::FinWait1,
            0x05 => TcpState::FinWait2,
            0x06 => TcpState::TimeWait,
            0x07 => TcpState::Close,
            0x08 => TcpState::CloseWait,
            0x09 => TcpState::LastAck,
            0x0A => TcpState::Listen,
            0x0B => TcpState::Closing,
            other => TcpState::Other(other),
        }
    }

    /// The name `ss` prints for the state.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTAB",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynRecv => "SYN-RECV",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::TimeWait => "TIME-WAIT",
            TcpState::Close => "UNCONN",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::LastAck => "LAST-ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::Other(_) => "?",
        }
    }
}

/// One line of `/proc/net/tcp` or `/proc/net/tcp6`: one TCP socket of this network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpEntry {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: TcpState,
    /// Bytes queued for sending; 0 for a listening socket.
    pub tx_queue: u32,
    /// Bytes received but not yet read; for a listening socket, the connections in its
    /// accept queue (what `ss -l` shows as Recv-Q).
    pub rx_queue: u32,
    /// How many times the kernel has resent the segment it is waiting to have acknowledged
    /// (for a socket in SYN-SENT: its SYN).
    pub retransmits: u32,
}

/// Every TCP socket of this network namespace, IPv4 and IPv6, from `/proc/net/tcp{,6}`.
pub fn tcp_sockets() -> io::Result<Vec<TcpEntry>> {
    let mut entries = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        entries.extend(text.lines().skip(1).filter_map(parse_tcp_line));
    }
    Ok(entries)
}

/// The TCP sockets whose local or remote port is `port`.
pub fn tcp_sockets_on_port(port: u16) -> io::Result<Vec<TcpEntry>> {
    Ok(tcp_sockets()?
        .into_iter()
        .filter(|e| e.local.port() == port || e.remote.port() == port)
        .collect())
}

/// How many connections wait in the accept queue of the socket listening on `address`:
/// the Recv-Q that `ss -ltn` shows. `None` if nothing listens there.
pub fn accept_queue_len(address: SocketAddr) -> Option<u32> {
    tcp_sockets()
        .ok()?
        .into_iter()
        .find_map(|e| (e.state == TcpState::Listen && e.local == address).then_some(e.rx_queue))
}

fn parse_tcp_line(line: &str) -> Option<TcpEntry> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?;
    let local = parse_hex_address(fields.next()?)?;
    let remote = parse_hex_address(fields.next()?)?;
    let state = TcpState::from_code(u8::from_str_radix(fields.next()?, 16).ok()?);
    let (tx, rx) = fields.next()?.split_once(':')?;
    let _timer = fields.next()?;
    let retransmits = u32::from_str_radix(fields.next()?, 16).ok()?;
    Some(TcpEntry {
        local,
        remote,
        state,
        tx_queue: u32::from_str_radix(tx, 16).ok()?,
        rx_queue: u32::from_str_radix(rx, 16).ok()?,
        retransmits,
    })
}

/// `0100007F:B16F` is 127.0.0.1:45423: the address is printed as the 32-bit words the
/// kernel holds in memory (so in this machine's byte order), the port as a plain number.
fn parse_hex_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for chunk in ip.as_bytes().chunks(8) {
        let word = u32::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A counter of the kernel's network statistics, as `nstat -az` prints it (`TcpExtListenOverflows`
/// is `netstat_counter("TcpExt", "ListenOverflows")`, `UdpRcvbufErrors` is
/// `netstat_counter("Udp", "RcvbufErrors")`), read from `/proc/net/netstat` or
/// `/proc/net/snmp`, whichever has the group. The counters belong to the whole network
/// namespace, so other programs' events count too.
pub fn netstat_counter(group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    ["/proc/net/netstat", "/proc/net/snmp"]
        .iter()
        .find_map(|file| {
            let text = fs::read_to_string(file).ok()?;
            let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
            let names = lines.next()?;
            let values = lines.next()?;
            let at = names.split_whitespace().position(|n| n == name)?;
            values.split_whitespace().nth(at)?.parse().ok()
        })
}

/// Blocks until the learner presses Enter. If standard input ends first (`</dev/null`, a
/// script, a background job), there will never be an Enter: the program keeps waiting, and a
/// signal (Ctrl-C, SIGTERM, SIGHUP: see [`crate::interrupt`]) stops it.
pub fn wait_for_enter() {
    let mut line = String::new();
    match io::stdin().lock().read_line(&mut line) {
        Ok(n) if n > 0 => {}
        _ => {
            crate::outln!(
                "   standard input ended: no Enter will come, so this waits for Ctrl-C (or SIGTERM, SIGHUP)"
            );
            loop {
                std::thread::park();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn proc_net_tcp_lines_parse() {
        let line = "   0: 0100007F:B16F 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 4416 4 0000000067f95d75 100 0 0 10 0";
        let entry = parse_tcp_line(line).expect("a valid line");
        assert_eq!(entry.local, "127.0.0.1:45423".parse().expect("an address"));
        assert_eq!(entry.state, TcpState::Listen);
        assert_eq!(entry.rx_queue, 3);
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn ipv6_addresses_parse_word_by_word() {
        let ip = parse_hex_address("00000000000000000000000001000000:0050").expect("an address");
        assert_eq!(ip, "[::1]:80".parse().expect("an address"));
    }

    #[test]
    fn the_kernel_reports_a_listener_we_make() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("local address");
        assert_eq!(accept_queue_len(address), Some(0));
        drop(listener);
        assert_eq!(accept_queue_len(address), None);
    }
}
