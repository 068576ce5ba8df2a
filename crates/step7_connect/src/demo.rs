//! `--demo`: both ends in one process, one call at a time: a server that echoes one message,
//! a client that connects and talks to it, the seed's SOCK_DGRAM client against the same
//! server, then a client that connects where nothing listens. Every call returns at once or
//! waits for something an earlier call has already set going, so the story is the same on
//! every run.

use std::io;
use std::time::Duration;

use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::{Failure, Family, Narrator, addr, interrupt, narrate};

use crate::cli::Cli;
use crate::printable;

/// The backlog of the demo's server: this step is not about the accept queue (step 3 is).
const BACKLOG: i32 = 8;

/// The whole demo.
pub fn run(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let server = say.actor("server");
    let client = say.actor("client");
    say.section("an echo server, in this process");
    let path = cli.path.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("step7_connect-{}.sock", std::process::id()))
    });
    if cli.family != Family::Unix && cli.path.is_some() {
        return Err(Failure::Usage(format!(
            "--path applies to --family unix only, not {}",
            cli.family
        )));
    }
    let address = addr::endpoint(&server, cli.family, cli.host.as_deref(), 0, &path)?;
    let protocol = (cli.family != Family::Unix).then_some(Protocol::TCP);
    let listener = narrate!(
        server,
        Socket::new(address.domain(), Type::STREAM, protocol)
    )?;
    // The pause records the file bind() creates, so that a signal removes it and nothing
    // else (lesson 2).
    narrate!(server, listener.bind(&address), interrupt::owning(&address))?;
    narrate!(server, listener.listen(BACKLOG))?;
    let address = narrate!(server, listener.local_addr())?;
    server.ready("listening on", &address);

    say.section("the client: socket, connect, send and recv, close");
    let socket = narrate!(
        client,
        Socket::new(address.domain(), Type::STREAM, protocol)
    )?;
    narrate!(client, socket.connect(&address))?;
    client.note(
        "connected. The server's kernel did the handshake; the server has not called accept() yet",
    );
    let local = narrate!(client, socket.local_addr())?;
    if let Some(inet) = local.as_socket() {
        client.note(format!(
            "port {} is the client's ephemeral port: no bind(), the kernel chose it at connect()",
            inet.port()
        ));
    }

    let (conn, peer) = narrate!(server, listener.accept())?;
    if peer.as_socket().is_some() && peer.as_socket() == local.as_socket() {
        server.note(
            "accept() names the client by the address its connect() got: the same ephemeral port",
        );
    }

    let message = cli
        .message
        .as_deref()
        .unwrap_or("hello, server\n")
        .as_bytes();
    let mut sent = 0;
    while sent < message.len() {
        sent += narrate!(client, socket.send(&message[sent..]))?;
    }

    // The echo server's loop: recv, send back what came, until all of the message is back.
    let mut buf = vec![0u8; cli.bufsize as usize];
    let mut echoed = 0;
    while echoed < message.len() {
        let n = narrate!(server, (&conn).read(&mut buf))?;
        if n == 0 {
            return Err(Failure::Peer("the demo's client vanished".into()));
        }
        let mut back = 0;
        while back < n {
            back += narrate!(server, conn.send(&buf[back..n]))?;
        }
        echoed += n;
    }

    // The client reads until the whole echo is back, as main.rs does.
    let mut echo = Vec::new();
    while echo.len() < message.len() {
        let want = buf.len().min(message.len() - echo.len());
        let mut buf = &mut buf[..want];
        let n = narrate!(client, (&socket).read(&mut buf))?;
        if n == 0 {
            return Err(Failure::Peer("the demo's server vanished".into()));
        }
        echo.extend_from_slice(&buf[..n]);
    }
    client.say(format!("echo: {}", printable(&echo)));
    narrate!(client, drop(socket));
    client.note("the client's FIN goes to the server");

    if narrate!(server, (&conn).read(&mut buf))? == 0 {
        server.note("end of file: the client closed");
    }
    narrate!(server, drop(conn));

    seeds_client(say, cli.family, &address, &mut buf)?;
    if let Some(listening) = address.as_socket() {
        let waiting = tutor::observe::accept_queue_len(listening);
        server.note(format!(
            "accept queue: {} connection(s) waiting: the server never saw client 2",
            waiting.map_or("?".to_owned(), |n| n.to_string())
        ));
    }
    narrate!(server, drop(listener));
    server.note("nothing listens on this address any more");

    say.section("connect where nothing listens");
    let late = say.actor("client 3");
    let socket = narrate!(late, Socket::new(address.domain(), Type::STREAM, protocol))?;
    let refused = narrate!(late, socket.connect(&address));
    match &refused {
        Ok(()) => late.note("something else listens here now"),
        Err(failure) => late.hint(failure),
    }
    narrate!(late, drop(socket));
    interrupt::remove_socket_file(&server, &address);

    say.section("what happened");
    say.say("the client never called bind(): connect() gave it an address, and accept() told the server that address");
    say.say(if cli.family == Family::Unix {
        "a SOCK_DGRAM client, the seed's, cannot even connect to a stream server: EPROTOTYPE"
    } else {
        "a SOCK_DGRAM client, the seed's, cannot talk to a TCP server: its connect() sends nothing, and its datagram finds no UDP socket"
    });
    if refused.as_ref().is_err_and(|failure| {
        failure.io_error().map(io::Error::kind) == Some(io::ErrorKind::ConnectionRefused)
    }) {
        say.say(if cli.family == Family::Unix {
            "a socket file with no listener behind it: connect() fails at once with ECONNREFUSED"
        } else {
            "no listener on the port: the server's kernel answered the SYN with a reset, and connect() failed at once with ECONNREFUSED"
        });
    }
    Ok(())
}

/// The seed's client pseudocode creates its socket with SOCK_DGRAM. Against the same server,
/// still listening, that socket never reaches it.
fn seeds_client(
    say: &Narrator,
    family: Family,
    address: &SockAddr,
    buf: &mut [u8],
) -> Result<(), Failure> {
    say.section(if family == Family::Unix {
        "the seed's client: SOCK_DGRAM, to the same stream server"
    } else {
        "the seed's client: SOCK_DGRAM, to the same TCP server"
    });
    let seeds = say.actor("client 2");
    let protocol = (family != Family::Unix).then_some(Protocol::UDP);
    let socket = narrate!(seeds, Socket::new(address.domain(), Type::DGRAM, protocol))?;
    // A read timeout, so that the demo cannot wait for ever if no answer comes.
    let patience = Duration::from_secs(2);
    narrate!(seeds, socket.set_read_timeout(Some(patience)))?;
    match narrate!(seeds, socket.connect(address)) {
        Ok(()) => {
            seeds.note(
                "no handshake: a datagram socket's connect() only records the peer's address",
            );
            let message = b"hello, server\n";
            narrate!(seeds, socket.send(message))?;
            seeds.note("one UDP datagram, to a port where only TCP listens");
            let mut buf = &mut buf[..message.len()];
            if let Err(failure) = narrate!(seeds, (&socket).read(&mut buf))
                && failure.io_error().map(io::Error::kind) == Some(io::ErrorKind::ConnectionRefused)
            {
                seeds.note("no UDP socket has that port: the server's kernel answered with ICMP \"port unreachable\"");
            }
        }
        Err(_) => seeds.note("a datagram socket cannot connect to a stream socket's file"),
    }
    narrate!(seeds, drop(socket));
    Ok(())
}
