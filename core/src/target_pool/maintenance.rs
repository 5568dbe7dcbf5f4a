//! The upkeep task of one target: close drained connections, retire old ones, reap idle ones,
//! keep the minimum, follow DNS, and report leaked leases.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{DialPurpose, TargetPool};
use crate::connection::Connection;
use crate::stats::Counters;

impl TargetPool {
    /// The target's upkeep task: runs until the pool closes, waking on its own schedule or
    /// when something changes.
    pub(crate) async fn upkeep(self: Arc<Self>) {
        while !self.shared.is_closed() {
            let next = self.maintain().await;
            if self.is_idle(Instant::now()) && (self.leave)(&self) {
                // Out of the pool's map: no caller can reach it any more. Its connections
                // close and this task ends; a later use of the target starts it afresh.
                tracing::debug!(target = %self.target.text, "idle target left the pool");
                self.close_all();
                return;
            }
            let _ = self.shared.until(next, self.maintenance.notified()).await;
        }
    }

    /// One round of upkeep; returns when the next round is due at the latest.
    async fn maintain(self: &Arc<Self>) -> Instant {
        let config = Arc::clone(&self.config);
        let dns_every = config.dns_refresh_interval;
        if self.target.needs_resolution()
            && self
                .addresses
                .lock()
                .resolution_due(Instant::now(), dns_every)
        {
            self.refresh_addresses().await;
        }
        let now = Instant::now();
        let snapshot: Vec<Arc<Connection>> = self.connections.read().clone();
        let mut ready: Vec<&Arc<Connection>> = snapshot.iter().filter(|c| c.is_ready()).collect();

        // Drained connections close; connections on addresses DNS no longer gives, or past their
        // age, are replaced first and drained after (make-before-break).
        for connection in &snapshot {
            if connection.is_draining() && connection.reserved() == 0 {
                connection.close();
            } else if connection.is_ready() {
                // The server may change MAX_CONCURRENT_STREAMS at any time.
                connection.refresh_stream_limit();
            }
        }
        let retiring: Vec<&Arc<Connection>> = ready
            .iter()
            .copied()
            .filter(|connection| {
                connection.retire_at.is_some_and(|at| at <= now)
                    || !self.addresses.lock().contains(&connection.address)
            })
            .collect();
        for connection in retiring {
            if connection.replacement_started.swap(true, Ordering::AcqRel) {
                continue;
            }
            if !self.start_dial(DialPurpose::Replace(connection.id)) {
                connection
                    .replacement_started
                    .store(false, Ordering::Release);
                if ready.len() > 1 {
                    connection.mark_draining();
                }
            }
        }

        // Idle connections above the minimum close, least recently used first.
        ready.retain(|connection| connection.is_ready());
        ready.sort_by_key(|connection| std::cmp::Reverse(connection.idle_for(now)));
        let mut open = ready.len();
        let covering = self.covers_every_address();
        for connection in &ready {
            if open <= config.min_connections_per_target
                || connection.idle_for(now) < config.idle_timeout
            {
                break;
            }
            // round_robin and least_request keep one connection to every address.
            let last_to_its_address = || {
                ready
                    .iter()
                    .filter(|other| other.address == connection.address && other.is_ready())
                    .count()
                    <= 1
            };
            if covering && last_to_its_address() {
                continue;
            }
            if connection.mark_draining() {
                tracing::debug!(target = %self.target.text, address = %connection.address, "closing idle connection");
                if connection.reserved() == 0 {
                    connection.close();
                }
                open -= 1;
            }
        }

        // Outlier detection's sweep (gRPC A50): an ejected address's connections stop taking
        // calls, and one brought back takes them again; waiters and dials look again.
        if let Some(detector) = self.outlier_detector() {
            let addresses = self.addresses.lock().addresses();
            if detector.sweep_if_due(now, &addresses) {
                self.call_takers_changed();
            }
        }

        // Keep the minimum open, and reconnect after a loss, within each address's backoff.
        if open < config.min_connections_per_target
            && self.dials_in_flight.load(Ordering::Acquire) == 0
        {
            self.start_dial(DialPurpose::Warm);
        }
        let none_take_calls = !snapshot.iter().any(|connection| connection.takes_calls());
        let judged = self.health_service().is_some() || self.outlier_detector().is_some();
        if covering || (judged && none_take_calls) {
            // Also: with health checking or outlier detection on and no connection taking
            // calls, another address.
            self.cover_addresses(now);
        } else if !self.sticky_address() {
            // pick_first keeps its connections on one address; the default spreads them.
            self.spread_over_addresses(now);
        }
        // Waiters with no connection to wait on (say, after a backoff ran out) get a dial.
        self.serve_waiters();

        for leak in self
            .leases
            .newly_leaked(config.lease_leak_threshold, &self.target.text)
        {
            Counters::bump(&self.counters.leaks_detected);
            tracing::warn!(
                target = %leak.target,
                acquired_at = %leak.site,
                held_ms = leak.held_for.as_millis() as u64,
                "lease held past the leak threshold"
            );
        }

        let tick = Duration::from_secs(1)
            .min(config.idle_timeout / 2)
            .min(config.lease_leak_threshold / 4)
            .max(Duration::from_millis(10));
        let mut next = now + tick;
        let book = self.addresses.lock();
        if let Some(retry) = book.earliest_retry() {
            next = next.min(retry.max(now + Duration::from_millis(1)));
        }
        if self.target.needs_resolution() {
            if let Some(due) = book.next_resolution(dns_every) {
                next = next.min(due);
            }
        }
        drop(book);
        if let Some(detector) = self.outlier_detector() {
            next = next.min(detector.next_sweep().max(now + Duration::from_millis(1)));
        }
        for connection in &snapshot {
            if let Some(retire_at) = connection.retire_at {
                next = next.min(retire_at.max(now + Duration::from_millis(1)));
            }
        }
        next
    }

    /// Dials an address out of backoff that has no connection (one at a time; each finished
    /// dial wakes upkeep for the next), for the policies that keep one to every address.
    fn cover_addresses(self: &Arc<Self>, now: Instant) {
        if self.dials_in_flight.load(Ordering::Acquire) > 0 {
            return;
        }
        let connections = self.connections.read().clone();
        let uncovered = self.addresses.lock().available(now).any(|address| {
            !connections
                .iter()
                .any(|connection| &connection.address == address && !connection.is_closed())
        });
        if uncovered {
            // The dial goes to the address with the fewest connections: an uncovered one.
            self.start_dial(DialPurpose::Warm);
        }
    }

    /// When an address has no connection and is out of backoff while another address has
    /// several, one of those is replaced by a connection to the unused address.
    fn spread_over_addresses(self: &Arc<Self>, now: Instant) {
        if self.dials_in_flight.load(Ordering::Acquire) > 0 {
            return;
        }
        let connections = self.connections.read().clone();
        let ready: Vec<&Arc<Connection>> = connections.iter().filter(|c| c.is_ready()).collect();
        let unused = self
            .addresses
            .lock()
            .available(now)
            .any(|address| !ready.iter().any(|c| &c.address == address));
        if !unused {
            return;
        }
        let doubled = ready.iter().find(|connection| {
            ready
                .iter()
                .filter(|other| other.address == connection.address)
                .count()
                > 1
                && !connection.replacement_started.load(Ordering::Acquire)
        });
        if let Some(connection) = doubled {
            connection
                .replacement_started
                .store(true, Ordering::Release);
            if !self.start_dial(DialPurpose::Replace(connection.id)) {
                connection
                    .replacement_started
                    .store(false, Ordering::Release);
            }
        }
    }
}
