//! Streaming calls: a handle to send messages (under HTTP/2 flow control), half-close, read
//! the response headers and messages, cancel, and get the final status with trailers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tonic::codec::Streaming;

use crate::attempt::failure_response;
use crate::body::CancelSignal;
use crate::call::closed_under;
use crate::connection::OwnedActiveStream;
use crate::metrics::MethodStats;
use crate::prepared_call::PreparedCall;
use crate::request_body::RequestBody;
use crate::response::Response;
use crate::shared::Shared;
use crate::stats::Counters;
use crate::stream_hedging;
use crate::stream_open::{self, Attempts, Head, Opening};
use crate::target_pool::TargetPool;
use crate::{CallOptions, Code, Error, Lease, Metadata};

/// What reading a stream produced: a message, or the end with its trailers.
enum Next {
    Message(Bytes),
    End(Option<tonic::metadata::MetadataMap>),
}

/// One streaming call (server-, client- or bidirectional streaming). It holds its lease's
/// slot until it ends; dropping it before the end cancels the call.
///
/// Send with [`Stream::send`], finish sending with [`Stream::close_send`], read with
/// [`Stream::recv`] until it returns `None`, then [`Stream::finish`] gives the status.
pub struct Stream {
    /// The lease whose slot the call uses; let go when the call ends, so the slot returns
    /// then unless the lease's holder still has it.
    lease: Option<Arc<Lease>>,
    pool: Arc<TargetPool>,
    shared: Arc<Shared>,
    sender: Option<mpsc::Sender<Bytes>>,
    cancel: CancelSignal,
    deadline: Option<Instant>,
    max_send: usize,
    state: State,
    /// The caller cancelled: CANCELLED stands even past the deadline.
    cancelled_here: bool,
    /// Set when the call is over, so a taken [`StreamSender`] stops at once too.
    ended: Arc<AtomicBool>,
    /// The call on its connection (moved with it), for the connection's count of streams.
    _active: Arc<Mutex<Option<OwnedActiveStream>>>,
    /// The method's metrics, when the call started, and when its last attempt did.
    method: Arc<MethodStats>,
    started: Instant,
    attempt_started: Arc<Mutex<Instant>>,
}

enum State {
    /// The call is starting; its response head arrives here.
    Opening(oneshot::Receiver<Head>),
    /// Headers came; messages are being read.
    Open {
        headers: Metadata,
        messages: Streaming<Bytes>,
    },
    /// Over: the final status, with headers and trailers.
    Ended(Response),
}

impl Lease {
    /// Opens a streaming call on this lease's connection, using the lease's slot until the
    /// call ends; the lease stays the caller's and may be used again afterwards. Refused with
    /// [`Error::Busy`] while calls or another stream are in flight on the lease. `Err` also
    /// for bad input (method, metadata); a call that fails to start ends with a status.
    pub fn open_stream(
        self: &Arc<Self>,
        method: &str,
        options: CallOptions,
    ) -> Result<Stream, Error> {
        let call = PreparedCall::configured(
            self.pool().config(),
            self.pool().service_config(),
            method,
            Bytes::new(),
            options,
        )?;
        self.open_stream_prepared(call)
    }

    /// Opens a streaming call checked earlier by [`Pool::prepare_stream`](crate::Pool::prepare_stream).
    pub fn open_stream_prepared(self: &Arc<Self>, mut call: PreparedCall) -> Result<Stream, Error> {
        let in_use = self.begin_stream()?;
        let pool = Arc::clone(self.pool());
        call.bind_target(pool.text());
        let shared = Arc::clone(pool.shared());
        let connection = self.connection().ok_or_else(|| Error::Unavailable {
            target: self.target().to_owned(),
            reason: "the lease lost its connection".to_owned(),
        })?;
        let (sender, receiver) = mpsc::channel::<Bytes>(1);
        let cancel = CancelSignal::default();
        let active = Arc::new(Mutex::new(Some(OwnedActiveStream::new(Arc::clone(
            &connection,
        )))));
        let (head_sender, head) = oneshot::channel();
        let deadline = call.deadline();
        let max_send = call.max_send;
        let method = pool.method_metrics().of(call.path.as_str());
        let started = Instant::now();
        let attempt_started = Arc::new(Mutex::new(started));
        // Already over (a timeout of 0): as every gRPC client, nothing is sent.
        let expired = past(deadline);
        if !expired {
            // The call opens on the pool's runtime so the request side moves while the caller
            // waits on anything else; it moves to another connection while the server never
            // processed it, and is retried or hedged as its method's policy says.
            let body = RequestBody::new(
                receiver,
                pool.config().per_call_retry_buffer_size,
                Arc::clone(&shared.retry_buffered),
                shared.config.retry_buffer_size,
            );
            let attempts = Attempts {
                active: Arc::clone(&active),
                method: Arc::clone(&method),
                last_started: Arc::clone(&attempt_started),
            };
            let opening = Opening {
                lease: Arc::downgrade(self),
                pool: Arc::clone(&pool),
                call,
                connection,
                body,
                cancel: cancel.clone(),
                attempts,
            };
            shared.runtime.spawn(async move {
                let head = match opening.call.hedging_policy().cloned() {
                    Some(policy) => stream_hedging::open(opening, policy).await,
                    None => stream_open::open(opening).await,
                };
                let _ = head_sender.send(head);
            });
        }
        Counters::bump(&pool.counters().calls_started);
        // The stream now owns the lease's use; it ends with the call.
        std::mem::forget(in_use);
        let mut stream = Stream {
            max_send,
            deadline,
            shared,
            sender: Some(sender),
            cancel,
            state: State::Opening(head),
            cancelled_here: false,
            ended: Arc::new(AtomicBool::new(false)),
            _active: active,
            lease: Some(Arc::clone(self)),
            pool,
            method,
            started,
            attempt_started,
        };
        if expired {
            stream.expire();
        }
        Ok(stream)
    }
}

impl Stream {
    /// Sends one message, waiting while HTTP/2 flow control holds the previous one back, so a
    /// fast sender cannot grow memory. [`Error::StreamClosed`] once sending is over (after
    /// `close_send`, a cancel, or the call's end: `finish` then gives the status).
    pub async fn send(&mut self, message: impl Into<Bytes>) -> Result<(), Error> {
        let message = message.into();
        if message.len() > self.max_send {
            return Err(Error::MessageTooLarge {
                size: message.len(),
                limit: self.max_send,
            });
        }
        let Some(sender) = &self.sender else {
            return Err(Error::StreamClosed);
        };
        if past(self.deadline) {
            self.expire();
            return Err(Error::StreamClosed);
        }
        match self
            .shared
            .until_opt(self.deadline, sender.send(message))
            .await
        {
            Some(Ok(())) => Ok(()),
            Some(Err(_)) => Err(Error::StreamClosed),
            None => {
                self.expire();
                Err(Error::StreamClosed)
            }
        }
    }

    /// Half-closes: tells the server no more messages come. Reading goes on.
    pub fn close_send(&mut self) {
        self.sender = None;
    }

    /// Moves the sending side out, so one task (or thread) can send while another reads.
    /// Afterwards [`Stream::send`] reports [`Error::StreamClosed`] and half-closing is done
    /// by dropping (or [`StreamSender::close`]) the sender. `None` if sending is already over.
    pub fn take_sender(&mut self) -> Option<StreamSender> {
        let sender = self.sender.take()?;
        Some(StreamSender {
            sender: Some(sender),
            ended: Arc::clone(&self.ended),
            shared: Arc::clone(&self.shared),
            deadline: self.deadline,
            max_send: self.max_send,
        })
    }

    /// The response headers, once they arrive; `None` if the call ended without any.
    pub async fn headers(&mut self) -> Option<&Metadata> {
        self.open().await;
        match &self.state {
            State::Open { headers, .. } => Some(headers),
            State::Ended(response) if !response.headers.is_empty() => Some(&response.headers),
            _ => None,
        }
    }

    /// The next response message; `None` when the call has ended (see [`Stream::finish`]).
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.open().await;
        let State::Open { messages, headers } = &mut self.state else {
            return None;
        };
        let next = self
            .shared
            .until_opt(self.deadline, async {
                match messages.message().await? {
                    Some(message) => Ok(Next::Message(message)),
                    None => Ok(Next::End(messages.trailers().await?)),
                }
            })
            .await;
        match next {
            Some(Ok(Next::Message(message))) => Some(message),
            Some(Ok(Next::End(trailers))) => {
                let response = Response {
                    headers: std::mem::take(headers),
                    trailers: trailers
                        .map(|t| Metadata::from_wire(&t))
                        .unwrap_or_default(),
                    ..Response::with_status(Code::Ok, "")
                };
                self.end(response);
                None
            }
            Some(Err(status)) => {
                let response = failure_response(&status, std::mem::take(headers));
                self.end(response);
                None
            }
            None => {
                self.expire();
                None
            }
        }
    }

    /// The signal that resets the call's HTTP/2 stream, for a holder that must reset it at
    /// once without waiting for this object (a shared stream whose reader holds it).
    pub(crate) fn cancel_signal(&self) -> CancelSignal {
        self.cancel.clone()
    }

    /// Cancels the call: the server sees RST_STREAM CANCEL, and the status is CANCELLED.
    pub fn cancel(&mut self) {
        if !matches!(self.state, State::Ended(_)) {
            self.cancelled_here = true;
            self.cancel.cancel();
            let headers = self.known_headers();
            self.end(Response {
                headers,
                ..Response::with_status(Code::Cancelled, "cancelled by the caller")
            });
        }
    }

    /// Half-closes, reads to the end (dropping unread messages) and returns the final status
    /// with headers and trailers; the lease's slot is returned.
    pub async fn finish(mut self) -> Response {
        self.close_send();
        while self.recv().await.is_some() {}
        match std::mem::replace(
            &mut self.state,
            State::Ended(Response::with_status(Code::Ok, "")),
        ) {
            State::Ended(response) => response,
            _ => Response::with_status(Code::Internal, "the stream did not end"),
        }
    }

    /// The lease the stream runs on, until the call ends.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_deref()
    }

    /// The call's deadline, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The largest message [`Stream::send`] takes.
    pub(crate) fn max_send(&self) -> usize {
        self.max_send
    }

    /// The pool's runtime, which the call runs on.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.shared.runtime
    }

    /// Waits for the response head if it has not come yet.
    async fn open(&mut self) {
        let State::Opening(head) = &mut self.state else {
            return;
        };
        match self.shared.until_opt(self.deadline, head).await {
            Some(Ok(Ok(response))) => {
                let (headers, messages, _) = response.into_parts();
                self.state = State::Open {
                    headers: Metadata::from_wire(&headers),
                    messages,
                };
            }
            Some(Ok(Err(status))) => self.end(failure_response(&status, Metadata::new())),
            Some(Err(_)) => self.end(Response::with_status(
                Code::Internal,
                "the call task ended early",
            )),
            None => self.expire(),
        }
    }

    /// The deadline passed: cancel on the wire, DEADLINE_EXCEEDED here.
    fn expire(&mut self) {
        self.cancel.cancel();
        let headers = self.known_headers();
        self.end(Response {
            headers,
            ..Response::with_status(Code::DeadlineExceeded, "deadline exceeded")
        });
    }

    fn known_headers(&mut self) -> Metadata {
        match &mut self.state {
            State::Open { headers, .. } => std::mem::take(headers),
            _ => Metadata::new(),
        }
    }

    /// Records the final status once and stops sending. A failure after the deadline passed
    /// is DEADLINE_EXCEEDED, whatever the transport saw first (a reset, say).
    fn end(&mut self, mut response: Response) {
        if matches!(self.state, State::Ended(_)) {
            return;
        }
        let expired = self
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline);
        if expired && response.code != Code::Ok && !self.cancelled_here {
            response.code = Code::DeadlineExceeded;
            response.message = format!("deadline exceeded ({})", response.message);
        }
        if !self.cancelled_here {
            response = closed_under(&self.shared, response);
        }
        self.sender = None;
        self.ended.store(true, Ordering::Release);
        self.pool.counters().call_finished(response.code);
        self.method
            .attempt_ended(response.code, self.attempt_started.lock().elapsed());
        if !self.cancelled_here {
            // The caller's own cancel is no verdict on the server (outlier detection).
            if let Some(active) = self._active.lock().as_ref() {
                active.connection().attempt_ended(response.code);
            }
        }
        self.method
            .call_ended(response.code, self.started.elapsed());
        // The call is over: the lease is free for other use, and its slot goes back now if
        // nobody else holds the lease, not when the handle is dropped.
        if let Some(lease) = self.lease.take() {
            lease.end_use();
        }
        self.state = State::Ended(response);
    }
}

/// Whether `deadline` has passed.
fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|deadline| Instant::now() >= deadline)
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Dropped before its end: cancel it, so the server stops too.
        if !matches!(self.state, State::Ended(_)) {
            self.cancel();
        }
    }
}

/// The sending half of a [`Stream`], taken with [`Stream::take_sender`]: sends under HTTP/2
/// flow control while the stream reads elsewhere. Dropping it half-closes the call.
pub struct StreamSender {
    sender: Option<mpsc::Sender<Bytes>>,
    ended: Arc<AtomicBool>,
    shared: Arc<Shared>,
    deadline: Option<Instant>,
    max_send: usize,
}

impl StreamSender {
    /// Sends one message, waiting while flow control holds the previous one back.
    /// [`Error::StreamClosed`] once the call is over or after [`StreamSender::close`]; the
    /// stream's reading side then gives the status.
    pub async fn send(&mut self, message: impl Into<Bytes>) -> Result<(), Error> {
        let message = message.into();
        if message.len() > self.max_send {
            return Err(Error::MessageTooLarge {
                size: message.len(),
                limit: self.max_send,
            });
        }
        let Some(sender) = &self.sender else {
            return Err(Error::StreamClosed);
        };
        // The call may be over before the request body is dropped: don't take more messages.
        if self.ended.load(Ordering::Acquire) {
            self.sender = None;
            return Err(Error::StreamClosed);
        }
        // Past the deadline: refused, but the request is not half-closed, which would let the
        // server finish the call OK after its deadline; the reading side cancels it instead.
        if past(self.deadline) {
            return Err(Error::StreamClosed);
        }
        match self
            .shared
            .until_opt(self.deadline, sender.send(message))
            .await
        {
            Some(Ok(())) => Ok(()),
            Some(Err(_)) => {
                self.sender = None;
                Err(Error::StreamClosed)
            }
            None => Err(Error::StreamClosed),
        }
    }

    /// Half-closes: no more messages go to the server.
    pub fn close(&mut self) {
        self.sender = None;
    }

    /// Whether sending is over (closed here, or the call ended).
    pub fn is_closed(&self) -> bool {
        self.ended.load(Ordering::Acquire)
            || self.sender.as_ref().is_none_or(|sender| sender.is_closed())
    }
}

impl std::fmt::Debug for StreamSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("lease", &self.lease)
            .field("target", &self.pool.text())
            .finish()
    }
}
