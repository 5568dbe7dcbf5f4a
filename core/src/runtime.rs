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

    /// Stops the runtime without waiting for its tasks (safe from any thread, async or not).
    pub(crate) fn shutdown(&self) {
        if let Some(runtime) = self.runtime.lock().take() {
            runtime.shutdown_background();
        }
    }
}
