//! `NativePool`: the core pool as a JavaScript class (wrapped by `Pool` in lib/pool.js).

use std::sync::Arc;

use bytes::Bytes;
use grpcpool_core::{AcquireOptions, Connectivity, Pool, Response};
use napi::bindgen_prelude::{Either, Function, Uint8ArraySlice, Unknown};
use napi_derive::napi;

use crate::completions::{Completion, Completions};
use crate::convert::{call_options, call_result, millis, MetadataEntry};
use crate::failure::Failure;
use crate::lease::NativeLease;
use crate::options::config_from;
use crate::pool_state::PoolState;
use crate::stats::{LeakedLease, PoolStats};
use crate::stream::NativeStream;

/// The native pool. Each asynchronous method takes an `id` and returns at once: a `Failure`
/// when the input is refused, otherwise nothing, and the outcome arrives later as a
/// `Completion` with that id through the `settle` callback given to the constructor.
#[napi]
pub struct NativePool {
    state: Arc<PoolState>,
}

/// The completion of a unary call: the body alone when it is OK and the caller wants no more,
/// the whole outcome otherwise (a non-OK status carries its metadata into the error).
pub(crate) fn unary_completion(id: u32, response: Response, full: bool) -> Completion {
    if full || !response.is_ok() {
        return Completion {
            result: Some(call_result(response)),
            ..Completion::done(id)
        };
    }
    Completion {
        body: Some(crate::convert::buffer(response.body)),
        ..Completion::done(id)
    }
}

#[napi]
impl NativePool {
    /// Makes a pool (no thread or connection starts before the first use). `options` names
    /// settings of the core's table (see `poolOptionNames`); `settle` receives arrays of
    /// completions on the JavaScript thread. Throws on an unknown option or an invalid setting.
    #[napi(
        constructor,
        ts_args_type = "options: import('./settings').PoolOptions | undefined | null, settle: (arg: Array<Completion>) => void"
    )]
    pub fn new(
        options: Option<Unknown<'_>>,
        settle: Function<'_, Vec<Completion>, ()>,
    ) -> napi::Result<NativePool> {
        let invalid = |message: String| napi::Error::new(napi::Status::InvalidArg, message);
        let config = config_from(options).map_err(|failure| invalid(failure.message))?;
        let pool = Pool::new(config).map_err(|error| invalid(error.to_string()))?;
        let completions = Completions::new(settle)?;
        Ok(NativePool {
            state: Arc::new(PoolState::new(pool, completions)),
        })
    }

    /// Starts acquiring a lease on `target`; completes with `lease`.
    #[napi]
    pub fn acquire(
        &self,
        id: u32,
        target: String,
        timeout_ms: Option<f64>,
        wait_for_ready: Option<bool>,
        site: Option<String>,
        cancellable: bool,
    ) -> Option<Failure> {
        self.try_acquire(id, target, timeout_ms, wait_for_ready, site, cancellable)
            .err()
    }

    /// Starts a one-shot unary call (acquire, call, release); completes with `body`, or with
    /// `result` when `full` is set or the status is not OK.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn unary(
        &self,
        id: u32,
        target: String,
        method: String,
        request: Uint8ArraySlice<'_>,
        timeout_ms: Option<f64>,
        metadata: Option<Vec<MetadataEntry>>,
        wait_for_ready: Option<bool>,
        compression: Option<String>,
        full: bool,
        cancellable: bool,
    ) -> Option<Failure> {
        let started = self.state.check_open().and_then(|()| {
            let options = call_options(timeout_ms, metadata, wait_for_ready, compression)?;
            let pool = &self.state.pool;
            let call = pool
                .prepare(&method, Bytes::copy_from_slice(&request), options)
                .map_err(Failure::from_error)?;
            let future = pool
                .unary_prepared(&target, call)
                .map_err(Failure::from_error)?;
            self.state.start(id, cancellable, async move {
                match future.await {
                    Ok(response) => unary_completion(id, response, full),
                    Err(error) => Completion::failed(id, Failure::from_error(error)),
                }
            })
        });
        started.err()
    }

    /// Starts acquiring a lease and opening a streaming call on it; completes with `stream`.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn open_stream(
        &self,
        id: u32,
        target: String,
        method: String,
        timeout_ms: Option<f64>,
        metadata: Option<Vec<MetadataEntry>>,
        wait_for_ready: Option<bool>,
        compression: Option<String>,
        cancellable: bool,
    ) -> Option<Failure> {
        let started = self.state.check_open().and_then(|()| {
            let options = call_options(timeout_ms, metadata, wait_for_ready, compression)?;
            let opening = self.state.pool.open_stream(&target, &method, options);
            let state = Arc::clone(&self.state);
            self.state.start(id, cancellable, async move {
                match opening.await {
                    Ok(stream) => Completion {
                        stream: Some(NativeStream::new(state, stream)),
                        ..Completion::done(id)
                    },
                    Err(error) => Completion::failed(id, Failure::from_error(error)),
                }
            })
        });
        started.err()
    }

    /// Drops the cancellable operation `id` if it is still running (resetting its stream).
    #[napi]
    pub fn cancel(&self, id: u32) {
        self.state.cancel(id);
    }

    /// A snapshot of every target's counters.
    #[napi]
    pub fn stats(&self) -> PoolStats {
        self.state.pool.stats().into()
    }

    /// The pool's metrics in the Prometheus text exposition format.
    #[napi]
    pub fn metrics_text(&self) -> String {
        self.state.pool.metrics_text()
    }

    /// Sets the endpoints of `static:///name` targets with their weights (core's
    /// `Pool::set_weighted_endpoints`); the failure, if any.
    #[napi]
    pub fn set_endpoints(
        &self,
        name: String,
        endpoints: Vec<String>,
        weights: Vec<u32>,
    ) -> Option<Failure> {
        self.state
            .check_open()
            .and_then(|()| {
                let weighted: Vec<(String, u32)> = endpoints.into_iter().zip(weights).collect();
                self.state
                    .pool
                    .set_weighted_endpoints(&name, &weighted)
                    .map_err(Failure::from_error)
            })
            .err()
    }

    /// Leases held longer than the leak threshold now.
    #[napi]
    pub fn leaked_leases(&self) -> Vec<LeakedLease> {
        self.state
            .pool
            .leaked_leases()
            .into_iter()
            .map(LeakedLease::from)
            .collect()
    }

    /// Stops new work, waits up to `graceMs` (default 5000) for slots in use, then closes every
    /// connection; completes with `count`, the slots still in use when it gave up. Closing
    /// again completes with 0.
    #[napi]
    pub fn close(&self, id: u32, grace_ms: Option<f64>) -> Option<Failure> {
        let grace = match millis("graceMs", grace_ms.unwrap_or(5000.0)) {
            Ok(grace) => grace,
            Err(failure) => return Some(failure),
        };
        let first = !self.state.pool.is_closed();
        // New work fails from now on, wherever it is started.
        self.state.pool.close();
        // A pool whose runtime never started has nothing in flight to wait for, and its
        // runtime refuses to start once the pool is closed.
        let running = first && self.state.pool.runtime_handle().is_ok();
        if !running {
            self.state.complete(Completion {
                count: Some(0.0),
                ..Completion::done(id)
            });
            return None;
        }
        let pool = self.state.pool.clone();
        self.state
            .start(id, false, async move {
                let left = pool.shutdown(grace).await;
                Completion {
                    count: Some(left as f64),
                    ..Completion::done(id)
                }
            })
            .err()
    }

    /// The connectivity of `target` now, as gRPC's state number (0 IDLE, 1 CONNECTING,
    /// 2 READY, 3 TRANSIENT_FAILURE, 4 SHUTDOWN: grpc-js's `ConnectivityState`). With
    /// `tryToConnect`, an idle target starts connecting. A Failure for a malformed target.
    #[napi]
    pub fn connectivity(&self, target: String, try_to_connect: bool) -> Either<u32, Failure> {
        match self.state.pool.connectivity(&target, try_to_connect) {
            Ok(state) => Either::A(u32::from(state as u8)),
            Err(error) => Either::B(Failure::from_error(error)),
        }
    }

    /// Starts waiting until `target`'s connectivity is other than `last` (a state number);
    /// completes with `count`, the new state, or the state at `timeoutMs` (then possibly
    /// `last`). Never dials.
    #[napi]
    pub fn connectivity_changed(
        &self,
        id: u32,
        target: String,
        last: u32,
        timeout_ms: Option<f64>,
        cancellable: bool,
    ) -> Option<Failure> {
        let Some(last) = Connectivity::from_number(last) else {
            return Some(Failure::invalid(format!(
                "{last} is not a connectivity state (0 to 4)"
            )));
        };
        let timeout = match timeout_ms.map(|ms| millis("timeoutMs", ms)).transpose() {
            Ok(timeout) => timeout,
            Err(failure) => return Some(failure),
        };
        let pool = self.state.pool.clone();
        self.state
            .start(id, cancellable, async move {
                match pool.connectivity_changed(&target, last, timeout).await {
                    Ok(state) => Completion {
                        count: Some(f64::from(state as u8)),
                        ..Completion::done(id)
                    },
                    Err(error) => Completion::failed(id, Failure::from_error(error)),
                }
            })
            .err()
    }

    /// Whether `close` has been called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.state.pool.is_closed()
    }
}

impl NativePool {
    fn try_acquire(
        &self,
        id: u32,
        target: String,
        timeout_ms: Option<f64>,
        wait_for_ready: Option<bool>,
        site: Option<String>,
        cancellable: bool,
    ) -> Result<(), Failure> {
        self.state.check_open()?;
        let mut options = AcquireOptions::default();
        options.timeout = timeout_ms.map(|ms| millis("timeoutMs", ms)).transpose()?;
        options.wait_for_ready = wait_for_ready.unwrap_or(false);
        options.site = site.map(Arc::from);
        let acquiring = self.state.pool.acquire_with(&target, options);
        let state = Arc::clone(&self.state);
        self.state.start(id, cancellable, async move {
            match acquiring.await {
                Ok(lease) => Completion {
                    lease: Some(NativeLease::new(state, lease, target)),
                    ..Completion::done(id)
                },
                Err(error) => Completion::failed(id, Failure::from_error(error)),
            }
        })
    }
}
