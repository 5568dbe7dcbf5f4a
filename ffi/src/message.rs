//! `grpcpool_message_t` (one message read from a stream) and `grpcpool_metadata_t` (a stream's
//! response headers): small library-owned objects with accessors and one `_free` each.

use std::ffi::CString;

use bytes::Bytes;
use grpcpool_core::Metadata;

use crate::args::{self, grpcpool_bytes_t, grpcpool_metadata_entry_t, non_null};
use crate::error::{ffi_boundary, ffi_boundary_or, grpcpool_result, FfiError};
use crate::response::entries;

/// One message received on a stream. Read it with `grpcpool_message_bytes`; free it with
/// `grpcpool_message_free`. Safe to read from several threads at once.
#[allow(non_camel_case_types)]
pub struct grpcpool_message_t {
    bytes: Bytes,
}

impl grpcpool_message_t {
    pub(crate) fn boxed(bytes: Bytes) -> *mut grpcpool_message_t {
        Box::into_raw(Box::new(grpcpool_message_t { bytes }))
    }
}

/// The message's bytes (the encoded message, without gRPC framing); empty for NULL. They stay
/// valid until the message is freed.
///
/// # Safety
/// `message` is NULL or a live message.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_message_bytes(
    message: *const grpcpool_message_t,
) -> grpcpool_bytes_t {
    ffi_boundary_or!(grpcpool_bytes_t::empty(), {
        if message.is_null() {
            return grpcpool_bytes_t::empty();
        }
        // SAFETY: non-NULL, a live message per the contract.
        grpcpool_bytes_t::of(&unsafe { &*message }.bytes)
    })
}

/// Frees a message. NULL is ignored.
///
/// # Safety
/// `message` is NULL or a message from this library, not used again.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_message_free(message: *mut grpcpool_message_t) {
    if !message.is_null() {
        // SAFETY: from Box::into_raw in `boxed`, freed once per the contract.
        drop(unsafe { Box::from_raw(message) });
    }
}

/// A list of metadata entries (a stream's response headers). Read it with
/// `grpcpool_metadata_count` and `grpcpool_metadata_get`; free it with `grpcpool_metadata_free`.
/// Safe to read from several threads at once.
#[allow(non_camel_case_types)]
pub struct grpcpool_metadata_t {
    entries: Vec<(CString, Bytes)>,
}

impl grpcpool_metadata_t {
    pub(crate) fn boxed(metadata: &Metadata) -> *mut grpcpool_metadata_t {
        Box::into_raw(Box::new(grpcpool_metadata_t {
            entries: entries(metadata),
        }))
    }
}

/// The number of entries; 0 for NULL.
///
/// # Safety
/// `metadata` is NULL or a live metadata list.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_metadata_count(metadata: *const grpcpool_metadata_t) -> usize {
    ffi_boundary_or!(0, {
        if metadata.is_null() {
            return 0;
        }
        // SAFETY: non-NULL, a live list per the contract.
        unsafe { &*metadata }.entries.len()
    })
}

/// The entry at `index` (0-based, in arrival order). Binary (`-bin`) values are decoded. The
/// pointers written to `*out` stay valid until the list is freed.
///
/// # Safety
/// `metadata` is NULL or a live metadata list; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_metadata_get(
    metadata: *const grpcpool_metadata_t,
    index: usize,
    out: *mut grpcpool_metadata_entry_t,
) -> grpcpool_result {
    ffi_boundary!({
        non_null(metadata, "metadata")?;
        non_null(out, "out")?;
        // SAFETY: non-NULL, a live list per the contract.
        let metadata = unsafe { &*metadata };
        let (key, value) = metadata.entries.get(index).ok_or_else(|| {
            FfiError::new(
                grpcpool_result::GRPCPOOL_INVALID_ARGUMENT,
                format!("index {index} is past the last entry"),
            )
        })?;
        let entry = grpcpool_metadata_entry_t {
            key: key.as_ptr(),
            value: value.as_ptr(),
            value_len: value.len(),
        };
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out, entry) };
        Ok(())
    })
}

/// Frees a metadata list. NULL is ignored.
///
/// # Safety
/// `metadata` is NULL or a list from this library, not used again.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_metadata_free(metadata: *mut grpcpool_metadata_t) {
    if !metadata.is_null() {
        // SAFETY: from Box::into_raw in `boxed`, freed once per the contract.
        drop(unsafe { Box::from_raw(metadata) });
    }
}
