//! Private network namespaces, for the parts of the demo that need a peer who can vanish.
//!
//! On loopback a peer never vanishes: its kernel answers every packet. To show silence, the
//! demo builds a small network of its own: two private network namespaces ("here" and
//! "peer"), joined by a veth pair (a virtual cable). Nothing else can reach them, and they
//! reach nothing else.
//!
//! Each namespace belongs to a thread of this process that called
//! `unshare(CLONE_NEWNET)`: a socket belongs to the namespace its `socket()` call was made in,
//! whichever thread uses it afterwards, and a program started from that thread (`ip`) runs
//! in it too. The namespaces have no name: the kernel removes each one as soon as its thread
//! has ended and its last socket is closed, whatever way this program ends (even killed),
//! so nothing is left behind. Creating one needs root (CAP_SYS_ADMIN); [`Wire::new`] says
//! why in one line when it cannot.

use std::process::Command;
use std::sync::mpsc::{self, Sender};
use std::thread::{self, JoinHandle};

use nix::sched::{CloneFlags, unshare};

/// The two ends of the demo's cable: addresses and the fixed hardware addresses of their
/// interfaces (fixed so that each side can know the other without ARP).
pub const HERE: &str = "10.13.0.1";
pub const PEER: &str = "10.13.0.2";
/// An address on the cable that nobody has: the peer's kernel drops what is sent to it, as a
/// firewall that drops packets would.
pub const NOBODY: &str = "10.13.0.3";
const HERE_MAC: &str = "02:00:00:00:13:01";
const PEER_MAC: &str = "02:00:00:00:13:02";

type Job = Box<dyn FnOnce() + Send>;

/// A private network namespace, held by a thread of its own that runs jobs in it.
pub struct Namespace {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// `/proc/PID/task/TID/ns/net`: the namespace as a file, for `ip ... netns PATH`.
    path: String,
}

impl Namespace {
    /// A thread in a new, empty network namespace (only a loopback interface, down).
    pub fn new() -> Result<Namespace, String> {
        let (jobs, incoming) = mpsc::channel::<Job>();
        let (ready, started) = mpsc::channel();
        let thread = thread::spawn(move || {
            let entered = unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|errno| errno.desc().to_owned())
                .and_then(|()| {
                    std::fs::read_link("/proc/thread-self")
                        .map_err(|e| e.to_string())
                        .map(|p| format!("/proc/{}/ns/net", p.display()))
                });
            let ok = entered.is_ok();
            let _ = ready.send(entered);
            if ok {
                for job in incoming {
                    job();
                }
            }
        });
        let path = started
            .recv()
            .map_err(|_| "the namespace's thread ended early".to_owned())?
            .map_err(|why| {
                format!("unshare(CLONE_NEWNET) failed ({why}): a network namespace needs root (CAP_SYS_ADMIN)")
            })?;
        Ok(Namespace {
            jobs: Some(jobs),
            thread: Some(thread),
            path,
        })
    }

    /// Runs `job` on the namespace's thread, so that the sockets it creates and the programs
    /// it starts are in this namespace, and returns what it returned.
    pub fn run<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> R {
        let (result, back) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = result.send(job());
        });
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .expect("the namespace's thread runs until the namespace is dropped");
        back.recv()
            .expect("a job panicked in the namespace's thread")
    }

    /// Runs `ip ARGS` in this namespace.
    pub fn ip(&self, args: &str) -> Result<(), String> {
        let args = args.to_owned();
        self.run(move || ip(&args))
    }

    /// Sets a sysctl of this namespace (`net.ipv4.tcp_syn_retries`): network sysctls are per
    /// namespace, and this one's belong to no one else.
    pub fn sysctl(&self, name: &str, value: &str) -> Result<(), String> {
        let file = format!("/proc/sys/{}", name.replace('.', "/"));
        let value = value.to_owned();
        self.run(move || std::fs::write(&file, value).map_err(|e| format!("{file}: {e}")))
    }
}

impl Drop for Namespace {
    /// Ends the thread; the kernel removes the namespace once no socket is left in it.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn ip(args: &str) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two private namespaces joined by a cable: `here` at 10.13.0.1, `peer` at 10.13.0.2.
pub struct Wire {
    pub here: Namespace,
    pub peer: Namespace,
}

impl Wire {
    /// Builds the little network; `Err` says in one line why it cannot be built here.
    pub fn new() -> Result<Wire, String> {
        let here = Namespace::new()?;
        let peer = Namespace::new()?;
        here.ip(&format!(
            "link add vhere address {HERE_MAC} type veth peer name vpeer address {PEER_MAC} netns {}",
            peer.path
        ))?;
        for (side, name, own, other, other_mac) in [
            (&here, "vhere", HERE, PEER, PEER_MAC),
            (&peer, "vpeer", PEER, HERE, HERE_MAC),
        ] {
            side.ip("link set lo up")?;
            side.ip(&format!("addr add {own}/24 dev {name}"))?;
            side.ip(&format!("link set {name} up"))?;
            side.ip(&format!(
                "neigh replace {other} lladdr {other_mac} dev {name} nud permanent"
            ))?;
        }
        // NOBODY's packets go to the peer, whose kernel drops them: it does not forward.
        here.ip(&format!(
            "neigh replace {NOBODY} lladdr {PEER_MAC} dev vhere nud permanent"
        ))?;
        peer.sysctl("net.ipv4.ip_forward", "0")?;
        Ok(Wire { here, peer })
    }

    /// The peer pulls its end of the cable out: its interface goes down, and from now on
    /// nothing from `here` reaches it and nothing comes back. No FIN, no reset.
    pub fn pull_cable(&self) -> Result<(), String> {
        self.peer.ip("link set vpeer down")
    }
}
