//! Opening connections for a target (resolution, address choice, dial, driver) and reacting
//! when one ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{DialPurpose, TargetPool};
use crate::channel::H2Channel;
use crate::connection::{drive, Connection, Ended, Keepalive};
use crate::health_check;
use crate::pushed_endpoints::{merged, Weighted};
use crate::stats::Counters;
use crate::target::Address;
use crate::transport::Handshaken;

/// Counts a dial in flight for as long as it lives, even if the dial task panics.
struct DialCount(Arc<TargetPool>);

impl Drop for DialCount {
    fn drop(&mut self) {
        self.0.dials_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl TargetPool {
    /// Starts a dial in the background unless the pool is closed or every address is backing off.
    pub(crate) fn start_dial(self: &Arc<Self>, purpose: DialPurpose) -> bool {
        if self.shared.is_closed() || self.xds_not_ready() {
            return false;
        }
        {
            let book = self.addresses.lock();
            if book.is_resolved() && !book.any_available(Instant::now()) {
                return false;
            }
        }
        match purpose {
            // Growth and warm-up dial one at a time, so racing callers cannot overshoot the max.
            DialPurpose::Demand | DialPurpose::Warm => {
                if self
                    .dials_in_flight
                    .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    return false;
                }
            }
            DialPurpose::Replace(_) => {
                self.dials_in_flight.fetch_add(1, Ordering::AcqRel);
            }
        }
        let pool = Arc::clone(self);
        self.shared.runtime.spawn(async move {
            let _counted = DialCount(Arc::clone(&pool));
            pool.dial(purpose).await;
        });
        true
    }

    async fn dial(self: Arc<Self>, purpose: DialPurpose) {
        match self.open_connection().await {
            Ok(connection) => {
                Counters::bump(&self.counters.connects);
                if self.reachability.connected() {
                    Counters::bump(&self.counters.reconnects);
                }
                tracing::debug!(target = %self.target.text, address = %connection.address, ?purpose, "connected");
                let mut connections = self.connections.write();
                if connection.is_closed() || self.shared.is_closed() {
                    // It died before it was offered, or the pool closed meanwhile.
                    connection.close();
                } else {
                    if let DialPurpose::Replace(old) = purpose {
                        if let Some(old) = connections.iter().find(|candidate| candidate.id == old)
                        {
                            old.mark_draining();
                        }
                    }
                    connections.push(connection);
                }
                drop(connections);
                self.serve_waiters();
            }
            Err(message) => {
                tracing::debug!(target = %self.target.text, error = %message, "connect failed");
                self.reachability
                    .unreachable(message, self.has_ready_connection());
                if let DialPurpose::Replace(old) = purpose {
                    if let Some(old) = self.connections.read().iter().find(|c| c.id == old) {
                        old.replacement_started.store(false, Ordering::Release);
                    }
                }
            }
        }
        self.state_changed();
        self.maintenance.notify_one();
    }

    /// Resolves if needed, then dials addresses in the policy's order (fewest connections first,
    /// or pick_first's address order) until one answers; each failed address waits out its own
    /// backoff.
    async fn open_connection(self: &Arc<Self>) -> Result<Arc<Connection>, String> {
        if !self.addresses.lock().is_resolved() {
            self.refresh_addresses().await;
        }
        let mut failures = Vec::new();
        loop {
            let address = {
                let counts = self.connections_per_address();
                let sticky = self.sticky_address();
                self.addresses
                    .lock()
                    .pick(Instant::now(), sticky, |address| {
                        counts.iter().filter(|a| *a == address).count()
                    })
            };
            let Some(address) = address else {
                if failures.is_empty() {
                    let last = self.reachability.last_error();
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
                // round_robin and least_request dial each address for itself: a failed one
                // waits out its backoff rather than adding a connection to another.
                Err(message) if self.covers_every_address() => return Err(message),
                Err(message) => failures.push(message),
            }
        }
    }

    /// Dials one address and starts the connection's driver.
    async fn connect_to(self: &Arc<Self>, address: Address) -> Result<Arc<Connection>, String> {
        let config = Arc::clone(&self.config);
        match self.dialer().dial(&self.target, &address).await {
            Ok(Handshaken {
                send,
                connection: io,
                writes,
            }) => {
                self.addresses.lock().succeeded(&address);
                let channel = H2Channel {
                    send,
                    scheme: self.target.scheme.clone(),
                    authority: self.target.authority.clone(),
                    runtime: self.shared.runtime.clone(),
                };
                let id = self.shared.next_connection_id();
                let outlier = self
                    .outlier_detector()
                    .map(|detector| detector.record_for(&address));
                let connection = Arc::new(Connection::new(
                    id,
                    address,
                    channel,
                    config.max_connection_age,
                    outlier,
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
                    let ended =
                        drive(Arc::clone(&driven), io, writes, keepalive, Some(settled)).await;
                    pool.connection_ended(&driven, ended);
                });
                // Offer the connection only once the server's settings are known.
                match tokio::time::timeout(config.connect_timeout, settling).await {
                    Ok(Ok(())) => {
                        if let Some(service) = self.health_service() {
                            // No calls until the server says SERVING (gRPC A17).
                            connection.await_health();
                            let pool = Arc::downgrade(self);
                            let watched = Arc::clone(&connection);
                            let service = service.to_owned();
                            self.shared.runtime.spawn(health_check::watch(
                                watched,
                                service,
                                move || {
                                    if let Some(pool) = pool.upgrade() {
                                        pool.call_takers_changed();
                                    }
                                },
                            ));
                        }
                        Ok(connection)
                    }
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
        // The pushed endpoints this looks up, to tell afterwards whether newer ones came.
        let pushed = self
            .target
            .pushed_name()
            .map(|name| (name, self.shared.pushed.get(name)));
        let result = match &pushed {
            Some((_, read)) => match read {
                Some(endpoints) => self.resolve_pushed(endpoints).await,
                // An xDS target's resources are still coming: nothing failed yet. (Its client
                // gives the endpoints before it says the target is ready, and tells it then.)
                None if self.target.xds_name().is_some() => return,
                None => Err(format!(
                    "{} has no endpoints yet (set them with set_endpoints)",
                    self.target.text
                )),
            },
            None => self.target.resolve(&self.config.resolver).await,
        };
        let mut book = self.addresses.lock();
        if let Some((name, read)) = &pushed {
            let now = self.shared.pushed.get(name);
            let same = match (read, &now) {
                (Some(read), Some(now)) => Arc::ptr_eq(read, now),
                (None, None) => true,
                _ => false,
            };
            if !same {
                // The host program set new endpoints while this looked up older ones (or
                // none): that update applies its own, and this stale result must not undo it
                // (a "no endpoints" failure landing after it made calls fail fast).
                return;
            }
        }
        match result {
            Ok(addresses) => {
                book.update(addresses, Instant::now(), self.shuffles_addresses());
                self.reachability.resolved();
            }
            Err(message) => {
                tracing::debug!(target = %self.target.text, error = %message, "resolution failed");
                self.reachability.resolution_failed(message);
                book.resolution_failed(Instant::now());
                drop(book);
                // Callers waiting for a slot look again: without a ready connection they
                // now fail fast instead of waiting out their timeout.
                self.state_changed();
            }
        }
    }

    /// The addresses of pushed endpoints, each endpoint resolved on its own so its addresses
    /// carry its weight (recorded for round_robin).
    async fn resolve_pushed(&self, endpoints: &[Weighted]) -> Result<Vec<Address>, String> {
        let mut weighted = Vec::new();
        let mut failures = Vec::new();
        for entry in endpoints {
            let one = std::slice::from_ref(&entry.endpoint);
            match self
                .target
                .resolve_endpoints(one, &self.config.resolver)
                .await
            {
                Ok(addresses) => {
                    weighted.extend(addresses.into_iter().map(|address| (address, entry.weight)))
                }
                Err(message) => failures.push(message),
            }
        }
        if weighted.is_empty() {
            return Err(if failures.is_empty() {
                self.no_endpoints()
            } else {
                failures.join("; ")
            });
        }
        Ok(self.set_weights(merged(weighted)))
    }

    /// Called by a connection's driver when it ends: forget it and let waiters and upkeep react.
    fn connection_ended(&self, connection: &Arc<Connection>, ended: Ended) {
        // Lost: the peer or the network ended it, or a failure made the pool drain it. The pool
        // stopping a connection it retired (idle, age, drained) is no loss.
        let lost = connection.lost.load(Ordering::Acquire) || !matches!(ended, Ended::Stopped);
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
        if lost && !self.shared.is_closed() {
            tracing::debug!(target = %self.target.text, address = %connection.address, ?ended, "connection lost");
            self.reachability.connection_lost();
            if self.target.needs_resolution()
                && self.addresses.lock().resolve_after_loss(Instant::now())
            {
                tracing::debug!(target = %self.target.text, "resolving again after a lost connection");
            }
            // A keepalive timeout or a socket that timed out says the address does not answer:
            // as gRPC's TRANSIENT_FAILURE, calls fail fast until a redial succeeds instead of
            // waiting behind a connect that may hang. A peer that answered, even with a reset or
            // a close we wrote into (a server closing after a GOAWAY we had not read yet), is no
            // such sign, and neither is a GOAWAY or a clean close: calls wait for the redial,
            // which a live host answers at once, and fail fast only if it fails.
            let unanswered = match &ended {
                Ended::KeepaliveTimeout => Some("did not answer keepalive pings".to_owned()),
                Ended::Failed(error) if error.get_io().is_some_and(peer_is_silent) => {
                    Some(format!("failed: {error}"))
                }
                Ended::Failed(_) | Ended::Closed | Ended::Stopped => None,
            };
            if let Some(why) = unanswered {
                self.reachability.unreachable(
                    format!("the connection to {} {why}", connection.address),
                    self.has_ready_connection(),
                );
            }
        }
        self.state_changed();
        self.maintenance.notify_one();
    }

    /// Counts a GOAWAY once per connection, stops new picks on it, and backs keepalive off when
    /// the server said the pings were too many (gRPC A8).
    pub(crate) fn note_goaway(&self, connection: &Connection, reason: h2::Reason) {
        connection.note_goaway(reason);
        connection.lost.store(true, Ordering::Release);
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
        connection.lost.store(true, Ordering::Release);
        if connection.mark_draining() {
            self.maintenance.notify_one();
        }
    }
}

/// Whether a connection's socket error leaves open that the peer stopped answering (a timeout,
/// no route to it, anything else), as opposed to a peer that answered with a reset or a close.
fn peer_is_silent(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    !matches!(
        error.kind(),
        ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
            | ErrorKind::NotConnected
    )
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
