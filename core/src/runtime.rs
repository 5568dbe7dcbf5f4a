//! The pool's own tokio runtime, made on first use and shut down with the pool.

use std::sync::{Arc, Condvar, Mutex as StdMutex};

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
        // tokio panics when the OS refuses a worker thread, and its cleanup then waits forever
        // for threads that never started: ask the OS for the threads first.
        probe_threads(self.worker_threads).map_err(Error::Runtime)?;
        let worker_threads = self.worker_threads;
        let building = std::panic::catch_unwind(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(worker_threads)
                .thread_name("grpcpool-worker")
                .enable_all()
                .build()
        });
        let started = match building {
            Ok(built) => built.map_err(Error::Runtime)?,
            Err(_) => {
                return Err(Error::Runtime(std::io::Error::other(
                    "the runtime's worker threads could not start",
                )))
            }
        };
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

/// Starts `count` threads that wait to be let go, then lets them go: `Err` with the OS's answer
/// when it refuses one (a process or user thread limit, say).
fn probe_threads(count: usize) -> std::io::Result<()> {
    let release = Arc::new((StdMutex::new(false), Condvar::new()));
    let mut started = Vec::with_capacity(count);
    let mut refused = None;
    for _ in 0..count {
        let release = Arc::clone(&release);
        let spawned = std::thread::Builder::new()
            .name("grpcpool-probe".to_owned())
            .stack_size(64 * 1024)
            .spawn(move || {
                let (let_go, signal) = &*release;
                let mut let_go = let_go.lock().unwrap_or_else(|poison| poison.into_inner());
                while !*let_go {
                    let_go = signal
                        .wait(let_go)
                        .unwrap_or_else(|poison| poison.into_inner());
                }
            });
        match spawned {
            Ok(thread) => started.push(thread),
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    let (let_go, signal) = &*release;
    *let_go.lock().unwrap_or_else(|poison| poison.into_inner()) = true;
    signal.notify_all();
    for thread in started {
        let _ = thread.join();
    }
    refused.map_or(Ok(()), Err)
}
