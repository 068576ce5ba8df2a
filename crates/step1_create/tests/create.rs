//! What lesson 1 claims about a new socket, checked against the program and the kernel.

use std::path::Path;
use std::time::Duration;

use testkit::process::{Running, run};
use testkit::python3;
use testkit::strace;

const LIMIT: Duration = Duration::from_secs(20);

fn step1() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step1_create"))
}

/// The middle value of a three-value sysctl such as net.ipv4.tcp_rmem.
fn sysctl_middle(path: &str) -> String {
    let text = std::fs::read_to_string(path).expect("the sysctl is readable");
    text.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| text.trim())
        .to_owned()
}

fn sysctl(path: &str) -> String {
    std::fs::read_to_string(path)
        .expect("the sysctl is readable")
        .trim()
        .to_owned()
}

#[test]
fn a_tcp_socket_is_fd_3_with_no_address_blocking_and_default_buffers() {
    let out = run(step1(), ["--color", "never"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("-> socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP)"));
    let lines: Vec<&str> = out.output.lines().collect();
    let socket_at = lines
        .iter()
        .position(|l| l.starts_with("-> socket("))
        .expect("socket() is narrated");
    assert_eq!(lines[socket_at + 2], "<- 3", "the first socket gets fd 3");
    assert!(
        out.says("/fd/3 -> socket:["),
        "fd 3 is a socket in /proc/PID/fd"
    );
    assert!(out.says("<- 0.0.0.0:0"), "an unbound socket has no address");
    assert!(out.says("<- false"));
    assert!(out.says("   O_NONBLOCK is not set: blocking mode"));
    let rcv = sysctl_middle("/proc/sys/net/ipv4/tcp_rmem");
    let snd = sysctl_middle("/proc/sys/net/ipv4/tcp_wmem");
    assert!(
        out.output.lines().any(|l| l == format!("<- {rcv}")),
        "SO_RCVBUF is tcp_rmem's middle value"
    );
    assert!(
        out.output.lines().any(|l| l == format!("<- {snd}")),
        "SO_SNDBUF is tcp_wmem's middle value"
    );
}

#[test]
fn family_and_type_change_the_call_and_the_defaults() {
    let rmem = sysctl("/proc/sys/net/core/rmem_default");
    let wmem = sysctl("/proc/sys/net/core/wmem_default");
    let tcp_rmem = sysctl_middle("/proc/sys/net/ipv4/tcp_rmem");
    let tcp_wmem = sysctl_middle("/proc/sys/net/ipv4/tcp_wmem");
    let cases = [
        (
            "ipv4",
            "dgram",
            "socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, IPPROTO_UDP)",
            "<- 0.0.0.0:0",
            &rmem,
            &wmem,
        ),
        (
            "ipv6",
            "stream",
            "socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP)",
            "<- [::]:0",
            &tcp_rmem,
            &tcp_wmem,
        ),
        (
            "ipv6",
            "dgram",
            "socket(AF_INET6, SOCK_DGRAM|SOCK_CLOEXEC, IPPROTO_UDP)",
            "<- [::]:0",
            &rmem,
            &wmem,
        ),
        (
            "unix",
            "stream",
            "socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0)",
            "<- (unnamed)",
            &rmem,
            &wmem,
        ),
        (
            "unix",
            "dgram",
            "socket(AF_UNIX, SOCK_DGRAM|SOCK_CLOEXEC, 0)",
            "<- (unnamed)",
            &rmem,
            &wmem,
        ),
    ];
    for (family, ty, call, unbound, rcvbuf, sndbuf) in cases {
        let out = run(step1(), ["--family", family, "--type", ty], LIMIT);
        assert_eq!(out.code, Some(0), "{family}/{ty}: {}", out.output);
        assert!(
            out.says(&format!("-> {call}")),
            "{family}/{ty}: {}",
            out.output
        );
        assert!(
            out.says(unbound),
            "{family}/{ty} unbound address: {}",
            out.output
        );
        // TCP takes its sizes from net.ipv4.tcp_{r,w}mem (for IPv6 too); datagram and unix
        // sockets from net.core.{r,w}mem_default.
        let rcv_then_snd = format!("<- {rcvbuf}");
        let lines: Vec<&str> = out.output.lines().collect();
        let rcv_at = lines
            .iter()
            .position(|l| l.contains("SO_RCVBUF"))
            .expect("SO_RCVBUF narrated");
        let snd_at = lines
            .iter()
            .position(|l| l.contains("SO_SNDBUF"))
            .expect("SO_SNDBUF narrated");
        assert_eq!(lines[rcv_at + 2], rcv_then_snd, "{family}/{ty} SO_RCVBUF");
        assert_eq!(
            lines[snd_at + 2],
            format!("<- {sndbuf}"),
            "{family}/{ty} SO_SNDBUF"
        );
    }
}

#[test]
fn while_held_the_socket_is_in_the_process_fd_table_and_after_close_it_is_gone() {
    let mut step = Running::start(step1(), ["--hold"]);
    step.expect_line("holding fd 3 open", LIMIT);
    let link =
        std::fs::read_link(format!("/proc/{}/fd/3", step.pid())).expect("fd 3 is open while held");
    assert!(
        link.to_string_lossy().starts_with("socket:["),
        "fd 3 is a socket: {link:?}"
    );
    step.send_stdin("\n"); // Enter: at end of input it would keep waiting for a signal
    let done = step.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert!(done.says("-> close(3)"));
}

#[test]
fn the_demo_compares_all_six_kinds_and_reuses_fd_3() {
    let out = run(step1(), ["--demo"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    let table: Vec<&str> = out
        .output
        .lines()
        .skip_while(|l| !l.starts_with("family"))
        .skip(1)
        .take_while(|l| !l.starts_with(' '))
        .collect();
    assert_eq!(table.len(), 6, "six rows: {}", out.output);
    for row in table {
        let fd = row.split_whitespace().nth(2);
        assert_eq!(
            fd,
            Some("3"),
            "each socket got fd 3 after the last was closed: {row}"
        );
    }
}

#[test]
fn the_narration_shows_every_network_call_strace_sees() {
    for args in [
        vec!["--family", "ipv4"],
        vec!["--family", "unix", "--type", "dgram"],
    ] {
        let Some(traced) =
            strace::trace_network("step1 narration vs strace", step1(), &args, LIMIT)
        else {
            return;
        };
        assert_eq!(traced.run.code, Some(0), "{}", traced.run.output);
        let narrated = strace::narrated_network_calls(&traced.run.output);
        let seen: Vec<String> = traced.calls.iter().map(|c| c.name.clone()).collect();
        assert_eq!(narrated, seen, "narrated vs traced for {args:?}");
        assert!(
            traced.calls[0].line.contains("SOCK_CLOEXEC"),
            "socket2 adds SOCK_CLOEXEC: {}",
            traced.calls[0].line
        );
    }
}

#[test]
fn an_unbound_socket_is_not_in_the_tcp_table_yet() {
    let mut step = Running::start(step1(), ["--hold"]);
    step.expect_line("holding fd 3 open", LIMIT);
    let link = std::fs::read_link(format!("/proc/{}/fd/3", step.pid())).expect("fd 3 is open");
    let link = link.to_string_lossy().into_owned();
    let inode = link
        .trim_start_matches("socket:[")
        .trim_end_matches(']')
        .to_owned();
    assert!(
        inode.chars().all(|c| c.is_ascii_digit()) && !inode.is_empty(),
        "{link}"
    );
    // Column 10 of /proc/net/tcp{,6} is the socket's inode.
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).expect("the TCP table is readable");
        let listed = text
            .lines()
            .skip(1)
            .any(|line| line.split_whitespace().nth(9) == Some(inode.as_str()));
        assert!(!listed, "socket {inode} is already in {table}");
    }
    // The same check finds a listening socket, so it can fail.
    let listening = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listening.local_addr().expect("addr").port();
    let text = std::fs::read_to_string("/proc/net/tcp").expect("readable");
    assert!(
        text.contains(&format!(":{port:04X} ")),
        "a listening socket is in the table"
    );
    step.send_stdin("\n"); // Enter: at end of input it would keep waiting for a signal
    assert_eq!(step.finish(LIMIT).code, Some(0));
}

#[test]
fn protocol_0_lets_the_kernel_pick_tcp_or_udp() {
    use socket2::{Domain, Protocol, Socket, Type};
    let stream = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    assert_eq!(stream.protocol().expect("SO_PROTOCOL"), Some(Protocol::TCP));
    let dgram = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("socket");
    assert_eq!(dgram.protocol().expect("SO_PROTOCOL"), Some(Protocol::UDP));
}

#[test]
fn sock_cloexec_keeps_the_socket_out_of_programs_we_start() {
    use socket2::{Domain, Socket, Type};
    use std::os::fd::AsRawFd;
    // Whether a program we start sees descriptor `fd`: it looks in its own /proc/self/fd.
    let child_sees = |fd: i32| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("test -e /proc/self/fd/{fd}"))
            .status()
            .expect("sh runs")
            .success()
    };
    let with_cloexec = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    assert!(
        !child_sees(with_cloexec.as_raw_fd()),
        "Socket::new sets SOCK_CLOEXEC"
    );
    let without = Socket::new_raw(Domain::IPV4, Type::STREAM, None).expect("socket");
    assert!(
        child_sees(without.as_raw_fd()),
        "new_raw does not, and the child inherits it"
    );
}

#[test]
fn python_makes_the_same_call_with_protocol_0() {
    let Some(python) = python3() else {
        testkit::skip(
            "python_makes_the_same_call_with_protocol_0",
            "python3 is not installed",
        );
        return;
    };
    let Some(traced) = strace::trace_network(
        "python_makes_the_same_call_with_protocol_0",
        &python,
        [
            "-c",
            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.close()",
        ],
        LIMIT,
    ) else {
        return;
    };
    let first = traced
        .calls
        .iter()
        .find(|c| c.name == "socket" && c.line.contains("AF_INET,"))
        .expect("python calls socket()");
    assert!(
        first
            .line
            .starts_with("socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = "),
        "{}",
        first.line
    );
    // Closed by the script, the socket sees no other network call.
    let named = |traced: &strace::Traced, name: &str| traced.calls.iter().any(|c| c.name == name);
    assert!(!named(&traced, "getsockname"), "{:?}", traced.calls);

    // Left for Python to close, it is described in a (hidden) ResourceWarning first.
    let Some(unclosed) = strace::trace_network(
        "python_makes_the_same_call_with_protocol_0",
        &python,
        [
            "-c",
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM)",
        ],
        LIMIT,
    ) else {
        return;
    };
    assert!(
        named(&unclosed, "getsockname") && named(&unclosed, "getpeername"),
        "{:?}",
        unclosed.calls
    );
}

#[test]
fn the_seeds_sock_stram_is_a_typo_python_rejects() {
    let Some(python) = python3() else {
        testkit::skip(
            "the_seeds_sock_stram_is_a_typo_python_rejects",
            "python3 is not installed",
        );
        return;
    };
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_STRAM)",
        ])
        .output()
        .expect("python runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("AttributeError") && stderr.contains("SOCK_STRAM"),
        "{stderr}"
    );
}

#[test]
fn sockets_beyond_the_descriptor_limit_fail_with_emfile() {
    let Some(prlimit) = testkit::which("prlimit") else {
        testkit::skip(
            "sockets_beyond_the_descriptor_limit_fail_with_emfile",
            "prlimit is not installed",
        );
        return;
    };
    let mut command = std::process::Command::new(prlimit);
    command
        .arg("--nofile=5")
        .arg(step1())
        .args(["--count", "3"]);
    let out = testkit::process::run_command(command, LIMIT);
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(out.says("<- 4"));
    assert!(out.says("<- -1 EMFILE (Too many open files)"));
    let errors: Vec<&str> = out.lines_with("error:").collect();
    assert_eq!(errors.len(), 1, "one error line: {}", out.output);
    assert!(errors[0].starts_with("error: socket("), "{}", errors[0]);
    assert!(!out.says("panicked"));
}
