//! Lesson 4's claims made exact: the local address of an accepted socket.

use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

fn addr(socket: &Socket) -> SocketAddr {
    socket
        .local_addr()
        .expect("getsockname")
        .as_socket()
        .expect("an IP address")
}

#[test]
fn on_a_wildcard_listener_the_accepted_socket_has_the_address_the_client_reached() {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    listener
        .bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())
        .expect("bind 0.0.0.0:0");
    listener.listen(4).expect("listen");
    let port = addr(&listener).port();
    assert_eq!(addr(&listener), SocketAddr::from(([0, 0, 0, 0], port)));

    // Every 127.x.y.z address is this machine's loopback: two addresses of one listener.
    for reached in [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)] {
        let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        client
            .connect(&SocketAddr::from((reached, port)).into())
            .expect("connect");
        let (conn, _) = listener.accept().expect("accept");
        assert_eq!(
            addr(&conn),
            SocketAddr::from((reached, port)),
            "the accepted socket's local address is the one the client reached, not 0.0.0.0"
        );
        assert_eq!(
            client.peer_addr().unwrap().as_socket(),
            Some(addr(&conn)),
            "and it is what the client sees as its peer"
        );
    }
}

#[test]
fn on_a_listener_bound_to_one_address_the_accepted_socket_has_that_address() {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    listener
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind 127.0.0.1:0");
    listener.listen(1).expect("listen");
    let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    client.connect(&addr(&listener).into()).expect("connect");
    let (conn, _) = listener.accept().expect("accept");
    assert_eq!(addr(&conn), addr(&listener));
}
