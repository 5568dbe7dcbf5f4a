//! Conversions between Python values and the engine's: settings, durations, metadata,
//! requests and responses.

use std::time::Duration;

use bytes::Bytes;
use grpcpool_core::{
    CallOptions, Compression, Config, Metadata, MetadataValue, Response, Setting, SettingType,
    SettingValue, SETTINGS,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::to_py_err;

/// A real number from Python: an int or a float (or anything with `__float__`), never a bool.
/// Python's bool is an int, so `timeout=True` would otherwise mean one second. `None` for
/// anything else; the caller names what it expected.
fn real(value: &Bound<'_, PyAny>) -> Option<f64> {
    if value.is_instance_of::<PyBool>() {
        return None;
    }
    value.extract::<f64>().ok()
}

/// Seconds as a call or method argument takes them: [`real`], so bools are refused (pyo3
/// names the argument in a note on the TypeError). The range is checked by [`seconds`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seconds(f64);

impl From<f64> for Seconds {
    fn from(seconds: f64) -> Seconds {
        Seconds(seconds)
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Seconds {
    type Error = PyErr;

    fn extract(value: Borrowed<'a, 'py, PyAny>) -> PyResult<Seconds> {
        real(&value).map(Seconds).ok_or_else(|| {
            PyTypeError::new_err(format!(
                "seconds must be an int or a float, not {}",
                type_name(&value)
            ))
        })
    }
}

/// A duration in seconds from Python: finite and not negative.
pub(crate) fn seconds(name: &str, value: Seconds) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value.0).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be a finite number of seconds >= 0, not {}",
            value.0
        ))
    })
}

/// The name of a value's type, for error messages.
fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "this type".to_owned())
}

/// A response as a Python object (the tuple of [`response_to_py`]).
pub(crate) fn response_object(py: Python<'_>, response: Response) -> PyResult<Py<PyAny>> {
    Ok(response_to_py(py, &response)?.into_any().unbind())
}

/// Reads the pool settings from keyword arguments, each by its name in core's settings table
/// (the face keeps no list of its own); `None` keeps the default.
pub(crate) fn config_from(settings: Option<&Bound<'_, PyDict>>) -> PyResult<Config> {
    let mut config = Config::default();
    let Some(settings) = settings else {
        return Ok(config);
    };
    for (key, value) in settings.iter() {
        let name: String = key.extract()?;
        if value.is_none() {
            continue;
        }
        if name == "targets" {
            target_settings_from(&mut config, &value)?;
            continue;
        }
        // An unknown keyword is a TypeError, as Python reports one for any function.
        let setting = grpcpool_core::setting(&name)
            .map_err(|_| PyTypeError::new_err(format!("unknown pool setting '{name}'")))?;
        let value = setting_value(setting, &value)?;
        config.set(setting.name, value).map_err(to_py_err)?;
    }
    Ok(config)
}

/// `targets={target: {setting: value}}`: settings of single targets over the pool's, each by
/// its name in core's settings table, converted as the pool's keyword arguments are.
fn target_settings_from(config: &mut Config, targets: &Bound<'_, PyAny>) -> PyResult<()> {
    let targets = targets.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err("targets takes a dict of target to a dict of settings")
    })?;
    for (target, settings) in targets.iter() {
        let target: String = target
            .extract()
            .map_err(|_| PyTypeError::new_err("targets takes target strings as keys"))?;
        let settings = settings.cast::<PyDict>().map_err(|_| {
            PyTypeError::new_err(format!("targets[{target:?}] takes a dict of settings"))
        })?;
        for (key, value) in settings.iter() {
            let name: String = key.extract()?;
            if value.is_none() {
                continue;
            }
            let setting = grpcpool_core::setting(&name).map_err(|_| {
                PyTypeError::new_err(format!("unknown setting '{name}' for target {target:?}"))
            })?;
            let value = setting_value(setting, &value)?;
            config
                .set_for_target(&target, setting.name, value)
                .map_err(to_py_err)?;
        }
    }
    Ok(())
}

/// A Python value as the setting's type takes it. A value of the wrong Python type is a
/// TypeError; a value of the right type out of range is a ValueError (from here, or from
/// core's checks when the pool is made).
fn setting_value(setting: &Setting, value: &Bound<'_, PyAny>) -> PyResult<SettingValue> {
    let name = setting.name;
    let wrong_type = |expected: &str| {
        PyTypeError::new_err(format!("{name} takes {expected}, not {}", type_name(value)))
    };
    match setting.kind {
        SettingType::Integer { .. } => {
            // bool is an int in Python, but True connections means nothing.
            if value.is_instance_of::<PyBool>() || !value.hasattr("__index__")? {
                return Err(wrong_type("a whole number (int)"));
            }
            let number = value.call_method0("__index__")?;
            match number.extract::<u64>() {
                Ok(number) => Ok(SettingValue::Integer(number)),
                Err(_) if number.lt(0)? => Err(PyValueError::new_err(format!(
                    "{name} must be >= 0, not {number}"
                ))),
                Err(_) => Err(PyValueError::new_err(format!(
                    "{name} is too large: {number}"
                ))),
            }
        }
        SettingType::Number => {
            let number = real(value).ok_or_else(|| wrong_type("a number (int or float)"))?;
            if !number.is_finite() {
                return Err(PyValueError::new_err(format!(
                    "{name} must be a finite number, not {number}"
                )));
            }
            Ok(SettingValue::Number(number))
        }
        SettingType::Duration => {
            let seconds_given =
                Seconds(real(value).ok_or_else(|| wrong_type("seconds as an int or a float"))?);
            // Infinity turns off what can be turned off (never is the same as no limit); zero
            // goes to core as zero, which turns it off or is refused by core's checks.
            if seconds_given.0 == f64::INFINITY {
                return match setting.off {
                    Some(_) => Ok(SettingValue::Duration(Duration::ZERO)),
                    None => Err(PyValueError::new_err(format!(
                        "{name} cannot be turned off: give a finite number of seconds"
                    ))),
                };
            }
            seconds(name, seconds_given).map(SettingValue::Duration)
        }
        SettingType::Bool => {
            if !value.is_instance_of::<PyBool>() {
                return Err(wrong_type("True or False"));
            }
            Ok(SettingValue::Bool(value.extract()?))
        }
        SettingType::Pem => {
            if let Ok(bytes) = value.cast::<PyBytes>() {
                Ok(SettingValue::Pem(bytes.as_bytes().to_vec()))
            } else if let Ok(bytes) = value.cast::<PyByteArray>() {
                Ok(SettingValue::Pem(bytes.to_vec()))
            } else if let Ok(text) = value.cast::<PyString>() {
                // A str is the PEM text itself; files are read by the package's *_file and
                // path options, never guessed from a str.
                let text = text.to_cow()?;
                if !text.contains("-----BEGIN") {
                    return Err(PyValueError::new_err(format!(
                        "{name} takes PEM text (\"-----BEGIN ...\"), and this str holds none; \
                         to read a file, pass its contents or use the package's file options"
                    )));
                }
                Ok(SettingValue::Pem(text.as_bytes().to_vec()))
            } else {
                Err(wrong_type("PEM as bytes or str"))
            }
        }
        SettingType::Text => {
            let text = value.cast::<PyString>().map_err(|_| wrong_type("a str"))?;
            Ok(SettingValue::Text(text.to_cow()?.into_owned()))
        }
        // JSON text as it is, or a dict (or list) the core reads as JSON.
        SettingType::Json => {
            if let Ok(text) = value.cast::<PyString>() {
                return Ok(SettingValue::Text(text.to_cow()?.into_owned()));
            }
            if !value.is_instance_of::<PyDict>() {
                return Err(wrong_type("JSON as a str or a dict"));
            }
            let json = value
                .py()
                .import("json")?
                .call_method1("dumps", (value,))
                .map_err(|error| {
                    PyValueError::new_err(format!("{name} is not JSON-serialisable: {error}"))
                })?;
            Ok(SettingValue::Text(
                json.cast::<PyString>()?.to_cow()?.into_owned(),
            ))
        }
    }
}

/// A setting's value in Python's terms: an int, a float (seconds, for durations), a bool,
/// bytes (PEM) or a str.
fn setting_value_to_py<'py>(py: Python<'py>, value: &SettingValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        SettingValue::Integer(number) => number.into_pyobject(py)?.into_any(),
        SettingValue::Number(number) => number.into_pyobject(py)?.into_any(),
        SettingValue::Duration(duration) => duration.as_secs_f64().into_pyobject(py)?.into_any(),
        SettingValue::Bool(flag) => flag.into_pyobject(py)?.to_owned().into_any(),
        SettingValue::Pem(bytes) => PyBytes::new(py, bytes).into_any(),
        SettingValue::Text(text) => PyString::new(py, text).into_any(),
    })
}

/// The name Python uses for a setting's type.
fn type_label(kind: SettingType) -> &'static str {
    match kind {
        SettingType::Integer { .. } => "integer",
        SettingType::Number => "number",
        SettingType::Duration => "duration",
        SettingType::Bool => "bool",
        SettingType::Pem => "pem",
        SettingType::Text => "text",
        SettingType::Json => "json",
    }
}

/// Core's settings table as a tuple of `(name, type, off, per_target, default)` tuples:
/// `type` is one of integer, number, duration, bool, pem and text; `off` says what zero turns
/// off (`None` if zero turns nothing off); `default` is in Python's terms, `None` when unset.
pub(crate) fn settings_to_py(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let rows = SETTINGS
        .iter()
        .map(|setting| {
            let default = match setting.default_value() {
                Some(value) => setting_value_to_py(py, &value)?,
                None => py.None().into_bound(py),
            };
            PyTuple::new(
                py,
                [
                    PyString::new(py, setting.name).into_any(),
                    PyString::new(py, type_label(setting.kind)).into_any(),
                    setting.off.into_pyobject(py)?.into_any(),
                    setting.per_target.into_pyobject(py)?.to_owned().into_any(),
                    default,
                ],
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, rows)
}

/// Call options: a timeout in seconds, metadata, wait-for-ready and a compression by name
/// (`"gzip"`).
pub(crate) fn call_options(
    timeout: Option<Seconds>,
    metadata: Option<&Bound<'_, PyAny>>,
    wait_for_ready: bool,
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
        options = options.compression(Compression::from_name(name).map_err(to_py_err)?);
    }
    Ok(options.wait_for_ready(wait_for_ready))
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
