//! Lesson 9's claims made exact: the errno of a send without a connection, and what the kernel
//! does with a receive buffer size it is given.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

fn sysctl_number(path: &str) -> Option<usize> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn send_without_a_connection_is_epipe_on_tcp_and_enotconn_on_a_unix_stream() {
    let tcp = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    let error = tcp.send(b"hello").expect_err("not connected");
    assert_eq!(
        error.raw_os_error(),
        Some(libc::EPIPE),
        "Linux's TCP says EPIPE: {error}"
    );

    let unix = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
    let error = unix.send(b"hello").expect_err("not connected");
    assert_eq!(
        error.raw_os_error(),
        Some(libc::ENOTCONN),
        "a unix stream socket says ENOTCONN, the errno POSIX names: {error}"
    );
}

#[test]
fn so_rcvbuf_is_capped_at_rmem_max_and_then_doubled() {
    let Some(rmem_max) = sysctl_number("/proc/sys/net/core/rmem_max") else {
        testkit::skip("so_rcvbuf cap", "cannot read net.core.rmem_max");
        return;
    };
    let asked = 10 << 20; // 10 MiB
    for (domain, ty, protocol) in [
        (Domain::IPV4, Type::STREAM, Some(Protocol::TCP)),
        (Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)),
    ] {
        let socket = Socket::new(domain, ty, protocol).expect("socket");
        socket.set_recv_buffer_size(asked).expect("SO_RCVBUF");
        assert_eq!(
            socket.recv_buffer_size().expect("getsockopt"),
            2 * asked.min(rmem_max),
            "10 MiB asked, capped at rmem_max = {rmem_max}, then doubled ({ty:?})"
        );
    }
}

/// A TCP pair on loopback: (sender, receiver), the receiver set up by `prepare` before any
/// byte arrives. Sends `total` bytes, reads them all in 64 KiB reads, and returns the
/// receiver's SO_RCVBUF before and after.
fn transfer(total: usize, prepare: impl Fn(&Socket)) -> (usize, usize) {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    listener
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind");
    listener.listen(1).expect("listen");
    let sender = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    sender
        .connect(&listener.local_addr().expect("address"))
        .expect("connect");
    let (receiver, _) = listener.accept().expect("accept");
    receiver
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("SO_RCVTIMEO");
    prepare(&receiver);
    let before = receiver.recv_buffer_size().expect("getsockopt");

    let writer = std::thread::spawn(move || {
        let chunk = vec![7u8; 1 << 20];
        let mut sender = sender;
        for _ in 0..total / chunk.len() {
            sender.write_all(&chunk).expect("send");
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < total {
        let n = (&receiver).read(&mut buf).expect("recv");
        assert_ne!(n, 0, "the sender closed early");
        got += n;
    }
    writer.join().expect("the sender finished");
    (before, receiver.recv_buffer_size().expect("getsockopt"))
}

#[test]
fn a_tcp_receive_buffer_that_was_set_is_not_autotuned() {
    const TOTAL: usize = 32 << 20;
    let set = 256 * 1024;
    let (before, after) = transfer(TOTAL, |s| s.set_recv_buffer_size(set).expect("SO_RCVBUF"));
    assert_eq!(before, 2 * set, "set, and doubled");
    assert_eq!(after, before, "32 MiB later the size is still what was set");

    // A receiver that set nothing is autotuned, if the kernel is allowed to: its buffer grows
    // as the reader keeps up. How much depends on timing, so three tries may be made.
    if sysctl_number("/proc/sys/net/ipv4/tcp_moderate_rcvbuf") != Some(1) {
        testkit::skip(
            "autotuning",
            "net.ipv4.tcp_moderate_rcvbuf is off: no socket is autotuned",
        );
        return;
    }
    let mut sizes = Vec::new();
    for _ in 0..3 {
        let (before, after) = transfer(TOTAL, |_| {});
        sizes.push((before, after));
        if after > before {
            return;
        }
    }
    panic!("a default receive buffer never grew over three 32 MiB transfers: {sizes:?}");
}
