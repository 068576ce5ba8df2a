//! `--demo`: two clients, in this process, against each model. Client 1 connects and says
//! hello; client 2 connects while client 1 is still connected and says hello too; then
//! client 1 leaves, then client 2.
//!
//! The server runs on the main thread, the clients on another, and they take turns
//! (`tutor::turns`, through [`ServerTurns`]): the server tells where it is about to wait,
//! the clients make their move only once it is there, and the server prints what its call
//! returned only once the client that woke it has printed its own line. So the story prints
//! in the same order on every run.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tutor::cli::ServerAddress;
use tutor::observe::{self, TcpState};
use tutor::{Failure, Family, Narrator, narrate};

use crate::moments::{Moment, ServerTurns, Stage};
use crate::{Model, Served, Settings, listen, run_model, summarise};

/// Each model's story, then what happened in each.
pub fn run(
    say: &Narrator,
    model: Option<Model>,
    address: &ServerAddress,
    bufsize: usize,
) -> Result<(), Failure> {
    if address.family != Family::Ipv4 || address.port != 0 {
        return Err(Failure::Usage(
            "--demo runs on 127.0.0.1 with a port the kernel chooses; leave out --family and --port".into(),
        ));
    }
    let models = match model {
        Some(model) => vec![model],
        None => vec![Model::Serial, Model::Threads, Model::Poll],
    };
    let mut results = Vec::new();
    for model in models {
        results.push((model, one_model(say, model, bufsize)?));
    }
    say.section("what happened");
    for (model, (waited, served)) in &results {
        let ms = waited.as_millis();
        let how = match model {
            Model::Serial => format!("client 2 waited {ms} ms for its echo: until client 1 left"),
            Model::Threads => format!(
                "client 2 got its echo in {ms} ms, while client 1 was connected; {} threads at most",
                served.peak_threads
            ),
            Model::Poll => format!(
                "client 2 got its echo in {ms} ms, while client 1 was connected; one thread, {} epoll_wait calls",
                served.waits
            ),
        };
        say.say(format!("{:<8} {how}", model.to_string()));
    }
    Ok(())
}

/// One model's story. Returns how long client 2 waited for its echo, and what the server did.
fn one_model(say: &Narrator, model: Model, bufsize: usize) -> Result<(Duration, Served), Failure> {
    say.section(format!("--model {model}"));
    let server_say = say.actor("server");
    let any_port = SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0)));
    let (listener, local) = listen(&server_say, Family::Ipv4, &any_port, 8)?;
    // Made on this thread, the server's: the clients watch it in /proc.
    let (turns, stage) = ServerTurns::demo();
    let settings = Settings {
        bufsize,
        max_clients: Some(2),
        narrate: u64::MAX,
        turns,
    };
    let clients = {
        let say = say.clone();
        thread::spawn(move || match two_clients(&say, model, &stage, &local) {
            Ok(waited) => waited,
            Err(failure) => {
                // The server may wait for a client that will not come: end the demo here.
                say.failure_line(&failure);
                std::process::exit(1);
            }
        })
    };
    let served = run_model(model, &server_say, listener, &settings)?;
    let waited = clients
        .join()
        .map_err(|_| Failure::Peer("the demo's clients panicked".into()))?;
    summarise(&server_say, model, &served);
    Ok((waited, served))
}

/// Waits until the server has told each of `moments`, in order.
fn wait_for(stage: &Stage, moments: &[Moment]) -> Result<(), Failure> {
    for &moment in moments {
        if !stage.wait_for(moment) {
            return Err(Failure::Peer(format!(
                "the demo's server did not reach {moment:?} within 10 s"
            )));
        }
    }
    Ok(())
}

/// The clients' side of the story. Before each move the clients wait until the server is
/// where the move should find it, naming every moment it tells on the way, except where its
/// call returns without the clients' help (a moment passed over is taken for such a one,
/// see `tutor::turns`). `stage.done()` follows each move that wakes the server.
fn two_clients(
    say: &Narrator,
    model: Model,
    stage: &Stage,
    address: &SockAddr,
) -> Result<Duration, Failure> {
    use Moment::{Accepting, Closed, Joining, Polling, Receiving, ReceivingInThread};
    let hello_1 = b"hello from client 1\n";
    let hello_2 = b"hello from client 2\n";
    let n = hello_1.len() as u64;
    let polling = |accepted, open, echoed| Polling {
        accepted,
        open,
        echoed,
    };
    let in_thread = |client, echoed| ReceivingInThread { client, echoed };
    let expect = |serial: &[Moment], threads: &[Moment], poll: &[Moment]| {
        let moments = match model {
            Model::Serial => serial,
            Model::Threads => threads,
            Model::Poll => poll,
        };
        wait_for(stage, moments)
    };
    // Under serial, client 2's moves wake nobody: the server is in recv() on client 1.
    let serial = model == Model::Serial;
    let kernel = say.actor("kernel");

    // Client 1 connects and says hello.
    let accepting = Accepting { accepted: 0 };
    expect(&[accepting], &[accepting], &[polling(0, 0, 0)])?;
    let say_1 = say.actor("client 1");
    let client_1 = narrate!(
        say_1,
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
    )?;
    narrate!(say_1, client_1.connect(address))?;
    say_1.note("connected: the kernel finished the handshake");
    stage.done();
    expect(
        &[Receiving {
            client: 1,
            echoed: 0,
        }],
        &[in_thread(1, 0), Accepting { accepted: 1 }],
        &[polling(1, 1, 0)],
    )?;
    narrate!(say_1, client_1.send(hello_1))?;
    stage.done();
    expect(
        &[Receiving {
            client: 1,
            echoed: n,
        }],
        &[in_thread(1, n)],
        &[polling(1, 1, n)],
    )?;
    let mut buf = [0u8; 64];
    narrate!(say_1, (&client_1).read(&mut buf))?;

    // Client 2 connects while client 1 stays connected, silent.
    let say_2 = say.actor("client 2");
    let client_2 = narrate!(
        say_2,
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
    )?;
    narrate!(say_2, client_2.connect(address))?;
    say_2.note("connected: the kernel finished the handshake");
    if serial {
        let listening = address.as_socket().expect("an IPv4 listener");
        let queued = wait_until(|| observe::accept_queue_len(listening) == Some(1));
        kernel.note(if queued {
            "client 2's connection is complete, but waits in the accept queue: the server is in recvfrom() on client 1"
        } else {
            "(the accept queue could not be read)"
        });
    } else {
        stage.done();
    }
    expect(&[], &[in_thread(2, 0), Joining], &[polling(2, 2, n)])?;
    let timeout = Duration::from_millis(300);
    narrate!(say_2, client_2.set_read_timeout(Some(timeout)))?;
    narrate!(say_2, client_2.send(hello_2))?;
    let sent_at = Instant::now();
    if serial {
        // The server's end of client 2's connection: the one on the listening port that
        // holds unread bytes.
        let listening = address.as_socket().expect("an IPv4 listener");
        let unread = wait_until(|| {
            observe::tcp_sockets().is_ok_and(|all| {
                all.iter().any(|e| {
                    e.local == listening
                        && e.state == TcpState::Established
                        && e.rx_queue == n as u32
                })
            })
        });
        if unread {
            kernel.note(format_args!(
                "client 2's {n} bytes wait in the receive buffer of a connection nobody has accepted (Recv-Q {n})"
            ));
        }
    } else {
        stage.done();
    }
    expect(&[], &[in_thread(2, n)], &[polling(2, 2, 2 * n)])?;
    let waited = match narrate!(say_2, (&client_2).read(&mut buf)) {
        Ok(_) => {
            say_2.note("the echo came back while client 1 is still connected");
            sent_at.elapsed()
        }
        Err(failure) if failure.would_block() => {
            say_2.note(
                "no echo within 300 ms: the server is still blocked in recvfrom() on client 1",
            );
            Duration::ZERO
        }
        Err(failure) => return Err(failure),
    };

    // Client 1 leaves.
    narrate!(say_1, drop(client_1));
    stage.done();
    let waited = if serial {
        // Passing over accept() and the first recv(), which return at once: client 2's
        // connection waited in the queue, its bytes in the buffer.
        let echoed_2 = Receiving {
            client: 2,
            echoed: n,
        };
        expect(&[echoed_2], &[], &[])?;
        narrate!(say_2, (&client_2).read(&mut buf))?;
        let waited = sent_at.elapsed();
        say_2.note(format_args!(
            "client 2 waited {} ms for its echo: until client 1 left and the server accepted client 2",
            waited.as_millis()
        ));
        waited
    } else {
        expect(&[], &[Closed { client: 1 }], &[polling(2, 1, 2 * n)])?;
        waited
    };

    // Client 2 leaves; the server has served --max-clients 2 and stops.
    narrate!(say_2, drop(client_2));
    stage.done();
    Ok(waited)
}

/// Polls a condition on the kernel's tables, at most for a second.
fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}
