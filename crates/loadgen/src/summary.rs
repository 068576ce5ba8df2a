//! The summary a round-trip run prints at the end: a table for people or key=value lines for
//! scripts (scripts/bench.sh reads the keys).

use crate::cli::Format;
use crate::server::Usage;

/// Everything a round-trip run measured.
pub struct Summary {
    pub label: String,
    pub connections: u32,
    pub round_trips_each: u32,
    pub size: u32,
    pub round_trips: u64,
    pub expected: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_us: Option<u32>,
    pub p99_us: Option<u32>,
    pub max_us: Option<u32>,
    pub errors: u64,
    pub peak_open: u64,
    pub bytes: u64,
    pub memory_before: Option<Usage>,
    pub memory_held: Option<Usage>,
    pub memory_after: Option<Usage>,
}

fn micros(value: Option<u32>) -> String {
    match value {
        None => "-".to_owned(),
        Some(us) if us >= 10_000 => format!("{:.1} ms", f64::from(us) / 1000.0),
        Some(us) => format!("{us} us"),
    }
}

fn kib(value: Option<u64>) -> String {
    match value {
        None => "n/a".to_owned(),
        Some(k) if k >= 10 * 1024 => format!("{:.1} MiB", k as f64 / 1024.0),
        Some(k) => format!("{k} KiB"),
    }
}

impl Summary {
    /// Server memory per connection, in KiB: the growth from before the first connect to
    /// the moment all connections were open and idle (--hold), divided by their number.
    fn per_connection(&self, pick: fn(&Usage) -> u64) -> Option<f64> {
        let before = self.memory_before?;
        let held = self.memory_held?;
        Some((pick(&held) as f64 - pick(&before) as f64) / f64::from(self.connections))
    }

    /// The server's CPU time (user + system) per round trip, in microseconds. /proc counts
    /// CPU time in ticks of 10 ms: below 10 ticks (0.1 s) the figure would be mostly rounding
    /// (a short run shows 0.0), so it is left out.
    fn cpu_per_round_trip(&self) -> Option<f64> {
        let (user, system) = self.cpu_split_per_round_trip()?;
        Some(user + system)
    }

    /// The same, split into the time the server spent in its own code (user) and in the
    /// kernel on its behalf (system calls and the TCP work they do).
    fn cpu_split_per_round_trip(&self) -> Option<(f64, f64)> {
        let before = self.memory_before?;
        let after = self.memory_after?;
        let user = after.user_ticks.saturating_sub(before.user_ticks);
        let system = after.system_ticks.saturating_sub(before.system_ticks);
        if self.round_trips == 0 || user + system < 10 {
            return None;
        }
        let per = |ticks: u64| ticks as f64 * 10_000.0 / self.round_trips as f64;
        Some((per(user), per(system)))
    }

    fn peak(&self) -> Option<u64> {
        [self.memory_held, self.memory_after]
            .iter()
            .flatten()
            .map(|m| m.peak)
            .max()
    }

    pub fn print(&self, format: Format, hold: bool) {
        let rss_per = self.per_connection(|m| m.rss);
        let virt_per = self.per_connection(|m| m.virt);
        let threads_held = self.memory_held.map(|m| m.threads);
        match format {
            Format::Kv => {
                let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
                tutor::outln!("label={}", self.label);
                tutor::outln!("connections={}", self.connections);
                tutor::outln!("round_trips_each={}", self.round_trips_each);
                tutor::outln!("size={}", self.size);
                tutor::outln!("round_trips={}", self.round_trips);
                tutor::outln!("seconds={:.3}", self.seconds);
                tutor::outln!("per_second={:.0}", self.per_second);
                tutor::outln!("p50_us={}", opt(self.p50_us.map(|v| v.to_string())));
                tutor::outln!("p99_us={}", opt(self.p99_us.map(|v| v.to_string())));
                tutor::outln!("max_us={}", opt(self.max_us.map(|v| v.to_string())));
                tutor::outln!(
                    "server_cpu_us_per_rt={}",
                    opt(self.cpu_per_round_trip().map(|v| format!("{v:.1}")))
                );
                let split = self.cpu_split_per_round_trip();
                tutor::outln!(
                    "server_user_us_per_rt={}",
                    opt(split.map(|(user, _)| format!("{user:.1}")))
                );
                tutor::outln!(
                    "server_kernel_us_per_rt={}",
                    opt(split.map(|(_, kernel)| format!("{kernel:.1}")))
                );
                tutor::outln!("errors={}", self.errors);
                tutor::outln!("peak_open={}", self.peak_open);
                tutor::outln!("bytes={}", self.bytes);
                tutor::outln!(
                    "server_peak_kib={}",
                    opt(self.peak().map(|v| v.to_string()))
                );
                tutor::outln!(
                    "server_rss_before_kib={}",
                    opt(self.memory_before.map(|m| m.rss.to_string()))
                );
                tutor::outln!(
                    "server_rss_held_kib={}",
                    opt(self.memory_held.map(|m| m.rss.to_string()))
                );
                tutor::outln!(
                    "server_rss_per_conn_kib={}",
                    opt(rss_per.map(|v| format!("{v:.1}")))
                );
                tutor::outln!(
                    "server_virt_per_conn_kib={}",
                    opt(virt_per.map(|v| format!("{v:.1}")))
                );
                tutor::outln!(
                    "server_threads_held={}",
                    opt(threads_held.map(|v| v.to_string()))
                );
            }
            Format::Table => {
                tutor::outln!();
                tutor::outln!(
                    "| run | connections | round trips | bytes each | round trips/s | p50 | p99 | max | errors | server CPU per round trip | server peak RSS |"
                );
                tutor::outln!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
                tutor::outln!(
                    "| {} | {} | {} of {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
                    self.label,
                    self.connections,
                    self.round_trips,
                    self.expected,
                    self.size,
                    self.per_second,
                    micros(self.p50_us),
                    micros(self.p99_us),
                    micros(self.max_us),
                    self.errors,
                    self.cpu_split_per_round_trip().map_or(
                        "n/a".to_owned(),
                        |(user, kernel)| format!(
                            "{:.1} us ({user:.1} user + {kernel:.1} kernel)",
                            user + kernel
                        )
                    ),
                    kib(self.peak()),
                );
                tutor::outln!();
                tutor::outln!(
                    "{:.2} s; at most {} connections open at once; {} bytes echoed, every one checked",
                    self.seconds,
                    self.peak_open,
                    self.bytes
                );
                if hold && let (Some(rss), Some(virt)) = (rss_per, virt_per) {
                    tutor::outln!(
                        "server memory per idle connection: {rss:.1} KiB resident (VmRSS), {virt:.1} KiB virtual (VmSize); {} threads while all were held",
                        threads_held.map_or("?".to_owned(), |t| t.to_string())
                    );
                }
            }
        }
    }
}

/// The value below which `p` percent of the sorted values lie (nearest rank).
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}
