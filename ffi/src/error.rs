//! Result codes, the thread's last error message, and the panic boundary every export uses.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use grpcpool_core::{Error, ErrorKind};

/// The outcome of a grpcpool call. Numbers are stable; new codes are only ever appended.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum grpcpool_result {
    /// Success.
    GRPCPOOL_OK = 0,
    /// A required pointer argument was NULL.
    GRPCPOOL_NULL_ARGUMENT = 1,
    /// An argument is out of range or a string is not UTF-8.
    GRPCPOOL_INVALID_ARGUMENT = 2,
    /// The target string could not be parsed.
    GRPCPOOL_INVALID_TARGET = 3,
    /// The method is not of the form `/package.Service/Method`.
    GRPCPOOL_INVALID_METHOD = 4,
    /// A metadata key or value is not allowed.
    GRPCPOOL_INVALID_METADATA = 5,
    /// The request exceeds the maximum send message size.
    GRPCPOOL_MESSAGE_TOO_LARGE = 6,
    /// A configuration value is invalid.
    GRPCPOOL_INVALID_CONFIG = 7,
    /// TLS material could not be loaded or used.
    GRPCPOOL_TLS_ERROR = 8,
    /// No connection slot became free within the timeout.
    GRPCPOOL_ACQUIRE_TIMEOUT = 9,
    /// The target has no ready connection and the last connection attempt failed.
    GRPCPOOL_UNAVAILABLE = 10,
    /// The pool has been shut down.
    GRPCPOOL_POOL_CLOSED = 11,
    /// A lease or call handle is stale (released, completed, its pool freed) or was never issued.
    GRPCPOOL_INVALID_HANDLE = 12,
    /// A file could not be read.
    GRPCPOOL_IO_ERROR = 13,
    /// A blocking function was called on a grpcpool thread (from a callback); use the async form.
    GRPCPOOL_BLOCKING_IN_CALLBACK = 14,
    /// The library hit an internal panic; the operation did not happen. Please report it.
    GRPCPOOL_PANIC = 15,
    /// An internal error (a handle table full, say).
    GRPCPOOL_INTERNAL = 16,
    /// The stream already has an operation of this kind in progress (a second send while one
    /// waits, or a second recv, headers or finish while one waits); nothing happened.
    GRPCPOOL_BUSY = 17,
    /// The stream is closed for sending: half-closed, cancelled, or the call has ended
    /// (`grpcpool_stream_finish` gives its status).
    GRPCPOOL_STREAM_CLOSED = 18,
    /// The pool's internal runtime could not start (the OS refused its threads, say); the
    /// message says why. Nothing happened; a later call tries again.
    GRPCPOOL_RUNTIME_ERROR = 19,
    /// The async operation was cancelled before it completed: by `grpcpool_call_cancel`, or
    /// because its pool was freed.
    GRPCPOOL_CANCELLED = 20,
}

use grpcpool_result::*;

/// An error on its way to the C caller: a code and a message for `grpcpool_last_error`.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub(crate) result: grpcpool_result,
    pub(crate) message: String,
}

impl FfiError {
    pub(crate) fn new(result: grpcpool_result, message: impl Into<String>) -> FfiError {
        FfiError {
            result,
            message: message.into(),
        }
    }

    pub(crate) fn null(what: &str) -> FfiError {
        FfiError::new(GRPCPOOL_NULL_ARGUMENT, format!("{what} is NULL"))
    }

    pub(crate) fn table_full(what: &str) -> FfiError {
        FfiError::new(
            GRPCPOOL_INTERNAL,
            format!("too many live {what} handles (16 million); free some"),
        )
    }

    pub(crate) fn stale(what: &str) -> FfiError {
        FfiError::new(
            GRPCPOOL_INVALID_HANDLE,
            format!("{what} handle is not live: already released or completed, its pool freed, or never issued"),
        )
    }
}

impl From<Error> for FfiError {
    fn from(error: Error) -> FfiError {
        // By kind, with no catch-all: a new kind must be given its code here.
        let result = match error.kind() {
            ErrorKind::InvalidTarget => GRPCPOOL_INVALID_TARGET,
            ErrorKind::InvalidMethod => GRPCPOOL_INVALID_METHOD,
            ErrorKind::InvalidMetadata => GRPCPOOL_INVALID_METADATA,
            ErrorKind::InvalidCompression => GRPCPOOL_INVALID_ARGUMENT,
            ErrorKind::MessageTooLarge => GRPCPOOL_MESSAGE_TOO_LARGE,
            ErrorKind::InvalidConfig => GRPCPOOL_INVALID_CONFIG,
            ErrorKind::Tls => GRPCPOOL_TLS_ERROR,
            ErrorKind::AcquireTimeout => GRPCPOOL_ACQUIRE_TIMEOUT,
            ErrorKind::Unavailable => GRPCPOOL_UNAVAILABLE,
            ErrorKind::PoolClosed => GRPCPOOL_POOL_CLOSED,
            ErrorKind::BlockingInAsync => GRPCPOOL_BLOCKING_IN_CALLBACK,
            ErrorKind::StreamClosed => GRPCPOOL_STREAM_CLOSED,
            ErrorKind::Busy => GRPCPOOL_BUSY,
            ErrorKind::Runtime => GRPCPOOL_RUNTIME_ERROR,
        };
        FfiError::new(result, error.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `error` as this thread's last error and returns its code.
pub(crate) fn fail(error: FfiError) -> grpcpool_result {
    let text = CString::new(error.message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = text);
    error.result
}

/// Turns a closure's outcome into a result code, recording the message of a failure.
pub(crate) fn finish(outcome: Result<(), FfiError>) -> grpcpool_result {
    match outcome {
        Ok(()) => GRPCPOOL_OK,
        Err(error) => fail(error),
    }
}

/// Runs an export's body, turning a panic into `GRPCPOOL_PANIC` instead of unwinding into C.
macro_rules! ffi_boundary {
    ($body:block) => {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || -> Result<(), $crate::error::FfiError> { $body },
        )) {
            Ok(outcome) => $crate::error::finish(outcome),
            Err(_) => $crate::error::fail($crate::error::FfiError::new(
                $crate::error::grpcpool_result::GRPCPOOL_PANIC,
                "internal panic in grpcpool; the operation did not happen",
            )),
        }
    };
}
pub(crate) use ffi_boundary;

/// Runs an accessor's body, returning `fallback` on a panic.
macro_rules! ffi_boundary_or {
    ($fallback:expr, $body:block) => {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| $body)).unwrap_or($fallback)
    };
}
pub(crate) use ffi_boundary_or;

/// The message of the last error on the calling thread, or "" if none.
///
/// The string belongs to the library and stays valid until the next grpcpool call on this
/// thread. Every function that returns a code other than `GRPCPOOL_OK` sets it.
#[no_mangle]
pub extern "C" fn grpcpool_last_error() -> *const c_char {
    ffi_boundary_or!(c"".as_ptr(), {
        LAST_ERROR.with(|last| last.borrow().as_ptr())
    })
}

/// The name of a result code, such as "GRPCPOOL_ACQUIRE_TIMEOUT"; "GRPCPOOL_UNKNOWN" for a
/// number this library does not know (from a newer header, say). The string is static.
#[no_mangle]
pub extern "C" fn grpcpool_result_name(result: i32) -> *const c_char {
    const NAMES: [(grpcpool_result, &std::ffi::CStr); 21] = [
        (GRPCPOOL_OK, c"GRPCPOOL_OK"),
        (GRPCPOOL_NULL_ARGUMENT, c"GRPCPOOL_NULL_ARGUMENT"),
        (GRPCPOOL_INVALID_ARGUMENT, c"GRPCPOOL_INVALID_ARGUMENT"),
        (GRPCPOOL_INVALID_TARGET, c"GRPCPOOL_INVALID_TARGET"),
        (GRPCPOOL_INVALID_METHOD, c"GRPCPOOL_INVALID_METHOD"),
        (GRPCPOOL_INVALID_METADATA, c"GRPCPOOL_INVALID_METADATA"),
        (GRPCPOOL_MESSAGE_TOO_LARGE, c"GRPCPOOL_MESSAGE_TOO_LARGE"),
        (GRPCPOOL_INVALID_CONFIG, c"GRPCPOOL_INVALID_CONFIG"),
        (GRPCPOOL_TLS_ERROR, c"GRPCPOOL_TLS_ERROR"),
        (GRPCPOOL_ACQUIRE_TIMEOUT, c"GRPCPOOL_ACQUIRE_TIMEOUT"),
        (GRPCPOOL_UNAVAILABLE, c"GRPCPOOL_UNAVAILABLE"),
        (GRPCPOOL_POOL_CLOSED, c"GRPCPOOL_POOL_CLOSED"),
        (GRPCPOOL_INVALID_HANDLE, c"GRPCPOOL_INVALID_HANDLE"),
        (GRPCPOOL_IO_ERROR, c"GRPCPOOL_IO_ERROR"),
        (
            GRPCPOOL_BLOCKING_IN_CALLBACK,
            c"GRPCPOOL_BLOCKING_IN_CALLBACK",
        ),
        (GRPCPOOL_PANIC, c"GRPCPOOL_PANIC"),
        (GRPCPOOL_INTERNAL, c"GRPCPOOL_INTERNAL"),
        (GRPCPOOL_BUSY, c"GRPCPOOL_BUSY"),
        (GRPCPOOL_STREAM_CLOSED, c"GRPCPOOL_STREAM_CLOSED"),
        (GRPCPOOL_RUNTIME_ERROR, c"GRPCPOOL_RUNTIME_ERROR"),
        (GRPCPOOL_CANCELLED, c"GRPCPOOL_CANCELLED"),
    ];
    NAMES
        .iter()
        .find(|(code, _)| *code as i32 == result)
        .map_or(c"GRPCPOOL_UNKNOWN", |(_, name)| name)
        .as_ptr()
}
