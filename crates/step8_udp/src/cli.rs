//! The step's flags, and the addresses they name.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use socket2::SockAddr;
use tutor::cli::ServerAddress;
use tutor::{ColorWhen, Failure, Family, Narrator, addr};

/// Which end this run plays.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Bind, then answer every datagram to whoever sent it (an echo server)
    Server,
    /// Send one datagram to the server and wait for its answer
    Client,
}

/// Step 8 of the socket course: UDP: datagrams, no connection.
///
/// --role server (the default) binds a datagram socket and echoes every datagram back to its
/// sender: no listen, no accept, and one socket for every peer. --role client sends one
/// datagram (--message) to the server at --host/--port (or --path) and waits for the answer;
/// with --connect it first calls connect(), which sends nothing. --demo tells the whole story
/// in one process: many peers, connect, nobody there, and a buffer too small.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/08-udp.md")]
pub struct Cli {
    /// The server's address: where the server binds, and where the client sends
    #[command(flatten)]
    pub address: ServerAddress,

    /// Which end to play
    #[arg(long, value_enum, default_value_t = Role::Server)]
    pub role: Role,

    /// The client's message: one datagram
    #[arg(long, default_value = "hello", conflicts_with = "demo")]
    pub message: String,

    /// The client calls connect() before it sends (send/recv instead of send_to/recv_from)
    #[arg(long, conflicts_with = "demo")]
    pub connect: bool,

    /// The unix client's own path, so the server can answer it [default: $TMPDIR/step8_udp-client-<pid>.sock]
    #[arg(long, value_name = "PATH", conflicts_with = "demo")]
    pub client_path: Option<PathBuf>,

    /// The most bytes one recv may take: the rest of a longer datagram is lost
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub bufsize: u32,

    /// The server stops after answering this many datagrams [default: serve until Ctrl-C]
    #[arg(long, value_parser = tutor::cli::count::<u32>, conflicts_with = "demo")]
    pub max_datagrams: Option<u32>,

    /// How long the client waits for an answer, in milliseconds
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=60000))]
    pub timeout_ms: u64,

    /// Play server and clients in-process: many peers, connect, nobody there, a short buffer
    #[arg(long, conflicts_with_all = ["port", "path", "role"])]
    pub demo: bool,

    /// With --demo, only this part: 1 many peers, 2 connect, 3 nobody there, 4 a short buffer
    #[arg(long, requires = "demo", value_parser = clap::value_parser!(u8).range(1..=4))]
    pub part: Option<u8>,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorWhen,
}

impl Cli {
    /// The client's two addresses: the server's, and for unix its own path (a unix datagram
    /// socket has no address unless it binds one, and then the server could not answer it).
    pub fn client_addresses(
        &self,
        say: &Narrator,
    ) -> Result<(SockAddr, Option<SockAddr>), Failure> {
        let family = self.address.family;
        if family != Family::Unix && self.address.port == 0 {
            return Err(Failure::Usage(
                "--role client needs the server's --port (the server prints it on its ready line)"
                    .into(),
            ));
        }
        if family != Family::Unix && self.client_path.is_some() {
            return Err(Failure::Usage(format!(
                "--client-path applies to --family unix only, not {family}"
            )));
        }
        let server = self.address.resolve(say)?;
        if family != Family::Unix {
            return Ok((server, None));
        }
        let own_path = self.client_path.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("step8_udp-client-{}.sock", std::process::id()))
        });
        let own = SockAddr::unix(&own_path).map_err(|_| {
            Failure::Usage(format!(
                "--client-path {} is {} bytes long; a unix socket path holds at most 107 bytes",
                addr::printable(&own_path.display().to_string()),
                own_path.as_os_str().len()
            ))
        })?;
        Ok((server, Some(own)))
    }
}
