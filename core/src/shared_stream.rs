//! A streaming call shared by every thread and task that holds it: each operation takes
//! `&self`, so one side may send while another reads, and any of them may cancel. This is the
//! stream every face (C, Python, Node) wraps; none keeps a state machine of its own.
//!
//! The sending half is taken out of the core [`Stream`] when it is shared, so a send waiting
//! under HTTP/2 flow control and a read waiting for a message hold different locks. Each half
//! runs one operation at a time, claimed when the operation is started (not when its future is
//! first polled), so a second concurrent send, or a second concurrent read, headers or finish,
//! is refused at once with [`Error::Busy`]: never queued, so a fast sender still waits on flow
//! control. Cancel is a watched phase every waiting operation selects on, so it wakes them from
//! any thread. An operation whose future is dropped unfinished (a cancelled task, Ctrl-C)
//! abandons that wait only; the call goes on.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::{watch, Mutex as AsyncMutex};

use crate::body::CancelSignal;
use crate::{Code, Error, Metadata, Response, Stream, StreamSender};

/// A streaming call usable through shared references from any thread; cheap to clone, and
/// clones are the same call. The call is cancelled when the last clone (and every operation
/// started on it) is gone before its end.
#[derive(Clone)]
pub struct SharedStream {
    state: Arc<State>,
}

struct State {
    runtime: Handle,
    max_send: usize,
    deadline: Option<Instant>,
    /// The reading half: the core stream until the call is over.
    receiving: AsyncMutex<Option<Stream>>,
    sending: AsyncMutex<Option<StreamSender>>,
    recv_busy: AtomicBool,
    send_busy: AtomicBool,
    close_requested: AtomicBool,
    /// [`Phase`]: waiting operations watch it.
    phase: watch::Sender<Phase>,
    /// Resets the HTTP/2 stream; fired first on a cancel, so the server sees the reset and
    /// not the half-close that dropping the sender would send ahead of it.
    reset: CancelSignal,
    /// The final status, once the reading half has seen the end.
    outcome: Mutex<Option<Response>>,
}

/// Where the call is, as far as waiting operations care.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// The reading half saw the end, and the outcome is recorded.
    Ended,
    /// Cancelled here: everything stops.
    Cancelled,
}

/// Which half of the stream an operation uses.
#[derive(Clone, Copy)]
enum Half {
    Send,
    Recv,
}

/// The right to run one operation on one half; given back when dropped.
struct Claim {
    state: Arc<State>,
    half: Half,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.state
            .busy_flag(self.half)
            .store(false, Ordering::SeqCst);
        // A half-close that came while this send was claimed left the sender to it.
        if matches!(self.half, Half::Send) && self.state.close_requested.load(Ordering::SeqCst) {
            self.state.drop_sender();
        }
    }
}

impl From<Stream> for SharedStream {
    fn from(mut stream: Stream) -> SharedStream {
        let sender = stream.take_sender();
        let reset = stream.cancel_signal();
        let (phase, _) = watch::channel(Phase::Open);
        SharedStream {
            state: Arc::new(State {
                runtime: stream.runtime().clone(),
                max_send: stream.max_send(),
                deadline: stream.deadline(),
                receiving: AsyncMutex::new(Some(stream)),
                sending: AsyncMutex::new(sender),
                recv_busy: AtomicBool::new(false),
                send_busy: AtomicBool::new(false),
                close_requested: AtomicBool::new(false),
                phase,
                reset,
                outcome: Mutex::new(None),
            }),
        }
    }
}

impl SharedStream {
    /// Starts sending one message; the future resolves once the message is handed to the
    /// connection, waiting while HTTP/2 flow control holds the previous one back.
    ///
    /// Refused now with [`Error::MessageTooLarge`] above `Config::max_send_message_size`, and
    /// with [`Error::Busy`] while another send is waiting. The future fails with
    /// [`Error::StreamClosed`] once sending is over: after [`SharedStream::close_send`], a
    /// cancel, the deadline, or the call's end (the outcome then says why).
    pub fn send(
        &self,
        message: Bytes,
    ) -> Result<impl Future<Output = Result<(), Error>> + Send + 'static, Error> {
        if message.len() > self.state.max_send {
            return Err(Error::MessageTooLarge {
                size: message.len(),
                limit: self.state.max_send,
            });
        }
        let claim = self
            .state
            .claim(Half::Send)
            .ok_or(Error::Busy("a send is already waiting on this stream"))?;
        // Decided now, not when the future first runs: a half-close right after starting a
        // send (`write(m); end()`) still sends `m` first.
        let open = !self.state.sending_over();
        Ok(async move { claim.state.send(message, open).await })
    }

    /// Half-closes: no more messages go to the server (after a send in progress, if any).
    /// Reading goes on. Closing again does nothing.
    pub fn close_send(&self) {
        self.state.close_send();
    }

    /// Starts reading the next message; the future gives it, or `None` at the end of the call
    /// (the outcome is then recorded: [`SharedStream::outcome`]). A cancel wakes it with the end.
    ///
    /// Refused with [`Error::Busy`] while another read, headers or finish waits on an open
    /// call; once the call is over, a second reader just waits for the end.
    pub fn recv(&self) -> Result<impl Future<Output = Option<Bytes>> + Send + 'static, Error> {
        let claim = self.claim_reading()?;
        let state = Arc::clone(&self.state);
        Ok(async move {
            match claim {
                Some(claim) => claim.state.recv().await,
                None => {
                    state.ended().await;
                    None
                }
            }
        })
    }

    /// Starts waiting for the response headers (initial metadata); `None` if the call ended
    /// without any. Counts as a read for [`Error::Busy`].
    pub fn headers(
        &self,
    ) -> Result<impl Future<Output = Option<Metadata>> + Send + 'static, Error> {
        let claim = self.claim_reading()?;
        let state = Arc::clone(&self.state);
        Ok(async move {
            match claim {
                Some(claim) => claim.state.headers().await,
                None => nonempty(state.ended().await.headers),
            }
        })
    }

    /// Starts finishing: half-closes, reads to the end (dropping messages not read) and gives
    /// the final status with headers and trailers. Again after that, the same status. Counts as
    /// a read for [`Error::Busy`].
    pub fn finish(&self) -> Result<impl Future<Output = Response> + Send + 'static, Error> {
        // Claimed first: a finish refused as busy leaves the call as it was.
        let claim = self.claim_reading()?;
        self.state.close_send();
        let state = Arc::clone(&self.state);
        Ok(async move {
            match claim {
                Some(claim) => claim.state.finish().await,
                None => state.ended().await,
            }
        })
    }

    /// Cancels the call: the server sees RST_STREAM CANCEL, the slot returns, every waiting
    /// operation wakes (reads with the end, sends with [`Error::StreamClosed`]) and the outcome
    /// is CANCELLED. Does nothing to a call that is already over.
    pub fn cancel(&self) {
        self.state.cancel();
    }

    /// The final status if the call is over (seen by a read, a finish or a cancel), without
    /// waiting.
    pub fn outcome(&self) -> Option<Response> {
        self.state.outcome.lock().clone()
    }

    /// Waits until the call is over, without reading (another reader or a cancel ends it),
    /// and gives its final status.
    pub fn ended(&self) -> impl Future<Output = Response> + Send + 'static {
        let state = Arc::clone(&self.state);
        async move { state.ended().await }
    }

    /// When the call must be over, if it has a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.state.deadline
    }

    /// Whether sending is over: half-closed, cancelled, past the deadline or ended.
    pub fn is_send_closed(&self) -> bool {
        self.state.sending_over()
    }

    /// The reading half's claim: `Some` to run, `None` to wait for the end of a call that is
    /// over (a cancel, say) while another reader finishes.
    fn claim_reading(&self) -> Result<Option<Claim>, Error> {
        match self.state.claim(Half::Recv) {
            Some(claim) => Ok(Some(claim)),
            None if *self.state.phase.borrow() != Phase::Open => Ok(None),
            None => Err(Error::Busy(
                "a read, headers or finish is already waiting on this stream",
            )),
        }
    }
}

impl State {
    fn busy_flag(&self, half: Half) -> &AtomicBool {
        match half {
            Half::Send => &self.send_busy,
            Half::Recv => &self.recv_busy,
        }
    }

    fn claim(self: &Arc<Self>, half: Half) -> Option<Claim> {
        self.busy_flag(half)
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()?;
        Some(Claim {
            state: Arc::clone(self),
            half,
        })
    }

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
        self.close_requested.load(Ordering::SeqCst) || self.call_over()
    }

    /// Whether the call is over for sending whatever the caller asked: cancelled, ended, or
    /// past the deadline.
    fn call_over(&self) -> bool {
        *self.phase.borrow() != Phase::Open
            || self
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Sends a message claimed while sending was `open`; a half-close asked for since then
    /// takes effect after it.
    async fn send(&self, message: Bytes, open: bool) -> Result<(), Error> {
        if !open {
            return Err(Error::StreamClosed);
        }
        let mut sending = self.sending.lock().await;
        let outcome = match sending.as_mut() {
            Some(sender) if !self.call_over() => tokio::select! {
                biased;
                _ = self.until_over() => Err(Error::StreamClosed),
                sent = sender.send(message) => sent,
            },
            _ => Err(Error::StreamClosed),
        };
        // A half-close, cancel or end that came while this send waited takes effect now.
        if outcome.is_err() || self.sending_over() {
            drop(sending.take());
        }
        outcome
    }

    /// Half-closes: the sender is dropped now, or, when a send is claimed (even one whose
    /// future has not run yet), right after that send ends.
    fn close_send(self: &Arc<Self>) {
        self.close_requested.store(true, Ordering::SeqCst);
        // Paired with the claim's drop (flag, then close_requested, both SeqCst): either this
        // sees the send claimed and leaves the sender to it, or the send's end sees the request.
        if !self.send_busy.load(Ordering::SeqCst) {
            self.drop_sender();
        }
    }

    /// Drops the sender, which half-closes the request body.
    fn drop_sender(self: &Arc<Self>) {
        match self.sending.try_lock() {
            Ok(mut sending) => drop(sending.take()),
            Err(_) => {
                // Held for a moment (a send just ending): drop it once it is free.
                let state = Arc::clone(self);
                self.runtime.spawn(async move {
                    drop(state.sending.lock().await.take());
                });
            }
        }
    }

    fn cancel(self: &Arc<Self>) {
        let cancelled = self.phase.send_if_modified(|phase| {
            let open = *phase == Phase::Open;
            if open {
                *phase = Phase::Cancelled;
            }
            open
        });
        if !cancelled {
            return;
        }
        self.reset.cancel();
        match self.receiving.try_lock() {
            Ok(mut receiving) => self.conclude(&mut receiving, true),
            Err(_) => {
                // An operation holds it and wakes to conclude; this covers one just finishing.
                let state = Arc::clone(self);
                self.runtime.spawn(async move {
                    let mut receiving = state.receiving.lock().await;
                    state.conclude(&mut receiving, true);
                });
            }
        }
        self.close_send();
    }

    /// The reading half saw the end (or a cancel): the core stream gives its final status,
    /// which is recorded, and every waiter wakes.
    fn conclude(&self, receiving: &mut Option<Stream>, cancel: bool) {
        let Some(mut stream) = receiving.take() else {
            return;
        };
        if cancel {
            stream.cancel();
        }
        // The call is over, so finishing it does not wait.
        let response = stream.finish().now_or_never().unwrap_or_else(|| {
            Response::with_status(Code::Internal, "the stream did not end when it was over")
        });
        *self.outcome.lock() = Some(response);
        self.phase.send_if_modified(|phase| {
            let open = *phase == Phase::Open;
            if open {
                *phase = Phase::Ended;
            }
            // Waiters for the outcome watch every change, a cancel's too.
            true
        });
    }

    async fn recv(&self) -> Option<Bytes> {
        let mut receiving = self.receiving.lock().await;
        let stream = receiving.as_mut()?;
        let next = if self.is_cancelled() {
            None
        } else {
            tokio::select! {
                biased;
                _ = self.until_cancelled() => None,
                message = stream.recv() => Some(message),
            }
        };
        match next {
            Some(Some(message)) => Some(message),
            Some(None) => {
                self.conclude(&mut receiving, false);
                None
            }
            None => {
                self.conclude(&mut receiving, true);
                None
            }
        }
    }

    async fn headers(&self) -> Option<Metadata> {
        let mut receiving = self.receiving.lock().await;
        let Some(stream) = receiving.as_mut() else {
            drop(receiving);
            return nonempty(self.ended().await.headers);
        };
        let arrived = !self.is_cancelled()
            && tokio::select! {
                biased;
                _ = self.until_cancelled() => false,
                _ = stream.headers() => true,
            };
        if !arrived {
            self.conclude(&mut receiving, true);
            drop(receiving);
            return nonempty(self.ended().await.headers);
        }
        stream.headers().now_or_never().flatten().cloned()
    }

    async fn finish(&self) -> Response {
        while self.recv().await.is_some() {}
        self.ended().await
    }

    /// Waits for the recorded outcome.
    async fn ended(&self) -> Response {
        let mut phase = self.phase.subscribe();
        loop {
            if let Some(response) = self.outcome.lock().clone() {
                return response;
            }
            if phase.changed().await.is_err() {
                return Response::with_status(Code::Internal, "the stream was dropped");
            }
        }
    }
}

/// Headers that are there, or `None`.
fn nonempty(headers: Metadata) -> Option<Metadata> {
    (!headers.is_empty()).then_some(headers)
}

impl std::fmt::Debug for SharedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStream")
            .field("send_closed", &self.is_send_closed())
            .field("ended", &self.outcome().is_some())
            .finish()
    }
}
