//! Streaming calls from C: open on a lease or one-shot on a pool, then blocking send,
//! half-close, recv, headers, cancel and finish on a generation-checked stream handle. Each
//! operation is core's `SharedStream` (one send and one read at a time, `GRPCPOOL_BUSY` for a
//! second); the callback flavours are in `streams_async`.

use std::ffi::c_char;
use std::sync::Arc;

use bytes::Bytes;
use grpcpool_core::{CallOptions, Pool, SharedStream, Stream};

use crate::args::{self, grpcpool_metadata_entry_t, non_null};
use crate::call_options::{self, grpcpool_call_options_t};
use crate::completion::InFlight;
use crate::error::{ffi_boundary, grpcpool_result, FfiError};
use crate::leases::grpcpool_lease_t;
use crate::message::{grpcpool_message_t, grpcpool_metadata_t};
use crate::pool::{grpcpool_pool_t, pool_ref};
use crate::registry::{self, StreamEntry};
use crate::response::grpcpool_response_t;

/// A streaming call (server-, client- or bidirectional streaming): a generation-checked handle,
/// never a pointer. It holds its connection slot until the call ends, and lives until
/// `grpcpool_stream_free`; a freed, forged or pool-freed handle gives
/// `GRPCPOOL_INVALID_HANDLE`.
#[allow(non_camel_case_types)]
pub type grpcpool_stream_t = u64;

/// Puts an open stream in the table.
fn register(
    pool_id: u64,
    pool: &Pool,
    in_flight: &Arc<InFlight>,
    stream: Stream,
) -> Result<grpcpool_stream_t, FfiError> {
    registry::insert_stream(StreamEntry {
        pool_id,
        pool: pool.clone(),
        stream: SharedStream::from(stream),
        in_flight: Arc::clone(in_flight),
    })
}

/// Opens a stream on a lease.
///
/// # Safety
/// As the exported lease stream functions.
unsafe fn lease_open_stream(
    lease: grpcpool_lease_t,
    method: *const c_char,
    options: Result<CallOptions, FfiError>,
    out: *mut grpcpool_stream_t,
) -> Result<(), FfiError> {
    non_null(out, "out")?;
    // SAFETY: per the contract.
    let method = unsafe { args::text(method, "method")? };
    let entry = registry::lease(lease)?;
    let call = entry.pool.prepare_stream(method, options?)?;
    let stream = entry.lease.open_stream_prepared(call)?;
    let handle = register(entry.pool_id, &entry.pool, &entry.in_flight, stream)?;
    // SAFETY: checked non-NULL above.
    unsafe { args::write(out, handle) };
    Ok(())
}

/// Acquires and opens a one-shot stream.
///
/// # Safety
/// As the exported one-shot stream functions.
unsafe fn pool_open_stream(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    method: *const c_char,
    options: Result<CallOptions, FfiError>,
    out: *mut grpcpool_stream_t,
) -> Result<(), FfiError> {
    let pool = pool_ref(pool)?;
    non_null(out, "out")?;
    // SAFETY: per the contract.
    let target = unsafe { args::text(target, "target")? };
    // SAFETY: per the contract.
    let method = unsafe { args::text(method, "method")? };
    let call = pool.pool.prepare_stream(method, options?)?;
    let opening = pool.pool.open_stream_prepared(target, call)?;
    let stream = pool.pool.block_on(opening)??;
    let handle = register(pool.id, &pool.pool, &pool.in_flight, stream)?;
    // SAFETY: checked non-NULL above.
    unsafe { args::write(out, handle) };
    Ok(())
}

/// Opens a streaming call on a lease, without waiting. `method` is `/package.Service/Method`;
/// `metadata` is sent as request metadata; the whole call (every send and recv) must be over
/// `timeout_ms` after it starts (`GRPCPOOL_NO_TIMEOUT`: no deadline).
///
/// The stream uses the lease's slot until the call ends; the lease stays valid and the
/// caller's (release it as usual: the slot returns once both the lease is released and the
/// call is over). On `GRPCPOOL_OK`, `*out` holds the stream, to be freed with
/// `grpcpool_stream_free`. `GRPCPOOL_BUSY` while calls or another stream run on the lease;
/// `GRPCPOOL_UNAVAILABLE` when the lease lost its connection. Not blocking: may be called
/// from a callback.
///
/// # Safety
/// `method` is NULL or NUL-terminated; `metadata` holds `metadata_len` entries (NULL if 0);
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_lease_open_stream(
    lease: grpcpool_lease_t,
    method: *const c_char,
    metadata: *const grpcpool_metadata_entry_t,
    metadata_len: usize,
    timeout_ms: u32,
    out: *mut grpcpool_stream_t,
) -> grpcpool_result {
    ffi_boundary!({
        // SAFETY: per the contract.
        let options = unsafe { call_options::from_parts(metadata, metadata_len, timeout_ms) };
        // SAFETY: per the contract.
        unsafe { lease_open_stream(lease, method, options, out) }
    })
}

/// Acquires a slot on `target` and opens a streaming call on it; the stream gives the slot back
/// when the call ends. Blocking while it waits for a slot: up to the call's timeout, or the
/// config's acquire timeout with `GRPCPOOL_NO_TIMEOUT` (the call then has no deadline).
/// Unlike `grpcpool_unary` there is no response to carry a failure to start, so an unreachable
/// target is `GRPCPOOL_UNAVAILABLE`, no slot in time `GRPCPOOL_ACQUIRE_TIMEOUT` and a shut-down
/// pool `GRPCPOOL_POOL_CLOSED`. On `GRPCPOOL_OK`, `*out` holds the stream; free it with
/// `grpcpool_stream_free`. Not from a callback (`GRPCPOOL_BLOCKING_IN_CALLBACK`).
///
/// # Safety
/// As `grpcpool_lease_open_stream`; `pool` is NULL or live; `target` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_open_stream(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    method: *const c_char,
    metadata: *const grpcpool_metadata_entry_t,
    metadata_len: usize,
    timeout_ms: u32,
    out: *mut grpcpool_stream_t,
) -> grpcpool_result {
    ffi_boundary!({
        // SAFETY: per the contract.
        let options = unsafe { call_options::from_parts(metadata, metadata_len, timeout_ms) };
        // SAFETY: per the contract.
        unsafe { pool_open_stream(pool, target, method, options, out) }
    })
}

/// `grpcpool_lease_open_stream` with every per-call option; `options` NULL means the
/// defaults. The options are read now.
///
/// # Safety
/// As `grpcpool_lease_open_stream`; `options` is NULL or a live options object.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_lease_open_stream_with(
    lease: grpcpool_lease_t,
    method: *const c_char,
    options: *const grpcpool_call_options_t,
    out: *mut grpcpool_stream_t,
) -> grpcpool_result {
    ffi_boundary!({
        // SAFETY: per the contract.
        let options = Ok(unsafe { call_options::read(options) });
        // SAFETY: per the contract.
        unsafe { lease_open_stream(lease, method, options, out) }
    })
}

/// `grpcpool_open_stream` with every per-call option; `options` NULL means the defaults.
/// With wait-for-ready, a target that cannot be reached is waited for until the deadline.
///
/// # Safety
/// As `grpcpool_open_stream`; `options` is NULL or a live options object.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_open_stream_with(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    method: *const c_char,
    options: *const grpcpool_call_options_t,
    out: *mut grpcpool_stream_t,
) -> grpcpool_result {
    ffi_boundary!({
        // SAFETY: per the contract.
        let options = Ok(unsafe { call_options::read(options) });
        // SAFETY: per the contract.
        unsafe { pool_open_stream(pool, target, method, options, out) }
    })
}

/// Sends one message (`message_len` bytes, copied; NULL allowed when 0), waiting while HTTP/2
/// flow control holds the previous one back. `GRPCPOOL_STREAM_CLOSED` once sending is over:
/// after `grpcpool_stream_close_send`, a cancel, the deadline, or the call's end (then
/// `grpcpool_stream_finish` gives the status). `GRPCPOOL_MESSAGE_TOO_LARGE` above the config's
/// max send size. One send at a time per stream (`GRPCPOOL_BUSY` otherwise); it may run while
/// another thread receives. A cancel from another thread wakes it. Not from a callback.
///
/// # Safety
/// `message` covers `message_len` readable bytes (NULL if 0).
#[no_mangle]
pub unsafe extern "C" fn grpcpool_stream_send(
    stream: grpcpool_stream_t,
    message: *const u8,
    message_len: usize,
) -> grpcpool_result {
    ffi_boundary!({
        let entry = registry::stream(stream)?;
        // SAFETY: per the contract.
        let message = unsafe { args::bytes(message, message_len, "message")? };
        let sending = entry.stream.send(Bytes::copy_from_slice(message))?;
        Ok(entry.pool.block_on(sending)??)
    })
}

/// Half-closes: tells the server no more messages come (after a send in progress, if any).
/// Receiving goes on. Closing again is harmless. Not blocking: may be called from a callback.
#[no_mangle]
pub extern "C" fn grpcpool_stream_close_send(stream: grpcpool_stream_t) -> grpcpool_result {
    ffi_boundary!({
        registry::stream(stream)?.stream.close_send();
        Ok(())
    })
}

/// Waits for the next message. On `GRPCPOOL_OK`, `*out` holds it (free it with
/// `grpcpool_message_free`), or is NULL at the end of the stream: the call is over, and
/// `grpcpool_stream_finish` gives its status (OK, an error from the server, CANCELLED, or
/// DEADLINE_EXCEEDED). One recv, headers or finish at a time per stream (`GRPCPOOL_BUSY`
/// otherwise). A cancel from any thread wakes it with the end. Not from a callback.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_stream_recv(
    stream: grpcpool_stream_t,
    out: *mut *mut grpcpool_message_t,
) -> grpcpool_result {
    ffi_boundary!({
        non_null(out, "out")?;
        let entry = registry::stream(stream)?;
        let message = entry.pool.block_on(entry.stream.recv()?)?;
        let message = message.map_or(std::ptr::null_mut(), grpcpool_message_t::boxed);
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out, message) };
        Ok(())
    })
}

/// Waits for the response headers (initial metadata). On `GRPCPOOL_OK`, `*out` holds them
/// (free with `grpcpool_metadata_free`), or is NULL when the call ended without sending any
/// (`grpcpool_stream_finish` says why). Counts as a recv for `GRPCPOOL_BUSY`. Not from a callback.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_stream_headers(
    stream: grpcpool_stream_t,
    out: *mut *mut grpcpool_metadata_t,
) -> grpcpool_result {
    ffi_boundary!({
        non_null(out, "out")?;
        let entry = registry::stream(stream)?;
        let headers = entry.pool.block_on(entry.stream.headers()?)?;
        let headers = headers.map_or(std::ptr::null_mut(), |headers| {
            grpcpool_metadata_t::boxed(&headers)
        });
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out, headers) };
        Ok(())
    })
}

/// Cancels the call: the server sees it cancelled (RST_STREAM CANCEL), the slot returns, a recv
/// or send waiting on any thread wakes (recv with the end, send with `GRPCPOOL_STREAM_CLOSED`),
/// and the final status is CANCELLED (1). On a call already over it does nothing. The handle
/// stays valid until `grpcpool_stream_free`. Not blocking: may be called from a callback.
#[no_mangle]
pub extern "C" fn grpcpool_stream_cancel(stream: grpcpool_stream_t) -> grpcpool_result {
    ffi_boundary!({
        registry::stream(stream)?.stream.cancel();
        Ok(())
    })
}

/// Half-closes, reads to the end (dropping messages not yet read) and gives the final status:
/// on `GRPCPOOL_OK`, `*out` holds a response (free it with `grpcpool_response_free`) with the
/// status code and message, the headers and the trailers; its body is empty. Calling it again
/// gives the same status. Counts as a recv for `GRPCPOOL_BUSY`. Not from a callback.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_stream_finish(
    stream: grpcpool_stream_t,
    out: *mut *mut grpcpool_response_t,
) -> grpcpool_result {
    ffi_boundary!({
        non_null(out, "out")?;
        let entry = registry::stream(stream)?;
        let response = entry.pool.block_on(entry.stream.finish()?)?;
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out, grpcpool_response_t::boxed(response)) };
        Ok(())
    })
}

/// Frees a stream handle. A call not yet over is cancelled first (the server sees the cancel)
/// and its slot returns; operations waiting on other threads wake as for a cancel, and async
/// ones still run their callback once. A handle already freed, from a freed pool, or never
/// issued gives `GRPCPOOL_INVALID_HANDLE`; 0 (never a live handle) is ignored, as `_free`
/// functions ignore NULL. Not blocking: may be called from a callback.
#[no_mangle]
pub extern "C" fn grpcpool_stream_free(stream: grpcpool_stream_t) -> grpcpool_result {
    ffi_boundary!({
        if stream == 0 {
            return Ok(());
        }
        registry::remove_stream(stream)?.stream.cancel();
        Ok(())
    })
}
