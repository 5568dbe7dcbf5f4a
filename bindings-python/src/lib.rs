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

use bytes::Bytes;
use grpcpool_core::{
    AcquireOptions, CallOptions, Config, Error, Lease, Metadata, MetadataValue, Pool, Response,
};
use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

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

mod log;
mod stream;

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

/// A duration in seconds from Python.
fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be a finite number of seconds >= 0, not {value}"
        ))
    })
}

/// A duration that may be turned off: 0 or infinity turns it off.
fn optional_seconds(name: &str, value: f64) -> PyResult<Option<Duration>> {
    if value == 0.0 || value == f64::INFINITY {
        return Ok(None);
    }
    seconds(name, value).map(Some)
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

    /// Runs `future` to its end on this thread, inside the pool's runtime (whose threads drive
    /// the connections), with the GIL released, waking every [`SIGNAL_CHECK`] to check for
    /// signals. An exception from a signal handler (KeyboardInterrupt) drops the future,
    /// cancelling it. Polling here rather than on a runtime thread saves a thread hop per call.
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
        let mut future = Box::pin(future);
        loop {
            let slice = py.detach(|| {
                // The timer is made inside block_on, in the runtime's context.
                runtime
                    .block_on(async { tokio::time::timeout(SIGNAL_CHECK, future.as_mut()).await })
            });
            match slice {
                Ok(output) => return Ok(output),
                Err(_elapsed) => py.check_signals()?,
            }
        }
    }
}

impl PoolState {
    /// Starts `future` on the pool's runtime for asyncio and returns at once. When it ends,
    /// `done` is called (on a grpcpool thread, with the GIL) with `(True, value)` or
    /// `(False, exception)`; the Python side hands that to its event loop.
    fn start<F, T>(
        &self,
        future: F,
        done: Py<PyAny>,
        convert: impl FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
    ) -> PyResult<NativeCall>
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        let runtime = self.pool.runtime_handle().map_err(to_py_err)?;
        let task = runtime.spawn(async move {
            let output = future.await;
            Python::attach(|py| {
                let outcome = match output
                    .map_err(to_py_err)
                    .and_then(|value| convert(py, value))
                {
                    Ok(value) => (true, value),
                    Err(error) => (false, error.into_value(py).into_any()),
                };
                // A closed event loop refuses the result; nobody is waiting for it then.
                if let Err(error) = done.call1(py, (outcome,)) {
                    error.write_unraisable(py, None);
                }
            });
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

fn response_object(py: Python<'_>, response: Response) -> PyResult<Py<PyAny>> {
    Ok(response_to_py(py, &response)?.into_any().unbind())
}

/// Reads the pool settings from keyword arguments.
fn config_from(settings: Option<&Bound<'_, PyDict>>) -> PyResult<Config> {
    let mut config = Config::default();
    let Some(settings) = settings else {
        return Ok(config);
    };
    for (key, value) in settings.iter() {
        let key: String = key.extract()?;
        if value.is_none() {
            continue;
        }
        let float = |value: &Bound<'_, PyAny>| -> PyResult<f64> {
            if value.is_instance_of::<pyo3::types::PyBool>() {
                return Err(PyTypeError::new_err(format!(
                    "{key} takes seconds as a number, not a bool"
                )));
            }
            value.extract::<f64>()
        };
        let pem = |value: &Bound<'_, PyAny>| -> PyResult<Vec<u8>> {
            let bytes = value
                .cast::<PyBytes>()
                .map_err(|_| PyTypeError::new_err(format!("{key} takes PEM bytes")))?;
            Ok(bytes.as_bytes().to_vec())
        };
        match key.as_str() {
            "max_connections_per_target" => config.max_connections_per_target = value.extract()?,
            "min_connections_per_target" => config.min_connections_per_target = value.extract()?,
            "streams_per_connection" => config.streams_per_connection = value.extract()?,
            "connect_timeout" => config.connect_timeout = seconds(&key, float(&value)?)?,
            "keepalive_time" => config.keepalive_time = optional_seconds(&key, float(&value)?)?,
            "keepalive_timeout" => config.keepalive_timeout = seconds(&key, float(&value)?)?,
            "keepalive_while_idle" => config.keepalive_while_idle = value.extract()?,
            "tcp_nodelay" => config.tcp_nodelay = value.extract()?,
            "tcp_keepalive" => config.tcp_keepalive = optional_seconds(&key, float(&value)?)?,
            "idle_timeout" => config.idle_timeout = seconds(&key, float(&value)?)?,
            "max_connection_age" => {
                config.max_connection_age = optional_seconds(&key, float(&value)?)?
            }
            "acquire_timeout" => config.acquire_timeout = seconds(&key, float(&value)?)?,
            "lease_leak_threshold" => config.lease_leak_threshold = seconds(&key, float(&value)?)?,
            "initial_stream_window_size" => config.initial_stream_window_size = value.extract()?,
            "initial_connection_window_size" => {
                config.initial_connection_window_size = value.extract()?
            }
            "max_send_message_size" => config.max_send_message_size = value.extract()?,
            "max_receive_message_size" => config.max_receive_message_size = value.extract()?,
            "dns_refresh_interval" => config.dns_refresh_interval = seconds(&key, float(&value)?)?,
            "worker_threads" => config.worker_threads = value.extract()?,
            "tls_ca_pem" => config.tls.ca_pem = Some(pem(&value)?),
            "tls_client_cert_pem" => config.tls.client_cert_pem = Some(pem(&value)?),
            "tls_client_key_pem" => config.tls.client_key_pem = Some(pem(&value)?),
            "tls_server_name" => config.tls.server_name_override = Some(value.extract()?),
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "unknown pool setting {key:?}"
                )))
            }
        }
    }
    Ok(config)
}

/// A call timeout in seconds, or none.
fn call_options(
    timeout: Option<f64>,
    metadata: Option<&Bound<'_, PyAny>>,
) -> PyResult<CallOptions> {
    let mut options = match timeout {
        Some(timeout) => CallOptions::with_timeout(seconds("timeout", timeout)?),
        None => CallOptions::default(),
    };
    if let Some(metadata) = metadata {
        options = options.metadata(metadata_from(metadata)?);
    }
    Ok(options)
}

/// Request metadata from an iterable of `(key, value)` pairs: str values, or bytes for `-bin` keys.
fn metadata_from(pairs: &Bound<'_, PyAny>) -> PyResult<Metadata> {
    let mut metadata = Metadata::new();
    if pairs.is_instance_of::<PyString>() || pairs.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "metadata must be a sequence of (key, value) pairs",
        ));
    }
    for pair in pairs.try_iter()? {
        let pair = pair?;
        let (key, value): (String, Bound<'_, PyAny>) = pair.extract().map_err(|_| {
            PyTypeError::new_err("metadata must be a sequence of (key, value) pairs")
        })?;
        if let Ok(text) = value.cast::<PyString>() {
            metadata.insert_ascii(key, text.extract::<String>()?);
        } else if let Ok(bytes) = value.cast::<PyBytes>() {
            if key.ends_with("-bin") {
                metadata.insert_binary(key, Bytes::copy_from_slice(bytes.as_bytes()));
            } else {
                // ASCII keys take text; bytes holding printable ASCII are accepted as grpcio does.
                let text = std::str::from_utf8(bytes.as_bytes()).map_err(|_| {
                    PyValueError::new_err(format!(
                        "invalid metadata {key:?}: only keys ending in -bin take arbitrary bytes"
                    ))
                })?;
                metadata.insert_ascii(key, text);
            }
        } else {
            return Err(PyTypeError::new_err(format!(
                "metadata value for {key:?} must be str or bytes"
            )));
        }
    }
    Ok(metadata)
}

/// Metadata as a tuple of `(key, value)` tuples.
fn metadata_to_py<'py>(py: Python<'py>, metadata: &Metadata) -> PyResult<Bound<'py, PyTuple>> {
    let items = PyList::empty(py);
    for (key, value) in metadata.iter() {
        let value: Bound<'py, PyAny> = match value {
            MetadataValue::Ascii(text) => PyString::new(py, text).into_any(),
            MetadataValue::Binary(bytes) => PyBytes::new(py, bytes).into_any(),
        };
        items.append(PyTuple::new(
            py,
            [PyString::new(py, key).into_any(), value],
        )?)?;
    }
    Ok(items.to_tuple())
}

/// A response as `(code, message, details, headers, trailers, body)`.
fn response_to_py<'py>(py: Python<'py>, response: &Response) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            response.code.as_i32().into_pyobject(py)?.into_any(),
            PyString::new(py, &response.message).into_any(),
            PyBytes::new(py, &response.details).into_any(),
            metadata_to_py(py, &response.headers)?.into_any(),
            metadata_to_py(py, &response.trailers)?.into_any(),
            PyBytes::new(py, &response.body).into_any(),
        ],
    )
}

/// Copies a request out of a bytes object (the GIL is released while it is sent).
fn request_bytes(request: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    let bytes = request
        .cast::<PyBytes>()
        .map_err(|_| PyTypeError::new_err("the request must be bytes"))?;
    Ok(Bytes::copy_from_slice(bytes.as_bytes()))
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
    #[pyo3(signature = (target, method, request, timeout=None, metadata=None, wait_for_ready=false))]
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
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.state.check_open()?;
        let request = request_bytes(request)?;
        let options = call_options(timeout, metadata)?.wait_for_ready(wait_for_ready);
        let pool = &self.state.pool;
        let call = pool.prepare(method, request, options).map_err(to_py_err)?;
        let future = pool.unary_prepared(target, call).map_err(to_py_err)?;
        let response = self.state.wait(py, future)?.map_err(to_py_err)?;
        response_to_py(py, &response)
    }

    /// `acquire` for asyncio: `done` gets `(True, NativeLease)` or `(False, exception)`.
    #[pyo3(signature = (done, target, timeout=None, wait_for_ready=false, site=None))]
    fn acquire_start(
        &self,
        done: Py<PyAny>,
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
        self.state.start(future, done, move |py, lease| {
            let lease = NativeLease {
                state,
                lease: Mutex::new(Some(Arc::new(lease))),
                target,
            };
            Ok(Py::new(py, lease)?.into_any())
        })
    }

    /// `unary` for asyncio: `done` gets `(True, response tuple)` or `(False, exception)`.
    #[pyo3(signature = (done, target, method, request, timeout=None, metadata=None, wait_for_ready=false))]
    #[allow(clippy::too_many_arguments)]
    fn unary_start(
        &self,
        done: Py<PyAny>,
        target: &str,
        method: &str,
        request: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        metadata: Option<&Bound<'_, PyAny>>,
        wait_for_ready: bool,
    ) -> PyResult<NativeCall> {
        self.state.check_open()?;
        let request = request_bytes(request)?;
        let options = call_options(timeout, metadata)?.wait_for_ready(wait_for_ready);
        let pool = &self.state.pool;
        let call = pool.prepare(method, request, options).map_err(to_py_err)?;
        let future = pool.unary_prepared(target, call).map_err(to_py_err)?;
        self.state.start(future, done, response_object)
    }

    /// Opens a streaming call on `target` (acquiring a slot for it); returns the stream.
    #[pyo3(signature = (target, method, timeout=None, metadata=None, wait_for_ready=false))]
    fn open_stream(
        &self,
        py: Python<'_>,
        target: &str,
        method: &str,
        timeout: Option<f64>,
        metadata: Option<&Bound<'_, PyAny>>,
        wait_for_ready: bool,
    ) -> PyResult<NativeStream> {
        self.state.check_open()?;
        let options = call_options(timeout, metadata)?.wait_for_ready(wait_for_ready);
        let future = self.state.pool.open_stream(target, method, options);
        let stream = self.state.wait(py, future)?.map_err(to_py_err)?;
        Ok(NativeStream::new(Arc::clone(&self.state), stream))
    }

    /// `open_stream` for asyncio: `done` gets `(True, NativeStream)` or `(False, exception)`.
    #[pyo3(signature = (done, target, method, timeout=None, metadata=None, wait_for_ready=false))]
    #[allow(clippy::too_many_arguments)]
    fn open_stream_start(
        &self,
        done: Py<PyAny>,
        target: &str,
        method: &str,
        timeout: Option<f64>,
        metadata: Option<&Bound<'_, PyAny>>,
        wait_for_ready: bool,
    ) -> PyResult<NativeCall> {
        self.state.check_open()?;
        let options = call_options(timeout, metadata)?.wait_for_ready(wait_for_ready);
        let future = self.state.pool.open_stream(target, method, options);
        let state = Arc::clone(&self.state);
        self.state.start(future, done, move |py, stream| {
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

/// A native lease.
#[pyclass(module = "grpcpool._native", frozen)]
struct NativeLease {
    state: Arc<PoolState>,
    lease: Mutex<Option<Arc<Lease>>>,
    target: String,
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
    #[pyo3(signature = (method, request, timeout=None, metadata=None))]
    fn unary<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        request: &Bound<'py, PyAny>,
        timeout: Option<f64>,
        metadata: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let lease = self.lease()?;
        let request = request_bytes(request)?;
        let options = call_options(timeout, metadata)?;
        let call = self
            .state
            .pool
            .prepare(method, request, options)
            .map_err(to_py_err)?;
        let response = self.state.wait(py, async move { lease.call(call).await })?;
        response_to_py(py, &response)
    }

    /// `unary` for asyncio: `done` gets `(True, response tuple)` or `(False, exception)`.
    #[pyo3(signature = (done, method, request, timeout=None, metadata=None))]
    fn unary_start(
        &self,
        done: Py<PyAny>,
        method: &str,
        request: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<NativeCall> {
        let lease = self.lease()?;
        let request = request_bytes(request)?;
        let options = call_options(timeout, metadata)?;
        let call = self
            .state
            .pool
            .prepare(method, request, options)
            .map_err(to_py_err)?;
        let future = async move { Ok(lease.call(call).await) };
        self.state.start(future, done, response_object)
    }

    /// Opens a streaming call on the lease's connection. The stream takes the lease's slot
    /// over: the lease counts as released, and the slot returns when the stream ends.
    #[pyo3(signature = (method, timeout=None, metadata=None))]
    fn open_stream(
        &self,
        method: &str,
        timeout: Option<f64>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<NativeStream> {
        self.lease()?;
        let options = call_options(timeout, metadata)?;
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
            // Collected without release(): the slot returns, and it counts as a leak.
            match Arc::try_unwrap(lease) {
                Ok(lease) => lease.release_as_leaked(),
                Err(shared) => drop(shared),
            }
        }
    }
}

/// The native module of `grpcpool`.
#[pymodule]
mod _native {
    #[pymodule_export]
    use super::{
        LeaseReleasedError, NativeCall, NativeLease, NativePool, NativeStream, PoolClosedError,
        StatusError,
    };

    #[pymodule_init]
    fn init(_module: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        super::log::install_from_env();
        Ok(())
    }
}
