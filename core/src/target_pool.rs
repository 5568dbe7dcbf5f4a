//! The connections of one target: picking by load, growing on demand, waiting fairly, and
//! reacting when a connection ends.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, Notify};

use crate::address_book::AddressBook;
use crate::channel::H2Channel;
use crate::connection::{drive, Connection, Ended, Keepalive};
use crate::leases::LeaseRegister;
use crate::shared::Shared;
use crate::stats::{micros, ConnectionCounts, Counters, TargetStats};
use crate::target::{Address, Target};
use crate::Error;

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

/// Every connection to one target, and the state shared by its acquires.
pub(crate) struct TargetPool {
    pub(crate) target: Target,
    pub(crate) shared: Arc<Shared>,
    pub(crate) connections: RwLock<Vec<Arc<Connection>>>,
    pub(crate) dials_in_flight: AtomicUsize,
    pub(crate) addresses: Mutex<AddressBook>,
    waiters: AtomicUsize,
    slot_freed: Notify,
    pub(crate) maintenance: Notify,
    rotation: AtomicUsize,
    keepalive_ms: Arc<AtomicU64>,
    pub(crate) counters: Counters,
    pub(crate) leases: LeaseRegister,
    failing: AtomicBool,
    last_error: Mutex<String>,
    lost_connection: AtomicBool,
}

impl TargetPool {
    /// Makes the target's pool and starts its maintenance task.
    pub(crate) fn start(target: Target, shared: Arc<Shared>) -> Arc<TargetPool> {
        let config = &shared.config;
        let keepalive_ms = config.keepalive_time.map_or(0, |every| {
            u64::try_from(every.as_millis()).unwrap_or(u64::MAX)
        });
        let pool = Arc::new(TargetPool {
            addresses: Mutex::new(AddressBook::new(config.backoff.clone())),
            target,
            connections: RwLock::new(Vec::new()),
            dials_in_flight: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            slot_freed: Notify::new(),
            maintenance: Notify::new(),
            rotation: AtomicUsize::new(fastrand::usize(..)),
            keepalive_ms: Arc::new(AtomicU64::new(keepalive_ms)),
            counters: Counters::default(),
            leases: LeaseRegister::default(),
            failing: AtomicBool::new(false),
            last_error: Mutex::new(String::new()),
            lost_connection: AtomicBool::new(false),
            shared,
        });
        pool.shared
            .runtime
            .spawn(crate::maintenance::run(Arc::clone(&pool)));
        pool
    }

    /// Reserves a slot on the least-loaded ready connection, waiting up to `timeout`.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        timeout: Duration,
        wait_for_ready: bool,
    ) -> Result<Arc<Connection>, Error> {
        let started = Instant::now();
        if self.shared.is_closed() {
            return Err(Error::PoolClosed);
        }
        // Callers already waiting go first; a newcomer takes the fast path only when none are.
        if self.waiters.load(Ordering::Acquire) == 0 {
            if let Some(connection) = self.try_reserve() {
                self.counters.acquire_wait.record(micros(started.elapsed()));
                return Ok(connection);
            }
        }
        let deadline = started + timeout;
        let _waiter = WaiterGuard::enter(self);
        loop {
            let mut notified = pin!(self.slot_freed.notified());
            notified.as_mut().enable();
            if self.shared.is_closed() {
                return Err(Error::PoolClosed);
            }
            if let Some(connection) = self.try_reserve() {
                self.counters.acquire_wait.record(micros(started.elapsed()));
                if self.waiters.load(Ordering::Acquire) > 1 {
                    // There may be room for the next in line too.
                    self.slot_freed.notify_one();
                }
                return Ok(connection);
            }
            if !wait_for_ready {
                self.fail_fast()?;
            }
            if self.shared.until(deadline, notified).await.is_none() {
                Counters::bump(&self.counters.acquire_timeouts);
                if !wait_for_ready {
                    self.fail_fast()?;
                }
                return Err(Error::AcquireTimeout {
                    target: self.target.text.clone(),
                    waited: started.elapsed(),
                });
            }
        }
    }

    /// UNAVAILABLE when no connection is ready and the last attempt to connect failed.
    fn fail_fast(&self) -> Result<(), Error> {
        if self.failing.load(Ordering::Acquire) && !self.has_ready_connection() {
            return Err(Error::Unavailable {
                target: self.target.text.clone(),
                reason: self.last_error.lock().clone(),
            });
        }
        Ok(())
    }

    fn has_ready_connection(&self) -> bool {
        self.connections
            .read()
            .iter()
            .any(|connection| connection.is_ready())
    }

    /// Picks the ready connection with the lowest streams-in-flight / stream-limit and reserves a
    /// slot on it; asks for another connection when every ready one is past the threshold.
    fn try_reserve(self: &Arc<Self>) -> Option<Arc<Connection>> {
        let threshold = self.shared.config.streams_per_connection;
        let mut picked = None;
        let mut ready = 0;
        let mut all_loaded = true;
        for _attempt in 0..4 {
            let connections = self.connections.read();
            let count = connections.len();
            let start = self.rotation.fetch_add(1, Ordering::Relaxed);
            let mut best: Option<(&Arc<Connection>, u64, u64)> = None;
            ready = 0;
            all_loaded = true;
            for offset in 0..count {
                let connection = &connections[(start + offset) % count];
                if !connection.is_ready() {
                    continue;
                }
                ready += 1;
                let limit = connection.stream_limit();
                let reserved = connection.reserved();
                if reserved < threshold.min(limit).saturating_sub(1) {
                    all_loaded = false;
                }
                if reserved >= limit {
                    continue;
                }
                let (reserved, limit) = (u64::from(reserved), u64::from(limit));
                // Strictly lower load wins, so ties stay with the rotating start and spread.
                let better = best.is_none_or(|(_, best_reserved, best_limit)| {
                    reserved * best_limit < best_reserved * limit
                });
                if better {
                    best = Some((connection, reserved, limit));
                }
            }
            let Some((connection, _, limit)) = best else {
                break;
            };
            let limit = u32::try_from(limit).unwrap_or(u32::MAX);
            if connection.try_reserve(limit) {
                picked = Some(Arc::clone(connection));
                break;
            }
        }
        let max = self.shared.config.max_connections_per_target;
        if (ready == 0 || all_loaded)
            && ready < max
            && self.dials_in_flight.load(Ordering::Acquire) == 0
        {
            self.start_dial(DialPurpose::Demand);
        }
        picked
    }

    /// Returns a slot and wakes the next waiter.
    pub(crate) fn release(&self, connection: &Connection) {
        connection.release();
        if self.waiters.load(Ordering::Acquire) > 0 {
            self.slot_freed.notify_one();
        }
        if connection.is_draining() && connection.reserved() == 0 {
            self.maintenance.notify_one();
        }
    }

    /// Starts a dial in the background unless the pool is closed or every address is backing off.
    pub(crate) fn start_dial(self: &Arc<Self>, purpose: DialPurpose) -> bool {
        if self.shared.is_closed() {
            return false;
        }
        {
            let book = self.addresses.lock();
            if book.is_resolved() && !book.any_available(Instant::now()) {
                return false;
            }
        }
        self.dials_in_flight.fetch_add(1, Ordering::AcqRel);
        let pool = Arc::clone(self);
        self.shared.runtime.spawn(async move {
            pool.dial(purpose).await;
        });
        true
    }

    async fn dial(self: Arc<Self>, purpose: DialPurpose) {
        match self.open_connection().await {
            Ok(connection) => {
                Counters::bump(&self.counters.connects);
                if self.lost_connection.swap(false, Ordering::AcqRel) {
                    Counters::bump(&self.counters.reconnects);
                }
                self.failing.store(false, Ordering::Release);
                tracing::debug!(target = %self.target.text, address = %connection.address, ?purpose, "connected");
                let mut connections = self.connections.write();
                if let DialPurpose::Replace(old) = purpose {
                    if let Some(old) = connections.iter().find(|candidate| candidate.id == old) {
                        old.mark_draining();
                    }
                }
                connections.push(connection);
            }
            Err(message) => {
                tracing::debug!(target = %self.target.text, error = %message, "connect failed");
                *self.last_error.lock() = message;
                if !self.has_ready_connection() {
                    self.failing.store(true, Ordering::Release);
                }
                if let DialPurpose::Replace(old) = purpose {
                    if let Some(old) = self.connections.read().iter().find(|c| c.id == old) {
                        old.replacement_started.store(false, Ordering::Release);
                    }
                }
            }
        }
        self.dials_in_flight.fetch_sub(1, Ordering::AcqRel);
        self.slot_freed.notify_waiters();
        self.maintenance.notify_one();
    }

    /// Resolves if needed, then dials addresses, fewest connections first, until one answers;
    /// each failed address waits out its own backoff.
    async fn open_connection(self: &Arc<Self>) -> Result<Arc<Connection>, String> {
        if !self.addresses.lock().is_resolved() {
            self.refresh_addresses().await;
        }
        let mut failures = Vec::new();
        loop {
            let address = {
                let counts = self.connections_per_address();
                self.addresses.lock().pick(Instant::now(), |address| {
                    counts.iter().filter(|a| *a == address).count()
                })
            };
            let Some(address) = address else {
                if failures.is_empty() {
                    let last = self.last_error.lock().clone();
                    failures.push(if last.is_empty() {
                        "no address to connect to".to_owned()
                    } else {
                        last
                    });
                }
                return Err(failures.join("; "));
            };
            match self.connect_to(address).await {
                Ok(connection) => return Ok(connection),
                Err(message) => failures.push(message),
            }
        }
    }

    /// Dials one address and starts the connection's driver.
    async fn connect_to(self: &Arc<Self>, address: Address) -> Result<Arc<Connection>, String> {
        let config = Arc::clone(&self.shared.config);
        match self.shared.dialer.dial(&self.target, &address).await {
            Ok((send, io)) => {
                self.addresses.lock().succeeded(&address);
                let channel = H2Channel {
                    send,
                    scheme: self.target.scheme.clone(),
                    authority: self.target.authority.clone(),
                    runtime: self.shared.runtime.clone(),
                };
                let id = self.shared.next_connection_id();
                let connection = Arc::new(Connection::new(
                    id,
                    address,
                    channel,
                    config.max_connection_age,
                ));
                let keepalive = Keepalive {
                    interval_ms: Arc::clone(&self.keepalive_ms),
                    timeout: config.keepalive_timeout,
                    while_idle: config.keepalive_while_idle,
                };
                let pool = Arc::clone(self);
                let driven = Arc::clone(&connection);
                let (settled, settling) = oneshot::channel();
                self.shared.runtime.spawn(async move {
                    let ended = drive(Arc::clone(&driven), io, keepalive, Some(settled)).await;
                    pool.connection_ended(&driven, ended);
                });
                // Offer the connection only once the server's settings are known.
                match tokio::time::timeout(config.connect_timeout, settling).await {
                    Ok(Ok(())) => Ok(connection),
                    _ => {
                        Counters::bump(&self.counters.connect_failures);
                        connection.close();
                        let delay = self
                            .addresses
                            .lock()
                            .failed(&connection.address, Instant::now());
                        Err(format!(
                            "{} did not answer the first HTTP/2 ping (next attempt in {} ms)",
                            connection.address,
                            delay.as_millis()
                        ))
                    }
                }
            }
            Err(message) => {
                Counters::bump(&self.counters.connect_failures);
                let delay = self.addresses.lock().failed(&address, Instant::now());
                Err(format!(
                    "{message} (next attempt in {} ms)",
                    delay.as_millis()
                ))
            }
        }
    }

    fn connections_per_address(&self) -> Vec<Address> {
        self.connections
            .read()
            .iter()
            .filter(|connection| !connection.is_closed())
            .map(|connection| connection.address.clone())
            .collect()
    }

    /// Looks the target's names up again and records the result.
    pub(crate) async fn refresh_addresses(&self) {
        let result = self.target.resolve(&self.shared.config.resolver).await;
        let mut book = self.addresses.lock();
        match result {
            Ok(addresses) => book.update(addresses, Instant::now()),
            Err(message) => {
                tracing::debug!(target = %self.target.text, error = %message, "resolution failed");
                *self.last_error.lock() = message;
                book.resolution_failed(Instant::now());
            }
        }
    }

    /// Called by a connection's driver when it ends: forget it and let waiters and upkeep react.
    fn connection_ended(&self, connection: &Arc<Connection>, ended: Ended) {
        let expected = matches!(ended, Ended::Stopped) || connection.is_closed();
        connection.close();
        self.connections
            .write()
            .retain(|candidate| candidate.id != connection.id);
        let goaway = match &ended {
            Ended::Failed(error) if error.is_go_away() && error.is_remote() => error.reason(),
            Ended::Closed | Ended::Failed(_) => peer_goaway(connection),
            _ => None,
        };
        if let Some(reason) = goaway {
            self.note_goaway(connection, reason);
        }
        if matches!(ended, Ended::KeepaliveTimeout) {
            Counters::bump(&self.counters.keepalive_timeouts);
        }
        if !expected && !self.shared.is_closed() {
            tracing::debug!(target = %self.target.text, address = %connection.address, ?ended, "connection lost");
            self.lost_connection.store(true, Ordering::Release);
        }
        self.slot_freed.notify_waiters();
        self.maintenance.notify_one();
    }

    /// Counts a GOAWAY once per connection, stops new picks on it, and backs keepalive off when
    /// the server said the pings were too many (gRPC A8).
    pub(crate) fn note_goaway(&self, connection: &Connection, reason: h2::Reason) {
        connection.mark_draining();
        if connection.goaway_counted.swap(true, Ordering::AcqRel) {
            return;
        }
        Counters::bump(&self.counters.goaways_received);
        if reason == h2::Reason::ENHANCE_YOUR_CALM {
            let doubled = self
                .keepalive_ms
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |millis| {
                    (millis > 0).then(|| millis.saturating_mul(2))
                })
                .map(|previous| previous.saturating_mul(2));
            tracing::warn!(target = %self.target.text, ?doubled, "GOAWAY too_many_pings: keepalive interval doubled (ms)");
        }
        self.maintenance.notify_one();
    }

    /// Stops new picks on a connection whose stream failed because the connection is gone.
    pub(crate) fn connection_failed(&self, connection: &Connection) {
        if connection.mark_draining() {
            self.maintenance.notify_one();
        }
    }

    /// Slots reserved on every connection.
    pub(crate) fn in_flight(&self) -> u64 {
        self.connections
            .read()
            .iter()
            .map(|connection| u64::from(connection.reserved()))
            .sum()
    }

    /// Closes every connection at once.
    pub(crate) fn close_all(&self) {
        for connection in self.connections.read().iter() {
            connection.close();
        }
        self.slot_freed.notify_waiters();
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
        for connection in self.connections.read().iter() {
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
        self.counters.snapshot_into(&mut stats);
        stats
    }
}

/// The GOAWAY reason a peer gave, read from the connection's stored error after it ended.
fn peer_goaway(connection: &Connection) -> Option<h2::Reason> {
    let mut send = connection.channel.send.clone();
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match send.poll_ready(&mut context) {
        std::task::Poll::Ready(Err(error)) if error.is_go_away() && error.is_remote() => {
            error.reason()
        }
        _ => None,
    }
}

/// Counts a waiting acquire; on leaving, passes any wake-up it may have taken to the next waiter.
struct WaiterGuard<'a> {
    pool: &'a TargetPool,
}

impl<'a> WaiterGuard<'a> {
    fn enter(pool: &'a TargetPool) -> WaiterGuard<'a> {
        pool.waiters.fetch_add(1, Ordering::AcqRel);
        WaiterGuard { pool }
    }
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        if self.pool.waiters.fetch_sub(1, Ordering::AcqRel) > 1 {
            self.pool.slot_freed.notify_one();
        }
    }
}
