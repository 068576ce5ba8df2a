//! The client's flags, and the server address they name.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use socket2::SockAddr;
use tutor::{ColorWhen, Failure, Family, Narrator, SockType, addr};

/// Step 7 of the socket course: connect, the TCP client.
///
/// Creates a socket and connects it to a server (--host and --port, or --path for a unix
/// socket), shows the ephemeral port the kernel gave this end, and talks: with --message it
/// sends TEXT, reads the echo until as many bytes came back, and closes; without it, it sends
/// each line you type (standard input) and prints the echo, until end of input (Ctrl-D).
/// Start a server first: step 5 (cargo run -q -p step5_recv_send), scripts/seed_server.py,
/// or `nc -l 127.0.0.1 PORT`. --demo runs its own echo server and needs nothing else.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/07-connect.md")]
pub struct Cli {
    /// Address family: ipv4 and ipv6 use --host and --port, unix uses --path
    #[arg(long, value_enum, default_value_t = Family::Ipv4)]
    pub family: Family,

    /// The server's IP address or host name [default: 127.0.0.1, or ::1 for ipv6]
    #[arg(long)]
    pub host: Option<String>,

    /// The server's port (required for ipv4 and ipv6, except with --demo)
    #[arg(long)]
    pub port: Option<u16>,

    /// The server's unix socket file, for --family unix
    #[arg(long)]
    pub path: Option<PathBuf>,

    /// Socket type: a TCP client needs stream; dgram shows the seed's mistake (a UDP socket)
    #[arg(long = "type", value_name = "TYPE", value_enum, default_value_t = SockType::Stream)]
    pub sock_type: SockType,

    /// Send TEXT (as it is, no newline added), read the echo until as many bytes came back, and close
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,

    /// Give up on the handshake after SECONDS (a non-blocking connect, then poll), e.g. 0.5
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub timeout: Option<Duration>,

    /// The most bytes one recv() may return
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub bufsize: u32,

    /// Run an echo server in-process, talk to it, then connect where nothing listens, and exit
    #[arg(long, conflicts_with_all = ["port", "timeout", "sock_type"])]
    pub demo: bool,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorWhen,
}

/// `--timeout`: a number of seconds, more than 0 and at most an hour.
fn seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "'{text}' is not a number of seconds between 0 and 3600"
        )),
    }
}

impl Cli {
    /// The server's address from --family, --host, --port and --path. A host name is looked up
    /// first (getaddrinfo), as Python's connect(('localhost', 8080)) does.
    pub fn server_address(&self, say: &Narrator) -> Result<SockAddr, Failure> {
        match self.family {
            Family::Unix if self.port.is_some() => {
                return Err(Failure::Usage(
                    "--port does not apply to --family unix: a unix server's address is a --path"
                        .into(),
                ));
            }
            Family::Unix if self.path.is_none() && self.host.is_none() => {
                return Err(Failure::Usage(
                    "--family unix needs --path: the file the server's socket is bound to".into(),
                ));
            }
            Family::Ipv4 | Family::Ipv6 if self.path.is_some() => {
                return Err(Failure::Usage(format!(
                    "--path applies to --family unix only, not {}",
                    self.family
                )));
            }
            _ => {}
        }
        let path = self.path.clone().unwrap_or_default();
        let address = addr::endpoint(
            say,
            self.family,
            self.host.as_deref(),
            self.port.unwrap_or(0),
            &path,
        )?;
        if self.family != Family::Unix && self.port.is_none() {
            return Err(Failure::Usage(
                "--port is required: the port the server listens on (its ready line shows it)"
                    .into(),
            ));
        }
        Ok(address)
    }
}
