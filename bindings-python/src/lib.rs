//! `grpcpool._native`: the pyo3 module behind the pure-Python `grpcpool` package.
//!
//! It stays thin: Python code turns messages into bytes, maps statuses to exceptions and holds
//! the typed API; this module owns the core [`Pool`] and [`Lease`] and releases the GIL while
//! anything waits. Every blocking wait runs the work on the pool's runtime and waits for it in
//! slices, checking for signals between them, so Ctrl-C interrupts a call (and cancels it).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use grpcpool_core::{AcquireOptions, Error, Pool};
use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

pyo3::create_exception!(
    _native,
    PoolClosedError,
    PyValueError,
    "The pool is closed: it makes no more leases or calls."
);
pyo3::create_exception!(
    _native,
    LeaseReleasedError,
    PyValueError,
    "The lease was released: make calls on a new one."
);
pyo3::create_exception!(
    _native,
    StatusError,
    pyo3::exceptions::PyException,
    "Internal: an acquire failed with a gRPC status; args are (code, message)."
);

mod completions;
mod convert;
mod lease;
mod log;
mod stream;

use completions::CompletionQueue;
use convert::{call_options, config_from, request_bytes, response_object, response_to_py, seconds};
use lease::NativeLease;
use stream::NativeStream;

/// How often a blocking wait wakes to check for signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Converts a core error to the Python exception that describes it.
fn to_py_err(error: Error) -> PyErr {
    match error {
        Error::PoolClosed => PoolClosedError::new_err("the pool is closed"),
        Error::AcquireTimeout { .. } | Error::Unavailable { .. } => {
            StatusError::new_err((error.code().as_i32(), error.to_string()))
        }
        Error::Runtime(_) => PyRuntimeError::new_err(error.to_string()),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// The state shared by a pool object and its leases.
struct PoolState {
    pool: Pool,
    closed: AtomicBool,
    /// Set in a child process after `fork()`: the pool's runtime threads stayed in the parent,
    /// so nothing of it may run or be dropped here.
    abandoned: AtomicBool,
}

impl PoolState {
    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PoolClosedError::new_err("the pool is closed"));
        }
        if self.abandoned.load(Ordering::Acquire) {
            return Err(PoolClosedError::new_err(
                "this pool belongs to the parent process (it was made before fork()); \
                 acquire a new lease from the pool in this process",
            ));
        }
        Ok(())
    }

    /// Runs `future` on the pool's runtime with the GIL released, waking every [`SIGNAL_CHECK`]
    /// to check for signals. An exception from a signal handler (KeyboardInterrupt) drops the
    /// future, cancelling it. (Polling the future on this thread inside the runtime instead
    /// measured about 15% more CPU per call: the connection's lock is then contended.)
    fn wait<F>(&self, py: Python<'_>, future: F) -> PyResult<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(PyRuntimeError::new_err(
                "a blocking grpcpool call was made on a grpcpool runtime thread",
            ));
        }
        let runtime = self.pool.runtime_handle().map_err(to_py_err)?;
        let (sender, receiver) = mpsc::sync_channel(1);
        let task = runtime.spawn(async move {
            let _ = sender.send(future.await);
        });
        let mut receiver = receiver;
        loop {
            let (outcome, returned) = py.detach(move || {
                let outcome = receiver.recv_timeout(SIGNAL_CHECK);
                (outcome, receiver)
            });
            receiver = returned;
            match outcome {
                Ok(output) => return Ok(output),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(error) = py.check_signals() {
                        task.abort();
                        return Err(error);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(PyRuntimeError::new_err(
                        "the grpcpool runtime stopped before the call finished",
                    ))
                }
            }
        }
    }
}

impl PoolState {
    /// Starts `future` on the pool's runtime for asyncio and returns at once. Its outcome goes
    /// to `queue` with `token` (the asyncio future waiting for it), and the event loop turns it
    /// into `(True, value)` or `(False, exception)` when it drains the queue.
    fn start<F, T>(
        &self,
        future: F,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
        convert: impl FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
    ) -> PyResult<NativeCall>
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        let runtime = self.pool.runtime_handle().map_err(to_py_err)?;
        let queue = queue.clone().unbind();
        let task = runtime.spawn(async move {
            let output = future.await;
            queue.get().push(
                token,
                Box::new(move |py| {
                    match output
                        .map_err(to_py_err)
                        .and_then(|value| convert(py, value))
                    {
                        Ok(value) => (true, value),
                        Err(error) => (false, error.into_value(py).into_any()),
                    }
                }),
            );
        });
        Ok(NativeCall {
            task: task.abort_handle(),
        })
    }
}

/// An asyncio call in flight; `cancel()` drops it, which resets its HTTP/2 stream.
#[pyclass(module = "grpcpool._native", frozen)]
struct NativeCall {
    task: tokio::task::AbortHandle,
}

#[pymethods]
impl NativeCall {
    /// Cancels the call; its `done` callback is then never called.
    fn cancel(&self) {
        self.task.abort();
    }
}

/// The native pool.
#[pyclass(module = "grpcpool._native", frozen)]
struct NativePool {
    state: Arc<PoolState>,
}

#[pymethods]
impl NativePool {
    #[new]
    #[pyo3(signature = (**settings))]
    fn new(settings: Option<&Bound<'_, PyDict>>) -> PyResult<NativePool> {
        let config = config_from(settings)?;
        let pool = Pool::new(config).map_err(to_py_err)?;
        Ok(NativePool {
            state: Arc::new(PoolState {
                pool,
                closed: AtomicBool::new(false),
                abandoned: AtomicBool::new(false),
            }),
        })
    }

    /// Acquires a lease on `target`.
    #[pyo3(signature = (target, timeout=None, wait_for_ready=false, site=None))]
    fn acquire(
        &self,
        py: Python<'_>,
        target: &str,
        timeout: Option<f64>,
        wait_for_ready: bool,
        site: Option<&str>,
    ) -> PyResult<NativeLease> {
        self.state.check_open()?;
        let mut options = AcquireOptions::default();
        options.timeout = timeout.map(|t| seconds("timeout", t)).transpose()?;
        options.wait_for_ready = wait_for_ready;
        options.site = site.map(Arc::from);
        let future = self.state.pool.acquire_with(target, options);
        let lease = self.state.wait(py, future)?.map_err(to_py_err)?;
        Ok(NativeLease {
            state: Arc::clone(&self.state),
            lease: Mutex::new(Some(Arc::new(lease))),
            target: target.to_owned(),
        })
    }

    /// A one-shot unary call; returns the response tuple.
    #[pyo3(signature = (target, method, request, timeout=None, metadata=None, wait_for_ready=false, compression=None))]
    #[allow(clippy::too_many_arguments)]
    fn unary<'py>(
        &self,
        py: Python<'py>,
        target: &str,
        method: &str,
        request: &Bound<'py, PyAny>,
        timeout: Option<f64>,
        metadata: Option<&Bound<'py, PyAny>>,
        wait_for_ready: bool,
        compression: Option<&str>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.state.check_open()?;
        let request = request_bytes(request)?;
        let options = call_options(timeout, metadata, compression)?.wait_for_ready(wait_for_ready);
        let pool = &self.state.pool;
        let call = pool.prepare(method, request, options).map_err(to_py_err)?;
        let future = pool.unary_prepared(target, call).map_err(to_py_err)?;
        let response = self.state.wait(py, future)?.map_err(to_py_err)?;
        response_to_py(py, &response)
    }

    /// `acquire` for asyncio: `done` gets `(True, NativeLease)` or `(False, exception)`.
    #[pyo3(signature = (queue, token, target, timeout=None, wait_for_ready=false, site=None))]
    fn acquire_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
        target: &str,
        timeout: Option<f64>,
        wait_for_ready: bool,
        site: Option<&str>,
    ) -> PyResult<NativeCall> {
        self.state.check_open()?;
        let mut options = AcquireOptions::default();
        options.timeout = timeout.map(|t| seconds("timeout", t)).transpose()?;
        options.wait_for_ready = wait_for_ready;
        options.site = site.map(Arc::from);
        let future = self.state.pool.acquire_with(target, options);
        let state = Arc::clone(&self.state);
        let target = target.to_owned();
        self.state.start(future, queue, token, move |py, lease| {
            let lease = NativeLease {
                state,
                lease: Mutex::new(Some(Arc::new(lease))),
                target,
            };
            Ok(Py::new(py, lease)?.into_any())
        })
    }

    /// `unary` for asyncio: `done` gets `(True, response tuple)` or `(False, exception)`.
    #[pyo3(signature = (queue, token, target, method, request, timeout=None, metadata=None, wait_for_ready=false, compression=None))]
    #[allow(clippy::too_many_arguments)]
    fn unary_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
        target: &str,
        method: &str,
        request: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        metadata: Option<&Bound<'_, PyAny>>,
        wait_for_ready: bool,
        compression: Option<&str>,
    ) -> PyResult<NativeCall> {
        self.state.check_open()?;
        let request = request_bytes(request)?;
        let options = call_options(timeout, metadata, compression)?.wait_for_ready(wait_for_ready);
        let pool = &self.state.pool;
        let call = pool.prepare(method, request, options).map_err(to_py_err)?;
        let future = pool.unary_prepared(target, call).map_err(to_py_err)?;
        self.state.start(future, queue, token, response_object)
    }

    /// Opens a streaming call on `target` (acquiring a slot for it); returns the stream.
    #[pyo3(signature = (target, method, timeout=None, metadata=None, wait_for_ready=false, compression=None))]
    #[allow(clippy::too_many_arguments)]
    fn open_stream(
        &self,
        py: Python<'_>,
        target: &str,
        method: &str,
        timeout: Option<f64>,
        metadata: Option<&Bound<'_, PyAny>>,
        wait_for_ready: bool,
        compression: Option<&str>,
    ) -> PyResult<NativeStream> {
        self.state.check_open()?;
        let options = call_options(timeout, metadata, compression)?.wait_for_ready(wait_for_ready);
        let future = self.state.pool.open_stream(target, method, options);
        let stream = self.state.wait(py, future)?.map_err(to_py_err)?;
        Ok(NativeStream::new(Arc::clone(&self.state), stream))
    }

    /// `open_stream` for asyncio: `done` gets `(True, NativeStream)` or `(False, exception)`.
    #[pyo3(signature = (queue, token, target, method, timeout=None, metadata=None, wait_for_ready=false, compression=None))]
    #[allow(clippy::too_many_arguments)]
    fn open_stream_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
        target: &str,
        method: &str,
        timeout: Option<f64>,
        metadata: Option<&Bound<'_, PyAny>>,
        wait_for_ready: bool,
        compression: Option<&str>,
    ) -> PyResult<NativeCall> {
        self.state.check_open()?;
        let options = call_options(timeout, metadata, compression)?.wait_for_ready(wait_for_ready);
        let future = self.state.pool.open_stream(target, method, options);
        let state = Arc::clone(&self.state);
        self.state.start(future, queue, token, move |py, stream| {
            Ok(Py::new(py, NativeStream::new(state, stream))?.into_any())
        })
    }

    /// The pool's counters as a JSON document.
    fn stats_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.state.pool.stats())
            .map_err(|error| PyRuntimeError::new_err(error.to_string()))
    }

    /// Leases held past the leak threshold, as `(target, site, held_seconds)`.
    fn leaked_leases(&self) -> Vec<(String, String, f64)> {
        self.state
            .pool
            .leaked_leases()
            .into_iter()
            .map(|report| {
                (
                    report.target.clone(),
                    report.site.clone(),
                    report.held_for.as_secs_f64(),
                )
            })
            .collect()
    }

    /// In a child process after `fork()`: gives up this pool without touching it. Its runtime
    /// threads did not survive the fork and its locks may be held by threads that are gone, so
    /// it is leaked rather than shut down, and its leases refuse calls.
    fn abandon(&self) {
        if !self.state.abandoned.swap(true, Ordering::AcqRel) {
            std::mem::forget(Arc::clone(&self.state));
        }
    }

    /// Whether `close` has been called.
    #[getter]
    fn closed(&self) -> bool {
        self.state.closed.load(Ordering::Acquire)
    }

    /// Stops new work, waits up to `grace` seconds for calls in flight, closes every connection.
    /// Returns the number of slots still in use when it gave up.
    #[pyo3(signature = (grace=5.0))]
    fn close(&self, py: Python<'_>, grace: f64) -> PyResult<u64> {
        let grace = seconds("grace", grace)?;
        if self.state.closed.swap(true, Ordering::AcqRel) {
            return Ok(0);
        }
        let pool = self.state.pool.clone();
        self.state
            .wait(py, async move { pool.shutdown(grace).await })
    }
}

/// The native module of `grpcpool`.
#[pymodule]
mod _native {
    #[pymodule_export]
    use super::{
        CompletionQueue, LeaseReleasedError, NativeCall, NativeLease, NativePool, NativeStream,
        PoolClosedError, StatusError,
    };

    #[pymodule_init]
    fn init(_module: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        super::log::install_from_env();
        Ok(())
    }
}
