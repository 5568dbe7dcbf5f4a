//! Whether a target can be reached now, as its dials and connections tell: the state behind
//! failing fast with UNAVAILABLE, and behind counting reconnects.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::Error;

/// The last word on reaching one target.
#[derive(Default)]
pub(crate) struct Reachability {
    /// The last attempt to connect failed while no connection was ready.
    failing: AtomicBool,
    /// The last resolution failed or found no address: there is nothing to dial until the
    /// next one succeeds.
    unresolved: AtomicBool,
    /// Why the last dial or resolution failed ("" before any failure).
    last_error: Mutex<String>,
    /// A connection was lost since the last successful dial, so the next one is a reconnect.
    lost_connection: AtomicBool,
}

impl Reachability {
    /// A dial succeeded; whether it replaces a connection that was lost (a reconnect).
    pub(crate) fn connected(&self) -> bool {
        self.failing.store(false, Ordering::Release);
        self.unresolved.store(false, Ordering::Release);
        self.lost_connection.swap(false, Ordering::AcqRel)
    }

    /// A dial failed with `reason` (or a connection was lost to a peer that stopped
    /// answering); with no ready connection left, calls now fail fast.
    pub(crate) fn unreachable(&self, reason: String, has_ready_connection: bool) {
        *self.last_error.lock() = reason;
        if !has_ready_connection {
            self.failing.store(true, Ordering::Release);
        }
    }

    /// Resolving the target's names failed (or found no address) with `reason`: with no
    /// ready connection, calls fail fast until a resolution succeeds.
    pub(crate) fn resolution_failed(&self, reason: String) {
        *self.last_error.lock() = reason;
        self.unresolved.store(true, Ordering::Release);
    }

    /// A resolution found addresses: calls wait for a dial again (unless the last dial failed).
    pub(crate) fn resolved(&self) {
        self.unresolved.store(false, Ordering::Release);
    }

    /// The host program gave new addresses: failures so far were about others, so calls wait
    /// for a dial to these.
    pub(crate) fn addresses_replaced(&self) {
        self.failing.store(false, Ordering::Release);
        self.unresolved.store(false, Ordering::Release);
    }

    /// A connection ended by the peer, the network or a failure.
    pub(crate) fn connection_lost(&self) {
        self.lost_connection.store(true, Ordering::Release);
    }

    /// Whether the last dial or resolution failed (gRPC's TRANSIENT_FAILURE when no
    /// connection is ready).
    pub(crate) fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire) || self.unresolved.load(Ordering::Acquire)
    }

    /// Why the last dial or resolution failed; "" before any failure.
    pub(crate) fn last_error(&self) -> String {
        self.last_error.lock().clone()
    }

    /// [`Error::Unavailable`] when no connection is ready and the last attempt to connect, or
    /// the last resolution, failed: a call that does not wait for ready fails now instead of
    /// waiting its timeout.
    pub(crate) fn fail_fast(&self, target: &str, has_ready_connection: bool) -> Result<(), Error> {
        if self.is_failing() && !has_ready_connection {
            return Err(Error::Unavailable {
                target: target.to_owned(),
                reason: self.last_error(),
            });
        }
        Ok(())
    }
}
