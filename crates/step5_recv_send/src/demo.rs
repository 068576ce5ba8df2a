//! `--demo`'s client, in a thread of the server's own process (step 7 looks at clients
//! closely). It takes turns with the server (`moments.rs`), so that the story is told in the
//! same order on every run.

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::turns::{Stage, Turns};
use tutor::{Failure, Narrator, narrate, observe};

use crate::moments::Moment;

/// Starts the client of the server at `address` in a thread of its own. Call it on the
/// server's thread: the client watches that thread in `/proc`.
pub fn start(
    story: &Narrator,
    address: &SockAddr,
) -> (Turns<Moment>, JoinHandle<Result<(), Failure>>) {
    let (turns, stage) = Turns::demo();
    let say = story.actor("client");
    let address = address.clone();
    let client = thread::spawn(move || client(&say, &stage, &address));
    (turns, client)
}

/// Connects while the server sleeps in accept(), sends two messages at once, waits until the
/// server has echoed them all and sleeps in recv() again, reads the echo, and closes.
fn client(say: &Narrator, stage: &Stage<Moment>, address: &SockAddr) -> Result<(), Failure> {
    let lost = || Failure::Peer("the demo's server stopped taking turns".into());
    if !stage.wait_for(Moment::Accepting { accepted: 0 }) {
        return Err(lost());
    }
    let connected = connect_and_send(say, address);
    if let Ok((_, own, sent)) = &connected {
        wait_until_queued(own, address, *sent, End::Server);
    }
    stage.done();
    let (client, own, sent) = connected?;

    // The server has echoed everything and sleeps in recv() for more.
    let echoed = sent as u64;
    if !stage.wait_for(Moment::Receiving { client: 1, echoed }) {
        return Err(lost());
    }
    wait_until_queued(&own, address, sent, End::Client);
    let mut buf = [0u8; 64];
    if let Err(failure) = narrate!(say, (&client).read(&mut buf)) {
        say.hint(&failure);
    }
    narrate!(say, drop(client));
    say.note("the client's close: the server's recv() returns 0");
    stage.done();
    Ok(())
}

/// socket(), connect(), the client's own address, and two send()s, back to back. Returns the
/// socket, its address, and how many bytes the kernel took.
fn connect_and_send(
    say: &Narrator,
    address: &SockAddr,
) -> Result<(Socket, SockAddr, usize), Failure> {
    let domain = address.domain();
    let protocol = address.as_socket().map(|_| Protocol::TCP);
    let client = narrate!(say, Socket::new(domain, Type::STREAM, protocol))?;
    narrate!(say, client.connect(address))?;
    let own = narrate!(say, client.local_addr())?;
    say.note("the client's own address: the server sees it as its peer");
    let first = narrate!(say, client.send(b"hello\n"))?;
    let second = narrate!(say, client.send(b"a longer message\n"))?;
    Ok((client, own, first + second))
}

/// Which end of the client's connection holds the bytes waited for.
#[derive(Clone, Copy)]
enum End {
    Server,
    Client,
}

/// Waits (at most two seconds) until `bytes` bytes wait unread at one end of the client's TCP
/// connection, as the kernel's socket table shows (Recv-Q in `ss -tan`). On loopback the
/// bytes are there almost at once; waiting makes the demo's story the same on every run. A
/// unix socket delivers within send() itself, and is not in the table.
fn wait_until_queued(own: &SockAddr, at: &SockAddr, bytes: usize, end: End) {
    let (Some(server), Some(client)) = (at.as_socket(), own.as_socket()) else {
        return;
    };
    let (local, remote) = match end {
        End::Server => (server, client),
        End::Client => (client, server),
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let queued = observe::tcp_sockets_on_port(server.port())
            .unwrap_or_default()
            .into_iter()
            .find(|e| e.local == local && e.remote == remote)
            .map(|e| e.rx_queue as usize);
        if queued == Some(bytes) {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
}
