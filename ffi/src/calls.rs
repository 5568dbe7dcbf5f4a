//! Unary calls from C: blocking, or async with a completion callback and cancellation.

use std::ffi::{c_char, c_void};
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use grpcpool_core::{CallOptions, Code, Pool, Response};
use tokio::sync::Notify;

use crate::args::{self, grpcpool_metadata_entry_t, millis, non_null};
use crate::error::{ffi_boundary, grpcpool_result, FfiError};
use crate::handles::{kind, HandleTable};
use crate::leases::{self, grpcpool_lease_t};
use crate::pool::{grpcpool_pool_t, pool_ref, InFlight};
use crate::response::grpcpool_response_t;

/// An async call in flight: a generation-checked handle for `grpcpool_call_cancel`. It dies
/// when the callback has run.
#[allow(non_camel_case_types)]
pub type grpcpool_call_t = u64;

/// Receives the outcome of an async call, exactly once, on a grpcpool worker thread.
///
/// `response` is never NULL and now belongs to the callback: free it with
/// `grpcpool_response_free`. `user_data` is the pointer given when the call was started, for
/// the caller's own context. The callback must return quickly and must not call blocking
/// grpcpool functions (they fail with `GRPCPOOL_BLOCKING_IN_CALLBACK`); it may release leases,
/// start async calls and cancel calls.
#[allow(non_camel_case_types)]
pub type grpcpool_unary_callback_t =
    Option<unsafe extern "C" fn(user_data: *mut c_void, response: *mut grpcpool_response_t)>;

const RUNNING: u8 = 0;
const FINISHED: u8 = 1;
const CANCELLED: u8 = 2;

struct CallState {
    state: AtomicU8,
    cancel: Notify,
}

#[derive(Clone)]
struct CallEntry {
    pool_id: u64,
    state: Arc<CallState>,
}

static CALLS: HandleTable<CallEntry> = HandleTable::new(kind::CALL);

/// Runs `future` to completion on the pool's runtime, refusing on a grpcpool thread (a
/// callback) where blocking would stall the pool.
pub(crate) fn block_on<F: Future>(pool: &Pool, future: F) -> Result<F::Output, FfiError> {
    Ok(pool.block_on(future)?)
}

/// The pieces of a call as read from C.
struct CallInput<'a> {
    method: &'a str,
    request: Bytes,
    options: CallOptions,
}

/// A call's options from C: its metadata, and a deadline `timeout_ms` from now (0: none).
///
/// # Safety
/// `metadata` holds `metadata_len` entries (NULL if 0), as the exported functions require.
pub(crate) unsafe fn call_options(
    metadata: *const grpcpool_metadata_entry_t,
    metadata_len: usize,
    timeout_ms: u32,
) -> Result<CallOptions, FfiError> {
    // SAFETY: per the contract.
    let metadata = unsafe { args::metadata(metadata, metadata_len)? };
    let mut options = if timeout_ms > 0 {
        CallOptions::with_timeout(millis(timeout_ms))
    } else {
        CallOptions::default()
    };
    options.metadata = metadata;
    Ok(options)
}

/// # Safety
/// The pointers follow the contract of the exported call functions.
unsafe fn call_input<'a>(
    method: *const c_char,
    request: *const u8,
    request_len: usize,
    metadata: *const grpcpool_metadata_entry_t,
    metadata_len: usize,
    timeout_ms: u32,
) -> Result<CallInput<'a>, FfiError> {
    // SAFETY: per the contract.
    let method = unsafe { args::text(method, "method")? };
    // SAFETY: per the contract.
    let request = Bytes::copy_from_slice(unsafe { args::bytes(request, request_len, "request")? });
    // SAFETY: per the contract.
    let options = unsafe { call_options(metadata, metadata_len, timeout_ms)? };
    Ok(CallInput {
        method,
        request,
        options,
    })
}

/// Makes a unary call on a lease and waits for it. `timeout_ms` 0 means no deadline.
/// On `GRPCPOOL_OK`, `*out` holds the response, whatever its gRPC status: check
/// `grpcpool_response_code`. Other results mean the call was not made (bad input, stale lease).
///
/// # Safety
/// `method` is NULL or NUL-terminated; `request` covers `request_len` bytes (NULL if 0);
/// `metadata` holds `metadata_len` entries (NULL if 0); `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_lease_unary(
    lease: grpcpool_lease_t,
    method: *const c_char,
    request: *const u8,
    request_len: usize,
    metadata: *const grpcpool_metadata_entry_t,
    metadata_len: usize,
    timeout_ms: u32,
    out: *mut *mut grpcpool_response_t,
) -> grpcpool_result {
    ffi_boundary!({
        non_null(out, "out")?;
        let entry = leases::lookup(lease)?;
        // SAFETY: per the contract.
        let input = unsafe {
            call_input(
                method,
                request,
                request_len,
                metadata,
                metadata_len,
                timeout_ms,
            )?
        };
        let call = entry
            .lease
            .unary(input.method, input.request, input.options);
        let response = block_on(&entry.pool, call)??;
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out, grpcpool_response_t::boxed(response)) };
        Ok(())
    })
}

/// Acquires, calls and releases in one go, waiting for the outcome. The acquire waits up to
/// the call's timeout (or the config's acquire timeout when `timeout_ms` is 0). A target that
/// cannot be reached, or no free slot in time, is a response with status UNAVAILABLE (14) or
/// DEADLINE_EXCEEDED (4), as from any gRPC client; a shut-down pool is `GRPCPOOL_POOL_CLOSED`.
///
/// # Safety
/// As `grpcpool_lease_unary`; `pool` is NULL or live; `target` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_unary(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    method: *const c_char,
    request: *const u8,
    request_len: usize,
    metadata: *const grpcpool_metadata_entry_t,
    metadata_len: usize,
    timeout_ms: u32,
    out: *mut *mut grpcpool_response_t,
) -> grpcpool_result {
    ffi_boundary!({
        let pool = pool_ref(pool)?;
        non_null(out, "out")?;
        // SAFETY: per the contract.
        let target = unsafe { args::text(target, "target")? };
        // SAFETY: per the contract.
        let input = unsafe {
            call_input(
                method,
                request,
                request_len,
                metadata,
                metadata_len,
                timeout_ms,
            )?
        };
        let call = pool
            .pool
            .unary(target, input.method, input.request, input.options);
        let response = block_on(&pool.pool, call)??;
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out, grpcpool_response_t::boxed(response)) };
        Ok(())
    })
}

/// The C pointer that travels with an async call; only handed back to the caller's callback.
pub(crate) struct UserData(pub(crate) *mut c_void);

// SAFETY: the library never dereferences it; passing it to the callback on another thread is
// what the caller asked for by starting an async call.
#[allow(unsafe_code)]
unsafe impl Send for UserData {}

/// Spawns `call` on the pool's runtime; the callback gets its response, or CANCELLED.
fn spawn_async<F>(
    pool: &Pool,
    pool_id: u64,
    in_flight: Arc<InFlight>,
    call: F,
    callback: grpcpool_unary_callback_t,
    user_data: *mut c_void,
    out_call: *mut grpcpool_call_t,
) -> Result<(), FfiError>
where
    F: Future<Output = Result<Response, grpcpool_core::Error>> + Send + 'static,
{
    let callback = callback.ok_or_else(|| FfiError::null("callback"))?;
    let runtime = pool.runtime_handle()?;
    let state = Arc::new(CallState {
        state: AtomicU8::new(RUNNING),
        cancel: Notify::new(),
    });
    let handle = CALLS
        .insert(CallEntry {
            pool_id,
            state: Arc::clone(&state),
        })
        .ok_or_else(|| FfiError::table_full("call"))?;
    if !out_call.is_null() {
        // SAFETY: non-NULL and writable per the contract; written before the call can finish.
        unsafe { args::write(out_call, handle) };
    }
    let user_data = UserData(user_data);
    in_flight.enter();
    runtime.spawn(async move {
        let outcome = tokio::select! {
            outcome = call => Some(outcome),
            _ = state.cancel.notified() => None,
        };
        let won = state
            .state
            .compare_exchange(RUNNING, FINISHED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        let response = match outcome {
            Some(Ok(response)) if won => response,
            Some(Err(error)) if won => Response::with_status(error.code(), error.to_string()),
            _ => cancelled(),
        };
        CALLS.remove(handle);
        let user_data = user_data;
        // The callback is C code: a panic cannot come out of it, and the pointer is the caller's.
        // SAFETY: the caller supplied a valid function pointer for exactly this use.
        unsafe { callback(user_data.0, grpcpool_response_t::boxed(response)) };
        in_flight.leave();
    });
    Ok(())
}

fn cancelled() -> Response {
    Response::with_status(Code::Cancelled, "cancelled by the caller")
}

/// Starts a unary call on a lease without waiting. Input is checked now: on an error result
/// nothing started and the callback will not run. On `GRPCPOOL_OK` the callback runs exactly
/// once, and `*out_call` (if not NULL) holds a handle for `grpcpool_call_cancel`.
///
/// # Safety
/// As `grpcpool_lease_unary`; `callback` is a valid function; `out_call` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_lease_unary_async(
    lease: grpcpool_lease_t,
    method: *const c_char,
    request: *const u8,
    request_len: usize,
    metadata: *const grpcpool_metadata_entry_t,
    metadata_len: usize,
    timeout_ms: u32,
    callback: grpcpool_unary_callback_t,
    user_data: *mut c_void,
    out_call: *mut grpcpool_call_t,
) -> grpcpool_result {
    ffi_boundary!({
        let entry = leases::lookup(lease)?;
        // SAFETY: per the contract.
        let input = unsafe {
            call_input(
                method,
                request,
                request_len,
                metadata,
                metadata_len,
                timeout_ms,
            )?
        };
        // Checked now, so bad input fails here rather than in the callback.
        let prepared = entry
            .pool
            .prepare(input.method, input.request, input.options)?;
        let lease = Arc::clone(&entry.lease);
        let call = async move { Ok(lease.call(prepared).await) };
        spawn_async(
            &entry.pool,
            entry.pool_id,
            Arc::clone(&entry.async_calls),
            call,
            callback,
            user_data,
            out_call,
        )
    })
}

/// Starts a one-shot call (acquire, call, release) without waiting; otherwise as
/// `grpcpool_lease_unary_async`. The target and input are checked now; a target that cannot
/// be reached, no free slot in time, or a pool shut down meanwhile reach the callback as a
/// response with status UNAVAILABLE (14) or DEADLINE_EXCEEDED (4).
///
/// # Safety
/// As `grpcpool_unary`; `callback` is a valid function; `out_call` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_unary_async(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    method: *const c_char,
    request: *const u8,
    request_len: usize,
    metadata: *const grpcpool_metadata_entry_t,
    metadata_len: usize,
    timeout_ms: u32,
    callback: grpcpool_unary_callback_t,
    user_data: *mut c_void,
    out_call: *mut grpcpool_call_t,
) -> grpcpool_result {
    ffi_boundary!({
        let pool = pool_ref(pool)?;
        // SAFETY: per the contract.
        let target = unsafe { args::text(target, "target")? };
        // SAFETY: per the contract.
        let input = unsafe {
            call_input(
                method,
                request,
                request_len,
                metadata,
                metadata_len,
                timeout_ms,
            )?
        };
        let prepared = pool
            .pool
            .prepare(input.method, input.request, input.options)?;
        let call = pool.pool.unary_prepared(target, prepared)?;
        spawn_async(
            &pool.pool,
            pool.id,
            Arc::clone(&pool.async_calls),
            call,
            callback,
            user_data,
            out_call,
        )
    })
}

/// Cancels an async call. Its callback then runs exactly once with status CANCELLED (1).
/// A call whose callback has already run (or is running) gives `GRPCPOOL_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn grpcpool_call_cancel(call: grpcpool_call_t) -> grpcpool_result {
    ffi_boundary!({
        let entry = CALLS.get(call).ok_or_else(|| FfiError::stale("call"))?;
        if entry
            .state
            .state
            .compare_exchange(RUNNING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(FfiError::stale("call"));
        }
        entry.state.cancel.notify_one();
        Ok(())
    })
}

/// Cancels every async call of a pool being freed.
pub(crate) fn cancel_all(pool_id: u64) {
    for entry in CALLS.remove_where(|entry| entry.pool_id == pool_id) {
        if entry
            .state
            .state
            .compare_exchange(RUNNING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            entry.state.cancel.notify_one();
        }
    }
}
