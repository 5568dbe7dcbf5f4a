//! Acquiring a lease without blocking, for hosts with an event loop of their own (asio,
//! libuv): the callback gets the lease, or why there is none, exactly once; the operation is
//! cancelled through `grpcpool_call_cancel`, like an async call.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use grpcpool_core::AcquireOptions;

use crate::args::{self, millis};
use crate::calls::grpcpool_call_t;
use crate::completion::{CallCancel, Completion, UserData};
use crate::error::{self, ffi_boundary, grpcpool_result, FfiError};
use crate::leases::grpcpool_lease_t;
use crate::pool::{grpcpool_pool_t, pool_ref};
use crate::registry::{self, CallEntry, LeaseEntry};

/// Receives the outcome of `grpcpool_acquire_async`, exactly once, on a grpcpool worker
/// thread (or, when the pool is freed first, on the thread freeing it).
///
/// On `GRPCPOOL_OK`, `lease` is a live lease that now belongs to the callback's owner: release
/// it with `grpcpool_release`. Otherwise `lease` is 0 and `result` says why:
/// `GRPCPOOL_ACQUIRE_TIMEOUT`, `GRPCPOOL_UNAVAILABLE` (the target cannot be reached),
/// `GRPCPOOL_POOL_CLOSED` (the pool was shut down), `GRPCPOOL_CANCELLED` (`grpcpool_call_cancel`,
/// or the pool was freed); during the callback `grpcpool_last_error()` describes it.
/// `user_data` is the pointer given to `grpcpool_acquire_async`. The callback must return
/// quickly and must not call blocking grpcpool functions; it may start async calls on the
/// lease, and release it.
#[allow(non_camel_case_types)]
pub type grpcpool_acquire_callback_t = Option<
    unsafe extern "C" fn(user_data: *mut c_void, result: grpcpool_result, lease: grpcpool_lease_t),
>;

/// Acquires a lease on `target` without blocking, waiting up to `timeout_ms` for a slot, as
/// `grpcpool_acquire` does. The pool and target are checked now: on an error result nothing
/// started and the callback will not run. On `GRPCPOOL_OK` the callback runs exactly once, and
/// `*out_call` (if not NULL) holds a handle for `grpcpool_call_cancel`: a cancel before the
/// lease is handed over makes the callback run with `GRPCPOOL_CANCELLED`, and a slot found
/// meanwhile goes back to the pool. A shutdown (`grpcpool_pool_shutdown`) ends the wait with
/// `GRPCPOOL_POOL_CLOSED`; `grpcpool_pool_free` with `GRPCPOOL_CANCELLED`, before it returns.
///
/// # Safety
/// `pool` is NULL or live; `target` is NULL or NUL-terminated; `callback` is a valid function;
/// `out_call` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_acquire_async(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    timeout_ms: u32,
    callback: grpcpool_acquire_callback_t,
    user_data: *mut c_void,
    out_call: *mut grpcpool_call_t,
) -> grpcpool_result {
    ffi_boundary!({
        let pool = pool_ref(pool)?;
        let callback = callback.ok_or_else(|| FfiError::null("callback"))?;
        // SAFETY: NUL-terminated per the contract.
        let target = unsafe { args::text(target, "target")? };
        let mut options = AcquireOptions::with_timeout(millis(timeout_ms));
        options.site = Some(format!("grpcpool_acquire_async({target}) from C").into());
        let acquiring = pool.pool.start_acquire(target, options)?;
        let runtime = pool.pool.runtime_handle()?;
        let cancel = Arc::new(CallCancel::default());
        let handle = registry::insert_call(CallEntry {
            pool_id: pool.id,
            cancel: Arc::clone(&cancel),
        })?;
        if !out_call.is_null() {
            // SAFETY: non-NULL and writable per the contract; written before it can finish.
            unsafe { args::write(out_call, handle) };
        }
        let user_data = UserData(user_data);
        let completion = Completion::new(&pool.in_flight, move |outcome| {
            let user_data = user_data;
            registry::remove_call(handle);
            let (result, lease) = match outcome {
                Some(Ok(lease)) => (grpcpool_result::GRPCPOOL_OK, lease),
                Some(Err(failure)) => (error::fail(failure), 0),
                None => (error::fail(cancelled()), 0),
            };
            // SAFETY: the caller supplied a valid function pointer for exactly this use.
            unsafe { callback(user_data.0, result, lease) };
        });
        let (pool_id, core_pool, in_flight) =
            (pool.id, pool.pool.clone(), Arc::clone(&pool.in_flight));
        drop(runtime.spawn(async move {
            let outcome = tokio::select! {
                acquired = acquiring => Some(acquired),
                () = cancel.cancelled() => None,
            };
            let delivered = match outcome {
                Some(Ok(lease)) if cancel.finish() => registry::insert_lease(LeaseEntry {
                    pool_id,
                    pool: core_pool,
                    lease: Arc::new(lease),
                    in_flight,
                }),
                Some(Err(error)) if cancel.finish() => Err(FfiError::from(error)),
                // Cancelled first: a lease found meanwhile is dropped here, so its slot returns.
                _ => Err(cancelled()),
            };
            completion.complete(delivered);
        }));
        Ok(())
    })
}

fn cancelled() -> FfiError {
    FfiError::new(
        grpcpool_result::GRPCPOOL_CANCELLED,
        "the acquire was cancelled before a lease was handed over",
    )
}
