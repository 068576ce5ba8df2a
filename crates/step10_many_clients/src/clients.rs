//! What the three models share about one client: the narrator of a client past the budget,
//! and the errors that are the client's own.

use tutor::{Failure, Narrator, per_client};

/// The narrator for calls whose errors are routine (`EAGAIN` on a non-blocking socket, an
/// `accept()` retried while out of descriptors): `say` itself when it is loud; when it is
/// quiet (past `--narrate`), one that prints nothing at all. (A quiet narrator still shows
/// a failed call; here that would be thousands of lines of `EAGAIN`. This one writes into a
/// buffer that is dropped with it.)
pub fn unheard(say: &Narrator) -> Narrator {
    if say.is_loud() {
        say.clone()
    } else {
        say.recording()
    }
}

/// Whether a failed call's error belongs to one client (see `tutor::per_client`): the
/// server narrates it ([`client_gone`]) and goes on serving the others.
pub fn is_clients_own(failure: &Failure) -> bool {
    failure.io_error().is_some_and(per_client::is_per_client)
}

/// One client's own error: what it means, and that the server goes on.
pub fn client_gone(say: &Narrator, failure: &Failure) {
    say.hint(failure);
    if let Some(error) = failure.io_error() {
        say.note(per_client::client_gone(error));
    }
}
