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
