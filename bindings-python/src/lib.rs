//! `grpcpool._native`: the pyo3 module behind the pure-Python `grpcpool` package.
//!
//! It stays thin: Python code turns messages into bytes, maps statuses to exceptions and holds
//! the typed API; this module owns the core [`Pool`] and [`Lease`] and releases the GIL while
//! anything waits. Every blocking wait runs the work on the pool's runtime and waits for it in
//! slices, checking for signals between them, so Ctrl-C interrupts a call (and cancels it).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use grpcpool_core::{
    AcquireOptions, Code, Connectivity, Error, ErrorKind, Pool, Response, CALL_OPTIONS,
};
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
    StreamClosedError,
    PyValueError,
    "A streaming call takes no more requests: done_writing() was called, it was cancelled, or \
     the server ended it (read it to get the status)."
);
pyo3::create_exception!(
    _native,
    BusyError,
    PyRuntimeError,
    "An operation of the same kind already waits on this stream (a second read or send), or \
     calls are in flight on the lease a stream would open on; nothing happened."
);
pyo3::create_exception!(
    _native,
    StatusError,
    pyo3::exceptions::PyException,
    "Internal: an operation failed with a gRPC status; args are (code, message)."
);

mod completions;
mod convert;
mod lease;
mod log;
mod stream;

use completions::CompletionQueue;
use convert::{
    call_options, config_from, request_bytes, response_object, response_to_py, seconds,
    settings_to_py, Seconds,
};
use lease::NativeLease;
use stream::NativeStream;

/// How often a blocking wait wakes to check for signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// How long an interrupted wait waits for the runtime to drop the work it abandoned: enough
/// for a busy runtime, bounded so an interrupt always gets through.
const ABANDON_WAIT: Duration = Duration::from_secs(1);

/// How a core error reaches Python: the one error map of this face.
enum Failure {
    /// As a gRPC status, the way grpcio reports the same failure: the call's response where
    /// the call returns one (unary calls), else an `RpcError` (the package turns
    /// [`StatusError`] into one).
    Status(Code, String),
    /// As this Python exception.
    Raise(PyErr),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let message = error.to_string();
        // No catch-all: a new kind of error fails to compile here until it is mapped.
        match error.kind() {
            // grpcio fails an oversized request with RESOURCE_EXHAUSTED, a slot that never
            // freed with DEADLINE_EXCEEDED and an unreachable target with UNAVAILABLE.
            ErrorKind::MessageTooLarge | ErrorKind::AcquireTimeout | ErrorKind::Unavailable => {
                Failure::Status(error.code(), message)
            }
            ErrorKind::PoolClosed => Failure::Raise(PoolClosedError::new_err(message)),
            ErrorKind::StreamClosed => Failure::Raise(StreamClosedError::new_err(message)),
            // Misuse of an object in its current state, and an engine that cannot run.
            ErrorKind::Busy => Failure::Raise(BusyError::new_err(message)),
            ErrorKind::BlockingInAsync | ErrorKind::Runtime => {
                Failure::Raise(PyRuntimeError::new_err(message))
            }
            // Bad values. (A wrong Python type or an unknown keyword is a TypeError, decided
            // where the value is converted.)
            ErrorKind::InvalidTarget
            | ErrorKind::InvalidMethod
            | ErrorKind::InvalidMetadata
            | ErrorKind::InvalidCompression
            | ErrorKind::InvalidConfig
            | ErrorKind::Tls => Failure::Raise(PyValueError::new_err(message)),
        }
    }
}

/// Converts a core error to the Python exception that describes it.
fn to_py_err(error: Error) -> PyErr {
    match Failure::from(error) {
        Failure::Status(code, message) => StatusError::new_err((code.as_i32(), message)),
        Failure::Raise(error) => error,
    }
}

/// A unary call's outcome: a failure that grpcio reports as the call's status (an oversized
/// request, say) becomes the response, so `unary_response` returns it and `unary` raises
/// `RpcError`, as for any status.
fn unary_outcome(outcome: Result<Response, Error>) -> PyResult<Response> {
    match outcome {
        Ok(response) => Ok(response),
        Err(error) => match Failure::from(error) {
            Failure::Status(code, message) => Ok(Response::with_status(code, message)),
            Failure::Raise(error) => Err(error),
        },
    }
}

/// The state shared by a pool object and its leases.
struct PoolState {
    pool: Pool,
    /// Set in a child process after `fork()`: the pool's runtime threads stayed in the parent,
    /// so nothing of it may run or be dropped here.
    abandoned: AtomicBool,
}

impl PoolState {
    fn check_open(&self) -> PyResult<()> {
        // Core refuses new acquires and one-shot calls itself once closed, but a lease's calls
        // run on a slot already held: the face refuses those too.
        if self.pool.is_closed() {
            return Err(to_py_err(Error::PoolClosed));
        }
        if self.abandoned.load(Ordering::Acquire) {
            return Err(PoolClosedError::new_err(
                "this pool belongs to the parent process (it was made before fork()); \
                 acquire a new lease from the pool in this process",
            ));
        }
        Ok(())
    }

    /// Runs `future` on the pool's runtime (core's [`Pool::start_blocking`]) with the GIL
    /// released, waking every [`SIGNAL_CHECK`] to check for signals. An exception from a signal
    /// handler (KeyboardInterrupt) drops the future, abandoning that wait: a unary call is then
    /// cancelled, a stream goes on.
    fn wait<F>(&self, py: Python<'_>, future: F) -> PyResult<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut task = self.pool.start_blocking(future).map_err(to_py_err)?;
        loop {
            let (outcome, returned) = py.detach(move || {
                let outcome = task.wait_for(SIGNAL_CHECK);
                (outcome, task)
            });
            task = returned;
            if let Some(outcome) = outcome {
                return outcome.map_err(to_py_err);
            }
            if let Err(error) = py.check_signals() {
                task.abort();
                // Until the runtime drops the task, the abandoned operation still holds what
                // it claimed (a stream's read, say): wait for that, so a retry right after the
                // exception is not refused as busy.
                py.detach(move || {
                    let _ = task.wait_for(ABANDON_WAIT);
                });
                return Err(error);
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
        F: Future<Output = PyResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let queue = queue.clone().unbind();
        let push = move |output: PyResult<T>| {
            queue.get().push(
                token,
                Box::new(
                    move |py| match output.and_then(|value| convert(py, value)) {
                        Ok(value) => (true, value),
                        Err(error) => (false, error.into_value(py).into_any()),
                    },
                ),
            );
        };
        let task = self.pool.spawn_then(future, push).map_err(to_py_err)?;
        Ok(NativeCall {
            task: task.abort_handle(),
        })
    }
}

/// A core future's error as the Python exception, for [`PoolState::start`]. A combinator, not
/// an async fn: that would hold the call's state twice (the argument and the awaited future).
fn mapped<T>(future: impl Future<Output = Result<T, Error>>) -> impl Future<Output = PyResult<T>> {
    future.map(|outcome| outcome.map_err(to_py_err))
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

impl NativePool {
    /// What an acquire waits for and where it was made.
    fn connectivity_future(
        &self,
        target: &str,
        last: u32,
        timeout: Option<Seconds>,
    ) -> PyResult<impl Future<Output = PyResult<u8>> + Send + 'static> {
        let last = Connectivity::from_number(last).ok_or_else(|| {
            PyValueError::new_err(format!("{last} is not a connectivity state (0 to 4)"))
        })?;
        let timeout = timeout.map(|value| seconds("timeout", value)).transpose()?;
        let pool = self.state.pool.clone();
        let target = target.to_owned();
        Ok(async move {
            let state = pool.connectivity_changed(&target, last, timeout).await;
            Ok(state.map_err(to_py_err)? as u8)
        })
    }

    fn acquire_options(
        timeout: Option<Seconds>,
        wait_for_ready: bool,
        site: Option<&str>,
    ) -> PyResult<AcquireOptions> {
        let mut options = AcquireOptions::default();
        options.timeout = timeout.map(|t| seconds("timeout", t)).transpose()?;
        options.wait_for_ready = wait_for_ready;
        options.site = site.map(Arc::from);
        Ok(options)
    }

    /// A one-shot unary call, checked now; the future acquires, calls and releases. Bad input
    /// is an exception now, and a failure grpcio reports as a status is the call's response.
    fn unary_future(
        &self,
        target: &str,
        method: &str,
        request: &Bound<'_, PyAny>,
        options: grpcpool_core::CallOptions,
    ) -> PyResult<impl Future<Output = PyResult<Response>> + Send + 'static> {
        let request = request_bytes(request)?;
        let pool = &self.state.pool;
        let started = pool
            .prepare(method, request, options)
            .and_then(|call| pool.unary_prepared(target, call));
        let started = match started {
            Ok(future) => Ok(future),
            // Ok: a failure reported as the call's status, delivered as the call would be.
            Err(error) => Err(unary_outcome(Err(error))?),
        };
        Ok(async move {
            match started {
                Ok(future) => unary_outcome(future.await),
                Err(response) => Ok(response),
            }
        })
    }

    /// A one-shot stream, checked now (method, metadata, target: bad input raises before
    /// anything waits); the future acquires a slot and opens the stream on it.
    fn stream_future(
        &self,
        target: &str,
        method: &str,
        options: grpcpool_core::CallOptions,
    ) -> PyResult<impl Future<Output = Result<grpcpool_core::Stream, Error>> + Send + 'static> {
        let pool = &self.state.pool;
        pool.prepare_stream(method, options)
            .and_then(|call| pool.open_stream_prepared(target, call))
            .map_err(to_py_err)
    }
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
        timeout: Option<Seconds>,
        wait_for_ready: bool,
        site: Option<&str>,
    ) -> PyResult<NativeLease> {
        self.state.check_open()?;
        let options = NativePool::acquire_options(timeout, wait_for_ready, site)?;
        let future = self.state.pool.acquire_with(target, options);
        let lease = self.state.wait(py, future)?.map_err(to_py_err)?;
        Ok(NativeLease::new(Arc::clone(&self.state), lease, target))
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
        timeout: Option<Seconds>,
        metadata: Option<&Bound<'py, PyAny>>,
        wait_for_ready: bool,
        compression: Option<&str>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.state.check_open()?;
        let options = call_options(timeout, metadata, wait_for_ready, compression)?;
        let future = self.unary_future(target, method, request, options)?;
        let response = self.state.wait(py, future)??;
        response_to_py(py, &response)
    }

    /// `acquire` for asyncio: `done` gets `(True, NativeLease)` or `(False, exception)`.
    #[pyo3(signature = (queue, token, target, timeout=None, wait_for_ready=false, site=None))]
    fn acquire_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
        target: &str,
        timeout: Option<Seconds>,
        wait_for_ready: bool,
        site: Option<&str>,
    ) -> PyResult<NativeCall> {
        self.state.check_open()?;
        let options = NativePool::acquire_options(timeout, wait_for_ready, site)?;
        let future = mapped(self.state.pool.acquire_with(target, options));
        let state = Arc::clone(&self.state);
        let target = target.to_owned();
        self.state.start(future, queue, token, move |py, lease| {
            Ok(Py::new(py, NativeLease::new(state, lease, &target))?.into_any())
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
        timeout: Option<Seconds>,
        metadata: Option<&Bound<'_, PyAny>>,
        wait_for_ready: bool,
        compression: Option<&str>,
    ) -> PyResult<NativeCall> {
        self.state.check_open()?;
        let options = call_options(timeout, metadata, wait_for_ready, compression)?;
        let future = self.unary_future(target, method, request, options)?;
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
        timeout: Option<Seconds>,
        metadata: Option<&Bound<'_, PyAny>>,
        wait_for_ready: bool,
        compression: Option<&str>,
    ) -> PyResult<NativeStream> {
        self.state.check_open()?;
        let options = call_options(timeout, metadata, wait_for_ready, compression)?;
        let future = self.stream_future(target, method, options)?;
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
        timeout: Option<Seconds>,
        metadata: Option<&Bound<'_, PyAny>>,
        wait_for_ready: bool,
        compression: Option<&str>,
    ) -> PyResult<NativeCall> {
        self.state.check_open()?;
        let options = call_options(timeout, metadata, wait_for_ready, compression)?;
        let future = mapped(self.stream_future(target, method, options)?);
        let state = Arc::clone(&self.state);
        self.state.start(future, queue, token, move |py, stream| {
            Ok(Py::new(py, NativeStream::new(state, stream))?.into_any())
        })
    }

    /// The target's connectivity as gRPC's number (0 IDLE, 1 CONNECTING, 2 READY,
    /// 3 TRANSIENT_FAILURE, 4 SHUTDOWN); `try_to_connect` starts an idle target connecting.
    #[pyo3(signature = (target, try_to_connect=false))]
    fn connectivity(&self, target: &str, try_to_connect: bool) -> PyResult<u8> {
        let state = self.state.pool.connectivity(target, try_to_connect);
        Ok(state.map_err(to_py_err)? as u8)
    }

    /// Waits, without the GIL, until the target's connectivity is other than `last` or
    /// `timeout` seconds pass; returns the state then (as `connectivity` numbers it).
    #[pyo3(signature = (target, last, timeout=None))]
    fn wait_connectivity_change(
        &self,
        py: Python<'_>,
        target: &str,
        last: u32,
        timeout: Option<Seconds>,
    ) -> PyResult<u8> {
        let future = self.connectivity_future(target, last, timeout)?;
        self.state.wait(py, future)?
    }

    /// `wait_connectivity_change` for asyncio: `done` gets `(True, state)` or
    /// `(False, exception)`.
    #[pyo3(signature = (queue, token, target, last, timeout=None))]
    fn connectivity_change_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
        target: &str,
        last: u32,
        timeout: Option<Seconds>,
    ) -> PyResult<NativeCall> {
        let future = self.connectivity_future(target, last, timeout)?;
        self.state.start(future, queue, token, |py, state: u8| {
            Ok(state.into_pyobject(py)?.into_any().unbind())
        })
    }

    /// The pool's counters as a JSON document.
    fn stats_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.state.pool.stats())
            .map_err(|error| PyRuntimeError::new_err(error.to_string()))
    }

    /// The pool's metrics in the Prometheus text exposition format.
    fn metrics_text(&self) -> String {
        self.state.pool.metrics_text()
    }

    /// Sets the endpoints of `static:///name` targets with their weights (core's
    /// `Pool::set_weighted_endpoints`).
    fn set_endpoints(&self, name: &str, endpoints: Vec<(String, u32)>) -> PyResult<()> {
        self.state
            .pool
            .set_weighted_endpoints(name, &endpoints)
            .map_err(to_py_err)
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
        self.state.pool.is_closed()
    }

    /// Stops new work, waits up to `grace` seconds for calls in flight, closes every connection.
    /// Returns the number of slots still in use when it gave up.
    // The default is spelled out for the signature Python shows (stubtest compares it).
    #[pyo3(signature = (grace=Seconds::from(5.0)), text_signature = "(self, /, grace=5.0)")]
    fn close(&self, py: Python<'_>, grace: Seconds) -> PyResult<u64> {
        let grace = seconds("grace", grace)?;
        let pool = &self.state.pool;
        if pool.is_closed() {
            return Ok(0);
        }
        // Closed at once, so nothing new starts while this waits for the calls in flight.
        pool.close();
        if pool.runtime_handle().is_err() {
            // The runtime never started (a closed pool starts none): no call ever ran.
            return Ok(0);
        }
        let pool = pool.clone();
        self.state
            .wait(py, async move { pool.shutdown(grace).await })
    }
}

/// Core's settings table: `(name, type, off, per_target, default)` for every pool setting,
/// which `Pool` takes as keyword arguments of the same names (durations in seconds).
#[pyfunction]
fn settings(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    settings_to_py(py)
}

/// The names of the per-call options every call takes (core's table): timeout, metadata,
/// wait_for_ready and compression.
#[pyfunction]
fn call_option_names() -> Vec<&'static str> {
    CALL_OPTIONS.iter().map(|option| option.name).collect()
}

/// The native module of `grpcpool`.
#[pymodule]
mod _native {
    #[pymodule_export]
    use super::{
        call_option_names, settings, BusyError, CompletionQueue, LeaseReleasedError, NativeCall,
        NativeLease, NativePool, NativeStream, PoolClosedError, StatusError, StreamClosedError,
    };

    #[pymodule_init]
    fn init(_module: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        super::log::install_from_env();
        Ok(())
    }
}
