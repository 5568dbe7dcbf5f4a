//! `NativeLease`: a lease held by Python, released explicitly or, as a leak, when collected.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use grpcpool_core::{CallOptions, Lease, Response};
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{call_options, request_bytes, response_object, response_to_py, Seconds};
use crate::{
    to_py_err, unary_outcome, CompletionQueue, LeaseReleasedError, NativeCall, NativeStream,
    PoolState,
};

/// A native lease.
#[pyclass(module = "grpcpool._native", frozen)]
pub(crate) struct NativeLease {
    state: Arc<PoolState>,
    /// The lease; `None` once released. Face-only: the Python object outlives `release()`, so
    /// the handle keeps whether it was released; the lease and its slot are core's. A stream
    /// opened on it holds its own reference until the call ends, so the slot outlives this one
    /// while the stream runs.
    lease: Mutex<Option<Arc<Lease>>>,
    target: String,
}

impl NativeLease {
    /// Wraps a lease just acquired on `target`.
    pub(crate) fn new(state: Arc<PoolState>, lease: Lease, target: &str) -> NativeLease {
        NativeLease {
            state,
            lease: Mutex::new(Some(Arc::new(lease))),
            target: target.to_owned(),
        }
    }

    fn lease(&self) -> PyResult<Arc<Lease>> {
        self.state.check_open()?;
        self.lease
            .lock()
            .clone()
            .ok_or_else(|| LeaseReleasedError::new_err("the lease was released"))
    }

    /// A unary call on the lease, checked and started now: the lease counts as in use from
    /// here (so a stream opened meanwhile is refused as busy, deterministically), until the
    /// call ends or its future is dropped. Bad input is an exception now; a failure grpcio
    /// reports as a status (an oversized request) is the call's response.
    fn unary_future(
        &self,
        method: &str,
        request: &Bound<'_, PyAny>,
        options: CallOptions,
    ) -> PyResult<impl Future<Output = PyResult<Response>> + Send + 'static> {
        let lease = self.lease()?;
        let request = request_bytes(request)?;
        let calling = match self.state.pool.prepare(method, request, options) {
            Ok(call) => Ok(lease.start_call(call)),
            Err(error) => Err(unary_outcome(Err(error))?),
        };
        Ok(async move {
            match calling {
                Ok(calling) => Ok(calling.await),
                Err(response) => Ok(response),
            }
        })
    }
}

#[pymethods]
impl NativeLease {
    /// A unary call on the lease; returns the response tuple.
    #[pyo3(signature = (method, request, timeout=None, metadata=None, wait_for_ready=false, compression=None))]
    #[allow(clippy::too_many_arguments)]
    fn unary<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        request: &Bound<'py, PyAny>,
        timeout: Option<Seconds>,
        metadata: Option<&Bound<'py, PyAny>>,
        wait_for_ready: bool,
        compression: Option<&str>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let options = call_options(timeout, metadata, wait_for_ready, compression)?;
        let future = self.unary_future(method, request, options)?;
        let response = self.state.wait(py, future)??;
        response_to_py(py, &response)
    }

    /// `unary` for asyncio: `done` gets `(True, response tuple)` or `(False, exception)`.
    #[pyo3(signature = (queue, token, method, request, timeout=None, metadata=None, wait_for_ready=false, compression=None))]
    #[allow(clippy::too_many_arguments)]
    fn unary_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
        method: &str,
        request: &Bound<'_, PyAny>,
        timeout: Option<Seconds>,
        metadata: Option<&Bound<'_, PyAny>>,
        wait_for_ready: bool,
        compression: Option<&str>,
    ) -> PyResult<NativeCall> {
        let options = call_options(timeout, metadata, wait_for_ready, compression)?;
        let future = self.unary_future(method, request, options)?;
        self.state.start(future, queue, token, response_object)
    }

    /// Opens a streaming call on the lease's connection. The stream uses the lease's slot
    /// until the call ends and leaves the lease the caller's: usable again once the stream is
    /// over, and released as usual (the slot returns when both the lease is released and the
    /// stream is over). RuntimeError (core's Busy) while calls or another stream are in flight
    /// on the lease.
    #[pyo3(signature = (method, timeout=None, metadata=None, wait_for_ready=false, compression=None))]
    fn open_stream(
        &self,
        method: &str,
        timeout: Option<Seconds>,
        metadata: Option<&Bound<'_, PyAny>>,
        wait_for_ready: bool,
        compression: Option<&str>,
    ) -> PyResult<NativeStream> {
        let lease = self.lease()?;
        let options = call_options(timeout, metadata, wait_for_ready, compression)?;
        let stream = lease.open_stream(method, options).map_err(to_py_err)?;
        Ok(NativeStream::new(Arc::clone(&self.state), stream))
    }

    /// Returns the slot to the pool. Releasing twice does nothing.
    fn release(&self) {
        let lease = self.lease.lock().take();
        if self.state.abandoned.load(Ordering::Acquire) {
            // A parent's lease in a forked child: its pool may not be touched here.
            std::mem::forget(lease);
        }
    }

    /// Whether the lease was released.
    #[getter]
    fn released(&self) -> bool {
        self.lease.lock().is_none()
    }

    /// The target the lease is for.
    #[getter]
    fn target(&self) -> &str {
        &self.target
    }

    /// The address of the connection the lease holds ("" once released).
    #[getter]
    fn address(&self) -> String {
        self.lease
            .lock()
            .as_ref()
            .map(|lease| lease.address())
            .unwrap_or_default()
    }
}

impl Drop for NativeLease {
    fn drop(&mut self) {
        let lease = self.lease.get_mut().take();
        if self.state.abandoned.load(Ordering::Acquire) {
            std::mem::forget(lease);
        } else if let Some(lease) = lease {
            // Collected without release(): it counts as a leak, and the slot returns when the
            // last reference (this one, or a call's or stream's still in flight) goes.
            lease.release_as_leaked();
        }
    }
}
