//! `NativeLease`: a lease held by Python, released explicitly or, as a leak, when collected.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use grpcpool_core::Lease;
use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{call_options, request_bytes, response_object, response_to_py};
use crate::{to_py_err, CompletionQueue, LeaseReleasedError, NativeCall, NativeStream, PoolState};

/// A native lease.
#[pyclass(module = "grpcpool._native", frozen)]
pub(crate) struct NativeLease {
    pub(crate) state: Arc<PoolState>,
    pub(crate) lease: Mutex<Option<Arc<Lease>>>,
    pub(crate) target: String,
}

impl NativeLease {
    fn lease(&self) -> PyResult<Arc<Lease>> {
        self.state.check_open()?;
        self.lease
            .lock()
            .clone()
            .ok_or_else(|| LeaseReleasedError::new_err("the lease was released"))
    }
}

#[pymethods]
impl NativeLease {
    /// A unary call on the lease; returns the response tuple.
    #[pyo3(signature = (method, request, timeout=None, metadata=None, compression=None))]
    fn unary<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        request: &Bound<'py, PyAny>,
        timeout: Option<f64>,
        metadata: Option<&Bound<'py, PyAny>>,
        compression: Option<&str>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let lease = self.lease()?;
        let request = request_bytes(request)?;
        let options = call_options(timeout, metadata, compression)?;
        let call = self
            .state
            .pool
            .prepare(method, request, options)
            .map_err(to_py_err)?;
        let response = self.state.wait(py, async move { lease.call(call).await })?;
        response_to_py(py, &response)
    }

    /// `unary` for asyncio: `done` gets `(True, response tuple)` or `(False, exception)`.
    #[pyo3(signature = (queue, token, method, request, timeout=None, metadata=None, compression=None))]
    #[allow(clippy::too_many_arguments)]
    fn unary_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
        method: &str,
        request: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        metadata: Option<&Bound<'_, PyAny>>,
        compression: Option<&str>,
    ) -> PyResult<NativeCall> {
        let lease = self.lease()?;
        let request = request_bytes(request)?;
        let options = call_options(timeout, metadata, compression)?;
        let call = self
            .state
            .pool
            .prepare(method, request, options)
            .map_err(to_py_err)?;
        let future = async move { Ok(lease.call(call).await) };
        self.state.start(future, queue, token, response_object)
    }

    /// Opens a streaming call on the lease's connection. The stream takes the lease's slot
    /// over: the lease counts as released, and the slot returns when the stream ends.
    #[pyo3(signature = (method, timeout=None, metadata=None, compression=None))]
    fn open_stream(
        &self,
        method: &str,
        timeout: Option<f64>,
        metadata: Option<&Bound<'_, PyAny>>,
        compression: Option<&str>,
    ) -> PyResult<NativeStream> {
        self.lease()?;
        let options = call_options(timeout, metadata, compression)?;
        // Bad input is refused while the lease is still the caller's.
        self.state
            .pool
            .prepare(method, Bytes::new(), options.clone())
            .map_err(to_py_err)?;
        let mut slot = self.lease.lock();
        let shared = slot
            .take()
            .ok_or_else(|| LeaseReleasedError::new_err("the lease was released"))?;
        let lease = match Arc::try_unwrap(shared) {
            Ok(lease) => lease,
            Err(shared) => {
                *slot = Some(shared);
                return Err(PyRuntimeError::new_err(
                    "the lease has calls in flight: open the stream once they are done",
                ));
            }
        };
        drop(slot);
        let stream = Arc::new(lease)
            .open_stream(method, options)
            .map_err(to_py_err)?;
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
            // Collected without release(): the slot returns, and it counts as a leak.
            match Arc::try_unwrap(lease) {
                Ok(lease) => lease.release_as_leaked(),
                Err(shared) => drop(shared),
            }
        }
    }
}
