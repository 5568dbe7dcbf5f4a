//! Shared bookkeeping of a server: counters, open connections and their tasks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tracing::debug;

use crate::service::CallCounters;

/// Counters and connection tasks of one [`TestServer`](crate::TestServer).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    accepted: AtomicU64,
    open: AtomicU64,
    calls: Arc<AtomicU64>,
    cancelled: Arc<AtomicU64>,
    per_connection: Mutex<Vec<Arc<AtomicU64>>>,
    tasks: Mutex<Vec<AbortHandle>>,
    closed: Notify,
}

impl Registry {
    /// Records a newly accepted connection. The returned guard marks it closed
    /// when dropped (also when its task is aborted).
    pub(crate) fn connection_opened(self: &Arc<Self>) -> (ConnectionGuard, CallCounters) {
        let id = self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::AcqRel);
        let connection = Arc::new(AtomicU64::new(0));
        self.per_connection.lock().push(Arc::clone(&connection));
        let guard = ConnectionGuard {
            registry: Arc::clone(self),
            id,
        };
        let counters = CallCounters {
            total: Arc::clone(&self.calls),
            connection,
            cancelled: Arc::clone(&self.cancelled),
        };
        (guard, counters)
    }

    /// Keeps the abort handle of a connection task, forgetting finished ones.
    pub(crate) fn track(&self, task: AbortHandle) {
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Aborts every connection task: their sockets close without a GOAWAY.
    pub(crate) fn abort_all(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            task.abort();
        }
    }

    /// Waits until no accepted connection is open any more.
    pub(crate) async fn wait_all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }

    /// Connections accepted since start.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections currently open.
    pub(crate) fn open(&self) -> u64 {
        self.open.load(Ordering::Acquire)
    }

    /// Calls that reached the handler.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub(crate) fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Calls handled on each connection, in accept order.
    pub(crate) fn calls_per_connection(&self) -> Vec<u64> {
        self.per_connection
            .lock()
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

/// Marks a connection closed when dropped.
#[derive(Debug)]
pub(crate) struct ConnectionGuard {
    registry: Arc<Registry>,
    id: u64,
}

impl ConnectionGuard {
    /// The connection's number, in accept order from 0.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.registry.open.fetch_sub(1, Ordering::AcqRel);
        self.registry.closed.notify_waiters();
        debug!(connection = self.id, "test server connection closed");
    }
}
