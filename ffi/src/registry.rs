//! Every live handle the C side holds, in three generation-checked tables (leases, async
//! calls, streams), and what freeing a pool does to them. The other modules reach the tables
//! only through these functions.

use std::sync::Arc;

use grpcpool_core::{Lease, Pool, SharedStream};

use crate::completion::{CallCancel, InFlight};
use crate::error::FfiError;
use crate::handles::{kind, HandleTable};

/// A lease handle's entry.
#[derive(Clone)]
pub(crate) struct LeaseEntry {
    pub(crate) pool_id: u64,
    pub(crate) pool: Pool,
    pub(crate) lease: Arc<Lease>,
    pub(crate) in_flight: Arc<InFlight>,
}

/// An async call handle's entry: what `grpcpool_call_cancel` needs.
#[derive(Clone)]
pub(crate) struct CallEntry {
    pub(crate) pool_id: u64,
    pub(crate) cancel: Arc<CallCancel>,
}

/// A stream handle's entry.
#[derive(Clone)]
pub(crate) struct StreamEntry {
    pub(crate) pool_id: u64,
    pub(crate) pool: Pool,
    pub(crate) stream: SharedStream,
    pub(crate) in_flight: Arc<InFlight>,
}

static LEASES: HandleTable<LeaseEntry> = HandleTable::new(kind::LEASE);
static CALLS: HandleTable<CallEntry> = HandleTable::new(kind::CALL);
static STREAMS: HandleTable<StreamEntry> = HandleTable::new(kind::STREAM);

/// Stores a lease and returns its handle.
pub(crate) fn insert_lease(entry: LeaseEntry) -> Result<u64, FfiError> {
    LEASES
        .insert(entry)
        .ok_or_else(|| FfiError::table_full("lease"))
}

/// The lease behind a live handle.
pub(crate) fn lease(handle: u64) -> Result<LeaseEntry, FfiError> {
    LEASES.get(handle).ok_or_else(|| FfiError::stale("lease"))
}

/// Takes a lease out of the table: its handle dies, and its slot returns once nothing else
/// (a call or stream still running) holds it.
pub(crate) fn remove_lease(handle: u64) -> Result<LeaseEntry, FfiError> {
    LEASES
        .remove(handle)
        .ok_or_else(|| FfiError::stale("lease"))
}

/// Stores an async call and returns its handle.
pub(crate) fn insert_call(entry: CallEntry) -> Result<u64, FfiError> {
    CALLS
        .insert(entry)
        .ok_or_else(|| FfiError::table_full("call"))
}

/// The async call behind a live handle.
pub(crate) fn call(handle: u64) -> Result<CallEntry, FfiError> {
    CALLS.get(handle).ok_or_else(|| FfiError::stale("call"))
}

/// Forgets a call whose callback is about to run.
pub(crate) fn remove_call(handle: u64) {
    drop(CALLS.remove(handle));
}

/// Stores a stream and returns its handle.
pub(crate) fn insert_stream(entry: StreamEntry) -> Result<u64, FfiError> {
    STREAMS
        .insert(entry)
        .ok_or_else(|| FfiError::table_full("stream"))
}

/// The stream behind a live handle.
pub(crate) fn stream(handle: u64) -> Result<StreamEntry, FfiError> {
    STREAMS.get(handle).ok_or_else(|| FfiError::stale("stream"))
}

/// Takes a stream out of the table: its handle dies.
pub(crate) fn remove_stream(handle: u64) -> Result<StreamEntry, FfiError> {
    STREAMS
        .remove(handle)
        .ok_or_else(|| FfiError::stale("stream"))
}

/// A pool is being freed: its async calls and streams are cancelled (their callbacks then run
/// with the cancellation) and their handles die.
pub(crate) fn cancel_pool_work(pool_id: u64) {
    for entry in CALLS.remove_where(|entry| entry.pool_id == pool_id) {
        entry.cancel.cancel();
    }
    for entry in STREAMS.remove_where(|entry| entry.pool_id == pool_id) {
        entry.stream.cancel();
    }
}

/// A pool is being freed: its lease handles die and their slots return.
pub(crate) fn forget_pool_leases(pool_id: u64) {
    drop(LEASES.remove_where(|entry| entry.pool_id == pool_id));
}
