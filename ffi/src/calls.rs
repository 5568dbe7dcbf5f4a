//! Unary calls from C: blocking, or async with a completion callback and cancellation. Each
//! comes in two forms: with every per-call option (`_with`, a `grpcpool_call_options_t`), and
//! shorter, with only metadata and a timeout.

use std::ffi::{c_char, c_void};
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use grpcpool_core::{CallOptions, Code, Pool, Response};

use crate::args::{self, grpcpool_metadata_entry_t, non_null};
use crate::call_options::{self, grpcpool_call_options_t};
use crate::completion::{CallCancel, Completion, InFlight, UserData};
use crate::error::{ffi_boundary, grpcpool_result, FfiError};
use crate::leases::grpcpool_lease_t;
use crate::pool::{grpcpool_pool_t, pool_ref};
use crate::registry::{self, CallEntry};
use crate::response::grpcpool_response_t;

/// An async call (or `grpcpool_acquire_async`) in flight: a generation-checked handle for
/// `grpcpool_call_cancel`. It dies when the callback has run.
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

/// A request as read from C: the method, and the request bytes (copied once).
///
/// # Safety
/// `method` is NULL or NUL-terminated; `request` covers `request_len` bytes (NULL if 0).
unsafe fn request<'a>(
    method: *const c_char,
    request: *const u8,
    request_len: usize,
) -> Result<(&'a str, Bytes), FfiError> {
    // SAFETY: per the contract.
    let method = unsafe { args::text(method, "method")? };
    // SAFETY: per the contract.
    let request = unsafe { args::bytes(request, request_len, "request")? };
    Ok((method, Bytes::copy_from_slice(request)))
}

/// A blocking call on a lease.
///
/// # Safety
/// As the exported lease call functions.
unsafe fn lease_unary(
    lease: u64,
    method: *const c_char,
    request_data: *const u8,
    request_len: usize,
    options: Result<CallOptions, FfiError>,
    out: *mut *mut grpcpool_response_t,
) -> Result<(), FfiError> {
    non_null(out, "out")?;
    let entry = registry::lease(lease)?;
    // SAFETY: per the contract.
    let (method, request) = unsafe { request(method, request_data, request_len)? };
    let call = entry.pool.prepare(method, request, options?)?;
    let lease = Arc::clone(&entry.lease);
    let response = entry.pool.block_on(async move { lease.call(call).await })?;
    // SAFETY: checked non-NULL above.
    unsafe { args::write(out, grpcpool_response_t::boxed(response)) };
    Ok(())
}

/// A blocking one-shot call.
///
/// # Safety
/// As the exported one-shot call functions.
unsafe fn pool_unary(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    method: *const c_char,
    request_data: *const u8,
    request_len: usize,
    options: Result<CallOptions, FfiError>,
    out: *mut *mut grpcpool_response_t,
) -> Result<(), FfiError> {
    let pool = pool_ref(pool)?;
    non_null(out, "out")?;
    // SAFETY: per the contract.
    let target = unsafe { args::text(target, "target")? };
    // SAFETY: per the contract.
    let (method, request) = unsafe { request(method, request_data, request_len)? };
    let call = pool.pool.prepare(method, request, options?)?;
    let call = pool.pool.unary_prepared(target, call)?;
    let response = pool.pool.block_on(call)??;
    // SAFETY: checked non-NULL above.
    unsafe { args::write(out, grpcpool_response_t::boxed(response)) };
    Ok(())
}

/// Makes a unary call on a lease and waits for it; `timeout_ms` is the deadline after the
/// call starts (`GRPCPOOL_NO_TIMEOUT`: none; 0: now, so DEADLINE_EXCEEDED without sending).
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
        // SAFETY: per the contract.
        let options = unsafe { call_options::from_parts(metadata, metadata_len, timeout_ms) };
        // SAFETY: per the contract.
        unsafe { lease_unary(lease, method, request, request_len, options, out) }
    })
}

/// `grpcpool_lease_unary` with every per-call option; `options` NULL means the defaults (no
/// deadline, no metadata, fail fast, no compression). The options are read now.
///
/// # Safety
/// As `grpcpool_lease_unary`; `options` is NULL or a live options object.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_lease_unary_with(
    lease: grpcpool_lease_t,
    method: *const c_char,
    request: *const u8,
    request_len: usize,
    options: *const grpcpool_call_options_t,
    out: *mut *mut grpcpool_response_t,
) -> grpcpool_result {
    ffi_boundary!({
        // SAFETY: per the contract.
        let options = Ok(unsafe { call_options::read(options) });
        // SAFETY: per the contract.
        unsafe { lease_unary(lease, method, request, request_len, options, out) }
    })
}

/// Acquires, calls and releases in one go, waiting for the outcome. The acquire waits up to
/// the call's timeout (or the config's acquire timeout with `GRPCPOOL_NO_TIMEOUT`). A target
/// that cannot be reached, or no free slot in time, is a response with status UNAVAILABLE (14)
/// or DEADLINE_EXCEEDED (4), as from any gRPC client; a shut-down pool is
/// `GRPCPOOL_POOL_CLOSED`.
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
        // SAFETY: per the contract.
        let options = unsafe { call_options::from_parts(metadata, metadata_len, timeout_ms) };
        // SAFETY: per the contract.
        unsafe { pool_unary(pool, target, method, request, request_len, options, out) }
    })
}

/// `grpcpool_unary` with every per-call option; `options` NULL means the defaults. With
/// wait-for-ready, a target that cannot be reached is waited for until the deadline.
///
/// # Safety
/// As `grpcpool_unary`; `options` is NULL or a live options object.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_unary_with(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    method: *const c_char,
    request: *const u8,
    request_len: usize,
    options: *const grpcpool_call_options_t,
    out: *mut *mut grpcpool_response_t,
) -> grpcpool_result {
    ffi_boundary!({
        // SAFETY: per the contract.
        let options = Ok(unsafe { call_options::read(options) });
        // SAFETY: per the contract.
        unsafe { pool_unary(pool, target, method, request, request_len, options, out) }
    })
}

/// What an async call needs from C besides the call itself.
struct AsyncTarget {
    callback: grpcpool_unary_callback_t,
    user_data: *mut c_void,
    out_call: *mut grpcpool_call_t,
}

impl AsyncTarget {
    fn new(
        callback: grpcpool_unary_callback_t,
        user_data: *mut c_void,
        out_call: *mut grpcpool_call_t,
    ) -> AsyncTarget {
        AsyncTarget {
            callback,
            user_data,
            out_call,
        }
    }
}

/// Spawns `call` on the pool's runtime; the callback gets its response, or CANCELLED, exactly
/// once, even if the task panics or the runtime drops it.
fn spawn_async<F>(
    pool: &Pool,
    pool_id: u64,
    in_flight: &Arc<InFlight>,
    call: F,
    target: AsyncTarget,
) -> Result<(), FfiError>
where
    F: Future<Output = Result<Response, grpcpool_core::Error>> + Send + 'static,
{
    let callback = target.callback.ok_or_else(|| FfiError::null("callback"))?;
    let runtime = pool.runtime_handle()?;
    let cancel = Arc::new(CallCancel::default());
    let handle = registry::insert_call(CallEntry {
        pool_id,
        cancel: Arc::clone(&cancel),
    })?;
    if !target.out_call.is_null() {
        // SAFETY: non-NULL and writable per the contract; written before the call can finish.
        unsafe { args::write(target.out_call, handle) };
    }
    let user_data = UserData(target.user_data);
    let completion = Completion::new(in_flight, move |outcome: Option<Response>| {
        let user_data = user_data;
        registry::remove_call(handle);
        let response = outcome.unwrap_or_else(cancelled);
        // The callback is C code: a panic cannot come out of it, and the pointer is the caller's.
        // SAFETY: the caller supplied a valid function pointer for exactly this use.
        unsafe { callback(user_data.0, grpcpool_response_t::boxed(response)) };
    });
    // Boxed, as Pool::spawn_then boxes a face's call (core/src/pool/tasks.rs says why); here
    // the cancel is raced against it, so the task is this face's.
    let call = Box::pin(call);
    drop(runtime.spawn(async move {
        let outcome = tokio::select! {
            outcome = call => Some(outcome),
            _ = cancel.cancelled() => None,
        };
        let response = match outcome {
            Some(Ok(response)) if cancel.finish() => response,
            Some(Err(error)) if cancel.finish() => {
                Response::with_status(error.code(), error.to_string())
            }
            _ => cancelled(),
        };
        completion.complete(response);
    }));
    Ok(())
}

fn cancelled() -> Response {
    Response::with_status(Code::Cancelled, "cancelled by the caller")
}

/// Starts an async call on a lease.
///
/// # Safety
/// As the exported async lease call functions.
unsafe fn lease_unary_async(
    lease: u64,
    method: *const c_char,
    request_data: *const u8,
    request_len: usize,
    options: Result<CallOptions, FfiError>,
    target: AsyncTarget,
) -> Result<(), FfiError> {
    let entry = registry::lease(lease)?;
    // SAFETY: per the contract.
    let (method, request) = unsafe { request(method, request_data, request_len)? };
    // Checked now, so bad input fails here rather than in the callback.
    let prepared = entry.pool.prepare(method, request, options?)?;
    // In use from now: a stream opened on the lease meanwhile is refused.
    let call = entry.lease.start_call(prepared);
    let call = async move { Ok(call.await) };
    spawn_async(&entry.pool, entry.pool_id, &entry.in_flight, call, target)
}

/// Starts an async one-shot call.
///
/// # Safety
/// As the exported async one-shot call functions.
unsafe fn pool_unary_async(
    pool: *const grpcpool_pool_t,
    target_text: *const c_char,
    method: *const c_char,
    request_data: *const u8,
    request_len: usize,
    options: Result<CallOptions, FfiError>,
    target: AsyncTarget,
) -> Result<(), FfiError> {
    let pool = pool_ref(pool)?;
    // SAFETY: per the contract.
    let target_text = unsafe { args::text(target_text, "target")? };
    // SAFETY: per the contract.
    let (method, request) = unsafe { request(method, request_data, request_len)? };
    let prepared = pool.pool.prepare(method, request, options?)?;
    let call = pool.pool.unary_prepared(target_text, prepared)?;
    spawn_async(&pool.pool, pool.id, &pool.in_flight, call, target)
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
        // SAFETY: per the contract.
        let options = unsafe { call_options::from_parts(metadata, metadata_len, timeout_ms) };
        let target = AsyncTarget::new(callback, user_data, out_call);
        // SAFETY: per the contract.
        unsafe { lease_unary_async(lease, method, request, request_len, options, target) }
    })
}

/// `grpcpool_lease_unary_async` with every per-call option; `options` NULL means the
/// defaults. The options are read now.
///
/// # Safety
/// As `grpcpool_lease_unary_async`; `options` is NULL or a live options object.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_lease_unary_async_with(
    lease: grpcpool_lease_t,
    method: *const c_char,
    request: *const u8,
    request_len: usize,
    options: *const grpcpool_call_options_t,
    callback: grpcpool_unary_callback_t,
    user_data: *mut c_void,
    out_call: *mut grpcpool_call_t,
) -> grpcpool_result {
    ffi_boundary!({
        // SAFETY: per the contract.
        let options = Ok(unsafe { call_options::read(options) });
        let target = AsyncTarget::new(callback, user_data, out_call);
        // SAFETY: per the contract.
        unsafe { lease_unary_async(lease, method, request, request_len, options, target) }
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
        // SAFETY: per the contract.
        let options = unsafe { call_options::from_parts(metadata, metadata_len, timeout_ms) };
        let on_done = AsyncTarget::new(callback, user_data, out_call);
        // SAFETY: per the contract.
        unsafe { pool_unary_async(pool, target, method, request, request_len, options, on_done) }
    })
}

/// `grpcpool_unary_async` with every per-call option; `options` NULL means the defaults.
///
/// # Safety
/// As `grpcpool_unary_async`; `options` is NULL or a live options object.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_unary_async_with(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    method: *const c_char,
    request: *const u8,
    request_len: usize,
    options: *const grpcpool_call_options_t,
    callback: grpcpool_unary_callback_t,
    user_data: *mut c_void,
    out_call: *mut grpcpool_call_t,
) -> grpcpool_result {
    ffi_boundary!({
        // SAFETY: per the contract.
        let options = Ok(unsafe { call_options::read(options) });
        let on_done = AsyncTarget::new(callback, user_data, out_call);
        // SAFETY: per the contract.
        unsafe { pool_unary_async(pool, target, method, request, request_len, options, on_done) }
    })
}

/// Cancels an async call. Its callback then runs exactly once with status CANCELLED (1) (for
/// `grpcpool_acquire_async`, with `GRPCPOOL_CANCELLED`). A call whose callback has already run
/// (or is running) gives `GRPCPOOL_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn grpcpool_call_cancel(call: grpcpool_call_t) -> grpcpool_result {
    ffi_boundary!({
        if registry::call(call)?.cancel.cancel() {
            Ok(())
        } else {
            Err(FfiError::stale("call"))
        }
    })
}
