//! The moments of this step's servers, for `--demo`'s turn-taking (`tutor::turns`): a
//! server says where it is about to wait, and the demo's clients act only once it is there.
//! Outside the demo nobody listens. Nothing here makes a socket call.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use tutor::call::Pause;

/// Where a server is: told just before it makes the call named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// About to wait in accept(), having accepted `accepted` clients.
    Accepting { accepted: u64 },
    /// About to wait in recv() for `client`, having echoed `echoed` bytes to it.
    Receiving { client: u64, echoed: u64 },
    /// The same, in the client's own thread (threads model).
    ReceivingInThread { client: u64, echoed: u64 },
    /// About to wait in epoll_wait().
    Polling {
        accepted: u64,
        open: usize,
        echoed: u64,
    },
    /// `client`'s thread has closed its connection (threads model).
    Closed { client: u64 },
    /// The acceptor takes no more clients and waits for its threads.
    Joining,
}

impl tutor::turns::Moment for Moment {
    /// The demo's clients watch the server's main thread in /proc: they wait until it sleeps
    /// in the call it is about to make. A client's own thread they do not watch; what it
    /// prints is still held back until the client has printed its move.
    fn call(self) -> Option<i64> {
        match self {
            Moment::Accepting { .. } => Some(libc::SYS_accept4),
            Moment::Receiving { .. } => Some(libc::SYS_recvfrom),
            Moment::Polling { .. } => Some(libc::SYS_epoll_wait),
            Moment::ReceivingInThread { .. } | Moment::Closed { .. } | Moment::Joining => None,
        }
    }
}

/// The client's side.
pub type Stage = tutor::turns::Stage<Moment>;

/// The server's side, shared by the server's threads (the threads model has one per client),
/// or nobody outside the demo.
#[derive(Clone, Default)]
pub struct ServerTurns {
    turns: Option<Arc<Mutex<tutor::turns::Turns<Moment>>>>,
    /// (a new thread's) Signalled each time this thread tells a moment.
    told: Option<Sender<()>>,
}

impl ServerTurns {
    /// The server's side and the clients' side of a demo. Call it on the server's main
    /// thread: that is the thread the clients watch.
    pub fn demo() -> (ServerTurns, Stage) {
        let (turns, stage) = tutor::turns::Turns::demo();
        let server = ServerTurns {
            turns: Some(Arc::new(Mutex::new(turns))),
            told: None,
        };
        (server, stage)
    }

    pub fn is_demo(&self) -> bool {
        self.turns.is_some()
    }

    /// The same turns, for a new thread: in the demo, `told` hears each moment it tells.
    pub fn for_thread(&self, told: Sender<()>) -> ServerTurns {
        ServerTurns {
            turns: self.turns.clone(),
            told: self.turns.is_some().then_some(told),
        }
    }

    /// Tells the clients where the server is, when the server makes no call there.
    pub fn tell(&self, moment: Moment) {
        if let Some(turns) = &self.turns
            && let Ok(turns) = turns.lock()
        {
            turns.tell(moment);
        }
        if let Some(told) = &self.told {
            let _ = told.send(());
        }
    }

    /// The pause around a narrated call at `moment`: tells the clients just before the
    /// call, and waits for their move just after.
    pub fn at(&self, moment: Moment) -> At<'_> {
        At {
            turns: self,
            moment,
        }
    }
}

/// A narrated call's pause at one moment of the demo ([`ServerTurns::at`]).
pub struct At<'a> {
    turns: &'a ServerTurns,
    moment: Moment,
}

impl Pause for At<'_> {
    fn before(&self) {
        self.turns.tell(self.moment);
    }

    fn after(&self) {
        // One server thread at a time is woken by a client's move, so at most one waits
        // here for it.
        if let Some(turns) = &self.turns.turns
            && let Ok(turns) = turns.lock()
        {
            turns.wait_for_clients();
        }
    }
}
