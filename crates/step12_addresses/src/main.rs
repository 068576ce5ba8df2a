//! Step 12: names and addresses.
//!
//! A program knows a name; a socket needs an address. getaddrinfo(3) turns the one into the
//! other, and may give several (IPv6 and IPv4, or several servers). A client must then try
//! each in turn until one connects: Python's `socket.create_connection` does, and so does
//! Rust's `TcpStream::connect`. This program is that client. Without --port it first listens
//! on 127.0.0.1 itself, so that the list's IPv6 address refuses and its IPv4 one answers.
//! `--demo` adds the server's side: one IPv6 socket that takes IPv4 clients too (dual stack),
//! and two listeners on one port (SO_REUSEPORT); that part is in `demo.rs`.
//!
//! Read it beside `lessons/12-addresses.md`.

mod cli;
mod demo;
mod hints;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use dns_lookup::{AddrInfo, AddrInfoHints, getaddrinfo};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tutor::{Failure, Narrator, Step, explain, narrate, strace};

use cli::Cli;

const STEP: Step = Step {
    number: 12,
    crate_name: "step12_addresses",
    title: "names and addresses",
    lesson: "lessons/12-addresses.md",
};

/// The backlog of every listener here: more than the clients that wait in it at once.
const BACKLOG: i32 = 64;

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    // `[::1]`, the form the programs print, is the address ::1.
    let host = cli.host.as_deref().map(|host| {
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    });
    let hints = match hints::for_stream(cli.family, host) {
        Ok(hints) => hints,
        Err(usage) => return tutor::finish(&say, Err(usage)),
    };
    say.header();
    let result = if cli.demo {
        demo::run(&say, hints, cli.clients, cli.show_calls)
    } else {
        connect(&say, host, cli.port, hints)
    };
    tutor::finish(&say, result)
}

/// Looks `host` up and connects to `port`, or, without a port, to a listener of our own that
/// listens on 127.0.0.1 only.
fn connect(
    story: &Narrator,
    host: Option<&str>,
    port: Option<u16>,
    hints: AddrInfoHints,
) -> Result<(), Failure> {
    let server = story.actor("server");
    let (listener, port, say) = match port {
        Some(port) => (None, port, story.clone()),
        None => {
            let (listener, port) = listen_on_ipv4_loopback(&server)?;
            (Some(listener), port, story.actor("client"))
        }
    };

    let (client, address) = connect_to_name(&say, host, port, hints)?;
    say.say(format!("connected to {}", tutor::addr::show(&address)));

    if let Some(listener) = listener {
        let (conn, _peer) = narrate!(server, listener.accept())?;
        narrate!(server, drop(conn));
        narrate!(server, drop(listener));
    }
    narrate!(say, drop(client));
    Ok(())
}

/// A listener on 127.0.0.1 only: nothing listens on the IPv6 loopback address [::1].
fn listen_on_ipv4_loopback(say: &Narrator) -> Result<(Socket, u16), Failure> {
    let address = SockAddr::from(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let listener = narrate!(
        say,
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
    )?;
    narrate!(say, listener.bind(&address))?;
    narrate!(say, listener.listen(BACKLOG))?;
    let local = narrate!(say, listener.local_addr())?;
    say.ready("listening on", &local);
    say.note("on 127.0.0.1 only: nothing listens on [::1] at this port");
    Ok((listener, port_of(&local)))
}

/// Narrates a library call written once, as `narrate!` does a socket call: the Rust printed
/// is `stringify!` of the very expression that runs.
macro_rules! library_call {
    ($say:expr, $shown:expr, $krate:literal, $call:expr) => {{
        $say.call_library($shown, $krate, stringify!($call));
        $call
    }};
}

/// What Python's `socket.create_connection((host, port))` does, and Rust's
/// `TcpStream::connect((host, port))`: look the name up, then try each address in the order
/// getaddrinfo gave them until one connects. When none does, the last error is the answer.
fn connect_to_name(
    say: &Narrator,
    host: Option<&str>,
    port: u16,
    hints: AddrInfoHints,
) -> Result<(Socket, SockAddr), Failure> {
    let found = lookup(say, host, port, hints)?;
    let mut last = None;
    for (n, one) in found.iter().enumerate() {
        say.say(format!(
            "attempt {} of {}: {}",
            n + 1,
            found.len(),
            one.sockaddr
        ));
        // Each address comes with the socket to make for it: family, type and protocol.
        let domain = Domain::from(one.address);
        let ty = Type::from(one.socktype);
        let protocol = Some(Protocol::from(one.protocol));
        let address = SockAddr::from(one.sockaddr);
        let socket = match narrate!(say, Socket::new(domain, ty, protocol)) {
            Ok(socket) => socket,
            Err(failure) => {
                last = Some(failure);
                continue;
            }
        };
        match narrate!(say, socket.connect(&address)) {
            Ok(()) => return Ok((socket, address)),
            Err(failure) => {
                say.hint(&failure);
                narrate!(say, drop(socket));
                if n + 1 < found.len() {
                    say.note(
                        "on to the next address, with a new socket (it may be of another family)",
                    );
                }
                last = Some(failure);
            }
        }
    }
    Err(last.unwrap_or_else(|| Failure::Peer("getaddrinfo gave no address".into())))
}

/// getaddrinfo(3): the addresses of `host` for a stream socket to `port`, in the order to try
/// them. It is a library call (glibc's), not a system call: it reads /etc/hosts, may ask a
/// name server, and sorts what it found.
fn lookup(
    say: &Narrator,
    host: Option<&str>,
    port: u16,
    hints: AddrInfoHints,
) -> Result<Vec<AddrInfo>, Failure> {
    let service = port.to_string();
    let shown = hints::shown(host, &service, &hints);
    let found = library_call!(
        say,
        &shown,
        "dns_lookup",
        getaddrinfo(host, Some(&service), Some(hints))
    )
    .map_err(io::Error::from)
    .and_then(|list| list.collect::<io::Result<Vec<AddrInfo>>>());
    let found = match found {
        Ok(found) => found,
        Err(error) => {
            let message = error.to_string();
            let message = message
                .strip_prefix("failed to lookup address information: ")
                .unwrap_or(&message)
                .to_owned();
            let (name, _) = explain::lookup_hint(&message);
            say.returned(format!("{name} ({message})"));
            return Err(Failure::Lookup {
                host: host.unwrap_or("").to_owned(),
                message,
            });
        }
    };
    say.returned(format!(
        "{} address(es), in the order to try them:",
        found.len()
    ));
    for one in &found {
        say.note(format!(
            "{:<24} {}, {}, {}",
            one.sockaddr.to_string(),
            strace::domain_name(Domain::from(one.address)),
            strace::type_name(Type::from(one.socktype)),
            strace::protocol_name(Some(Protocol::from(one.protocol)))
        ));
    }
    Ok(found)
}

/// The port of an IP socket address (0 for any other).
fn port_of(address: &SockAddr) -> u16 {
    address.as_socket().map_or(0, |a| a.port())
}
