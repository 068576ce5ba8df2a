//! The lab: where the experiments make their sockets, and who narrates them. Each experiment
//! takes a connected pair (`sender`, `receiver`) made the way steps 1 to 8 made them, and
//! closes it when it is done.

use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use libc::{MSG_PEEK, MSG_WAITALL};
use socket2::{Protocol, SockAddr, Socket, Type};
use tutor::{Failure, Family, Narrator, addr, interrupt, narrate};

/// How long any one wait in an experiment may last.
pub const WAIT: Duration = Duration::from_millis(200);

/// The backlog of a pair's listener: one connection is all it takes.
pub const BACKLOG: i32 = 8;

/// Who narrates: each line of an experiment is the sending side's, the receiving side's, or
/// a probe's (a socket that finds a free port).
pub struct Actors {
    pub sender: Narrator,
    pub receiver: Narrator,
    pub probe: Narrator,
}

/// Where the experiments make their sockets.
pub struct Lab {
    pub family: Family,
    /// The narrators of the actors.
    pub by: Actors,
    /// Notes about an experiment as a whole.
    pub say: Narrator,
    /// For unix: the fresh directory the socket files go in.
    dir: Option<PathBuf>,
}

impl Lab {
    pub fn new(family: Family, say: &Narrator) -> Result<Lab, Failure> {
        // The unix sockets live in a directory of this run's own: made new (mkdir fails if
        // the name exists, and another name is tried), so nothing that was there is touched.
        let dir = match family {
            Family::Unix => {
                Some(
                    interrupt::fresh_dir("step9").map_err(|error| Failure::Socket {
                        call: format!("mkdir(\"{}/step9-...\")", std::env::temp_dir().display()),
                        error,
                    })?,
                )
            }
            _ => None,
        };
        let by = Actors {
            sender: say.actor("sender"),
            receiver: say.actor("receiver"),
            probe: say.actor("probe"),
        };
        Ok(Lab {
            family,
            by,
            say: say.clone(),
            dir,
        })
    }

    /// Removes the socket files this run bound and its directory, and nothing else.
    pub fn clean_up(&self) {
        if let Some(dir) = &self.dir {
            for why in interrupt::remove_fresh_dir(dir) {
                self.say.note(why);
            }
        }
    }

    /// Whether the experiments run over unix-domain sockets.
    pub fn is_unix(&self) -> bool {
        self.dir.is_some()
    }

    /// A fresh address to bind: port 0 on loopback, or a new path.
    fn fresh(&self, name: &str) -> Result<SockAddr, Failure> {
        match (&self.dir, self.family) {
            (Some(dir), _) => {
                use std::sync::atomic::{AtomicU32, Ordering};
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                addr::unix(&dir.join(format!("{name}-{n}.sock")))
            }
            (None, Family::Ipv6) => Ok(SocketAddr::from((Ipv6Addr::LOCALHOST, 0)).into()),
            (None, _) => Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()),
        }
    }

    /// A socket of type `ty`, whose every receive gives up after WAIT.
    pub fn socket(&self, by: &Narrator, ty: Type) -> Result<Socket, Failure> {
        let domain = self.family.domain();
        let protocol = match (self.family, ty == Type::STREAM) {
            (Family::Unix, _) => None,
            (_, true) => Some(Protocol::TCP),
            (_, false) => Some(Protocol::UDP),
        };
        let socket = narrate!(by, Socket::new(domain, ty, protocol))?;
        narrate!(by, socket.set_read_timeout(Some(WAIT)))?;
        Ok(socket)
    }

    /// bind() to a fresh address, and the address the socket got.
    pub fn bind(&self, by: &Narrator, socket: &Socket, name: &str) -> Result<SockAddr, Failure> {
        let address = self.fresh(name)?;
        narrate!(by, socket.bind(&address), interrupt::owning(&address))?;
        narrate!(by, socket.local_addr())
    }

    /// A connected pair, `(sender, receiver)`. Stream: a listener, a client that connects,
    /// the accepted socket (then the listener is closed: it has done its work). Datagram: two
    /// bound sockets, each connected to the other.
    pub fn pair(&self, ty: Type) -> Result<(Socket, Socket), Failure> {
        if ty == Type::STREAM {
            let listener = self.socket(&self.by.receiver, ty)?;
            let address = self.bind(&self.by.receiver, &listener, "listener")?;
            narrate!(self.by.receiver, listener.listen(BACKLOG))?;
            let sender = self.socket(&self.by.sender, ty)?;
            narrate!(self.by.sender, sender.connect(&address))?;
            let (receiver, _) = narrate!(self.by.receiver, listener.accept())?;
            narrate!(self.by.receiver, receiver.set_read_timeout(Some(WAIT)))?;
            narrate!(self.by.receiver, drop(listener));
            Ok((sender, receiver))
        } else {
            let sender = self.socket(&self.by.sender, ty)?;
            let sender_address = self.bind(&self.by.sender, &sender, "sender")?;
            let receiver = self.socket(&self.by.receiver, ty)?;
            let receiver_address = self.bind(&self.by.receiver, &receiver, "receiver")?;
            narrate!(self.by.sender, sender.connect(&receiver_address))?;
            narrate!(self.by.receiver, receiver.connect(&sender_address))?;
            Ok((sender, receiver))
        }
    }

    /// Closes a pair.
    pub fn close(&self, sender: Socket, receiver: Socket) {
        narrate!(self.by.sender, drop(sender));
        narrate!(self.by.receiver, drop(receiver));
    }

    /// Waits, at most WAIT, until `bytes` bytes can be read from a stream socket, without
    /// reading them: recv with MSG_PEEK|MSG_WAITALL. So a later recv sees all of them at once.
    pub fn wait_for_bytes(&self, receiver: &Socket, bytes: usize) -> Result<usize, Failure> {
        let mut peek = vec![MaybeUninit::<u8>::uninit(); bytes];
        narrate!(
            self.by.receiver,
            receiver.recv_with_flags(&mut peek, MSG_PEEK | MSG_WAITALL)
        )
    }

    /// An address where nothing is: a port bound a moment ago and closed, or a path that
    /// does not exist.
    pub fn nobody(&self, ty: Type) -> Result<SockAddr, Failure> {
        if self.is_unix() {
            return self.fresh("nobody");
        }
        let probe = self.socket(&self.by.probe, ty)?;
        let address = self.bind(&self.by.probe, &probe, "probe")?;
        narrate!(self.by.probe, drop(probe));
        Ok(address)
    }
}
