//! The pool's completion queue: finished operations wait here for the JavaScript thread, which
//! one threadsafe function per pool wakes to settle them in a batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{Buffer, Function};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use parking_lot::Mutex;

use crate::convert::{CallResult, MetadataEntry};
use crate::failure::Failure;
use crate::lease::NativeLease;
use crate::stream::NativeStream;

/// One finished operation, for the promise JavaScript keeps under `id`. At most one of the
/// value fields is set; none means the operation succeeded with no value.
#[napi(object, object_from_js = false)]
pub struct Completion {
    /// The id JavaScript gave when it started the operation.
    pub id: u32,
    /// Set when the operation failed.
    pub failure: Option<Failure>,
    /// A unary response body, or a stream's next message.
    pub body: Option<Buffer>,
    /// A whole call outcome (a unary call's full response, or a stream's final status).
    pub result: Option<CallResult>,
    /// An acquired lease.
    pub lease: Option<NativeLease>,
    /// An opened stream.
    pub stream: Option<NativeStream>,
    /// Response headers.
    pub metadata: Option<Vec<MetadataEntry>>,
    /// A count (slots still in use when `close` gave up), or a connectivity state number.
    pub count: Option<f64>,
}

impl Completion {
    /// A completion with no value.
    pub(crate) fn done(id: u32) -> Completion {
        Completion {
            id,
            failure: None,
            body: None,
            result: None,
            lease: None,
            stream: None,
            metadata: None,
            count: None,
        }
    }

    /// A failed operation.
    pub(crate) fn failed(id: u32, failure: Failure) -> Completion {
        Completion {
            failure: Some(failure),
            ..Completion::done(id)
        }
    }
}

/// The batch handed to JavaScript, and the flag that says a wake-up is on its way.
#[derive(Default)]
struct Queue {
    items: Mutex<Vec<Completion>>,
    wake_pending: AtomicBool,
}

/// What the JavaScript callback receives: every completion since the last wake-up.
type Wake = ThreadsafeFunction<(), (), Vec<Completion>, Status, false, true>;

/// Where tasks on the runtime leave their results. Cheap to share (`Arc`).
pub(crate) struct Completions {
    queue: Arc<Queue>,
    /// Weak: it never keeps the event loop alive by itself (JavaScript holds the loop open
    /// while it waits for operations).
    wake: Wake,
}

impl Completions {
    /// Completions delivered to `settle`, a JavaScript function taking an array of them.
    pub(crate) fn new(settle: Function<'_, Vec<Completion>, ()>) -> napi::Result<Completions> {
        let queue = Arc::new(Queue::default());
        let drained = Arc::clone(&queue);
        let wake = settle
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(move |_| {
                // Clear the flag first: a completion pushed from here on wakes again.
                drained.wake_pending.store(false, Ordering::Release);
                Ok(std::mem::take(&mut *drained.items.lock()))
            })?;
        Ok(Completions { queue, wake })
    }

    /// Queues a completion and wakes the JavaScript thread unless a wake-up is already pending.
    pub(crate) fn push(&self, completion: Completion) {
        self.queue.items.lock().push(completion);
        if !self.queue.wake_pending.swap(true, Ordering::AcqRel) {
            // Fails only while the environment shuts down; nobody waits for the result then.
            let _ = self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}
