//! Streaming calls from C: open on a lease or one-shot on a pool, then blocking send,
//! half-close, recv, headers, cancel and finish on a generation-checked stream handle. The
//! operations themselves are in `stream_state`, the callback flavours in `streams_async`.

use std::ffi::c_char;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use grpcpool_core::{Error, Stream};
use tokio::runtime::Handle;

use crate::args::{self, grpcpool_metadata_entry_t, non_null};
use crate::calls::call_options;
use crate::error::{ffi_boundary, grpcpool_result, FfiError};
use crate::handles::{kind, HandleTable};
use crate::leases::{self, grpcpool_lease_t};
use crate::message::{grpcpool_message_t, grpcpool_metadata_t};
use crate::pool::{grpcpool_pool_t, pool_ref, InFlight};
use crate::response::grpcpool_response_t;
use crate::stream_state::{claim, Half, StreamState};

/// A streaming call (server-, client- or bidirectional streaming): a generation-checked handle,
/// never a pointer. It holds its connection slot until the call ends, and lives until
/// `grpcpool_stream_free`; a freed, forged or pool-freed handle gives
/// `GRPCPOOL_INVALID_HANDLE`.
#[allow(non_camel_case_types)]
pub type grpcpool_stream_t = u64;

#[derive(Clone)]
pub(crate) struct StreamEntry {
    pool_id: u64,
    pub(crate) state: Arc<StreamState>,
    pub(crate) in_flight: Arc<InFlight>,
}

static STREAMS: HandleTable<StreamEntry> = HandleTable::new(kind::STREAM);

/// The stream behind a live handle.
pub(crate) fn lookup(stream: grpcpool_stream_t) -> Result<StreamEntry, FfiError> {
    STREAMS.get(stream).ok_or_else(|| FfiError::stale("stream"))
}

/// Cancels and forgets every stream of a pool being freed.
pub(crate) fn cancel_all(pool_id: u64) {
    for entry in STREAMS.remove_where(|entry| entry.pool_id == pool_id) {
        entry.state.cancel();
    }
}

/// Waits for `future` on the stream's runtime, refusing on a grpcpool thread (a callback).
fn block_on<F: Future>(runtime: &Handle, future: F) -> Result<F::Output, FfiError> {
    if Handle::try_current().is_ok() {
        return Err(Error::BlockingInAsync.into());
    }
    Ok(runtime.block_on(future))
}

/// Puts an open stream in the table.
fn register(
    pool_id: u64,
    runtime: Handle,
    max_send: usize,
    in_flight: Arc<InFlight>,
    deadline: Option<Instant>,
    stream: Stream,
) -> Result<grpcpool_stream_t, FfiError> {
    STREAMS
        .insert(StreamEntry {
            pool_id,
            in_flight,
            state: Arc::new(StreamState::new(runtime, max_send, deadline, stream)),
        })
        .ok_or_else(|| FfiError::table_full("stream"))
}

/// Opens a streaming call on a lease, without waiting. `method` is `/package.Service/Method`;
/// `metadata` is sent as request metadata; `timeout_ms` 0 means no deadline, otherwise the
/// whole call (every send and recv) must be over by then.
///
/// On `GRPCPOOL_OK` the lease handle is consumed (it is now invalid: the stream holds its slot
/// and gives it back when the call ends), and `*out` holds the stream, to be freed with
/// `grpcpool_stream_free`. Bad input (`GRPCPOOL_INVALID_METHOD`, `GRPCPOOL_INVALID_METADATA`,
/// NULL) and `GRPCPOOL_BUSY` (calls on the lease are still running: async ones, or blocking
/// ones on other threads) leave the lease valid. `GRPCPOOL_UNAVAILABLE` means the lease had lost its connection; it is consumed.
/// Not blocking: may be called from a callback.
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
        non_null(out, "out")?;
        // SAFETY: per the contract.
        let method = unsafe { args::text(method, "method")? };
        // SAFETY: per the contract.
        let options = unsafe { call_options(metadata, metadata_len, timeout_ms)? };
        let (pool, pool_id) = {
            let entry = leases::lookup(lease)?;
            (entry.pool.clone(), entry.pool_id)
        };
        // Checked before the lease is taken, so bad input leaves it usable.
        pool.prepare(method, Bytes::new(), options.clone())?;
        let runtime = pool.runtime_handle()?;
        let max_send = pool.config().max_send_message_size;
        let taken = leases::take_for_stream(lease)?;
        debug_assert_eq!(taken.pool_id, pool_id);
        let deadline = options.deadline;
        let stream = Arc::new(taken.lease).open_stream(method, options)?;
        let handle = register(
            pool_id,
            runtime,
            max_send,
            taken.async_calls,
            deadline,
            stream,
        )?;
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out, handle) };
        Ok(())
    })
}

/// Acquires a slot on `target` and opens a streaming call on it; the stream gives the slot back
/// when the call ends. Blocking while it waits for a slot: up to the call's timeout, or the
/// config's acquire timeout when `timeout_ms` is 0 (the call then has no deadline).
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
        let pool = pool_ref(pool)?;
        non_null(out, "out")?;
        // SAFETY: per the contract.
        let target = unsafe { args::text(target, "target")? };
        // SAFETY: per the contract.
        let method = unsafe { args::text(method, "method")? };
        // SAFETY: per the contract.
        let options = unsafe { call_options(metadata, metadata_len, timeout_ms)? };
        let runtime = pool.pool.runtime_handle()?;
        let deadline = options.deadline;
        let opening = pool.pool.open_stream(target, method, options);
        let stream = block_on(&runtime, opening)??;
        let max_send = pool.pool.config().max_send_message_size;
        let handle = register(
            pool.id,
            runtime,
            max_send,
            Arc::clone(&pool.async_calls),
            deadline,
            stream,
        )?;
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out, handle) };
        Ok(())
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
        let entry = lookup(stream)?;
        // SAFETY: per the contract.
        let message = unsafe { args::bytes(message, message_len, "message")? };
        entry.state.check_size(message.len())?;
        let message = Bytes::copy_from_slice(message);
        let claim = claim(&entry.state, Half::Send)?;
        block_on(&entry.state.runtime, claim.state().send(message))?
    })
}

/// Half-closes: tells the server no more messages come (after a send in progress, if any).
/// Receiving goes on. Closing again is harmless. Not blocking: may be called from a callback.
#[no_mangle]
pub extern "C" fn grpcpool_stream_close_send(stream: grpcpool_stream_t) -> grpcpool_result {
    ffi_boundary!({
        lookup(stream)?.state.close_send();
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
        let entry = lookup(stream)?;
        let claim = claim(&entry.state, Half::Recv)?;
        let message = block_on(&entry.state.runtime, claim.state().recv())?;
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
        let entry = lookup(stream)?;
        let claim = claim(&entry.state, Half::Recv)?;
        let headers = block_on(&entry.state.runtime, claim.state().headers())?;
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
        lookup(stream)?.state.cancel();
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
        let entry = lookup(stream)?;
        let claim = claim(&entry.state, Half::Recv)?;
        let response = block_on(&entry.state.runtime, claim.state().finish())?;
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
        let entry = STREAMS
            .remove(stream)
            .ok_or_else(|| FfiError::stale("stream"))?;
        entry.state.cancel();
        Ok(())
    })
}
