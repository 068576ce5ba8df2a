//! What the server under load uses: memory and CPU time, read from /proc.

/// A server's memory (from /proc/PID/status, in KiB) and CPU time (from /proc/PID/stat).
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// Resident now (VmRSS).
    pub rss: u64,
    /// The most it has ever been resident (VmHWM, the "high water mark").
    pub peak: u64,
    /// Virtual size (VmSize): every mapping, touched or not.
    pub virt: u64,
    pub threads: u64,
    /// CPU time used so far in the program itself (user), in clock ticks (usually 1/100 s).
    pub user_ticks: u64,
    /// CPU time used so far in the kernel on its behalf (system calls, TCP), in clock ticks.
    pub system_ticks: u64,
}

/// The server's usage now; `None` if the process is gone or /proc cannot be read.
pub fn usage(pid: u32) -> Option<Usage> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    // /proc/PID/stat: fields 14 and 15 (utime, stime) come after the name in parentheses.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let user_ticks = fields.get(11)?.parse::<u64>().ok()?;
    let system_ticks = fields.get(12)?.parse::<u64>().ok()?;
    Some(Usage {
        user_ticks,
        system_ticks,
        rss: field("VmRSS:")?,
        peak: field("VmHWM:")?,
        virt: field("VmSize:")?,
        threads: field("Threads:")?,
    })
}
