//! What lesson 2 claims about bind, checked against the program and the kernel.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use testkit::process::{Running, run, run_command};
use testkit::strace;

const LIMIT: Duration = Duration::from_secs(20);

fn step2() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step2_bind"))
}

/// A socket path of this test process's own, so that parallel runs do not collide.
fn unique_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("step2-test-{}-{name}.sock", std::process::id()))
}

fn error_lines(output: &str) -> Vec<&str> {
    output.lines().filter(|l| l.starts_with("error:")).collect()
}

#[test]
fn port_0_lets_the_kernel_choose_from_the_local_port_range() {
    let out = run(step2(), ["--port", "0"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    let got = out
        .output
        .lines()
        .find_map(|l| l.strip_prefix("<- 127.0.0.1:"))
        .expect("getsockname shows the address");
    let port: u32 = got.parse().expect("a port number");
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").expect("sysctl");
    let bounds: Vec<u32> = range
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect();
    assert!(
        port >= bounds[0] && port <= bounds[1],
        "port {port} is in {range}"
    );
    assert!(out.says(&format!(
        "it chose {port} from net.ipv4.ip_local_port_range"
    )));
}

#[test]
fn a_second_bind_to_a_held_address_fails_with_eaddrinuse_in_one_line() {
    let mut first = Running::start(step2(), ["--port", "0", "--hold"]);
    let address = first.wait_ready(LIMIT);
    let port = address.rsplit(':').next().expect("a port");
    let second = run(step2(), ["--port", port], LIMIT);
    assert_eq!(second.code, Some(1), "{}", second.output);
    assert!(second.says("<- -1 EADDRINUSE (Address already in use)"));
    let errors = error_lines(&second.output);
    assert_eq!(errors.len(), 1, "{}", second.output);
    assert!(errors[0].contains(&format!("bind(3, 127.0.0.1:{port}) failed with EADDRINUSE")));
    assert!(errors[0].contains("--port") && errors[0].ends_with("see lessons/02-bind.md"));
    first.send_stdin("\n"); // Enter: at end of input it would keep waiting for a signal
    assert_eq!(first.finish(LIMIT).code, Some(0));
    // Closed, the address is free again at once: this socket never connected.
    let third = run(step2(), ["--port", port], LIMIT);
    assert_eq!(third.code, Some(0), "{}", third.output);
}

#[test]
fn with_so_reuseaddr_on_both_two_sockets_share_a_port_until_one_listens() {
    let mut first = Running::start(step2(), ["--port", "0", "--hold", "--reuse-address"]);
    let address = first.wait_ready(LIMIT);
    let port = address.rsplit(':').next().expect("a port").to_owned();
    let shared = run(step2(), ["--port", &port, "--reuse-address"], LIMIT);
    assert_eq!(
        shared.code,
        Some(0),
        "both with SO_REUSEADDR: {}",
        shared.output
    );
    let without = run(step2(), ["--port", &port], LIMIT);
    assert_eq!(
        without.code,
        Some(1),
        "the second without it: {}",
        without.output
    );
    first.send_stdin("\n"); // Enter: at end of input it would keep waiting for a signal
    first.finish(LIMIT);

    // Once one of them listens, SO_REUSEADDR no longer helps.
    let new = |reuse: bool| {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        s.set_reuse_address(reuse).expect("SO_REUSEADDR");
        s
    };
    let listening = new(true);
    listening
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().expect("addr").into())
        .expect("bind");
    let address = listening.local_addr().expect("addr");
    listening.listen(1).expect("listen");
    let late = new(true);
    let error = late.bind(&address).expect_err("a listener holds the port");
    assert_eq!(error.raw_os_error(), Some(98), "EADDRINUSE: {error}");
}

#[test]
fn an_address_the_machine_does_not_have_fails_with_eaddrnotavail() {
    let out = run(step2(), ["--host", "203.0.113.7"], LIMIT);
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(out.says("<- -1 EADDRNOTAVAIL (Cannot assign requested address)"));
    assert_eq!(error_lines(&out.output).len(), 1);
}

fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1024)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

#[test]
fn a_privileged_port_is_refused_with_eacces_for_a_normal_user() {
    let start = unprivileged_port_start();
    if start <= 80 {
        testkit::skip(
            "privileged port",
            "ip_unprivileged_port_start makes port 80 open to all",
        );
        return;
    }
    let mut command = Command::new(step2());
    command.args(["--port", "80"]);
    if is_root() {
        use std::os::unix::process::CommandExt;
        command.uid(65534).gid(65534);
    }
    let out = run_command(command, LIMIT);
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(
        out.says("<- -1 EACCES (Permission denied)"),
        "{}",
        out.output
    );
}

#[test]
fn root_may_bind_a_privileged_port() {
    if !is_root() {
        testkit::skip("root_may_bind_a_privileged_port", "not running as root");
        return;
    }
    let start = unprivileged_port_start();
    // Find a privileged port nobody uses: try a few, bounded.
    let bound = (start.saturating_sub(30)..start).rev().find_map(|port| {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
        s.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .ok()?;
        Some(port)
    });
    assert!(bound.is_some(), "root binds a port below {start}");
}

#[test]
fn the_demo_shows_each_failure_and_the_nobody_run_gets_eacces() {
    let out = run(step2(), ["--demo"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    let errors: Vec<&str> = out.lines_with("<- -1 ").collect();
    assert!(errors[0].contains("EADDRINUSE"), "section 2: {errors:?}");
    assert!(
        errors[1].contains("EADDRINUSE"),
        "section 3, once one listens: {errors:?}"
    );
    assert!(errors[2].contains("EADDRNOTAVAIL"), "section 4: {errors:?}");
    if unprivileged_port_start() > 80 {
        assert!(errors[3].contains("EACCES"), "section 5: {errors:?}");
    }
    assert!(out.says("Linux lets both have the port, because neither listens yet"));
    assert!(
        errors.last().expect("a unix error").contains("EADDRINUSE"),
        "section 6"
    );
    assert!(out.says("is still there after close: binding it again fails"));
    // The refused unix bind gets the hint about paths, not the one about ports.
    let lines: Vec<&str> = out.output.lines().collect();
    let unix_refusal = lines
        .iter()
        .rposition(|l| l.starts_with("<- -1 EADDRINUSE"))
        .expect("section 6's refusal");
    assert!(
        lines[unix_refusal + 1].starts_with("   something already has that path"),
        "{}",
        lines[unix_refusal + 1]
    );
    // The printed Rust is the demo's own code: each socket closed by its own name.
    for dropped in ["first", "second", "reuse_a", "reuse_b", "reuse_c"] {
        assert!(
            out.says(&format!("socket2: drop({dropped})")),
            "{dropped}: {}",
            out.output
        );
    }
}

#[test]
fn a_unix_bind_creates_a_socket_file_that_close_leaves_behind() {
    use std::os::unix::fs::FileTypeExt;
    let path = unique_path("kept");
    let _ = std::fs::remove_file(&path);
    let path_arg = path.to_str().expect("utf-8 path");

    let mut held = Running::start(step2(), ["--family", "unix", "--path", path_arg, "--hold"]);
    assert_eq!(held.wait_ready(LIMIT), path_arg);
    let meta = std::fs::symlink_metadata(&path).expect("bind created the file");
    assert!(meta.file_type().is_socket(), "it is a socket file");
    held.send_stdin("\n"); // Enter: at end of input it would keep waiting for a signal
    assert_eq!(held.finish(LIMIT).code, Some(0));
    assert!(!path.exists(), "without --keep-file the program removes it");

    let kept = run(
        step2(),
        ["--family", "unix", "--path", path_arg, "--keep-file"],
        LIMIT,
    );
    assert_eq!(kept.code, Some(0), "{}", kept.output);
    assert!(path.exists(), "close does not remove the file");
    let again = run(step2(), ["--family", "unix", "--path", path_arg], LIMIT);
    assert_eq!(again.code, Some(1), "{}", again.output);
    assert!(
        again.says("EADDRINUSE"),
        "a left-over file refuses the bind"
    );
    std::fs::remove_file(&path).expect("remove the left-over file");
    let fresh = run(step2(), ["--family", "unix", "--path", path_arg], LIMIT);
    assert_eq!(
        fresh.code,
        Some(0),
        "after rm the bind works: {}",
        fresh.output
    );
}

#[test]
fn ctrl_c_stops_cleanly_and_removes_the_socket_file() {
    let path = unique_path("ctrl-c");
    let _ = std::fs::remove_file(&path);
    let path_arg = path.to_str().expect("utf-8 path");
    let mut held = Running::start(step2(), ["--family", "unix", "--path", path_arg, "--hold"]);
    held.wait_ready(LIMIT);
    assert!(path.exists());
    held.signal(2);
    // Standard input stays open until the handler has spoken, so only Ctrl-C ends the run.
    held.expect_line("Ctrl-C: stopping", LIMIT);
    held.expect_line(&format!("-> unlink(\"{path_arg}\")"), LIMIT);
    let done = held.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert!(!path.exists(), "the handler removed the socket file");
}

#[test]
fn a_bound_socket_is_not_in_the_tcp_table_until_it_listens() {
    let mut held = Running::start(step2(), ["--port", "0", "--hold"]);
    let address: SocketAddr = held.wait_ready(LIMIT).parse().expect("an address");
    let listed = tutor::observe::tcp_sockets()
        .expect("the TCP table")
        .into_iter()
        .any(|e| e.local == address);
    assert!(
        !listed,
        "bound only: not in /proc/net/tcp, so ss -t does not show it"
    );
    held.send_stdin("\n"); // Enter: at end of input it would keep waiting for a signal
    held.finish(LIMIT);
}

#[test]
fn a_host_name_is_looked_up_first_and_an_empty_host_means_every_address() {
    let named = run(step2(), ["--host", "localhost"], LIMIT);
    assert_eq!(named.code, Some(0), "{}", named.output);
    assert!(named.says("-> getaddrinfo(\"localhost\")"));
    assert!(named.says("-> bind(3, 127.0.0.1:0)"));
    let every = run(step2(), ["--host", ""], LIMIT);
    assert_eq!(every.code, Some(0), "{}", every.output);
    assert!(every.says("-> bind(3, 0.0.0.0:0)"));
    let v6 = run(step2(), ["--family", "ipv6"], LIMIT);
    assert_eq!(v6.code, Some(0), "{}", v6.output);
    assert!(v6.says("-> bind(3, [::1]:0)"));
}

#[test]
fn a_unix_path_longer_than_sun_path_is_a_usage_error() {
    let long = format!("/tmp/{}.sock", "x".repeat(120));
    let out = run(step2(), ["--family", "unix", "--path", &long], LIMIT);
    assert_eq!(out.code, Some(2), "{}", out.output);
    assert!(out.says("a unix socket path holds at most 107 bytes"));
}

#[test]
fn the_narration_shows_every_network_call_strace_sees() {
    for args in [
        vec!["--port", "0", "--reuse-address"],
        vec!["--family", "ipv6", "--type", "dgram"],
    ] {
        let Some(traced) = strace::trace_network("step2 vs strace", step2(), &args, LIMIT) else {
            return;
        };
        assert_eq!(traced.run.code, Some(0), "{}", traced.run.output);
        let narrated = strace::narrated_network_calls(&traced.run.output);
        let seen: Vec<String> = traced.calls.iter().map(|c| c.name.clone()).collect();
        assert_eq!(narrated, seen, "{args:?}");
    }
}

#[test]
fn tcp_and_udp_have_separate_ports() {
    let tcp = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    tcp.bind(&"127.0.0.1:0".parse::<SocketAddr>().expect("addr").into())
        .expect("bind");
    let port = tcp
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet")
        .port();
    let out = run(
        step2(),
        ["--type", "dgram", "--port", &port.to_string()],
        LIMIT,
    );
    assert_eq!(
        out.code,
        Some(0),
        "a UDP socket takes the TCP socket's port: {}",
        out.output
    );
    let tcp_again = run(step2(), ["--port", &port.to_string()], LIMIT);
    assert_eq!(tcp_again.code, Some(1), "while a second TCP socket cannot");
}

// ---- issue 8: files, signals and standard streams ----

#[test]
fn keep_file_keeps_the_file_on_ctrl_c_too() {
    let path = unique_path("keep-ctrl-c");
    let _ = std::fs::remove_file(&path);
    let path_arg = path.to_str().expect("utf-8 path");
    let mut held = Running::start(
        step2(),
        [
            "--family",
            "unix",
            "--path",
            path_arg,
            "--hold",
            "--keep-file",
        ],
    );
    assert_eq!(held.wait_ready(LIMIT), path_arg);
    held.signal(2);
    held.expect_line("Ctrl-C: stopping", LIMIT);
    let done = held.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert!(!done.says("-> unlink("), "{}", done.output);
    assert!(path.exists(), "--keep-file: the file stays, Ctrl-C or not");
    std::fs::remove_file(&path).expect("clean up");
}

#[test]
fn a_file_put_in_place_of_the_socket_is_left_when_the_program_ends() {
    let path = unique_path("replaced");
    let _ = std::fs::remove_file(&path);
    let path_arg = path.to_str().expect("utf-8 path");
    let mut held = Running::start(step2(), ["--family", "unix", "--path", path_arg, "--hold"]);
    assert_eq!(held.wait_ready(LIMIT), path_arg);
    std::fs::remove_file(&path).expect("the user removes the socket file");
    std::fs::write(&path, "mine\n").expect("and saves a file of their own there");
    held.send_stdin("\n");
    let done = held.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert!(
        done.says("in place: it is not the socket this program bound"),
        "{}",
        done.output
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("still there"),
        "mine\n"
    );
    std::fs::remove_file(&path).expect("clean up");
}

#[test]
fn hold_at_end_of_input_waits_for_a_signal() {
    let mut held = Running::start(step2(), ["--port", "0", "--hold"]);
    held.wait_ready(LIMIT);
    held.close_stdin(); // as `</dev/null` or a background job
    held.expect_line("standard input ended", LIMIT);
    // Still holding the socket: only a signal ends it now.
    held.signal(15);
    held.expect_line("SIGTERM: stopping.", LIMIT);
    let done = held.finish(LIMIT);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert!(!done.says("-> close(3)"), "{}", done.output);
}

/// A standard error whose reader has gone: every write to it fails with EPIPE.
fn broken_stderr() -> std::process::Stdio {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    writer.into()
}

#[test]
fn a_broken_stderr_does_not_turn_an_error_into_a_panic() {
    // A socket error: exit 1, not 101.
    let taken = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    taken
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    let port = taken
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("ip")
        .port()
        .to_string();
    let mut command = Command::new(step2());
    command
        .args(["--port", &port])
        .stdout(std::process::Stdio::null())
        .stderr(broken_stderr());
    let code = command.status().expect("runs").code();
    assert_eq!(
        code,
        Some(1),
        "a socket error exits 1 even when stderr is gone"
    );
    // A usage error: exit 2.
    let mut command = Command::new(step2());
    command
        .args(["--family", "ipx"])
        .stdout(std::process::Stdio::null())
        .stderr(broken_stderr());
    assert_eq!(command.status().expect("runs").code(), Some(2));
}

// ---- issue 8: messages that do not mislead ----

#[test]
fn a_path_with_control_characters_is_printed_escaped_in_one_line() {
    let path = format!("/nonexistent-{}/evil\x1b[2J\nline.sock", std::process::id());
    let mut command = Command::new(step2());
    command.args(["--family", "unix", "--path", &path]);
    let out = testkit::process::run_separately(command, LIMIT);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {:?}", out.stderr);
    assert!(
        !out.stderr.contains('\x1b') && !out.stdout.contains('\x1b'),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("evil\\u{1b}[2J\\nline.sock"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("ENOENT"), "{}", out.stderr);
}

#[test]
fn host_accepts_the_bracketed_form_the_programs_print() {
    if Socket::new(Domain::IPV6, Type::STREAM, None).is_err() {
        testkit::skip("[::1]", "no IPv6 on this machine");
        return;
    }
    let out = run(step2(), ["--family", "ipv6", "--host", "[::1]"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(out.says("-> bind(3, [::1]:0)"), "{}", out.output);
}

#[test]
fn an_ipv6_zone_is_the_scope_id_or_one_clear_refusal() {
    if Socket::new(Domain::IPV6, Type::STREAM, None).is_err() {
        testkit::skip("zone", "no IPv6 on this machine");
        return;
    }
    // lo is interface 1 on Linux; by name or by number, the zone becomes the scope id.
    for host in ["fe80::1%lo", "fe80::1%1"] {
        let out = run(step2(), ["--family", "ipv6", "--host", host], LIMIT);
        assert!(
            out.says("-> bind(3, [fe80::1%1]:0)"),
            "{host}: {}",
            out.output
        );
        assert!(!out.says("already bound"), "{host}: {}", out.output);
    }
    let refused = testkit::process::fails_in_one_line(
        step2(),
        &["--family", "ipv6", "--host", "fe80::1%no-such-if0"],
        2,
    );
    assert!(
        refused.contains("no network interface named 'no-such-if0'"),
        "{refused}"
    );
}

#[test]
fn eacces_on_a_unix_path_is_about_the_directorys_permissions() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let euid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    if euid.is_ok_and(|uid| uid != 0) {
        testkit::skip("unix eacces", "needs root to run a copy as user nobody");
        return;
    }
    // A directory only root may write to; the program runs as nobody.
    let dir = std::env::temp_dir().join(format!("step2-test-{}-locked", std::process::id()));
    let _ = std::fs::create_dir(&dir);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = dir.join("app.sock");
    let mut command = Command::new(step2());
    command
        .args(["--family", "unix", "--path", path.to_str().expect("utf-8")])
        .uid(65534)
        .gid(65534);
    let out = testkit::process::run_separately(command, LIMIT);
    std::fs::remove_dir(&dir).expect("clean up");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("EACCES"), "{}", out.stderr);
    assert!(out.stderr.contains("directory"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("--port"),
        "not about ports: {}",
        out.stderr
    );
}
