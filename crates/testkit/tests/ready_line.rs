//! Every server says, in the line that says it is ready, where it listens and which process it
//! is: `ready: listening on 127.0.0.1:40321 (pid 1234)`. The lessons send the learner to
//! `/proc/PID/...` and `strace -p PID`, and `pgrep` cuts process names at 15 characters
//! (`step10_many_clients` is 19).

use std::time::Duration;

use testkit::process::{Running, ready_address, ready_pid};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn every_server_prints_its_pid_in_its_ready_line() {
    let servers: [(&str, &[&str]); 7] = [
        ("step2_bind", &["--port", "0", "--hold"]),
        ("step3_listen", &["--port", "0"]),
        ("step4_accept", &["--port", "0"]),
        ("step5_recv_send", &["--port", "0"]),
        ("step6_close", &["--port", "0"]),
        ("step8_udp", &["--port", "0"]),
        ("step10_many_clients", &["--port", "0"]),
    ];
    for (step, args) in servers {
        let mut server = Running::start(&testkit::bin(step), args);
        let line = server.expect_line("ready: ", LIMIT);
        assert_eq!(
            ready_pid(&line),
            Some(server.pid()),
            "{step}: the ready line gives the server's pid: {line}"
        );
        let address = ready_address(&line).unwrap_or_default();
        assert!(
            address.starts_with("127.0.0.1:") && !address.ends_with(":0"),
            "{step}: the ready line gives the address before the pid: {line}"
        );
    }
}

#[test]
fn the_ready_line_parses_for_every_family() {
    for (line, address) in [
        (
            "ready: listening on 127.0.0.1:40321 (pid 1234)",
            "127.0.0.1:40321",
        ),
        (
            "server    ready: listening on [::1]:40321 (pid 7)",
            "[::1]:40321",
        ),
        (
            "ready: bound to /tmp/course/echo.sock (pid 99)",
            "/tmp/course/echo.sock",
        ),
    ] {
        assert_eq!(ready_address(line), Some(address), "{line}");
        assert!(ready_pid(line).is_some(), "{line}");
    }
    assert_eq!(ready_pid("ready: listening on 127.0.0.1:1"), None);
}
