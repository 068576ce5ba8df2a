//! The command-line vocabulary every step shares, and argument parsing that fails in one line.

use std::fmt;
use std::path::PathBuf;

use clap::{Args, Parser};
use socket2::SockAddr;

use crate::{Failure, Narrator};

pub use crate::kind::{Family, SockType};
pub use crate::narrate::ColorWhen;

/// Where a server puts its socket: `--family`, `--host`, `--port`, `--path`. Flatten it into
/// a step's command line with `#[command(flatten)]`, then call [`ServerAddress::resolve`].
#[derive(Args, Debug, Clone)]
pub struct ServerAddress {
    /// Address family: ipv4 and ipv6 use --host and --port, unix uses --path
    #[arg(long, value_enum, default_value_t = Family::Ipv4)]
    pub family: Family,

    /// IP address or host name to bind to [default: 127.0.0.1, or ::1 for ipv6]; '' means every local address
    #[arg(long)]
    pub host: Option<String>,

    /// Port to bind to; 0 lets the kernel choose one, and the program prints which
    #[arg(long, default_value_t = 0)]
    pub port: u16,

    /// Path of the unix socket file, for --family unix [default: $TMPDIR/<step>.sock]
    #[arg(long)]
    pub path: Option<PathBuf>,
}

impl ServerAddress {
    /// The unix socket path: `--path`, or `<temp dir>/<crate name>.sock`.
    pub fn unix_path(&self, say: &Narrator) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("{}.sock", say.step().crate_name)))
    }

    /// The address to bind: resolves `--host` (narrating a name lookup) or takes `--path`.
    /// Flags that do not apply to the family are a usage error.
    pub fn resolve(&self, say: &Narrator) -> Result<SockAddr, Failure> {
        match self.family {
            Family::Unix if self.port != 0 => Err(Failure::Usage(
                "--port does not apply to --family unix: a unix socket's address is a --path"
                    .into(),
            )),
            Family::Ipv4 | Family::Ipv6 if self.path.is_some() => Err(Failure::Usage(format!(
                "--path applies to --family unix only, not {}",
                self.family
            ))),
            _ => crate::addr::endpoint(
                say,
                self.family,
                self.host.as_deref(),
                self.port,
                &self.unix_path(say),
            ),
        }
    }
}

/// A count such as `--max-clients`: a whole number from 1 up. Zero and anything past the
/// type's limit get a sentence a person can read instead of clap's `0 is not in
/// 1..18446744073709551615`.
pub fn count<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialEq + From<u8> + fmt::Display + Bounded,
{
    let too_big = || format!("{text} is too large: at most {}", T::MAX_VALUE);
    match text.trim().parse::<T>() {
        Ok(n) if n == T::from(0) => {
            Err("0 would stop before the first one: give 1 or more, or leave the flag out to run until a signal stops the program".into())
        }
        Ok(n) => Ok(n),
        Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Err(too_big()),
        Err(_) => Err(format!("'{}' is not a whole number (1 or more)", crate::addr::printable(text))),
    }
}

/// The largest value of an unsigned integer type, for [`count`]'s message.
pub trait Bounded {
    const MAX_VALUE: Self;
}
impl Bounded for u32 {
    const MAX_VALUE: u32 = u32::MAX;
}
impl Bounded for u64 {
    const MAX_VALUE: u64 = u64::MAX;
}

/// Parses the command line into `C`. `--help` and `--version` print and exit 0; a bad
/// command line prints one line on stderr and exits with code 2. Never panics.
pub fn parse_args<C: Parser>() -> C {
    match C::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            match err.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => err.exit(),
                _ => {
                    // A closed stderr must not turn a usage error (exit 2) into a panic.
                    use std::io::Write;
                    let line = crate::addr::printable(&one_line(&err.render().to_string()));
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                    std::process::exit(2);
                }
            }
        }
    }
}

/// Folds clap's several-line error message into one line.
fn one_line(rendered: &str) -> String {
    let words: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty()
                && !line.starts_with("Usage:")
                && !line.starts_with("For more information")
        })
        .collect();
    format!("{} (see --help)", words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_fold_into_one_line() {
        let rendered = "error: invalid value 'ipx' for '--family <FAMILY>'\n  [possible values: ipv4, ipv6, unix]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: invalid value 'ipx' for '--family <FAMILY>' [possible values: ipv4, ipv6, unix] (see --help)"
        );
    }

    #[test]
    fn a_count_of_zero_is_refused_in_words() {
        let zero = count::<u64>("0").expect_err("0 is refused");
        assert!(
            zero.contains("1 or more") && !zero.contains("18446744073709551615"),
            "{zero}"
        );
        assert_eq!(count::<u32>("3"), Ok(3));
        assert!(count::<u32>("x").is_err());
        assert!(
            count::<u32>("99999999999")
                .expect_err("too big")
                .contains("at most")
        );
    }

    #[test]
    fn explicit_color_choice_wins() {
        assert!(ColorWhen::Always.enabled(false));
        assert!(!ColorWhen::Never.enabled(true));
    }
}
