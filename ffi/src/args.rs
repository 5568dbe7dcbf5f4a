//! Checked reading of C arguments: NULL, UTF-8 and length are validated before use.

use std::ffi::{c_char, CStr};
use std::time::Duration;

use bytes::Bytes;
use grpcpool_core::Metadata;

use crate::error::{grpcpool_result, FfiError};

/// One metadata entry, in or out. Keys ending in `-bin` carry binary values.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct grpcpool_metadata_entry_t {
    /// NUL-terminated lower-case key.
    pub key: *const c_char,
    /// The value's bytes (not NUL-terminated).
    pub value: *const u8,
    /// The value's length in bytes.
    pub value_len: usize,
}

/// A borrowed run of bytes owned by the library object it came from.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct grpcpool_bytes_t {
    /// The first byte; not NUL-terminated. Non-NULL even when `len` is 0.
    pub data: *const u8,
    /// The number of bytes.
    pub len: usize,
}

impl grpcpool_bytes_t {
    pub(crate) fn of(bytes: &[u8]) -> grpcpool_bytes_t {
        grpcpool_bytes_t {
            data: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    pub(crate) fn empty() -> grpcpool_bytes_t {
        grpcpool_bytes_t::of(&[])
    }
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `text` is NULL or points to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn text<'a>(text: *const c_char, what: &str) -> Result<&'a str, FfiError> {
    if text.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let text = unsafe { CStr::from_ptr(text) };
    text.to_str().map_err(|_| {
        FfiError::new(
            grpcpool_result::GRPCPOOL_INVALID_ARGUMENT,
            format!("{what} is not UTF-8"),
        )
    })
}

/// A byte-run argument; NULL is allowed when `len` is 0.
///
/// # Safety
/// `data` is NULL with `len` 0, or points to `len` readable bytes that outlive the call.
pub(crate) unsafe fn bytes<'a>(
    data: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(FfiError::null(what));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::new(
            grpcpool_result::GRPCPOOL_INVALID_ARGUMENT,
            format!("{what} length is too large"),
        ));
    }
    // SAFETY: non-NULL, `len` readable bytes per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// A list of `count` NUL-terminated UTF-8 strings; NULL is allowed when `count` is 0.
///
/// # Safety
/// `items` is NULL with `count` 0, or points to `count` pointers that each follow the rules of
/// [`text`].
pub(crate) unsafe fn texts<'a>(
    items: *const *const c_char,
    count: usize,
    what: &str,
) -> Result<Vec<&'a str>, FfiError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if items.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: `count` pointers per the caller's contract.
    let items = unsafe { std::slice::from_raw_parts(items, count) };
    items
        .iter()
        // SAFETY: each pointer follows the rules of `text`.
        .map(|item| unsafe { text(*item, what) })
        .collect()
}

/// Reads a metadata list into the core's form (validated later, by the call).
///
/// # Safety
/// `entries` is NULL with `count` 0, or points to `count` entries whose pointers follow the
/// rules of [`text`] and [`bytes`].
pub(crate) unsafe fn metadata(
    entries: *const grpcpool_metadata_entry_t,
    count: usize,
) -> Result<Metadata, FfiError> {
    let mut metadata = Metadata::new();
    if count == 0 {
        return Ok(metadata);
    }
    if entries.is_null() {
        return Err(FfiError::null("metadata"));
    }
    // SAFETY: `count` entries per the caller's contract.
    let entries = unsafe { std::slice::from_raw_parts(entries, count) };
    for entry in entries {
        // SAFETY: each entry's pointers follow the same contract.
        let key = unsafe { text(entry.key, "metadata key")? };
        // SAFETY: as above.
        let value = unsafe { bytes(entry.value, entry.value_len, "metadata value")? };
        if key.ends_with("-bin") {
            metadata.insert_binary(key, Bytes::copy_from_slice(value));
        } else {
            let value = std::str::from_utf8(value).map_err(|_| {
                FfiError::new(
                    grpcpool_result::GRPCPOOL_INVALID_METADATA,
                    format!("metadata {key:?}: an ASCII value must be printable ASCII"),
                )
            })?;
            metadata.insert_ascii(key, value);
        }
    }
    Ok(metadata)
}

/// Milliseconds from C as a duration.
pub(crate) fn millis(value: u32) -> Duration {
    Duration::from_millis(u64::from(value))
}

/// Writes an out-parameter, which the caller has checked for NULL.
///
/// # Safety
/// `out` is non-NULL and points to writable memory for a `T`.
pub(crate) unsafe fn write<T>(out: *mut T, value: T) {
    // SAFETY: per the caller's contract.
    unsafe { out.write(value) }
}

/// Fails with `GRPCPOOL_NULL_ARGUMENT` when `pointer` is NULL.
pub(crate) fn non_null<T>(pointer: *const T, what: &str) -> Result<(), FfiError> {
    if pointer.is_null() {
        Err(FfiError::null(what))
    } else {
        Ok(())
    }
}
