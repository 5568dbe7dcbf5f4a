//! Callers waiting for a slot on one target, served strictly in arrival order: a freed slot is
//! handed to the oldest waiter directly, so a newcomer cannot take it first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use crate::connection::Connection;

/// The receiving end a waiter holds: a reserved slot arrives on it.
pub(crate) type Grant = oneshot::Receiver<Arc<Connection>>;

/// A FIFO of waiters plus a signal for changes that are not slots (failures, shutdown).
#[derive(Default)]
pub(crate) struct WaitQueue {
    senders: Mutex<VecDeque<oneshot::Sender<Arc<Connection>>>>,
    len: AtomicUsize,
    changed: Notify,
}

impl WaitQueue {
    /// Whether nobody waits (lock-free; a hint that `grant` settles exactly).
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::SeqCst) == 0
    }

    /// Joins the back of the queue.
    pub(crate) fn push(&self) -> Grant {
        let (sender, receiver) = oneshot::channel();
        let mut senders = self.senders.lock();
        senders.push_back(sender);
        self.len.store(senders.len(), Ordering::SeqCst);
        receiver
    }

    /// Hands a slot already reserved on `connection` to the oldest waiter still waiting.
    /// False when there is none; the caller keeps the slot.
    pub(crate) fn grant(&self, connection: &Arc<Connection>) -> bool {
        let mut senders = self.senders.lock();
        let mut granted = false;
        while let Some(sender) = senders.pop_front() {
            if sender.send(Arc::clone(connection)).is_ok() {
                granted = true;
                break;
            }
        }
        self.len.store(senders.len(), Ordering::SeqCst);
        granted
    }

    /// Drops every waiter's sender: each sees its grant fail (used when the pool closes).
    pub(crate) fn clear(&self) {
        let mut senders = self.senders.lock();
        senders.clear();
        self.len.store(0, Ordering::SeqCst);
    }

    /// Wakes every waiter to look at the target's state again (a failed dial, shutdown).
    pub(crate) fn state_changed(&self) {
        self.changed.notify_waiters();
    }

    /// Completes at the next `state_changed`.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}
