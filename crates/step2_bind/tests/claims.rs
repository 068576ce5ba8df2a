//! Lesson 2's claims made exact: which views show a bound socket, and when an address the
//! machine does not have can be bound after all.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// `TCP_BOUND_INACTIVE` (include/net/tcp_states.h, Linux 6.5): not a state any socket is in, but
/// a bit a sock_diag request sets to ask for sockets that are bound and do nothing else. They
/// come back in state `TCP_CLOSE`.
const TCP_BOUND_INACTIVE: u32 = 13;
const TCP_CLOSE: u8 = 7;
/// `TCP_TIME_WAIT`, from `include/net/tcp_states.h`.
const TCP_TIME_WAIT: u32 = 6;
/// linux/sock_diag.h: the request type that asks for one family's sockets.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// Every state bit below TCP_BOUND_INACTIVE: what `ss -a` of iproute2 6.1 asks for.
const EVERY_OLDER_STATE: u32 = (1 << TCP_BOUND_INACTIVE) - 1;

/// The kernel's version as (major, minor), from /proc.
fn kernel_version() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// Asks the kernel's sock_diag interface (netlink, what `ss` reads) for the IPv4 TCP sockets in
/// the states of `states` (a bit per state), and returns each one's (state, local port).
fn sock_diag_tcp4(states: u32) -> Vec<(u8, u16)> {
    let netlink = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::DGRAM,
        Some(Protocol::from(libc::NETLINK_SOCK_DIAG)),
    )
    .expect("a netlink socket");
    netlink
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("SO_RCVTIMEO");
    // struct nlmsghdr (16 bytes), then struct inet_diag_req_v2 (56 bytes), native byte order.
    let mut request = Vec::with_capacity(72);
    request.extend_from_slice(&72u32.to_ne_bytes()); // nlmsg_len
    request.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
    request.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
    request.extend_from_slice(&[libc::AF_INET as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    request.extend_from_slice(&states.to_ne_bytes()); // idiag_states
    request.extend_from_slice(&[0; 48]); // inet_diag_sockid: no filter
    // With no address, a netlink socket sends to the kernel.
    assert_eq!(netlink.send(&request).expect("the request"), 72);

    let mut found = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..10_000 {
        let n = (&netlink).read(&mut buf).expect("sock_diag answers");
        let mut at = 0;
        while at + 16 <= n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().unwrap());
            if kind == libc::NLMSG_DONE as u16 {
                return found;
            }
            assert_ne!(
                kind,
                libc::NLMSG_ERROR as u16,
                "sock_diag refused the request"
            );
            // struct inet_diag_msg: family, state, timer, retrans, then the id: sport (big-endian)
            let state = buf[at + 17];
            let port = u16::from_be_bytes([buf[at + 20], buf[at + 21]]);
            found.push((state, port));
            at += (len + 3) & !3;
        }
    }
    panic!("no NLMSG_DONE after 10000 reads");
}

#[test]
fn a_bound_socket_is_missing_from_proc_net_tcp_but_sock_diag_reports_it_as_bound_inactive() {
    let Some(version) = kernel_version() else {
        testkit::skip("bound_inactive", "cannot read the kernel's version");
        return;
    };
    if version < (6, 5) {
        testkit::skip(
            "bound_inactive",
            "sock_diag reports bound sockets from Linux 6.5 on",
        );
        return;
    }
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind 127.0.0.1:0");
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();

    // Other tests' connections may have used the same port number and linger in TIME-WAIT
    // (bind lets a new socket take such a port): those entries are not ours.
    let in_proc: Vec<_> = tutor::observe::tcp_sockets_on_port(port)
        .expect("/proc/net/tcp")
        .into_iter()
        .filter(|entry| entry.state != tutor::observe::TcpState::TimeWait)
        .collect();
    assert!(
        in_proc.is_empty(),
        "bound only, yet in /proc/net/tcp: {in_proc:?}"
    );

    let older = sock_diag_tcp4(EVERY_OLDER_STATE & !(1 << TCP_TIME_WAIT));
    assert!(
        !older.iter().any(|&(_, p)| p == port),
        "every classic state was asked for; the bound socket is in none of them"
    );
    let bound = sock_diag_tcp4(1 << TCP_BOUND_INACTIVE);
    assert!(
        bound.contains(&(TCP_CLOSE, port)),
        "asked for TCP_BOUND_INACTIVE, sock_diag lists the bound socket, in state CLOSE: port {port} not in {bound:?}"
    );

    // The same through ss, when it is installed.
    let Some(ss) = testkit::which("ss") else {
        testkit::skip("bound_inactive (ss)", "ss is not installed");
        return;
    };
    let filter = format!("sport = :{port}");
    let default = Command::new(&ss)
        .args(["-tnH", "exclude", "time-wait", &filter])
        .output()
        .expect("ss runs");
    assert!(default.status.success());
    assert_eq!(
        String::from_utf8_lossy(&default.stdout).trim(),
        "",
        "ss's default view leaves a bound socket out"
    );
    let asked = Command::new(&ss)
        .args(["-tnH", "state", "bound-inactive", &filter])
        .output()
        .expect("ss runs");
    if !asked.status.success() {
        // An older ss asks for every state it knows, and TCP_BOUND_INACTIVE is not one of them.
        let all = Command::new(&ss)
            .args(["-tanH", "exclude", "time-wait", &filter])
            .output()
            .expect("ss runs");
        assert_eq!(
            String::from_utf8_lossy(&all.stdout).trim(),
            "",
            "an ss that does not know bound-inactive leaves the socket out even with -a"
        );
        testkit::skip(
            "bound_inactive (ss)",
            "this ss does not know the state bound-inactive (iproute2 before 6.5)",
        );
        return;
    }
    assert!(
        String::from_utf8_lossy(&asked.stdout).contains(&format!(":{port}")),
        "ss -t state bound-inactive lists the bound socket: {}",
        String::from_utf8_lossy(&asked.stdout)
    );
}

#[test]
fn ip_freebind_lets_a_socket_bind_an_address_the_machine_does_not_have() {
    let foreign = SocketAddr::from(([203, 0, 113, 7], 0));

    let plain = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    let error = plain
        .bind(&foreign.into())
        .expect_err("no interface has 203.0.113.7");
    assert_eq!(error.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{error}");

    let free = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    free.set_freebind_v4(true).expect("IP_FREEBIND");
    free.bind(&foreign.into())
        .expect("with IP_FREEBIND the bind succeeds");
    let local = free
        .local_addr()
        .unwrap()
        .as_socket()
        .expect("an IPv4 address");
    assert_eq!(local.ip(), foreign.ip());
    assert_ne!(
        local.port(),
        0,
        "the kernel chose a port, as for any bind to port 0"
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// The sysctl net.ipv4.ip_nonlocal_bind does for every socket what IP_FREEBIND does for one.
/// Changing it for the whole machine would change every other test's world, so the test sets
/// it inside a network namespace of its own (`unshare --net`, root only), where python3 binds.
#[test]
fn ip_nonlocal_bind_lets_every_socket_bind_an_address_the_machine_does_not_have() {
    const NAME: &str = "ip_nonlocal_bind";
    if !is_root() {
        testkit::skip(NAME, "a network namespace of the test's own needs root");
        return;
    }
    let (Some(unshare), Some(ip), Some(python)) = (
        testkit::which("unshare"),
        testkit::which("ip"),
        testkit::python3(),
    ) else {
        testkit::skip(NAME, "unshare, ip or python3 is not installed");
        return;
    };
    let bind = "import socket, errno\n\
                s = socket.socket()\n\
                try:\n    s.bind(('203.0.113.7', 0)); print('bound')\n\
                except OSError as e:\n    print(errno.errorcode[e.errno])";
    // The loopback interface goes up first: a namespace with no local addresses at all has no
    // table to look 203.0.113.7 up in, and lets the bind through for that reason alone.
    let script = "\"$2\" link set lo up && \"$0\" -c \"$1\" \
                  && echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind && \"$0\" -c \"$1\"";
    let mut command = Command::new(unshare);
    command
        .args(["--net", "sh", "-c", script])
        .arg(&python)
        .arg(bind)
        .arg(ip);
    let out = testkit::process::run_command(command, Duration::from_secs(20));
    if out.code != Some(0) && out.output.contains("unshare") {
        testkit::skip(NAME, &format!("unshare failed: {}", out.output.trim()));
        return;
    }
    assert_eq!(
        out.output.lines().collect::<Vec<_>>(),
        ["EADDRNOTAVAIL", "bound"],
        "refused, then bound once the namespace's ip_nonlocal_bind is 1"
    );
}
