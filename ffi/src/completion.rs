//! How an async C operation ends: its callback runs exactly once, whatever happens to the task
//! (it finishes, is cancelled, panics, or the runtime drops it), and the pool's count of
//! operations in flight, which `grpcpool_pool_free` waits for, goes down with it.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

/// The C pointer that travels with an async operation; only handed back to the caller's
/// callback.
pub(crate) struct UserData(pub(crate) *mut c_void);

// SAFETY: the library never dereferences it; passing it to the callback on another thread is
// what the caller asked for by starting an async operation.
#[allow(unsafe_code)]
unsafe impl Send for UserData {}

/// Counts a pool's async operations whose callback has not run yet. Face-only: it exists for
/// the C ABI's promise that `grpcpool_pool_free` returns only after every C callback ran.
#[derive(Default)]
pub(crate) struct InFlight {
    count: Mutex<usize>,
    changed: Condvar,
}

impl InFlight {
    fn enter(&self) {
        *self.count.lock() += 1;
    }

    fn leave(&self) {
        let mut count = self.count.lock();
        *count = count.saturating_sub(1);
        self.changed.notify_all();
    }

    /// How many have not run yet.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        *self.count.lock()
    }

    /// Waits until every callback has run.
    pub(crate) fn wait_idle(&self) {
        let mut count = self.count.lock();
        while *count > 0 {
            self.changed.wait(&mut count);
        }
    }
}

/// Delivers an async operation's outcome to its C callback exactly once: with the outcome, or,
/// should it be dropped unfinished (a panic, the runtime stopping), with `None`. Counts the
/// operation in its pool's in-flight work from creation until the callback has returned.
pub(crate) struct Completion<T> {
    deliver: Option<Box<dyn FnOnce(Option<T>) + Send>>,
    in_flight: Arc<InFlight>,
}

impl<T> Completion<T> {
    pub(crate) fn new(
        in_flight: &Arc<InFlight>,
        deliver: impl FnOnce(Option<T>) + Send + 'static,
    ) -> Self {
        in_flight.enter();
        Completion {
            deliver: Some(Box::new(deliver)),
            in_flight: Arc::clone(in_flight),
        }
    }

    pub(crate) fn complete(mut self, outcome: T) {
        if let Some(deliver) = self.deliver.take() {
            deliver(Some(outcome));
        }
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        if let Some(deliver) = self.deliver.take() {
            deliver(None);
        }
        self.in_flight.leave();
    }
}

const RUNNING: u8 = 0;
const FINISHED: u8 = 1;
const CANCELLED: u8 = 2;

/// Whether an async call finished or was cancelled: whichever comes first wins, once.
/// Face-only: it decides the C ABI's answer to `grpcpool_call_cancel` (OK exactly when the
/// callback will see CANCELLED), which an abort of the task could not tell.
#[derive(Default)]
pub(crate) struct CallCancel {
    state: AtomicU8,
    notify: Notify,
}

impl CallCancel {
    /// Cancels a running call and wakes it; `false` when it already finished or was cancelled.
    pub(crate) fn cancel(&self) -> bool {
        let won = self
            .state
            .compare_exchange(RUNNING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            self.notify.notify_one();
        }
        won
    }

    /// Marks the call finished; `false` when a cancel came first.
    pub(crate) fn finish(&self) -> bool {
        self.state
            .compare_exchange(RUNNING, FINISHED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Resolves once cancelled.
    pub(crate) async fn cancelled(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_delivers_once_whether_completed_or_dropped() {
        let in_flight = Arc::new(InFlight::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = |seen: &Arc<Mutex<Vec<Option<u32>>>>| {
            let seen = Arc::clone(seen);
            move |outcome: Option<u32>| seen.lock().push(outcome)
        };
        let completed = Completion::new(&in_flight, record(&seen));
        let dropped = Completion::new(&in_flight, record(&seen));
        assert_eq!(in_flight.pending(), 2);
        completed.complete(7);
        assert_eq!(in_flight.pending(), 1);
        drop(dropped);
        assert_eq!(in_flight.pending(), 0);
        assert_eq!(*seen.lock(), vec![Some(7), None]);
    }

    #[test]
    fn a_panic_in_the_task_still_delivers_once() {
        let in_flight = Arc::new(InFlight::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = Arc::clone(&seen);
        let completion = Completion::new(&in_flight, move |outcome: Option<u32>| {
            recorder.lock().push(outcome)
        });
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _completion = completion;
            panic!("a bug between the start and the end of a call");
        }));
        assert!(panicked.is_err());
        assert_eq!(in_flight.pending(), 0, "pool_free would not wait forever");
        assert_eq!(*seen.lock(), vec![None]);
    }

    #[test]
    fn cancel_and_finish_race_once() {
        let cancel = CallCancel::default();
        assert!(cancel.cancel());
        assert!(!cancel.finish());
        assert!(!cancel.cancel());
        let finished = CallCancel::default();
        assert!(finished.finish());
        assert!(!finished.cancel());
    }
}
