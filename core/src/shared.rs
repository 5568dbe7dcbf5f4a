//! What every target of one pool shares: settings, the dialer and the runtime handle.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures_util::future::{Either, FutureExt};
use tokio::runtime::Handle;

use crate::config::Config;
use crate::connectivity::ConnectivitySignal;
use crate::pushed_endpoints::PushedEndpoints;
use crate::service_config::ServiceConfig;
use crate::transport::Dialer;
use crate::xds::client::XdsClient;

/// Pool-wide state handed to each target.
pub(crate) struct Shared {
    pub(crate) config: Arc<Config>,
    /// The pool's parsed service config, if it has one.
    pub(crate) service_config: Option<Arc<ServiceConfig>>,
    pub(crate) dialer: Dialer,
    pub(crate) runtime: Handle,
    closed: AtomicBool,
    next_connection_id: AtomicU64,
    /// Request bytes the pool's streams keep for other attempts now (`retry_buffer_size`).
    pub(crate) retry_buffered: Arc<std::sync::atomic::AtomicUsize>,
    /// Endpoints the host program set for `static:///name` targets.
    pub(crate) pushed: Arc<PushedEndpoints>,
    /// Told whenever a target's connectivity may have changed.
    pub(crate) connectivity: Arc<ConnectivitySignal>,
    /// The xDS client, started by the first `xds:///` target.
    pub(crate) xds: OnceLock<Arc<XdsClient>>,
    /// Serialises starting the xDS client (a failed start is tried again by the next target).
    pub(crate) xds_starting: parking_lot::Mutex<()>,
}

impl Shared {
    pub(crate) fn new(
        config: Arc<Config>,
        service_config: Option<Arc<ServiceConfig>>,
        dialer: Dialer,
        runtime: Handle,
        pushed: Arc<PushedEndpoints>,
        connectivity: Arc<ConnectivitySignal>,
    ) -> Shared {
        Shared {
            config,
            service_config,
            dialer,
            runtime,
            pushed,
            connectivity,
            xds: OnceLock::new(),
            xds_starting: parking_lot::Mutex::new(()),
            closed: AtomicBool::new(false),
            next_connection_id: AtomicU64::new(1),
            retry_buffered: Arc::default(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(xds) = self.xds.get() {
            xds.close();
        }
    }

    /// The xDS client, once an `xds:///` target started it.
    pub(crate) fn xds(&self) -> Option<&Arc<XdsClient>> {
        self.xds.get()
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Like [`Shared::until`], with no time limit when `deadline` is `None`.
    pub(crate) fn until_opt<F: Future>(
        &self,
        deadline: Option<Instant>,
        future: F,
    ) -> impl Future<Output = Option<F::Output>> {
        match deadline {
            Some(deadline) => Either::Left(self.until(deadline, future)),
            None => Either::Right(future.map(Some)),
        }
    }

    /// Waits `delay` on the pool's runtime's timer, so the caller may poll it from any executor.
    pub(crate) async fn sleep(&self, delay: std::time::Duration) {
        let sleep = {
            let _entered = self.runtime.enter();
            tokio::time::sleep(delay)
        };
        sleep.await;
    }

    /// Runs `future` until `deadline`, with the timer on the pool's runtime so the caller may poll
    /// it from any executor. `None` when the deadline came first; the future is polled before
    /// the timer, so one ready at the deadline still counts.
    ///
    /// A combinator, not an `async fn`: an `async fn` keeps its future argument and the future
    /// it awaits as two fields, which doubled every call's state (and the bytes each move of
    /// it copies) on the hot path.
    pub(crate) fn until<F: Future>(
        &self,
        deadline: Instant,
        future: F,
    ) -> impl Future<Output = Option<F::Output>> {
        let _entered = self.runtime.enter();
        tokio::time::timeout_at(deadline.into(), future).map(Result::ok)
    }
}
