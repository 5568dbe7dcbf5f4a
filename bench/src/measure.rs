//! Client CPU and peak RSS from getrusage, latency percentiles, and the median of rounds.

use std::time::Duration;

use serde::Serialize;

use crate::driver::DriverReport;

fn usage(who: libc::c_int) -> libc::rusage {
    // SAFETY: getrusage only writes the struct it is given.
    #[allow(unsafe_code)]
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    }
}

fn cpu_of(usage: libc::rusage) -> Duration {
    let time = |value: libc::timeval| {
        Duration::from_secs(value.tv_sec as u64) + Duration::from_micros(value.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// User plus system CPU time of this process so far.
pub fn process_cpu() -> Duration {
    cpu_of(usage(libc::RUSAGE_SELF))
}

/// User plus system CPU time of this process's finished children so far.
pub fn children_cpu() -> Duration {
    cpu_of(usage(libc::RUSAGE_CHILDREN))
}

/// Peak resident set of this process, KiB.
pub fn peak_rss_kib() -> u64 {
    usage(libc::RUSAGE_SELF).ru_maxrss.max(0) as u64
}

/// Peak resident set of the largest finished child, KiB.
pub fn children_peak_rss_kib() -> u64 {
    usage(libc::RUSAGE_CHILDREN).ru_maxrss.max(0) as u64
}

/// Resident set of this process now, KiB (from /proc/self/statm).
pub fn current_rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
    pages * page / 1024
}

/// Peak resident set (VmHWM) of process `pid`, KiB; 0 if /proc cannot tell.
pub fn peak_rss_kib_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status_kib(&status, "VmHWM").unwrap_or(0)
}

/// The value of a `Key:   1234 kB` line of /proc/PID/status, KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name != key {
            return None;
        }
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Gives the heap's free pages back to the kernel (glibc's malloc_trim), so that an RSS read
/// next counts the pages in use rather than those earlier work freed and the allocator kept;
/// nothing where the C library has no such call.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim has no preconditions; it only releases free memory.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Heap bytes allocated and not freed, over every malloc arena (glibc's mallinfo2); `None`
/// where the C library has no such call. Unlike RSS it does not hide allocations that reuse
/// memory freed earlier, nor count pages the allocator keeps.
pub fn heap_in_use_bytes() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 has no preconditions and returns a plain struct.
        #[allow(unsafe_code)]
        let info = unsafe { libc::mallinfo2() };
        Some((info.uordblks + info.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// The figures of one counted window: latency percentiles, QPS and CPU per call.
pub fn summarize(mut latencies: Vec<Duration>, wall: Duration, cpu: Duration) -> DriverReport {
    latencies.sort_unstable();
    let calls = latencies.len() as u64;
    let percentile = |q: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index].as_secs_f64() * 1e6
    };
    DriverReport {
        calls,
        errors: 0,
        seconds: wall.as_secs_f64(),
        qps: calls as f64 / wall.as_secs_f64().max(1e-9),
        p50_us: percentile(0.50),
        p99_us: Some(percentile(0.99)),
        cpu_us_per_call: if calls == 0 {
            0.0
        } else {
            cpu.as_secs_f64() * 1e6 / calls as f64
        },
        peak_rss_kib: 0,
    }
}

/// One client in one cell of the matrix: the medians of its rounds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cell {
    pub server: String,
    pub transport: String,
    pub client: String,
    /// Which face the client belongs to (rust, c, python-sync, python-asyncio, go, node).
    pub face: String,
    /// Whether this is a grpcpool row (the others are the peers it is compared with).
    pub ours: bool,
    pub concurrency: usize,
    pub payload: usize,
    pub connections: usize,
    pub rounds: usize,
    pub calls: u64,
    pub errors: u64,
    pub qps: f64,
    pub p50_us: f64,
    pub p99_us: Option<f64>,
    pub cpu_us_per_call: f64,
    pub peak_rss_kib: u64,
    /// QPS range over the rounds as a percentage of the median.
    pub spread_pct: f64,
    /// Why the cell has no figures (a driver that is not available here or failed).
    pub note: Option<String>,
}

/// The middle value (the upper one of an even count); 0 for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

impl Cell {
    /// Fills the figures from the rounds' reports: medians, with the QPS spread.
    pub fn fill(&mut self, rounds: &[DriverReport]) {
        let pick = |field: fn(&DriverReport) -> f64| median(rounds.iter().map(field).collect());
        self.rounds = rounds.len();
        self.calls = rounds.iter().map(|report| report.calls).sum();
        self.errors = rounds.iter().map(|report| report.errors).sum();
        self.qps = pick(|report| report.qps);
        self.p50_us = pick(|report| report.p50_us);
        self.p99_us = rounds
            .iter()
            .all(|report| report.p99_us.is_some())
            .then(|| pick(|report| report.p99_us.unwrap_or(0.0)));
        self.cpu_us_per_call = pick(|report| report.cpu_us_per_call);
        self.peak_rss_kib = pick(|report| report.peak_rss_kib as f64) as u64;
        let (low, high) = rounds
            .iter()
            .fold((f64::MAX, 0.0_f64), |(low, high), report| {
                (low.min(report.qps), high.max(report.qps))
            });
        self.spread_pct = if self.qps > 0.0 && !rounds.is_empty() {
            (high - low) / self.qps * 100.0
        } else {
            0.0
        };
    }

    /// One line for the console.
    pub fn row(&self) -> String {
        if let Some(note) = &self.note {
            return format!("{:<22} {note}", self.client);
        }
        format!(
            "{:<22} {:>9.0} qps (±{:>4.1}%)  p50 {:>8.1} us  p99 {:>9}  cpu {:>6.1} us/call  rss {:>7} KiB  ({} errors)",
            self.client,
            self.qps,
            self.spread_pct / 2.0,
            self.p50_us,
            self.p99_us.map_or("-".to_owned(), |p99| format!("{p99:.1} us")),
            self.cpu_us_per_call,
            self.peak_rss_kib,
            self.errors
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read_in_kib() {
        let status = "Name:\tgrpcpool-bench\nVmPeak:\t  900 kB\nVmHWM:\t  123456 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(123_456));
        assert_eq!(status_kib(status, "VmPeak"), Some(900));
        assert_eq!(status_kib(status, "VmRSS"), None);
        assert_eq!(status_kib("VmHWM: lots\n", "VmHWM"), None);
        assert_eq!(peak_rss_kib_of(u32::MAX), 0);
        assert!(peak_rss_kib_of(std::process::id()) > 0);
    }

    #[test]
    fn fill_takes_medians_and_spread() {
        let report = |qps: f64, p99: Option<f64>| DriverReport {
            calls: 10,
            qps,
            p50_us: qps / 10.0,
            p99_us: p99,
            cpu_us_per_call: 2.0,
            peak_rss_kib: 100,
            ..DriverReport::default()
        };
        let mut cell = Cell::default();
        cell.fill(&[
            report(90.0, Some(1.0)),
            report(100.0, Some(2.0)),
            report(110.0, Some(3.0)),
        ]);
        assert_eq!(
            (cell.qps, cell.p50_us, cell.p99_us),
            (100.0, 10.0, Some(2.0))
        );
        assert_eq!((cell.calls, cell.rounds, cell.spread_pct), (30, 3, 20.0));
        cell.fill(&[report(90.0, None)]);
        assert_eq!(cell.p99_us, None);
    }

    #[test]
    fn summarize_percentiles() {
        let latencies = (1..=100).map(Duration::from_micros).collect();
        let report = summarize(latencies, Duration::from_secs(1), Duration::from_millis(1));
        assert_eq!(
            (report.calls, report.p50_us, report.p99_us),
            (100, 50.0, Some(99.0))
        );
        assert_eq!(report.cpu_us_per_call, 10.0);
    }
}
