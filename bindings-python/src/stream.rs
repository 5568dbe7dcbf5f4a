//! Streaming calls for Python: `NativeStream` is a thin adapter over core's [`SharedStream`],
//! which owns the call's whole state (one send and one read at a time, a second refused with
//! `Error::Busy`; cancel from any thread; the recorded outcome). This file only runs those
//! operations: blocking ones on the pool's runtime with the GIL released, asyncio ones started
//! there with a completion, as unary calls are.
//!
//! Every operation is started (claimed) here, before anything waits, so a second concurrent
//! read or send raises at once instead of queueing. A wait abandoned unfinished (Ctrl-C, a
//! cancelled asyncio task) drops only that operation's future; the call goes on.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use grpcpool_core::{Error, Metadata, SharedStream, Stream};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::convert::{metadata_to_py, request_bytes, response_object, response_to_py};
use crate::{mapped, to_py_err, CompletionQueue, NativeCall, PoolState};

/// A streaming call (server-, client- or bidirectional streaming).
#[pyclass(module = "grpcpool._native", frozen)]
pub(crate) struct NativeStream {
    state: Arc<PoolState>,
    stream: SharedStream,
}

impl NativeStream {
    /// Wraps a stream just opened on `state`'s pool.
    pub(crate) fn new(state: Arc<PoolState>, stream: Stream) -> NativeStream {
        NativeStream {
            state,
            stream: SharedStream::from(stream),
        }
    }

    /// Whether this stream was opened in the parent of a forked process: its pool's runtime
    /// threads are gone here, and its locks may be held by threads that no longer exist.
    fn abandoned(&self) -> bool {
        self.state.abandoned.load(Ordering::Acquire)
    }

    /// The pool's state; refused in a forked child, where the parent's pool may not run.
    fn state(&self) -> PyResult<&Arc<PoolState>> {
        if self.abandoned() {
            return Err(crate::PoolClosedError::new_err(
                "this stream belongs to the parent process (it was opened before fork())",
            ));
        }
        Ok(&self.state)
    }

    /// Starts sending `message`. The future gives `false` once the call takes no more
    /// messages (core's `StreamClosed`): the Python layer then reports the call's status if it
    /// failed, else `StreamClosedError`.
    fn sending(
        &self,
        message: &Bound<'_, PyAny>,
    ) -> PyResult<impl Future<Output = Result<bool, Error>> + Send + 'static> {
        let message: Bytes = request_bytes(message)?;
        let sending = self.stream.send(message).map_err(to_py_err)?;
        Ok(async move {
            match sending.await {
                Ok(()) => Ok(true),
                Err(Error::StreamClosed) => Ok(false),
                Err(error) => Err(error),
            }
        })
    }
}

fn message_object(py: Python<'_>, message: Option<Bytes>) -> PyResult<Py<PyAny>> {
    Ok(match message {
        Some(message) => PyBytes::new(py, &message).into_any().unbind(),
        None => py.None(),
    })
}

fn headers_object(py: Python<'_>, headers: Option<Metadata>) -> PyResult<Py<PyAny>> {
    Ok(match headers {
        Some(headers) => metadata_to_py(py, &headers)?.into_any().unbind(),
        None => py.None(),
    })
}

fn sent_object(py: Python<'_>, sent: bool) -> PyResult<Py<PyAny>> {
    Ok(sent.into_pyobject(py)?.to_owned().into_any().unbind())
}

#[pymethods]
impl NativeStream {
    /// Sends one message, waiting under flow control; `False` when the call takes no more.
    /// A second send while one waits raises RuntimeError (core's Busy).
    fn send(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<bool> {
        let state = self.state()?;
        let future = self.sending(message)?;
        state.wait(py, future)?.map_err(to_py_err)
    }

    /// `send` for asyncio: `done` gets `(True, bool)` or `(False, exception)`.
    fn send_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
        message: &Bound<'_, PyAny>,
    ) -> PyResult<NativeCall> {
        let state = self.state()?;
        let future = self.sending(message)?;
        state.start(mapped(future), queue, token, sent_object)
    }

    /// Half-closes: the server is told no more messages come (after a send in progress).
    fn close_send(&self) {
        if !self.abandoned() {
            self.stream.close_send();
        }
    }

    /// The next message as bytes, or `None` when the call has ended.
    fn read(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let state = self.state()?;
        let future = self.stream.recv().map_err(to_py_err)?;
        let message = state.wait(py, future)?;
        message_object(py, message)
    }

    /// `read` for asyncio: `done` gets `(True, bytes or None)` or `(False, exception)`.
    fn read_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
    ) -> PyResult<NativeCall> {
        let state = self.state()?;
        let future = self.stream.recv().map_err(to_py_err)?;
        state.start(future.map(Ok), queue, token, message_object)
    }

    /// The response headers, waiting for them; `None` if the call ended without any.
    fn headers(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let state = self.state()?;
        let future = self.stream.headers().map_err(to_py_err)?;
        let headers = state.wait(py, future)?;
        headers_object(py, headers)
    }

    /// `headers` for asyncio.
    fn headers_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
    ) -> PyResult<NativeCall> {
        let state = self.state()?;
        let future = self.stream.headers().map_err(to_py_err)?;
        state.start(future.map(Ok), queue, token, headers_object)
    }

    /// Half-closes, reads to the end (dropping unread messages) and returns the response
    /// tuple with the final status.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let state = self.state()?;
        let future = self.stream.finish().map_err(to_py_err)?;
        let response = state.wait(py, future)?;
        response_to_py(py, &response)
    }

    /// `finish` for asyncio.
    fn finish_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
    ) -> PyResult<NativeCall> {
        let state = self.state()?;
        let future = self.stream.finish().map_err(to_py_err)?;
        state.start(future.map(Ok), queue, token, response_object)
    }

    /// Cancels the call; every wait on it wakes (a read with `None`, a send with `False`) and
    /// the status is CANCELLED.
    fn cancel(&self) {
        if !self.abandoned() {
            self.stream.cancel();
        }
    }

    /// The response tuple once the call is over, else `None`.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.stream
            .outcome()
            .map(|response| response_to_py(py, &response))
            .transpose()
    }

    /// Whether the call is over.
    #[getter]
    fn done(&self) -> bool {
        self.stream.outcome().is_some()
    }
}

impl Drop for NativeStream {
    fn drop(&mut self) {
        if self.abandoned() {
            // A parent's stream in a forked child: nothing of its pool may run here.
            std::mem::forget(self.stream.clone());
            return;
        }
        // Dropped before its end: cancel it now, so the server stops too, even while an
        // abandoned wait's task still holds the call.
        self.stream.cancel();
    }
}
