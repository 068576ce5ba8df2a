//! What lesson 8 claims about datagram sockets, checked against the program and the kernel.

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use testkit::process::{Finished, Running, run};
use testkit::python3;
use testkit::strace;

const LIMIT: Duration = Duration::from_secs(30);

fn step8() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step8_udp"))
}

/// A UDP socket bound to 127.0.0.1, port chosen by the kernel, with a read timeout so that
/// no test can hang on it.
fn udp() -> (Socket, SockAddr) {
    udp_on("127.0.0.1:0")
}

fn udp_on(at: &str) -> (Socket, SockAddr) {
    let address: SocketAddr = at.parse().expect("an address");
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .expect("socket");
    socket.bind(&address.into()).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("SO_RCVTIMEO");
    let local = socket.local_addr().expect("address");
    (socket, local)
}

/// Reads one datagram (at most `size` bytes of it).
fn recv(socket: &Socket, size: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; size];
    let n = (&*socket).read(&mut buf)?;
    Ok(buf[..n].to_vec())
}

/// Whether a datagram waits on `socket`, without waiting for one.
fn nothing_waits(socket: &Socket) -> bool {
    matches!(
        socket.recv_from_with_flags(&mut [], libc::MSG_PEEK | libc::MSG_DONTWAIT),
        Err(e) if e.kind() == ErrorKind::WouldBlock
    )
}

/// A UDP port on 127.0.0.1 where nothing is bound: bound a moment ago, then closed.
fn free_port() -> u16 {
    let (socket, local) = udp();
    drop(socket);
    local.as_socket().expect("inet").port()
}

/// The Udp OutDatagrams counter of /proc/net/snmp (what `nstat -az UdpOutDatagrams` shows).
fn udp_out_datagrams() -> u64 {
    tutor::observe::netstat_counter("Udp", "OutDatagrams")
        .expect("/proc/net/snmp has Udp OutDatagrams")
}

fn unique_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "step8-test-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

/// Starts the server with `args` and returns it with the address it bound.
fn start_server(args: &[&str]) -> (Running, String) {
    let mut server = Running::start(step8(), args);
    let address = server.wait_ready(LIMIT);
    (server, address)
}

fn port_of(address: &str) -> String {
    address.rsplit(':').next().expect("a port").to_owned()
}

#[test]
fn one_server_socket_answers_two_clients_each_at_its_own_address() {
    let (server, address) = start_server(&["--max-datagrams", "2"]);
    let to: SockAddr = address.parse::<SocketAddr>().expect("inet").into();
    let (a, a_at) = udp();
    let (b, b_at) = udp();
    a.send_to(b"from A", &to).expect("send");
    b.send_to(b"from B", &to).expect("send");
    assert_eq!(recv(&a, 64).expect("A's answer"), b"from A");
    assert_eq!(recv(&b, 64).expect("B's answer"), b"from B");
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    for (at, data) in [(&a_at, "from A"), (&b_at, "from B")] {
        let shown = at.as_socket().expect("inet").to_string();
        assert!(
            out.says(&format!("from {shown} is next")),
            "the sender's address arrives with the datagram: {shown}\n{}",
            out.output
        );
        assert!(
            out.says(&format!("\"{data}\", 6, MSG_DONTWAIT, {shown})")),
            "{}",
            out.output
        );
    }
    // One socket: every call is on the same descriptor, and there is no listen or accept.
    assert!(
        !out.says("-> listen(") && !out.says("-> accept"),
        "{}",
        out.output
    );
    assert_eq!(out.lines_with("-> socket(").count(), 1, "{}", out.output);
}

#[test]
fn connect_on_a_datagram_socket_sends_no_packet() {
    // What the peer sees: nothing.
    let (receiver, at) = udp();
    let (client, _) = udp();
    client.connect(&at).expect("connect");
    assert!(nothing_waits(&receiver), "connect delivered something");
    client.send(b"now").expect("send");
    assert_eq!(recv(&receiver, 64).expect("the datagram"), b"now");

    // What the kernel counts: Udp OutDatagrams does not move across a connect, though it
    // moves for a send. The counter is the whole machine's: other programs' datagrams may
    // land between two readings, so a few tries are allowed.
    let mut still = 0;
    for _ in 0..20 {
        let (client, _) = udp();
        let before = udp_out_datagrams();
        client.connect(&at).expect("connect");
        let after = udp_out_datagrams();
        if after == before {
            still += 1;
            break;
        }
    }
    assert_eq!(
        still, 1,
        "OutDatagrams moved across every one of 20 connects"
    );
    let before = udp_out_datagrams();
    client.send(b"counted").expect("send");
    assert!(udp_out_datagrams() > before, "a send is counted");
    assert!(nothing_waits(&receiver) || recv(&receiver, 64).is_ok());
}

#[test]
fn connect_sets_the_default_peer_so_send_needs_no_address() {
    let (receiver, at) = udp();
    let (client, _) = udp();
    let error = client.send(b"where to?").expect_err("no peer yet");
    assert_eq!(error.raw_os_error(), Some(libc::EDESTADDRREQ), "{error}");
    client.connect(&at).expect("connect");
    assert_eq!(client.peer_addr().expect("a peer"), at);
    client.send(b"here").expect("send");
    assert_eq!(recv(&receiver, 64).expect("arrives"), b"here");
}

#[test]
fn a_connected_datagram_socket_drops_datagrams_from_other_addresses() {
    let (peer, peer_at) = udp();
    let (client, client_at) = udp();
    let (stranger, _) = udp();
    client.connect(&peer_at).expect("connect");
    stranger
        .send_to(b"not for you", &client_at)
        .expect("the stranger's send succeeds");
    peer.send_to(b"for you", &client_at).expect("send");
    assert_eq!(
        recv(&client, 64).expect("a datagram"),
        b"for you",
        "the stranger's datagram, sent first, never arrived"
    );
    assert!(nothing_waits(&client), "and it is not waiting either");
}

#[test]
fn a_connected_socket_hears_econnrefused_and_an_unconnected_one_hears_nothing() {
    // Directly with socket2 ...
    let nobody: SockAddr = SocketAddr::from(([127, 0, 0, 1], free_port())).into();
    let (connected, _) = udp();
    connected
        .connect(&nobody)
        .expect("connect succeeds: it sends nothing");
    connected.send(b"anyone?").expect("send succeeds");
    let error = recv(&connected, 64).expect_err("refused");
    assert_eq!(error.raw_os_error(), Some(libc::ECONNREFUSED), "{error}");

    let (unconnected, _) = udp();
    unconnected
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    unconnected
        .send_to(b"anyone?", &nobody)
        .expect("send_to succeeds");
    let error = recv(&unconnected, 64).expect_err("silence");
    assert_eq!(error.kind(), ErrorKind::WouldBlock, "{error}");

    // ... and with the program's client.
    let port = free_port().to_string();
    let out = run(
        step8(),
        ["--role", "client", "--port", &port, "--connect"],
        LIMIT,
    );
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(out.says("the default peer is set; nothing was sent"));
    assert!(
        out.says("<- -1 ECONNREFUSED (Connection refused)"),
        "{}",
        out.output
    );
    assert!(out.says("ICMP \"port unreachable\""), "{}", out.output);
    let out = run(
        step8(),
        ["--role", "client", "--port", &port, "--timeout-ms", "200"],
        LIMIT,
    );
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(out.says("<- -1 EAGAIN"), "{}", out.output);
    assert!(!out.says("ECONNREFUSED"), "{}", out.output);
    assert!(out.says("error: no answer within 200 ms"), "{}", out.output);
}

#[test]
fn ipv6_refuses_a_connected_socket_the_same_way() {
    let Ok(probe) = Socket::new(Domain::IPV6, Type::DGRAM, None) else {
        testkit::skip("ipv6", "no IPv6 here");
        return;
    };
    if probe
        .bind(&"[::1]:0".parse::<SocketAddr>().expect("addr").into())
        .is_err()
    {
        testkit::skip("ipv6", "::1 is not configured");
        return;
    }
    let out = run(
        step8(),
        ["--demo", "--family", "ipv6", "--part", "3"],
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("client D  <- -1 ECONNREFUSED"), "{}", out.output);
    assert!(out.says("client E  <- -1 EAGAIN"), "{}", out.output);
}

#[test]
fn a_short_buffer_takes_part_of_a_datagram_and_the_rest_is_lost() {
    let (receiver, at) = udp();
    let (sender, _) = udp();
    for data in [&b"0123456789"[..], b"0123456789", b"next"] {
        sender.send_to(data, &at).expect("send");
    }
    assert_eq!(recv(&receiver, 4).expect("recv"), b"0123");
    let mut small = [std::mem::MaybeUninit::<u8>::uninit(); 4];
    let real = receiver
        .recv_with_flags(&mut small, libc::MSG_TRUNC)
        .expect("recv");
    assert_eq!(real, 10, "MSG_TRUNC: the datagram's real length");
    assert_eq!(
        recv(&receiver, 64).expect("recv"),
        b"next",
        "the next recv gets the next datagram: 456789 is gone"
    );
}

#[test]
fn the_server_with_a_short_buffer_says_what_it_lost_and_echoes_what_it_kept() {
    let (server, address) = start_server(&["--max-datagrams", "1", "--bufsize", "4"]);
    let out = run(
        step8(),
        [
            "--role",
            "client",
            "--port",
            &port_of(&address),
            "--message",
            "0123456789",
        ],
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        out.says("<- 4: \"0123\""),
        "the echo is what the server kept\n{}",
        out.output
    );
    let served = server.finish(LIMIT);
    assert!(
        served.says("a datagram of 10 bytes from"),
        "{}",
        served.output
    );
    assert!(
        served.says("the datagram had 10 bytes and the buffer holds 4: the other 6 are lost"),
        "{}",
        served.output
    );
}

#[test]
fn the_client_talks_to_the_server_connected_or_not() {
    let (server, address) = start_server(&["--max-datagrams", "2"]);
    let port = port_of(&address);
    let plain = run(
        step8(),
        ["--role", "client", "--port", &port, "--message", "one"],
        LIMIT,
    );
    assert_eq!(plain.code, Some(0), "{}", plain.output);
    assert!(plain.says(&format!("a datagram of 3 bytes from {address} is next")));
    let connected = run(
        step8(),
        [
            "--role",
            "client",
            "--port",
            &port,
            "--message",
            "two",
            "--connect",
        ],
        LIMIT,
    );
    assert_eq!(connected.code, Some(0), "{}", connected.output);
    assert!(connected.says("socket2: socket.send(message)"));
    assert!(connected.says("<- 3: \"two\""), "{}", connected.output);
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
}

#[test]
fn a_unix_client_needs_its_own_path_for_the_answer() {
    let dir = unique_dir("unix");
    let path = dir.join("server.sock");
    let path_arg = path.to_str().expect("utf-8");
    let (server, _) = start_server(&[
        "--family",
        "unix",
        "--path",
        path_arg,
        "--max-datagrams",
        "2",
    ]);

    // An unbound unix datagram socket can send, but has no address to be answered at.
    let unbound = Socket::new(Domain::UNIX, Type::DGRAM, None).expect("socket");
    unbound
        .send_to(b"who am I?", &SockAddr::unix(&path).expect("path"))
        .expect("send_to");

    // The program's client binds its own path first, and gets its answer.
    let own = dir.join("client.sock");
    let out = run(
        step8(),
        [
            "--role",
            "client",
            "--family",
            "unix",
            "--path",
            path_arg,
            "--client-path",
            own.to_str().expect("utf-8"),
        ],
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("the server can answer this path"));
    assert!(out.says("<- 5: \"hello\""), "{}", out.output);
    assert!(!own.exists(), "the client removes its socket file");

    let served = server.finish(LIMIT);
    assert_eq!(served.code, Some(0), "{}", served.output);
    assert!(
        served.says("a datagram of 9 bytes from (no address) is next"),
        "{}",
        served.output
    );
    assert!(
        served.says("there is nowhere to send an answer"),
        "{}",
        served.output
    );
    assert!(
        served.says(&format!("from {} is next", own.display())),
        "{}",
        served.output
    );
    assert!(!path.exists(), "the server removes its socket file");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Lesson 8's "An answer must not stall the server": a unix datagram peer that sends and never
/// reads fills its receive queue (`net.unix.max_dgram_qlen` datagrams); a blocking sendto to
/// it would wait for ever, and every other peer with it. The server answers with
/// MSG_DONTWAIT, says that the answer is dropped (EAGAIN), and goes on answering the others.
/// (Before: the server blocked in sendto, the flood's sends timed out, the other peer got no
/// answer.)
#[test]
fn a_peer_that_never_reads_its_answers_stalls_no_other_peer() {
    let dir = unique_dir("mute");
    let path = dir.join("server.sock");
    let path_arg = path.to_str().expect("utf-8");
    let (mut server, _) = start_server(&["--family", "unix", "--path", path_arg]);
    let server_at = SockAddr::unix(&path).expect("path");
    let peer = |name: &str| {
        let socket = Socket::new(Domain::UNIX, Type::DGRAM, None).expect("socket");
        socket
            .bind(&SockAddr::unix(dir.join(name)).expect("path"))
            .expect("bind");
        socket
            .set_write_timeout(Some(Duration::from_secs(10)))
            .expect("SO_SNDTIMEO");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("SO_RCVTIMEO");
        socket
    };

    // The mute peer sends three queues' worth and reads nothing. Its own sends wait only
    // while the server's queue is full, that is, until the server reads again.
    let queue: usize = std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(10);
    let mute = peer("mute.sock");
    for n in 0..3 * queue + 8 {
        mute.send_to(format!("flood {n}").as_bytes(), &server_at)
            .unwrap_or_else(|e| {
                panic!("send {n}: {e}: the server stopped reading; it waits on the mute peer")
            });
    }
    server.expect_line("<- -1 EAGAIN (Resource temporarily unavailable)", LIMIT);
    server.expect_line("'s queue is full: it does not read its answers", LIMIT);

    // Another peer still gets its answer.
    let talker = peer("talker.sock");
    talker
        .send_to(b"still there?", &server_at)
        .expect("send_to");
    assert_eq!(
        recv(&talker, 64).expect("the answer, although the mute peer's queue is full"),
        b"still there?"
    );
    // The mute peer's queue holds the answers that fitted, oldest first.
    assert_eq!(recv(&mute, 64).expect("an answer"), b"flood 0");

    server.signal(2);
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(!out.says("error:"), "{}", out.output);
    // The first answer dropped is the first that does not fit: queue + 1 fit ("more than
    // max_dgram_qlen" is full).
    let first = format!("-> sendto(3, \"flood {}\", ", queue + 1);
    let lines: Vec<&str> = out.output.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("<- -1 EAGAIN"))
        .expect("an EAGAIN");
    assert!(lines[at - 2].starts_with(&first), "{}", lines[at - 2]);
    assert!(
        lines[at + 1].ends_with("'s queue is full: it does not read its answers. This answer is dropped, as UDP would drop it; the server does not wait for one peer"),
        "{}",
        lines[at + 1]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_unix_datagram_socket_bound_to_an_empty_path_gets_an_abstract_name() {
    // Lesson 8: no ephemeral ports, but Linux's autobind: a bind with an empty path gives the
    // socket a name of the kernel's choosing in the abstract namespace, and an answer finds it.
    let dir = unique_dir("autobind");
    let path = dir.join("server.sock");
    let server = Socket::new(Domain::UNIX, Type::DGRAM, None).expect("socket");
    server
        .bind(&SockAddr::unix(&path).expect("path"))
        .expect("bind");
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("SO_RCVTIMEO");
    let client = Socket::new(Domain::UNIX, Type::DGRAM, None).expect("socket");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("SO_RCVTIMEO");
    assert!(client.local_addr().expect("getsockname").is_unnamed());
    client
        .bind(&SockAddr::unix("").expect("empty path"))
        .expect("autobind");
    let name = client.local_addr().expect("getsockname");
    let chosen = name.as_abstract_namespace().expect("an abstract name");
    assert!(!chosen.is_empty(), "{name:?}");
    client
        .send_to(b"hi", &SockAddr::unix(&path).expect("path"))
        .expect("send_to");
    let (_, from) = server
        .recv_from_with_flags(&mut [], libc::MSG_PEEK)
        .expect("peek");
    assert_eq!(from.as_abstract_namespace(), Some(chosen));
    assert_eq!(recv(&server, 16).expect("recv"), b"hi");
    server.send_to(b"back", &from).expect("answer");
    assert_eq!(recv(&client, 16).expect("the answer"), b"back");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn demo(args: &[&str]) -> Finished {
    let mut all = vec!["--demo"];
    all.extend_from_slice(args);
    let out = run(step8(), &all, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    out
}

#[test]
fn the_demo_tells_the_whole_story() {
    let out = demo(&[]);
    for needle in [
        "ready: bound to 127.0.0.1:",
        "two peers, one socket: no listen, no accept",
        "server    <- -1 EAGAIN (Resource temporarily unavailable)",
        "nothing arrived: connect() on a datagram socket sent no packet",
        "client C  <- 2: \"hi\"",
        "not the stranger's datagram, which was sent first",
        "client D  <- -1 ECONNREFUSED (Connection refused)",
        "client E  <- -1 EAGAIN (Resource temporarily unavailable)",
        "server    <- 4: \"0123\"",
        "server    <- 10\nserver       the datagram's real length; 4 bytes fitted",
        "server    <- 4: \"next\"",
    ] {
        // A result and the note under it are two lines: the needle may hold both.
        assert!(out.output.contains(needle), "{needle}\n{}", out.output);
    }
    assert!(!out.says("-> listen(") && !out.says("-> accept4("));
}

#[test]
fn a_unix_demo_differs_where_the_kernel_knows_more() {
    let out = demo(&["--family", "unix"]);
    // A unix socket connected to another peer refuses a stranger out loud.
    assert!(
        out.says("stranger  <- -1 EPERM (Operation not permitted)"),
        "{}",
        out.output
    );
    // A path with no socket behind it fails at once, connected or not.
    assert!(out.says("client D  <- -1 ENOENT"), "{}", out.output);
    assert!(out.says("client E  <- -1 ENOENT"), "{}", out.output);
    // Truncation is the same.
    assert!(
        out.output
            .contains("server    <- 10\nserver       the datagram's real length"),
        "{}",
        out.output
    );
    let dir = out
        .lines_with("ready: bound to ")
        .next()
        .and_then(testkit::process::ready_address)
        .map(|p| PathBuf::from(p).parent().expect("a dir").to_path_buf())
        .expect("the server's path");
    assert!(
        !dir.exists(),
        "the demo removes its files: {}",
        dir.display()
    );
}

#[test]
fn the_narration_shows_every_network_call_strace_sees() {
    for args in [vec!["--demo"], vec!["--demo", "--family", "unix"]] {
        let Some(traced) = strace::trace_network("step8 vs strace", step8(), &args, LIMIT) else {
            return;
        };
        assert_eq!(traced.run.code, Some(0), "{}", traced.run.output);
        let narrated = strace::narrated_network_calls(&traced.run.output);
        let seen: Vec<String> = traced.calls.iter().map(|c| c.name.clone()).collect();
        assert_eq!(narrated, seen, "{args:?}");
        // The connect of part 2 is followed by no sendto until the client sends.
        let at = traced
            .calls
            .iter()
            .position(|c| c.name == "connect")
            .expect("a connect");
        assert_ne!(
            traced.calls[at + 1].name,
            "sendto",
            "{:?}",
            traced.calls[at + 1]
        );
    }
    // The client, connected, under strace: connect, then the one sendto it asked for.
    let (server, address) = start_server(&["--max-datagrams", "1"]);
    let args = [
        "--role",
        "client",
        "--port",
        &port_of(&address),
        "--connect",
    ];
    let Some(traced) = strace::trace_network("client vs strace", step8(), args, LIMIT) else {
        return;
    };
    let names: Vec<&str> = traced.calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["socket", "setsockopt", "connect", "sendto", "recvfrom"]
    );
    assert_eq!(
        strace::narrated_network_calls(&traced.run.output),
        names.iter().map(|n| n.to_string()).collect::<Vec<_>>()
    );
    server.finish(LIMIT);
}

#[test]
fn bad_command_lines_get_one_line_and_exit_2() {
    for args in [
        vec!["--role", "client"],
        vec!["--role", "peer"],
        vec!["--bufsize", "0"],
        vec!["--bufsize", "100000"],
        vec!["--max-datagrams", "0"],
        vec!["--demo", "--part", "5"],
        vec!["--part", "1"],
        vec!["--demo", "--port", "9"],
        vec!["--demo", "--connect"],
        vec!["--family", "unix", "--port", "9"],
        vec!["--family", "ipv4", "--path", "/tmp/x.sock"],
    ] {
        let out = run(step8(), &args, LIMIT);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.output);
        let errors: Vec<&str> = out.lines_with("error: ").collect();
        assert_eq!(errors.len(), 1, "{args:?}: {}", out.output);
        assert!(!out.says("panicked"), "{}", out.output);
    }
}

#[test]
fn socket_errors_get_one_line_and_exit_1() {
    let (_holder, at) = udp();
    let port = at.as_socket().expect("inet").port().to_string();
    let out = run(step8(), ["--port", &port], LIMIT);
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(out.says("<- -1 EADDRINUSE"), "{}", out.output);
    assert_eq!(out.lines_with("error: ").count(), 1, "{}", out.output);
    let out = run(step8(), ["--host", "no-such-host.invalid"], LIMIT);
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(out.says("cannot resolve host 'no-such-host.invalid'"));
}

#[test]
fn ctrl_c_stops_the_server_and_removes_its_unix_file() {
    let dir = unique_dir("ctrlc");
    let path = dir.join("server.sock");
    let (server, _) = start_server(&["--family", "unix", "--path", path.to_str().expect("utf-8")]);
    assert!(path.exists());
    server.signal(2);
    let out = server.finish(LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(!path.exists(), "{}", out.output);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The state column of /proc/net/udp for the socket bound to `port` on 127.0.0.1
/// (what `ss -uan` shows: 01 ESTAB, 07 UNCONN).
///
/// The kernel writes that file in pieces, and a socket can be missed when other sockets come
/// and go between two pieces (other tests run in parallel): a socket that is not found is
/// looked for again, a bounded number of times.
fn udp_state(port: u16) -> Option<String> {
    let local = format!("0100007F:{port:04X}");
    (0..50).find_map(|_| {
        let text = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
        text.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&local.as_str())).then(|| fields[3].to_owned())
        })
    })
}

#[test]
fn a_connected_datagram_socket_is_listed_as_estab_though_nothing_was_sent() {
    let (server, server_at) = udp();
    let (client, client_at) = udp();
    let port = client_at.as_socket().expect("inet").port();
    assert_eq!(
        udp_state(port).as_deref(),
        Some("07"),
        "UNCONN before connect"
    );
    client.connect(&server_at).expect("connect");
    assert_eq!(
        udp_state(port).as_deref(),
        Some("01"),
        "ESTAB after connect"
    );
    assert!(nothing_waits(&server), "and nothing was sent");
}

#[test]
fn an_unconnected_socket_hears_the_refusal_only_with_ip_recverr() {
    let Some(python) = python3() else {
        testkit::skip(
            "an_unconnected_socket_hears_the_refusal_only_with_ip_recverr",
            "python3 is not installed",
        );
        return;
    };
    // IP_RECVERR is option 11 of IPPROTO_IP on Linux; socket2 has no setter for it.
    let script = r#"
import socket, sys
port = int(sys.argv[1])
for recverr in (0, 1):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.3)
    s.setsockopt(socket.IPPROTO_IP, 11, recverr)
    s.sendto(b"anyone?", ("127.0.0.1", port))
    try:
        s.recv(64)
        print(recverr, "data")
    except ConnectionRefusedError:
        print(recverr, "refused")
    except socket.timeout:
        print(recverr, "silence")
    s.close()
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script, &free_port().to_string()])
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 silence"), "without IP_RECVERR: {text}");
    assert!(text.contains("1 refused"), "with IP_RECVERR: {text}");
}

// ---- issue 8: --client-path and counts ----

#[test]
fn client_path_is_refused_outside_the_unix_family_and_named_in_its_errors() {
    let line = testkit::process::fails_in_one_line(
        step8(),
        &[
            "--role",
            "client",
            "--port",
            "9",
            "--client-path",
            "/tmp/x.sock",
        ],
        2,
    );
    assert!(
        line.contains("--client-path applies to --family unix only"),
        "{line}"
    );
    let long = format!("/tmp/{}.sock", "x".repeat(120));
    let line = testkit::process::fails_in_one_line(
        step8(),
        &[
            "--role",
            "client",
            "--family",
            "unix",
            "--client-path",
            &long,
        ],
        2,
    );
    assert!(line.starts_with("error: --client-path "), "{line}");
    let line = testkit::process::fails_in_one_line(step8(), &["--max-datagrams", "0"], 2);
    assert!(
        line.contains("1 or more") && !line.contains("4294967295"),
        "{line}"
    );
}
