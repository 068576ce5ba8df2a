//! From `--host`, `--port` and `--path` to a socket address, and addresses as the lessons
//! print them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs};
use std::path::Path;

pub use crate::show::{address as show, printable};
use socket2::SockAddr;

use crate::kind::Family;
use crate::{Failure, Narrator};

/// The host a step uses when `--host` is not given: the loopback address of the family.
pub fn default_host(family: Family) -> &'static str {
    match family {
        Family::Ipv6 => "::1",
        _ => "127.0.0.1",
    }
}

/// Builds the address a step binds or connects to.
///
/// For `ipv4`/`ipv6`, `host` is an IP address or a name; a name is resolved with
/// `getaddrinfo(3)` (narrated: it is a library call, not a socket call). An empty host means
/// every local address (`0.0.0.0` or `::`), as `''` does in Python. For `unix`, `path` is the
/// address and `host`/`port` must not be given.
pub fn endpoint(
    say: &Narrator,
    family: Family,
    host: Option<&str>,
    port: u16,
    path: &Path,
) -> Result<SockAddr, Failure> {
    if family == Family::Unix {
        if host.is_some() {
            return Err(Failure::Usage(
                "--host does not apply to --family unix: a unix socket's address is a --path"
                    .into(),
            ));
        }
        return unix(path);
    }
    let host = host.unwrap_or(default_host(family));
    // `[::1]` is how the programs print an IPv6 address (`[::1]:8080`): take it back.
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner,
        None => host,
    };
    if let Some((ip, zone)) = host.split_once('%') {
        return zoned(family, host, ip, zone, port);
    }
    let ip = if host.is_empty() {
        say.note("an empty --host means every local address, as '' does in Python");
        match family {
            Family::Ipv6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        ip
    } else {
        resolve(say, family, host)?
    };
    let shown = printable(host);
    match (family, ip) {
        (Family::Ipv4, IpAddr::V6(_)) => Err(Failure::Usage(format!(
            "--host {shown} is an IPv6 address, but --family is ipv4; add --family ipv6"
        ))),
        (Family::Ipv6, IpAddr::V4(_)) => Err(Failure::Usage(format!(
            "--host {shown} is an IPv4 address, but --family is ipv6; use an IPv6 address such as ::1"
        ))),
        _ => Ok(SockAddr::from(SocketAddr::new(ip, port))),
    }
}

/// An IPv6 address with a zone (`fe80::1%lo`, `fe80::1%2`): the zone names the interface a
/// link-local address belongs to, and becomes the address's scope id.
fn zoned(family: Family, host: &str, ip: &str, zone: &str, port: u16) -> Result<SockAddr, Failure> {
    let shown = printable(host);
    let Ok(ip) = ip.parse::<Ipv6Addr>() else {
        return Err(Failure::Usage(format!(
            "--host {shown}: a zone (%...) follows an IPv6 address only, as in fe80::1%lo"
        )));
    };
    if family != Family::Ipv6 {
        return Err(Failure::Usage(format!(
            "--host {shown} is an IPv6 address, but --family is {family}; add --family ipv6"
        )));
    }
    let scope = match zone.parse::<u32>() {
        Ok(index) => index,
        Err(_) if !zone.is_empty() && !zone.contains('\0') => {
            nix::net::if_::if_nametoindex(zone).map_err(|_| {
                Failure::Usage(format!(
                    "--host {shown}: this machine has no network interface named '{}' (`ip link` lists them)",
                    printable(zone)
                ))
            })?
        }
        Err(_) => {
            return Err(Failure::Usage(format!(
                "--host {shown}: the zone after % must name an interface, as in fe80::1%lo"
            )));
        }
    };
    Ok(SockAddr::from(SocketAddrV6::new(ip, port, 0, scope)))
}

/// A unix-domain socket address for `path`. A path longer than `sun_path` holds is a usage
/// error: the kernel would never see it.
pub fn unix(path: &Path) -> Result<SockAddr, Failure> {
    SockAddr::unix(path).map_err(|_| {
        Failure::Usage(format!(
            "--path {} is {} bytes long; a unix socket path holds at most 107 bytes",
            printable(&path.display().to_string()),
            path.as_os_str().len()
        ))
    })
}

/// Resolves a host name to an address of `family`, narrating the lookup.
fn resolve(say: &Narrator, family: Family, host: &str) -> Result<IpAddr, Failure> {
    let shown = printable(host);
    say.call_lib(
        format!("getaddrinfo(\"{shown}\")"),
        format!("(\"{shown}\", 0).to_socket_addrs()"),
    );
    let found: Vec<SocketAddr> = match (host, 0).to_socket_addrs() {
        Ok(found) => found.collect(),
        Err(error) => {
            let message = error.to_string();
            let message = message
                .strip_prefix("failed to lookup address information: ")
                .unwrap_or(&message)
                .to_owned();
            let (name, _) = crate::explain::lookup_hint(&message);
            say.returned(format!("{name} ({message})"));
            return Err(Failure::Lookup {
                host: host.to_owned(),
                message,
            });
        }
    };
    let listed: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
    say.returned(listed.join(", "));
    let wanted = found.iter().map(|a| a.ip()).find(|ip| match family {
        Family::Ipv6 => ip.is_ipv6(),
        _ => ip.is_ipv4(),
    });
    match wanted {
        Some(ip) => {
            if found.len() > 1 {
                say.note(format!("using {ip}, the first {family} address"));
            }
            Ok(ip)
        }
        None => Err(Failure::Lookup {
            host: host.to_owned(),
            message: format!("No address associated with hostname for --family {family}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("/tmp/a\nb\x1b[31m"), "/tmp/a\\nb\\u{1b}[31m");
        assert_eq!(printable("plain"), "plain");
    }
}
