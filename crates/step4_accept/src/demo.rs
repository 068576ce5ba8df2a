//! `--demo`'s clients, in a thread of the server's own process (step 7 looks at clients
//! closely). Each connects only once the server's thread sleeps in accept(), so the story is
//! told in the same order on every run.

use std::thread::{self, JoinHandle};

use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::turns::{Stage, Turns};
use tutor::{Failure, Narrator, narrate};

use crate::moments::Moment;

/// Starts `count` clients of the server at `address`, one after another, in a thread of
/// their own. Call it on the server's thread: the clients watch that thread in `/proc`.
pub fn start(
    story: &Narrator,
    address: &SockAddr,
    count: u32,
) -> (Turns<Moment>, JoinHandle<Result<(), Failure>>) {
    let (turns, stage) = Turns::demo();
    let story = story.clone();
    let address = address.clone();
    let clients = thread::spawn(move || clients(&story, &stage, &address, count));
    (turns, clients)
}

/// Connects `count` clients, one after another, each once the server sleeps in accept(),
/// and reads the line each is sent.
fn clients(
    story: &Narrator,
    stage: &Stage<Moment>,
    address: &SockAddr,
    count: u32,
) -> Result<(), Failure> {
    let lost = || Failure::Peer("the demo's server stopped taking turns".into());
    for number in 1..=count {
        let say = story.actor(&format!("client {number}"));
        if !stage.wait_for(Moment::Accepting {
            accepted: number - 1,
        }) {
            return Err(lost());
        }
        if number == 1 {
            where_the_server_sleeps(story, stage);
        }
        let client = connect(&say, address);
        stage.done();
        let client = client?;

        if !stage.wait_for(Moment::Closed { client: number }) {
            return Err(lost());
        }
        let mut buf = [0u8; 128];
        for _ in 0..2 {
            match narrate!(say, (&client).read(&mut buf)) {
                Ok(0) => say.note("end of file: the server closed the connection"),
                Ok(_) => {}
                Err(failure) => say.hint(&failure),
            }
        }
        narrate!(say, drop(client));
        stage.done();
    }
    Ok(())
}

/// socket(), connect(), and the client's own address.
fn connect(say: &Narrator, address: &SockAddr) -> Result<Socket, Failure> {
    let domain = address.domain();
    let protocol = address.as_socket().map(|_| Protocol::TCP);
    let client = narrate!(say, Socket::new(domain, Type::STREAM, protocol))?;
    narrate!(say, client.connect(address))?;
    narrate!(say, client.local_addr())?;
    say.note("the client's own address: the server sees it as its peer");
    Ok(client)
}

/// The kernel's view of the server while it waits: its thread's state and system call, as
/// `/proc/PID/task/TID/stat` and `.../syscall` show them.
fn where_the_server_sleeps(story: &Narrator, stage: &Stage<Moment>) {
    let state = if stage.server_sleeps() {
        "S (sleeping)"
    } else {
        "not sleeping"
    };
    let (call, path) = stage.server_syscall();
    let call = match call {
        Some(n) if n == libc::SYS_accept4 => "accept4".to_owned(),
        Some(n) => format!("system call {n}"),
        None => "(unknown)".to_owned(),
    };
    story.actor("kernel").say(format!(
        "the server's thread is {state}, inside {call} ({})",
        path.replace("self", &std::process::id().to_string())
    ));
}
