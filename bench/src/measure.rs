//! Closed-loop measurement: client CPU from getrusage, latency percentiles, ratios.

use std::time::Duration;

use serde::Serialize;

/// One client at one concurrency over one transport.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub client: &'static str,
    pub transport: &'static str,
    pub concurrency: usize,
    pub calls: u64,
    pub errors: u64,
    pub qps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub cpu_us_per_call: f64,
    pub rounds: usize,
    pub spread_pct: f64,
}

impl Cell {
    pub fn row(&self) -> String {
        format!(
            "{:<16} c={:<4} {:>9.0} qps (±{:>4.1}%)  p50 {:>8.1} us  p99 {:>8.1} us  cpu {:>6.1} us/call  ({} calls in {} rounds, {} errors)",
            self.client,
            self.concurrency,
            self.qps,
            self.spread_pct / 2.0,
            self.p50_us,
            self.p99_us,
            self.cpu_us_per_call,
            self.calls,
            self.rounds,
            self.errors
        )
    }
}

/// User plus system CPU time of this process so far.
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |value: libc::timeval| {
        Duration::from_secs(value.tv_sec as u64) + Duration::from_micros(value.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// User plus system CPU time of this process's finished children so far.
pub fn children_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |value: libc::timeval| {
        Duration::from_secs(value.tv_sec as u64) + Duration::from_micros(value.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Builds a cell from per-call latencies, the wall time and the CPU time spent.
pub fn cell(
    client: &'static str,
    transport: &'static str,
    concurrency: usize,
    mut latencies: Vec<Duration>,
    errors: u64,
    wall: Duration,
    cpu: Duration,
) -> Cell {
    latencies.sort_unstable();
    let calls = latencies.len() as u64;
    let percentile = |q: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index].as_secs_f64() * 1e6
    };
    Cell {
        client,
        transport,
        concurrency,
        calls,
        errors,
        qps: calls as f64 / wall.as_secs_f64(),
        p50_us: percentile(0.50),
        p99_us: percentile(0.99),
        cpu_us_per_call: if calls == 0 {
            0.0
        } else {
            cpu.as_secs_f64() * 1e6 / calls as f64
        },
        rounds: 1,
        spread_pct: 0.0,
    }
}

/// The median of each figure over several rounds of the same cell; `spread_pct` is the QPS range
/// over the rounds as a percentage of the median.
pub fn median<'a>(rounds: impl Iterator<Item = &'a Cell>) -> Cell {
    let rounds: Vec<&Cell> = rounds.collect();
    let mid = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    let pick = |field: fn(&Cell) -> f64| mid(rounds.iter().map(|cell| field(cell)).collect());
    let mut cell = rounds
        .first()
        .map(|cell| (*cell).clone())
        .unwrap_or_else(|| Cell {
            client: "none",
            transport: "none",
            concurrency: 0,
            calls: 0,
            errors: 0,
            qps: 0.0,
            p50_us: 0.0,
            p99_us: 0.0,
            cpu_us_per_call: 0.0,
            rounds: 0,
            spread_pct: 0.0,
        });
    cell.qps = pick(|cell| cell.qps);
    cell.p50_us = pick(|cell| cell.p50_us);
    cell.p99_us = pick(|cell| cell.p99_us);
    cell.cpu_us_per_call = pick(|cell| cell.cpu_us_per_call);
    cell.calls = rounds.iter().map(|cell| cell.calls).sum();
    cell.errors = rounds.iter().map(|cell| cell.errors).sum();
    cell.rounds = rounds.len();
    let (low, high) = rounds
        .iter()
        .fold((f64::MAX, 0.0_f64), |(low, high), cell| {
            (low.min(cell.qps), high.max(cell.qps))
        });
    cell.spread_pct = if cell.qps > 0.0 {
        (high - low) / cell.qps * 100.0
    } else {
        0.0
    };
    cell
}

/// The ratios the core issue sets targets for, per transport and concurrency.
pub fn ratios(cells: &[Cell]) -> String {
    let find = |client: &str, transport: &str, concurrency: usize| {
        cells.iter().find(|cell| {
            cell.client == client && cell.transport == transport && cell.concurrency == concurrency
        })
    };
    let mut out = String::from("ratios (pooled vs peers, same server, same run):\n");
    let mut keys: Vec<(&str, usize)> = cells
        .iter()
        .map(|cell| (cell.transport, cell.concurrency))
        .collect();
    keys.dedup();
    for (transport, concurrency) in keys {
        let (Some(pool), Some(channel), Some(dial)) = (
            find("grpcpool", transport, concurrency),
            find("tonic-channel", transport, concurrency),
            find("dial-per-call", transport, concurrency),
        ) else {
            continue;
        };
        if let (Some(c_abi), Some(core)) = (
            find("c-abi-blocking", transport, concurrency),
            find("core-blocking", transport, concurrency),
        ) {
            out.push_str(&format!(
                "  {transport:<9} c={concurrency:<4} cpu c-abi/core-blocking {:>5.3}   cpu c-abi/core-async {:>5.3}\n",
                c_abi.cpu_us_per_call / core.cpu_us_per_call,
                c_abi.cpu_us_per_call / pool.cpu_us_per_call,
            ));
        }
        out.push_str(&format!(
            "  {transport:<9} c={concurrency:<4} p50 dial/pool {:>5.2}x   cpu pool/channel {:>5.3}   qps pool/channel {:>5.3}   qps pool/dial {:>6.2}x\n",
            dial.p50_us / pool.p50_us,
            pool.cpu_us_per_call / channel.cpu_us_per_call,
            pool.qps / channel.qps,
            pool.qps / dial.qps,
        ));
    }
    out
}
