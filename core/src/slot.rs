//! A lease's slot: one reserved stream slot on one connection of a target, which a call may
//! move to another connection when its own died before the request left.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::connection::Connection;
use crate::target_pool::TargetPool;

/// The slot a lease holds; `None` only while a retry looks for a new one (or found none).
pub(crate) struct Slot {
    pool: Arc<TargetPool>,
    connection: Mutex<Option<Arc<Connection>>>,
}

impl Slot {
    pub(crate) fn new(pool: Arc<TargetPool>, connection: Arc<Connection>) -> Slot {
        Slot {
            pool,
            connection: Mutex::new(Some(connection)),
        }
    }

    pub(crate) fn pool(&self) -> &Arc<TargetPool> {
        &self.pool
    }

    /// The connection the slot is on now.
    pub(crate) fn connection(&self) -> Option<Arc<Connection>> {
        self.connection.lock().clone()
    }

    /// Returns the slot to the pool; it holds none until `take`.
    pub(crate) fn give_back(&self) {
        let previous = self.connection.lock().take();
        if let Some(previous) = previous {
            self.pool.release(&previous);
        }
    }

    /// Holds a slot reserved on `connection`, returning any slot held before.
    pub(crate) fn take(&self, connection: Arc<Connection>) {
        let previous = self.connection.lock().replace(connection);
        if let Some(previous) = previous {
            self.pool.release(&previous);
        }
    }
}
