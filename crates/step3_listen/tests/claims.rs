//! Lesson 3's claims made exact: which socket types listen.

use std::io::Read;
use std::path::PathBuf;

use socket2::{Domain, SockAddr, Socket, Type};

/// A socket path of this test's own: parallel runs do not share one.
fn unique_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("step3-claims-{}-{name}.sock", std::process::id()))
}

#[test]
fn a_seqpacket_socket_listens_accepts_and_keeps_message_boundaries() {
    let path = unique_path("seqpacket");
    let _ = std::fs::remove_file(&path);
    let address = SockAddr::unix(&path).expect("a unix address");

    let listener = Socket::new(Domain::UNIX, Type::SEQPACKET, None).expect("socket");
    listener.bind(&address).expect("bind");
    listener
        .listen(1)
        .expect("SOCK_SEQPACKET listens: it has connections");
    let client = Socket::new(Domain::UNIX, Type::SEQPACKET, None).expect("socket");
    client.connect(&address).expect("connect");
    let (conn, _) = listener.accept().expect("accept");
    std::fs::remove_file(&path).expect("remove our socket file");

    // Connected like a stream, but each send is one message, received whole.
    for message in [&b"abc"[..], b"defgh"] {
        assert_eq!(client.send(message).expect("send"), message.len());
    }
    let mut buf = [0u8; 64];
    assert_eq!((&conn).read(&mut buf).expect("recv"), 3);
    assert_eq!(&buf[..3], b"abc");
    assert_eq!((&conn).read(&mut buf).expect("recv"), 5);
    assert_eq!(&buf[..5], b"defgh");

    drop(client);
    assert_eq!((&conn).read(&mut buf).expect("recv"), 0, "the peer closed");
}

#[test]
fn a_datagram_socket_does_not_listen_in_either_family() {
    for (domain, name) in [(Domain::IPV4, "ipv4"), (Domain::UNIX, "unix")] {
        let socket = Socket::new(domain, Type::DGRAM, None).expect("socket");
        let address = match name {
            "ipv4" => SockAddr::from(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            _ => SockAddr::unix(unique_path("dgram")).expect("a unix address"),
        };
        let _ = std::fs::remove_file(unique_path("dgram"));
        socket.bind(&address).expect("bind");
        let error = socket
            .listen(1)
            .expect_err("a datagram socket has nothing to queue");
        assert_eq!(
            error.raw_os_error(),
            Some(95),
            "EOPNOTSUPP for {name}: {error}"
        );
        let _ = std::fs::remove_file(unique_path("dgram"));
    }
}
