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
        full: bool,
        cancellable: bool,
    ) -> Option<Failure> {
        let started = self.lease().and_then(|lease| {
            let options = call_options(timeout_ms, metadata, None)?;
            let call = self
                .state
                .pool
                .prepare(&method, Bytes::copy_from_slice(&request), options)
                .map_err(Failure::from_error)?;
            self.state.start(id, cancellable, async move {
                unary_completion(id, lease.call(call).await, full)
            })
        });
        started.err()
    }

    /// Opens a streaming call on the lease's connection. The stream takes the lease over: the
    /// lease counts as released, and the stream gives the slot back when it ends.
    #[napi]
    pub fn open_stream(
        &self,
        method: String,
        timeout_ms: Option<f64>,
        metadata: Option<Vec<MetadataEntry>>,
    ) -> Either<NativeStream, Failure> {
        match self.try_open_stream(&method, timeout_ms, metadata) {
            Ok(stream) => Either::A(stream),
            Err(failure) => Either::B(failure),
        }
    }

    /// Drops the cancellable call `id` if it is still running (resetting its stream).
    #[napi]
    pub fn cancel(&self, id: u32) {
        self.state.cancel(id);
    }

    /// Returns the slot to the pool. Releasing twice does nothing.
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
    ) -> Result<NativeStream, Failure> {
        self.lease()?;
        let options = call_options(timeout_ms, metadata, None)?;
        // Bad input is refused before the lease is handed over.
        self.state
            .pool
            .prepare(method, Bytes::new(), options.clone())
            .map_err(Failure::from_error)?;
        let mut slot = self.lease.lock();
        let Some(shared) = slot.take() else {
            return Err(Failure::released());
        };
        let lease = match Arc::try_unwrap(shared) {
            Ok(lease) => lease,
            Err(shared) => {
                *slot = Some(shared);
                return Err(Failure::invalid(
                    "the lease has unary calls in flight: open the stream when they end",
                ));
            }
        };
        drop(slot);
        let stream = Arc::new(lease)
            .open_stream(method, options)
            .map_err(Failure::from_error)?;
        Ok(NativeStream::new(Arc::clone(&self.state), stream))
    }
}

impl Drop for NativeLease {
    fn drop(&mut self) {
        // Collected without release(): the slot returns, and it counts as a leak. A call still
        // in flight holds the lease; it is released when that call ends.
        if let Some(lease) = self.lease.get_mut().take() {
            match Arc::try_unwrap(lease) {
                Ok(lease) => lease.release_as_leaked(),
                Err(shared) => drop(shared),
            }
        }
    }
}
