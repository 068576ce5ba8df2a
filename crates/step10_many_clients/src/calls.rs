//! System calls this step makes that the earlier steps did not (epoll, fcntl, clone3),
//! written as `strace` writes them, like `tutor::sys`.

/// `epoll_create1(EPOLL_CLOEXEC)`: what mio's `Poll::new()` asks the kernel for.
pub fn epoll_create1() -> String {
    "epoll_create1(EPOLL_CLOEXEC)".to_owned()
}

/// `epoll_ctl(4, EPOLL_CTL_ADD, 3, EPOLLIN|EPOLLRDHUP|EPOLLET, token 0)`. mio registers
/// every source edge-triggered (EPOLLET); READABLE is EPOLLIN|EPOLLRDHUP, WRITABLE EPOLLOUT.
pub fn epoll_ctl(
    epfd: i32,
    op: &str,
    fd: i32,
    readable: bool,
    writable: bool,
    token: usize,
) -> String {
    if op == "EPOLL_CTL_DEL" {
        return format!("epoll_ctl({epfd}, {op}, {fd}, NULL)");
    }
    let mut events = Vec::new();
    if readable {
        events.push("EPOLLIN");
    }
    if writable {
        events.push("EPOLLOUT");
    }
    if readable {
        events.push("EPOLLRDHUP");
    }
    events.push("EPOLLET");
    format!(
        "epoll_ctl({epfd}, {op}, {fd}, {}, token {token})",
        events.join("|")
    )
}

/// `epoll_wait(4, events, 1024, -1)`: wait until something is ready, with no time limit
/// (-1), or at most `timeout`.
pub fn epoll_wait(epfd: i32, capacity: usize, timeout: Option<std::time::Duration>) -> String {
    let timeout = timeout.map_or(-1, |t| t.as_millis() as i64);
    format!("epoll_wait({epfd}, events, {capacity}, {timeout})")
}

/// `fcntl(5, F_SETFL, O_RDWR|O_NONBLOCK)`: socket2's `set_nonblocking(true)` reads the
/// flags first (F_GETFL), then sets them with O_NONBLOCK added.
pub fn set_nonblocking(fd: i32) -> String {
    format!("fcntl({fd}, F_SETFL, O_RDWR|O_NONBLOCK)")
}

/// `clone3(...)`: a new thread, sharing this process's memory and descriptors.
pub fn clone_thread() -> String {
    "clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|...})".to_owned()
}
