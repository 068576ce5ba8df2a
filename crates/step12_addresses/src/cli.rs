//! The command line of step 12.

use clap::Parser;
use tutor::{ColorWhen, Family};

/// Step 12 of the socket course: names and addresses.
///
/// Looks a host up with getaddrinfo(3), prints every address it gives, and tries each in turn
/// until one connects, as Python's socket.create_connection does. Without --host the lookup
/// has no host, and getaddrinfo gives the loopback addresses, ::1 then 127.0.0.1. Without
/// --port the program first listens on 127.0.0.1 (port 0) itself, so ::1 refuses and
/// 127.0.0.1 answers. --demo also shows a dual-stack [::] listener taking an IPv4 client, and
/// two listeners sharing one port with SO_REUSEPORT.
#[derive(Parser, Debug)]
#[command(version, after_help = "Lesson: lessons/12-addresses.md")]
pub struct Cli {
    /// Host name or IP address to look up [default: none: getaddrinfo's loopback addresses]
    #[arg(long)]
    pub host: Option<String>,

    /// Port to connect to [default: a listener of the program's own on 127.0.0.1, port 0]
    #[arg(long)]
    pub port: Option<u16>,

    /// Ask getaddrinfo for ipv4 or ipv6 addresses only [default: both, AF_UNSPEC]
    #[arg(long, value_enum)]
    pub family: Option<Family>,

    /// The whole story: the lookup and its attempts, a dual-stack listener, SO_REUSEPORT; then exit
    #[arg(long, conflicts_with_all = ["host", "port", "family"])]
    pub demo: bool,

    /// With --demo: how many clients connect to the two SO_REUSEPORT listeners
    #[arg(long, default_value_t = 16, requires = "demo", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub clients: u32,

    /// With --demo: narrate the calls of the first N of those clients, then only count
    #[arg(long, default_value_t = 2, requires = "demo", value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub show_calls: u32,

    /// When to colour the output
    #[arg(long, value_enum, default_value_t)]
    pub color: ColorWhen,
}
