//! The pool's own tokio runtime, made on first use and shut down with the pool.

use parking_lot::Mutex;
use tokio::runtime::{Handle, Runtime};

use crate::Error;

/// A multi-thread runtime created lazily.
pub(crate) struct LazyRuntime {
    worker_threads: usize,
    runtime: Mutex<Option<Runtime>>,
}

impl LazyRuntime {
    pub(crate) fn new(worker_threads: usize) -> LazyRuntime {
        LazyRuntime {
            worker_threads,
            runtime: Mutex::new(None),
        }
    }

    /// The runtime's handle, starting it if this is the first use.
    pub(crate) fn handle(&self) -> Result<Handle, Error> {
        let mut runtime = self.runtime.lock();
        if let Some(runtime) = runtime.as_ref() {
            return Ok(runtime.handle().clone());
        }
        let started = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.worker_threads)
            .thread_name("grpcpool-worker")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let handle = started.handle().clone();
        *runtime = Some(started);
        Ok(handle)
    }

    /// Stops the runtime. From a plain thread it waits (up to a second) for the worker threads
    /// to drop their tasks and exit, so nothing outlives the pool; inside an async context,
    /// where blocking is not allowed, it lets them wind down in the background.
    pub(crate) fn shutdown(&self) {
        if let Some(runtime) = self.runtime.lock().take() {
            if Handle::try_current().is_ok() {
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            }
        }
    }
}
