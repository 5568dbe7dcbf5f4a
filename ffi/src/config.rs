//! `grpcpool_config_t`: every core setting, set from C by its name in core's table
//! (`grpcpool_config_set`), plus the conveniences text cannot carry well: PEM and files for
//! TLS, and backoff's four values at once.

use std::ffi::{c_char, CString};

use grpcpool_core::{Config, SettingValue, SETTINGS};

use crate::args::{self, millis, non_null};
use crate::error::{ffi_boundary, grpcpool_result, FfiError};

/// Pool settings. Made by `grpcpool_config_new` with the documented defaults, changed by the
/// setters, read by `grpcpool_pool_new`, freed by `grpcpool_config_free`. Values are checked
/// when the pool is made. Not for use from two threads at once.
#[allow(non_camel_case_types)]
pub struct grpcpool_config_t {
    pub(crate) config: Config,
}

/// A new config with every default (see the README and the core's `Config` docs).
/// Never NULL; free it with `grpcpool_config_free`.
#[no_mangle]
pub extern "C" fn grpcpool_config_new() -> *mut grpcpool_config_t {
    Box::into_raw(Box::new(grpcpool_config_t {
        config: Config::default(),
    }))
}

/// Frees a config. NULL is ignored.
///
/// # Safety
/// `config` is NULL or came from `grpcpool_config_new` and is not used again.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_config_free(config: *mut grpcpool_config_t) {
    if !config.is_null() {
        // SAFETY: from Box::into_raw in grpcpool_config_new, freed once per the contract.
        drop(unsafe { Box::from_raw(config) });
    }
}

/// Applies `change` to a non-NULL config.
fn with_config(
    config: *mut grpcpool_config_t,
    change: impl FnOnce(&mut Config) -> Result<(), FfiError>,
) -> grpcpool_result {
    ffi_boundary!({
        non_null(config, "config")?;
        // SAFETY: non-NULL, from grpcpool_config_new, not shared across threads per its docs.
        let config = unsafe { &mut *config };
        change(&mut config.config)
    })
}

fn duration_ms(value: u32) -> SettingValue {
    SettingValue::Duration(millis(value))
}

/// Sets any pool setting by its name in the settings table (the README lists them all, and
/// `grpcpool_settings_json` describes them), from text: a whole number, a number, `true` or
/// `false`, a duration with its unit (`250ms`, `20s`, `5m`, `1h`; `0` or `off` turns off a
/// setting that can be turned off), PEM text, or a string. An unknown name or a value of the
/// wrong form is `GRPCPOOL_INVALID_CONFIG`, and the config is unchanged; ranges are checked
/// by `grpcpool_pool_new`.
///
/// # Safety
/// `config` is NULL or a live config; `name` and `value` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_config_set(
    config: *mut grpcpool_config_t,
    name: *const c_char,
    value: *const c_char,
) -> grpcpool_result {
    with_config(config, |config| {
        // SAFETY: per the function's contract.
        let name = unsafe { args::text(name, "name")? };
        // SAFETY: per the function's contract.
        let value = unsafe { args::text(value, "value")? };
        Ok(config.set_text(name, value)?)
    })
}

/// Sets a setting for calls to `target` alone (the exact target string), over the pool's own,
/// from text as `grpcpool_config_set` takes it: one of the settings `grpcpool_settings_json`
/// marks `per_target` (TLS material and server name, `authority`, connection counts, streams
/// per connection, keepalive, `service_config`, ...). A setting that belongs to the pool as a
/// whole, an unknown name or a value of the wrong form is `GRPCPOOL_INVALID_CONFIG`; the
/// target's whole configuration is checked by `grpcpool_pool_new`, which names the target.
///
/// # Safety
/// `config` is NULL or a live config; `target`, `name` and `value` are NULL or NUL-terminated
/// strings.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_config_set_for_target(
    config: *mut grpcpool_config_t,
    target: *const c_char,
    name: *const c_char,
    value: *const c_char,
) -> grpcpool_result {
    with_config(config, |config| {
        // SAFETY: per the function's contract.
        let target = unsafe { args::text(target, "target")? };
        // SAFETY: per the function's contract.
        let name = unsafe { args::text(name, "name")? };
        // SAFETY: per the function's contract.
        let value = unsafe { args::text(value, "value")? };
        Ok(config.set_text_for_target(target, name, value)?)
    })
}

/// Sets gRPC's service config (JSON, as grpc-go reads it: `methodConfig` with `timeout`,
/// `waitForReady`, `maxRequestMessageBytes`, `maxResponseMessageBytes`, `retryPolicy`, and
/// `retryThrottling`). The same as `grpcpool_config_set(config, "service_config", json)`, but
/// checked now: a config that does not parse or has a bad field is `GRPCPOOL_INVALID_CONFIG`,
/// with the field named in `grpcpool_last_error()`, and the config is unchanged.
///
/// # Safety
/// `config` is NULL or a live config; `json` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_config_set_service_config(
    config: *mut grpcpool_config_t,
    json: *const c_char,
) -> grpcpool_result {
    with_config(config, |config| {
        // SAFETY: per the function's contract.
        let json = unsafe { args::text(json, "json")? };
        grpcpool_core::ServiceConfig::parse(json)?;
        Ok(config.set_text("service_config", json)?)
    })
}

/// Describes every pool setting as JSON: an array of objects with `name`, `type`
/// (`integer`, `number`, `duration`, `bool`, `pem`, `text`, `json`), `max` (integers), `unit`,
/// `summary`, `why`, `off` (what 0 turns off, or null), `per_target`, and `default` (as text
/// `grpcpool_config_set` takes, or null when unset). On `GRPCPOOL_OK`, `*out_json` holds it;
/// free it with `grpcpool_string_free`.
///
/// # Safety
/// `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_settings_json(out_json: *mut *mut c_char) -> grpcpool_result {
    ffi_boundary!({
        non_null(out_json, "out_json")?;
        let described: Vec<serde_json::Value> = SETTINGS
            .iter()
            .map(|setting| {
                let mut entry = serde_json::to_value(setting).unwrap_or_default();
                let default = setting.default_value().map(|value| setting.format(&value));
                if let Some(fields) = entry.as_object_mut() {
                    fields.insert("default".to_owned(), default.into());
                }
                entry
            })
            .collect();
        let json = serde_json::Value::Array(described).to_string();
        let json = CString::new(json).map_err(|_| {
            FfiError::new(grpcpool_result::GRPCPOOL_INTERNAL, "a setting holds a NUL")
        })?;
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out_json, json.into_raw()) };
        Ok(())
    })
}

/// Reconnect backoff: first delay, growth factor, jitter fraction and cap (defaults 1000 ms,
/// 1.6, 0.2, 120000 ms, gRPC's connection-backoff spec).
///
/// # Safety
/// `config` is NULL or a live config from `grpcpool_config_new`.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_config_set_backoff(
    config: *mut grpcpool_config_t,
    initial_ms: u32,
    multiplier: f64,
    jitter: f64,
    max_ms: u32,
) -> grpcpool_result {
    with_config(config, |config| {
        // All four or none: a bad one leaves the config unchanged.
        let mut changed = config.clone();
        changed.set("backoff_initial", duration_ms(initial_ms))?;
        changed.set("backoff_multiplier", SettingValue::Number(multiplier))?;
        changed.set("backoff_jitter", SettingValue::Number(jitter))?;
        changed.set("backoff_max", duration_ms(max_ms))?;
        *config = changed;
        Ok(())
    })
}

/// Trusts these PEM certificates for `https://` targets instead of the system roots.
///
/// # Safety
/// `config` is NULL or a live config; `pem` points to `pem_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_config_set_tls_ca_pem(
    config: *mut grpcpool_config_t,
    pem: *const u8,
    pem_len: usize,
) -> grpcpool_result {
    with_config(config, |config| {
        // SAFETY: per the function's contract.
        let pem = unsafe { args::bytes(pem, pem_len, "pem")? };
        config.tls.ca_pem = Some(pem.to_vec());
        Ok(())
    })
}

/// Trusts the PEM certificates in the file at `path` instead of the system roots.
///
/// # Safety
/// `config` is NULL or a live config; `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_config_set_tls_ca_file(
    config: *mut grpcpool_config_t,
    path: *const c_char,
) -> grpcpool_result {
    with_config(config, |config| {
        // SAFETY: per the function's contract.
        let path = unsafe { args::text(path, "path")? };
        config.tls.ca_pem = Some(read_file(path)?);
        Ok(())
    })
}

/// Presents this PEM certificate chain and private key to servers that ask (mTLS).
///
/// # Safety
/// `config` is NULL or a live config; each pointer covers its length in readable bytes.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_config_set_tls_client_cert_pem(
    config: *mut grpcpool_config_t,
    cert_pem: *const u8,
    cert_len: usize,
    key_pem: *const u8,
    key_len: usize,
) -> grpcpool_result {
    with_config(config, |config| {
        // SAFETY: per the function's contract.
        let cert = unsafe { args::bytes(cert_pem, cert_len, "cert_pem")? };
        // SAFETY: per the function's contract.
        let key = unsafe { args::bytes(key_pem, key_len, "key_pem")? };
        config.tls.client_cert_pem = Some(cert.to_vec());
        config.tls.client_key_pem = Some(key.to_vec());
        Ok(())
    })
}

/// Presents the PEM certificate chain and key in these files to servers that ask (mTLS).
///
/// # Safety
/// `config` is NULL or a live config; both paths are NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_config_set_tls_client_cert_files(
    config: *mut grpcpool_config_t,
    cert_path: *const c_char,
    key_path: *const c_char,
) -> grpcpool_result {
    with_config(config, |config| {
        // SAFETY: per the function's contract.
        let cert_path = unsafe { args::text(cert_path, "cert_path")? };
        // SAFETY: per the function's contract.
        let key_path = unsafe { args::text(key_path, "key_path")? };
        let cert = read_file(cert_path)?;
        let key = read_file(key_path)?;
        config.tls.client_cert_pem = Some(cert);
        config.tls.client_key_pem = Some(key);
        Ok(())
    })
}

/// Checks server certificates against `name` (and sends it as SNI) instead of the target's host.
///
/// # Safety
/// `config` is NULL or a live config; `name` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_config_set_tls_server_name(
    config: *mut grpcpool_config_t,
    name: *const c_char,
) -> grpcpool_result {
    with_config(config, |config| {
        // SAFETY: per the function's contract.
        let name = unsafe { args::text(name, "name")? };
        config.tls.server_name_override = Some(name.to_owned());
        Ok(())
    })
}

fn read_file(path: &str) -> Result<Vec<u8>, FfiError> {
    std::fs::read(path).map_err(|error| {
        FfiError::new(
            grpcpool_result::GRPCPOOL_IO_ERROR,
            format!("reading {path}: {error}"),
        )
    })
}
