//! Counters kept per target, and the snapshots [`Pool::stats`](crate::Pool::stats) returns.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

use crate::histogram::Histogram;
use crate::Code;

/// Live counters of one target; every field is an atomic updated on the hot path.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) calls_started: AtomicU64,
    pub(crate) calls_finished: [AtomicU64; 17],
    pub(crate) transparent_retries: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) retries_throttled: AtomicU64,
    pub(crate) retry_pushbacks: AtomicU64,
    pub(crate) hedges: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) goaways_received: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) keepalive_timeouts: AtomicU64,
    pub(crate) leaks_detected: AtomicU64,
    pub(crate) leases_acquired: AtomicU64,
    pub(crate) acquire_timeouts: AtomicU64,
    pub(crate) acquire_wait: Histogram,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn call_finished(&self, code: Code) {
        Counters::bump(&self.calls_finished[code as usize]);
    }
}

/// Connections of one target by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConnectionCounts {
    /// Dials in progress.
    pub connecting: u64,
    /// Open and taking new calls.
    pub ready: u64,
    /// Finishing their calls before they close (GOAWAY, max age, idle or address gone).
    pub draining: u64,
}

/// One connection of a target, as [`TargetStats::per_connection`] shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConnectionStats {
    /// The pool's number for it.
    pub id: u64,
    /// The address it is connected to.
    pub address: String,
    /// `ready`, `draining` (finishing its calls) or `closed`.
    pub state: String,
    /// Time since it connected.
    pub age_ms: u64,
    /// Slots reserved on it now.
    pub streams_in_flight: u64,
    /// The server's MAX_CONCURRENT_STREAMS as last read (less one for a health watch).
    pub stream_limit: u64,
    /// Calls and streams it has carried.
    pub calls: u64,
    /// The error code of the GOAWAY it received (`NO_ERROR`, `ENHANCE_YOUR_CALM`, ...), if any.
    pub last_goaway: Option<String>,
    /// Its health check: `unchecked`, `awaiting`, `serving` or `not_serving`.
    pub health: String,
    /// Whether outlier detection has ejected its address: it takes no calls meanwhile.
    pub ejected: bool,
}

/// Acquire wait times in microseconds; each value is an upper bound within 1/8 of itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WaitPercentiles {
    /// Acquires measured.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Longest.
    pub max_us: u64,
}

/// A snapshot of one target.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetStats {
    /// The target as given to `acquire`.
    pub target: String,
    /// Connections by state.
    pub connections: ConnectionCounts,
    /// Every connection now: address, state, age, load, calls, last GOAWAY and health.
    pub per_connection: Vec<ConnectionStats>,
    /// Slots reserved by leases and calls now.
    pub streams_in_flight: u64,
    /// Leases not yet released.
    pub leases_out: u64,
    /// Leases handed out since the target was first used.
    pub leases_acquired: u64,
    /// Calls begun.
    pub calls_started: u64,
    /// Calls that ended with OK.
    pub calls_succeeded: u64,
    /// Calls that ended with another status, by status name.
    pub calls_failed: BTreeMap<String, u64>,
    /// Calls moved to another connection because theirs died before the server saw them.
    pub transparent_retries: u64,
    /// Attempts made again under the service config's retry policy.
    pub retries: u64,
    /// Retries the policy allowed that retry throttling refused.
    pub retries_throttled: u64,
    /// Retries and hedges the server delayed or refused with `grpc-retry-pushback-ms`.
    pub retry_pushbacks: u64,
    /// Attempts sent beside a call's first under the service config's hedging policy.
    pub hedges: u64,
    /// Addresses outlier detection has ejected, each time counted.
    pub ejections: u64,
    /// Addresses ejected now.
    pub ejected_addresses: u64,
    /// Connections established.
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// GOAWAY frames received.
    pub goaways_received: u64,
    /// Connections established to replace one that was lost.
    pub reconnects: u64,
    /// Connections closed because a keepalive ping went unanswered.
    pub keepalive_timeouts: u64,
    /// The keepalive interval now in force (0 = off); doubles on GOAWAY `too_many_pings`.
    pub keepalive_time_ms: u64,
    /// Leases reported for being held past the leak threshold.
    pub leaks_detected: u64,
    /// Acquires that gave up waiting.
    pub acquire_timeouts: u64,
    /// Time acquires waited for a slot.
    pub acquire_wait: WaitPercentiles,
}

/// A snapshot of the whole pool: every target and their sums.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PoolStats {
    /// One entry per target used, sorted by target.
    pub targets: Vec<TargetStats>,
    /// Connections by state, over all targets.
    pub connections: ConnectionCounts,
    /// Slots reserved now, over all targets.
    pub streams_in_flight: u64,
    /// Leases not yet released, over all targets.
    pub leases_out: u64,
    /// Calls begun, over all targets.
    pub calls_started: u64,
    /// Calls that ended with OK, over all targets.
    pub calls_succeeded: u64,
    /// Calls that ended otherwise, by status name, over all targets.
    pub calls_failed: BTreeMap<String, u64>,
    /// Connections established, over all targets.
    pub connects: u64,
    /// Connection attempts that failed, over all targets.
    pub connect_failures: u64,
    /// GOAWAY frames received, over all targets.
    pub goaways_received: u64,
    /// Reconnections, over all targets.
    pub reconnects: u64,
    /// Leaks reported, over all targets.
    pub leaks_detected: u64,
    /// Tasks alive on the pool's runtime: one upkeep task per target, one driver per
    /// connection, and calls' and streams' own.
    pub runtime_tasks: u64,
    /// The pool's xDS client, once an `xds:///` target started it.
    pub xds: Option<XdsStats>,
}

/// The xDS client's state: its control plane, the resources in use and what it refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct XdsStats {
    /// The control plane's `server_uri`.
    pub server: String,
    /// Whether the ADS stream is open now.
    pub connected: bool,
    /// Every resource held, by kind and name, with the version it arrived in.
    pub resources: Vec<XdsResource>,
    /// Responses NACKed since the pool started.
    pub nacks: u64,
    /// Why the last NACKed response was refused.
    pub last_nack: Option<String>,
    /// Why the stream last failed, while it is not open.
    pub last_error: Option<String>,
}

/// One xDS resource in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XdsResource {
    /// `listener`, `route_config`, `cluster` or `endpoints`.
    pub kind: String,
    /// The resource's name.
    pub name: String,
    /// The `version_info` of the response it came in.
    pub version: String,
}

impl Counters {
    /// Fills the counter fields of a snapshot.
    pub(crate) fn snapshot_into(&self, stats: &mut TargetStats) {
        let load = |counter: &AtomicU64| counter.load(Relaxed);
        stats.calls_started = load(&self.calls_started);
        stats.calls_succeeded = load(&self.calls_finished[0]);
        stats.calls_failed = Code::ALL[1..]
            .iter()
            .filter_map(|code| {
                let count = load(&self.calls_finished[*code as usize]);
                (count > 0).then(|| (code.name().to_owned(), count))
            })
            .collect();
        stats.transparent_retries = load(&self.transparent_retries);
        stats.retries = load(&self.retries);
        stats.retries_throttled = load(&self.retries_throttled);
        stats.retry_pushbacks = load(&self.retry_pushbacks);
        stats.hedges = load(&self.hedges);
        stats.connects = load(&self.connects);
        stats.connect_failures = load(&self.connect_failures);
        stats.goaways_received = load(&self.goaways_received);
        stats.reconnects = load(&self.reconnects);
        stats.keepalive_timeouts = load(&self.keepalive_timeouts);
        stats.leaks_detected = load(&self.leaks_detected);
        stats.leases_acquired = load(&self.leases_acquired);
        stats.acquire_timeouts = load(&self.acquire_timeouts);
        let wait = &self.acquire_wait;
        stats.acquire_wait = WaitPercentiles {
            count: wait.count(),
            p50_us: wait.percentile(0.50),
            p90_us: wait.percentile(0.90),
            p99_us: wait.percentile(0.99),
            max_us: wait.max(),
        };
    }
}

impl PoolStats {
    /// Sums the per-target snapshots.
    pub(crate) fn from_targets(mut targets: Vec<TargetStats>) -> PoolStats {
        targets.sort_by(|a, b| a.target.cmp(&b.target));
        let mut pool = PoolStats::default();
        for target in &targets {
            pool.connections.connecting += target.connections.connecting;
            pool.connections.ready += target.connections.ready;
            pool.connections.draining += target.connections.draining;
            pool.streams_in_flight += target.streams_in_flight;
            pool.leases_out += target.leases_out;
            pool.calls_started += target.calls_started;
            pool.calls_succeeded += target.calls_succeeded;
            for (code, count) in &target.calls_failed {
                *pool.calls_failed.entry(code.clone()).or_default() += count;
            }
            pool.connects += target.connects;
            pool.connect_failures += target.connect_failures;
            pool.goaways_received += target.goaways_received;
            pool.reconnects += target.reconnects;
            pool.leaks_detected += target.leaks_detected;
        }
        pool.targets = targets;
        pool
    }

    /// The snapshot of one target, if it has been used.
    pub fn target(&self, target: &str) -> Option<&TargetStats> {
        self.targets.iter().find(|stats| stats.target == target)
    }
}

/// Converts a wait to whole microseconds for the histogram.
pub(crate) fn micros(wait: Duration) -> u64 {
    u64::try_from(wait.as_micros()).unwrap_or(u64::MAX)
}
