//! A lease: one reserved slot on one connection, returned when the lease is dropped.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::call;
use crate::call_options::CallOptions;
use crate::connection::Connection;
use crate::leases::AcquireSite;
use crate::prepared_call::PreparedCall;
use crate::response::Response;
use crate::slot::Slot;
use crate::stats::Counters;
use crate::target_pool::TargetPool;
use crate::Error;

/// A slot on a pooled connection. Calls made on it use that connection (or, if it dies before a
/// request leaves, another one of the same target). Dropping the lease releases the slot.
pub struct Lease {
    slot: Slot,
    record: u64,
    /// Calls and streams in flight on the lease; a stream opens only when there are none.
    in_use: AtomicUsize,
}

/// One call's use of a lease, ended when dropped.
pub(crate) struct InUse<'a>(&'a Lease);

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.0.end_use();
    }
}

/// [`InUse`] holding the lease, for futures that outlive a borrow.
struct SharedInUse(Arc<Lease>);

impl Drop for SharedInUse {
    fn drop(&mut self) {
        self.0.end_use();
    }
}

impl Lease {
    pub(crate) fn new(
        pool: Arc<TargetPool>,
        connection: Arc<Connection>,
        site: AcquireSite,
    ) -> Lease {
        let record = pool.leases().insert(site);
        Counters::bump(&pool.counters().leases_acquired);
        Lease {
            slot: Slot::new(pool, connection),
            record,
            in_use: AtomicUsize::new(0),
        }
    }

    /// Makes a unary call: `method` is `/package.Service/Method`, `request` the encoded message.
    ///
    /// A non-OK status is returned as the response's code; `Err` means the input was invalid.
    pub async fn unary(
        &self,
        method: &str,
        request: impl Into<Bytes>,
        options: CallOptions,
    ) -> Result<Response, Error> {
        let call = PreparedCall::configured(
            self.pool().config(),
            self.pool().service_config(),
            method,
            request.into(),
            options,
        )?;
        Ok(self.call(call).await)
    }

    /// Makes a call checked earlier by [`Pool::prepare`](crate::Pool::prepare). The lease
    /// counts as in use (no stream opens on it) from now until the future is done or dropped.
    pub fn call(&self, call: PreparedCall) -> impl Future<Output = Response> + Send + '_ {
        self.in_use.fetch_add(1, Ordering::AcqRel);
        let in_use = InUse(self);
        async move {
            let _in_use = in_use;
            call::run(&self.slot, call).await
        }
    }

    /// [`Lease::call`] on a shared lease, for a future that outlives the caller's borrow (one
    /// spawned by a binding). In use from now, as `call`.
    pub fn start_call(
        self: &Arc<Self>,
        call: PreparedCall,
    ) -> impl Future<Output = Response> + Send + 'static {
        self.in_use.fetch_add(1, Ordering::AcqRel);
        let in_use = SharedInUse(Arc::clone(self));
        async move { call::run(&in_use.0.slot, call).await }
    }

    /// Marks the lease used by a stream, or [`Error::Busy`] while anything else uses it.
    /// The stream ends the use with [`Lease::end_use`].
    pub(crate) fn begin_stream(&self) -> Result<InUse<'_>, Error> {
        self.in_use
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| {
                Error::Busy(
                    "the lease has calls or a stream in flight: open the stream once they are done",
                )
            })?;
        Ok(InUse(self))
    }

    /// Ends one use begun by a call or a stream.
    pub(crate) fn end_use(&self) {
        self.in_use.fetch_sub(1, Ordering::AcqRel);
    }

    /// The target this lease is for.
    pub fn target(&self) -> &str {
        self.pool().text()
    }

    /// The address of the connection the lease holds now ("" while it holds none).
    pub fn address(&self) -> String {
        self.slot
            .connection()
            .map(|connection| connection.address.to_string())
            .unwrap_or_default()
    }

    /// Releases the slot now; the same as dropping the lease.
    pub fn release(self) {}

    /// Counts the lease as leaked, for bindings whose lease objects were garbage-collected
    /// without an explicit release, and logs a warning naming where it was taken. The slot
    /// returns when the last reference to the lease (a stream's, say) is dropped.
    pub fn release_as_leaked(&self) {
        if let Some(site) = self.pool().leases().report(self.record) {
            Counters::bump(&self.pool().counters().leaks_detected);
            tracing::warn!(target = %self.pool().text(), acquired_at = %site, "lease dropped without release");
        }
    }

    pub(crate) fn pool(&self) -> &Arc<TargetPool> {
        self.slot.pool()
    }

    pub(crate) fn connection(&self) -> Option<Arc<Connection>> {
        self.slot.connection()
    }

    /// The lease's slot, which a call moves when its connection dies before the request left.
    pub(crate) fn slot(&self) -> &Slot {
        &self.slot
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slot.give_back();
        self.pool().leases().remove(self.record);
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("target", &self.target())
            .field("address", &self.address())
            .finish()
    }
}
