//! Whose error is it? A server serves many clients; an error on one of them must not stop
//! it for the others.
//!
//! Two kinds of error come back from `accept()` and from calls on an accepted connection
//! that are not the server's fault and do not last:
//!
//! - [`is_per_client`]: the error belongs to one client. It reset or abandoned its
//!   connection (`ECONNRESET`, `ENOTCONN`, `ECONNABORTED`, `EPIPE`), or its connection died
//!   in the accept queue: Linux's `accept()` passes on the network errors already pending on
//!   the new connection (`accept(2)`, "Error handling": `EPROTO`, `ENETDOWN`, `ENOPROTOOPT`,
//!   `EHOSTDOWN`, `ENONET`, `EHOSTUNREACH`, `EOPNOTSUPP`, `ENETUNREACH`), and asks a server
//!   to treat them like `EAGAIN`. The server narrates it, closes that client's socket if it
//!   has one, and goes on serving.
//! - [`is_out_of_descriptors`]: the process (`EMFILE`, past `ulimit -n`) or the system
//!   (`ENFILE`) has no descriptor left for a new socket, or the kernel no memory for one
//!   (`ENOBUFS`, `ENOMEM`). The connection stays in the accept queue; the server keeps
//!   serving the clients it has, and accepts again once one of them has left and freed a
//!   descriptor (lesson 10).
//!
//! Anything else (`EBADF`, `EINVAL`, `ENOTSOCK` on the listener...) is a bug or a broken
//! listener, and ends the server with one line, as before.

use std::io;

/// Whether `error`, from `accept()` or from a call on an accepted connection, belongs to that
/// one client: the server narrates it and goes on serving the others.
pub fn is_per_client(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::ECONNRESET
                | libc::ENOTCONN
                | libc::EPIPE
                | libc::EPROTO
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
        )
    )
}

/// Whether `error`, from `accept()`, says that no descriptor (or no kernel memory) is left
/// for a new socket: the connection waits in the queue until the server can take it.
pub fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The line a server narrates after a client's own error: whose it is, and that the server
/// goes on.
pub fn client_gone(error: &io::Error) -> String {
    format!(
        "{} belongs to this one client (it reset or abandoned its connection): close its socket, if any, and go on serving",
        crate::explain::error_name(error)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_reset_is_its_own_and_a_bad_descriptor_is_not() {
        for code in [
            libc::ENOTCONN,
            libc::ECONNABORTED,
            libc::ECONNRESET,
            libc::EPROTO,
        ] {
            assert!(is_per_client(&io::Error::from_raw_os_error(code)), "{code}");
        }
        for code in [libc::EBADF, libc::EINVAL, libc::EMFILE, libc::ENOTSOCK] {
            assert!(
                !is_per_client(&io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
        assert!(!is_per_client(&io::Error::other("no errno")));
    }

    #[test]
    fn running_out_of_descriptors_is_neither_fatal_nor_a_clients_error() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            let error = io::Error::from_raw_os_error(code);
            assert!(is_out_of_descriptors(&error), "{code}");
            assert!(!is_per_client(&error), "{code}");
        }
        assert!(!is_out_of_descriptors(&io::Error::from_raw_os_error(
            libc::ECONNRESET
        )));
    }
}
