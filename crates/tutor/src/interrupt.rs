//! Signals: a server that runs until stopped must stop cleanly, and remove only what it made.
//!
//! When a process exits, the kernel closes every file descriptor it still holds, sockets
//! included; what it does not do is remove a unix socket's file. So on SIGINT (Ctrl-C),
//! SIGTERM (`kill`) or SIGHUP (the terminal closed) a step says which signal stopped it,
//! removes the socket files it bound, and exits with code 0.
//!
//! A path is only a name: between `bind` and the end of the program the learner may have
//! removed the socket file and put a file of their own there, or a second server may have
//! bound the same path. So right after `bind` the step records the file's device and inode
//! ([`owning`]), and before removing it checks with `lstat` that the path still names
//! that very socket. Anything else is left where it is, with one line saying why.
//!
//! How the signals are caught: [`stop_on_signals`] blocks the three signals in the main
//! thread (every thread started later inherits that) and starts one thread that waits for
//! them with `sigwait(2)`. No handler runs inside another thread's `write`, and no pipe is
//! opened, so the descriptor numbers the lessons show stay 3, 4, ...

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};

use crate::Narrator;

/// A socket file this process bound: its path, and the device and inode `bind` gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Owned {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

static SOCKET_FILES: Mutex<Vec<Owned>> = Mutex::new(Vec::new());

/// Directories this process made fresh for its socket files (steps 8 and 9).
static DIRECTORIES: Mutex<Vec<Owned>> = Mutex::new(Vec::new());

/// How long the signal thread waits for its lines to be written before it exits anyway: a
/// standard output that nobody reads must not keep a stopped server alive.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// Catches SIGINT, SIGTERM and SIGHUP. Call once, early in `main`, before any thread starts.
pub fn stop_on_signals(say: &Narrator) {
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(signal);
    }
    if signals.thread_block().is_err() {
        say.note("(could not block signals: Ctrl-C will end the program abruptly)");
        return;
    }
    let handler_say = say.clone();
    let started = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(signal) = signals.wait() else {
                return;
            };
            stop(&handler_say, signal);
        });
    if started.is_err() {
        let _ = signals.thread_unblock();
        say.note("(could not start the signal thread: Ctrl-C will end the program abruptly)");
    }
}

/// The line that says which signal stopped the program.
fn stopping_line(signal: Signal) -> String {
    let (name, why) = match signal {
        Signal::SIGINT => ("Ctrl-C", "SIGINT asked this program to stop"),
        Signal::SIGTERM => ("SIGTERM", "kill asked this program to stop"),
        Signal::SIGHUP => ("SIGHUP", "its terminal went away"),
        other => (other.as_str(), "a signal asked this program to stop"),
    };
    format!("{name}: stopping. {why}; the kernel closes every socket this process still holds.")
}

/// The signal thread's work: remove our own socket files first (nothing can block that),
/// then narrate it from a helper thread, and exit whether or not the narration got through.
fn stop(say: &Narrator, signal: Signal) -> ! {
    let outcomes: Vec<(Owned, Removal)> = {
        let mut files = SOCKET_FILES.lock().unwrap_or_else(|e| e.into_inner());
        files
            .drain(..)
            .map(|owned| {
                let removal = remove_if_ours(&owned);
                (owned, removal)
            })
            .collect()
    };
    let left_dirs: Vec<String> = {
        let mut dirs = DIRECTORIES.lock().unwrap_or_else(|e| e.into_inner());
        dirs.drain(..)
            .filter_map(|owned| rmdir_if_ours(&owned))
            .collect()
    };
    let (done, finished) = mpsc::channel();
    let printer = say.clone();
    let spawned = std::thread::Builder::new().spawn(move || {
        crate::outln!();
        printer.say(stopping_line(signal));
        for (owned, removal) in &outcomes {
            narrate(&printer, owned, removal);
        }
        for why in &left_dirs {
            printer.note(why);
        }
        let _ = done.send(());
    });
    if spawned.is_ok() {
        let _ = finished.recv_timeout(OUTPUT_GRACE);
    }
    std::process::exit(0);
}

/// What became of a socket file at the end.
#[derive(Debug)]
enum Removal {
    /// It was still our socket, and `unlink` answered this.
    Unlinked(io::Result<()>),
    /// It was not ours any more: left in place, for this reason.
    Left(String),
}

/// `lstat` the path; remove it only if it is still the socket this process bound.
fn remove_if_ours(owned: &Owned) -> Removal {
    let shown = crate::addr::printable(&owned.path.display().to_string());
    match std::fs::symlink_metadata(&owned.path) {
        Ok(meta) if is_ours(owned, &meta) => Removal::Unlinked(std::fs::remove_file(&owned.path)),
        Ok(_) => Removal::Left(format!(
            "left {shown} in place: it is no longer the socket this program bound (someone replaced it)"
        )),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Removal::Left(format!(
            "{shown} is already gone: someone removed it; nothing to remove"
        )),
        Err(error) => Removal::Left(format!(
            "left {shown} in place: lstat failed with {}",
            crate::explain::describe(&error)
        )),
    }
}

fn narrate(say: &Narrator, owned: &Owned, removal: &Removal) {
    match removal {
        Removal::Unlinked(result) => {
            say.call_lib(
                crate::strace::unlink(&owned.path),
                "std::fs::remove_file(path)",
            );
            match result {
                Ok(()) => say.returned(0),
                Err(error) => say.returned_error(error),
            }
        }
        Removal::Left(why) => say.note(why),
    }
}

/// The pause for a bind that records the socket file it creates, with its device and inode,
/// for removal at the end: `narrate!(say, listener.bind(&address), interrupt::owning(&address))?`.
/// The record is locked around the system call itself (not while the narration prints), so a
/// signal that comes during the bind waits until the file is recorded and no file is ever left
/// untracked; and the file is recorded only if the bind succeeded: after an EADDRINUSE the
/// file there is another's.
pub fn owning(address: &socket2::SockAddr) -> Owning<'_> {
    Owning {
        address,
        held: std::cell::RefCell::new(None),
    }
}

/// A bind's pause that records the socket file it creates ([`owning`]).
pub struct Owning<'a> {
    address: &'a socket2::SockAddr,
    held: std::cell::RefCell<Option<std::sync::MutexGuard<'static, Vec<Owned>>>>,
}

impl crate::call::Pause for Owning<'_> {
    fn before(&self) {
        *self.held.borrow_mut() = Some(SOCKET_FILES.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn after(&self) {
        self.after_result(false);
    }

    fn after_result(&self, succeeded: bool) {
        let Some(mut files) = self.held.borrow_mut().take() else {
            return;
        };
        if succeeded
            && let Some(path) = self.address.as_pathname()
            && let Ok(meta) = std::fs::symlink_metadata(path)
            && meta.file_type().is_socket()
        {
            files.retain(|owned| owned.path != path);
            files.push(Owned {
                path: path.to_owned(),
                dev: meta.dev(),
                ino: meta.ino(),
            });
        }
    }
}

/// Forgets a socket file: the step has removed it itself, or keeps it on purpose.
pub fn forget(path: &Path) {
    let mut files = SOCKET_FILES.lock().unwrap_or_else(|e| e.into_inner());
    files.retain(|owned| owned.path != path);
}

/// Whether `path` is still the socket file this process bound and recorded.
pub fn still_ours(path: &Path) -> bool {
    let files = SOCKET_FILES.lock().unwrap_or_else(|e| e.into_inner());
    files
        .iter()
        .find(|owned| owned.path == path)
        .is_some_and(|owned| {
            std::fs::symlink_metadata(path).is_ok_and(|meta| is_ours(owned, &meta))
        })
}

/// The check made right before removing: still a socket, still the same device and inode.
fn is_ours(owned: &Owned, meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_socket() && meta.dev() == owned.dev && meta.ino() == owned.ino
}

/// Removes a unix listener's socket file, which outlives the socket (step 2 explains why),
/// narrating the `unlink`, but only if the path still names the socket this process bound
/// (`lstat`: a socket, with the device and inode recorded at `bind`); otherwise it says why
/// the file stays. Forgets it for the signal thread. Does nothing for an IP address.
pub fn remove_socket_file(say: &Narrator, address: &socket2::SockAddr) {
    let Some(path) = address.as_pathname() else {
        return;
    };
    let mut files = SOCKET_FILES.lock().unwrap_or_else(|e| e.into_inner());
    let Some(at) = files.iter().position(|owned| owned.path == path) else {
        drop(files);
        say.note(format!(
            "left {} in place: this program did not record binding it",
            crate::addr::printable(&path.display().to_string())
        ));
        return;
    };
    let owned = files.remove(at);
    let removal = remove_if_ours(&owned);
    // Narrate after letting go of the list: output may block, a signal must not wait for it.
    drop(files);
    narrate(say, &owned, &removal);
}

/// Makes a new directory for this run's socket files, `<temp dir>/<prefix>-<pid>-<n>`. It is
/// made with `mkdir`, which fails if the name exists, so a directory of the same name that
/// someone else made is never taken over (another name is tried instead). Only its owner may
/// enter it (mode 0700). Recorded, so that a signal removes it too.
pub fn fresh_dir(prefix: &str) -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut dirs = DIRECTORIES.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for attempt in 0..16u32 {
        let name = format!(
            "{prefix}-{pid}-{:x}",
            clock.wrapping_add(attempt.wrapping_mul(7919))
        );
        let path = std::env::temp_dir().join(name);
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {
                let meta = std::fs::symlink_metadata(&path)?;
                dirs.push(Owned {
                    path: path.clone(),
                    dev: meta.dev(),
                    ino: meta.ino(),
                });
                return Ok(path);
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last = error,
            Err(error) => return Err(error),
        }
    }
    Err(last)
}

/// Removes a directory made by [`fresh_dir`], and in it only the socket files this process
/// bound there and that are still its own; `rmdir` then removes the directory only if it is
/// empty, so a file someone else put there stays, and so does the directory. Returns a line
/// for everything left behind, and why.
pub fn remove_fresh_dir(dir: &Path) -> Vec<String> {
    let mut left = Vec::new();
    {
        let mut files = SOCKET_FILES.lock().unwrap_or_else(|e| e.into_inner());
        let (inside, outside): (Vec<Owned>, Vec<Owned>) = files
            .drain(..)
            .partition(|owned| owned.path.starts_with(dir));
        *files = outside;
        for owned in inside {
            if let Removal::Left(why) = remove_if_ours(&owned) {
                left.push(why);
            }
        }
    }
    let mut dirs = DIRECTORIES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(at) = dirs.iter().position(|owned| owned.path == dir) {
        let owned = dirs.remove(at);
        left.extend(rmdir_if_ours(&owned));
    }
    left
}

/// `rmdir` a recorded directory if `lstat` still shows that same directory. `None` if it is
/// gone, or a line saying why it stays.
fn rmdir_if_ours(owned: &Owned) -> Option<String> {
    let shown = crate::addr::printable(&owned.path.display().to_string());
    match std::fs::symlink_metadata(&owned.path) {
        Ok(meta) if meta.is_dir() && meta.dev() == owned.dev && meta.ino() == owned.ino => {
            match std::fs::remove_dir(&owned.path) {
                Ok(()) => None,
                Err(error) => Some(format!(
                    "left {shown} in place: rmdir failed with {} (it holds files this program did not make)",
                    crate::explain::describe(&error)
                )),
            }
        }
        Ok(_) => Some(format!(
            "left {shown} in place: it is no longer the directory this program made"
        )),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    static STEP: crate::Step = crate::Step {
        number: 0,
        crate_name: "tutor",
        title: "test",
        lesson: "lessons/README.md",
    };
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("tutor-{}-{name}.sock", std::process::id()))
    }

    fn bound(path: &Path) -> (socket2::Socket, socket2::SockAddr) {
        let _ = std::fs::remove_file(path);
        let address = socket2::SockAddr::unix(path).expect("a short path");
        let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
            .expect("a socket");
        let pause = owning(&address);
        crate::call::Pause::before(&pause);
        let bound = socket.bind(&address);
        crate::call::Pause::after_result(&pause, bound.is_ok());
        bound.expect("bind");
        (socket, address)
    }

    #[test]
    fn a_narrated_bind_records_its_file_and_a_refused_one_does_not() {
        use socket2::{Domain, Socket, Type};
        let say = crate::Narrator::new(&STEP, crate::ColorWhen::Never).recording();
        let path = temp_path("narrated");
        let address = socket2::SockAddr::unix(&path).expect("a unix address");
        let first = Socket::new(Domain::UNIX, Type::STREAM, None).expect("a socket");
        crate::narrate!(say, first.bind(&address), owning(&address)).expect("bind");
        assert!(still_ours(&path), "the bound file is recorded");
        forget(&path);
        let second = Socket::new(Domain::UNIX, Type::STREAM, None).expect("a socket");
        let refused = crate::narrate!(say, second.bind(&address), owning(&address));
        assert_eq!(refused.expect_err("in use").errno(), Some(libc::EADDRINUSE));
        assert!(
            !still_ours(&path),
            "a file this bind did not make is not recorded"
        );
        assert!(say.recorded().contains("socket2: first.bind(&address)"));
        std::fs::remove_file(&path).expect("clean up");
    }

    #[test]
    fn our_own_socket_file_is_removed() {
        let path = temp_path("ours");
        let (_socket, _address) = bound(&path);
        assert!(still_ours(&path));
        let owned = {
            let files = SOCKET_FILES.lock().expect("lock");
            files
                .iter()
                .find(|o| o.path == path)
                .cloned()
                .expect("recorded")
        };
        assert!(matches!(remove_if_ours(&owned), Removal::Unlinked(Ok(()))));
        assert!(!path.exists());
        forget(&path);
    }

    #[test]
    fn a_file_put_in_its_place_is_left_alone() {
        let path = temp_path("replaced");
        let (_socket, _address) = bound(&path);
        std::fs::remove_file(&path).expect("remove the socket file");
        std::fs::write(&path, b"the user's own file").expect("write");
        assert!(!still_ours(&path));
        let owned = {
            let files = SOCKET_FILES.lock().expect("lock");
            files
                .iter()
                .find(|o| o.path == path)
                .cloned()
                .expect("recorded")
        };
        assert!(matches!(remove_if_ours(&owned), Removal::Left(_)));
        assert_eq!(
            std::fs::read(&path).expect("still there"),
            b"the user's own file"
        );
        std::fs::remove_file(&path).expect("clean up");
        forget(&path);
    }

    #[test]
    fn another_socket_bound_at_the_same_path_is_left_alone() {
        let path = temp_path("rebound");
        let (_first, address) = bound(&path);
        let owned = {
            let files = SOCKET_FILES.lock().expect("lock");
            files
                .iter()
                .find(|o| o.path == path)
                .cloned()
                .expect("recorded")
        };
        std::fs::remove_file(&path).expect("remove");
        let second = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
            .expect("a socket");
        second.bind(&address).expect("a second bind");
        assert!(matches!(remove_if_ours(&owned), Removal::Left(_)));
        assert!(path.exists());
        std::fs::remove_file(&path).expect("clean up");
        forget(&path);
    }

    #[test]
    fn a_fresh_dir_is_new_and_keeps_what_others_put_in_it() {
        let dir = fresh_dir("tutor-test").expect("a fresh dir");
        let other = fresh_dir("tutor-test").expect("another");
        assert_ne!(dir, other, "two calls, two directories");
        let path = dir.join("s.sock");
        let (_socket, _address) = bound(&path);
        std::fs::write(dir.join("theirs"), b"not ours").expect("write");
        let left = remove_fresh_dir(&dir);
        assert!(!path.exists(), "our socket file is removed");
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(
            dir.join("theirs").exists(),
            "their file stays, and the directory with it"
        );
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert!(remove_fresh_dir(&other).is_empty());
        assert!(!other.exists());
    }
}
