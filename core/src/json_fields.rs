//! Reading the fields of a service config's JSON: each reader names the field at fault in its
//! error, as `service_config: <field>: <reason>`.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::Error;

/// A service config error naming `field` (empty: the whole config).
pub(crate) fn invalid(field: &str, reason: &str) -> Error {
    if field.is_empty() {
        Error::InvalidConfig(format!("service_config: {reason}"))
    } else {
        Error::InvalidConfig(format!("service_config: {field}: {reason}"))
    }
}

/// `value` as a JSON object, or an error naming `at`.
pub(crate) fn as_object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, Error> {
    value
        .as_object()
        .ok_or_else(|| invalid(at, "must be a JSON object"))
}

/// `value` as a JSON array, or an error naming `at`.
pub(crate) fn as_array<'a>(value: &'a Value, at: &str) -> Result<&'a Vec<Value>, Error> {
    value
        .as_array()
        .ok_or_else(|| invalid(at, "must be a JSON array"))
}

/// A proto3 JSON duration: decimal seconds with an `s` suffix (`"1.5s"`, `"0.010s"`).
pub(crate) fn duration(value: &Value, at: &str) -> Result<Duration, Error> {
    let bad = || invalid(at, "must be a duration in seconds such as \"1.5s\"");
    let text = value.as_str().ok_or_else(bad)?;
    let number = text.strip_suffix('s').ok_or_else(bad)?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|byte| byte.is_ascii_digit())
        || !fraction.bytes().all(|byte| byte.is_ascii_digit())
        || fraction.len() > 9
    {
        return Err(bad());
    }
    let seconds: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    // proto3's Duration holds at most 315,576,000,000 seconds.
    if seconds > 315_576_000_000 {
        return Err(bad());
    }
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().map_err(|_| bad())?
    };
    Ok(Duration::new(seconds, nanos))
}

/// An optional integer field in `0..=max`, or `default` when absent.
pub(crate) fn bounded_u32(
    object: &Map<String, Value>,
    key: &str,
    at: &str,
    max: u32,
    default: u32,
) -> Result<u32, Error> {
    match object.get(key) {
        None => Ok(default),
        Some(value) => value
            .as_u64()
            .filter(|number| *number <= u64::from(max))
            .and_then(|number| u32::try_from(number).ok())
            .ok_or_else(|| {
                invalid(
                    &format!("{at}.{key}"),
                    &format!("must be an integer from 0 to {max}"),
                )
            }),
    }
}
