//! Lesson 8's claims made exact: what connect() filters and how, and how a program learns that
//! a datagram was cut short.

use std::io::{ErrorKind, Read};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, MaybeUninitSlice, MsgHdrMut, Protocol, SockAddr, Socket, Type};

/// A UDP socket bound to 127.0.0.1, port chosen by the kernel, with a read timeout so that
/// no test can hang on it.
fn udp() -> (Socket, SockAddr) {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("SO_RCVTIMEO");
    let local = socket.local_addr().expect("address");
    (socket, local)
}

fn recv(socket: &Socket) -> std::io::Result<Vec<u8>> {
    let mut buf = [0u8; 64];
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

#[test]
fn a_datagram_queued_before_connect_is_still_delivered_after_it() {
    let (peer, peer_at) = udp();
    let (client, client_at) = udp();
    let (stranger, _) = udp();

    stranger
        .send_to(b"queued before connect", &client_at)
        .expect("send_to");
    // Wait until it is queued (a peek does not take it), so that connect comes after it.
    let mut peek = [MaybeUninit::<u8>::uninit(); 1];
    client
        .recv_from_with_flags(&mut peek, libc::MSG_PEEK)
        .expect("the stranger's datagram arrives");

    client.connect(&peer_at).expect("connect");
    stranger
        .send_to(b"sent after connect", &client_at)
        .expect("send_to");
    peer.send_to(b"from the peer", &client_at).expect("send_to");

    assert_eq!(
        recv(&client).expect("a datagram"),
        b"queued before connect",
        "connect filters what arrives later; what was queued stays"
    );
    assert_eq!(recv(&client).expect("a datagram"), b"from the peer");
    assert!(
        nothing_waits(&client),
        "the later stranger's datagram never arrived"
    );
}

#[test]
fn a_filtered_strangers_datagram_is_answered_with_port_unreachable() {
    let (peer, peer_at) = udp();
    let (client, client_at) = udp();
    client.connect(&peer_at).expect("connect");

    // The stranger connects too, so that its kernel reports an ICMP error for the socket.
    let (stranger, _) = udp();
    stranger.connect(&client_at).expect("connect");
    stranger.send(b"not for you").expect("send");
    let error = recv(&stranger).expect_err("an error, not silence");
    assert_eq!(
        error.raw_os_error(),
        Some(libc::ECONNREFUSED),
        "the client's kernel answered ICMP port unreachable, as for a closed port: {error}"
    );

    // The peer is not filtered, and the client got nothing else.
    peer.send_to(b"for you", &client_at).expect("send_to");
    assert_eq!(recv(&client).expect("a datagram"), b"for you");
    assert!(nothing_waits(&client));
}

#[test]
fn recvmsg_says_a_datagram_was_truncated_in_msg_flags() {
    let (server, server_at) = udp();
    let (client, _) = udp();
    client.send_to(b"0123456789", &server_at).expect("send_to");
    client.send_to(b"fits", &server_at).expect("send_to");

    // No flags in: recvmsg copies 4 bytes and sets MSG_TRUNC in msg_flags on the way out.
    let mut small = [MaybeUninit::<u8>::uninit(); 4];
    let mut bufs = [MaybeUninitSlice::new(&mut small)];
    let mut msg = MsgHdrMut::new().with_buffers(&mut bufs);
    let n = server.recvmsg(&mut msg, 0).expect("recvmsg");
    assert_eq!(n, 4, "only what fitted, not the real length");
    assert!(msg.flags().is_truncated(), "msg_flags has MSG_TRUNC");

    let mut big = [MaybeUninit::<u8>::uninit(); 64];
    let mut bufs = [MaybeUninitSlice::new(&mut big)];
    let mut msg = MsgHdrMut::new().with_buffers(&mut bufs);
    let n = server.recvmsg(&mut msg, 0).expect("recvmsg");
    assert_eq!(n, 4);
    assert!(!msg.flags().is_truncated(), "a datagram that fits is not");
}
