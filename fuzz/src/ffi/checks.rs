//! What holds of every result, response, message and metadata list, and the C callbacks of
//! async operations, which record what they saw for the end of the input to check.

use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use grpcpool::grpcpool_result::{self, *};
use grpcpool::*;

use super::peers::server;

/// What an async operation's callback saw. The callback gets a pointer to it as `user_data`;
/// the input keeps it alive until every pool, and so every callback, is done.
#[derive(Default)]
pub(super) struct Slot {
    pub(super) runs: AtomicU32,
    /// The response code (unary, finish) or the send's result.
    pub(super) code: AtomicI32,
    /// The pool a probing callback tries a blocking acquire on (as an address).
    pub(super) probe_pool: Mutex<Option<usize>>,
    pub(super) probe_result: AtomicI32,
    pub(super) probed: AtomicBool,
}

impl Slot {
    pub(super) fn user_data(self: &Arc<Self>) -> *mut c_void {
        Arc::as_ptr(self).cast_mut().cast()
    }

    /// # Safety
    /// `user_data` came from [`Slot::user_data`] of a slot still alive.
    pub(super) unsafe fn from<'a>(user_data: *mut c_void) -> &'a Slot {
        // SAFETY: per the contract.
        unsafe { &*user_data.cast_const().cast::<Slot>() }
    }

    pub(super) fn probe(&self) {
        let pool = *self
            .probe_pool
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(pool) = pool {
            let mut lease = 0;
            // SAFETY: the pool is live: pool_free waits for this callback before it frees it.
            let rc = unsafe {
                grpcpool_acquire(
                    pool as *const grpcpool_pool_t,
                    server().target.as_ptr(),
                    0,
                    &mut lease,
                )
            };
            if rc == GRPCPOOL_OK {
                grpcpool_release(lease);
            }
            self.probe_result.store(rc as i32, Ordering::SeqCst);
            self.probed.store(true, Ordering::SeqCst);
        }
    }
}

pub(super) unsafe extern "C" fn on_unary(
    user_data: *mut c_void,
    response: *mut grpcpool_response_t,
) {
    // SAFETY: the user_data of every async call is a live slot.
    let slot = unsafe { Slot::from(user_data) };
    assert!(!response.is_null(), "a unary callback got a NULL response");
    // SAFETY: a response the callback owns.
    unsafe { check_response(response) };
    // SAFETY: as above.
    slot.code.store(
        unsafe { grpcpool_response_code(response) },
        Ordering::SeqCst,
    );
    slot.probe();
    // SAFETY: the callback owns it.
    unsafe { grpcpool_response_free(response) };
    slot.runs.fetch_add(1, Ordering::SeqCst);
}

pub(super) unsafe extern "C" fn on_send(user_data: *mut c_void, result: grpcpool_result) {
    // SAFETY: a live slot.
    let slot = unsafe { Slot::from(user_data) };
    slot.code.store(result as i32, Ordering::SeqCst);
    slot.runs.fetch_add(1, Ordering::SeqCst);
}

pub(super) unsafe extern "C" fn on_recv(user_data: *mut c_void, message: *mut grpcpool_message_t) {
    // SAFETY: a live slot.
    let slot = unsafe { Slot::from(user_data) };
    // SAFETY: NULL or a message the callback owns.
    unsafe { check_message(message) };
    // SAFETY: as above.
    unsafe { grpcpool_message_free(message) };
    slot.runs.fetch_add(1, Ordering::SeqCst);
}

pub(super) unsafe extern "C" fn on_finish(
    user_data: *mut c_void,
    response: *mut grpcpool_response_t,
) {
    // SAFETY: a live slot.
    let slot = unsafe { Slot::from(user_data) };
    assert!(!response.is_null(), "a finish callback got a NULL response");
    // SAFETY: a response the callback owns.
    unsafe { check_response(response) };
    // SAFETY: as above.
    slot.code.store(
        unsafe { grpcpool_response_code(response) },
        Ordering::SeqCst,
    );
    // SAFETY: the callback owns it.
    unsafe { grpcpool_response_free(response) };
    slot.runs.fetch_add(1, Ordering::SeqCst);
}

pub(super) unsafe extern "C" fn on_log(
    _: *mut c_void,
    level: i32,
    message: *const c_char,
    length: usize,
) {
    assert!((1..=5).contains(&level), "log level {level}");
    // SAFETY: `length` readable bytes, valid during the call.
    let bytes = unsafe { std::slice::from_raw_parts(message.cast::<u8>(), length) };
    assert!(
        std::str::from_utf8(bytes).is_ok(),
        "a log line is not UTF-8"
    );
}

/// The documented result codes.
pub(super) fn known(rc: grpcpool_result) -> bool {
    (0..=19).contains(&(rc as i32))
}

/// A result is one of `allowed`; a failure left a message.
#[track_caller]
pub(super) fn expect(rc: grpcpool_result, allowed: &[grpcpool_result], what: &str) {
    assert!(known(rc), "{what}: undocumented result {}", rc as i32);
    assert!(
        allowed.contains(&rc),
        "{what}: {rc:?}, expected one of {allowed:?}: {}",
        last_error()
    );
    if rc != GRPCPOOL_OK {
        assert!(
            !last_error().is_empty(),
            "{what}: {rc:?} without a last error"
        );
    }
    // SAFETY: a static string.
    let name = unsafe { CStr::from_ptr(grpcpool_result_name(rc as i32)) };
    assert_ne!(
        name.to_bytes(),
        b"GRPCPOOL_UNKNOWN",
        "{what}: {rc:?} has no name"
    );
}

pub(super) fn last_error() -> String {
    // SAFETY: valid until the next call on this thread.
    let text = unsafe { CStr::from_ptr(grpcpool_last_error()) };
    text.to_str().expect("the last error is UTF-8").to_owned()
}

/// # Safety
/// `entry` was just written by a successful accessor.
pub(super) unsafe fn check_entry(entry: &grpcpool_metadata_entry_t) {
    assert!(!entry.key.is_null(), "a metadata key is NULL");
    // SAFETY: NUL-terminated per the header.
    let key = unsafe { CStr::from_ptr(entry.key) };
    let key = key.to_str().expect("a metadata key is UTF-8");
    assert!(
        !key.is_empty() && !key.starts_with("grpc-"),
        "metadata key {key:?}"
    );
    assert!(
        entry.value_len == 0 || !entry.value.is_null(),
        "a metadata value is NULL"
    );
}

/// # Safety
/// `response` is a live response.
pub(super) unsafe fn check_response(response: *mut grpcpool_response_t) {
    // SAFETY (all accessors): a live response.
    unsafe {
        let code = grpcpool_response_code(response);
        assert!((0..=16).contains(&code), "response code {code}");
        let message = CStr::from_ptr(grpcpool_response_message(response));
        assert!(message.to_str().is_ok(), "a status message is not UTF-8");
        for bytes in [
            grpcpool_response_details(response),
            grpcpool_response_body(response),
        ] {
            assert!(!bytes.data.is_null(), "response bytes are NULL");
        }
        type Get = unsafe extern "C" fn(
            *const grpcpool_response_t,
            usize,
            *mut grpcpool_metadata_entry_t,
        ) -> grpcpool_result;
        type Count = unsafe extern "C" fn(*const grpcpool_response_t) -> usize;
        let lists: [(Count, Get); 2] = [
            (grpcpool_response_header_count, grpcpool_response_header),
            (grpcpool_response_trailer_count, grpcpool_response_trailer),
        ];
        for (count, get) in lists {
            let count = count(response);
            let mut entry = empty_entry();
            for index in 0..count {
                expect(
                    get(response, index, &mut entry),
                    &[GRPCPOOL_OK],
                    "response entry",
                );
                check_entry(&entry);
            }
            expect(
                get(response, count, &mut entry),
                &[GRPCPOOL_INVALID_ARGUMENT],
                "entry past the end",
            );
            expect(
                get(response, 0, ptr::null_mut()),
                &[GRPCPOOL_NULL_ARGUMENT],
                "entry into NULL",
            );
        }
    }
}

/// # Safety
/// `message` is NULL or a live message.
pub(super) unsafe fn check_message(message: *mut grpcpool_message_t) {
    // SAFETY: per the contract.
    let bytes = unsafe { grpcpool_message_bytes(message) };
    assert!(!bytes.data.is_null(), "message bytes are NULL");
    if message.is_null() {
        assert_eq!(bytes.len, 0, "a NULL message has bytes");
    }
}

/// # Safety
/// `metadata` is NULL or a live metadata list.
pub(super) unsafe fn check_metadata(metadata: *mut grpcpool_metadata_t) {
    // SAFETY (all accessors): per the contract.
    unsafe {
        let count = grpcpool_metadata_count(metadata);
        let mut entry = empty_entry();
        for index in 0..count {
            expect(
                grpcpool_metadata_get(metadata, index, &mut entry),
                &[GRPCPOOL_OK],
                "metadata entry",
            );
            check_entry(&entry);
        }
        let past = if metadata.is_null() {
            GRPCPOOL_NULL_ARGUMENT
        } else {
            GRPCPOOL_INVALID_ARGUMENT
        };
        expect(
            grpcpool_metadata_get(metadata, count, &mut entry),
            &[past],
            "metadata past the end",
        );
    }
}

pub(super) fn empty_entry() -> grpcpool_metadata_entry_t {
    grpcpool_metadata_entry_t {
        key: ptr::null(),
        value: ptr::null(),
        value_len: 0,
    }
}

/// # Safety
/// `json` is a string from the library; it is freed here.
pub(super) unsafe fn check_json(json: *mut c_char) {
    assert!(!json.is_null(), "JSON out-parameter is NULL on OK");
    // SAFETY: NUL-terminated, from the library.
    let text = unsafe { CStr::from_ptr(json) };
    let text = text.to_str().expect("JSON is UTF-8");
    assert!(
        serde_json::from_str::<serde_json::Value>(text).is_ok(),
        "not JSON: {text}"
    );
    // SAFETY: from the library, freed once.
    unsafe { grpcpool_string_free(json) };
}

/// The documented defaults of accessors given NULL.
pub(super) fn null_accessors() {
    // SAFETY: every function accepts NULL.
    unsafe {
        assert_eq!(grpcpool_response_code(ptr::null()), -1);
        assert_eq!(
            CStr::from_ptr(grpcpool_response_message(ptr::null())).to_bytes(),
            b""
        );
        for bytes in [
            grpcpool_response_details(ptr::null()),
            grpcpool_response_body(ptr::null()),
            grpcpool_message_bytes(ptr::null()),
        ] {
            assert!(!bytes.data.is_null() && bytes.len == 0, "NULL's bytes");
        }
        assert_eq!(grpcpool_response_header_count(ptr::null()), 0);
        assert_eq!(grpcpool_response_trailer_count(ptr::null()), 0);
        assert_eq!(grpcpool_metadata_count(ptr::null()), 0);
        let mut entry = empty_entry();
        expect(
            grpcpool_response_header(ptr::null(), 0, &mut entry),
            &[GRPCPOOL_NULL_ARGUMENT],
            "header of NULL",
        );
        expect(
            grpcpool_response_trailer(ptr::null(), 0, &mut entry),
            &[GRPCPOOL_NULL_ARGUMENT],
            "trailer of NULL",
        );
        expect(
            grpcpool_metadata_get(ptr::null(), 0, &mut entry),
            &[GRPCPOOL_NULL_ARGUMENT],
            "metadata of NULL",
        );
        grpcpool_response_free(ptr::null_mut());
        grpcpool_message_free(ptr::null_mut());
        grpcpool_metadata_free(ptr::null_mut());
        grpcpool_string_free(ptr::null_mut());
        grpcpool_pool_free(ptr::null_mut());
        grpcpool_config_free(ptr::null_mut());
        grpcpool_call_options_free(ptr::null_mut());
        expect(
            grpcpool_stream_free(0),
            &[GRPCPOOL_OK],
            "grpcpool_stream_free(0)",
        );
        expect(
            grpcpool_release(0),
            &[GRPCPOOL_INVALID_HANDLE],
            "grpcpool_release(0)",
        );
        expect(
            grpcpool_call_cancel(0),
            &[GRPCPOOL_INVALID_HANDLE],
            "grpcpool_call_cancel(0)",
        );
        let mut lease = 0;
        expect(
            grpcpool_acquire(ptr::null(), c"http://127.0.0.1:1".as_ptr(), 0, &mut lease),
            &[GRPCPOOL_NULL_ARGUMENT],
            "acquire on NULL",
        );
        expect(
            grpcpool_pool_new(ptr::null(), ptr::null_mut()),
            &[GRPCPOOL_NULL_ARGUMENT],
            "pool_new(NULL out)",
        );
    }
}
