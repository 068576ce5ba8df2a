//! Step 4: accept.
//!
//! A listening socket never carries a conversation. `accept()` takes one finished connection
//! out of its queue and returns a *new* socket for it, with a descriptor of its own, while
//! the listening socket goes on listening. If the queue is empty, `accept()` waits: the
//! program sleeps in the kernel until a client comes. This is the seed's outer loop:
//! socket, bind, listen, then accept, accept, accept.
//!
//! Each client here only gets one line and a close; the conversation itself is step 5. This
//! file is the server; `demo.rs` is `--demo`'s clients, `moments.rs` the points where they
//! take turns with it. Read it beside `lessons/04-accept.md`.

mod cli;
mod demo;
mod kernel;
mod moments;

use std::os::fd::AsRawFd;
use std::process::ExitCode;

use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::turns::Turns;
use tutor::{Failure, Family, Narrator, Step, addr, interrupt, narrate, per_client};

use cli::Cli;
use moments::Moment;

const STEP: Step = Step {
    number: 4,
    crate_name: "step4_accept",
    title: "accept: a new socket for each client",
    lesson: "lessons/04-accept.md",
};

/// How many clients the demo starts.
const DEMO_CLIENTS: u32 = 2;

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    interrupt::stop_on_signals(&say);
    let result = serve(&say, &cli);
    tutor::finish(&say, result)
}

/// The seed's server, up to its outer loop: socket, bind, listen, then accept clients one
/// after another.
fn serve(story: &Narrator, cli: &Cli) -> Result<(), Failure> {
    // In the demo the clients speak too, so the server's lines say "server".
    let say = &if cli.demo {
        story.actor("server")
    } else {
        story.clone()
    };
    let address = cli.address.resolve(say)?;
    let backlog = cli.backlog as i32;

    // 1. socket(), bind(), listen(): steps 1 to 3.
    let domain = address.domain();
    let protocol = (cli.address.family != Family::Unix).then_some(Protocol::TCP);
    let listener = narrate!(say, Socket::new(domain, Type::STREAM, protocol))?;
    // interrupt::owning records the socket file bind() creates, so that only that very file
    // is removed at the end (lesson 2).
    narrate!(say, listener.bind(&address), interrupt::owning(&address))?;
    narrate!(say, listener.listen(backlog))?;
    let local = narrate!(say, listener.local_addr())?;
    say.ready("listening on", &local);

    let max_clients = cli.max_clients.or(cli.demo.then_some(DEMO_CLIENTS));
    let (turns, clients) = if cli.demo {
        let (turns, clients) = demo::start(story, &local, max_clients.unwrap_or(DEMO_CLIENTS));
        (turns, Some(clients))
    } else {
        say.say(format!(
            "connect from another terminal, e.g. {}",
            try_it(&local)
        ));
        (Turns::none(), None)
    };

    // 2. The outer loop: one accept() per client.
    let mut accepted = 0;
    while max_clients.is_none_or(|max| accepted < max) {
        say.say(format!(
            "waiting in accept(): the program sleeps until a client has connected (client {})",
            accepted + 1
        ));
        // accept() returns a NEW socket, connected to this one client, and the client's
        // address. The listening socket is untouched: it goes on listening. (Linux passes on
        // the error of a connection that died in the queue: that client's, not the server's.)
        let moment = Moment::Accepting { accepted };
        let (conn, _peer) = match narrate!(say, listener.accept(), turns.at(moment)) {
            Ok(accepted) => accepted,
            Err(failure) if is_the_clients(&failure) => {
                say.hint(&failure);
                say.note(gone(&failure));
                continue;
            }
            Err(failure) => return Err(failure),
        };
        accepted += 1;
        say.note(format!(
            "fd {} is a new socket for client {accepted}; the listening socket {} still listens",
            conn.as_raw_fd(),
            listener.as_raw_fd()
        ));
        greet(say, conn, &local, &listener, accepted)?;
        turns.tell(Moment::Closed { client: accepted });
        turns.wait_for_clients();
    }

    // 3. The seed's last line, ss.close(): no more clients.
    say.say(format!(
        "accepted {accepted} client(s): --max-clients reached"
    ));
    narrate!(say, drop(listener));
    interrupt::remove_socket_file(say, &local);
    if let Some(clients) = clients {
        clients
            .join()
            .map_err(|_| Failure::Peer("the demo's client thread failed".into()))??;
    }
    Ok(())
}

/// One client's turn, after accept(): both addresses of its socket, the kernel's table, a
/// greeting, and the close. A client that reset its connection while it waited in the queue
/// has no peer any more: that error is the client's, and the server goes on.
fn greet(
    say: &Narrator,
    conn: Socket,
    local: &SockAddr,
    listener: &Socket,
    accepted: u32,
) -> Result<(), Failure> {
    // Each socket has two addresses: its peer's (getpeername) and its own (getsockname).
    match narrate!(say, conn.peer_addr()) {
        Ok(peer) => {
            say.note("the client's end: the address the client has as its own");
            if peer.is_unnamed() {
                say.note("a unix client that did not bind has no name: its address is empty");
            }
            narrate!(say, conn.local_addr())?;
            say.note("the server's end: the listening socket's address");
            kernel::show_socket_table(say, local, &peer, listener.as_raw_fd(), conn.as_raw_fd());

            // One line to the client; step 5 holds a conversation instead.
            let greeting = format!("hello from step4, client {accepted}\n");
            if let Err(failure) = narrate!(say, conn.send(greeting.as_bytes())) {
                // A client that has already gone is its own problem, not the server's.
                say.hint(&failure);
            }
        }
        Err(failure) if is_the_clients(&failure) => say.note(gone(&failure)),
        Err(failure) => return Err(failure),
    }
    // cs.close(): the client's socket only.
    narrate!(say, drop(conn));
    say.note("this client's socket is closed; the listening socket is not");
    Ok(())
}

/// Whether a failed call's error belongs to one client (`tutor::per_client`).
fn is_the_clients(failure: &Failure) -> bool {
    failure.io_error().is_some_and(per_client::is_per_client)
}

/// The line that says whose error it was.
fn gone(failure: &Failure) -> String {
    failure
        .io_error()
        .map(per_client::client_gone)
        .unwrap_or_default()
}

/// What to type in another terminal to connect.
fn try_it(local: &SockAddr) -> String {
    match local.as_socket() {
        Some(inet) => format!("nc {} {}", inet.ip(), inet.port()),
        None => format!("nc -U {}", addr::show(local)),
    }
}
