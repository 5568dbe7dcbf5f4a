//! Streaming calls for Python: one `NativeStream` per call, read by one reader at a time while
//! another thread (or task) sends. Every wait releases the GIL (sync) or runs on the pool's
//! runtime with a `done` callback (asyncio), as unary calls do.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use grpcpool_core::{Code, Error, Metadata, Response, Stream, StreamSender};
use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use tokio::sync::Notify;

use crate::convert::{metadata_to_py, request_bytes, response_object, response_to_py};
use crate::{CompletionQueue, NativeCall, PoolState};

/// The reading side: the stream itself while the call runs, its outcome once it ended.
enum Reader {
    /// Nobody is reading; the stream waits here.
    Idle(Box<Stream>),
    /// A read (or headers, or finish) has the stream.
    Busy,
    /// The call is over.
    Ended(Response),
}

/// The sending side, moved out of the stream so sends run beside reads.
enum Sender {
    Idle(StreamSender),
    /// A send is in flight; `close` asks it to half-close when it is done.
    Busy {
        close: bool,
    },
    Closed,
}

/// A cancel request that wakes whatever waits on the stream.
#[derive(Default)]
struct CancelToken {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// What the Python object and the work in flight on it share.
struct StreamShared {
    state: Arc<PoolState>,
    reader: Mutex<Reader>,
    sender: Mutex<Sender>,
    cancel: CancelToken,
    /// Woken when the call's outcome is recorded.
    end_notify: Notify,
}

/// The stream taken out for one read; it goes back when the read ends or is dropped
/// (a Ctrl-C or a cancelled asyncio task abandons the read, not the call).
struct ReadGuard {
    shared: Arc<StreamShared>,
    stream: Option<Box<Stream>>,
}

impl ReadGuard {
    fn stream(&mut self) -> Result<&mut Stream, Error> {
        self.stream.as_deref_mut().ok_or(Error::StreamClosed)
    }

    /// Ends the call: cancels it if asked to, reads what is left and keeps the status. The
    /// stream stays in the guard while it waits, so an abandoned wait loses nothing.
    async fn finish(mut self, cancel: bool) -> Response {
        let Some(stream) = self.stream.as_deref_mut() else {
            return Response::with_status(Code::Internal, "the stream was already finished");
        };
        if cancel {
            stream.cancel();
        }
        while stream.recv().await.is_some() {}
        let Some(stream) = self.stream.take() else {
            return Response::with_status(Code::Internal, "the stream was already finished");
        };
        // The stream has ended: finishing it does not wait.
        let response = stream
            .finish()
            .now_or_never()
            .unwrap_or_else(|| Response::with_status(Code::Internal, "the stream did not end"));
        self.shared.set_ended(response.clone());
        response
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            if self.shared.cancel.is_cancelled() {
                // The read was abandoned because the call was cancelled: end it here.
                self.shared.end_cancelled(stream);
            } else {
                *self.shared.reader.lock() = Reader::Idle(stream);
            }
        }
    }
}

/// What asking for the reading side gave.
enum Taken {
    /// The stream, for this operation alone.
    Stream(ReadGuard),
    /// The call is over.
    Ended,
    /// Cancelled while another operation holds the stream: it ends the call shortly.
    Ending,
}

/// The sender taken out for one send; it goes back (or half-closes) afterwards.
struct SendGuard {
    shared: Arc<StreamShared>,
    sender: Option<StreamSender>,
}

impl Drop for SendGuard {
    fn drop(&mut self) {
        let mut slot = self.shared.sender.lock();
        match (self.sender.take(), &*slot) {
            (Some(sender), Sender::Busy { close: false }) if !sender.is_closed() => {
                *slot = Sender::Idle(sender);
            }
            _ => *slot = Sender::Closed,
        }
    }
}

impl StreamShared {
    fn new(state: Arc<PoolState>, mut stream: Stream) -> Arc<StreamShared> {
        let sender = match stream.take_sender() {
            Some(sender) => Sender::Idle(sender),
            None => Sender::Closed,
        };
        Arc::new(StreamShared {
            state,
            reader: Mutex::new(Reader::Idle(Box::new(stream))),
            sender: Mutex::new(sender),
            cancel: CancelToken::default(),
            end_notify: Notify::new(),
        })
    }

    /// Takes the stream for one operation. Two operations at once are refused, unless the
    /// call was cancelled: then the second waits for the end.
    fn take_reader(self: &Arc<Self>) -> PyResult<Taken> {
        let mut reader = self.reader.lock();
        match std::mem::replace(&mut *reader, Reader::Busy) {
            Reader::Idle(stream) => Ok(Taken::Stream(ReadGuard {
                shared: Arc::clone(self),
                stream: Some(stream),
            })),
            Reader::Busy if self.cancel.is_cancelled() => Ok(Taken::Ending),
            Reader::Busy => Err(PyRuntimeError::new_err(
                "another read is already waiting on this stream: read it from one place at a time",
            )),
            ended @ Reader::Ended(_) => {
                *reader = ended;
                Ok(Taken::Ended)
            }
        }
    }

    /// Waits until the call is over and returns its outcome.
    async fn ended(&self) -> Response {
        loop {
            let notified = self.end_notify.notified();
            if let Some(response) = self.outcome() {
                return response;
            }
            notified.await;
        }
    }

    /// Records the outcome and wakes whoever waits for it.
    fn set_ended(&self, response: Response) {
        *self.reader.lock() = Reader::Ended(response);
        self.end_notify.notify_waiters();
    }

    /// Cancels `stream` and records its (CANCELLED) outcome.
    fn end_cancelled(&self, mut stream: Box<Stream>) {
        stream.cancel();
        // A cancelled stream has ended: finishing it does not wait.
        let response = stream
            .finish()
            .now_or_never()
            .unwrap_or_else(cancelled_response);
        self.set_ended(response);
    }

    /// The next message, or `None` at the end (the status is kept for `status()`).
    fn read(self: &Arc<Self>) -> PyResult<impl Future<Output = Option<Bytes>> + Send + 'static> {
        let taken = self.take_reader()?;
        let shared = Arc::clone(self);
        Ok(async move {
            let mut guard = match taken {
                Taken::Stream(guard) => guard,
                Taken::Ended => return None,
                Taken::Ending => {
                    shared.ended().await;
                    return None;
                }
            };
            let next = tokio::select! {
                next = async { guard.stream().ok()?.recv().await } => next,
                () = shared.cancel.cancelled() => {
                    guard.finish(true).await;
                    return None;
                }
            };
            match next {
                Some(message) => Some(message),
                None => {
                    guard.finish(false).await;
                    None
                }
            }
        })
    }

    /// The response headers once they come; `None` if the call ended without any.
    fn headers(
        self: &Arc<Self>,
    ) -> PyResult<impl Future<Output = Option<Metadata>> + Send + 'static> {
        let taken = self.take_reader()?;
        let shared = Arc::clone(self);
        Ok(async move {
            let mut guard = match taken {
                Taken::Stream(guard) => guard,
                Taken::Ended | Taken::Ending => {
                    return shared.ended().await.headers.into_nonempty()
                }
            };
            tokio::select! {
                headers = async { guard.stream().ok()?.headers().await.cloned() } => headers,
                () = shared.cancel.cancelled() => guard.finish(true).await.headers.into_nonempty(),
            }
        })
    }

    /// Half-closes, reads to the end (dropping unread messages) and gives the status.
    fn finish(self: &Arc<Self>) -> PyResult<impl Future<Output = Response> + Send + 'static> {
        self.close_send();
        let taken = self.take_reader()?;
        let shared = Arc::clone(self);
        Ok(async move {
            let guard = match taken {
                Taken::Stream(guard) => guard,
                Taken::Ended | Taken::Ending => return shared.ended().await,
            };
            let cancelled = shared.cancel.is_cancelled();
            tokio::select! {
                response = guard.finish(cancelled) => response,
                // The guard's future is dropped, and the guard ends the call as cancelled.
                () = shared.cancel.cancelled() => shared.ended().await,
            }
        })
    }

    /// Sends one message; `false` when the call no longer takes messages.
    fn send(
        self: &Arc<Self>,
        message: Bytes,
    ) -> PyResult<impl Future<Output = Result<bool, Error>> + Send + 'static> {
        let sender = {
            let mut slot = self.sender.lock();
            match std::mem::replace(&mut *slot, Sender::Busy { close: false }) {
                Sender::Idle(sender) => Some(sender),
                Sender::Busy { close } => {
                    *slot = Sender::Busy { close };
                    return Err(PyRuntimeError::new_err(
                        "another send is in flight on this stream: send from one place at a time",
                    ));
                }
                Sender::Closed => {
                    *slot = Sender::Closed;
                    None
                }
            }
        };
        let mut guard = SendGuard {
            shared: Arc::clone(self),
            sender,
        };
        let shared = Arc::clone(self);
        Ok(async move {
            let Some(sender) = guard.sender.as_mut() else {
                return Ok(false);
            };
            tokio::select! {
                sent = sender.send(message) => match sent {
                    Ok(()) => Ok(true),
                    Err(Error::StreamClosed) => Ok(false),
                    Err(error) => Err(error),
                },
                () = shared.cancel.cancelled() => Ok(false),
            }
        })
    }

    /// Half-closes the request side (at once, or when a send in flight is done).
    fn close_send(&self) {
        let mut slot = self.sender.lock();
        match &mut *slot {
            Sender::Busy { close } => *close = true,
            other => *other = Sender::Closed,
        }
    }

    /// Cancels the call: the server sees RST_STREAM CANCEL and the status is CANCELLED.
    fn cancel_now(&self) {
        self.cancel.cancel();
        self.close_send();
        let mut reader = self.reader.lock();
        if let Reader::Idle(_) = &*reader {
            if let Reader::Idle(stream) = std::mem::replace(&mut *reader, Reader::Busy) {
                drop(reader);
                self.end_cancelled(stream);
            }
        }
        // An operation holding the stream sees the token and ends the call itself.
    }

    /// The final status once the call is over.
    fn outcome(&self) -> Option<Response> {
        match &*self.reader.lock() {
            Reader::Ended(response) => Some(response.clone()),
            _ => None,
        }
    }
}

fn cancelled_response() -> Response {
    Response::with_status(Code::Cancelled, "cancelled by the caller")
}

/// Metadata that is absent when empty.
trait IntoNonEmpty {
    fn into_nonempty(self) -> Option<Metadata>;
}

impl IntoNonEmpty for Metadata {
    fn into_nonempty(self) -> Option<Metadata> {
        (!self.is_empty()).then_some(self)
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

/// A streaming call (server-, client- or bidirectional streaming).
#[pyclass(module = "grpcpool._native", frozen)]
pub(crate) struct NativeStream {
    shared: Arc<StreamShared>,
}

impl NativeStream {
    pub(crate) fn new(state: Arc<PoolState>, stream: Stream) -> NativeStream {
        NativeStream {
            shared: StreamShared::new(state, stream),
        }
    }

    /// The pool's state; refused in a forked child, where the parent's pool may not run.
    fn state(&self) -> PyResult<&Arc<PoolState>> {
        let state = &self.shared.state;
        if state.abandoned.load(Ordering::Acquire) {
            return Err(crate::PoolClosedError::new_err(
                "this stream belongs to the parent process (it was opened before fork())",
            ));
        }
        Ok(state)
    }
}

#[pymethods]
impl NativeStream {
    /// Sends one message, waiting under flow control; `False` when the call takes no more.
    fn send(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<bool> {
        let message = request_bytes(message)?;
        let future = self.shared.send(message)?;
        self.state()?.wait(py, future)?.map_err(crate::to_py_err)
    }

    /// `send` for asyncio: `done` gets `(True, bool)` or `(False, exception)`.
    fn send_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
        message: &Bound<'_, PyAny>,
    ) -> PyResult<NativeCall> {
        let message = request_bytes(message)?;
        let future = self.shared.send(message)?;
        self.state()?.start(future, queue, token, |py, sent| {
            Ok(sent.into_pyobject(py)?.to_owned().into_any().unbind())
        })
    }

    /// Half-closes: the server is told no more messages come.
    fn close_send(&self) {
        self.shared.close_send();
    }

    /// The next message as bytes, or `None` when the call has ended.
    fn read(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let future = self.shared.read()?;
        let message = self.state()?.wait(py, future)?;
        message_object(py, message)
    }

    /// `read` for asyncio: `done` gets `(True, bytes or None)` or `(False, exception)`.
    fn read_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
    ) -> PyResult<NativeCall> {
        let future = self.shared.read()?;
        self.state()?
            .start(future.map(Ok), queue, token, message_object)
    }

    /// The response headers, waiting for them; `None` if the call ended without any.
    fn headers(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let future = self.shared.headers()?;
        let headers = self.state()?.wait(py, future)?;
        headers_object(py, headers)
    }

    /// `headers` for asyncio.
    fn headers_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
    ) -> PyResult<NativeCall> {
        let future = self.shared.headers()?;
        self.state()?
            .start(future.map(Ok), queue, token, headers_object)
    }

    /// Half-closes, reads to the end (dropping unread messages) and returns the response
    /// tuple with the final status.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let future = self.shared.finish()?;
        let response = self.state()?.wait(py, future)?;
        response_to_py(py, &response)
    }

    /// `finish` for asyncio.
    fn finish_start(
        &self,
        queue: &Bound<'_, CompletionQueue>,
        token: Py<PyAny>,
    ) -> PyResult<NativeCall> {
        let future = self.shared.finish()?;
        self.state()?
            .start(future.map(Ok), queue, token, response_object)
    }

    /// Cancels the call; a read waiting on it returns `None` and the status is CANCELLED.
    fn cancel(&self) {
        self.shared.cancel_now();
    }

    /// The response tuple once the call is over, else `None`.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.shared
            .outcome()
            .map(|response| response_to_py(py, &response))
            .transpose()
    }

    /// Whether the call is over.
    #[getter]
    fn done(&self) -> bool {
        self.shared.outcome().is_some()
    }
}

impl Drop for NativeStream {
    fn drop(&mut self) {
        if self.shared.state.abandoned.load(Ordering::Acquire) {
            // A parent's stream in a forked child: nothing of its pool may run here.
            std::mem::forget(Arc::clone(&self.shared));
            return;
        }
        // Dropped before its end: cancel it, so the server stops too.
        self.shared.cancel_now();
    }
}
