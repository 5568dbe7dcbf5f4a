//! Lease handles: acquire and release from C.

use std::ffi::c_char;
use std::sync::Arc;

use grpcpool_core::AcquireOptions;

use crate::args::{self, millis, non_null};
use crate::error::{ffi_boundary, grpcpool_result};
use crate::pool::{c_string, grpcpool_pool_t, pool_ref};
use crate::registry::{self, LeaseEntry};

/// A lease: a slot on one pooled connection. A generation-checked handle, never a pointer;
/// releasing it twice, after its pool is freed, or forging one gives `GRPCPOOL_INVALID_HANDLE`.
#[allow(non_camel_case_types)]
pub type grpcpool_lease_t = u64;

fn acquire(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    timeout_ms: u32,
    site: Option<&str>,
    out: *mut grpcpool_lease_t,
) -> grpcpool_result {
    ffi_boundary!({
        let pool = pool_ref(pool)?;
        non_null(out, "out")?;
        // SAFETY: NUL-terminated per the contract of the exported callers.
        let target = unsafe { args::text(target, "target")? };
        let site = site.map_or_else(
            || format!("grpcpool_acquire({target}) from C"),
            str::to_owned,
        );
        let mut options = AcquireOptions::with_timeout(millis(timeout_ms));
        options.site = Some(site.into());
        let lease = pool
            .pool
            .block_on(pool.pool.acquire_with(target, options))??;
        let handle = registry::insert_lease(LeaseEntry {
            pool_id: pool.id,
            pool: pool.pool.clone(),
            lease: Arc::new(lease),
            in_flight: Arc::clone(&pool.in_flight),
        })?;
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out, handle) };
        Ok(())
    })
}

/// Acquires a lease on `target`, waiting up to `timeout_ms` for a slot. Blocking: not from a
/// callback. Fails with `GRPCPOOL_UNAVAILABLE` at once when the target cannot be reached and
/// with `GRPCPOOL_ACQUIRE_TIMEOUT` when no slot frees in time. `*out` is written on success only.
///
/// # Safety
/// `pool` is NULL or a live pool; `target` is NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_acquire(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    timeout_ms: u32,
    out: *mut grpcpool_lease_t,
) -> grpcpool_result {
    acquire(pool, target, timeout_ms, None, out)
}

/// `grpcpool_acquire` that records `site` (such as `__FILE__ ":" __LINE__`; the
/// `GRPCPOOL_ACQUIRE` macro passes it) as where the lease was taken, for leak reports.
///
/// # Safety
/// As `grpcpool_acquire`; `site` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_acquire_at(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    timeout_ms: u32,
    site: *const c_char,
    out: *mut grpcpool_lease_t,
) -> grpcpool_result {
    let site = if site.is_null() {
        None
    } else {
        // SAFETY: non-NULL and NUL-terminated per the contract.
        unsafe { args::text(site, "site").ok() }
    };
    acquire(pool, target, timeout_ms, site, out)
}

/// Releases a lease: its slot returns to the pool (after calls and a stream still running on
/// it end). A handle already released, from a freed pool, or never issued gives
/// `GRPCPOOL_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn grpcpool_release(lease: grpcpool_lease_t) -> grpcpool_result {
    ffi_boundary!({ registry::remove_lease(lease).map(drop) })
}

/// The address of the lease's connection (`127.0.0.1:50051`, `unix:/path`): which backend a
/// balancing policy picked. Free `*out_address` with `grpcpool_string_free`.
///
/// # Safety
/// `out_address` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_lease_address(
    lease: grpcpool_lease_t,
    out_address: *mut *mut c_char,
) -> grpcpool_result {
    ffi_boundary!({
        non_null(out_address, "out_address")?;
        let entry = registry::lease(lease)?;
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out_address, c_string(entry.lease.address())) };
        Ok(())
    })
}
