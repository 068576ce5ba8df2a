//! Turn-taking for a `--demo` whose server and clients run in one process.
//!
//! Two threads printing at once would tell the story in a different order on every run. So
//! the server tells the demo's client each time it is about to wait in a call
//! ([`Turns::tell`]), and once that call has returned it waits for the client to say that
//! it has finished its move ([`Turns::wait_for_clients`]). The client, for its part, acts
//! only once the server's thread is asleep inside the call (the kernel's
//! `/proc/PID/task/TID/stat` says `S`, and `/proc/PID/task/TID/syscall` names the call), so
//! that even `strace` sees the calls in the order the narration prints them.
//!
//! Each step names its own moments (an enum implementing [`Moment`]). Outside the demo
//! nobody listens, and both of the server's calls do nothing. Nothing here makes a socket
//! call.

use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

/// How long either side waits for the other before giving up (the demo then fails).
const LIMIT: Duration = Duration::from_secs(10);

/// A point in a step's server loop, told just before the server makes a call.
pub trait Moment: Copy + Eq + Send + 'static {
    /// The number of the system call the server makes at this moment (`libc::SYS_accept4`),
    /// if it can wait in it.
    fn call(self) -> Option<i64>;
}

/// The server's side.
pub struct Turns<M: Moment> {
    tell: Option<Sender<M>>,
    done: Option<Receiver<()>>,
}

impl<M: Moment> Turns<M> {
    /// Outside the demo: nobody listens.
    pub fn none() -> Turns<M> {
        Turns {
            tell: None,
            done: None,
        }
    }

    /// The server's side and the client's side of a demo. Call it on the server's thread:
    /// the client watches the thread that called it.
    pub fn demo() -> (Turns<M>, Stage<M>) {
        let (tell, moments) = mpsc::channel();
        let (done, acknowledged) = mpsc::channel();
        let thread = Watched::open(rustix::thread::gettid().as_raw_nonzero().get());
        (
            Turns {
                tell: Some(tell),
                done: Some(acknowledged),
            },
            Stage {
                moments,
                done,
                server: thread,
            },
        )
    }

    /// Tells the client where the server is.
    pub fn tell(&self, moment: M) {
        if let Some(tell) = &self.tell {
            let _ = tell.send(moment);
        }
    }

    /// The pause for a narrated call at `moment`: tells the client just before the call, and
    /// waits for its move just after (`narrate!(say, listener.accept(), turns.at(moment))`).
    pub fn at(&self, moment: M) -> At<'_, M> {
        At {
            turns: self,
            moment,
        }
    }

    /// Waits until the client has made its move for the moment last told.
    pub fn wait_for_clients(&self) {
        if let Some(done) = &self.done {
            let _ = done.recv_timeout(LIMIT);
        }
    }
}

/// The server thread's `/proc/PID/task/TID/{stat,syscall}`, opened once and kept on
/// descriptors above 100, then read with `pread`: opening them at every look would take the
/// lowest free descriptor for a moment, and a server that accepted just then would get the next
/// number, so the story's descriptor numbers would change from run to run.
struct Watched {
    stat: Option<std::fs::File>,
    syscall: Option<std::fs::File>,
    syscall_path: String,
}

impl Watched {
    fn open(tid: i32) -> Watched {
        let task = format!("/proc/{}/task/{tid}", std::process::id());
        let high = |path: String| {
            let file = std::fs::File::open(path).ok()?;
            let moved = rustix::io::fcntl_dupfd_cloexec(&file, 100).ok()?;
            Some(std::fs::File::from(moved))
        };
        Watched {
            stat: high(format!("{task}/stat")),
            syscall: high(format!("{task}/syscall")),
            syscall_path: format!("{task}/syscall"),
        }
    }

    fn read(file: Option<&std::fs::File>) -> Option<String> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 1024];
        let n = file?.read_at(&mut buf, 0).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    fn stat(&self) -> Option<String> {
        Watched::read(self.stat.as_ref())
    }

    fn syscall(&self) -> Option<String> {
        Watched::read(self.syscall.as_ref())
    }
}

/// A narrated call's pause at one moment of a demo ([`Turns::at`]).
pub struct At<'a, M: Moment> {
    turns: &'a Turns<M>,
    moment: M,
}

impl<M: Moment> crate::call::Pause for At<'_, M> {
    fn before(&self) {
        self.turns.tell(self.moment);
    }

    fn after(&self) {
        self.turns.wait_for_clients();
    }
}

/// The client's side.
pub struct Stage<M: Moment> {
    moments: Receiver<M>,
    done: Sender<()>,
    server: Watched,
}

impl<M: Moment> Stage<M> {
    /// Waits until the server reaches `wanted` (letting it pass every other moment), and,
    /// when its call there can block, until it is asleep in that call. Returns `false` if the
    /// server never got there.
    pub fn wait_for(&self, wanted: M) -> bool {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.moments.recv_timeout(left) {
                Ok(moment) if moment == wanted => {
                    if let Some(call) = moment.call() {
                        self.wait_until_asleep_in(call);
                    }
                    return true;
                }
                Ok(_) => self.done(),
                Err(_) => return false,
            }
        }
    }

    /// Lets the server go on: the client's move is over.
    pub fn done(&self) {
        let _ = self.done.send(());
    }

    /// Whether the server's thread sleeps in the kernel: the state field of its
    /// `/proc/PID/task/TID/stat` is `S`.
    pub fn server_sleeps(&self) -> bool {
        self.server.stat().is_some_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('S'))
        })
    }

    /// The number of the system call the server's thread is in, from
    /// `/proc/PID/task/TID/syscall` (its first field), and that file's path.
    pub fn server_syscall(&self) -> (Option<i64>, String) {
        let number = self
            .server
            .syscall()
            .and_then(|text| text.split_whitespace().next()?.parse().ok());
        (number, self.server.syscall_path.clone())
    }

    /// Waits (at most two seconds) until the server's thread sleeps inside system call
    /// `call`: its state is `S` and `/proc/PID/task/TID/syscall` names the call. (Asleep
    /// in accept4, the server has already taken the descriptor its connection will get.)
    fn wait_until_asleep_in(&self, call: i64) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !(self.server_sleeps() && self.server_syscall().0 == Some(call))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
