//! `NativeLease`: a core lease as a JavaScript class (wrapped by `Lease` in lib/lease.js).

use std::sync::Arc;

use bytes::Bytes;
use grpcpool_core::Lease;
use napi::bindgen_prelude::{Either, Uint8ArraySlice};
use napi_derive::napi;
use parking_lot::Mutex;

use crate::convert::{call_options, MetadataEntry};
use crate::failure::Failure;
use crate::pool::unary_completion;
use crate::pool_state::PoolState;
use crate::stream::NativeStream;

/// A native lease. Released by `release()`; one collected unreleased is released and counted
/// as a leak.
#[napi]
pub struct NativeLease {
    state: Arc<PoolState>,
    /// Face-only: whether this JavaScript handle was released (`None` then), since the object
    /// outlives `release()`; the lease and its slot are core's.
    lease: Mutex<Option<Arc<Lease>>>,
    target: String,
}

impl NativeLease {
    pub(crate) fn new(state: Arc<PoolState>, lease: Lease, target: String) -> NativeLease {
        NativeLease {
            state,
            lease: Mutex::new(Some(Arc::new(lease))),
            target,
        }
    }

    fn lease(&self) -> Result<Arc<Lease>, Failure> {
        self.state.check_open()?;
        self.lease.lock().clone().ok_or_else(Failure::released)
    }
}

#[napi]
impl NativeLease {
    /// Starts a unary call on the lease's connection; completes as `NativePool.unary` does.
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn unary(
        &self,
        id: u32,
        method: String,
        request: Uint8ArraySlice<'_>,
        timeout_ms: Option<f64>,
        metadata: Option<Vec<MetadataEntry>>,
        compression: Option<String>,
        full: bool,
        cancellable: bool,
    ) -> Option<Failure> {
        let started = self.lease().and_then(|lease| {
            let options = call_options(timeout_ms, metadata, None, compression)?;
            let call = self
                .state
                .pool
                .prepare(&method, Bytes::copy_from_slice(&request), options)
                .map_err(Failure::from_error)?;
            // In use from now, not from the task's first poll: a stream opened right after
            // this returns is refused as busy.
            let calling = lease.start_call(call);
            self.state.start(id, cancellable, async move {
                unary_completion(id, calling.await, full)
            })
        });
        started.err()
    }

    /// Opens a streaming call on the lease's connection, using the lease's slot until the call
    /// ends. The lease stays the caller's: calls and another stream work on it once this one is
    /// over, and the slot returns once both the lease is released and the stream is over. A
    /// `"busy"` failure while calls or another stream are in flight on the lease.
    #[napi]
    pub fn open_stream(
        &self,
        method: String,
        timeout_ms: Option<f64>,
        metadata: Option<Vec<MetadataEntry>>,
        compression: Option<String>,
    ) -> Either<NativeStream, Failure> {
        match self.try_open_stream(&method, timeout_ms, metadata, compression) {
            Ok(stream) => Either::A(stream),
            Err(failure) => Either::B(failure),
        }
    }

    /// Drops the cancellable call `id` if it is still running (resetting its stream).
    #[napi]
    pub fn cancel(&self, id: u32) {
        self.state.cancel(id);
    }

    /// Releases the lease; its slot returns to the pool now, or when a stream opened on it
    /// ends. Releasing twice does nothing.
    #[napi]
    pub fn release(&self) {
        drop(self.lease.lock().take());
    }

    /// Whether the lease was released.
    #[napi(getter)]
    pub fn released(&self) -> bool {
        self.lease.lock().is_none()
    }

    /// The target the lease is for.
    #[napi(getter)]
    pub fn target(&self) -> String {
        self.target.clone()
    }

    /// The address of the connection the lease holds ("" once released).
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.lease
            .lock()
            .as_ref()
            .map(|lease| lease.address())
            .unwrap_or_default()
    }
}

impl NativeLease {
    fn try_open_stream(
        &self,
        method: &str,
        timeout_ms: Option<f64>,
        metadata: Option<Vec<MetadataEntry>>,
        compression: Option<String>,
    ) -> Result<NativeStream, Failure> {
        let lease = self.lease()?;
        let options = call_options(timeout_ms, metadata, None, compression)?;
        let call = self
            .state
            .pool
            .prepare_stream(method, options)
            .map_err(Failure::from_error)?;
        // The stream holds its own reference to the lease until the call ends; this handle
        // keeps its own, so release() and a collection work as for any lease.
        let stream = lease
            .open_stream_prepared(call)
            .map_err(Failure::from_error)?;
        Ok(NativeStream::new(Arc::clone(&self.state), stream))
    }
}

impl Drop for NativeLease {
    fn drop(&mut self) {
        // Collected without release(): it counts as a leak. The slot returns once nothing
        // else holds the lease either: a call in flight keeps this object alive until it
        // ends, but a stream opened on the lease may outlive it and gives the slot back at
        // its end.
        if let Some(lease) = self.lease.get_mut().take() {
            lease.release_as_leaked();
        }
    }
}
