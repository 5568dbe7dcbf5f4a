//! `grpcpool_pool_t`: make, shut down and free a pool; its stats and leak report.

use std::ffi::{c_char, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use grpcpool_core::{Config, Pool};

use crate::args::{self, millis, non_null};
use crate::completion::InFlight;
use crate::config::grpcpool_config_t;
use crate::error::{ffi_boundary, grpcpool_result, FfiError};
use crate::registry;

/// A connection pool. Every function taking it may be called from any thread at once, except
/// `grpcpool_pool_free`, which must be the last use and must not run in a callback.
#[allow(non_camel_case_types)]
pub struct grpcpool_pool_t {
    pub(crate) pool: Pool,
    pub(crate) id: u64,
    /// The pool's async operations whose callback has not run yet.
    pub(crate) in_flight: Arc<InFlight>,
}

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

/// A live pool behind a pointer from `grpcpool_pool_new`.
pub(crate) fn pool_ref<'a>(pool: *const grpcpool_pool_t) -> Result<&'a grpcpool_pool_t, FfiError> {
    non_null(pool, "pool")?;
    // SAFETY: non-NULL, and a live pool per every export's contract.
    Ok(unsafe { &*pool })
}

/// Makes a pool. `config` may be NULL for the defaults; it is copied and may be freed after.
/// On success `*out` holds the pool; free it with `grpcpool_pool_free`.
///
/// # Safety
/// `config` is NULL or a live config; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_pool_new(
    config: *const grpcpool_config_t,
    out: *mut *mut grpcpool_pool_t,
) -> grpcpool_result {
    ffi_boundary!({
        non_null(out, "out")?;
        crate::log::init_from_env();
        let config = if config.is_null() {
            Config::default()
        } else {
            // SAFETY: non-NULL, a live config per the contract.
            unsafe { &*config }.config.clone()
        };
        let pool = Pool::new(config)?;
        let pool = Box::new(grpcpool_pool_t {
            pool,
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            in_flight: Arc::default(),
        });
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out, Box::into_raw(pool)) };
        Ok(())
    })
}

/// Stops new acquires, waits up to `grace_ms` for leases and calls in use to finish, then
/// closes every connection. `*still_in_use` (if not NULL) gets the slots still in use when the
/// grace ran out. Blocking: not from a callback.
///
/// # Safety
/// `pool` is NULL or a live pool; `still_in_use` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_pool_shutdown(
    pool: *const grpcpool_pool_t,
    grace_ms: u32,
    still_in_use: *mut u64,
) -> grpcpool_result {
    ffi_boundary!({
        let pool = pool_ref(pool)?;
        let left = pool.pool.block_on(pool.pool.shutdown(millis(grace_ms)))?;
        if !still_in_use.is_null() {
            // SAFETY: non-NULL per the check, writable per the contract.
            unsafe { args::write(still_in_use, left) };
        }
        Ok(())
    })
}

/// Frees a pool. Async calls still running are cancelled and their callbacks run (with
/// CANCELLED) before this returns, however long a callback takes; streams not yet freed are
/// cancelled (the server sees it) and their pending async operations complete (recv with the
/// end, send with `GRPCPOOL_STREAM_CLOSED`, finish with CANCELLED) before this returns; leases
/// and streams still held become invalid handles. NULL is ignored.
///
/// # Safety
/// `pool` is NULL or a live pool, not used again afterwards, and this is not called from a
/// grpcpool callback.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_pool_free(pool: *mut grpcpool_pool_t) {
    if pool.is_null() {
        return;
    }
    // SAFETY: from Box::into_raw in grpcpool_pool_new, freed once per the contract.
    let pool = unsafe { Box::from_raw(pool) };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        registry::cancel_pool_work(pool.id);
        // Inside a callback the callbacks cannot be waited for: they run on this thread.
        if grpcpool_core::Pool::blocking_allowed().is_ok() {
            pool.in_flight.wait_idle();
        }
        registry::forget_pool_leases(pool.id);
        drop(pool);
    }));
}

/// The pool's statistics as a JSON object: totals and one entry per target (connections by
/// state, streams in flight, leases out, calls by status, connects, GOAWAYs, reconnects, leaks,
/// acquire-wait percentiles). Free `*out_json` with `grpcpool_string_free`.
///
/// # Safety
/// `pool` is NULL or a live pool; `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_pool_stats_json(
    pool: *const grpcpool_pool_t,
    out_json: *mut *mut c_char,
) -> grpcpool_result {
    ffi_boundary!({
        let pool = pool_ref(pool)?;
        non_null(out_json, "out_json")?;
        let json = serde_json::to_string(&pool.pool.stats()).map_err(|error| {
            FfiError::new(grpcpool_result::GRPCPOOL_INTERNAL, error.to_string())
        })?;
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out_json, c_string(json)) };
        Ok(())
    })
}

/// The pool's metrics in the Prometheus text exposition format: gRPC's OpenTelemetry client
/// metrics (A66: `grpc_client_attempt_started_total`, `grpc_client_attempt_duration_seconds`,
/// `grpc_client_call_duration_seconds` by `grpc_method`, `grpc_target`, `grpc_status`) and the
/// pool's own `grpcpool_*`. Free `*out_text` with `grpcpool_string_free`.
///
/// # Safety
/// `pool` is NULL or a live pool; `out_text` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_pool_metrics_text(
    pool: *const grpcpool_pool_t,
    out_text: *mut *mut c_char,
) -> grpcpool_result {
    ffi_boundary!({
        let pool = pool_ref(pool)?;
        non_null(out_text, "out_text")?;
        let text = pool.pool.metrics_text();
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out_text, c_string(text)) };
        Ok(())
    })
}

/// Sets the endpoints of `static:///name` targets: each `host:port` (an IP literal,
/// `[v6]:port` or a name resolved as DNS targets are) or `unix:/path`. Every target naming
/// `name` follows at once: connections to new addresses open before those to removed ones
/// drain, so calls in flight finish; with `count` 0, calls that are not wait-for-ready fail
/// fast with UNAVAILABLE. May be called before any call. `GRPCPOOL_INVALID_TARGET` names a
/// bad name or endpoint.
///
/// # Safety
/// `pool` is NULL or a live pool; `name` is NULL or a NUL-terminated string; `endpoints` is
/// NULL with `count` 0, or points to `count` NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_pool_set_endpoints(
    pool: *const grpcpool_pool_t,
    name: *const c_char,
    endpoints: *const *const c_char,
    count: usize,
) -> grpcpool_result {
    ffi_boundary!({
        let pool = pool_ref(pool)?;
        // SAFETY: per this function's contract.
        let name = unsafe { args::text(name, "name")? };
        // SAFETY: per this function's contract.
        let endpoints = unsafe { args::texts(endpoints, count, "endpoints")? };
        pool.pool.set_endpoints(name, &endpoints)?;
        Ok(())
    })
}

/// `grpcpool_pool_set_endpoints` with a weight (1 or more) for each endpoint: under
/// round_robin an endpoint's addresses get that many turns per round; other policies ignore
/// weights. A weight of 0 is `GRPCPOOL_INVALID_TARGET`.
///
/// # Safety
/// As `grpcpool_pool_set_endpoints`; `weights` is NULL with `count` 0, or points to `count`
/// weights.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_pool_set_weighted_endpoints(
    pool: *const grpcpool_pool_t,
    name: *const c_char,
    endpoints: *const *const c_char,
    weights: *const u32,
    count: usize,
) -> grpcpool_result {
    ffi_boundary!({
        let pool = pool_ref(pool)?;
        // SAFETY: per this function's contract.
        let name = unsafe { args::text(name, "name")? };
        // SAFETY: per this function's contract.
        let endpoints = unsafe { args::texts(endpoints, count, "endpoints")? };
        let weights: &[u32] = if count == 0 {
            &[]
        } else {
            non_null(weights, "weights")?;
            // SAFETY: non-NULL, `count` weights per this function's contract.
            unsafe { std::slice::from_raw_parts(weights, count) }
        };
        let weighted: Vec<(&str, u32)> =
            endpoints.into_iter().zip(weights.iter().copied()).collect();
        pool.pool.set_weighted_endpoints(name, &weighted)?;
        Ok(())
    })
}

/// Leases held past the leak threshold now, as a JSON array of `{"target", "site",
/// "held_ms"}`. Free `*out_json` with `grpcpool_string_free`.
///
/// # Safety
/// `pool` is NULL or a live pool; `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_pool_leaks_json(
    pool: *const grpcpool_pool_t,
    out_json: *mut *mut c_char,
) -> grpcpool_result {
    ffi_boundary!({
        let pool = pool_ref(pool)?;
        non_null(out_json, "out_json")?;
        let leaks: Vec<serde_json::Value> = pool
            .pool
            .leaked_leases()
            .into_iter()
            .map(|leak| {
                serde_json::json!({
                    "target": leak.target,
                    "site": leak.site,
                    "held_ms": leak.held_for.as_millis() as u64,
                })
            })
            .collect();
        let json = serde_json::Value::Array(leaks).to_string();
        // SAFETY: checked non-NULL above.
        unsafe { args::write(out_json, c_string(json)) };
        Ok(())
    })
}

/// A string for C, freed with `grpcpool_string_free`; a NUL inside becomes a space.
pub(crate) fn c_string(text: String) -> *mut c_char {
    CString::new(text.replace('\0', " "))
        .unwrap_or_default()
        .into_raw()
}

/// Frees a string the library returned. NULL is ignored.
///
/// # Safety
/// `text` is NULL or a string from this library, not used again.
#[no_mangle]
pub unsafe extern "C" fn grpcpool_string_free(text: *mut c_char) {
    if !text.is_null() {
        // SAFETY: from CString::into_raw in `c_string`, freed once per the contract.
        drop(unsafe { CString::from_raw(text) });
    }
}
