//! Conversions between Python values and the engine's: settings, durations, metadata,
//! requests and responses.

use std::time::Duration;

use bytes::Bytes;
use grpcpool_core::{CallOptions, Compression, Config, Metadata, MetadataValue, Response};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

/// A duration in seconds from Python.
pub(crate) fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be a finite number of seconds >= 0, not {value}"
        ))
    })
}

/// A duration that may be turned off: 0 or infinity turns it off.
pub(crate) fn optional_seconds(name: &str, value: f64) -> PyResult<Option<Duration>> {
    if value == 0.0 || value == f64::INFINITY {
        return Ok(None);
    }
    seconds(name, value).map(Some)
}

/// A response as a Python object (the tuple of [`response_to_py`]).
pub(crate) fn response_object(py: Python<'_>, response: Response) -> PyResult<Py<PyAny>> {
    Ok(response_to_py(py, &response)?.into_any().unbind())
}

/// Reads the pool settings from keyword arguments.
pub(crate) fn config_from(settings: Option<&Bound<'_, PyDict>>) -> PyResult<Config> {
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

/// Call options: a timeout in seconds, metadata, and a compression by name (`"gzip"`).
pub(crate) fn call_options(
    timeout: Option<f64>,
    metadata: Option<&Bound<'_, PyAny>>,
    compression: Option<&str>,
) -> PyResult<CallOptions> {
    let mut options = match timeout {
        Some(timeout) => CallOptions::with_timeout(seconds("timeout", timeout)?),
        None => CallOptions::default(),
    };
    if let Some(metadata) = metadata {
        options = options.metadata(metadata_from(metadata)?);
    }
    if let Some(name) = compression {
        let compression = Compression::from_name(name)
            .map_err(|error| PyValueError::new_err(error.to_string()))?;
        options = options.compression(compression);
    }
    Ok(options)
}

/// Request metadata from an iterable of `(key, value)` pairs: str values, or bytes for `-bin` keys.
pub(crate) fn metadata_from(pairs: &Bound<'_, PyAny>) -> PyResult<Metadata> {
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
pub(crate) fn metadata_to_py<'py>(
    py: Python<'py>,
    metadata: &Metadata,
) -> PyResult<Bound<'py, PyTuple>> {
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
pub(crate) fn response_to_py<'py>(
    py: Python<'py>,
    response: &Response,
) -> PyResult<Bound<'py, PyTuple>> {
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
pub(crate) fn request_bytes(request: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    let bytes = request
        .cast::<PyBytes>()
        .map_err(|_| PyTypeError::new_err("the request must be bytes"))?;
    Ok(Bytes::copy_from_slice(bytes.as_bytes()))
}
