//! From an `io::Error` to what a learner needs: the errno name, the OS message, a hint, and
//! the lesson that explains it.

use std::io;

/// The name of an error number, as `strace` and the man pages write it (`EADDRINUSE`).
pub fn errno_name(code: i32) -> Option<&'static str> {
    let name = match code {
        libc::EACCES => "EACCES",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EAGAIN => "EAGAIN",
        libc::EALREADY => "EALREADY",
        libc::EBADF => "EBADF",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::EDESTADDRREQ => "EDESTADDRREQ",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EINTR => "EINTR",
        libc::EINVAL => "EINVAL",
        libc::EISCONN => "EISCONN",
        libc::EMFILE => "EMFILE",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOENT => "ENOENT",
        libc::ENOTCONN => "ENOTCONN",
        libc::ENOTDIR => "ENOTDIR",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EPERM => "EPERM",
        libc::EPIPE => "EPIPE",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::EPROTOTYPE => "EPROTOTYPE",
        libc::EROFS => "EROFS",
        libc::ESHUTDOWN => "ESHUTDOWN",
        libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => return None,
    };
    Some(name)
}

/// The short name of an error: its errno name when the kernel gave one, otherwise a name for
/// the kind of error (a timeout measured by our own timer has no errno).
pub fn error_name(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => errno_name(code)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("errno {code}")),
        None => match error.kind() {
            io::ErrorKind::TimedOut => "timeout".to_owned(),
            io::ErrorKind::UnexpectedEof => "unexpected EOF".to_owned(),
            io::ErrorKind::InvalidInput => "invalid input".to_owned(),
            _ => "error".to_owned(),
        },
    }
}

/// The OS message for an error, without Rust's " (os error 98)" suffix.
pub fn os_message(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// `EADDRINUSE (Address already in use)`: how a result line and an error line name an error.
pub fn describe(error: &io::Error) -> String {
    format!("{} ({})", error_name(error), os_message(error))
}

/// Like [`hint`], for a call as narrated (`bind(3, /tmp/x.sock)`): the address tells a unix
/// socket's path from an IP address, and the same errno can mean different things for them
/// (EACCES on a path is about the directory's permissions, not about a privileged port).
pub fn hint_for_call(call: &str, error: &io::Error) -> (&'static str, Option<&'static str>) {
    let name = call.split('(').next().unwrap_or(call);
    let address = call
        .split_once(", ")
        .map(|(_, rest)| rest.strip_suffix(')').unwrap_or(rest));
    let on_a_path =
        address.is_some_and(|a| a.parse::<std::net::SocketAddr>().is_err() && a != "(unnamed)");
    match (name, error.raw_os_error()) {
        ("bind", Some(libc::EACCES)) if on_a_path => (
            "a unix socket's file is created in its directory: that needs write and search (x) permission on the directory of --path; choose a directory you may write to, such as /tmp",
            Some("lessons/02-bind.md"),
        ),
        ("bind", Some(libc::EADDRINUSE)) if on_a_path => (
            "something already has that path (a socket file, bound or left behind, or any other file); bind only creates a new file: choose another path, or remove the file if you know it is a stale socket of yours",
            Some("lessons/02-bind.md"),
        ),
        ("connect", Some(libc::EACCES)) if on_a_path => (
            "connecting to a unix socket needs write permission on the socket file and search (x) permission on every directory of its path",
            Some("lessons/07-connect.md"),
        ),
        _ => hint(name, error),
    }
}

/// What to do about an error, and which lesson explains it. `call` is the name of the system
/// call that failed (`bind`, `connect`, ...): the same errno can mean different things.
pub fn hint(call: &str, error: &io::Error) -> (&'static str, Option<&'static str>) {
    const BIND: Option<&str> = Some("lessons/02-bind.md");
    const CREATE: Option<&str> = Some("lessons/01-create.md");
    let Some(code) = error.raw_os_error() else {
        return match error.kind() {
            io::ErrorKind::TimedOut => (
                "no answer in time: the peer's kernel did not complete the handshake (a full accept queue, or a firewall that drops packets)",
                Some("lessons/03-listen.md"),
            ),
            _ => ("", None),
        };
    };
    match (call, code) {
        ("bind", libc::EADDRINUSE) => (
            "another socket already holds this address, or a connection on it waits in TIME-WAIT (lessons/06-close.md); for a unix socket, the file already exists; stop it, choose another --port (0 lets the kernel choose) or --path",
            BIND,
        ),
        ("bind", libc::EADDRNOTAVAIL) => (
            "no network interface of this machine has that IP address; bind to 127.0.0.1, 0.0.0.0, or an address that `ip addr` lists",
            BIND,
        ),
        ("bind", libc::EACCES) => (
            "ports below net.ipv4.ip_unprivileged_port_start (usually 1024) need root or CAP_NET_BIND_SERVICE; use a higher --port (0 lets the kernel choose)",
            BIND,
        ),
        ("bind", libc::ENOENT) => (
            "the directory for the unix socket's path does not exist; create it or choose another --path",
            BIND,
        ),
        ("bind", libc::EINVAL) => (
            "the address is not valid for this socket: a socket gets an address once (is it already bound?), and an IPv6 link-local address (fe80::...) needs its interface as a zone, e.g. --host fe80::1%eth0",
            BIND,
        ),
        ("listen", libc::EOPNOTSUPP) => (
            "only stream sockets listen: a datagram socket has no connections to queue",
            Some("lessons/03-listen.md"),
        ),
        ("listen", libc::EADDRINUSE) => (
            "another socket already listens on this port; two listeners cannot share it without SO_REUSEPORT",
            Some("lessons/03-listen.md"),
        ),
        ("connect", libc::EINPROGRESS) => (
            "the handshake did not finish within the socket's send timeout (SO_SNDTIMEO); the kernel goes on trying in the background",
            Some("lessons/03-listen.md"),
        ),
        ("connect", libc::EAGAIN) => (
            "the unix server's accept queue stayed full for the whole send timeout (SO_SNDTIMEO)",
            Some("lessons/03-listen.md"),
        ),
        (_, libc::EAFNOSUPPORT) => (
            "this kernel does not support that address family here (is IPv6 disabled?)",
            CREATE,
        ),
        (_, libc::EPROTONOSUPPORT | libc::ESOCKTNOSUPPORT | libc::EPROTOTYPE) => {
            ("this family, type and protocol do not go together", CREATE)
        }
        (_, libc::EMFILE | libc::ENFILE) => (
            "this process holds as many descriptors as it may: close sockets you no longer need, or raise the limit (ulimit -n)",
            CREATE,
        ),
        ("connect", libc::ECONNREFUSED) => (
            "nothing listens at that address: the peer's kernel answered with a reset (or, for a unix socket, the file is there but no socket is bound to it); start the server first, or check --host and --port (or --path)",
            Some("lessons/07-connect.md"),
        ),
        // Any other call: a datagram socket. A TCP reset after connect is ECONNRESET instead.
        (_, libc::ECONNREFUSED) => (
            "an earlier datagram found nothing at that address: the peer's kernel answered with an ICMP \"port unreachable\", which a connected datagram socket hears on its next call",
            Some("lessons/08-udp.md"),
        ),
        (_, libc::ETIMEDOUT) => (
            "the kernel gave up: the peer never answered its SYNs, keepalive probes or data (a firewall may drop the packets, or the host is gone)",
            Some("lessons/13-dead-peers.md"),
        ),
        (_, libc::ECONNRESET) => (
            "the peer reset the connection: it closed with data unread, aborted (SO_LINGER 0), or its listening socket closed with this connection still queued",
            Some("lessons/06-close.md"),
        ),
        (_, libc::EPIPE) => (
            "the connection is closed for writing: the peer is gone, or this side already shut down its write half",
            Some("lessons/06-close.md"),
        ),
        (_, libc::ENOTCONN) => ("this socket is not connected to a peer", None),
        (_, libc::ENOENT) => (
            "no socket file at that path: is the server running, with the same --path?",
            Some("lessons/07-connect.md"),
        ),
        (_, libc::EACCES | libc::EPERM) => ("permission denied", None),
        (_, libc::ENETUNREACH | libc::EHOSTUNREACH) => {
            ("no route to that address from this machine", None)
        }
        _ => ("", None),
    }
}

/// The hint for a failed host-name lookup, keyed by the resolver's message.
pub fn lookup_hint(message: &str) -> (&'static str, &'static str) {
    if message.contains("Name or service not known") || message.contains("nodename nor servname") {
        (
            "EAI_NONAME",
            "no such host: check the spelling, or give an IP address such as 127.0.0.1",
        )
    } else if message.contains("Temporary failure") {
        (
            "EAI_AGAIN",
            "the resolver could not reach a name server; try an IP address such as 127.0.0.1",
        )
    } else if message.contains("No address associated") {
        (
            "EAI_NODATA",
            "the name exists but has no address of that family",
        )
    } else {
        (
            "EAI",
            "the host name did not resolve; try an IP address such as 127.0.0.1",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_messages_come_from_the_os_error() {
        let e = io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert_eq!(error_name(&e), "EADDRINUSE");
        assert_eq!(describe(&e), "EADDRINUSE (Address already in use)");
    }

    #[test]
    fn a_timer_timeout_is_not_called_etimedout() {
        let e = io::Error::from(io::ErrorKind::TimedOut);
        assert_eq!(error_name(&e), "timeout");
    }

    #[test]
    fn the_same_errno_gets_a_hint_for_its_call() {
        let e = io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert!(hint("bind", &e).0.contains("--port"));
        assert!(hint("listen", &e).0.contains("listens"));
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert!(hint("connect", &refused).0.contains("reset"));
        assert!(hint("recvfrom", &refused).0.contains("ICMP"));
    }

    #[test]
    fn eacces_on_a_unix_path_is_about_the_directory_not_the_port() {
        let e = io::Error::from_raw_os_error(libc::EACCES);
        let (on_path, _) = hint_for_call("bind(3, /srv/locked/app.sock)", &e);
        assert!(
            on_path.contains("directory") && !on_path.contains("--port"),
            "{on_path}"
        );
        let (on_port, _) = hint_for_call("bind(3, 127.0.0.1:80)", &e);
        assert!(on_port.contains("--port"), "{on_port}");
        let (on_v6, _) = hint_for_call("bind(3, [::1]:80)", &e);
        assert!(on_v6.contains("--port"), "{on_v6}");
    }

    #[test]
    fn einval_at_bind_does_not_claim_the_socket_is_bound() {
        let e = io::Error::from_raw_os_error(libc::EINVAL);
        let (text, _) = hint_for_call("bind(3, [fe80::1]:0)", &e);
        assert!(!text.starts_with("this socket is already bound"), "{text}");
        assert!(text.contains("zone"), "{text}");
    }
}
