//! getaddrinfo's hints, from the command line, and the call as the narration shows it.

use std::net::IpAddr;

use dns_lookup::AddrInfoHints;
use tutor::{Failure, Family, strace};

/// getaddrinfo's hints: stream sockets, of one family or of any (`AF_UNSPEC`). A --host that
/// is an address of the other family is a usage error.
pub fn for_stream(family: Option<Family>, host: Option<&str>) -> Result<AddrInfoHints, Failure> {
    let literal = host.and_then(|h| h.parse::<IpAddr>().ok());
    let address = match (family, literal) {
        (None, _) => libc::AF_UNSPEC,
        (Some(Family::Unix), _) => {
            return Err(Failure::Usage(
                "--family unix has no names to look up: a unix socket's address is a path (step 2)"
                    .into(),
            ));
        }
        (Some(Family::Ipv4), Some(IpAddr::V6(_))) | (Some(Family::Ipv6), Some(IpAddr::V4(_))) => {
            return Err(Failure::Usage(format!(
                "--host {} is not an {} address: drop --family or change it",
                host.unwrap_or(""),
                family.map_or(String::new(), |f| f.to_string())
            )));
        }
        (Some(family), _) => family.domain().into(),
    };
    Ok(AddrInfoHints {
        address,
        socktype: libc::SOCK_STREAM,
        ..AddrInfoHints::default()
    })
}

/// `getaddrinfo(NULL, "40321", {ai_family=AF_UNSPEC, ai_socktype=SOCK_STREAM})`
pub fn shown(host: Option<&str>, service: &str, hints: &AddrInfoHints) -> String {
    let family = match hints.address {
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        _ => "AF_UNSPEC",
    };
    format!(
        "getaddrinfo({}, {}, {{ai_family={family}, ai_socktype=SOCK_STREAM}})",
        host.map_or("NULL".to_owned(), strace::quoted),
        strace::quoted(service)
    )
}
