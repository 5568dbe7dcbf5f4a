//! Futures that callers outside the pool's runtime start on it: blocking calls, where the
//! caller's thread waits, and async calls of the faces, which hand the outcome to a completion.
//!
//! A blocking call's future runs as a task on a worker, beside the connection it uses, and the
//! caller sleeps until the task's one wake at the end, batched with the wakes of the other
//! calls that ended in the same round of the worker's work (batched_wakes.rs). Polling it on
//! the caller's thread instead (tokio's `Handle::block_on` of the call itself) moved every step
//! of the call across threads: the caller woke the connection's worker to send, the worker
//! woke the caller for the response head, its body and its trailers, and both took h2's
//! connection lock. That cost about 14 context switches per call at concurrency 1 against 3
//! for the task (docs/blocking-calls.md).
//!
//! Either way the future goes in a box of its own: the task then holds a pointer, so tokio
//! moves a few bytes, not a call's state of some 3.5 KB, when it stores the task and when it
//! overwrites it with the output (about 3,000 instructions a call, 4% of a blocking call's);
//! and a block awaiting a captured future would hold that state twice.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::batched_wakes::{Lane, TaskLane};
use super::Pool;
use crate::Error;

/// A future started on the pool's runtime that a thread outside it waits for; made by
/// [`Pool::start_blocking`]. Dropping it lets the future run on, unwatched.
#[must_use = "a started future runs on unwatched unless it is waited for or aborted"]
pub struct BlockingTask<T> {
    kind: Kind<T>,
}

/// How the caller learns that the task ended.
enum Kind<T> {
    /// Woken with the other callers whose calls ended in the same batch (batched_wakes.rs).
    Batched {
        task: JoinHandle<()>,
        completion: Arc<Completion<T>>,
        lane: Lane,
    },
    /// Woken by the task's JoinHandle: where no lane was free, or futexes are not available.
    Joined {
        task: JoinHandle<T>,
        runtime: Handle,
    },
}

/// Where a batched task leaves its outcome for the caller.
struct Completion<T> {
    done: AtomicBool,
    /// `None` once done: the future was dropped unfinished (aborted, or the runtime stopped).
    outcome: Mutex<Option<std::thread::Result<T>>>,
}

impl<T> BlockingTask<T> {
    /// Blocks this thread until the future completes. [`Error::PoolClosed`] when the pool's
    /// runtime stopped first (the pool closed); a panic in the future resumes on this thread.
    pub fn wait(self) -> Result<T, Error> {
        match self.kind {
            Kind::Batched {
                completion, lane, ..
            } => {
                lane.wait(&completion.done, None);
                taken(&completion)
            }
            Kind::Joined { task, runtime } => outcome(runtime.block_on(task)),
        }
    }

    /// Blocks for up to `limit`: `None` when the future is still running (wait again, or
    /// abort), else its outcome as [`BlockingTask::wait`] gives it.
    pub fn wait_for(&mut self, limit: Duration) -> Option<Result<T, Error>> {
        match &mut self.kind {
            Kind::Batched {
                completion, lane, ..
            } => lane
                .wait(&completion.done, Instant::now().checked_add(limit))
                .then(|| taken(completion)),
            Kind::Joined { task, runtime } => {
                // The timer is made inside the runtime: tokio's timers need its context.
                let waited =
                    runtime.block_on(async move { tokio::time::timeout(limit, task).await });
                waited.ok().map(outcome)
            }
        }
    }

    /// Asks the runtime to drop the future at its next await point; a later wait then gives
    /// [`Error::PoolClosed`] unless the future completed first.
    pub fn abort(&self) {
        match &self.kind {
            Kind::Batched { task, .. } => task.abort(),
            Kind::Joined { task, .. } => task.abort(),
        }
    }
}

/// A finished task's outcome: its output, a panic resumed here, or the runtime's stop.
fn outcome<T>(joined: Result<T, tokio::task::JoinError>) -> Result<T, Error> {
    match joined {
        Ok(output) => Ok(output),
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_cancelled) => Err(Error::PoolClosed),
        },
    }
}

/// A batched task's outcome, taken once it is done, as [`outcome`] gives a joined one.
fn taken<T>(completion: &Completion<T>) -> Result<T, Error> {
    match completion.outcome.lock().take() {
        Some(Ok(output)) => Ok(output),
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        None => Err(Error::PoolClosed),
    }
}

/// The task of a batched blocking call: runs the future, leaves its outcome, and wakes the
/// caller with its batch.
async fn run_batched<F: Future>(
    future: Pin<Box<F>>,
    completion: Arc<Completion<F::Output>>,
    lane: TaskLane,
) {
    let mut finishing = Finishing {
        completion,
        lane,
        finished: false,
    };
    let outcome = AssertUnwindSafe(future).catch_unwind().await;
    *finishing.completion.outcome.lock() = Some(outcome);
    finishing.completion.done.store(true, Ordering::Release);
    finishing.finished = true;
    if let Some(batch) = finishing.lane.finished() {
        // Deferred until the worker has run its other ready tasks and polled for I/O, so the
        // calls that end meanwhile join this batch; unless no other caller waits, when the
        // deferral would only cost a lone call another round of the worker.
        if batch.others_waiting() {
            tokio::task::yield_now().await;
        }
        drop(batch);
    }
}

/// Wakes the caller of a batched task dropped before its future finished, with no outcome.
struct Finishing<T> {
    completion: Arc<Completion<T>>,
    lane: TaskLane,
    finished: bool,
}

impl<T> Drop for Finishing<T> {
    fn drop(&mut self) {
        if !self.finished {
            self.completion.done.store(true, Ordering::Release);
            self.lane.wake_now();
        }
    }
}

impl Pool {
    /// Runs `future` on the pool's runtime, blocking this thread until it completes: the form
    /// of every face's blocking call. For callers outside any async runtime; on a thread that
    /// is running async code it refuses with [`Error::BlockingInAsync`] rather than stall it.
    pub fn block_on<F>(&self, future: F) -> Result<F::Output, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.start_blocking(future)?.wait()
    }

    /// Starts `future` on the pool's runtime for this thread to wait for in steps (a face
    /// that checks for signals between them, say); see [`Pool::block_on`].
    pub fn start_blocking<F>(&self, future: F) -> Result<BlockingTask<F::Output>, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Pool::blocking_allowed()?;
        let runtime = self.runtime()?;
        let kind = match self.inner.wakes.lane() {
            Some(lane) => {
                let completion = Arc::new(Completion {
                    done: AtomicBool::new(false),
                    outcome: Mutex::new(None),
                });
                let task = runtime.spawn(run_batched(
                    Box::pin(future),
                    Arc::clone(&completion),
                    lane.for_task(),
                ));
                Kind::Batched {
                    task,
                    completion,
                    lane,
                }
            }
            None => Kind::Joined {
                task: runtime.spawn(Box::pin(future)),
                runtime: runtime.clone(),
            },
        };
        Ok(BlockingTask { kind })
    }

    /// Starts `future` on the pool's runtime and hands its output to `then`, on a worker: the
    /// form of every face's async call. The returned handle aborts it (`then` is then not
    /// called).
    pub fn spawn_then<F, C>(&self, future: F, then: C) -> Result<JoinHandle<()>, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        C: FnOnce(F::Output) + Send + 'static,
    {
        let future = Box::pin(future);
        Ok(self.runtime()?.spawn(async move { then(future.await) }))
    }

    /// Polls `future` on this thread inside the pool's runtime until it completes, for futures
    /// that borrow and so cannot be a task of their own (shutting the pool down, say). Calls go
    /// through [`Pool::block_on`], which costs a fraction of this.
    pub fn block_on_this_thread<F: Future>(&self, future: F) -> Result<F::Output, Error> {
        Pool::blocking_allowed()?;
        Ok(self.runtime()?.block_on(future))
    }

    /// [`Error::BlockingInAsync`] on a thread that runs async code (a tokio runtime's thread,
    /// such as one running a binding's callback), where a blocking wait would stall it; the
    /// guard every face's blocking call goes through.
    pub fn blocking_allowed() -> Result<(), Error> {
        if Handle::try_current().is_ok() {
            return Err(Error::BlockingInAsync);
        }
        Ok(())
    }
}
