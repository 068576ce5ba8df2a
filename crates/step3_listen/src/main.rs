//! Step 3: listen.
//!
//! `listen()` turns a bound socket into a server socket: from that moment the kernel answers
//! clients' handshakes by itself and queues the finished connections until the program calls
//! `accept()` (step 4). This program listens and never accepts, so you can watch that queue
//! fill up, and see what happens to the clients that find it full.
//!
//! Read it beside `lessons/03-listen.md`.

mod demo;

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use socket2::{Protocol, SockAddr, Socket};
use tutor::cli::ServerAddress;
use tutor::observe::{self, TcpState};
use tutor::{ColorWhen, Failure, Family, Narrator, SockType, Step, interrupt, narrate};

const STEP: Step = Step {
    number: 3,
    crate_name: "step3_listen",
    title: "listen: let the kernel queue connections",
    lesson: "lessons/03-listen.md",
};

/// Step 3 of the socket course: listen, and watch the accept queue.
///
/// Binds, calls listen(backlog), and never calls accept: the kernel completes the clients'
/// handshakes by itself and queues them. Without --demo it shows the queue live while you
/// connect clients from another terminal (scripts/connect-many.sh); with --demo it starts its
/// own clients and shows how many complete the handshake and what happens to the rest.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/03-listen.md")]
struct Cli {
    #[command(flatten)]
    address: ServerAddress,

    /// The backlog passed to listen(): how many finished connections may wait for accept()
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=65535))]
    backlog: u32,

    /// Socket type (listen works on streams only: try dgram to see it refused)
    #[arg(long = "type", value_name = "TYPE", value_enum, default_value_t = SockType::Stream)]
    sock_type: SockType,

    /// Start this many clients in-process, one after another [default: backlog + 3]
    #[arg(long, requires = "demo", value_parser = clap::value_parser!(u32).range(1..=10000))]
    clients: Option<u32>,

    /// How long each demo client waits for its handshake, in milliseconds
    #[arg(long, default_value_t = 500, requires = "demo", value_parser = clap::value_parser!(u64).range(1..=60000))]
    timeout_ms: u64,

    /// Connect clients in-process, show the queue fill up, then exit
    #[arg(long)]
    demo: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    color: ColorWhen,
}

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    interrupt::stop_on_signals(&say);
    let result = listen(&say, &cli);
    tutor::finish(&say, result)
}

fn listen(narrator: &Narrator, cli: &Cli) -> Result<(), Failure> {
    // In the demo several actors speak, so the server's lines say "server".
    let say = &if cli.demo {
        narrator.actor("server")
    } else {
        narrator.clone()
    };
    let family = cli.address.family;
    let address = cli.address.resolve(say)?;
    let backlog = cli.backlog as i32;

    // 1. socket() and bind(), as in steps 1 and 2.
    let domain = family.domain();
    let ty = cli.sock_type.ty();
    let protocol = match (family, cli.sock_type) {
        (Family::Unix, _) => None,
        (_, SockType::Stream) => Some(Protocol::TCP),
        (_, SockType::Dgram) => Some(Protocol::UDP),
    };
    let listener = narrate!(say, Socket::new(domain, ty, protocol))?;
    narrate!(say, listener.bind(&address), interrupt::owning(&address))?;

    // 2. listen(): the socket becomes a server socket. From now on the kernel answers
    //    handshakes for it and keeps each finished connection in the accept queue.
    if let Err(failure) = narrate!(say, listener.listen(backlog)) {
        interrupt::remove_socket_file(say, &address);
        return Err(failure);
    }
    // From here on, every number printed is the backlog the kernel applies.
    let applied = explain_backlog(say, cli.backlog);

    // 3. Which port? (With --port 0 the kernel chose it at bind.)
    let local = narrate!(say, listener.local_addr())?;
    say.ready("listening on", &local);

    // 4. Nobody calls accept(). Watch the queue, or fill it with our own clients.
    let clients = if cli.demo {
        let count = cli.clients.unwrap_or(applied + 3);
        let timeout = Duration::from_millis(cli.timeout_ms);
        demo::fill_the_queue(narrator, &local, applied, count, timeout)?
    } else {
        watch_the_queue(say, &local, applied);
        Vec::new()
    };

    // 5. Closing the listening socket ends the connections still in its queue: nobody
    //    accepted them, so the kernel resets them.
    narrate!(say, drop(listener));
    interrupt::remove_socket_file(say, &local);
    demo::after_the_listener_closed(narrator, clients);
    Ok(())
}

/// The backlog the kernel really uses, and says so: at most net.core.somaxconn.
fn explain_backlog(say: &Narrator, backlog: u32) -> u32 {
    let somaxconn: Option<u32> = observe::sysctl("net.core.somaxconn").and_then(|v| v.parse().ok());
    match somaxconn {
        Some(max) if backlog > max => {
            say.note(format!(
                "the kernel caps the backlog at net.core.somaxconn = {max}, silently: it uses {max}, not {backlog}"
            ));
            max
        }
        Some(max) => {
            say.note(format!(
                "backlog {backlog} (the kernel would cap it at net.core.somaxconn = {max})"
            ));
            backlog
        }
        None => backlog,
    }
}

/// Shows the accept queue live until Enter (or Ctrl-C), for clients started elsewhere.
fn watch_the_queue(say: &Narrator, local: &SockAddr, backlog: u32) {
    let Some(listening) = local.as_socket() else {
        say.say("the accept queue of a unix socket is not in /proc; `ss -xl` shows it as Recv-Q. Press Enter to stop.");
        observe::wait_for_enter();
        return;
    };
    say.say(format!(
        "nobody calls accept(). Connect clients from another terminal, e.g.\n  scripts/connect-many.sh {} {}\nand watch the queue (the kernel allows backlog + 1 = {}). Press Enter to stop.",
        listening.port(),
        backlog + 3,
        backlog + 1
    ));
    let (stop, stopped) = mpsc::channel();
    std::thread::spawn(move || {
        observe::wait_for_enter();
        let _ = stop.send(());
    });
    let mut last = None;
    loop {
        let queued = observe::accept_queue_len(listening).unwrap_or(0);
        let half_open = observe::tcp_sockets()
            .map(|all| {
                all.iter()
                    .filter(|e| e.local == listening && e.state == TcpState::SynRecv)
                    .count()
            })
            .unwrap_or(0);
        if last != Some((queued, half_open)) {
            let full = if queued > backlog {
                " (full: new SYNs are dropped)"
            } else {
                ""
            };
            say.say(format!(
                "accept queue: {queued} waiting for accept(){full}; half-open (SYN-RECV): {half_open}"
            ));
            last = Some((queued, half_open));
        }
        match stopped.recv_timeout(Duration::from_millis(100)) {
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            _ => break,
        }
    }
}
