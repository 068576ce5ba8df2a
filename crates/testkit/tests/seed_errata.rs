//! Where the seed article is wrong about how sockets behave, checked against the kernel.
//! `lessons/errata.md` cites these tests; the steps' own tests check the rest.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;
use testkit::python3;

/// A connected TCP pair on loopback: (client, server's end).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    (client, server)
}

#[test]
fn send_counts_bytes_not_characters() {
    let (client, _server) = tcp_pair();
    let text = "你好";
    let sent = socket2::SockRef::from(&client)
        .send(text.as_bytes())
        .expect("send");
    assert_eq!(text.chars().count(), 2, "two characters");
    assert_eq!(sent, 6, "six bytes in UTF-8: send counts bytes");
}

#[test]
fn tcp_keeps_what_a_small_recv_did_not_take() {
    let (mut client, mut server) = tcp_pair();
    client.write_all(b"0123456789").expect("send");
    let mut small = [0u8; 4];
    server.read_exact(&mut small).expect("recv 4");
    assert_eq!(&small, b"0123");
    let mut rest = [0u8; 6];
    server
        .read_exact(&mut rest)
        .expect("the rest is still there");
    assert_eq!(&rest, b"456789");
}

#[test]
fn udp_loses_what_a_small_recv_did_not_take() {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let to = receiver.local_addr().expect("addr");
    sender.send_to(b"0123456789", to).expect("send");
    sender.send_to(b"second", to).expect("send");
    let mut small = [0u8; 4];
    let (n, _) = receiver.recv_from(&mut small).expect("recv");
    assert_eq!(&small[..n], b"0123", "the first four bytes");
    let mut big = [0u8; 64];
    let (n, _) = receiver.recv_from(&mut big).expect("recv");
    assert_eq!(&big[..n], b"second", "the next datagram: 456789 is gone");
}

#[test]
fn python_3_sends_bytes_not_strings() {
    let Some(python) = python3() else {
        testkit::skip(
            "python_3_sends_bytes_not_strings",
            "python3 is not installed",
        );
        return;
    };
    let script = r#"
import socket
a, b = socket.socketpair()
try:
    a.send("你好")
    print("str accepted")
except TypeError as e:
    print("TypeError:", e)
print("sent", a.send("你好".encode()))
print("received", type(b.recv(100)).__name__)
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TypeError:"), "{text}");
    assert!(text.contains("sent 6"), "{text}");
    assert!(text.contains("received bytes"), "{text}");
}

#[test]
fn socket_error_is_oserror_in_python_3() {
    let Some(python) = python3() else {
        testkit::skip(
            "socket_error_is_oserror_in_python_3",
            "python3 is not installed",
        );
        return;
    };
    // The seed catches socket.error. Since Python 3.3 it is another name for OSError, and a
    // failed lookup raises socket.gaierror, a subclass of it: `except OSError` catches both.
    let script = r#"
import socket
print("alias", socket.error is OSError)
try:
    socket.getaddrinfo("no-such-host.invalid", 80)
except OSError as e:
    print("caught", type(e).__name__)
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .env("RES_OPTIONS", "timeout:1 attempts:1")
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("alias True"), "{text}");
    assert!(text.contains("caught gaierror"), "{text}");
}
