//! What a pool object shares with its leases and streams: the core pool, the closed flag, the
//! completion queue and the abort handles of cancellable operations.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use grpcpool_core::Pool;
use parking_lot::Mutex;
use tokio::task::AbortHandle;

use crate::completions::{Completion, Completions};
use crate::failure::Failure;

/// The state behind one JavaScript pool.
pub(crate) struct PoolState {
    pub(crate) pool: Pool,
    closed: AtomicBool,
    completions: Completions,
    /// Operations JavaScript may cancel (it passed an AbortSignal), by id.
    cancellable: Mutex<HashMap<u32, AbortHandle>>,
}

impl PoolState {
    pub(crate) fn new(pool: Pool, completions: Completions) -> PoolState {
        PoolState {
            pool,
            closed: AtomicBool::new(false),
            completions,
            cancellable: Mutex::new(HashMap::new()),
        }
    }

    /// Fails once `close` has been called.
    pub(crate) fn check_open(&self) -> Result<(), Failure> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Failure::closed());
        }
        Ok(())
    }

    /// Marks the pool closed; true the first time.
    pub(crate) fn mark_closed(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    /// Whether `close` has been called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Runs `work` on the pool's runtime; its completion goes to JavaScript. A `cancellable`
    /// operation can be dropped (and its HTTP/2 stream reset) by [`PoolState::cancel`], after
    /// which it completes never: JavaScript settles its promise itself.
    pub(crate) fn start<F>(
        self: &Arc<Self>,
        id: u32,
        cancellable: bool,
        work: F,
    ) -> Result<(), Failure>
    where
        F: Future<Output = Completion> + Send + 'static,
    {
        let runtime = self.pool.runtime_handle().map_err(Failure::from_error)?;
        let state = Arc::clone(self);
        if !cancellable {
            runtime.spawn(async move { state.completions.push(work.await) });
            return Ok(());
        }
        // Held while spawning, so the task's own removal cannot come before the insert.
        let mut cancellable = self.cancellable.lock();
        let task = runtime.spawn(async move {
            let completion = work.await;
            state.cancellable.lock().remove(&id);
            state.completions.push(completion);
        });
        cancellable.insert(id, task.abort_handle());
        Ok(())
    }

    /// Hands a completion made without a task (on the JavaScript thread) to the queue.
    pub(crate) fn complete(&self, completion: Completion) {
        self.completions.push(completion);
    }

    /// Drops a cancellable operation that is still running; nothing if it already ended.
    pub(crate) fn cancel(&self, id: u32) {
        if let Some(task) = self.cancellable.lock().remove(&id) {
            task.abort();
        }
    }
}
