//! Hands asyncio calls' outcomes to their event loop in batches, without the GIL.
//!
//! A grpcpool thread that finishes an asyncio call pushes the outcome here and, if the queue
//! was empty, writes one byte to a socket the event loop watches (`loop.add_reader`). The loop
//! then drains every outcome at once, converting them to Python objects on its own thread. So
//! the engine's threads never wait for the GIL, and a busy loop wakes once per batch rather
//! than once per call.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

/// Turns a finished call's value into `(ok, value or exception)`, with the GIL.
type Convert = Box<dyn FnOnce(Python<'_>) -> (bool, Py<PyAny>) + Send>;

/// One finished call: the asyncio future waiting for it, and its outcome.
struct Completion {
    token: Py<PyAny>,
    convert: Convert,
}

struct Pending {
    completions: Vec<Completion>,
    /// A wake-up byte is on its way and not yet drained.
    signalled: bool,
}

/// The completions of one event loop.
#[pyclass(module = "grpcpool._native", frozen)]
pub(crate) struct CompletionQueue {
    pending: Mutex<Pending>,
    /// Read by the event loop.
    reader: UnixStream,
    /// Written by grpcpool threads.
    writer: UnixStream,
}

impl CompletionQueue {
    /// Queues a finished call, waking the loop if it is not already due to drain.
    pub(crate) fn push(&self, token: Py<PyAny>, convert: Convert) {
        let wake = {
            let mut pending = self.pending.lock();
            pending.completions.push(Completion { token, convert });
            !std::mem::replace(&mut pending.signalled, true)
        };
        if wake {
            // A full socket buffer already holds a wake-up: nothing more is needed.
            let _ = (&self.writer).write(&[1]);
        }
    }
}

#[pymethods]
impl CompletionQueue {
    /// A queue with its wake-up socket pair.
    #[new]
    fn new() -> PyResult<CompletionQueue> {
        let (reader, writer) = UnixStream::pair()
            .map_err(|error| PyRuntimeError::new_err(format!("socketpair: {error}")))?;
        for end in [&reader, &writer] {
            end.set_nonblocking(true)
                .map_err(|error| PyRuntimeError::new_err(error.to_string()))?;
        }
        Ok(CompletionQueue {
            pending: Mutex::new(Pending {
                completions: Vec::new(),
                signalled: false,
            }),
            reader,
            writer,
        })
    }

    /// The descriptor the event loop watches for readability.
    fn fileno(&self) -> i32 {
        self.reader.as_raw_fd()
    }

    /// Every finished call so far, as a list of `(future, ok, value)`.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut buffer = [0u8; 64];
        loop {
            match (&self.reader).read(&mut buffer) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: nothing left to read.
            }
        }
        let completions = {
            let mut pending = self.pending.lock();
            pending.signalled = false;
            std::mem::take(&mut pending.completions)
        };
        let items = PyList::empty(py);
        for completion in completions {
            let (ok, value) = (completion.convert)(py);
            items.append(PyTuple::new(
                py,
                [
                    completion.token.into_bound(py),
                    ok.into_pyobject(py)?.to_owned().into_any(),
                    value.into_bound(py),
                ],
            )?)?;
        }
        Ok(items)
    }
}
