//! `grpcpool_response_t`: the status, headers, trailers and body of a finished call.

use std::ffi::{c_char, CString};
use std::sync::OnceLock;

use grpcpool_core::{Metadata, Response};

use crate::args::{self, grpcpool_bytes_t, grpcpool_metadata_entry_t, non_null};
use crate::error::{ffi_boundary, ffi_boundary_or, grpcpool_result, FfiError};

/// The outcome of a call. Read it with the accessors; free it with `grpcpool_response_free`.
/// Pointers the accessors return stay valid until the response is freed. Safe to read from
/// several threads at once.
#[allow(non_camel_case_types)]
pub struct grpcpool_response_t {
    response: Response,
    // The C forms of the message and metadata are made on their first read, not with the
    // response: most callers read only the code and the body, and a blocking call's caller
    // would pay each of these allocations (about ten a call) on its own thread, cold.
    message: OnceLock<CString>,
    headers: OnceLock<Vec<(CString, bytes::Bytes)>>,
    trailers: OnceLock<Vec<(CString, bytes::Bytes)>>,
}

pub(crate) fn entries(metadata: &Metadata) -> Vec<(CString, bytes::Bytes)> {
    metadata
        .iter()
        .filter_map(|(key, value)| {
            let key = CString::new(key).ok()?;
            Some((key, bytes::Bytes::copy_from_slice(value.as_bytes())))
        })
        .collect()
}

impl grpcpool_response_t {
    pub(crate) fn boxed(response: Response) -> *mut grpcpool_response_t {
        Box::into_raw(Box::new(grpcpool_response_t {
            response,
            message: OnceLock::new(),
            headers: OnceLock::new(),
            trailers: OnceLock::new(),
        }))
    }

    /// The status message as C reads it: a NUL inside it becomes U+FFFD.
    fn message(&self) -> &CString {
        self.message.get_or_init(|| {
            CString::new(self.response.message.replace('\0', "\u{fffd}")).unwrap_or_default()
        })
    }

    fn headers(&self) -> &Vec<(CString, bytes::Bytes)> {
        self.headers.get_or_init(|| entries(&self.response.headers))
    }

    fn trailers(&self) -> &Vec<(CString, bytes::Bytes)> {
        self.trailers
            .get_or_init(|| entries(&self.response.trailers))
    }
}

/// Reads a response through a possibly NULL pointer.
fn with<T>(
    response: *const grpcpool_response_t,
    fallback: T,
    read: impl FnOnce(&grpcpool_response_t) -> T,
) -> T {
    if response.is_null() {
        return fallback;
    }
    // SAFETY: non-NULL and, per every accessor's contract, a live response.
    read(unsafe { &*response })
}

/// The gRPC status code (0 = OK); -1 for NULL.
///
/// # Safety
/// `response` is NULL or a live response.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_response_code(response: *const grpcpool_response_t) -> i32 {
    ffi_boundary_or!(-1, { with(response, -1, |r| r.response.code.as_i32()) })
}

/// The status message, NUL-terminated UTF-8 ("" when none or for NULL).
///
/// # Safety
/// `response` is NULL or a live response.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_response_message(
    response: *const grpcpool_response_t,
) -> *const c_char {
    ffi_boundary_or!(c"".as_ptr(), {
        with(response, c"".as_ptr(), |r| r.message().as_ptr())
    })
}

/// The status details (`grpc-status-details-bin`); empty when none.
///
/// # Safety
/// `response` is NULL or a live response.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_response_details(
    response: *const grpcpool_response_t,
) -> grpcpool_bytes_t {
    ffi_boundary_or!(grpcpool_bytes_t::empty(), {
        with(response, grpcpool_bytes_t::empty(), |r| {
            grpcpool_bytes_t::of(&r.response.details)
        })
    })
}

/// The response message; empty unless the status is OK.
///
/// # Safety
/// `response` is NULL or a live response.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_response_body(
    response: *const grpcpool_response_t,
) -> grpcpool_bytes_t {
    ffi_boundary_or!(grpcpool_bytes_t::empty(), {
        with(response, grpcpool_bytes_t::empty(), |r| {
            grpcpool_bytes_t::of(&r.response.body)
        })
    })
}

/// The number of response headers (initial metadata).
///
/// # Safety
/// `response` is NULL or a live response.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_response_header_count(
    response: *const grpcpool_response_t,
) -> usize {
    ffi_boundary_or!(0, { with(response, 0, |r| r.headers().len()) })
}

/// The number of response trailers (trailing metadata).
///
/// # Safety
/// `response` is NULL or a live response.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_response_trailer_count(
    response: *const grpcpool_response_t,
) -> usize {
    ffi_boundary_or!(0, { with(response, 0, |r| r.trailers().len()) })
}

fn entry_at(
    response: *const grpcpool_response_t,
    index: usize,
    out: *mut grpcpool_metadata_entry_t,
    pick: fn(&grpcpool_response_t) -> &Vec<(CString, bytes::Bytes)>,
) -> grpcpool_result {
    ffi_boundary!({
        non_null(response, "response")?;
        non_null(out, "out")?;
        // SAFETY: non-NULL, a live response per the contract.
        let response = unsafe { &*response };
        let (key, value) = pick(response).get(index).ok_or_else(|| {
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

/// The header at `index` (0-based, in arrival order). Binary (`-bin`) values are decoded.
///
/// # Safety
/// `response` is NULL or a live response; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_response_header(
    response: *const grpcpool_response_t,
    index: usize,
    out: *mut grpcpool_metadata_entry_t,
) -> grpcpool_result {
    entry_at(response, index, out, grpcpool_response_t::headers)
}

/// The trailer at `index` (0-based, in arrival order). Binary (`-bin`) values are decoded.
///
/// # Safety
/// `response` is NULL or a live response; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_response_trailer(
    response: *const grpcpool_response_t,
    index: usize,
    out: *mut grpcpool_metadata_entry_t,
) -> grpcpool_result {
    entry_at(response, index, out, grpcpool_response_t::trailers)
}

/// Frees a response. NULL is ignored.
///
/// # Safety
/// `response` is NULL or a response from this library, not used again.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_response_free(response: *mut grpcpool_response_t) {
    if !response.is_null() {
        // SAFETY: from Box::into_raw in `boxed`, freed once per the contract.
        drop(unsafe { Box::from_raw(response) });
    }
}
