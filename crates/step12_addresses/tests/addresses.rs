//! What lesson 12 claims about names and addresses, checked against the program and the
//! kernel: getaddrinfo's list and the attempts, dual stack, SO_REUSEPORT. Every port is
//! chosen by the kernel (port 0); a second socket on "the same port" takes the one the first
//! was given.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use testkit::process::{Finished, fails_in_one_line, run};
use testkit::strace::{self, TracedCall};

const LIMIT: Duration = Duration::from_secs(20);

fn step12() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step12_addresses"))
}

fn tcp(domain: Domain) -> Socket {
    Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).expect("a TCP socket")
}

fn at(ip: impl Into<std::net::IpAddr>, port: u16) -> SockAddr {
    SockAddr::from(SocketAddr::new(ip.into(), port))
}

fn port_of(socket: &Socket) -> u16 {
    let local = socket.local_addr().expect("getsockname");
    local.as_socket().expect("an IP address").port()
}

fn ipv6_loopback_works() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// The lines of a run after the first that contains `start`.
fn after<'a>(out: &'a Finished, start: &str) -> Vec<&'a str> {
    out.output
        .lines()
        .skip_while(|l| !l.contains(start))
        .collect()
}

#[test]
fn without_a_port_ipv6_refuses_and_ipv4_connects() {
    let out = run(step12(), ["--color", "never"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    let lines = after(&out, "-> getaddrinfo(NULL, ");
    let at_index = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in\n{}", out.output))
    };
    // The list: ::1 first, then 127.0.0.1; then the attempts in that order.
    let v6 = at_index("AF_INET6, SOCK_STREAM, IPPROTO_TCP");
    let v4 = at_index("AF_INET, SOCK_STREAM, IPPROTO_TCP");
    assert!(v6 < v4, "{}", out.output);
    assert!(lines[v6].contains("[::1]:"), "{}", lines[v6]);
    assert!(lines[v4].contains("127.0.0.1:"), "{}", lines[v4]);
    let first = at_index("attempt 1 of 2: [::1]:");
    let refused = at_index("<- -1 ECONNREFUSED");
    let second = at_index("attempt 2 of 2: 127.0.0.1:");
    let connected = at_index("connected to 127.0.0.1:");
    assert!(first < refused && refused < second && second < connected);
    // The server accepted the second attempt's connection.
    let accepted = at_index("server    <- 5, connected to 127.0.0.1:");
    assert!(connected < accepted);
}

#[test]
fn the_program_lists_what_python_getaddrinfo_lists() {
    let Some(python) = testkit::python3() else {
        testkit::skip(
            "the_program_lists_what_python_getaddrinfo_lists",
            "python3 is not installed",
        );
        return;
    };
    for host in [None, Some("localhost")] {
        let (program_host, python_host) = match host {
            Some(name) => (vec!["--host", name], format!("'{name}'")),
            None => (vec![], "None".to_owned()),
        };
        let out = run(step12(), &program_host, LIMIT);
        assert_eq!(out.code, Some(0), "{}", out.output);
        let port = out
            .lines_with("ready: listening on 127.0.0.1:")
            .next()
            .and_then(testkit::process::ready_address)
            .and_then(|address| address.rsplit(':').next())
            .map(|p| p.trim().to_owned())
            .expect("a ready line");
        let listed: Vec<String> = out
            .lines_with(", SOCK_STREAM, IPPROTO_TCP")
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .collect();
        let script = format!(
            "import socket\nfor *_, a in socket.getaddrinfo({python_host}, {port}, type=socket.SOCK_STREAM):\n    print(('[%s]:%d' if ':' in a[0] else '%s:%d') % a[:2])"
        );
        let python = std::process::Command::new(&python)
            .args(["-c", &script])
            .output()
            .expect("python runs");
        let expected: Vec<String> = String::from_utf8_lossy(&python.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(listed, expected, "host {host:?}:\n{}", out.output);
    }
}

#[test]
fn a_listener_on_ipv6_takes_the_first_attempt() {
    if !ipv6_loopback_works() {
        testkit::skip(
            "a_listener_on_ipv6_takes_the_first_attempt",
            "this machine has no ::1",
        );
        return;
    }
    let listener = TcpListener::bind("[::1]:0").expect("listen on ::1");
    let port = listener.local_addr().expect("addr").port().to_string();
    let out = run(step12(), ["--port", &port], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        out.says(&format!("connected to [::1]:{port}")),
        "{}",
        out.output
    );
    assert!(
        !out.says("attempt 2 of 2"),
        "it stops at the first that connects"
    );
    let (_, peer) = listener.accept().expect("the program's connection");
    assert!(peer.is_ipv6(), "{peer}");
}

#[test]
fn when_every_address_refuses_the_last_error_is_the_answer() {
    // A bound socket that does not listen holds the port on [::] and 0.0.0.0 (dual stack),
    // and answers a connect with a reset: both attempts are refused.
    let holder = tcp(Domain::IPV6);
    holder
        .bind(&at(Ipv6Addr::UNSPECIFIED, 0))
        .expect("bind [::]:0");
    let port = port_of(&holder).to_string();
    let line = fails_in_one_line(step12(), &["--port", &port], 1);
    assert!(
        line.starts_with("error: connect(") && line.contains(&format!("127.0.0.1:{port})")),
        "{line}"
    );
    assert!(line.contains("ECONNREFUSED"), "{line}");
}

#[test]
fn family_asks_getaddrinfo_for_one_family() {
    let out = run(step12(), ["--family", "ipv4"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("ai_family=AF_INET, ai_socktype=SOCK_STREAM"));
    assert!(out.says("attempt 1 of 1: 127.0.0.1:"), "{}", out.output);
    assert!(!out.says("AF_INET6, SOCK_STREAM"), "{}", out.output);
}

#[test]
fn bad_inputs_get_one_line_and_exit_2() {
    for (args, needle) in [
        (
            &["--family", "unix"][..],
            "a unix socket's address is a path",
        ),
        (&["--family", "ipv6", "--host", "127.0.0.1"], "not an ipv6"),
        (&["--family", "ipv4", "--host", "[::1]"], "not an ipv4"),
        (&["--clients", "3"], "--demo"),
        (&["--demo", "--port", "80"], "--demo"),
    ] {
        let line = fails_in_one_line(step12(), args, 2);
        assert!(line.contains(needle), "{args:?}: {line}");
    }
}

#[test]
fn std_and_python_try_each_address_in_turn() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
    let port = listener.local_addr().expect("addr").port();
    // Rust: TcpStream::connect takes any ToSocketAddrs and tries each address in turn.
    let list = [
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    ];
    let refused = TcpStream::connect(list[0]).expect_err("nothing listens on [::1]");
    assert!(
        matches!(
            refused.kind(),
            ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable
        ),
        "{refused}"
    );
    let stream = TcpStream::connect(&list[..]).expect("the second address connects");
    assert_eq!(stream.peer_addr().expect("peer"), list[1]);
    drop(listener);

    let Some(python) = testkit::python3() else {
        testkit::skip("std_and_python_try_each_address_in_turn", "no python3");
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
    let port = listener.local_addr().expect("addr").port();
    let out = std::process::Command::new(python)
        .args([
            "-c",
            &format!(
                "import socket\nc = socket.create_connection((None, {port}))\nprint(c.getpeername())"
            ),
        ])
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim(), format!("('127.0.0.1', {port})"), "{out:?}");
}

#[test]
fn an_ipv6_socket_cannot_connect_to_an_ipv4_address() {
    if !ipv6_loopback_works() {
        testkit::skip(
            "an_ipv6_socket_cannot_connect_to_an_ipv4_address",
            "no IPv6",
        );
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
    let port = listener.local_addr().expect("addr").port();
    let socket = tcp(Domain::IPV6);
    let refused = socket
        .connect(&at(Ipv4Addr::LOCALHOST, port))
        .expect_err("an AF_INET address for an AF_INET6 socket");
    assert_eq!(refused.raw_os_error(), Some(libc::EINVAL), "{refused}");
}

#[test]
fn python_create_server_dualstack_takes_ipv4_clients() {
    let Some(python) = testkit::python3() else {
        testkit::skip(
            "python_create_server_dualstack_takes_ipv4_clients",
            "no python3",
        );
        return;
    };
    if !ipv6_loopback_works() {
        testkit::skip("python dual stack", "this machine has no IPv6");
        return;
    }
    let script = "import socket\n\
        s = socket.create_server(('', 0), family=socket.AF_INET6, dualstack_ipv6=True)\n\
        print(s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))\n\
        c = socket.create_connection(('127.0.0.1', s.getsockname()[1]))\n\
        print(s.accept()[1][0])";
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["0", "::ffff:127.0.0.1"],
        "{out:?}"
    );
}

#[test]
fn a_dual_stack_listener_takes_ipv4_clients_and_holds_the_ipv4_port() {
    if !ipv6_loopback_works() {
        testkit::skip("dual stack", "this machine has no IPv6");
        return;
    }
    let bindv6only = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only")
        .expect("the sysctl")
        .trim()
        .to_owned();
    let listener = tcp(Domain::IPV6);
    // A new IPv6 socket's IPV6_V6ONLY is the sysctl's value (0 unless someone changed it).
    assert_eq!(
        listener.only_v6().expect("IPV6_V6ONLY"),
        bindv6only == "1",
        "bindv6only = {bindv6only}"
    );
    if bindv6only != "0" {
        testkit::skip("dual stack", "net.ipv6.bindv6only is not 0 here");
        return;
    }
    listener
        .bind(&at(Ipv6Addr::UNSPECIFIED, 0))
        .expect("bind [::]:0");
    listener.listen(8).expect("listen");
    let port = port_of(&listener);
    let client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("an IPv4 client");
    let (conn, peer) = listener.accept().expect("accept");
    let peer = peer.as_socket_ipv6().expect("an IPv6 address");
    assert_eq!(
        peer.ip().to_ipv4_mapped(),
        Some(Ipv4Addr::LOCALHOST),
        "seen as ::ffff:127.0.0.1"
    );
    assert_eq!(peer.port(), client.local_addr().expect("own").port());
    let local = conn.local_addr().expect("local").as_socket().expect("ip");
    assert_eq!(local.to_string(), format!("[::ffff:127.0.0.1]:{port}"));
    // It is in the IPv6 table only, though it takes IPv4 clients.
    let listed = |table: &str| {
        let text = std::fs::read_to_string(table).expect("the TCP table");
        text.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1)
                .is_some_and(|a| a.ends_with(&format!(":{port:04X}")))
                && f.get(3) == Some(&"0A")
        })
    };
    assert!(listed("/proc/net/tcp6") && !listed("/proc/net/tcp"));
    // The port is taken for IPv4 as well.
    let ipv4 = tcp(Domain::IPV4);
    let taken = ipv4
        .bind(&at(Ipv4Addr::UNSPECIFIED, port))
        .expect_err("0.0.0.0 on the dual-stack port");
    assert_eq!(taken.raw_os_error(), Some(libc::EADDRINUSE));
}

#[test]
fn ipv6_only_refuses_ipv4_clients_and_leaves_the_ipv4_port_free() {
    if !ipv6_loopback_works() {
        testkit::skip("IPV6_V6ONLY", "this machine has no IPv6");
        return;
    }
    // The IPv4 socket first, so that the kernel picks a port no IPv4 socket holds (a busy
    // machine has many connections, and TIME-WAITs, on ports of its own).
    let ipv4 = tcp(Domain::IPV4);
    ipv4.bind(&at(Ipv4Addr::UNSPECIFIED, 0))
        .expect("bind 0.0.0.0:0");
    let port = port_of(&ipv4);
    let same = at(Ipv6Addr::UNSPECIFIED, port);
    let listener = tcp(Domain::IPV6);
    let taken = listener
        .bind(&same)
        .expect_err("dual stack wants the IPv4 port too");
    assert_eq!(taken.raw_os_error(), Some(libc::EADDRINUSE));
    listener.set_only_v6(true).expect("IPV6_V6ONLY");
    listener
        .bind(&same)
        .expect("IPv6 only: the IPv4 port is no concern");
    listener.listen(8).expect("listen");
    let refused = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect_err("IPv6 only");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    TcpStream::connect((Ipv6Addr::LOCALHOST, port)).expect("an IPv6 client still connects");
    ipv4.listen(8).expect("the IPv4 socket listens too");
    let client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("an IPv4 client");
    let (_, peer) = ipv4.accept().expect("the IPv4 socket accepts it");
    assert_eq!(peer.as_socket(), client.local_addr().ok());
}

/// Two listeners with SO_REUSEPORT on 127.0.0.1:port, after a third socket's failed try.
fn two_reuseport_listeners() -> (Socket, Socket, SockAddr) {
    let first = tcp(Domain::IPV4);
    first.set_reuse_port(true).expect("SO_REUSEPORT");
    first.bind(&at(Ipv4Addr::LOCALHOST, 0)).expect("bind");
    first.listen(128).expect("listen");
    let local = first.local_addr().expect("its address");
    // Without the option, "one port, one listener" holds, even when the first has set it.
    let plain = tcp(Domain::IPV4);
    let taken = plain
        .bind(&local)
        .expect_err("a second bind without SO_REUSEPORT");
    assert_eq!(taken.raw_os_error(), Some(libc::EADDRINUSE));
    let second = tcp(Domain::IPV4);
    second.set_reuse_port(true).expect("SO_REUSEPORT");
    second
        .bind(&local)
        .expect("a second bind with SO_REUSEPORT");
    second.listen(128).expect("listen");
    (first, second, local)
}

#[test]
fn so_reuseport_needs_every_socket_on_the_port_to_set_it() {
    // The first listener without it: a second with it is refused all the same.
    let plain = tcp(Domain::IPV4);
    plain.bind(&at(Ipv4Addr::LOCALHOST, 0)).expect("bind");
    plain.listen(8).expect("listen");
    let local = plain.local_addr().expect("its address");
    let second = tcp(Domain::IPV4);
    second.set_reuse_port(true).expect("SO_REUSEPORT");
    let taken = second.bind(&local).expect_err("the first did not set it");
    assert_eq!(taken.raw_os_error(), Some(libc::EADDRINUSE));
    // And SO_REUSEADDR on both is not enough for two listeners (lesson 6).
    let first = tcp(Domain::IPV4);
    first.set_reuse_address(true).expect("SO_REUSEADDR");
    first.bind(&at(Ipv4Addr::LOCALHOST, 0)).expect("bind");
    first.listen(8).expect("listen");
    let other = tcp(Domain::IPV4);
    other.set_reuse_address(true).expect("SO_REUSEADDR");
    let taken = other
        .bind(&first.local_addr().expect("its address"))
        .expect_err("SO_REUSEADDR does not share a listening port");
    assert_eq!(taken.raw_os_error(), Some(libc::EADDRINUSE));
}

/// Accepts until the queue is empty.
fn drain(listener: &Socket) -> usize {
    listener.set_nonblocking(true).expect("O_NONBLOCK");
    let mut n = 0;
    loop {
        match listener.accept() {
            Ok(_) => n += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[test]
fn so_reuseport_lets_two_listeners_share_a_port_and_spreads_the_connections() {
    let (first, second, local) = two_reuseport_listeners();
    let address = local.as_socket().expect("an IP address");
    let clients: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(address).expect("connect"))
        .collect();
    // Wait (bounded) until the accept queues hold all 64 between them.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut counts = (0, 0);
    while counts.0 + counts.1 < clients.len() && Instant::now() < deadline {
        counts.0 += drain(&first);
        counts.1 += drain(&second);
    }
    assert_eq!(counts.0 + counts.1, 64, "{counts:?}");
    // Both listen, as /proc/net/tcp (and so `ss -ltn`) shows: two LISTEN lines, one address.
    let hex = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(Ipv4Addr::LOCALHOST.octets()),
        address.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").expect("the TCP table");
    let listening = table
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&hex.as_str()) && f.get(3) == Some(&"0A")
        })
        .count();
    assert_eq!(listening, 2, "{hex}\n{table}");
    // With an even spread, one listener getting all 64 has a chance of 2 in 2^64.
    assert!(counts.0 > 0 && counts.1 > 0, "{counts:?}");
}

#[test]
fn the_demo_tells_the_whole_story() {
    let out = run(step12(), ["--demo"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    for needle in [
        "client    attempt 1 of 2: [::1]:",
        "client    <- -1 ECONNREFUSED (Connection refused)",
        "client    connected to 127.0.0.1:",
        "server    <- 5, connected to [::ffff:127.0.0.1]:",
        "another   <- -1 EADDRINUSE (Address already in use)",
        "another      the [::] socket holds this port for IPv4 too",
        "server       a dual-stack socket needs the IPv4 port too, and 0.0.0.0 holds it",
        "another      the IPv4 client came to the IPv4 socket: an IPv6-only socket takes none",
        "another      without SO_REUSEPORT of its own, a third socket may not join them",
    ] {
        assert!(out.says(needle), "no `{needle}` in\n{}", out.output);
    }
    let summary = out
        .lines_with("of 16 connections, server 1 accepted ")
        .next()
        .expect("the summary");
    let accepted: Vec<u32> = summary
        .split("accepted ")
        .skip(1)
        .filter_map(|rest| rest.split([' ', ':']).next()?.parse().ok())
        .collect();
    assert_eq!(accepted.len(), 2, "{summary}");
    assert_eq!(accepted[0] + accepted[1], 16, "{summary}");
}

/// The network calls the program made itself: strace's list without those of getaddrinfo,
/// which opens sockets of its own (netlink to learn this machine's addresses, a UDP socket
/// connected to each candidate to sort them, the nscd daemon's unix socket). The program's
/// own sockets are all TCP (`IPPROTO_TCP`) or accepted; a call on a descriptor of the
/// resolver's is left out until a socket of the program's own takes that number again.
fn own_calls(calls: &[TracedCall]) -> (Vec<String>, Vec<String>) {
    let fd_of = |text: &str| text.parse::<i32>().ok();
    let mut resolver = HashSet::new();
    let (mut own, mut theirs) = (Vec::new(), Vec::new());
    for call in calls {
        let fd = if call.name == "socket" {
            call.line.rsplit("= ").next().and_then(fd_of)
        } else {
            call.line
                .split_once('(')
                .and_then(|(_, args)| args.split([',', ')']).next())
                .and_then(fd_of)
        };
        let mine = if call.name == "socket" {
            let mine = call.line.contains("IPPROTO_TCP)");
            if let Some(fd) = fd {
                if mine {
                    resolver.remove(&fd);
                } else {
                    resolver.insert(fd);
                }
            }
            mine
        } else {
            if call.name.starts_with("accept") {
                // A new socket of the program's own, whatever number it has.
                if let Some(new) = call.line.rsplit("= ").next().and_then(fd_of) {
                    resolver.remove(&new);
                }
            }
            !fd.is_some_and(|fd| resolver.contains(&fd))
        };
        if mine {
            own.push(call.name.clone());
        } else {
            theirs.push(call.line.clone());
        }
    }
    (own, theirs)
}

#[test]
fn the_narration_shows_every_network_call_strace_sees() {
    // A budget as large as the calls, so that every call is narrated (a quiet accept that
    // finds the queue empty is not).
    let args = ["--demo", "--clients", "4", "--show-calls", "100"];
    let Some(traced) = strace::trace_network("step12 vs strace", step12(), args, LIMIT) else {
        return;
    };
    assert_eq!(traced.run.code, Some(0), "{}", traced.run.output);
    let narrated = strace::narrated_network_calls(&traced.run.output);
    let (own, resolver) = own_calls(&traced.calls);
    assert_eq!(narrated, own, "{}", traced.run.output);
    // getaddrinfo's own calls: it sorts the two addresses (RFC 6724) by connecting a UDP
    // socket to each, which sends nothing.
    assert!(
        resolver
            .iter()
            .any(|l| l.starts_with("socket(AF_NETLINK, ")),
        "{resolver:#?}"
    );
    assert!(
        resolver
            .iter()
            .any(|l| l.starts_with("socket(AF_INET6, SOCK_DGRAM")),
        "{resolver:#?}"
    );
    assert!(
        resolver
            .iter()
            .any(|l| l.starts_with("connect(") && l.contains("\"::1\"")),
        "{resolver:#?}"
    );
}
