//! 13_patient_client: a client that sends a line and reads the answer, but bounds its wait.
//! The check plays two servers on loopback: one that answers (the client prints the answer
//! and exits 0), and one that reads the line and then says nothing. While the client waits
//! for that one, the kernel's copy of its socket must show keepalive on with short times and
//! a read timeout; then the client must give up on its own, within seconds, with exit code 1.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use super::{Ctx, QUICK, read_exactly, show, wait_until};
use crate::Failure;
use crate::program::{Running, describe_exit};

/// The longest TCP_KEEPIDLE the check accepts: far below the kernel's 7,200 s.
const MOST_IDLE: Duration = Duration::from_secs(60);
/// The longest read timeout the check accepts.
const MOST_WAIT: Duration = Duration::from_secs(5);

pub fn check(ctx: &Ctx) -> Result<(), Failure> {
    // A server that answers.
    let (listener, address) = server()?;
    let mut running = ctx.start(&[&address])?;
    let mut conn = accepted(&listener, &mut running, "the client connects to a server")?;
    hello(&mut conn, &mut running)?;
    conn.write_all(b"hi there\n")
        .map_err(|e| Failure::new("the server answers", "the answer is sent", e.to_string()))?;
    running.expect_line("answer: hi there", QUICK, |line| {
        line.contains("hi there").then_some(())
    })?;
    match running.wait_exit(QUICK) {
        Some(status) if status.success() => {}
        _ => {
            return Err(Failure::new(
                "the server answered `hi there`",
                "the client prints the answer and exits with code 0",
                running.what_happened(),
            ));
        }
    }
    ctx.passed("a server that answers: the answer printed, exit code 0");

    // A server that reads the line and says nothing.
    let (listener, address) = server()?;
    let mut running = ctx.start(&[&address])?;
    let mut conn = accepted(
        &listener,
        &mut running,
        "the client connects to a silent server",
    )?;
    hello(&mut conn, &mut running)?;
    // Once it sleeps, waiting for the answer, look at its socket as the kernel has it.
    wait_until(QUICK, || running.state() == Some('S'));
    options(ctx, &running)?;
    let what = "the server reads the line and never answers";
    match running.wait_exit(QUICK + MOST_WAIT) {
        None => Err(Failure::new(
            what,
            format!("the client gives up on its own within {MOST_WAIT:?} and exits with code 1"),
            format!(
                "it was still waiting after {:?}: a recv with no timeout waits as long as the server says nothing",
                QUICK + MOST_WAIT
            ),
        )),
        Some(status) if status.success() => Err(Failure::new(
            what,
            "exit code 1: no answer came",
            format!(
                "{} although no answer came: a read timeout running out (EAGAIN, ErrorKind::WouldBlock) is not an answer",
                describe_exit(status)
            ),
        )),
        Some(status) if status.code() == Some(1) => {
            ctx.passed("a silent server: the client gave up on its own, exit code 1");
            drop(conn);
            Ok(())
        }
        Some(status) => Err(Failure::new(
            what,
            "the client gives up on its own and exits with code 1",
            format!("{}; {}", describe_exit(status), running.what_happened()),
        )),
    }
}

/// A listening socket on loopback, port 0, and its address as the client's argument.
fn server() -> Result<(TcpListener, String), Failure> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| Failure::new("the check starts a server", "127.0.0.1:0", e.to_string()))?;
    let address = listener
        .local_addr()
        .map_err(|e| Failure::new("the check starts a server", "its address", e.to_string()))?;
    Ok((listener, address.to_string()))
}

/// The client's connection, accepted within [`QUICK`].
fn accepted(
    listener: &TcpListener,
    running: &mut Running,
    what: &str,
) -> Result<TcpStream, Failure> {
    let mut conn = None;
    wait_until(QUICK, || {
        conn = listener.accept().ok().map(|(stream, _)| stream);
        conn.is_some() || running.exited().is_some()
    });
    let conn = conn.ok_or_else(|| {
        Failure::new(
            what,
            format!("a connection within {QUICK:?}"),
            running.what_happened(),
        )
    })?;
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(QUICK));
    Ok(conn)
}

/// The client's line: `hello\n`.
fn hello(conn: &mut TcpStream, running: &mut Running) -> Result<(), Failure> {
    let (got, end) = read_exactly(conn, 6);
    if got == b"hello\n" {
        return Ok(());
    }
    let mut happened = format!("it sent {}", show(&got));
    if let Some(end) = end {
        happened.push_str(&format!(", then {}", end.describe()));
    }
    happened.push_str(&format!("; {}", running.what_happened()));
    Err(Failure::new(
        "the client sends its line",
        "hello\\n",
        happened,
    ))
}

/// Keepalive and the read timeout, as the kernel has them on the client's socket.
fn options(ctx: &Ctx, running: &Running) -> Result<(), Failure> {
    let what = "the client waits for the answer; its socket, as the kernel has it";
    let Some(&(fd, _)) = running.socket_fds().first() else {
        return Err(Failure::new(
            what,
            "one socket, connected",
            "it has no socket open",
        ));
    };
    let socket = match running.copy_socket(fd) {
        Ok(socket) => socket,
        Err(why) => {
            ctx.skipped(format!("the socket's options: {why}"));
            return Ok(());
        }
    };
    if !socket.keepalive().unwrap_or(false) {
        return Err(Failure::new(
            what,
            "SO_KEEPALIVE on",
            "SO_KEEPALIVE is off: a server whose machine vanished would never be noticed",
        ));
    }
    let idle = socket.tcp_keepalive_time().unwrap_or_default();
    if idle > MOST_IDLE {
        return Err(Failure::new(
            what,
            format!("TCP_KEEPIDLE of at most {MOST_IDLE:?}"),
            format!(
                "TCP_KEEPIDLE is {idle:?}: the first probe would come after {idle:?} of silence; set the times too"
            ),
        ));
    }
    match socket.read_timeout() {
        Ok(Some(wait)) if wait <= MOST_WAIT => {
            ctx.passed(format!(
                "keepalive on (TCP_KEEPIDLE {idle:?}), read timeout {wait:?}"
            ));
            Ok(())
        }
        Ok(Some(wait)) => Err(Failure::new(
            what,
            format!("a read timeout of at most {MOST_WAIT:?}"),
            format!("the read timeout is {wait:?}"),
        )),
        _ => Err(Failure::new(
            what,
            format!("a read timeout (SO_RCVTIMEO) of at most {MOST_WAIT:?}"),
            "no read timeout: recv waits as long as the server says nothing",
        )),
    }
}
