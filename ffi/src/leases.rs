//! Lease handles: acquire and release from C.

use std::ffi::c_char;
use std::sync::Arc;

use grpcpool_core::{AcquireOptions, Lease};

use crate::args::{self, millis, non_null};
use crate::calls;
use crate::error::{ffi_boundary, grpcpool_result, FfiError};
use crate::handles::{kind, HandleTable, Removal};
use crate::pool::{grpcpool_pool_t, pool_ref, InFlight};

/// A lease: a slot on one pooled connection. A generation-checked handle, never a pointer;
/// releasing it twice, after its pool is freed, or forging one gives `GRPCPOOL_INVALID_HANDLE`.
#[allow(non_camel_case_types)]
pub type grpcpool_lease_t = u64;

#[derive(Clone)]
pub(crate) struct LeaseEntry {
    pub(crate) pool_id: u64,
    pub(crate) pool: grpcpool_core::Pool,
    pub(crate) lease: Arc<Lease>,
    pub(crate) async_calls: Arc<InFlight>,
}

static LEASES: HandleTable<LeaseEntry> = HandleTable::new(kind::LEASE);

/// The lease behind a live handle.
pub(crate) fn lookup(lease: grpcpool_lease_t) -> Result<LeaseEntry, FfiError> {
    LEASES.get(lease).ok_or_else(|| FfiError::stale("lease"))
}

/// A lease taken out of the table, with what its entry knew.
pub(crate) struct TakenLease {
    pub(crate) pool_id: u64,
    pub(crate) lease: Lease,
    pub(crate) async_calls: Arc<InFlight>,
}

/// Takes a lease out of the table for a stream to own: the handle dies. Refused with
/// `GRPCPOOL_BUSY` (the handle stays live) while anything else uses the lease: a call started
/// on it, still running. The caller must not hold a looked-up entry of it.
pub(crate) fn take_for_stream(lease: grpcpool_lease_t) -> Result<TakenLease, FfiError> {
    // The check runs under the table's lock, and entries are only cloned under it, so a count
    // of one means nothing else holds the lease.
    match LEASES.remove_if(lease, |entry| Arc::strong_count(&entry.lease) == 1) {
        Removal::Taken(LeaseEntry {
            pool_id,
            lease,
            async_calls,
            ..
        }) => {
            let lease = Arc::try_unwrap(lease).map_err(|_| {
                FfiError::new(
                    grpcpool_result::GRPCPOOL_INTERNAL,
                    "the lease was still shared when it left the table",
                )
            })?;
            Ok(TakenLease {
                pool_id,
                lease,
                async_calls,
            })
        }
        Removal::Refused => Err(FfiError::new(
            grpcpool_result::GRPCPOOL_BUSY,
            "the lease has calls in flight; open the stream once they are done",
        )),
        Removal::Stale => Err(FfiError::stale("lease")),
    }
}

/// Invalidates every lease of a pool that is being freed; their slots return.
pub(crate) fn forget_all(pool_id: u64) {
    drop(LEASES.remove_where(|entry| entry.pool_id == pool_id));
}

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
        let lease = calls::block_on(&pool.pool, pool.pool.acquire_with(target, options))??;
        let handle = LEASES
            .insert(LeaseEntry {
                pool_id: pool.id,
                pool: pool.pool.clone(),
                lease: Arc::new(lease),
                async_calls: Arc::clone(&pool.async_calls),
            })
            .ok_or_else(|| FfiError::table_full("lease"))?;
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

/// Releases a lease: its slot returns to the pool (after calls still running on it end).
/// A handle already released, from a freed pool, or never issued gives `GRPCPOOL_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn grpcpool_release(lease: grpcpool_lease_t) -> grpcpool_result {
    ffi_boundary!({
        LEASES
            .remove(lease)
            .map(drop)
            .ok_or_else(|| FfiError::stale("lease"))
    })
}
