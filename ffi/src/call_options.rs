//! `grpcpool_call_options_t`: every per-call option of core's table from C (timeout,
//! metadata, wait-for-ready, compression), for the `_with` call functions; and the options of
//! the shorter call functions, which take only metadata and a timeout.

use std::ffi::c_char;
use std::time::Duration;

use grpcpool_core::{
    parse_call_option, CallOptionValue, CallOptions, Compression, Metadata, MetadataHook,
    MetadataValue,
};

use crate::args::{self, grpcpool_metadata_entry_t, millis, non_null};
use crate::error::{ffi_boundary, grpcpool_result, FfiError};

/// A `timeout_ms` meaning "no deadline". Every other value is a deadline that many ms after
/// the call starts; 0 means the deadline is now (the call ends with DEADLINE_EXCEEDED without
/// being sent), as grpc-go does with a context already done.
pub const GRPCPOOL_NO_TIMEOUT: u32 = u32::MAX;

/// Per-call options for the `_with` call functions: made by `grpcpool_call_options_new` with
/// no deadline, no metadata, fail-fast and no compression; changed by the setters; read (and
/// copied) by each call, so one options object may serve many calls, and may be freed after
/// the call has started. Not for use from two threads at once while it is being changed.
#[allow(non_camel_case_types)]
pub struct grpcpool_call_options_t {
    timeout: Option<Duration>,
    metadata: Metadata,
    wait_for_ready: bool,
    compression: Option<Compression>,
    metadata_hook: Option<MetadataHook>,
}

impl grpcpool_call_options_t {
    /// Sets (or, with `None`, removes) the call's metadata hook.
    pub(crate) fn set_metadata_hook(&mut self, hook: Option<MetadataHook>) {
        self.metadata_hook = hook;
    }

    /// The core's options, with the deadline counted from now.
    pub(crate) fn to_core(&self) -> CallOptions {
        let mut options = match self.timeout {
            Some(timeout) => CallOptions::with_timeout(timeout),
            None => CallOptions::default(),
        };
        options.metadata = self.metadata.clone();
        options.wait_for_ready = self.wait_for_ready;
        options.compression = self.compression;
        options.metadata_hook = self.metadata_hook.clone();
        options
    }
}

/// The options behind a pointer: NULL means every default.
///
/// # Safety
/// `options` is NULL or a live options object.
pub(crate) unsafe fn read(options: *const grpcpool_call_options_t) -> CallOptions {
    if options.is_null() {
        return CallOptions::default();
    }
    // SAFETY: non-NULL and live per the contract.
    unsafe { &*options }.to_core()
}

/// The options of the shorter call functions: `metadata` and a `timeout_ms`
/// (`GRPCPOOL_NO_TIMEOUT` for none).
///
/// # Safety
/// `metadata` holds `metadata_len` entries (NULL if 0).
pub(crate) unsafe fn from_parts(
    metadata: *const grpcpool_metadata_entry_t,
    metadata_len: usize,
    timeout_ms: u32,
) -> Result<CallOptions, FfiError> {
    // SAFETY: per the contract.
    let metadata = unsafe { args::metadata(metadata, metadata_len)? };
    let mut options = match timeout(timeout_ms) {
        Some(timeout) => CallOptions::with_timeout(timeout),
        None => CallOptions::default(),
    };
    options.metadata = metadata;
    Ok(options)
}

fn timeout(timeout_ms: u32) -> Option<Duration> {
    (timeout_ms != GRPCPOOL_NO_TIMEOUT).then(|| millis(timeout_ms))
}

/// A new options object with every default. Never NULL; free it with
/// `grpcpool_call_options_free`.
#[no_mangle]
pub extern "C" fn grpcpool_call_options_new() -> *mut grpcpool_call_options_t {
    Box::into_raw(Box::new(grpcpool_call_options_t {
        timeout: None,
        metadata: Metadata::new(),
        wait_for_ready: false,
        compression: None,
        metadata_hook: None,
    }))
}

/// Frees an options object. NULL is ignored.
///
/// # Safety
/// `options` is NULL or came from `grpcpool_call_options_new` and is not used again.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_call_options_free(options: *mut grpcpool_call_options_t) {
    if !options.is_null() {
        // SAFETY: from Box::into_raw in grpcpool_call_options_new, freed once per the contract.
        drop(unsafe { Box::from_raw(options) });
    }
}

/// Applies `change` to non-NULL options.
fn with_options(
    options: *mut grpcpool_call_options_t,
    change: impl FnOnce(&mut grpcpool_call_options_t) -> Result<(), FfiError>,
) -> grpcpool_result {
    ffi_boundary!({
        non_null(options, "options")?;
        // SAFETY: non-NULL, from grpcpool_call_options_new, not shared across threads.
        change(unsafe { &mut *options })
    })
}

/// The call's deadline, `timeout_ms` after it starts; 0 means now (DEADLINE_EXCEEDED without
/// sending), `GRPCPOOL_NO_TIMEOUT` none (the default).
///
/// # Safety
/// `options` is NULL or a live options object.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_call_options_set_timeout_ms(
    options: *mut grpcpool_call_options_t,
    timeout_ms: u32,
) -> grpcpool_result {
    with_options(options, |options| {
        options.timeout = timeout(timeout_ms);
        Ok(())
    })
}

/// Whether the call waits for a connection while the target cannot be reached (until its
/// deadline) instead of failing fast with UNAVAILABLE (default false).
///
/// # Safety
/// `options` is NULL or a live options object.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_call_options_set_wait_for_ready(
    options: *mut grpcpool_call_options_t,
    wait: bool,
) -> grpcpool_result {
    with_options(options, |options| {
        options.wait_for_ready = wait;
        Ok(())
    })
}

/// Compresses request messages: `"gzip"`, or `"identity"` (the default) for none. Another
/// name is `GRPCPOOL_INVALID_ARGUMENT`. gzip responses are always accepted.
///
/// # Safety
/// `options` is NULL or a live options object; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_call_options_set_compression(
    options: *mut grpcpool_call_options_t,
    name: *const c_char,
) -> grpcpool_result {
    with_options(options, |options| {
        // SAFETY: per the function's contract.
        let name = unsafe { args::text(name, "name")? };
        options.compression = Compression::from_name(name)?;
        Ok(())
    })
}

/// Adds one request metadata entry (`value_len` bytes, copied; NULL allowed when 0). Keys
/// ending in `-bin` take any bytes, others printable ASCII; keys and values are checked by
/// the call (`GRPCPOOL_INVALID_METADATA`).
///
/// # Safety
/// `options` is NULL or a live options object; `key` is NULL or NUL-terminated; `value`
/// covers `value_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_call_options_add_metadata(
    options: *mut grpcpool_call_options_t,
    key: *const c_char,
    value: *const u8,
    value_len: usize,
) -> grpcpool_result {
    with_options(options, |options| {
        let entry = grpcpool_metadata_entry_t {
            key,
            value,
            value_len,
        };
        // SAFETY: one entry whose pointers follow this function's contract.
        let added = unsafe { args::metadata(&entry, 1)? };
        for (key, value) in added.iter() {
            match value {
                MetadataValue::Ascii(text) => options.metadata.insert_ascii(key, text.clone()),
                MetadataValue::Binary(bytes) => options.metadata.insert_binary(key, bytes.clone()),
            };
        }
        Ok(())
    })
}

/// Sets a per-call option by its name in core's table, from text: `timeout` (`250ms`, `2s`;
/// `0` is now), `wait_for_ready` (`true`/`false`) or `compression` (`gzip`, `identity`).
/// An unknown name or a bad value is `GRPCPOOL_INVALID_CONFIG`; metadata is added with
/// `grpcpool_call_options_add_metadata`.
///
/// # Safety
/// `options` is NULL or a live options object; `name` and `value` are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_call_options_set(
    options: *mut grpcpool_call_options_t,
    name: *const c_char,
    value: *const c_char,
) -> grpcpool_result {
    with_options(options, |options| {
        // SAFETY: per the function's contract.
        let name = unsafe { args::text(name, "name")? };
        // SAFETY: per the function's contract.
        let value = unsafe { args::text(value, "value")? };
        match parse_call_option(name, value)? {
            CallOptionValue::Timeout(timeout) => options.timeout = Some(timeout),
            CallOptionValue::WaitForReady(wait) => options.wait_for_ready = wait,
            CallOptionValue::Compression(compression) => options.compression = compression,
        }
        Ok(())
    })
}
