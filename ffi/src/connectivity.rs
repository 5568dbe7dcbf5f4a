//! A target's connectivity from C: gRPC's five states, read now or waited on.

use std::ffi::c_char;

use grpcpool_core::Connectivity;

use crate::args::{self, millis, non_null};
use crate::call_options::GRPCPOOL_NO_TIMEOUT;
use crate::error::{ffi_boundary, grpcpool_result, FfiError};
use crate::pool::{grpcpool_pool_t, pool_ref};

/// A target's connectivity, in gRPC's states and with gRPC's numbers.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum grpcpool_connectivity {
    /// No connection and none being made: not used yet, or left the pool when idle.
    GRPCPOOL_IDLE = 0,
    /// A dial is under way and no connection takes calls yet.
    GRPCPOOL_CONNECTING = 1,
    /// At least one connection takes calls.
    GRPCPOOL_READY = 2,
    /// No connection takes calls and the last dial failed: calls that do not wait for ready
    /// fail fast with UNAVAILABLE while the pool backs off and dials again.
    GRPCPOOL_TRANSIENT_FAILURE = 3,
    /// The pool is shut down.
    GRPCPOOL_SHUTDOWN = 4,
}

impl From<Connectivity> for grpcpool_connectivity {
    fn from(state: Connectivity) -> grpcpool_connectivity {
        match state {
            Connectivity::Idle => grpcpool_connectivity::GRPCPOOL_IDLE,
            Connectivity::Connecting => grpcpool_connectivity::GRPCPOOL_CONNECTING,
            Connectivity::Ready => grpcpool_connectivity::GRPCPOOL_READY,
            Connectivity::TransientFailure => grpcpool_connectivity::GRPCPOOL_TRANSIENT_FAILURE,
            Connectivity::Shutdown => grpcpool_connectivity::GRPCPOOL_SHUTDOWN,
        }
    }
}

/// Writes `target`'s connectivity now to `*out_state`. A target the pool has not used is
/// `GRPCPOOL_IDLE`; with `try_to_connect`, an idle target joins the pool and starts connecting
/// (asking alone never dials). `GRPCPOOL_INVALID_TARGET` for a target that does not parse.
///
/// # Safety
/// `pool` is NULL or a live pool; `target` is NULL or NUL-terminated; `out_state` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_pool_connectivity(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    try_to_connect: bool,
    out_state: *mut grpcpool_connectivity,
) -> grpcpool_result {
    ffi_boundary!({
        let pool = pool_ref(pool)?;
        non_null(out_state, "out_state")?;
        // SAFETY: per this function's contract.
        let target = unsafe { args::text(target, "target")? };
        let state = pool.pool.connectivity(target, try_to_connect)?;
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out_state, state.into()) };
        Ok(())
    })
}

/// Blocks until `target`'s connectivity is other than `last` (a `grpcpool_connectivity`
/// number) or `timeout_ms` passes (`GRPCPOOL_NO_TIMEOUT`: no limit), then writes the state to
/// `*out_state` (still `last` on a timeout). Never dials; a shut-down pool answers
/// `GRPCPOOL_SHUTDOWN`. Blocking: not from a callback. `GRPCPOOL_INVALID_ARGUMENT` for a
/// `last` that is no state.
///
/// # Safety
/// As `grpcpool_pool_connectivity`.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_pool_wait_connectivity_change(
    pool: *const grpcpool_pool_t,
    target: *const c_char,
    last: u32,
    timeout_ms: u32,
    out_state: *mut grpcpool_connectivity,
) -> grpcpool_result {
    ffi_boundary!({
        let pool = pool_ref(pool)?;
        non_null(out_state, "out_state")?;
        // SAFETY: per this function's contract.
        let target = unsafe { args::text(target, "target")? };
        let last = Connectivity::from_number(last).ok_or_else(|| {
            FfiError::new(
                grpcpool_result::GRPCPOOL_INVALID_ARGUMENT,
                format!("last is {last}, not a connectivity state (0 to 4)"),
            )
        })?;
        let timeout = (timeout_ms != GRPCPOOL_NO_TIMEOUT).then(|| millis(timeout_ms));
        let state = pool
            .pool
            .block_on(pool.pool.connectivity_changed(target, last, timeout))??;
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out_state, state.into()) };
        Ok(())
    })
}
