//! The kernel's view of the server's sockets, read from `/proc/net/tcp` as `ss -tan` reads
//! it. Nothing here makes a socket call.

use socket2::SockAddr;
use tutor::Narrator;
use tutor::observe::{self, TcpState};

/// The kernel's socket table for the server's port, as `ss -tan` shows it: the listening
/// socket, and the connection accept() returned.
pub fn show_socket_table(say: &Narrator, local: &SockAddr, peer: &SockAddr, fd: i32, conn_fd: i32) {
    let (Some(listening), Some(client)) = (local.as_socket(), peer.as_socket()) else {
        say.note("unix sockets are not in /proc/net/tcp; `ss -xa` lists them");
        return;
    };
    let Ok(entries) = observe::tcp_sockets_on_port(listening.port()) else {
        return;
    };
    let mut lines = vec!["the kernel's socket table for this port (ss -tan):".to_owned()];
    if let Some(e) = entries
        .iter()
        .find(|e| e.state == TcpState::Listen && e.local == listening)
    {
        lines.push(format!(
            "  {:<6} {} <-> *:*  fd {fd}, the listening socket",
            e.state.name(),
            e.local
        ));
    }
    if let Some(e) = entries
        .iter()
        .find(|e| e.local == listening && e.remote == client)
    {
        lines.push(format!(
            "  {:<6} {} <-> {}  fd {conn_fd}, the new socket",
            e.state.name(),
            e.local,
            e.remote
        ));
    }
    say.note(lines.join("\n"));
}
