//! Futures that callers outside the pool's runtime start on it: blocking calls, where the
//! caller's thread waits, and async calls of the faces, which hand the outcome to a completion.
//!
//! A blocking call's future runs as a task on a worker, beside the connection it uses, and the
//! caller sleeps until the task's one wake at the end. Polling it on the caller's thread
//! instead (tokio's `Handle::block_on` of the call itself) moved every step of the call across
//! threads: the caller woke the connection's worker to send, the worker woke the caller for
//! the response head, its body and its trailers, and both took h2's connection lock. That cost
//! about 14 context switches per call at concurrency 1 against 3 for the task
//! (docs/blocking-calls.md).
//!
//! Either way the future goes in a box of its own: the task then holds a pointer, so tokio
//! moves a few bytes, not a call's state of some 3.5 KB, when it stores the task and when it
//! overwrites it with the output (about 3,000 instructions a call, 4% of a blocking call's);
//! and a block awaiting a captured future would hold that state twice.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::Pool;
use crate::Error;

/// A future started on the pool's runtime that a thread outside it waits for; made by
/// [`Pool::start_blocking`]. Dropping it lets the future run on, unwatched.
#[must_use = "a started future runs on unwatched unless it is waited for or aborted"]
pub struct BlockingTask<T> {
    task: JoinHandle<T>,
    runtime: Handle,
}

impl<T> BlockingTask<T> {
    /// Blocks this thread until the future completes. [`Error::PoolClosed`] when the pool's
    /// runtime stopped first (the pool closed); a panic in the future resumes on this thread.
    pub fn wait(self) -> Result<T, Error> {
        let BlockingTask { task, runtime } = self;
        outcome(runtime.block_on(task))
    }

    /// Blocks for up to `limit`: `None` when the future is still running (wait again, or
    /// abort), else its outcome as [`BlockingTask::wait`] gives it.
    pub fn wait_for(&mut self, limit: Duration) -> Option<Result<T, Error>> {
        let task = &mut self.task;
        // The timer is made inside the runtime: tokio's timers need its context.
        let waited = self
            .runtime
            .block_on(async move { tokio::time::timeout(limit, task).await });
        waited.ok().map(outcome)
    }

    /// Asks the runtime to drop the future at its next await point; a later wait then gives
    /// [`Error::PoolClosed`] unless the future completed first.
    pub fn abort(&self) {
        self.task.abort();
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
        let runtime = self.runtime_handle()?;
        Ok(BlockingTask {
            task: runtime.spawn(Box::pin(future)),
            runtime,
        })
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
        Ok(self
            .runtime_handle()?
            .spawn(async move { then(future.await) }))
    }

    /// Polls `future` on this thread inside the pool's runtime until it completes, for futures
    /// that borrow and so cannot be a task of their own (shutting the pool down, say). Calls go
    /// through [`Pool::block_on`], which costs a fraction of this.
    pub fn block_on_this_thread<F: Future>(&self, future: F) -> Result<F::Output, Error> {
        Pool::blocking_allowed()?;
        Ok(self.runtime_handle()?.block_on(future))
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
