//! Ctrl-C: a server that runs until stopped must stop cleanly.
//!
//! When a process exits, the kernel closes every file descriptor it still holds, sockets
//! included; what it does not do is remove a unix socket's file. So on Ctrl-C a step says
//! what happens, removes the socket files it registered, and exits with code 0.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::Narrator;

static SOCKET_FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Installs the Ctrl-C handler. Call once, early in `main`.
pub fn stop_on_ctrl_c(say: &Narrator) {
    let handler_say = say.clone();
    let installed = ctrlc::set_handler(move || {
        crate::outln!();
        handler_say
            .say("Ctrl-C: stopping. The kernel closes every socket this process still holds.");
        let files = SOCKET_FILES
            .lock()
            .map(|files| files.clone())
            .unwrap_or_default();
        for path in files {
            handler_say.call_lib(crate::sys::unlink(&path), "std::fs::remove_file(path)");
            match std::fs::remove_file(&path) {
                Ok(()) => handler_say.returned(0),
                Err(error) => handler_say.error(&error),
            }
        }
        std::process::exit(0);
    });
    if installed.is_err() {
        say.note("(could not install a Ctrl-C handler: Ctrl-C will end the program abruptly)");
    }
}

/// Remembers a unix socket file to remove if the learner presses Ctrl-C.
pub fn remove_on_ctrl_c(path: &Path) {
    if let Ok(mut files) = SOCKET_FILES.lock() {
        files.push(path.to_owned());
    }
}

/// Forgets a socket file the step has removed itself.
pub fn forget(path: &Path) {
    if let Ok(mut files) = SOCKET_FILES.lock() {
        files.retain(|p| p != path);
    }
}

/// Removes a unix listener's socket file, which outlives the socket (step 2 explains why),
/// narrating the `unlink`, and forgets it for Ctrl-C. Does nothing for an IP address.
pub fn remove_socket_file(say: &Narrator, address: &socket2::SockAddr) {
    if let Some(path) = address.as_pathname() {
        say.call_lib(crate::sys::unlink(path), "std::fs::remove_file(path)");
        match std::fs::remove_file(path) {
            Ok(()) => say.returned(0),
            Err(error) => say.error(&error),
        }
        forget(path);
    }
}
