//! Per-method call metrics of each target, and the pool's metrics in the Prometheus text
//! exposition format, named as gRPC's OpenTelemetry client metrics (gRPC A66) come out of the
//! OpenTelemetry Prometheus exporter: `grpc_client_attempt_started_total`,
//! `grpc_client_attempt_duration_seconds` and `grpc_client_call_duration_seconds`, labelled
//! `grpc_method`, `grpc_target` and `grpc_status`; beside them the pool's own `grpcpool_*`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::RwLock;
use rustc_hash::FxHashMap;

use crate::stats::{TargetStats, XdsStats};
use crate::Code;

/// Distinct methods kept per target; calls to any further method count under "other", so a
/// caller naming methods from user input cannot grow the pool's memory without bound.
const MAX_METHODS: usize = 100;

/// A66's latency bucket boundaries, in seconds.
const BUCKETS: [f64; 41] = [
    0.0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002, 0.003, 0.004, 0.005,
    0.006, 0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13, 0.16,
    0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0,
];

/// Durations counted into A66's buckets (each bucket alone; the text sums them up).
struct Durations {
    /// `buckets[i]` counts durations at most `BUCKETS[i]` and above the one before; the last
    /// counts those above every boundary.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Durations {
    fn new() -> Durations {
        Durations {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn record(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = BUCKETS.partition_point(|bound| *bound < seconds);
        self.buckets[bucket].fetch_add(1, Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }
}

/// One duration histogram per status, made when that status is first seen.
struct ByStatus([OnceLock<Box<Durations>>; 17]);

impl ByStatus {
    fn new() -> ByStatus {
        ByStatus(std::array::from_fn(|_| OnceLock::new()))
    }

    fn record(&self, code: Code, duration: Duration) {
        self.0[code as usize]
            .get_or_init(|| Box::new(Durations::new()))
            .record(duration);
    }
}

/// The metrics of one method of one target.
pub(crate) struct MethodStats {
    attempts_started: AtomicU64,
    attempts: ByStatus,
    calls: ByStatus,
}

impl MethodStats {
    fn new() -> MethodStats {
        MethodStats {
            attempts_started: AtomicU64::new(0),
            attempts: ByStatus::new(),
            calls: ByStatus::new(),
        }
    }

    /// An attempt (the first, a retry, a hedge or a transparent retry) goes out.
    pub(crate) fn attempt_started(&self) {
        self.attempts_started.fetch_add(1, Relaxed);
    }

    /// An attempt ended with `code` after `duration`.
    pub(crate) fn attempt_ended(&self, code: Code, duration: Duration) {
        self.attempts.record(code, duration);
    }

    /// The call ended with `code` after `duration`, every attempt included.
    pub(crate) fn call_ended(&self, code: Code, duration: Duration) {
        self.calls.record(code, duration);
    }
}

/// The per-method metrics of one target.
pub(crate) struct MethodMetrics {
    /// Fx-hashed: looked up on every call and attempt, keyed by the program's method paths.
    methods: RwLock<FxHashMap<String, Arc<MethodStats>>>,
    other: Arc<MethodStats>,
}

impl Default for MethodMetrics {
    fn default() -> MethodMetrics {
        MethodMetrics {
            methods: RwLock::new(FxHashMap::default()),
            other: Arc::new(MethodStats::new()),
        }
    }
}

impl MethodMetrics {
    /// The stats of `path` (`/package.Service/Method`); past [`MAX_METHODS`] distinct
    /// methods, those of "other".
    pub(crate) fn of(&self, path: &str) -> Arc<MethodStats> {
        let name = path.strip_prefix('/').unwrap_or(path);
        if let Some(stats) = self.methods.read().get(name) {
            return Arc::clone(stats);
        }
        let mut methods = self.methods.write();
        if let Some(stats) = methods.get(name) {
            return Arc::clone(stats);
        }
        if methods.len() >= MAX_METHODS {
            return Arc::clone(&self.other);
        }
        let stats = Arc::new(MethodStats::new());
        methods.insert(name.to_owned(), Arc::clone(&stats));
        stats
    }

    fn each(&self, mut visit: impl FnMut(&str, &MethodStats)) {
        let methods = self.methods.read();
        let mut names: Vec<&String> = methods.keys().collect();
        names.sort();
        for name in names {
            visit(name, &methods[name]);
        }
        visit("other", &self.other);
    }
}

/// One target's part of the text: its name, its per-method metrics and its counters.
pub(crate) struct TargetMetrics<'a> {
    pub(crate) methods: &'a MethodMetrics,
    pub(crate) stats: TargetStats,
}

/// The pool's metrics in the Prometheus text exposition format (version 0.0.4).
pub(crate) fn render(targets: &[TargetMetrics<'_>], xds: Option<&XdsStats>) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "grpc_client_attempt_started_total",
        "counter",
        "Attempts started, retries, hedges and transparent retries included (gRPC A66).",
    );
    for target in targets {
        target.methods.each(|method, stats| {
            let count = stats.attempts_started.load(Relaxed);
            if count > 0 {
                let labels = labels(&[
                    ("grpc_method", method),
                    ("grpc_target", &target.stats.target),
                ]);
                let _ = writeln!(out, "grpc_client_attempt_started_total{labels} {count}");
            }
        });
    }
    for (name, help, pick) in [
        (
            "grpc_client_attempt_duration_seconds",
            "Time from an attempt's start to its end, by status (gRPC A66).",
            (|stats: &MethodStats| &stats.attempts) as fn(&MethodStats) -> &ByStatus,
        ),
        (
            "grpc_client_call_duration_seconds",
            "Time from a call's start to its end, every attempt included, by status (gRPC A66).",
            |stats: &MethodStats| &stats.calls,
        ),
    ] {
        family(&mut out, name, "histogram", help);
        for target in targets {
            target.methods.each(|method, stats| {
                for code in Code::ALL {
                    if let Some(durations) = pick(stats).0[code as usize].get() {
                        histogram(
                            &mut out,
                            name,
                            method,
                            &target.stats.target,
                            code,
                            durations,
                        );
                    }
                }
            });
        }
    }
    pool_metrics(&mut out, targets);
    if let Some(xds) = xds {
        xds_metrics(&mut out, xds);
    }
    out
}

/// The xDS client's state: the stream, NACKs, and each resource in use with its version.
fn xds_metrics(out: &mut String, xds: &XdsStats) {
    let server = labels(&[("server", &xds.server)]);
    family(
        out,
        "grpcpool_xds_connected",
        "gauge",
        "Whether the ADS stream to the xDS control plane is open (1) or not (0).",
    );
    let _ = writeln!(
        out,
        "grpcpool_xds_connected{server} {}",
        u8::from(xds.connected)
    );
    family(
        out,
        "grpcpool_xds_nacks_total",
        "counter",
        "xDS responses NACKed (a resource failed validation; the last good one stays).",
    );
    let _ = writeln!(out, "grpcpool_xds_nacks_total{server} {}", xds.nacks);
    family(
        out,
        "grpcpool_xds_resource",
        "gauge",
        "xDS resources in use (1 each), by kind, name and the version they came in.",
    );
    for resource in &xds.resources {
        let labels = labels(&[
            ("kind", &resource.kind),
            ("name", &resource.name),
            ("version", &resource.version),
        ]);
        let _ = writeln!(out, "grpcpool_xds_resource{labels} 1");
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(
    out: &mut String,
    name: &str,
    method: &str,
    target: &str,
    code: Code,
    durations: &Durations,
) {
    let base = [
        ("grpc_method", method),
        ("grpc_target", target),
        ("grpc_status", code.name()),
    ];
    let mut cumulative = 0;
    for (index, bound) in BUCKETS.iter().enumerate() {
        cumulative += durations.buckets[index].load(Relaxed);
        let le = bound.to_string();
        let labels = labels(&[base[0], base[1], base[2], ("le", &le)]);
        let _ = writeln!(out, "{name}_bucket{labels} {cumulative}");
    }
    cumulative += durations.buckets[BUCKETS.len()].load(Relaxed);
    let labels_inf = labels(&[base[0], base[1], base[2], ("le", "+Inf")]);
    let _ = writeln!(out, "{name}_bucket{labels_inf} {cumulative}");
    let labels = labels(&base);
    let sum = durations.sum_nanos.load(Relaxed) as f64 / 1e9;
    let _ = writeln!(out, "{name}_sum{labels} {sum}");
    let _ = writeln!(out, "{name}_count{labels} {cumulative}");
}

/// One of the pool's own metrics: name, type, help, and its value in a target's stats.
type PoolMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TargetStats) -> u64,
);

/// The pool's own metrics, from each target's stats.
fn pool_metrics(out: &mut String, targets: &[TargetMetrics<'_>]) {
    family(
        out,
        "grpcpool_connections",
        "gauge",
        "Connections by state.",
    );
    for target in targets {
        let counts = &target.stats.connections;
        for (state, count) in [
            ("connecting", counts.connecting),
            ("ready", counts.ready),
            ("draining", counts.draining),
        ] {
            let labels = labels(&[("grpc_target", &target.stats.target), ("state", state)]);
            let _ = writeln!(out, "grpcpool_connections{labels} {count}");
        }
    }
    let gauges: [PoolMetric; 13] = [
        (
            "grpcpool_leases_out",
            "gauge",
            "Leases not yet released.",
            |s| s.leases_out,
        ),
        (
            "grpcpool_streams_in_flight",
            "gauge",
            "Slots reserved by leases and calls.",
            |s| s.streams_in_flight,
        ),
        (
            "grpcpool_leaks_detected_total",
            "counter",
            "Leases held past the leak threshold.",
            |s| s.leaks_detected,
        ),
        (
            "grpcpool_retries_total",
            "counter",
            "Attempts made again under a retry policy.",
            |s| s.retries,
        ),
        (
            "grpcpool_hedges_total",
            "counter",
            "Attempts sent under a hedging policy.",
            |s| s.hedges,
        ),
        (
            "grpcpool_ejections_total",
            "counter",
            "Addresses ejected by outlier detection.",
            |s| s.ejections,
        ),
        (
            "grpcpool_ejected_addresses",
            "gauge",
            "Addresses ejected by outlier detection now.",
            |s| s.ejected_addresses,
        ),
        (
            "grpcpool_transparent_retries_total",
            "counter",
            "Calls moved because the server never processed them.",
            |s| s.transparent_retries,
        ),
        (
            "grpcpool_retries_throttled_total",
            "counter",
            "Retries refused by throttling.",
            |s| s.retries_throttled,
        ),
        (
            "grpcpool_goaways_received_total",
            "counter",
            "GOAWAY frames received.",
            |s| s.goaways_received,
        ),
        (
            "grpcpool_keepalive_timeouts_total",
            "counter",
            "Connections closed for an unanswered keepalive ping.",
            |s| s.keepalive_timeouts,
        ),
        (
            "grpcpool_connects_total",
            "counter",
            "Connections established.",
            |s| s.connects,
        ),
        (
            "grpcpool_acquire_timeouts_total",
            "counter",
            "Acquires that gave up waiting.",
            |s| s.acquire_timeouts,
        ),
    ];
    for (name, kind, help, value) in gauges {
        family(out, name, kind, help);
        for target in targets {
            let labels = labels(&[("grpc_target", &target.stats.target)]);
            let _ = writeln!(out, "{name}{labels} {}", value(&target.stats));
        }
    }
    family(
        out,
        "grpcpool_acquire_wait_seconds",
        "summary",
        "Time acquires waited for a slot (each quantile within an eighth of itself).",
    );
    for target in targets {
        let wait = &target.stats.acquire_wait;
        for (quantile, micros) in [
            ("0.5", wait.p50_us),
            ("0.9", wait.p90_us),
            ("0.99", wait.p99_us),
        ] {
            let labels = labels(&[
                ("grpc_target", &target.stats.target),
                ("quantile", quantile),
            ]);
            let _ = writeln!(
                out,
                "grpcpool_acquire_wait_seconds{labels} {}",
                micros as f64 / 1e6
            );
        }
        let labels = labels(&[("grpc_target", &target.stats.target)]);
        let _ = writeln!(
            out,
            "grpcpool_acquire_wait_seconds_count{labels} {}",
            wait.count
        );
    }
}

/// `{name="value",...}` with values escaped as the text format wants (backslash, quote,
/// newline).
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        for character in value.chars() {
            match character {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                other => out.push(other),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_a66_buckets_and_labels_are_escaped() {
        let durations = Durations::new();
        durations.record(Duration::from_micros(70)); // (0.00005, 0.0001]
        durations.record(Duration::from_millis(1)); // exactly 0.001
        durations.record(Duration::from_secs(200)); // above every bound
        let at = |bound: f64| BUCKETS.iter().position(|b| *b == bound).unwrap();
        assert_eq!(durations.buckets[at(0.0001)].load(Relaxed), 1);
        assert_eq!(durations.buckets[at(0.001)].load(Relaxed), 1);
        assert_eq!(durations.buckets[BUCKETS.len()].load(Relaxed), 1);
        assert_eq!(labels(&[("a", "x\"y\\z\nw")]), r#"{a="x\"y\\z\nw"}"#);
    }

    #[test]
    fn methods_past_the_cap_count_as_other() {
        let metrics = MethodMetrics::default();
        for index in 0..MAX_METHODS + 5 {
            metrics.of(&format!("/pkg.S/M{index}")).attempt_started();
        }
        assert_eq!(metrics.other.attempts_started.load(Relaxed), 5);
        assert!(Arc::ptr_eq(
            &metrics.of("/pkg.S/M0"),
            &metrics.of("/pkg.S/M0")
        ));
    }
}
