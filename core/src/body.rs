//! Bodies on an h2 stream: the request side sent under flow control, the response side read
//! with its window released as data is consumed.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};

use parking_lot::Mutex;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};

use crate::Code;

/// Cancels a streaming call from outside: the request pump resets the stream (CANCEL), and a
/// response head still awaited is given up (which lets h2 reset it). Travels to the pump in the
/// request's extensions; the attempts of a hedged call share one, so it wakes every poller.
#[derive(Clone, Default)]
pub(crate) struct CancelSignal(Arc<CancelState>);

#[derive(Default)]
struct CancelState {
    cancelled: AtomicBool,
    /// One waker per poller (a pump, a response head, each hedged attempt's): a handful.
    wakers: Mutex<Vec<Waker>>,
}

impl CancelSignal {
    pub(crate) fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        let wakers = std::mem::take(&mut *self.0.wakers.lock());
        for waker in wakers {
            waker.wake();
        }
    }

    /// Whether the call was cancelled; registers `cx` to be woken when it is.
    pub(crate) fn poll_cancelled(&self, cx: &mut Context<'_>) -> bool {
        if self.0.cancelled.load(Ordering::SeqCst) {
            return true;
        }
        {
            let mut wakers = self.0.wakers.lock();
            if !wakers.iter().any(|known| known.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
        }
        // A cancel between the first look and the registration took the list before this
        // waker was in it: look again.
        self.0.cancelled.load(Ordering::SeqCst)
    }
}

/// Moves a request body onto its h2 stream, never buffering more than the peer's window allows
/// (beyond the first frame, see below).
///
/// The body is read one frame ahead, so the last DATA frame carries END_STREAM: a unary
/// request goes out as HEADERS and one DATA frame, as other gRPC clients send it, not with an
/// empty DATA frame after it. Each DATA frame over h2's copy threshold (256 bytes) costs a
/// write of its own, so the empty frame cost a second `sendmsg` per call.
pub(crate) struct RequestPump {
    body: tonic::body::Body,
    stream: h2::SendStream<Bytes>,
    /// Data not yet sent, and whether the body ends after it.
    pending: Option<(Bytes, bool)>,
    /// A frame read ahead of `pending` (to learn whether `pending` was the last); boxed, as
    /// only a streaming body has one, to keep every call's future small.
    peeked: Option<Box<BodyFrame>>,
    /// Whether a DATA frame went out yet (the first is sent without waiting for capacity).
    sent_data: bool,
    cancel: Option<CancelSignal>,
}

/// What polling the request body gave, kept when it was read ahead.
type BodyFrame = Option<Result<Frame<Bytes>, tonic::Status>>;

impl RequestPump {
    pub(crate) fn new(
        body: tonic::body::Body,
        stream: h2::SendStream<Bytes>,
        cancel: Option<CancelSignal>,
    ) -> RequestPump {
        RequestPump {
            body,
            stream,
            pending: None,
            peeked: None,
            sent_data: false,
            cancel,
        }
    }

    /// Sends until the body ends (then closes the sending side), the stream fails, or the call
    /// is cancelled (then resets the stream).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), h2::Error>> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|cancel| cancel.poll_cancelled(cx))
        {
            self.stream.send_reset(h2::Reason::CANCEL);
            return Poll::Ready(Ok(()));
        }
        loop {
            if let Some((data, last)) = &mut self.pending {
                let last = *last;
                if data.is_empty() {
                    self.pending = None;
                    if last {
                        self.stream.send_data(Bytes::new(), true)?;
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
                if !self.sent_data {
                    // The first frame goes to h2 whole, with no window yet: a stream has none
                    // until the connection task opens it, and waiting for one would send the
                    // HEADERS and the DATA of a unary call in two writes, with a wake of this
                    // task between them. It is one frame the caller already holds; h2 sends it
                    // as the window allows, and the frames after it wait for capacity.
                    self.sent_data = true;
                    let chunk = std::mem::take(data);
                    self.stream.send_data(chunk, last)?;
                    if last {
                        self.pending = None;
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
                self.stream.reserve_capacity(data.len());
                if self.stream.capacity() == 0 {
                    match ready!(self.stream.poll_capacity(cx)) {
                        Some(Ok(_)) => continue,
                        Some(Err(error)) => return Poll::Ready(Err(error)),
                        None => return Poll::Ready(Ok(())),
                    }
                }
                let chunk = data.split_to(self.stream.capacity().min(data.len()));
                let ends = last && data.is_empty();
                self.stream.send_data(chunk, ends)?;
                if ends {
                    self.pending = None;
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            let frame = match self.peeked.take() {
                Some(frame) => *frame,
                None => ready!(Pin::new(&mut self.body).poll_frame(cx)),
            };
            match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        // Read ahead: a body with nothing more ends the stream with this data.
                        // A body not ready yet sends it as it is, and ends later.
                        let last = match Pin::new(&mut self.body).poll_frame(cx) {
                            Poll::Ready(None) => true,
                            Poll::Ready(next) => {
                                self.peeked = Some(Box::new(next));
                                false
                            }
                            Poll::Pending => false,
                        };
                        self.pending = Some((data, last));
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.stream.send_trailers(trailers)?;
                            return Poll::Ready(Ok(()));
                        }
                    }
                },
                Some(Err(status)) => {
                    tracing::debug!(%status, "request body failed; resetting the stream");
                    self.stream.send_reset(h2::Reason::CANCEL);
                    return Poll::Ready(Ok(()));
                }
                None => {
                    self.stream.send_data(Bytes::new(), true)?;
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

/// A response body read from an h2 stream; errors come out as gRPC statuses, and its trailers
/// reach tonic sanitized (crate::status_headers) and saying INTERNAL when the last message was
/// cut short.
pub(crate) struct ResponseBody {
    recv: h2::RecvStream,
    data_done: bool,
    framing: MessageFraming,
}

impl ResponseBody {
    pub(crate) fn new(recv: h2::RecvStream) -> ResponseBody {
        ResponseBody {
            recv,
            data_done: false,
            framing: MessageFraming::default(),
        }
    }
}

/// Where the data so far ends in gRPC's length-prefixed framing (1 flag byte, 4 length bytes,
/// the message). tonic 0.14 drops the bytes of an unfinished message when trailers come, so a
/// response cut inside its last message would end OK; this notices it.
#[derive(Default)]
struct MessageFraming {
    /// Prefix bytes seen of the next message (0 between messages).
    prefix: [u8; 5],
    prefix_seen: usize,
    /// Bytes still to come of the current message.
    remaining: u64,
}

impl MessageFraming {
    fn consume(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let taken =
                    usize::try_from(self.remaining).map_or(data.len(), |r| r.min(data.len()));
                self.remaining -= taken as u64;
                data = &data[taken..];
                continue;
            }
            let taken = (self.prefix.len() - self.prefix_seen).min(data.len());
            self.prefix[self.prefix_seen..self.prefix_seen + taken].copy_from_slice(&data[..taken]);
            self.prefix_seen += taken;
            data = &data[taken..];
            if self.prefix_seen == self.prefix.len() {
                let [_, a, b, c, d] = self.prefix;
                self.remaining = u64::from(u32::from_be_bytes([a, b, c, d]));
                self.prefix_seen = 0;
            }
        }
    }

    /// Whether the data stops inside a message's prefix or body.
    fn unfinished(&self) -> Option<String> {
        if self.prefix_seen > 0 {
            Some(format!(
                "the response ended {} bytes into a message's 5-byte prefix",
                self.prefix_seen
            ))
        } else if self.remaining > 0 {
            Some(format!(
                "the response ended {} bytes short of a whole message",
                self.remaining
            ))
        } else {
            None
        }
    }
}

/// Trailers as tonic should read them: sanitized, and INTERNAL in place of an OK (or missing)
/// status when the data ended inside a message, as gRPC's other clients report it.
fn checked_trailers(mut trailers: HeaderMap, framing: &MessageFraming) -> HeaderMap {
    crate::status_headers::sanitize(&mut trailers);
    if let Some(unfinished) = framing.unfinished() {
        let said_ok = trailers
            .get("grpc-status")
            .is_none_or(|status| status.as_bytes() == b"0");
        if said_ok {
            trailers.insert("grpc-status", HeaderValue::from_static("13"));
            if let Ok(message) = HeaderValue::from_str(&unfinished) {
                trailers.insert("grpc-message", message);
            }
            trailers.remove("grpc-status-details-bin");
        }
    }
    trailers
}

fn status_of(error: h2::Error) -> tonic::Status {
    let code = if error.is_io() || error.is_go_away() {
        Code::Unavailable
    } else {
        error.reason().map(Code::from).unwrap_or(Code::Internal)
    };
    tonic::Status::new(tonic::Code::from_i32(code.as_i32()), error.to_string())
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        if !self.data_done {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Give the window back as soon as tonic has the bytes: its decoder bounds
                    // what it buffers by the max message size.
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.framing.consume(&data);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(status_of(error)))),
                None => self.data_done = true,
            }
        }
        match ready!(self.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(checked_trailers(
                trailers,
                &self.framing,
            ))))),
            Ok(None) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(status_of(error)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}
