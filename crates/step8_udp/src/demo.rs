//! `--demo`: a server and its clients in one process, in four parts: many peers on one
//! socket, connect() on a datagram socket, nobody there, and a buffer too small. Every call
//! returns at once or waits for a datagram an earlier call has already sent, so the story is
//! the same on every run.

use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::time::Duration;

use libc::{MSG_DONTWAIT, MSG_PEEK, MSG_TRUNC};
use socket2::{SockAddr, Socket, Type};
use tutor::{Failure, Family, Narrator, addr, interrupt, narrate};

use crate::cli::Cli;
use crate::client::REFUSED;
use crate::{answer, datagram_protocol, next_datagram};

/// Where the demo's peers live: for ipv4/ipv6 the loopback address (ports chosen by the
/// kernel); for unix, a fresh directory with one path per socket.
struct Places {
    family: Family,
    server: SockAddr,
    dir: Option<PathBuf>,
}

impl Places {
    /// The address a client binds: port 0 (the kernel chooses), or its own path.
    fn own(&self, name: &str) -> Result<SockAddr, Failure> {
        match &self.dir {
            Some(dir) => addr::unix(&dir.join(format!("{name}.sock"))),
            None => {
                let ip = self.server.as_socket().map(|a| a.ip());
                let ip = ip.ok_or_else(|| Failure::Peer("not an IP address".into()))?;
                Ok(SockAddr::from(std::net::SocketAddr::new(ip, 0)))
            }
        }
    }

    /// A client socket: socket(), and bind() to its own address, so that its port (or path)
    /// is known before it sends.
    fn client(&self, say: &Narrator, name: &str) -> Result<(Socket, SockAddr), Failure> {
        let own = self.own(name)?;
        let domain = own.domain();
        let protocol = datagram_protocol(self.family);
        let socket = narrate!(say, Socket::new(domain, Type::DGRAM, protocol))?;
        narrate!(say, socket.bind(&own), interrupt::owning(&own))?;
        let local = narrate!(say, socket.local_addr())?;
        Ok((socket, local))
    }
}

/// The whole demo: the server's socket, then the parts asked for.
pub fn run(say: &Narrator, cli: &Cli) -> Result<(), Failure> {
    let family = cli.address.family;
    let server = say.actor("server");
    // The unix peers' files go in a directory made new for this run (mkdir fails if the name
    // exists): nothing that was there before is touched.
    let dir = match family {
        Family::Unix => {
            Some(
                interrupt::fresh_dir("step8_udp-demo").map_err(|error| Failure::Socket {
                    call: format!(
                        "mkdir(\"{}/step8_udp-demo-...\")",
                        std::env::temp_dir().display()
                    ),
                    error,
                })?,
            )
        }
        _ => None,
    };
    let address = match &dir {
        Some(dir) => addr::unix(&dir.join("server.sock"))?,
        None => cli.address.resolve(&server)?,
    };
    let result = (|| {
        let domain = address.domain();
        let protocol = datagram_protocol(family);
        let socket = narrate!(server, Socket::new(domain, Type::DGRAM, protocol))?;
        narrate!(server, socket.bind(&address), interrupt::owning(&address))?;
        let local = narrate!(server, socket.local_addr())?;
        server.ready("bound to", &local);
        let places = Places {
            family,
            server: local,
            dir: dir.clone(),
        };
        let wanted = |part: u8| cli.part.is_none_or(|only| only == part);
        if wanted(1) {
            many_peers(say, &socket, &places)?;
        }
        if wanted(2) {
            connected(say, &socket, &places)?;
        }
        if wanted(3) {
            nobody_there(say, &places)?;
        }
        if wanted(4) {
            short_buffer(say, &socket, &places)?;
        }
        close(&server, socket, &places.server);
        Ok(())
    })();
    if let Some(dir) = &dir {
        for why in interrupt::remove_fresh_dir(dir) {
            say.note(why);
        }
    }
    result
}

/// The server's turn: learn the sender, take the datagram, answer it.
fn serve_one(server: &Narrator, socket: &Socket) -> Result<(), Failure> {
    let (_, from) = next_datagram(server, socket)?;
    let mut buf = [0u8; 1024];
    let n = narrate!(server, (&socket).read(&mut buf))?;
    answer(server, socket, &buf[..n], &from);
    Ok(())
}

/// close(), and for unix the socket's file too.
fn close(say: &Narrator, socket: Socket, local: &SockAddr) {
    narrate!(say, drop(socket));
    interrupt::remove_socket_file(say, local);
}

/// Part 1. Two clients on two ports send to one server socket. Each datagram arrives with
/// its sender's address, and the server answers each one on the same socket.
fn many_peers(say: &Narrator, socket: &Socket, places: &Places) -> Result<(), Failure> {
    say.section("1. one socket, many peers: each datagram brings its sender's address");
    let server = say.actor("server");
    let client_a = say.actor("client A");
    let client_b = say.actor("client B");
    let server_address = &places.server;
    let (a, a_at) = places.client(&client_a, "client-a")?;
    let (b, b_at) = places.client(&client_b, "client-b")?;
    narrate!(client_a, a.send_to(b"hello from A", server_address))?;
    narrate!(client_b, b.send_to(b"hello from B", server_address))?;
    serve_one(&server, socket)?;
    serve_one(&server, socket)?;
    server.note("two peers, one socket: no listen, no accept, no new socket per peer");
    let mut buf = [0u8; 1024];
    for (client, socket) in [(&client_a, &a), (&client_b, &b)] {
        let (_, from) = next_datagram(client, socket)?;
        if from == *server_address {
            client.note("the answer comes from the server's address");
        }
        narrate!(client, (&socket).read(&mut buf))?;
    }
    close(&client_a, a, &a_at);
    close(&client_b, b, &b_at);
    Ok(())
}

/// Part 2. connect() on a datagram socket sends nothing; it sets the default peer (send and
/// recv work without an address) and filters: datagrams from any other address are dropped.
fn connected(say: &Narrator, socket: &Socket, places: &Places) -> Result<(), Failure> {
    say.section("2. connect() on a datagram socket: a default peer and a filter, no packet");
    let server = say.actor("server");
    let client_c = say.actor("client C");
    let stranger = say.actor("stranger");
    let server_address = &places.server;
    let (c, c_at) = places.client(&client_c, "client-c")?;
    narrate!(client_c, c.connect(server_address))?;
    client_c.note("at once: no handshake; the kernel only noted the peer");

    // Did anything reach the server? Look without waiting (MSG_DONTWAIT).
    match narrate!(
        server,
        socket.recv_from_with_flags(&mut [], MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT)
    ) {
        Ok(_) => {}
        Err(failure) if failure.would_block() => {
            server.note("nothing arrived: connect() on a datagram socket sent no packet")
        }
        Err(failure) => server.hint(&failure),
    }
    narrate!(client_c, c.peer_addr())?;
    client_c.note("the default peer");

    // A stranger sends to client C. The kernel drops it: C is connected to the server.
    let (stranger_socket, stranger_at) = places.client(&stranger, "stranger")?;
    let stranger_sent = match narrate!(stranger, stranger_socket.send_to(b"not for you", &c_at)) {
        Ok(_) => {
            stranger.note("sent: the stranger does not learn whether anyone took it");
            true
        }
        Err(failure) => {
            stranger.hint(&failure);
            if failure.errno() == Some(libc::EPERM) {
                stranger.note("a unix datagram socket connected to another peer refuses other senders, and says so (EPERM); UDP drops them silently");
            }
            false
        }
    };

    narrate!(client_c, c.send(b"hi"))?;
    client_c.note("no address needed: it goes to the connected peer");
    serve_one(&server, socket)?;
    let mut buf = [0u8; 1024];
    let n = narrate!(client_c, (&c).read(&mut buf))?;
    if &buf[..n] == b"hi" && stranger_sent {
        client_c.note("the server's answer, and not the stranger's datagram, which was sent first: a connected datagram socket takes datagrams from its peer only");
    }
    close(&stranger, stranger_socket, &stranger_at);
    close(&client_c, c, &c_at);
    Ok(())
}

/// Part 3. Nobody there. A connected socket hears about it: the ICMP "port unreachable"
/// becomes ECONNREFUSED on its next call. An unconnected socket hears nothing at all.
fn nobody_there(say: &Narrator, places: &Places) -> Result<(), Failure> {
    say.section("3. nobody there: a connected socket is told, an unconnected one is not");
    let client_d = say.actor("client D");
    let client_e = say.actor("client E");
    let nobody = match &places.dir {
        Some(dir) => addr::unix(&dir.join("nobody.sock"))?,
        None => {
            // A port where nothing is bound: bind to port 0, note the port, close.
            let (probe, nobody) = places.client(&client_d, "probe")?;
            narrate!(client_d, drop(probe));
            client_d.note(format!(
                "nothing is bound to {} any more",
                addr::show(&nobody)
            ));
            nobody
        }
    };
    let timeout = Duration::from_millis(300);
    let mut buf = [0u8; 1024];

    // Client D connects, sends, and reads.
    let (d, d_at) = places.client(&client_d, "client-d")?;
    match narrate!(client_d, d.connect(&nobody)) {
        Ok(()) => {
            client_d.note("connect() cannot know that nobody is there: it sends nothing");
            if let Err(failure) = narrate!(client_d, d.send(b"anyone?")) {
                client_d.hint(&failure);
            }
            narrate!(client_d, d.set_read_timeout(Some(timeout)))?;
            match narrate!(client_d, (&d).read(&mut buf)) {
                Ok(_) => {}
                Err(failure) if failure.errno() == Some(libc::ECONNREFUSED) => {
                    client_d.note(REFUSED)
                }
                Err(failure) => client_d.hint(&failure),
            }
        }
        Err(failure) => {
            client_d.hint(&failure);
            client_d.note("a unix datagram socket finds out at once: the path names no socket");
        }
    }
    close(&client_d, d, &d_at);

    // Client E does not connect: it sends with send_to and waits.
    let (e, e_at) = places.client(&client_e, "client-e")?;
    narrate!(client_e, e.set_read_timeout(Some(timeout)))?;
    match narrate!(client_e, e.send_to(b"anyone?", &nobody)) {
        Ok(_) => match next_datagram(&client_e, &e) {
            Ok(_) => {}
            Err(failure) if failure.would_block() => client_e.note("300 ms of silence: the same ICMP message came back, but Linux tells an unconnected UDP socket nothing (unless it sets IP_RECVERR)"),
            Err(failure) => client_e.hint(&failure),
        },
        Err(failure) => client_e.hint(&failure),
    }
    close(&client_e, e, &e_at);
    Ok(())
}

/// Part 4. A receive buffer smaller than the datagram: recv returns what fitted, MSG_TRUNC
/// tells the datagram's real length, and the rest is gone: the next recv gets the next
/// datagram.
fn short_buffer(say: &Narrator, socket: &Socket, places: &Places) -> Result<(), Failure> {
    say.section("4. a buffer too small: the rest of the datagram is lost");
    let server = say.actor("server");
    let client_f = say.actor("client F");
    let server_address = &places.server;
    let (f, f_at) = places.client(&client_f, "client-f")?;
    for data in [&b"0123456789"[..], b"0123456789", b"next"] {
        narrate!(client_f, f.send_to(data, server_address))?;
    }

    // A 4-byte buffer for a 10-byte datagram.
    let mut four = [0u8; 4];
    let n = narrate!(server, (&socket).read(&mut four))?;
    if &four[..n] == b"0123" {
        server.note("four bytes, and nothing says that six more were sent");
    }

    // MSG_TRUNC: recv returns the datagram's real length, though only 4 bytes were copied.
    // Its buffer is MaybeUninit: only the length that comes back is read, not the bytes.
    let mut small = [MaybeUninit::<u8>::uninit(); 4];
    narrate!(server, socket.recv_with_flags(&mut small, MSG_TRUNC))?;
    server.note(format!(
        "the datagram's real length; {} bytes fitted",
        small.len()
    ));

    // The rest, 456789, is not waiting: the next recv takes the next datagram.
    let mut buf = [0u8; 1024];
    let n = narrate!(server, (&socket).read(&mut buf))?;
    if &buf[..n] == b"next" {
        server.note("the next datagram, not \"456789\": what did not fit was thrown away (a TCP socket would have kept it)");
    }
    close(&client_f, f, &f_at);
    Ok(())
}
