//! What lesson 13 claims about silent and dead peers, checked against the program and the
//! kernel. The scenes that need private network namespaces are skipped, with the reason,
//! where this machine cannot create them; where it can, a program that fails to is an error.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::process::{Finished, run, run_command};

const LIMIT: Duration = Duration::from_secs(30);

fn step13() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_step13_dead_peers"))
}

/// Why network namespaces with a veth pair cannot be made here, if they cannot: checked with
/// the system's own tools, independently of the program.
fn netns_unavailable() -> Option<String> {
    if testkit::which("ip").is_none() {
        return Some("ip (iproute2) is not installed".into());
    }
    let Some(unshare) = testkit::which("unshare") else {
        return Some("unshare (util-linux) is not installed".into());
    };
    let mut probe = Command::new(unshare);
    probe.args([
        "-n", "ip", "link", "add", "t0", "type", "veth", "peer", "name", "t1",
    ]);
    let out = run_command(probe, LIMIT);
    (out.code != Some(0)).then(|| {
        format!(
            "no private network namespace with a veth pair here (not root?): {}",
            out.output.trim()
        )
    })
}

/// Runs one scene that needs namespaces, or says why it cannot run.
fn run_in_netns(test: &str, args: &[&str]) -> Option<Finished> {
    if let Some(why) = netns_unavailable() {
        testkit::skip(test, &why);
        return None;
    }
    let out = run(step13(), args, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    assert!(
        !out.says("skipped:"),
        "namespaces work here, the program must use them:\n{}",
        out.output
    );
    Some(out)
}

/// Each time the call written `rust` was narrated: what it returned (the `<-` line, without
/// the actor's name) and the seconds of the note below it ("after N.N s"; -1 if none).
fn results_of(out: &Finished, rust: &str) -> Vec<(String, f64)> {
    let lines: Vec<&str> = out.output.lines().collect();
    let found: Vec<(String, f64)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.ends_with(&format!("socket2: {rust}")))
        .map(|(at, _)| {
            let result = lines[at + 1].split("<- ").nth(1).unwrap_or("").to_owned();
            let note = lines.get(at + 2).copied().unwrap_or("");
            let seconds = note
                .split("after ")
                .nth(1)
                .and_then(|rest| rest.split(" s").next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(-1.0);
            (result, seconds)
        })
        .collect();
    assert!(!found.is_empty(), "{rust} is not narrated:\n{}", out.output);
    found
}

/// The interfaces of this machine's own network namespace, by name, and its named network
/// namespaces.
fn root_links() -> (BTreeSet<String>, String) {
    let ip = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().expect("ip runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let links = ip(&["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(str::to_owned))
        .collect();
    (links, ip(&["netns", "list"]))
}

#[test]
fn a_connect_nobody_answers_ends_in_etimedout_after_syn_retries() {
    let before = testkit::which("ip").map(|_| root_links());
    let Some(out) = run_in_netns(
        "a_connect_nobody_answers_ends_in_etimedout_after_syn_retries",
        &["--scene", "connect"],
    ) else {
        return;
    };
    assert!(out.says("-> connect(3, 10.13.0.3:80)"), "{}", out.output);
    let [(result, seconds)] = &results_of(&out, "socket.connect(&nobody)")[..] else {
        panic!("one connect: {}", out.output);
    };
    assert_eq!(result, "-1 ETIMEDOUT (Connection timed out)");
    // tcp_syn_retries = 1: the SYN waits 1 s, its one retry 2 s.
    assert!((2.5..5.0).contains(seconds), "gave up after {seconds} s");
    // The namespaces and their cable were the program's own: this machine's interfaces are
    // the same as before (the cable's ends never appeared here, and nothing is left).
    assert_eq!(before, Some(root_links()));
}

#[test]
fn a_vanished_peer_is_etimedout_for_user_timeout_and_keepalive_eagain_for_a_read_timeout() {
    let test =
        "a_vanished_peer_is_etimedout_for_user_timeout_and_keepalive_eagain_for_a_read_timeout";
    let Some(out) = run_in_netns(test, &["--scene", "vanish"]) else {
        return;
    };
    assert!(
        out.says("here      -> setsockopt(5, SOL_TCP, TCP_KEEPCNT, 2)"),
        "{}",
        out.output
    );
    const ETIMEDOUT: &str = "-1 ETIMEDOUT (Connection timed out)";
    const EAGAIN: &str = "-1 EAGAIN (Resource temporarily unavailable)";
    // Data sent into the silence: the kernel gives up after TCP_USER_TIMEOUT (1 s).
    let sent = results_of(&out, "(&sender).read(&mut buf)");
    assert_eq!(sent[0].0, ETIMEDOUT);
    assert!((0.9..2.5).contains(&sent[0].1), "user timeout: {sent:?}");
    // The read timeout (500 ms) is EAGAIN; keepalive (1 s idle, then 2 probes 1 s apart)
    // gives up about 3 s after the cable was pulled.
    let reads = results_of(&out, "(&watched).read(&mut buf)");
    assert_eq!(reads.len(), 4, "{reads:?}");
    assert_eq!(reads[1].0, EAGAIN);
    assert!((0.4..1.2).contains(&reads[1].1), "read timeout: {reads:?}");
    assert_eq!(reads[2].0, ETIMEDOUT);
    assert!((2.5..6.0).contains(&reads[2].1), "keepalive: {reads:?}");
    // After ETIMEDOUT the connection is closed: recv returns 0.
    assert_eq!(reads[3].0, "0: \"\"");
    // The connection without keepalive still has no error, after the other one died.
    let lines: Vec<&str> = out.output.lines().collect();
    let take_error = lines
        .iter()
        .position(|l| l.ends_with("plain.take_error()"))
        .expect("the plain connection is asked for its error");
    assert_eq!(lines[take_error + 1], "here      <- 0: no pending error");
    assert_eq!(
        lines[take_error + 4],
        "here      <- -1 EAGAIN (Resource temporarily unavailable)",
        "{}",
        out.output
    );
}

#[test]
fn more_syn_retries_and_keepalive_times_take_longer_by_the_rule() {
    let test = "more_syn_retries_and_keepalive_times_take_longer_by_the_rule";
    if let Some(why) = netns_unavailable() {
        testkit::skip(test, &why);
        return;
    }
    // Both at once: 7 s and 5 s.
    let connect = std::thread::spawn(|| {
        run_in_netns(test, &["--scene", "connect", "--syn-retries", "2"]).expect("namespaces")
    });
    let vanish =
        run_in_netns(test, &["--scene", "vanish", "--keepintvl", "2"]).expect("namespaces");
    let connect = connect.join().expect("the connect run");
    // Two retries: 1 + 2 + 4 s.
    let gave_up = results_of(&connect, "socket.connect(&nobody)")[0].1;
    assert!(
        (6.5..9.5).contains(&gave_up),
        "connect gave up after {gave_up} s"
    );
    // 1 s idle, then 2 probes 2 s apart: 5 s.
    let keepalive = results_of(&vanish, "(&watched).read(&mut buf)")[2].clone();
    assert_eq!(keepalive.0, "-1 ETIMEDOUT (Connection timed out)");
    assert!(
        (4.5..8.0).contains(&keepalive.1),
        "keepalive: {keepalive:?}"
    );
}

#[test]
fn a_new_socket_has_keepalive_off_and_the_kernels_default_times() {
    let out = run(step13(), ["--scene", "defaults"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    let sysctl = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .expect("the sysctl is readable")
            .trim()
            .to_owned()
    };
    let lines: Vec<&str> = out.output.lines().collect();
    let answer = |rust: &str| {
        let at = lines
            .iter()
            .position(|l| l.ends_with(rust))
            .unwrap_or_else(|| panic!("{rust} is narrated:\n{}", out.output));
        lines[at + 1]
    };
    assert_eq!(answer("socket.keepalive()"), "<- false");
    let idle = sysctl("tcp_keepalive_time");
    assert_eq!(answer("socket.tcp_keepalive_time()"), format!("<- {idle}s"));
    let intvl = sysctl("tcp_keepalive_intvl");
    assert_eq!(
        answer("socket.tcp_keepalive_interval()"),
        format!("<- {intvl}s")
    );
    let probes = sysctl("tcp_keepalive_probes");
    assert_eq!(
        answer("socket.tcp_keepalive_retries()"),
        format!("<- {probes}")
    );
    assert_eq!(answer("socket.tcp_user_timeout()"), "<- none");
    assert_eq!(answer("socket.read_timeout()"), "<- none");
    let retries: u32 = sysctl("tcp_syn_retries").parse().expect("a number");
    let give_up = (1u64 << (retries + 1)) - 1;
    assert!(
        out.says(&format!(
            "net.ipv4.tcp_syn_retries = {retries}: a connect nobody answers gives up after about {give_up} s"
        )),
        "{}",
        out.output
    );
}

#[test]
fn rust_ignores_sigpipe_a_c_program_dies_of_it_and_msg_nosignal_spares_it() {
    let out = run(step13(), ["--scene", "sigpipe"], LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    let mask = out
        .lines_with("/status: SigIgn: ")
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|m| u64::from_str_radix(m, 16).ok())
        .expect("the program shows its SigIgn mask");
    assert_ne!(mask & (1 << 12), 0, "SIGPIPE (bit 13) is ignored: {mask:x}");
    assert!(out.says("<- 5"), "the first send after the close is taken");
    let after_second = out
        .output
        .split("client.send(b\"second\")")
        .nth(1)
        .expect("a second send");
    assert!(
        after_second
            .trim_start()
            .starts_with("<- -1 EPIPE (Broken pipe)")
    );
    let after_third = out
        .output
        .split("client.send_with_flags(b\"third\", libc::MSG_NOSIGNAL)")
        .nth(1)
        .expect("a send with MSG_NOSIGNAL");
    assert!(
        after_third
            .trim_start()
            .starts_with("<- -1 EPIPE (Broken pipe)")
    );
    assert!(
        out.says("sh (a C program, SIGPIPE at its default): killed by SIGPIPE (signal 13)"),
        "{}",
        out.output
    );
    if testkit::python3().is_some() {
        for line in [
            "python3 (Python ignores SIGPIPE, as Rust does): exited 1: BrokenPipeError: [Errno 32] Broken pipe",
            "python3 with SIGPIPE back at its default: killed by SIGPIPE (signal 13)",
            "python3 with SIGPIPE at its default, sending with MSG_NOSIGNAL: exited 1: BrokenPipeError: [Errno 32] Broken pipe",
        ] {
            assert!(out.says(line), "{line}\n{}", out.output);
        }
    } else {
        testkit::skip("the python3 writers", "python3 is not installed");
    }
}

#[test]
fn a_program_started_from_rust_gets_sigpipe_back_at_its_default() {
    // This test is a Rust program too: it ignores SIGPIPE ...
    let own = std::fs::read_to_string("/proc/self/status").expect("readable");
    let mask_of = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .expect("a SigIgn line")
    };
    assert_ne!(mask_of(&own), 0, "SigIgn: {own}");
    assert_ne!(mask_of(&own) & (1 << 12), 0);
    // ... and a program it starts does not: std restores the default before exec.
    let child = Command::new("cat")
        .arg("/proc/self/status")
        .output()
        .expect("cat runs");
    let status = String::from_utf8_lossy(&child.stdout);
    assert_eq!(mask_of(&status) & (1 << 12), 0, "{status}");
}

#[test]
fn the_narration_shows_every_network_call_strace_sees() {
    let mut scenes = vec![vec!["--scene", "defaults"], vec!["--scene", "sigpipe"]];
    if netns_unavailable().is_none() {
        scenes.push(vec!["--scene", "vanish"]);
    }
    for args in scenes {
        let Some((out, calls)) = trace("the_narration_shows_every_network_call_strace_sees", &args)
        else {
            return;
        };
        assert_eq!(out.code, Some(0), "{}", out.output);
        let narrated = testkit::strace::narrated_network_calls(&out.output);
        assert_eq!(narrated, calls, "narrated vs traced for {args:?}");
        assert!(!calls.is_empty());
    }
}

/// Runs the program under `strace -f`, and returns the network calls of its own threads (not
/// of the programs it starts: `ip`, `sh`, `python3`, told apart by their execve).
fn trace(test: &str, args: &[&str]) -> Option<(Finished, Vec<String>)> {
    let Some(strace) = testkit::which("strace") else {
        testkit::skip(test, "strace is not installed (.ci/run installs it)");
        return None;
    };
    let log = std::env::temp_dir().join(format!(
        "step13-strace-{}-{}.log",
        std::process::id(),
        args.join("")
    ));
    let mut command = Command::new(strace);
    command
        .args(["-f", "-qq", "-e", "trace=%network,execve", "-o"])
        .arg(&log)
        .arg(step13())
        .args(args);
    let out = run_command(command, LIMIT);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if text.is_empty() && out.output.contains("ptrace") {
        testkit::skip(test, "strace cannot trace in this environment");
        return None;
    }
    let split = |line: &str| {
        let (pid, rest) = line.split_once(' ')?;
        Some((pid.to_owned(), rest.trim_start().to_owned()))
    };
    let main = text.lines().next().and_then(split).map(|(pid, _)| pid);
    let others: BTreeSet<String> = text
        .lines()
        .filter_map(split)
        .filter(|(pid, rest)| rest.starts_with("execve(") && Some(pid) != main.as_ref())
        .map(|(pid, _)| pid)
        .collect();
    let calls = text
        .lines()
        .filter_map(split)
        .filter(|(pid, _)| !others.contains(pid))
        .filter_map(|(_, rest)| {
            let name = rest.split('(').next()?.to_owned();
            testkit::strace::NETWORK_CALLS
                .contains(&name.as_str())
                .then_some(name)
        })
        .collect();
    Some((out, calls))
}
