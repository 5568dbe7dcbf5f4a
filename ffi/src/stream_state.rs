//! The state one stream handle shares between its operations, and the operations themselves
//! as futures (the blocking exports wait for them, the async ones spawn them).
//!
//! The sending half is taken out of the core's stream when it opens, so a send waiting under
//! flow control and a recv waiting for a message hold different locks: one thread may send
//! while another receives. Each half allows one operation at a time, claimed with a flag; a
//! second one is refused with `GRPCPOOL_BUSY`. Cancel is a watched flag every waiting
//! operation selects on, so it wakes them from any thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use grpcpool_core::{Code, Error, Metadata, Response, Stream, StreamSender};
use tokio::runtime::Handle;
use tokio::sync::{watch, Mutex as AsyncMutex};

use crate::error::{grpcpool_result, FfiError};

/// The reading half: the core's stream until `finish` consumes it, then its final status.
struct Receiving {
    stream: Option<Stream>,
    ended: Option<Response>,
}

/// What the handle table holds for one stream; shared by every operation on it.
pub(crate) struct StreamState {
    pub(crate) runtime: Handle,
    max_send: usize,
    receiving: AsyncMutex<Receiving>,
    sending: AsyncMutex<Option<StreamSender>>,
    recv_busy: AtomicBool,
    send_busy: AtomicBool,
    close_requested: AtomicBool,
    /// The call's deadline: sending stops at it even if the channel has room.
    deadline: Option<Instant>,
    /// [`Phase`]: waiting operations watch it.
    phase: watch::Sender<Phase>,
}

/// Where the call is, as far as waiting operations care.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// The reading side saw the end: sending is over too.
    Ended,
    /// Cancelled here (or the handle freed): everything stops.
    Cancelled,
}

/// Which half of a stream an operation uses.
#[derive(Clone, Copy)]
pub(crate) enum Half {
    /// send.
    Send,
    /// recv, headers, finish.
    Recv,
}

/// The right to run one operation on one half; released when dropped.
pub(crate) struct Claim {
    state: Arc<StreamState>,
    half: Half,
}

impl Claim {
    pub(crate) fn state(&self) -> &Arc<StreamState> {
        &self.state
    }

    fn flag(&self) -> &AtomicBool {
        match self.half {
            Half::Send => &self.state.send_busy,
            Half::Recv => &self.state.recv_busy,
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.flag().store(false, Ordering::Release);
    }
}

/// Claims one half of the stream, or `GRPCPOOL_BUSY` when an operation is already running on it.
pub(crate) fn claim(state: &Arc<StreamState>, half: Half) -> Result<Claim, FfiError> {
    let (flag, what) = match half {
        Half::Send => (
            &state.send_busy,
            "a send is already in progress on this stream",
        ),
        Half::Recv => (
            &state.recv_busy,
            "a recv, headers or finish is already in progress on this stream",
        ),
    };
    if flag
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(FfiError::new(grpcpool_result::GRPCPOOL_BUSY, what));
    }
    Ok(Claim {
        state: Arc::clone(state),
        half,
    })
}

fn closed() -> FfiError {
    FfiError::new(
        grpcpool_result::GRPCPOOL_STREAM_CLOSED,
        "the stream is closed for sending (half-closed, cancelled or ended); \
         grpcpool_stream_finish gives its status",
    )
}

impl StreamState {
    fn is_cancelled(&self) -> bool {
        *self.phase.borrow() == Phase::Cancelled
    }

    /// Resolves once the stream is cancelled (at once if it already is).
    async fn until_cancelled(&self) {
        let mut phase = self.phase.subscribe();
        let _ = phase.wait_for(|phase| *phase == Phase::Cancelled).await;
    }

    /// Resolves once the call is over for sending: ended or cancelled.
    async fn until_over(&self) {
        let mut phase = self.phase.subscribe();
        let _ = phase.wait_for(|phase| *phase != Phase::Open).await;
    }

    /// Whether sending is over: asked to close, cancelled, ended, or past the deadline.
    fn sending_over(&self) -> bool {
        self.close_requested.load(Ordering::Acquire)
            || *self.phase.borrow() != Phase::Open
            || self
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// The reading side saw the end of the call; a send waiting wakes.
    fn mark_ended(&self) {
        self.phase.send_if_modified(|phase| {
            let open = *phase == Phase::Open;
            if open {
                *phase = Phase::Ended;
            }
            open
        });
    }

    /// Refuses a message larger than the pool allows, before anything waits.
    pub(crate) fn check_size(&self, size: usize) -> Result<(), FfiError> {
        if size > self.max_send {
            return Err(Error::MessageTooLarge {
                size,
                limit: self.max_send,
            }
            .into());
        }
        Ok(())
    }

    /// Sends one message, waiting under flow control; woken by a cancel.
    pub(crate) async fn send(&self, message: Bytes) -> Result<(), FfiError> {
        let mut sending = self.sending.lock().await;
        let outcome = match sending.as_mut() {
            Some(sender) if !self.sending_over() => tokio::select! {
                biased;
                _ = self.until_over() => Err(closed()),
                sent = sender.send(message) => sent.map_err(|error| match error {
                    Error::StreamClosed => closed(),
                    other => other.into(),
                }),
            },
            _ => Err(closed()),
        };
        // A half-close, cancel or end that came while this send waited takes effect now.
        if outcome.is_err() || self.sending_over() {
            drop(sending.take());
        }
        outcome
    }

    /// Half-closes: the sender is dropped now, or right after a send in progress ends.
    pub(crate) fn close_send(self: &Arc<Self>) {
        self.close_requested.store(true, Ordering::Release);
        match self.sending.try_lock() {
            Ok(mut sending) => drop(sending.take()),
            Err(_) => {
                // A send holds it: it drops the sender when it sees the flag; this task covers
                // a send that looked at the flag just before it was set.
                let state = Arc::clone(self);
                self.runtime.spawn(async move {
                    drop(state.sending.lock().await.take());
                });
            }
        }
    }

    /// Cancels the call (the server sees RST_STREAM CANCEL) and wakes every waiting operation.
    /// Does nothing to a call that has already ended.
    pub(crate) fn cancel(self: &Arc<Self>) {
        self.phase.send_replace(Phase::Cancelled);
        match self.receiving.try_lock() {
            Ok(mut receiving) => cancel_stream(&mut receiving),
            Err(_) => {
                // An operation holds it and wakes to cancel; this covers one just finishing.
                let state = Arc::clone(self);
                self.runtime.spawn(async move {
                    cancel_stream(&mut *state.receiving.lock().await);
                });
            }
        }
        self.close_send();
    }

    /// The next message, or `None` at the end (or once cancelled).
    pub(crate) async fn recv(&self) -> Option<Bytes> {
        let mut receiving = self.receiving.lock().await;
        let stream = receiving.stream.as_mut()?;
        self.next_message(stream).await
    }

    async fn next_message(&self, stream: &mut Stream) -> Option<Bytes> {
        let next = if self.is_cancelled() {
            None
        } else {
            tokio::select! {
                biased;
                _ = self.until_cancelled() => None,
                message = stream.recv() => Some(message),
            }
        };
        let message = next.unwrap_or_else(|| {
            stream.cancel();
            None
        });
        if message.is_none() {
            self.mark_ended();
        }
        message
    }

    /// The response headers once they come; `None` if the call ended without any.
    pub(crate) async fn headers(&self) -> Option<Metadata> {
        let mut receiving = self.receiving.lock().await;
        let Some(stream) = receiving.stream.as_mut() else {
            return receiving
                .ended
                .as_ref()
                .map(|response| response.headers.clone())
                .filter(|headers| !headers.is_empty());
        };
        let arrived = !self.is_cancelled()
            && tokio::select! {
                biased;
                _ = self.until_cancelled() => false,
                _ = stream.headers() => true,
            };
        if !arrived {
            stream.cancel();
        }
        stream.headers().await.cloned()
    }

    /// Half-closes, reads to the end (dropping unread messages) and gives the final status.
    /// Again after that, the same status.
    pub(crate) async fn finish(self: &Arc<Self>) -> Response {
        let mut receiving = self.receiving.lock().await;
        if let Some(stream) = receiving.stream.as_mut() {
            self.close_send();
            while self.next_message(stream).await.is_some() {}
        }
        if let Some(stream) = receiving.stream.take() {
            receiving.ended = Some(stream.finish().await);
        }
        self.mark_ended();
        receiving.ended.clone().unwrap_or_else(|| {
            Response::with_status(Code::Internal, "the stream ended without a status")
        })
    }
}

fn cancel_stream(receiving: &mut Receiving) {
    if let Some(stream) = receiving.stream.as_mut() {
        stream.cancel();
    }
}

impl StreamState {
    /// The state of a stream just opened; its sending half goes to its own lock.
    pub(crate) fn new(
        runtime: Handle,
        max_send: usize,
        deadline: Option<Instant>,
        mut stream: Stream,
    ) -> StreamState {
        let sender = stream.take_sender();
        let (phase, _) = watch::channel(Phase::Open);
        StreamState {
            runtime,
            max_send,
            receiving: AsyncMutex::new(Receiving {
                stream: Some(stream),
                ended: None,
            }),
            sending: AsyncMutex::new(sender),
            recv_busy: AtomicBool::new(false),
            send_busy: AtomicBool::new(false),
            close_requested: AtomicBool::new(false),
            deadline,
            phase,
        }
    }
}
