//! The connections of one target: picking by load, growing on demand, waiting fairly, and
//! reacting when a connection ends.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::address_book::AddressBook;
use crate::config::Config;
use crate::connection::Connection;
use crate::connectivity::Connectivity;
use crate::leases::LeaseRegister;
use crate::metrics::MethodMetrics;
use crate::outlier_detection::OutlierDetector;
use crate::pushed_endpoints::literal_weighted;
use crate::reachability::Reachability;
use crate::retry::RetryThrottle;
use crate::service_config::{LoadBalancing, ServiceConfig};
use crate::shared::Shared;
use crate::stats::{micros, ConnectionCounts, Counters, TargetStats};
use crate::target::{Address, Target};
use crate::transport::Dialer;
use crate::wait_queue::{Grant, WaitQueue};
use crate::Error;
use balancing::BalancingCell;

/// Why a connection is being dialed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DialPurpose {
    /// Calls want more capacity.
    Demand,
    /// Below the minimum.
    Warm,
    /// Replaces the connection with this id, which drains once the new one is ready.
    Replace(u64),
}

mod balancing;
mod dialing;
mod maintenance;
mod picking;
mod xds_state;

/// Every connection to one target, and the state shared by its acquires. Its parts are
/// private to this module and its children (dialing, upkeep); the rest of the crate uses the
/// narrow methods below.
pub(crate) struct TargetPool {
    target: Target,
    shared: Arc<Shared>,
    connections: RwLock<Vec<Arc<Connection>>>,
    dials_in_flight: AtomicUsize,
    addresses: Mutex<AddressBook>,
    waiting: WaitQueue,
    maintenance: Notify,
    rotation: AtomicUsize,
    keepalive_ms: Arc<AtomicU64>,
    counters: Counters,
    leases: LeaseRegister,
    reachability: Reachability,
    /// The service config's `retryThrottling` bucket for this target, if it has one.
    retry_throttle: Option<RetryThrottle>,
    /// How calls and connections spread over the target's addresses (an xDS cluster's
    /// lb_policy may change it).
    balancing: BalancingCell,
    /// An xDS cluster's circuit breaker: the most calls in flight; `u64::MAX` for none.
    xds_max_requests: AtomicU64,
    /// The service each connection's health watch asks about, when health checking is on.
    health_service: Option<String>,
    /// Outlier detection over the target's addresses, when the service config has it.
    outlier: Option<OutlierDetector>,
    /// Weights of pushed endpoints' addresses, for round_robin; empty when all are 1.
    weights: RwLock<Arc<HashMap<Address, u32>>>,
    /// Calls and attempts by method, for the metrics text.
    method_metrics: MethodMetrics,
    /// When the target was made; `last_used_ms` counts from it.
    created: Instant,
    /// When the pool last looked the target up for a call, lease or stream.
    last_used_ms: AtomicU64,
    /// Asks the pool to drop the target from its map, if it is still idle then.
    leave: Leave,
    /// The settings calls to this target run under.
    config: Arc<Config>,
    /// The service config calls to this target run under.
    service_config: Option<Arc<ServiceConfig>>,
    /// A dialer of its own when the target has settings of its own (its TLS may differ).
    dialer: Option<Dialer>,
}

/// What a target runs under: the pool's settings and service config, or its own where it has
/// settings of its own.
#[derive(Clone)]
pub(crate) struct TargetSettings {
    pub(crate) config: Arc<Config>,
    pub(crate) service_config: Option<Arc<ServiceConfig>>,
    /// Whether these are the target's own (it then dials with a TLS setup of its own).
    pub(crate) own: bool,
}

/// Called by the target's upkeep when it has been idle for `target_idle_timeout`: the pool
/// removes it from its map if it is still idle under the map's lock (so a caller looking it up
/// at that moment either sees it touched, or finds it gone and makes a new one); true when it
/// was removed.
pub(crate) type Leave = Box<dyn Fn(&TargetPool) -> bool + Send + Sync>;

impl TargetPool {
    /// Makes the target's pool; its upkeep ([`TargetPool::upkeep`]) is started by the caller.
    pub(crate) fn new(
        mut target: Target,
        shared: Arc<Shared>,
        settings: TargetSettings,
        leave: Leave,
    ) -> Arc<TargetPool> {
        let TargetSettings {
            config,
            service_config,
            own,
        } = settings;
        if let Some(authority) = config
            .authority
            .as_deref()
            .and_then(|authority| authority.parse().ok())
        {
            // Checked when the pool was made.
            target.authority = authority;
        }
        let keepalive_ms = config.keepalive_time.map_or(0, |every| {
            u64::try_from(every.as_millis()).unwrap_or(u64::MAX)
        });
        let retry_throttle = service_config
            .as_ref()
            .and_then(|service| service.retry_throttling())
            .map(RetryThrottle::new);
        let balancing = match (&service_config, target.xds_name()) {
            (Some(service), _) => service.load_balancing(),
            // xDS clusters default to ROUND_ROBIN; their lb_policy replaces it on arrival.
            (None, Some(_)) => LoadBalancing::RoundRobin,
            (None, None) => LoadBalancing::default(),
        };
        let dialer = own.then(|| Dialer::new(Arc::clone(&config)));
        let health_service = service_config
            .as_ref()
            .and_then(|service| service.health_check_service())
            .map(str::to_owned);
        let outlier = service_config
            .as_ref()
            .and_then(|service| service.outlier_detection())
            .and_then(OutlierDetector::new);
        Arc::new(TargetPool {
            addresses: Mutex::new(AddressBook::new(config.backoff.clone())),
            config,
            service_config,
            dialer,
            retry_throttle,
            balancing: BalancingCell::new(balancing),
            xds_max_requests: AtomicU64::new(u64::MAX),
            health_service,
            outlier,
            weights: RwLock::default(),
            method_metrics: MethodMetrics::default(),
            created: Instant::now(),
            last_used_ms: AtomicU64::new(0),
            leave,
            target,
            connections: RwLock::new(Vec::new()),
            dials_in_flight: AtomicUsize::new(0),
            waiting: WaitQueue::default(),
            maintenance: Notify::new(),
            rotation: AtomicUsize::new(fastrand::usize(..)),
            keepalive_ms: Arc::new(AtomicU64::new(keepalive_ms)),
            counters: Counters::default(),
            leases: LeaseRegister::default(),
            reachability: Reachability::default(),
            shared,
        })
    }

    /// The target as given (the key of its pool).
    pub(crate) fn text(&self) -> &str {
        &self.target.text
    }

    /// The settings calls to this target run under (the pool's, or the target's own).
    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The service config calls to this target run under.
    pub(crate) fn service_config(&self) -> Option<&ServiceConfig> {
        self.service_config.as_deref()
    }

    /// Whether the target has settings of its own (calls prepared under the pool's are then
    /// checked again under the target's).
    pub(crate) fn has_own_settings(&self) -> bool {
        self.dialer.is_some()
    }

    /// The dialer of this target: its own, or the pool's.
    pub(crate) fn dialer(&self) -> &Dialer {
        self.dialer.as_ref().unwrap_or(&self.shared.dialer)
    }

    /// What every target of the pool shares: settings, dialer, runtime.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The target's counters, which calls and streams bump.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Marks the target used now; the pool calls it on every lookup, under its map's lock.
    pub(crate) fn touch(&self) {
        let millis = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_used_ms.store(millis, Ordering::Relaxed);
    }

    /// Whether the target has had no call, lease, stream or waiter for `target_idle_timeout`.
    pub(crate) fn is_idle(&self, now: Instant) -> bool {
        let Some(timeout) = self.config.target_idle_timeout else {
            return false;
        };
        let last_used = self.created
            + std::time::Duration::from_millis(self.last_used_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(last_used) >= timeout
            && self.leases.len() == 0
            && self.waiting.is_empty()
            && self
                .connections
                .read()
                .iter()
                .all(|connection| connection.idle_for(now) >= timeout)
    }

    /// The target's retry throttle, when the service config has `retryThrottling`.
    pub(crate) fn retry_throttle(&self) -> Option<&RetryThrottle> {
        self.retry_throttle.as_ref()
    }

    /// The target's outstanding leases.
    pub(crate) fn leases(&self) -> &LeaseRegister {
        &self.leases
    }

    /// The pool is closing: waiters see it, and upkeep runs once more to stop.
    pub(crate) fn wake_for_close(&self) {
        self.state_changed();
        self.maintenance.notify_one();
    }

    /// Reserves a slot on the least-loaded ready connection, waiting up to `timeout` in line
    /// behind earlier callers.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        timeout: Duration,
        wait_for_ready: bool,
    ) -> Result<Arc<Connection>, Error> {
        let started = Instant::now();
        if self.shared.is_closed() {
            return Err(Error::PoolClosed);
        }
        self.xds_circuit_breaker()?;
        if self.waiting.is_empty() {
            if let Some(connection) = self.try_reserve() {
                self.counters.acquire_wait.record(micros(started.elapsed()));
                return Ok(connection);
            }
        }
        if !wait_for_ready {
            self.fail_fast()?;
        }
        let full_deadline = started.checked_add(timeout);
        // An xDS target still without its configuration gives up a little before the
        // deadline, so the call fails with UNAVAILABLE naming the missing resource rather than
        // with the deadline's DEADLINE_EXCEEDED (see `xds_state`).
        let mut xds_deadline = self
            .xds_not_ready()
            .then(|| started.checked_add(timeout.saturating_sub(xds_margin(timeout))))
            .flatten();
        let mut deadline = xds_deadline.or(full_deadline);
        // Dropped with the acquire (a caller that cancels it), the place in the queue gives
        // back a slot granted meanwhile, which would otherwise stay reserved for good.
        let mut grant = QueuePlace {
            pool: self,
            grant: self.waiting.push(),
        };
        // A slot may have come free between the attempt above and joining the queue.
        self.serve_waiters();
        loop {
            let mut changed = pin!(self.waiting.changed());
            changed.as_mut().enable();
            if self.shared.is_closed() {
                // Dropping the place gives back a slot granted meanwhile.
                return Err(Error::PoolClosed);
            }
            if !wait_for_ready {
                self.fail_fast()?;
            }
            let next = self
                .shared
                .until_opt(deadline, async {
                    tokio::select! {
                        biased;
                        granted = &mut grant.grant => Some(granted),
                        _ = changed => None,
                    }
                })
                .await;
            match next {
                Some(Some(Ok(connection))) => {
                    self.counters.acquire_wait.record(micros(started.elapsed()));
                    return Ok(connection);
                }
                Some(Some(Err(_))) => return Err(Error::PoolClosed),
                Some(None) => continue,
                None if xds_deadline.is_some() => {
                    if let Some(error) = self.xds_deadline_error() {
                        Counters::bump(&self.counters.acquire_timeouts);
                        return Err(error);
                    }
                    // The configuration came meanwhile: wait on to the call's deadline.
                    xds_deadline = None;
                    deadline = full_deadline;
                }
                None => {
                    // The deadline: a slot granted at the last instant still counts.
                    grant.grant.close();
                    if let Ok(connection) = grant.grant.try_recv() {
                        self.counters.acquire_wait.record(micros(started.elapsed()));
                        return Ok(connection);
                    }
                    Counters::bump(&self.counters.acquire_timeouts);
                    if !wait_for_ready {
                        self.fail_fast()?;
                    }
                    if let Some(error) = self.xds_deadline_error() {
                        return Err(error);
                    }
                    return Err(Error::AcquireTimeout {
                        target: self.target.text.clone(),
                        waited: started.elapsed(),
                    });
                }
            }
        }
    }

    /// A slot now if one is free and nobody waits for one: hedges take slots this way, never
    /// queueing behind calls that have none.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Arc<Connection>> {
        if self.shared.is_closed() || !self.waiting.is_empty() {
            return None;
        }
        self.try_reserve()
    }

    /// Gives free slots to waiters, oldest first, while there are both.
    pub(crate) fn serve_waiters(self: &Arc<Self>) {
        while !self.waiting.is_empty() {
            let Some(connection) = self.try_reserve() else {
                return;
            };
            if !self.waiting.grant(&connection) {
                connection.release();
                return;
            }
        }
    }

    /// UNAVAILABLE when no connection takes calls and the last attempt to connect failed, or
    /// every open connection's server says it is not serving (its health check).
    fn fail_fast(&self) -> Result<(), Error> {
        if let Some(result) = self.xds_fail_fast() {
            return result;
        }
        let (takes_calls, not_serving) = {
            let connections = self.connections.read();
            let takes_calls = connections
                .iter()
                .any(|connection| connection.takes_calls());
            let not_serving = connections
                .iter()
                .any(|connection| connection.is_ready() && connection.reports_not_serving());
            (takes_calls, not_serving)
        };
        if !takes_calls && not_serving {
            return Err(Error::Unavailable {
                target: self.target.text.clone(),
                reason: "no connection's server is serving (health check)".to_owned(),
            });
        }
        let all_ejected = !takes_calls
            && self
                .connections
                .read()
                .iter()
                .any(|connection| connection.is_ready() && connection.is_ejected());
        if all_ejected {
            return Err(Error::Unavailable {
                target: self.target.text.clone(),
                reason: "every ready connection's address is ejected (outlier detection)"
                    .to_owned(),
            });
        }
        self.reachability.fail_fast(&self.target.text, takes_calls)
    }

    /// Something waiters and connectivity watchers look at changed (a dial ended, a connection
    /// went, the pool is closing): waiters look at the target again, watchers at its state.
    fn state_changed(&self) {
        self.waiting.state_changed();
        self.shared.connectivity.changed();
    }

    /// The target's connectivity in gRPC's terms (see [`Connectivity`]).
    pub(crate) fn connectivity(&self) -> Connectivity {
        if self.shared.is_closed() {
            return Connectivity::Shutdown;
        }
        let (takes_calls, any_open) = {
            let connections = self.connections.read();
            let takes_calls = connections
                .iter()
                .any(|connection| connection.takes_calls());
            let any_open = connections.iter().any(|connection| connection.is_ready());
            (takes_calls, any_open)
        };
        if takes_calls {
            Connectivity::Ready
        } else if any_open || self.reachability.is_failing() {
            // Open but refusing calls (not serving, ejected), or the last dial failed.
            Connectivity::TransientFailure
        } else if self.dials_in_flight.load(Ordering::Acquire) > 0 || self.wants_connections() {
            Connectivity::Connecting
        } else {
            Connectivity::Idle
        }
    }

    /// Whether upkeep keeps connections open with no call asking (a minimum above 0, or a
    /// policy that covers every address), so a target with none is connecting, not idle.
    fn wants_connections(&self) -> bool {
        self.config.min_connections_per_target > 0 || self.covers_every_address()
    }

    pub(crate) fn has_ready_connection(&self) -> bool {
        self.connections
            .read()
            .iter()
            .any(|connection| connection.is_ready())
    }

    /// Which connections take calls changed (a health watch's answer, an outlier ejection):
    /// waiters may have a slot now, or upkeep another address to dial.
    pub(crate) fn call_takers_changed(self: &Arc<Self>) {
        self.state_changed();
        self.serve_waiters();
        self.maintenance.notify_one();
    }

    /// Calls and attempts by method.
    pub(crate) fn method_metrics(&self) -> &MethodMetrics {
        &self.method_metrics
    }

    /// The service health checking watches, when it is on.
    /// The name whose pushed endpoints the target follows (`static:///name`).
    pub(crate) fn pushed_name(&self) -> Option<&str> {
        self.target.pushed_name()
    }

    /// The host program set new endpoints for the target: resolve them now, then let upkeep
    /// open connections to new addresses before it drains those to removed ones.
    pub(crate) fn endpoints_changed(self: &Arc<Self>) {
        self.xds_apply_policy();
        let literal = self
            .pushed_name()
            .and_then(|name| self.shared.pushed.get(name))
            .and_then(|endpoints| literal_weighted(&endpoints));
        match literal {
            // None at all: the target's connections drain (their calls finish), and calls that
            // are not wait-for-ready fail fast until endpoints come.
            Some(addresses) if addresses.is_empty() => {
                self.addresses
                    .lock()
                    .update(Vec::new(), Instant::now(), false);
                self.reachability.resolution_failed(self.no_endpoints());
                for connection in self.connections.read().iter() {
                    connection.mark_draining();
                }
                self.call_takers_changed();
            }
            // Nothing to look up: the addresses are the target's before this returns, so a
            // call made next goes to them.
            Some(weighted) => {
                let addresses = self.set_weights(weighted);
                self.addresses
                    .lock()
                    .update(addresses, Instant::now(), self.shuffles_addresses());
                self.reachability.addresses_replaced();
                self.call_takers_changed();
            }
            None => {
                let pool = Arc::clone(self);
                self.shared.runtime.spawn(async move {
                    pool.reachability.addresses_replaced();
                    pool.refresh_addresses().await;
                    pool.call_takers_changed();
                });
            }
        }
    }

    /// Why a pushed target has nothing to dial after an empty update.
    pub(crate) fn no_endpoints(&self) -> String {
        if let Some(reason) = self.xds_no_endpoints() {
            return reason;
        }
        format!(
            "{} has no endpoints (set_endpoints gave none)",
            self.target.text
        )
    }

    /// Records the pushed endpoints' weights (all 1: none kept, as for any other target) and
    /// gives back the addresses.
    pub(crate) fn set_weights(&self, weighted: Vec<(Address, u32)>) -> Vec<Address> {
        let weights: HashMap<Address, u32> = if weighted.iter().all(|(_, weight)| *weight == 1) {
            HashMap::new()
        } else {
            weighted.iter().cloned().collect()
        };
        *self.weights.write() = Arc::new(weights);
        weighted.into_iter().map(|(address, _)| address).collect()
    }

    /// The target's outlier detection, when on.
    pub(crate) fn outlier_detector(&self) -> Option<&OutlierDetector> {
        self.outlier.as_ref()
    }

    pub(crate) fn health_service(&self) -> Option<&str> {
        self.health_service.as_deref()
    }

    /// Picks a ready connection with a free slot as the balancing policy says (by default the
    /// one with the lowest streams-in-flight / stream-limit) and reserves the slot; asks for
    /// another connection when every ready one is then at the threshold.
    fn try_reserve(self: &Arc<Self>) -> Option<Arc<Connection>> {
        let threshold = self.config.streams_per_connection;
        let connections = self.connections.read();
        let mut picked = None;
        for _attempt in 0..4 {
            let Some((connection, limit)) = self.choose(&connections) else {
                break;
            };
            if connection.try_reserve(limit) {
                // Closing marks a connection draining, then closes it only with no slot taken:
                // re-checking here means one of the two sides always sees the other.
                if connection.is_ready() {
                    picked = Some(Arc::clone(connection));
                    break;
                }
                connection.release();
            }
        }
        // Grow when this caller found every ready connection at or past the threshold already.
        let (mut open, mut all_loaded) = (0, true);
        for connection in connections
            .iter()
            .filter(|connection| connection.is_ready())
        {
            open += 1;
            let ours = picked
                .as_ref()
                .is_some_and(|picked| Arc::ptr_eq(picked, connection));
            let before = connection.reserved().saturating_sub(u32::from(ours));
            all_loaded &= before >= threshold.min(connection.stream_limit());
        }
        drop(connections);
        if (open == 0 || all_loaded) && open < self.max_connections() {
            self.start_dial(DialPurpose::Demand);
        }
        picked
    }

    /// Returns a slot: straight to the oldest waiter if the connection still takes calls,
    /// else back to the connection.
    pub(crate) fn release(&self, connection: &Arc<Connection>) {
        if connection.is_ready() && !self.waiting.is_empty() && self.waiting.grant(connection) {
            return;
        }
        connection.release();
        if connection.is_draining() && connection.reserved() == 0 {
            self.maintenance.notify_one();
        }
    }

    /// Leases (each holding one slot) not yet released.
    pub(crate) fn in_flight(&self) -> u64 {
        self.leases.len() as u64
    }

    /// Closes every connection at once and turns away every waiter.
    pub(crate) fn close_all(&self) {
        for connection in self.connections.read().iter() {
            connection.close();
        }
        self.waiting.clear();
        self.state_changed();
        self.maintenance.notify_one();
    }

    pub(crate) fn stats(&self) -> TargetStats {
        let mut stats = TargetStats {
            target: self.target.text.clone(),
            ..TargetStats::default()
        };
        let mut counts = ConnectionCounts {
            connecting: self.dials_in_flight.load(Ordering::Acquire) as u64,
            ..ConnectionCounts::default()
        };
        let now = Instant::now();
        for connection in self.connections.read().iter() {
            stats.per_connection.push(connection.stats(now));
            if connection.is_ready() {
                counts.ready += 1;
            } else if connection.is_draining() {
                counts.draining += 1;
            }
            stats.streams_in_flight += u64::from(connection.reserved());
        }
        stats.connections = counts;
        stats.leases_out = self.leases.len() as u64;
        stats.keepalive_time_ms = self.keepalive_ms.load(Ordering::Relaxed);
        if let Some(detector) = &self.outlier {
            stats.ejections = detector.ejections();
            stats.ejected_addresses = detector.ejected_now();
        }
        self.counters.snapshot_into(&mut stats);
        stats
    }
}

/// How long before its deadline a call to an xDS target without a configuration gives up:
/// a twentieth of its wait, at most 100 ms.
pub(crate) fn xds_margin(timeout: Duration) -> Duration {
    (timeout / 20).min(Duration::from_millis(100))
}

/// A waiter's place in the queue. Dropped before it took its grant (the acquire failed, timed
/// out or was cancelled by dropping it), it releases a slot granted to it meanwhile.
struct QueuePlace<'a> {
    pool: &'a TargetPool,
    grant: Grant,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.grant.close();
        if let Ok(connection) = self.grant.try_recv() {
            self.pool.release(&connection);
        }
    }
}
