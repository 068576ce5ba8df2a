//! The threads model: the acceptor accepts, and hands each client to a thread of its own,
//! which runs the serial model's echo loop. A thread blocked in recv() blocks only itself:
//! the kernel runs the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use socket2::Socket;
use tutor::{Failure, Narrator, narrate};

use crate::clients::{client_gone, is_clients_own, unheard};
use crate::moments::Moment;
use crate::serial::serve_client;
use crate::shortage::{self, Shortage};
use crate::{Served, Settings, epoll, milestone};

/// What the threads model does when accept() finds no descriptor (see `shortage`).
const WAITS: &str = "the acceptor waits until a thread has closed its client's connection (at most 250 ms), then tries again; the other threads go on serving";

pub fn serve(say: &Narrator, listener: Socket, settings: &Settings) -> Result<Served, Failure> {
    let echoed = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicU64::new(0));
    let mut served = Served::default();
    let mut workers: Vec<thread::JoinHandle<()>> = Vec::new();
    let mut budget = settings.budget();
    let mut shortage = Shortage::default();
    let turns = &settings.turns;
    // Each thread says here when it has closed its connection: a descriptor is free.
    let (closed, has_closed) = mpsc::channel::<()>();
    while settings.max_clients != Some(served.clients) {
        let number = served.clients + 1;
        let client_say = unheard(&budget.next(say));
        let (conn, _peer) = loop {
            let accepting = Moment::Accepting {
                accepted: served.clients,
            };
            // Forget the closings of the past: only one after a failed accept() matters.
            while has_closed.try_recv().is_ok() {}
            let accept_say = shortage.narrator(&client_say);
            match narrate!(accept_say, listener.accept(), turns.at(accepting)) {
                Ok(accepted) => break accepted,
                Err(failure) if is_clients_own(&failure) => client_gone(&accept_say, &failure),
                Err(failure) if Shortage::is_shortage(&failure) => {
                    shortage.began(say, &listener, &failure, WAITS);
                    let _ = has_closed.recv_timeout(shortage::PAUSE);
                }
                Err(failure) => return Err(failure),
            }
        };
        served.clients = number;
        shortage.ended(say, number);
        milestone(say, number, settings.narrate);

        // A new thread for this client. It shares the process's memory and descriptors,
        // and gets a stack of its own (2 MiB of address space, touched as it grows).
        let thread_say = client_say.actor(&format!("thread {number}"));
        let mut buf = vec![0u8; settings.bufsize];
        let echoed_total = Arc::clone(&echoed);
        let running_now = Arc::clone(&running);
        let closed = closed.clone();
        // (--demo only) The thread starts once the acceptor has printed that it runs, and
        // the acceptor goes on once the thread has printed its first call, so that the
        // story reads the same on every run.
        let (go, wait_to_go) = mpsc::channel::<()>();
        let (told, has_told) = mpsc::channel::<()>();
        let thread_turns = turns.for_thread(told);
        let demo = turns.is_demo();
        // std's thread::Builder is not a socket call: narrated as the clone3 strace shows.
        if client_say.is_loud() {
            client_say.call_lib(epoll::clone_thread(), "thread::Builder::new().spawn(..)");
        }
        running.fetch_add(1, Ordering::Relaxed);
        let spawned = thread::Builder::new()
            .name(format!("client {number}"))
            .spawn(move || {
                if demo {
                    let _ = wait_to_go.recv_timeout(Duration::from_secs(10));
                }
                let receiving = |echoed| Moment::ReceivingInThread {
                    client: number,
                    echoed,
                };
                let echoed = serve_client(&thread_say, conn, &mut buf, &thread_turns, receiving);
                let _ = closed.send(());
                echoed_total.fetch_add(echoed, Ordering::Relaxed);
                running_now.fetch_sub(1, Ordering::Relaxed);
                thread_turns.tell(Moment::Closed { client: number });
            });
        match spawned {
            Ok(handle) => {
                if client_say.is_loud() {
                    client_say.returned(format_args!("thread {number} serves client {number}"));
                }
                workers.push(handle);
            }
            Err(error) => {
                running.fetch_sub(1, Ordering::Relaxed);
                // No thread for this client (EAGAIN: too many threads): the closure, and
                // the connection in it, were dropped, which closes it.
                say.returned_error(&error);
                say.note(format_args!(
                    "no thread for client {number}: its connection is closed"
                ));
                continue;
            }
        }
        if demo {
            let _ = go.send(());
            let _ = has_told.recv_timeout(Duration::from_secs(10));
        }
        served.peak_threads = served.peak_threads.max(running.load(Ordering::Relaxed) + 1);
        // Forget the threads that have ended (a long-running server must not keep them).
        workers.retain(|worker| !worker.is_finished());
    }
    say.note(format_args!(
        "--max-clients {} reached: no more accept(); waiting for the threads still serving",
        served.clients
    ));
    turns.tell(Moment::Joining);
    for worker in workers {
        let _ = worker.join();
    }
    served.bytes = echoed.load(Ordering::Relaxed);
    narrate!(say, drop(listener));
    Ok(served)
}
