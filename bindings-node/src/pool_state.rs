//! What a pool object shares with its leases and streams: the core pool (whose closed flag is
//! the only one), the completion queue and the abort handles of cancellable operations.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use grpcpool_core::Pool;
use parking_lot::Mutex;
use tokio::task::AbortHandle;

use crate::completions::{Completion, Completions};
use crate::failure::Failure;

/// The state behind one JavaScript pool.
pub(crate) struct PoolState {
    pub(crate) pool: Pool,
    completions: Completions,
    /// Operations JavaScript may cancel (it passed an AbortSignal), by id.
    cancellable: Mutex<HashMap<u32, AbortHandle>>,
}

impl PoolState {
    pub(crate) fn new(pool: Pool, completions: Completions) -> PoolState {
        PoolState {
            pool,
            completions,
            cancellable: Mutex::new(HashMap::new()),
        }
    }

    /// Fails once the pool is closed: the handle check made before any work starts, so that
    /// a call on a closed pool fails at once with the same error wherever it is made.
    pub(crate) fn check_open(&self) -> Result<(), Failure> {
        if self.pool.is_closed() {
            return Err(Failure::closed());
        }
        Ok(())
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
        let state = Arc::clone(self);
        if !cancellable {
            let push = move |completion| state.completions.push(completion);
            self.pool
                .spawn_then(work, push)
                .map_err(Failure::from_error)?;
            return Ok(());
        }
        // Held while spawning, so the task's own removal cannot come before the insert.
        let mut cancellable = self.cancellable.lock();
        let push = move |completion| {
            state.cancellable.lock().remove(&id);
            state.completions.push(completion);
        };
        let task = self
            .pool
            .spawn_then(work, push)
            .map_err(Failure::from_error)?;
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
