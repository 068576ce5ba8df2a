//! Lesson 4's demo, and its narration held to what strace sees.

mod common;

use testkit::process::{Finished, run};
use testkit::strace;

use common::{LIMIT, results_of, step4, unique_path};

fn demo(args: &[&str]) -> Finished {
    let mut all = vec!["--demo"];
    all.extend_from_slice(args);
    let out = run(step4(), &all, LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.output);
    out
}

#[test]
fn the_demo_accepts_its_clients_while_the_listener_keeps_listening() {
    let out = demo(&[]);
    assert_eq!(out.lines_with("server    -> accept4(3, ").count(), 2);
    assert!(out.says("the server's thread is S (sleeping), inside accept4"));
    for n in 1..=2 {
        assert!(out.says(&format!(
            "a new socket for client {n}; the listening socket 3 still listens"
        )));
        assert!(out.says(&format!(
            "client {n}  <- 27: \"hello from step4, client {n}\\n\""
        )));
    }
    // Each client's own address (its getsockname) is the server's getpeername.
    let own = results_of(&out.output, "client.local_addr()");
    assert_eq!(own.len(), 2, "{}", out.output);
    assert_eq!(
        results_of(&out.output, "conn.peer_addr()"),
        own,
        "{}",
        out.output
    );
    let path = unique_path("demo");
    let path_arg = path.to_str().expect("utf-8");
    let unix = demo(&["--family", "unix", "--path", path_arg, "--max-clients", "3"]);
    assert_eq!(unix.lines_with("a new socket for client").count(), 3);
    assert_eq!(
        results_of(&unix.output, "conn.peer_addr()"),
        ["(unnamed)"; 3]
    );
    assert!(!path.exists());
}

#[test]
fn the_narration_shows_every_network_call_strace_sees() {
    let path = unique_path("strace");
    let path_arg = path.to_str().expect("utf-8").to_owned();
    for args in [
        vec!["--demo"],
        vec!["--demo", "--family", "unix", "--path", &path_arg],
    ] {
        let Some(traced) = strace::trace_network("step4 vs strace", step4(), &args, LIMIT) else {
            return;
        };
        assert_eq!(traced.run.code, Some(0), "{}", traced.run.output);
        let narrated = strace::narrated_network_calls(&traced.run.output);
        let seen: Vec<String> = traced.calls.iter().map(|c| c.name.clone()).collect();
        assert_eq!(narrated, seen, "{args:?}\n{}", traced.run.output);
        // The kernel's view of the descriptors: accept4 on the listening socket 3, the
        // greeting sent on the new socket accept4 returned, the one the server then asks
        // getpeername about. (Its number is 4 or 5: under strace the demo's client may
        // create its own socket first.)
        assert!(
            traced
                .calls
                .iter()
                .any(|c| c.line.starts_with("accept4(3,")),
            "{:?}",
            traced.calls
        );
        let accepted = traced
            .calls
            .iter()
            .find_map(|c| c.line.strip_prefix("getpeername("))
            .and_then(|rest| rest.split(',').next())
            .expect("getpeername on the accepted socket");
        assert_ne!(accepted, "3", "a new socket, not the listening one");
        let greeting = format!("sendto({accepted}, \"hello from step4, client 1\\n\"");
        assert!(
            traced.calls.iter().any(|c| c.line.starts_with(&greeting)),
            "{greeting}: {:?}",
            traced.calls
        );
    }
    assert!(!path.exists());
}
