//! `--demo`'s clients, in the server's own process: they connect one after another to a
//! listener that never accepts, so the accept queue fills up, and then they see what the
//! listener's close does to the connections nobody accepted. (Step 7 looks at clients
//! closely.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::{Failure, Narrator, narrate, observe};

/// Connects `clients` clients to the listener at `address`, one after another, and never
/// accepts them: each either completes its handshake (the kernel queues it) or gets no answer
/// within `timeout`. Returns the connected ones, still open.
pub fn fill_the_queue(
    narrator: &Narrator,
    address: &SockAddr,
    backlog: u32,
    clients: u32,
    timeout: Duration,
) -> Result<Vec<Socket>, Failure> {
    let server = narrator.actor("server");
    let inet = address.as_socket();
    let mut connected: Vec<Socket> = Vec::new();
    let mut unanswered = 0;
    let domain = address.domain();
    let protocol = inet.map(|_| Protocol::TCP);
    for number in 1..=clients {
        let say = narrator.actor(&format!("client {number}"));
        let client = narrate!(say, Socket::new(domain, Type::STREAM, protocol))?;

        // A send timeout (SO_SNDTIMEO) bounds how long a blocking connect() waits for the
        // handshake, so that a client the kernel does not answer gives up after `timeout`.
        narrate!(say, client.set_write_timeout(Some(timeout)))?;
        let overflows_before = observe::netstat_counter("TcpExt", "ListenOverflows");
        match narrate!(say, client.connect(address)) {
            Ok(()) => {
                say.note("connected: the kernel finished the handshake; nobody called accept()");
                connected.push(client);
                if let Some(listening) = inet {
                    let queued = wait_for_queue(listening, connected.len() as u32);
                    server.note(format!(
                        "accept queue: {} connection(s) waiting for accept()",
                        queued.map_or("?".to_owned(), |n| n.to_string())
                    ));
                }
            }
            Err(failure) => {
                unanswered += 1;
                say.hint(&failure);
                if inet.is_some() {
                    let overflows_after = observe::netstat_counter("TcpExt", "ListenOverflows");
                    if let (Some(before), Some(after)) = (overflows_before, overflows_after) {
                        server.note(format!(
                            "the queue is full, so the server's kernel dropped the SYN, and counted it: TcpExt ListenOverflows went up by {} (nstat -az TcpExtListenOverflows)",
                            after.saturating_sub(before)
                        ));
                    }
                }
                narrate!(say, drop(client));
            }
        }
    }

    narrator.section("what happened");
    narrator.say(format!(
        "backlog {backlog}: {} of {clients} clients completed the handshake, {unanswered} got no answer",
        connected.len()
    ));
    narrator.note(format!(
        "Linux queues backlog + 1 = {} finished connections. A full queue does not refuse a client:",
        backlog + 1
    ));
    narrator.note(if inet.is_some() {
        "its SYN gets no answer, and the client's kernel keeps resending it until connect gives up"
    } else {
        "a unix client's connect() waits for room in the queue (here until its SO_SNDTIMEO ran out)"
    });

    // Data can even be sent on a queued connection: the kernel buffers it for a program
    // that has not accepted the connection yet.
    if let Some(client) = connected.first() {
        let say = narrator.actor("client 1");
        narrate!(say, client.send(b"hello?"))?;
        say.note("into the server's receive buffer, though no program has accepted the connection");
    }
    Ok(connected)
}

/// What the queued clients see once the listener is gone: a reset.
pub fn after_the_listener_closed(narrator: &Narrator, clients: Vec<Socket>) {
    for (number, client) in clients.into_iter().enumerate() {
        let say = narrator.actor(&format!("client {}", number + 1));
        if number == 0 {
            let mut buf = [0u8; 64];
            if let Err(failure) = narrate!(say, (&client).read(&mut buf)) {
                say.hint(&failure);
            }
        }
        narrate!(say, drop(client));
    }
}

/// Polls the kernel's socket table until the queue of the socket listening on `listening`
/// holds `expected` connections, at most for a second; returns what it last saw.
fn wait_for_queue(listening: SocketAddr, expected: u32) -> Option<u32> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let queued = observe::accept_queue_len(listening);
        if queued == Some(expected) || Instant::now() >= deadline {
            return queued;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
