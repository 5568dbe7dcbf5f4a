//! The results as JSON, CSV, a Markdown report with each peer beside grpcpool and the ratio,
//! and SVG plots of QPS and p99 against concurrency (written by hand: no plotting dependency).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::measure::Cell;

/// How and where a run happened, for reading its figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Meta {
    pub mode: String,
    pub cpus: usize,
    pub pinned: String,
    pub load_before: String,
    pub load_after: String,
    pub rounds: usize,
    pub seconds: f64,
    pub warmup: f64,
    pub unix_time: u64,
    pub not_available: Vec<String>,
}

/// Scale figures: many targets, many calls in flight, memory per connection and per lease.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    /// Targets (loopback listeners of the tonic server) warmed.
    pub targets: usize,
    pub connections_per_target: usize,
    /// Connections ready once warm-up ended.
    pub connections_ready: u64,
    /// From the first acquire on the second target to every connection ready.
    pub warm_seconds: f64,
    /// The client's RSS with every connection open and idle.
    pub rss_after_warm_kib: u64,
    /// RSS growth over the warm-up per connection opened (per-target state included).
    pub rss_idle_connections_kib_each: f64,
    /// Heap in use (glibc mallinfo2) growth per connection opened; 0 where unknown.
    #[serde(default)]
    pub heap_idle_connection_kib_each: f64,
    /// Closed loops of calls spread round-robin over every target.
    pub spread_concurrency: usize,
    pub spread_qps: f64,
    pub spread_p50_us: f64,
    pub spread_p99_us: f64,
    pub spread_cpu_us_per_call: f64,
    pub spread_errors: u64,
    /// Leases held at once on one target, and the RSS growth per lease.
    pub leases: usize,
    pub rss_leases_kib_each: f64,
    /// Heap in use growth per held lease, bytes; 0 where unknown.
    #[serde(default)]
    pub heap_lease_bytes_each: f64,
    /// Calls started at once on one target, how many came back OK and how long all took.
    pub in_flight: usize,
    pub in_flight_ok: u64,
    pub in_flight_seconds: f64,
    pub in_flight_p50_us: f64,
    pub in_flight_p99_us: f64,
    /// The same number of calls again, each held `held_ms` by the server so all are in flight
    /// at once: how many came back OK, how long all took, the most the pool reported in
    /// flight (sampled every 0.5 ms) and the RSS growth per call in flight.
    pub held_ms: u64,
    pub held_ok: u64,
    pub held_seconds: f64,
    pub held_peak_in_flight: u64,
    pub rss_in_flight_kib_each: f64,
    /// Heap in use growth per call in flight at the sampled peak; 0 where unknown.
    #[serde(default)]
    pub heap_in_flight_kib_each: f64,
    /// Peak RSS of the client process over every phase before the held-at-scale one.
    pub in_flight_peak_rss_kib: u64,
    /// Held at scale: calls started at once on one target (100,000 in the full run; 0: the
    /// phase did not run), from a pool of their own of `at_scale_connections` connections
    /// taking `at_scale_streams_per_connection` streams each, after the earlier phases' pools
    /// were dropped and the heap trimmed.
    #[serde(default)]
    pub at_scale_calls: usize,
    #[serde(default)]
    pub at_scale_connections: usize,
    #[serde(default)]
    pub at_scale_streams_per_connection: u32,
    /// The pilot's rate (free calls completed per second), from which hold and deadline came.
    #[serde(default)]
    pub at_scale_pilot_calls_per_second: f64,
    /// How long the server held each call, and each call's deadline.
    #[serde(default)]
    pub at_scale_hold_ms: u64,
    #[serde(default)]
    pub at_scale_deadline_ms: u64,
    /// Calls that came back OK, the most in flight at once (pool stats, sampled every 5 ms)
    /// and the time from the first start until every call had ended.
    #[serde(default)]
    pub at_scale_ok: u64,
    #[serde(default)]
    pub at_scale_peak_in_flight: u64,
    #[serde(default)]
    pub at_scale_seconds: f64,
    /// The client's RSS just before the burst (its pool's connections open) and the highest
    /// sampled during it: the figure the 1 GiB target is about.
    #[serde(default)]
    pub at_scale_rss_before_kib: u64,
    #[serde(default)]
    pub at_scale_peak_rss_kib: u64,
    /// RSS and heap-in-use growth per call at the sampled peaks (the heap's comes at the end
    /// of the ramp, with calls still on their way to the server).
    #[serde(default)]
    pub at_scale_rss_kib_each: f64,
    #[serde(default)]
    pub at_scale_heap_kib_each: f64,
    /// Heap-in-use growth per call at the last sample with the most calls in flight: every
    /// call held, the ramp's transient allocations freed.
    #[serde(default)]
    pub at_scale_heap_settled_kib_each: f64,
    /// The whole phase: pool, connections, pilot, burst and closing the pool.
    #[serde(default)]
    pub at_scale_phase_seconds: f64,
    /// Peak RSS (VmHWM) of the serve-many server process over the whole scale run, KiB; 0
    /// where unknown.
    #[serde(default)]
    pub server_peak_rss_kib: u64,
    /// Load average before and after the scale run.
    #[serde(default)]
    pub load: String,
    pub note: Option<String>,
    /// The per-connection view: what each connection of the burst pool (one target) carried
    /// over the leases and both bursts.
    #[serde(default)]
    pub burst_connections: Vec<ConnectionLoad>,
}

/// One connection's share of a run, from the pool's per-connection stats.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionLoad {
    /// The pool's number for the connection.
    pub id: u64,
    pub address: String,
    /// Calls it carried.
    pub calls: u64,
}

/// The emulated round-trip section: client rows through the delay proxy (round_trip.rs).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundTrip {
    /// Counted and warm-up seconds of each driver run (one round).
    pub seconds: f64,
    pub warmup: f64,
    /// The TLS server key's algorithm; empty without a TLS run.
    pub tls_key: String,
    pub rows: Vec<RoundTripRow>,
    /// Why part of it did not run.
    pub notes: Vec<String>,
    /// Load average before and after it.
    pub load: String,
}

/// One client at one delay, transport and concurrency.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundTripRow {
    /// The delay the proxy added each way, milliseconds.
    pub one_way_ms: f64,
    /// Connections the client opened through the proxy, warm-up included.
    pub proxy_connections: u64,
    #[serde(flatten)]
    pub cell: Cell,
}

#[derive(Serialize)]
struct Results<'a> {
    meta: &'a Meta,
    cells: &'a [Cell],
    scale: &'a Option<Scale>,
    round_trip: &'a Option<RoundTrip>,
}

/// The whole run as pretty JSON.
pub fn json(
    meta: &Meta,
    cells: &[Cell],
    scale: &Option<Scale>,
    round_trip: &Option<RoundTrip>,
) -> String {
    serde_json::to_string_pretty(&Results {
        meta,
        cells,
        scale,
        round_trip,
    })
    .unwrap_or_default()
}

/// The round-trip rows as CSV: the delay and connections opened, then the matrix's columns.
pub fn round_trip_csv(round_trip: &RoundTrip) -> String {
    let cells: Vec<Cell> = round_trip.rows.iter().map(|row| row.cell.clone()).collect();
    let text = csv(&cells);
    let mut lines = text.lines();
    let mut out = format!(
        "one_way_ms,proxy_connections,{}\n",
        lines.next().unwrap_or_default()
    );
    for (row, line) in round_trip.rows.iter().zip(lines) {
        let _ = writeln!(out, "{},{},{line}", row.one_way_ms, row.proxy_connections);
    }
    out
}

/// One row per client and cell.
pub fn csv(cells: &[Cell]) -> String {
    let mut out = String::from(
        "server,transport,client,face,ours,concurrency,payload,connections,rounds,calls,errors,qps,p50_us,p99_us,cpu_us_per_call,peak_rss_kib,spread_pct,note\n",
    );
    for cell in cells {
        let note = cell.note.as_deref().unwrap_or("").replace('"', "'");
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.1},{},{:.2},{},{:.1},\"{}\"",
            cell.server,
            cell.transport,
            cell.client,
            cell.face,
            cell.ours,
            cell.concurrency,
            cell.payload,
            cell.connections,
            cell.rounds,
            cell.calls,
            cell.errors,
            cell.qps,
            cell.p50_us,
            cell.p99_us.map_or(String::new(), |p99| format!("{p99:.1}")),
            cell.cpu_us_per_call,
            cell.peak_rss_kib,
            cell.spread_pct,
            note
        );
    }
    out
}

/// Cells grouped by what a plot or a table holds: server, transport, payload, connections.
fn series_groups(cells: &[Cell]) -> BTreeMap<(String, String, usize, usize), Vec<&Cell>> {
    let mut groups: BTreeMap<_, Vec<&Cell>> = BTreeMap::new();
    for cell in cells {
        groups
            .entry((
                cell.server.clone(),
                cell.transport.clone(),
                cell.payload,
                cell.connections,
            ))
            .or_default()
            .push(cell);
    }
    groups
}

/// The file name stem of a group's plots.
pub fn plot_stem(server: &str, transport: &str, payload: usize, connections: usize) -> String {
    format!("{server}-{transport}-{payload}b-k{connections}")
}

/// The grpcpool row a peer is compared with: the same face's grpcpool client when there is one
/// in the cell, else the Rust async API.
pub fn baseline<'a>(cell: &Cell, cells: &[&'a Cell]) -> Option<&'a Cell> {
    let same_cell = |other: &&&Cell| {
        other.ours
            && other.concurrency == cell.concurrency
            && other.note.is_none()
            && other.qps > 0.0
    };
    fn face(face: &str) -> &str {
        match face {
            "c" | "go" => "rust",
            other => other,
        }
    }
    cells
        .iter()
        .filter(same_cell)
        .find(|other| face(&other.face) == face(&cell.face) && other.face != "c")
        .or_else(|| {
            cells
                .iter()
                .filter(same_cell)
                .find(|other| other.client == "grpcpool")
        })
        .copied()
}

fn fmt_rss(kib: u64) -> String {
    if kib >= 10 * 1024 {
        format!("{:.0} MiB", kib as f64 / 1024.0)
    } else {
        format!("{kib} KiB")
    }
}

/// The Markdown report: how it ran, then one table per server, transport, payload and
/// connections, each client at each concurrency with the ratio to grpcpool; then the emulated
/// round trip and the scale run, when they ran.
pub fn markdown(
    meta: &Meta,
    cells: &[Cell],
    scale: &Option<Scale>,
    round_trip: &Option<RoundTrip>,
    plots_dir: &str,
) -> String {
    let mut out = String::from("# Benchmarks\n\n");
    out.push_str(
        "Generated by `cargo run --release -p grpcpool-bench` (see README.md, Benchmarks). Do not \
         edit by hand: rerun and commit the output.\n\n",
    );
    let _ = writeln!(
        out,
        "Mode `{}`: {} round(s) of {} s after {} s of warm-up per client and cell, the median \
         quoted with the QPS spread over rounds (±half the range). {} CPU(s); pinning: {}. Load \
         average before: {}; after: {}. Shared machines are noisy: read the ratios, which come \
         from clients run in turn within each round, more than the absolute figures.\n",
        meta.mode,
        meta.rounds,
        meta.seconds,
        meta.warmup,
        meta.cpus,
        meta.pinned,
        meta.load_before,
        meta.load_after
    );
    out.push_str(
        "Columns: QPS; p50 and p99 latency in µs; client CPU µs per call (getrusage of the client \
         process over the counted window); the client's peak RSS; and against the grpcpool row of \
         the same language (the Rust async API for Rust, C, Go and h2load peers) `qps ×` = \
         grpcpool QPS / peer QPS (above 1: grpcpool faster) and `cpu ×` = grpcpool CPU per call / \
         peer CPU per call (below 1: grpcpool cheaper).\n\n",
    );
    if cells
        .iter()
        .any(|cell| cell.face == "node" && cell.note.is_none())
    {
        out.push_str(
            "The Node rows warm up past that until 5,000 calls are done (at most 4 s): V8 \
             optimizes their JavaScript only after thousands of calls (bench/node/driver.js).\n\n",
        );
    }
    if !meta.not_available.is_empty() {
        out.push_str("Not available in this run:\n\n");
        for note in &meta.not_available {
            let _ = writeln!(out, "- {note}");
        }
        out.push('\n');
    }
    for ((server, transport, payload, connections), group) in series_groups(cells) {
        let _ = writeln!(
            out,
            "## {server} server, {transport}, {payload} B payload, {connections} connection(s)\n"
        );
        let stem = plot_stem(&server, &transport, payload, connections);
        let _ = writeln!(
            out,
            "Plots: [QPS]({plots_dir}/qps-{stem}.svg), [p99]({plots_dir}/p99-{stem}.svg)\n"
        );
        let mut concurrencies: Vec<usize> = group.iter().map(|cell| cell.concurrency).collect();
        concurrencies.sort_unstable();
        concurrencies.dedup();
        for concurrency in concurrencies {
            let _ = writeln!(out, "c = {concurrency}\n");
            out.push_str(
                "| client | QPS | p50 µs | p99 µs | CPU µs/call | peak RSS | qps × | cpu × |\n",
            );
            out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
            let row_cells: Vec<&Cell> = group
                .iter()
                .filter(|cell| cell.concurrency == concurrency)
                .copied()
                .collect();
            for cell in &row_cells {
                if let Some(note) = &cell.note {
                    let _ = writeln!(out, "| {} | {note} | | | | | | |", cell.client);
                    continue;
                }
                let (qps_ratio, cpu_ratio) = match baseline(cell, &row_cells) {
                    Some(ours) if !cell.ours && cell.qps > 0.0 && cell.cpu_us_per_call > 0.0 => (
                        format!("{:.2}", ours.qps / cell.qps),
                        format!("{:.2}", ours.cpu_us_per_call / cell.cpu_us_per_call),
                    ),
                    _ => (String::new(), String::new()),
                };
                let name = if cell.ours {
                    format!("**{}**", cell.client)
                } else {
                    cell.client.clone()
                };
                let errors = if cell.errors > 0 {
                    format!(" ({} errors)", cell.errors)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    out,
                    "| {name} | {:.0} ±{:.0}%{errors} | {:.0} | {} | {:.1} | {} | {qps_ratio} | {cpu_ratio} |",
                    cell.qps,
                    cell.spread_pct / 2.0,
                    cell.p50_us,
                    cell.p99_us.map_or("-".to_owned(), |p99| format!("{p99:.0}")),
                    cell.cpu_us_per_call,
                    fmt_rss(cell.peak_rss_kib),
                );
            }
            out.push('\n');
        }
    }
    if let Some(round_trip) = round_trip {
        out.push_str(&round_trip_section(round_trip));
    }
    if let Some(scale) = scale {
        out.push_str("## Scale\n\n");
        out.push_str(
            "grpcpool's Rust core in a client process of its own against the tonic echo server \
             (one child process listening on many loopback ports), plaintext, 1 KiB requests. RSS \
             deltas are read from /proc/self/statm around each phase, so they include allocator \
             slack and per-target state; the heap figures (glibc's mallinfo2, bytes allocated and not \
             freed) are the finer measure. Read both as orders of magnitude.\n\n",
        );
        if scale.at_scale_calls > 0 {
            let _ = writeln!(
                out,
                "The held-at-scale rows are a phase of their own, last: the earlier pools are \
                 dropped and the heap trimmed (malloc_trim), then one pool of {} connections \
                 fires {} calls at once on one target, each held by the server long enough \
                 that all are in flight together. Hold and deadline scale with the calls, \
                 planned from a pilot of free calls ({:.0} calls/s here); the phase gives up \
                 on calls still out after 60 s. RSS before is the client with that pool's \
                 connections open; at the peak, the whole client process.\n",
                scale.at_scale_connections,
                scale.at_scale_calls,
                scale.at_scale_pilot_calls_per_second
            );
        }
        if !scale.load.is_empty() {
            let _ = writeln!(out, "Load average around the scale run: {}.\n", scale.load);
        }
        if let Some(note) = &scale.note {
            let _ = writeln!(out, "Note: {note}\n");
        }
        out.push_str("| figure | value |\n|---|---:|\n");
        for (figure, value) in scale_rows(scale) {
            let _ = writeln!(out, "| {figure} | {value} |");
        }
        out.push('\n');
        out.push_str(&connection_view(&scale.burst_connections));
    }
    out
}

/// The heading of the emulated round-trip section.
pub const ROUND_TRIP_HEADING: &str = "## Emulated round trip";

/// The emulated round-trip section: each row's figures, with its p50 in round trips.
pub fn round_trip_section(round_trip: &RoundTrip) -> String {
    let mut out = format!("{ROUND_TRIP_HEADING}\n\n");
    let tls_key = if round_trip.tls_key.is_empty() {
        String::new()
    } else {
        format!(" (TLS: the server's key is {})", round_trip.tls_key)
    };
    let _ = writeln!(
        out,
        "The tonic echo server behind a userspace TCP delay proxy (bench/src/delay_proxy.rs) that \
         holds every byte D one way in each direction, so a round trip (RTT) takes 2·D and a new \
         connection waits one RTT for its TCP handshake before its first byte crosses; 1 KiB \
         requests{tls_key}, {} s per row after {} s of warm-up, one round. `grpcpool` keeps its \
         connection open and pays one RTT per call; `dial-per-call` opens a new channel for each \
         call and also pays the handshakes across the link: one more RTT in plaintext (TCP's; the \
         HTTP/2 client sends its request right behind its preface, without waiting for the \
         server's SETTINGS), two more with TLS 1.3 (TCP's, then TLS's), and their CPU. `p50 / RTT` is p50 over 2·D; `connections`, those the \
         client opened through the proxy.\n",
        round_trip.seconds, round_trip.warmup
    );
    if !round_trip.load.is_empty() {
        let _ = writeln!(out, "Load average around it: {}.\n", round_trip.load);
    }
    for note in &round_trip.notes {
        let _ = writeln!(out, "Note: {note}\n");
    }
    if round_trip.rows.is_empty() {
        return out;
    }
    out.push_str(
        "| one way | transport | c | client | QPS | p50 ms | p99 ms | p50 / RTT | connections |\n\
         |---:|---|---:|---|---:|---:|---:|---:|---:|\n",
    );
    for row in &round_trip.rows {
        let cell = &row.cell;
        let name = if cell.ours {
            format!("**{}**", cell.client)
        } else {
            cell.client.clone()
        };
        let lead = format!(
            "| {} ms | {} | {} | {name} |",
            row.one_way_ms, cell.transport, cell.concurrency
        );
        if let Some(note) = &cell.note {
            let _ = writeln!(out, "{lead} {note} | | | | |");
            continue;
        }
        let errors = if cell.errors > 0 {
            format!(" ({} errors)", cell.errors)
        } else {
            String::new()
        };
        let rtt_us = 2.0 * row.one_way_ms * 1e3;
        let in_rtts = if rtt_us > 0.0 {
            format!("{:.2}", cell.p50_us / rtt_us)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{lead} {:.0}{errors} | {:.2} | {} | {in_rtts} | {} |",
            cell.qps,
            cell.p50_us / 1e3,
            cell.p99_us
                .map_or("-".to_owned(), |p99| format!("{:.2}", p99 / 1e3)),
            row.proxy_connections
        );
    }
    out.push('\n');
    out
}

/// The per-connection view of the burst: how its calls spread over the pool's connections.
pub fn connection_view(connections: &[ConnectionLoad]) -> String {
    let total: u64 = connections.iter().map(|connection| connection.calls).sum();
    if connections.is_empty() || total == 0 {
        return String::new();
    }
    let mut out = format!(
        "Per-connection view: the burst pool's {} connections to one target, over the held \
         leases and both bursts ({total} calls); the least-loaded pick spreads them.\n\n\
         | connection | address | calls | share |\n|---:|---|---:|---:|\n",
        connections.len()
    );
    for connection in connections {
        let share = 100.0 * connection.calls as f64 / total as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {share:.1}% |",
            connection.id, connection.address, connection.calls
        );
    }
    out.push('\n');
    out
}

/// The scale figures as (figure, value with unit) rows, for the report and the CSV.
pub fn scale_rows(scale: &Scale) -> Vec<(String, String)> {
    let connections = scale.targets * scale.connections_per_target;
    let heap = |value: f64, unit: &str| {
        if value > 0.0 {
            format!(" (heap {value:.1} {unit})")
        } else {
            String::new()
        }
    };
    let mut rows = vec![
        (
            "targets x connections each (ready / asked)".into(),
            format!(
                "{} x {} ({} / {connections})",
                scale.targets, scale.connections_per_target, scale.connections_ready
            ),
        ),
        (
            "time to warm every connection".into(),
            format!("{:.2} s", scale.warm_seconds),
        ),
        (
            "client RSS, every connection open and idle".into(),
            fmt_rss(scale.rss_after_warm_kib),
        ),
        (
            "memory per idle connection: RSS (heap)".into(),
            format!(
                "{:.1} KiB{}",
                scale.rss_idle_connections_kib_each,
                heap(scale.heap_idle_connection_kib_each, "KiB")
            ),
        ),
        (
            format!(
                "calls spread over every target, c = {}: QPS",
                scale.spread_concurrency
            ),
            format!("{:.0}", scale.spread_qps),
        ),
        (
            "calls spread over every target: p50 / p99".into(),
            format!("{:.0} / {:.0} µs", scale.spread_p50_us, scale.spread_p99_us),
        ),
        (
            "calls spread over every target: CPU per call / errors".into(),
            format!(
                "{:.1} µs / {}",
                scale.spread_cpu_us_per_call, scale.spread_errors
            ),
        ),
        (
            format!(
                "memory per held lease, {} held at once: RSS (heap)",
                scale.leases
            ),
            format!(
                "{:.2} KiB{}",
                scale.rss_leases_kib_each,
                heap(scale.heap_lease_bytes_each, "B")
            ),
        ),
        (
            "burst: calls started at once on one target (OK)".into(),
            format!("{} ({})", scale.in_flight, scale.in_flight_ok),
        ),
        (
            "burst: time until all completed".into(),
            format!("{:.2} s", scale.in_flight_seconds),
        ),
        (
            "burst: p50 / p99".into(),
            format!(
                "{:.0} / {:.0} µs",
                scale.in_flight_p50_us, scale.in_flight_p99_us
            ),
        ),
        (
            format!(
                "held burst, each call held {} ms by the server (OK)",
                scale.held_ms
            ),
            format!("{} ({})", scale.in_flight, scale.held_ok),
        ),
        (
            "held burst: most in flight at once (pool stats, sampled)".into(),
            scale.held_peak_in_flight.to_string(),
        ),
        (
            "held burst: time until all completed".into(),
            format!("{:.2} s", scale.held_seconds),
        ),
        (
            "memory per call in flight: RSS (heap)".into(),
            format!(
                "{:.2} KiB{}",
                scale.rss_in_flight_kib_each,
                heap(scale.heap_in_flight_kib_each, "KiB")
            ),
        ),
        (
            // Read before the held-at-scale phase, which has its own peak below.
            if scale.at_scale_calls > 0 {
                "peak RSS of the client process, before held at scale".into()
            } else {
                "peak RSS of the client process".into()
            },
            fmt_rss(scale.in_flight_peak_rss_kib),
        ),
    ];
    if scale.at_scale_calls > 0 {
        rows.extend(at_scale_rows(scale, heap));
    }
    if scale.server_peak_rss_kib > 0 {
        rows.push((
            "peak RSS of the server process (serve-many, every phase)".into(),
            fmt_rss(scale.server_peak_rss_kib),
        ));
    }
    rows
}

/// The held-at-scale rows, once that phase ran.
fn at_scale_rows(scale: &Scale, heap: impl Fn(f64, &str) -> String) -> Vec<(String, String)> {
    vec![
        (
            format!(
                "held at scale: calls started at once on one target, each held {} ms (OK)",
                scale.at_scale_hold_ms
            ),
            format!("{} ({})", scale.at_scale_calls, scale.at_scale_ok),
        ),
        (
            "held at scale: its pool's connections x streams each; deadline".into(),
            format!(
                "{} x {}; {:.1} s",
                scale.at_scale_connections,
                scale.at_scale_streams_per_connection,
                scale.at_scale_deadline_ms as f64 / 1000.0
            ),
        ),
        (
            "held at scale: most in flight at once (pool stats, sampled)".into(),
            scale.at_scale_peak_in_flight.to_string(),
        ),
        (
            "held at scale: time until all completed (whole phase)".into(),
            format!(
                "{:.2} s ({:.1} s)",
                scale.at_scale_seconds, scale.at_scale_phase_seconds
            ),
        ),
        (
            "held at scale: client RSS before / at the peak".into(),
            format!(
                "{} / {}",
                fmt_rss(scale.at_scale_rss_before_kib),
                fmt_rss(scale.at_scale_peak_rss_kib)
            ),
        ),
        (
            "held at scale: memory per call in flight: RSS (heap) at the peaks".into(),
            format!(
                "{:.2} KiB{}",
                scale.at_scale_rss_kib_each,
                heap(scale.at_scale_heap_kib_each, "KiB")
            ),
        ),
        (
            "held at scale: heap per call, all held and settled".into(),
            if scale.at_scale_heap_settled_kib_each > 0.0 {
                format!("{:.2} KiB", scale.at_scale_heap_settled_kib_each)
            } else {
                "unknown (no mallinfo2)".into()
            },
        ),
    ]
}

/// The scale figures as CSV: one row per field, machine-readable names and plain numbers.
pub fn scale_csv(scale: &Scale) -> String {
    let mut out = String::from("figure,value\n");
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(scale) {
        for (name, value) in fields {
            let value = match value {
                serde_json::Value::String(text) => format!("\"{}\"", text.replace('"', "'")),
                serde_json::Value::Null => String::new(),
                // The per-connection view is a table of its own, in the report.
                serde_json::Value::Array(_) => continue,
                other => other.to_string(),
            };
            let _ = writeln!(out, "{name},{value}");
        }
    }
    out
}

const COLORS: [&str; 12] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#000000", "#aec7e8",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A line plot of one figure against concurrency (log scale), a line per client.
pub fn svg(title: &str, y_label: &str, series: &[(String, Vec<(usize, f64)>)]) -> String {
    let (width, height) = (720.0, 420.0);
    let (left, right, top, bottom) = (70.0, 190.0, 40.0, 50.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let points = series.iter().flat_map(|(_, points)| points.iter());
    let (mut x_min, mut x_max, mut y_max) = (f64::MAX, f64::MIN, 0.0_f64);
    for &(x, y) in points {
        x_min = x_min.min((x.max(1) as f64).log2());
        x_max = x_max.max((x.max(1) as f64).log2());
        if y.is_finite() {
            y_max = y_max.max(y);
        }
    }
    if x_min > x_max {
        (x_min, x_max) = (0.0, 1.0);
    }
    if x_max - x_min < 1e-9 {
        x_max = x_min + 1.0;
    }
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let sx = |x: usize| left + ((x.max(1) as f64).log2() - x_min) / (x_max - x_min) * plot_w;
    let sy = |y: f64| top + plot_h - y / y_max * plot_h;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" font-size="14" text-anchor="middle">{}</text>"#,
        left + plot_w / 2.0,
        escape(title)
    );
    // Axes, y grid with five ticks, x ticks at each concurrency seen.
    let _ = writeln!(
        out,
        r#"<path d="M{left} {top} V{} H{}" stroke="black" fill="none"/>"#,
        top + plot_h,
        left + plot_w
    );
    for tick in 0..=5 {
        let value = y_max * tick as f64 / 5.0;
        let y = sy(value);
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0,
            short(value)
        );
    }
    let mut xs: Vec<usize> = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(x, _)| *x))
        .collect();
    xs.sort_unstable();
    xs.dedup();
    for x in xs {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{x}</text>"#,
            sx(x),
            top + plot_h + 18.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">concurrency (calls in flight)</text>"#,
        left + plot_w / 2.0,
        height - 10.0
    );
    let _ = writeln!(
        out,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + plot_h / 2.0,
        escape(y_label)
    );
    for (index, (name, points)) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .filter(|(_, y)| y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for point in &path {
            let (x, y) = point.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(out, r#"<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>"#);
        }
        let legend_y = top + 16.0 * index as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{:.1}" y1="{legend_y:.1}" x2="{:.1}" y2="{legend_y:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            left + plot_w + 12.0,
            left + plot_w + 32.0,
            left + plot_w + 38.0,
            legend_y + 4.0,
            escape(name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn short(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Every plot of a run: (file name, SVG) pairs, QPS and p99 per server, transport, payload and
/// connections, a line per client.
pub fn plots(cells: &[Cell]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for ((server, transport, payload, connections), group) in series_groups(cells) {
        let mut clients: Vec<&str> = Vec::new();
        for cell in &group {
            if cell.note.is_none() && !clients.contains(&cell.client.as_str()) {
                clients.push(&cell.client);
            }
        }
        let series = |field: fn(&Cell) -> Option<f64>| -> Vec<(String, Vec<(usize, f64)>)> {
            clients
                .iter()
                .map(|client| {
                    let mut points: Vec<(usize, f64)> = group
                        .iter()
                        .filter(|cell| cell.client == *client && cell.note.is_none())
                        .filter_map(|cell| field(cell).map(|value| (cell.concurrency, value)))
                        .collect();
                    points.sort_by_key(|(x, _)| *x);
                    (client.to_string(), points)
                })
                .filter(|(_, points)| !points.is_empty())
                .collect()
        };
        let stem = plot_stem(&server, &transport, payload, connections);
        let what = format!("{server} server, {transport}, {payload} B, {connections} conn");
        out.push((
            format!("qps-{stem}.svg"),
            svg(
                &format!("QPS, {what}"),
                "calls per second",
                &series(|cell| Some(cell.qps)),
            ),
        ));
        out.push((
            format!("p99-{stem}.svg"),
            svg(
                &format!("p99 latency, {what}"),
                "p99 latency (µs)",
                &series(|cell| cell.p99_us),
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(client: &str, ours: bool, concurrency: usize, qps: f64) -> Cell {
        Cell {
            server: "tonic".into(),
            transport: "plaintext".into(),
            client: client.into(),
            face: "rust".into(),
            ours,
            concurrency,
            payload: 0,
            connections: 1,
            rounds: 1,
            calls: 10,
            qps,
            p50_us: 100.0,
            p99_us: Some(200.0),
            cpu_us_per_call: qps / 1000.0,
            peak_rss_kib: 2048,
            ..Cell::default()
        }
    }

    fn sample() -> Vec<Cell> {
        vec![
            cell("grpcpool", true, 1, 2000.0),
            cell("tonic-channel", false, 1, 1000.0),
            cell("grpcpool", true, 16, 8000.0),
            cell("tonic-channel", false, 16, 4000.0),
            Cell {
                note: Some("not available: no node".into()),
                ..cell("node-grpc-js", false, 16, 0.0)
            },
        ]
    }

    #[test]
    fn csv_has_a_row_per_cell() {
        let text = csv(&sample());
        assert_eq!(text.lines().count(), 6);
        assert!(text
            .lines()
            .nth(1)
            .unwrap_or("")
            .starts_with("tonic,plaintext,grpcpool,rust,true,1,0,1,"));
        assert!(text.contains("\"not available: no node\""));
    }

    #[test]
    fn json_round_trips_through_serde() {
        let text = json(&Meta::default(), &sample(), &None, &None);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(value["cells"].as_array().map(Vec::len), Some(5));
        assert_eq!(value["cells"][1]["qps"], 1000.0);
    }

    #[test]
    fn markdown_puts_the_ratio_beside_the_peer() {
        let text = markdown(&Meta::default(), &sample(), &None, &None, "plots");
        assert!(
            text.contains(
                "| tonic-channel | 1000 ±0% | 100 | 200 | 1.0 | 2048 KiB | 2.00 | 2.00 |"
            ),
            "{text}"
        );
        assert!(text.contains("| **grpcpool** | 8000"));
        assert!(text.contains("not available: no node"));
        assert!(text.contains("plots/qps-tonic-plaintext-0b-k1.svg"));
        assert!(!text.contains("The Node rows warm up"));
    }

    #[test]
    fn markdown_notes_the_node_warm_up_when_node_rows_ran() {
        let mut cells = sample();
        cells.push(Cell {
            face: "node".into(),
            ..cell("node-grpcpool", true, 16, 5000.0)
        });
        let text = markdown(&Meta::default(), &cells, &None, &None, "plots");
        assert!(text.contains("The Node rows warm up past that"), "{text}");
    }

    #[test]
    fn scale_goes_to_markdown_and_csv() {
        let scale = Scale {
            targets: 200,
            connections_per_target: 2,
            connections_ready: 400,
            rss_idle_connections_kib_each: 24.0,
            note: Some("a note".into()),
            burst_connections: vec![
                ConnectionLoad {
                    id: 7,
                    address: "127.0.0.1:1".into(),
                    calls: 300,
                },
                ConnectionLoad {
                    id: 8,
                    address: "127.0.0.1:1".into(),
                    calls: 100,
                },
            ],
            ..Scale::default()
        };
        let text = markdown(
            &Meta::default(),
            &sample(),
            &Some(scale.clone()),
            &None,
            "plots",
        );
        assert!(text.contains("## Scale"), "{text}");
        assert!(
            text.contains(
                "connections to one target, over the held leases and both bursts (400 calls)"
            ),
            "{text}"
        );
        assert!(text.contains("| 7 | 127.0.0.1:1 | 300 | 75.0% |"), "{text}");
        assert!(text.contains("| 200 x 2 (400 / 400) |"), "{text}");
        assert!(
            text.contains("| memory per idle connection: RSS (heap) | 24.0 KiB |"),
            "{text}"
        );
        assert!(text.contains("Note: a note"));
        let csv = scale_csv(&scale);
        assert!(csv.starts_with("figure,value\n"));
        assert!(csv.contains("\ntargets,200\n"), "{csv}");
        assert!(csv.contains("\nnote,\"a note\"\n"), "{csv}");
        let back: Scale =
            serde_json::from_str(&json(&Meta::default(), &[], &Some(scale.clone()), &None))
                .map(|value: serde_json::Value| {
                    serde_json::from_value(value["scale"].clone()).unwrap_or_default()
                })
                .unwrap_or_default();
        assert_eq!(back, scale);
    }

    #[test]
    fn held_at_scale_rows_only_once_it_ran_and_older_json_still_reads() {
        let before = Scale {
            targets: 1000,
            connections_per_target: 2,
            ..Scale::default()
        };
        let rows = |scale: &Scale| -> Vec<String> {
            scale_rows(scale)
                .into_iter()
                .map(|(figure, value)| format!("{figure} = {value}"))
                .collect()
        };
        assert!(!rows(&before)
            .iter()
            .any(|row| row.contains("held at scale")));
        // A results.json written before these fields existed.
        let mut old = serde_json::to_value(&before).unwrap_or_default();
        if let serde_json::Value::Object(fields) = &mut old {
            fields.retain(|name, _| !name.starts_with("at_scale") && name != "server_peak_rss_kib");
        }
        let read: Result<Scale, _> = serde_json::from_value(old);
        assert_eq!(read.ok(), Some(before.clone()));
        let scale = Scale {
            at_scale_calls: 100_000,
            at_scale_connections: 40,
            at_scale_streams_per_connection: 2_600,
            at_scale_pilot_calls_per_second: 14_000.0,
            at_scale_hold_ms: 15_110,
            at_scale_deadline_ms: 41_300,
            at_scale_ok: 100_000,
            at_scale_peak_in_flight: 100_000,
            at_scale_seconds: 28.57,
            at_scale_phase_seconds: 29.5,
            at_scale_rss_before_kib: 21 * 1024,
            at_scale_peak_rss_kib: 716 * 1024,
            at_scale_rss_kib_each: 7.11,
            at_scale_heap_kib_each: 7.9,
            at_scale_heap_settled_kib_each: 4.3,
            server_peak_rss_kib: 1010 * 1024,
            ..before
        };
        let rows = rows(&scale);
        for expected in [
            "held at scale: calls started at once on one target, each held 15110 ms (OK) = 100000 (100000)",
            "held at scale: its pool's connections x streams each; deadline = 40 x 2600; 41.3 s",
            "held at scale: most in flight at once (pool stats, sampled) = 100000",
            "held at scale: time until all completed (whole phase) = 28.57 s (29.5 s)",
            "held at scale: client RSS before / at the peak = 21 MiB / 716 MiB",
            "held at scale: memory per call in flight: RSS (heap) at the peaks = 7.11 KiB (heap 7.9 KiB)",
            "held at scale: heap per call, all held and settled = 4.30 KiB",
            "peak RSS of the server process (serve-many, every phase) = 1010 MiB",
            "peak RSS of the client process, before held at scale = 0 KiB",
        ] {
            assert!(rows.iter().any(|row| row == expected), "{expected}: {rows:?}");
        }
        let text = markdown(&Meta::default(), &[], &Some(scale.clone()), &None, "plots");
        assert!(
            text.contains("one pool of 40 connections fires 100000 calls"),
            "{text}"
        );
        assert!(
            text.contains("| held at scale: client RSS before / at the peak | 21 MiB / 716 MiB |")
        );
        assert!(scale_csv(&scale).contains("\nat_scale_peak_rss_kib,733184\n"));
    }

    #[test]
    fn the_round_trip_goes_to_markdown_json_and_csv() {
        let row = |one_way_ms: f64, client: &str, ours: bool, p50_us: f64, connections: u64| {
            RoundTripRow {
                one_way_ms,
                proxy_connections: connections,
                cell: Cell {
                    p50_us,
                    p99_us: Some(p50_us * 1.5),
                    ..cell(client, ours, 16, 500.0)
                },
            }
        };
        let round_trip = RoundTrip {
            seconds: 3.0,
            warmup: 0.5,
            tls_key: "RSA-2048".into(),
            rows: vec![
                row(1.0, "grpcpool", true, 2_100.0, 1),
                row(1.0, "dial-per-call", false, 4_400.0, 1500),
                RoundTripRow {
                    one_way_ms: 10.0,
                    cell: Cell {
                        note: Some("failed: it broke".into()),
                        ..cell("dial-per-call", false, 1, 0.0)
                    },
                    ..RoundTripRow::default()
                },
            ],
            notes: vec!["tonic server, tls: no".into()],
            load: "before 1, after 2".into(),
        };
        let some = Some(round_trip.clone());
        let text = markdown(&Meta::default(), &sample(), &None, &some, "plots");
        assert!(text.contains("\n## Emulated round trip\n"), "{text}");
        assert!(text.contains("the server's key is RSA-2048"), "{text}");
        assert!(
            text.contains(
                "| 1 ms | plaintext | 16 | **grpcpool** | 500 | 2.10 | 3.15 | 1.05 | 1 |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| 1 ms | plaintext | 16 | dial-per-call | 500 | 4.40 | 6.60 | 2.20 | 1500 |"
            ),
            "{text}"
        );
        assert!(text.contains("| 10 ms | plaintext | 1 | dial-per-call | failed: it broke |"));
        assert!(text.contains("Note: tonic server, tls: no"));
        let without = markdown(&Meta::default(), &sample(), &None, &None, "plots");
        assert!(!without.contains(ROUND_TRIP_HEADING));
        let value: serde_json::Value =
            serde_json::from_str(&json(&Meta::default(), &[], &None, &some)).unwrap_or_default();
        assert_eq!(value["round_trip"]["rows"][1]["proxy_connections"], 1500);
        assert_eq!(value["round_trip"]["rows"][1]["client"], "dial-per-call");
        let csv = round_trip_csv(&round_trip);
        assert!(csv.starts_with("one_way_ms,proxy_connections,server,transport,client,"));
        assert_eq!(csv.lines().count(), 4);
        assert!(
            csv.contains("\n1,1500,tonic,plaintext,dial-per-call,"),
            "{csv}"
        );
    }

    #[test]
    fn svg_is_well_formed_with_a_line_per_client() {
        let plots = plots(&sample());
        assert_eq!(plots.len(), 2);
        let (name, text) = &plots[0];
        assert_eq!(name, "qps-tonic-plaintext-0b-k1.svg");
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
        assert_eq!(text.matches("<polyline").count(), 2);
        assert_eq!(text.matches("<svg").count(), 1);
        // Empty input still makes a valid document.
        assert!(svg("t", "y", &[]).trim_end().ends_with("</svg>"));
    }
}
