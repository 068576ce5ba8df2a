//! What the kernel says about a program under check of steps 6 to 10: where it sleeps
//! (/proc/PID/stat and /proc/PID/syscall), what its connections hold (/proc/net/tcp), how many
//! descriptors it has; and the signals it gets, sent with kill(1) as the tests send them (the
//! workspace forbids the unsafe code a libc::kill would need).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use super::wait_until;

/// The process's state letter (`S` asleep, `T` stopped, ...) and the number of the system call
/// it is in; None once it has gone.
pub fn where_is(pid: u32) -> Option<(char, Option<i64>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(") ")?.1.chars().next()?;
    let call = std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok());
    Some((state, call))
}

/// Asleep in send(): the kernel has no room for more of its bytes.
pub fn sleeps_in_send(pid: u32) -> bool {
    matches!(where_is(pid), Some(('S', Some(call))) if call == libc::SYS_sendto || call == libc::SYS_write)
}

/// Asleep in recv(): waiting for bytes that have not come.
pub fn sleeps_in_recv(pid: u32) -> bool {
    matches!(where_is(pid), Some(('S', Some(call))) if call == libc::SYS_recvfrom || call == libc::SYS_read)
}

/// Gone, or a zombie waiting to be reaped.
pub fn gone(pid: u32) -> bool {
    matches!(where_is(pid), None | Some(('Z', _)))
}

/// Sends signal `name` (STOP, CONT, ...) to the process with kill(1).
pub fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Stops the process and lets it go on again, as Ctrl-Z and `fg` would. A send() asleep for
/// room returns at once with the count it has taken so far: a short send.
pub fn stop_and_continue(pid: u32) -> bool {
    let stopped = signal(pid, "STOP")
        && wait_until(Duration::from_secs(2), || {
            matches!(where_is(pid), Some(('T' | 't', _)))
        });
    // Continued whatever happened: a program is never left stopped.
    signal(pid, "CONT") && stopped
}

/// Bytes that arrived at the end `local` of the connection to `remote` and were not read yet
/// (Recv-Q), and bytes it has sent that were not acknowledged (Send-Q).
pub fn queues(local: SocketAddr, remote: SocketAddr) -> Option<(u32, u32)> {
    tutor::observe::tcp_sockets()
        .ok()?
        .into_iter()
        .find(|e| e.local == local && e.remote == remote)
        .map(|e| (e.rx_queue, e.tx_queue))
}

/// The TCP state of the end `local` of the connection to `remote`.
pub fn state(local: SocketAddr, remote: SocketAddr) -> Option<tutor::observe::TcpState> {
    tutor::observe::tcp_sockets()
        .ok()?
        .into_iter()
        .find(|e| e.local == local && e.remote == remote)
        .map(|e| e.state)
}

/// Everything `ours` sent has been read by the program at the other end (or it has gone).
pub fn all_read(ours: SocketAddr, theirs: SocketAddr) -> bool {
    matches!(queues(ours, theirs), Some((_, 0)) | None)
        && matches!(queues(theirs, ours), Some((0, _)) | None)
}

/// How many threads the process has.
pub fn threads(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()
        .map(|d| d.count())
}

/// How many descriptors the process has open.
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}
