//! Step 13: time and silence: dead peers.
//!
//! Every step so far had a peer that answered: on loopback the kernel at the other end
//! answers every packet, with data, a FIN or a reset. A real peer can simply stop answering
//! (a cable pulled, a machine gone, a firewall dropping packets), and then nothing tells a
//! socket so: a `connect` waits while the kernel resends its SYN, and a `recv` waits forever.
//! This step measures how long each wait lasts and what ends it: the kernel's own timeouts
//! (`ETIMEDOUT`), keepalive probes, and a read timeout of the program's own (`EAGAIN`). It
//! ends with the opposite case, a peer that is gone for sure, and the signal, SIGPIPE, that
//! writing to it raises.
//!
//! Read it beside `lessons/13-dead-peers.md`.

mod netns;
mod sigpipe;
mod silence;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};
use tutor::{ColorWhen, Failure, Narrator, Step, narrate, observe};

const STEP: Step = Step {
    number: 13,
    crate_name: "step13_dead_peers",
    title: "time and silence: dead peers",
    lesson: "lessons/13-dead-peers.md",
};

/// Step 13 of the socket course: time and silence: peers that stop answering.
///
/// Shows what a new socket does about a silent peer (nothing, by default), then measures it:
/// a connect nobody answers ends in ETIMEDOUT after net.ipv4.tcp_syn_retries; a peer whose
/// cable is pulled leaves recv waiting until a read timeout (EAGAIN) or keepalive probes
/// (ETIMEDOUT) end it; and writing to a peer that closed raises SIGPIPE, which Rust ignores
/// and C programs die of. The silent peers live in two private network namespaces the
/// program creates (root only; it says so when it may not) and that vanish with it. Without
/// --scene, or with --demo, it tells the whole story (about 8 seconds).
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/13-dead-peers.md")]
struct Cli {
    /// Tell only one part of the story
    #[arg(long, value_enum)]
    scene: Option<Scene>,

    /// net.ipv4.tcp_syn_retries inside the private namespace: connect gives up after
    /// 2^(N+1) - 1 seconds
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=3))]
    syn_retries: u32,

    /// TCP_KEEPIDLE: seconds of silence before the first keepalive probe
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    keepidle: u64,

    /// TCP_KEEPINTVL: seconds between probes
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=5))]
    keepintvl: u64,

    /// TCP_KEEPCNT: unanswered probes before the kernel gives the connection up
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=5))]
    keepcnt: u32,

    /// Tell the whole story, every scene in turn, then exit (the default)
    #[arg(long, conflicts_with = "scene")]
    demo: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    color: ColorWhen,
}

/// The parts of the story.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scene {
    /// What a new socket and this machine do about silence, by default
    Defaults,
    /// A connect nobody answers (private namespace)
    Connect,
    /// A peer that vanishes without a FIN (private namespace)
    Vanish,
    /// Writing to a peer that closed: EPIPE and SIGPIPE (loopback)
    Sigpipe,
}

fn main() -> ExitCode {
    let cli: Cli = tutor::cli::parse_args();
    let say = Narrator::new(&STEP, cli.color);
    say.header();
    let scenes = match cli.scene {
        Some(scene) => vec![scene],
        None => vec![
            Scene::Defaults,
            Scene::Connect,
            Scene::Vanish,
            Scene::Sigpipe,
        ],
    };
    let result = tell(&say, &cli, &scenes);
    tutor::finish(&say, result)
}

fn tell(say: &Narrator, cli: &Cli, scenes: &[Scene]) -> Result<(), Failure> {
    // The connect and vanish scenes share one little network, built when first needed.
    let mut wire = None;
    for &scene in scenes {
        if scene == Scene::Defaults {
            defaults(say)?;
            continue;
        }
        if scene == Scene::Sigpipe {
            sigpipe::scene(say)?;
            continue;
        }
        let wire = wire.get_or_insert_with(netns::Wire::new);
        let Ok(wire) = wire else {
            let why = wire.as_ref().err().cloned().unwrap_or_default();
            say.section(if scene == Scene::Connect {
                "a connect nobody answers"
            } else {
                "a peer that vanishes without a word"
            });
            say.say(format!(
                "skipped: this part needs private network namespaces, and this run may not create them: {why}"
            ));
            continue;
        };
        if scene == Scene::Connect {
            silence::silent_connect(say, wire, cli.syn_retries)?;
        } else {
            let keepalive = TcpKeepalive::new()
                .with_time(Duration::from_secs(cli.keepidle))
                .with_interval(Duration::from_secs(cli.keepintvl))
                .with_retries(cli.keepcnt);
            silence::vanished_peer(say, wire, &keepalive)?;
        }
    }
    Ok(())
}

/// What a new TCP socket does about a silent peer: nothing, for a long time.
fn defaults(say: &Narrator) -> Result<(), Failure> {
    say.section("what a new socket does about silence");
    let socket = narrate!(
        say,
        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
    )?;
    narrate!(say, socket.keepalive())?;
    say.note("SO_KEEPALIVE is off: a connection whose peer has vanished is never probed");
    let idle = narrate!(say, socket.tcp_keepalive_time())?;
    say.note(setting("net.ipv4.tcp_keepalive_time"));
    let interval = narrate!(say, socket.tcp_keepalive_interval())?;
    say.note(setting("net.ipv4.tcp_keepalive_intvl"));
    let probes = narrate!(say, socket.tcp_keepalive_retries())?;
    say.note(setting("net.ipv4.tcp_keepalive_probes"));
    say.note(format!(
        "with SO_KEEPALIVE on and these times, a dead peer is found after {} + {probes} x {} = {} s of silence",
        idle.as_secs(),
        interval.as_secs(),
        idle.as_secs() + u64::from(probes) * interval.as_secs()
    ));
    narrate!(say, socket.tcp_user_timeout())?;
    say.note("TCP_USER_TIMEOUT is 0: sent data may stay unacknowledged as long as the retransmissions last (net.ipv4.tcp_retries2)");
    narrate!(say, socket.read_timeout())?;
    say.note("SO_RCVTIMEO is 0: a recv with nothing to read waits as long as it takes");
    if let Some(retries) = observe::sysctl("net.ipv4.tcp_syn_retries") {
        let seconds = retries.parse::<u32>().map(give_up_after).unwrap_or(0);
        say.note(format!(
            "net.ipv4.tcp_syn_retries = {retries}: a connect nobody answers gives up after about {seconds} s (1 + 2 + 4 + ...: each wait twice the last)"
        ));
    }
    narrate!(say, drop(socket));
    Ok(())
}

/// "the default is net.ipv4.tcp_keepalive_time = 7200".
fn setting(name: &str) -> String {
    match observe::sysctl(name) {
        Some(value) => format!("the default is {name} = {value}"),
        None => format!("the default comes from {name}"),
    }
}

/// When a connect nobody answers gives up, in seconds: the first SYN waits 1 s for an
/// answer, each retry twice as long as the one before: 1 + 2 + ... + 2^retries.
fn give_up_after(retries: u32) -> u64 {
    (1u64 << (retries.min(20) + 1)) - 1
}
