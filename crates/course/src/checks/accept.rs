//! 04_accept: the program listens on the address on its command line and, for each client in
//! turn, accepts, sends `hello, ADDRESS\n` naming the client's own address, and closes. The
//! check is three real clients, one after another, and /proc/PID/fd after each.

use super::{Ctx, End, QUICK, connect, read_to_end, show, wait_until};
use crate::Failure;
use crate::program::Running;

const CLIENTS: usize = 3;

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    let mut running = ctx.start(&["127.0.0.1:0"])?;
    let address = running.expect_address("listening on")?;
    for n in 1..=CLIENTS {
        let what = format!("client {n} of {CLIENTS} connects to {address} and reads to the end");
        let mut client = match connect(address) {
            Ok(client) => client,
            Err(e) => {
                let mut happened = format!("connect failed: {e}");
                if let Some(ended) = ended(&mut running, n - 1) {
                    happened = format!("{happened}; {ended}");
                }
                return Err(Failure::new(
                    what,
                    "the server accepts every client, one after another",
                    happened,
                ));
            }
        };
        let me = client
            .local_addr()
            .map_err(|e| Failure::new(&what, "an address", e.to_string()))?;
        let expected = format!("hello, {me}\n");
        let (got, end) = read_to_end(&mut client, 4096);
        if got != expected.as_bytes() {
            let mut happened = format!("it got {}, then {}", show(&got), end.describe());
            if let Some(ended) = ended(&mut running, n - 1) {
                happened = format!("{happened}; {ended}");
            }
            if got.starts_with(b"hello, ") && got.ends_with(b"\n") && got.len() < 64 {
                happened.push_str(&format!(
                    ": that is not the client's address ({me}); accept() returns it with the new socket"
                ));
            }
            return Err(Failure::new(
                what,
                format!(
                    "exactly {}, then the end of the stream",
                    show(expected.as_bytes())
                ),
                happened,
            ));
        }
        if !matches!(end, End::Closed) {
            return Err(Failure::new(
                what,
                format!("{} then the end of the stream: the server closes the client's socket", show(&got)),
                format!("the greeting came, then {}: the server keeps the client's socket open (drop conn after sending)", end.describe()),
            )
            .read("lessons/04-accept.md#walk-through-the-code"));
        }
        // The server's descriptors: the listener only, once the client's socket is closed.
        let pid = running.pid();
        if !wait_until(QUICK, || running.socket_fds().len() == 1) {
            return Err(Failure::new(
                format!("look at /proc/{pid}/fd after client {n}"),
                "one socket open: the listener (each client's socket is closed)",
                ended(&mut running, n).unwrap_or_else(|| {
                    format!(
                        "sockets open: {:?} (descriptor, inode)",
                        running.socket_fds()
                    )
                }),
            ));
        }
        ctx.passed(format!(
            "client {n} got {} and the end; /proc/{pid}/fd shows only the listener",
            show(&got)
        ));
    }
    if let Some(status) = running.exited() {
        return Err(Failure::new(
            "check the server is still there",
            "it goes on accepting, until Ctrl-C",
            crate::program::describe_exit(status),
        ));
    }
    ctx.passed("the server is still listening for the next client");
    Ok(())
}

/// If the program has ended, how: after `served` clients with code 0 means it had no loop.
fn ended(running: &mut Running, served: usize) -> Option<String> {
    let status = running.wait_exit(QUICK / 10)?;
    Some(if status.success() {
        format!(
            "the program had ended (exit code 0) after {served} client(s): accept belongs in a loop, once per client"
        )
    } else {
        running.what_happened()
    })
}
