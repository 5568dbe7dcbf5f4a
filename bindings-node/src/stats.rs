//! The pool's counters as plain JavaScript objects.

use napi_derive::napi;

/// Connections of one target by state.
#[napi(object)]
pub struct ConnectionCounts {
    /// Dials in progress.
    pub connecting: f64,
    /// Open and taking new calls.
    pub ready: f64,
    /// Finishing their calls before they close.
    pub draining: f64,
}

/// One connection of a target.
#[napi(object)]
pub struct ConnectionStats {
    /// The pool's number for it.
    pub id: f64,
    /// The address it is connected to.
    pub address: String,
    /// `ready`, `draining` or `closed`.
    pub state: String,
    /// Milliseconds since it connected.
    pub age_ms: f64,
    /// Slots reserved on it now.
    pub streams_in_flight: f64,
    /// The server's stream limit as last read (less one for a health watch).
    pub stream_limit: f64,
    /// Calls and streams it has carried.
    pub calls: f64,
    /// The error code of the GOAWAY it received, if any.
    pub last_goaway: Option<String>,
    /// `unchecked`, `awaiting`, `serving` or `not_serving`.
    pub health: String,
    /// Whether outlier detection has ejected its address: it takes no calls meanwhile.
    pub ejected: bool,
}

/// A snapshot of one target's counters.
#[napi(object)]
pub struct TargetStats {
    /// The target as given to `acquire`.
    pub target: String,
    /// Connections by state.
    pub connections: ConnectionCounts,
    /// Every connection now.
    pub per_connection: Vec<ConnectionStats>,
    /// Slots reserved by leases and calls now.
    pub streams_in_flight: f64,
    /// Leases not yet released.
    pub leases_out: f64,
    /// Leases handed out since the target was first used.
    pub leases_acquired: f64,
    /// Calls begun.
    pub calls_started: f64,
    /// Calls that ended with OK.
    pub calls_succeeded: f64,
    /// Calls that ended with another status, by status name.
    pub calls_failed: std::collections::HashMap<String, f64>,
    /// Calls moved to another connection because theirs died before the server saw them.
    pub transparent_retries: f64,
    /// Attempts made again under the service config's retry policy.
    pub retries: f64,
    /// Retries the policy allowed that retry throttling refused.
    pub retries_throttled: f64,
    /// Retries and hedges the server delayed or refused with `grpc-retry-pushback-ms`.
    pub retry_pushbacks: f64,
    /// Attempts sent beside a call's first under the service config's hedging policy.
    pub hedges: f64,
    /// Addresses outlier detection has ejected, each time counted.
    pub ejections: f64,
    /// Addresses ejected now.
    pub ejected_addresses: f64,
    /// Connections established.
    pub connects: f64,
    /// Connection attempts that failed.
    pub connect_failures: f64,
    /// GOAWAY frames received.
    pub goaways_received: f64,
    /// Connections established to replace one that was lost.
    pub reconnects: f64,
    /// Connections closed because a keepalive ping went unanswered.
    pub keepalive_timeouts: f64,
    /// The keepalive interval now in force in milliseconds (0 = off).
    pub keepalive_time_ms: f64,
    /// Leases reported as leaked: held past the threshold, or collected unreleased.
    pub leaks_detected: f64,
    /// Acquires that gave up waiting.
    pub acquire_timeouts: f64,
    /// How long acquires waited for a slot, in microseconds.
    pub acquire_wait: WaitPercentiles,
}

/// Percentiles of the waits for a slot, in microseconds.
#[napi(object)]
pub struct WaitPercentiles {
    /// Waits recorded.
    pub count: f64,
    /// The median wait.
    pub p50_us: f64,
    /// The 90th percentile.
    pub p90_us: f64,
    /// The 99th percentile.
    pub p99_us: f64,
    /// The longest wait.
    pub max_us: f64,
}

/// The xDS client's state: its control plane, the resources in use and what it refused.
#[napi(object)]
pub struct XdsStats {
    /// The control plane's `server_uri`.
    pub server: String,
    /// Whether the ADS stream is open now.
    pub connected: bool,
    /// Every resource held, by kind and name, with the version it arrived in.
    pub resources: Vec<XdsResource>,
    /// Responses NACKed since the pool started.
    pub nacks: f64,
    /// Why the last NACKed response was refused.
    pub last_nack: Option<String>,
    /// Why the stream last failed, while it is not open.
    pub last_error: Option<String>,
}

/// One xDS resource in use.
#[napi(object)]
pub struct XdsResource {
    /// `listener`, `route_config`, `cluster` or `endpoints`.
    pub kind: String,
    /// The resource's name.
    pub name: String,
    /// The `version_info` of the response it came in.
    pub version: String,
}

/// A snapshot of the whole pool: every target and their sums.
#[napi(object)]
pub struct PoolStats {
    /// One entry per target used, sorted by target.
    pub targets: Vec<TargetStats>,
    /// Connections by state, over all targets.
    pub connections: ConnectionCounts,
    /// Slots reserved now, over all targets.
    pub streams_in_flight: f64,
    /// Leases not yet released, over all targets.
    pub leases_out: f64,
    /// Calls begun, over all targets.
    pub calls_started: f64,
    /// Calls that ended with OK, over all targets.
    pub calls_succeeded: f64,
    /// Calls that ended otherwise, by status name, over all targets.
    pub calls_failed: std::collections::HashMap<String, f64>,
    /// Connections established, over all targets.
    pub connects: f64,
    /// Connection attempts that failed, over all targets.
    pub connect_failures: f64,
    /// GOAWAY frames received, over all targets.
    pub goaways_received: f64,
    /// Reconnections, over all targets.
    pub reconnects: f64,
    /// Leaks reported, over all targets.
    pub leaks_detected: f64,
    /// Tasks alive on the pool's runtime (one upkeep task per target, one per connection, and
    /// calls' own).
    pub runtime_tasks: f64,
    /// The xDS client's state, once an `xds:///` target has started it.
    pub xds: Option<XdsStats>,
}

/// A lease held past the leak threshold.
#[napi(object)]
pub struct LeakedLease {
    /// The lease's target.
    pub target: String,
    /// Where it was acquired (the caller's source location, or the `site` given to `acquire`).
    pub site: String,
    /// How long it has been held, in milliseconds.
    pub held_ms: f64,
}

impl From<grpcpool_core::LeakReport> for LeakedLease {
    fn from(report: grpcpool_core::LeakReport) -> LeakedLease {
        LeakedLease {
            target: report.target,
            site: report.site,
            held_ms: report.held_for.as_secs_f64() * 1000.0,
        }
    }
}

/// A counter as a JavaScript number (exact below 2^53).
fn number(count: u64) -> f64 {
    count as f64
}

fn connections(counts: &grpcpool_core::ConnectionCounts) -> ConnectionCounts {
    ConnectionCounts {
        connecting: number(counts.connecting),
        ready: number(counts.ready),
        draining: number(counts.draining),
    }
}

fn failed(
    failed: &std::collections::BTreeMap<String, u64>,
) -> std::collections::HashMap<String, f64> {
    failed
        .iter()
        .map(|(name, count)| (name.clone(), number(*count)))
        .collect()
}

impl From<grpcpool_core::PoolStats> for PoolStats {
    fn from(stats: grpcpool_core::PoolStats) -> PoolStats {
        PoolStats {
            targets: stats.targets.iter().map(TargetStats::from).collect(),
            connections: connections(&stats.connections),
            streams_in_flight: number(stats.streams_in_flight),
            leases_out: number(stats.leases_out),
            calls_started: number(stats.calls_started),
            calls_succeeded: number(stats.calls_succeeded),
            calls_failed: failed(&stats.calls_failed),
            connects: number(stats.connects),
            connect_failures: number(stats.connect_failures),
            goaways_received: number(stats.goaways_received),
            reconnects: number(stats.reconnects),
            leaks_detected: number(stats.leaks_detected),
            runtime_tasks: number(stats.runtime_tasks),
            xds: stats.xds.map(|xds| XdsStats {
                server: xds.server,
                connected: xds.connected,
                resources: xds
                    .resources
                    .into_iter()
                    .map(|resource| XdsResource {
                        kind: resource.kind,
                        name: resource.name,
                        version: resource.version,
                    })
                    .collect(),
                nacks: number(xds.nacks),
                last_nack: xds.last_nack,
                last_error: xds.last_error,
            }),
        }
    }
}

impl From<&grpcpool_core::TargetStats> for TargetStats {
    fn from(stats: &grpcpool_core::TargetStats) -> TargetStats {
        TargetStats {
            target: stats.target.clone(),
            connections: connections(&stats.connections),
            per_connection: stats
                .per_connection
                .iter()
                .map(|connection| ConnectionStats {
                    id: number(connection.id),
                    address: connection.address.clone(),
                    state: connection.state.clone(),
                    age_ms: number(connection.age_ms),
                    streams_in_flight: number(connection.streams_in_flight),
                    stream_limit: number(connection.stream_limit),
                    calls: number(connection.calls),
                    last_goaway: connection.last_goaway.clone(),
                    health: connection.health.clone(),
                    ejected: connection.ejected,
                })
                .collect(),
            streams_in_flight: number(stats.streams_in_flight),
            leases_out: number(stats.leases_out),
            leases_acquired: number(stats.leases_acquired),
            calls_started: number(stats.calls_started),
            calls_succeeded: number(stats.calls_succeeded),
            calls_failed: failed(&stats.calls_failed),
            transparent_retries: number(stats.transparent_retries),
            retries: number(stats.retries),
            retries_throttled: number(stats.retries_throttled),
            retry_pushbacks: number(stats.retry_pushbacks),
            hedges: number(stats.hedges),
            ejections: number(stats.ejections),
            ejected_addresses: number(stats.ejected_addresses),
            connects: number(stats.connects),
            connect_failures: number(stats.connect_failures),
            goaways_received: number(stats.goaways_received),
            reconnects: number(stats.reconnects),
            keepalive_timeouts: number(stats.keepalive_timeouts),
            keepalive_time_ms: number(stats.keepalive_time_ms),
            leaks_detected: number(stats.leaks_detected),
            acquire_timeouts: number(stats.acquire_timeouts),
            acquire_wait: WaitPercentiles {
                count: number(stats.acquire_wait.count),
                p50_us: number(stats.acquire_wait.p50_us),
                p90_us: number(stats.acquire_wait.p90_us),
                p99_us: number(stats.acquire_wait.p99_us),
                max_us: number(stats.acquire_wait.max_us),
            },
        }
    }
}
