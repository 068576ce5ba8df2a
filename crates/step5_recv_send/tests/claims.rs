//! Lesson 5's claims made exact: when recv returns 0.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// A connected pair of TCP sockets on loopback: (client, server's accepted socket).
fn tcp_pair() -> (Socket, Socket) {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    listener
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind");
    listener.listen(1).expect("listen");
    let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    client
        .connect(&listener.local_addr().expect("address"))
        .expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (client, server)
}

#[test]
fn recv_into_an_empty_buffer_returns_0_on_an_open_connection() {
    let (client, server) = tcp_pair();
    let mut buf = [0u8; 64];

    // Bytes are waiting: recv of 0 bytes returns 0 at once, and takes none of them.
    assert_eq!(client.send(b"still open").expect("send"), 10);
    let mut peek = [std::mem::MaybeUninit::<u8>::uninit(); 10];
    let waiting = server
        .recv_with_flags(&mut peek, libc::MSG_PEEK | libc::MSG_WAITALL)
        .expect("the bytes arrive");
    assert_eq!(waiting, 10);
    assert_eq!(server.recv(&mut []).expect("recv(fd, buf, 0, 0)"), 0);
    assert_eq!((&server).read(&mut buf).expect("recv"), 10);
    assert_eq!(&buf[..10], b"still open");

    // Nothing is waiting: a blocking recv of 0 bytes waits like any recv, here until its
    // timeout runs out, and then returns 0 (Linux), where a real buffer gets EAGAIN.
    let timeout = Duration::from_millis(300);
    server.set_read_timeout(Some(timeout)).expect("SO_RCVTIMEO");
    let started = Instant::now();
    assert_eq!(server.recv(&mut []).expect("recv of 0 bytes"), 0);
    assert!(
        started.elapsed() >= timeout / 2,
        "it waited for data: {:?}",
        started.elapsed()
    );
    let error = (&server).read(&mut buf).expect_err("nothing came");
    assert_eq!(error.raw_os_error(), Some(libc::EAGAIN), "{error}");

    // The connection was open all along: bytes still go through both ways.
    assert_eq!(server.send(b"ok").expect("send"), 2);
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("SO_RCVTIMEO");
    assert_eq!((&client).read(&mut buf).expect("recv"), 2);

    // Only once the peer has closed does a real buffer get 0: the end of the stream.
    drop(client);
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("SO_RCVTIMEO");
    assert_eq!(
        (&server).read(&mut buf).expect("recv"),
        0,
        "the peer closed"
    );
}

/// A signal that arrives while a blocking send waits for room makes the send return what it had
/// taken so far. Rust gives safe code no signal handler to install, so python3 makes the call:
/// its `send` is one `sendto`, as here, and its handler for SIGALRM does nothing.
#[test]
fn a_signal_makes_a_blocking_send_short() {
    let Some(python) = testkit::python3() else {
        testkit::skip(
            "a_signal_makes_a_blocking_send_short",
            "python3 is not installed",
        );
        return;
    };
    let script = "import signal, socket\n\
        l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(1)\n\
        c = socket.create_connection(l.getsockname()); s, _ = l.accept()\n\
        fired = []\n\
        signal.signal(signal.SIGALRM, lambda *a: fired.append(1))\n\
        total = 64 << 20\n\
        data = b'x' * total\n\
        signal.setitimer(signal.ITIMER_REAL, 0.3, 0.3)\n\
        n = c.send(data)\n\
        signal.setitimer(signal.ITIMER_REAL, 0)\n\
        print(n, total, len(fired))\n";
    let mut command = std::process::Command::new(python);
    command.args(["-c", script]);
    // Without the signal the send would wait for ever: the peer never reads. The timer fires
    // every 0.3 s until the send returns, so a slow start (a loaded machine) cannot let the
    // only signal come before the send begins.
    let out = testkit::process::run_command(command, Duration::from_secs(20));
    assert_eq!(out.code, Some(0), "{}", out.output);
    let numbers: Vec<usize> = out
        .output
        .split_whitespace()
        .map(|w| w.parse().expect("three numbers"))
        .collect();
    let [sent, total, fired] = numbers[..] else {
        panic!("three numbers: {}", out.output)
    };
    assert!(fired >= 1, "the timer fired");
    assert!(
        sent > 0 && sent < total,
        "a short count, not an error: {sent} of {total}"
    );
}
