//! Opening a streaming call: the attempt on the lease's connection and, when the server never
//! processed it (the connection was going away, or refused the stream), the same request on
//! another connection, as unary calls get (gRPC A6 transparent retry). The request messages
//! are shared by the attempts: those handed to an attempt before its response headers came are
//! kept, so a moved attempt sends them again; once the headers came nothing is kept.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch, Mutex as AsyncMutex};
use tonic::codec::Streaming;

use crate::attempt::stream_error;
use crate::body::CancelSignal;
use crate::call::{reacquire, RetryBudget};
use crate::codec::RawCodec;
use crate::connection::{Connection, OwnedActiveStream};
use crate::lease::Lease;
use crate::prepared_call::PreparedCall;
use crate::target_pool::TargetPool;

/// What opening a stream gives: the response head, or the status it failed with.
pub(crate) type Head = Result<tonic::Response<Streaming<Bytes>>, tonic::Status>;

/// The request messages of one streaming call, for every attempt at it.
#[derive(Clone)]
pub(crate) struct RequestBody {
    receiver: Arc<AsyncMutex<mpsc::Receiver<Bytes>>>,
    kept: Arc<Mutex<Kept>>,
    /// The attempt that may read the channel: an older attempt's body, still polled by a
    /// connection that failed, stops waiting (without taking a message) when this moves on.
    current: Arc<watch::Sender<u32>>,
}

/// Messages handed to the current attempt before its response headers came.
struct Kept {
    messages: Vec<Bytes>,
    bytes: usize,
    /// Still keeping: no headers yet, and under the limit.
    keeping: bool,
}

/// Past this many bytes kept, an attempt is no longer moved: the memory is not worth it.
const MAX_KEPT_BYTES: usize = 1 << 20;

impl RequestBody {
    pub(crate) fn new(receiver: mpsc::Receiver<Bytes>) -> RequestBody {
        RequestBody {
            receiver: Arc::new(AsyncMutex::new(receiver)),
            kept: Arc::new(Mutex::new(Kept {
                messages: Vec::new(),
                bytes: 0,
                keeping: true,
            })),
            current: Arc::new(watch::channel(0).0),
        }
    }

    /// The body of the next attempt: the kept messages again, then what the caller sends.
    fn attempt(&self) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
        self.current.send_modify(|current| *current += 1);
        let attempt = *self.current.borrow();
        let changes = self.current.subscribe();
        futures_util::stream::unfold(
            (self.clone(), 0usize, changes),
            move |(body, index, mut changes)| async move {
                if let Some(message) = body.replay(index) {
                    return Some((message, (body, index + 1, changes)));
                }
                let message = {
                    let superseded = changes.wait_for(|current| *current != attempt);
                    tokio::pin!(superseded);
                    let mut receiver = tokio::select! {
                        biased;
                        _ = &mut superseded => return None,
                        receiver = body.receiver.lock() => receiver,
                    };
                    // An attempt superseded while it held the channel may have kept one more.
                    match body.replay(index) {
                        Some(message) => message,
                        // `recv` is cancel-safe: a superseded attempt takes no message. What
                        // is read is kept before the channel is let go, for the next attempt.
                        None => tokio::select! {
                            biased;
                            _ = &mut superseded => return None,
                            message = receiver.recv() => {
                                let message = message?;
                                body.keep(&message);
                                message
                            }
                        },
                    }
                };
                Some((message, (body, index + 1, changes)))
            },
        )
    }

    /// The kept message at `index`, or `None` to read the channel.
    fn replay(&self, index: usize) -> Option<Bytes> {
        self.kept.lock().messages.get(index).cloned()
    }

    /// Keeps a message read from the channel while keeping.
    fn keep(&self, message: &Bytes) {
        let mut kept = self.kept.lock();
        if !kept.keeping {
            return;
        }
        kept.bytes += message.len();
        if kept.bytes > MAX_KEPT_BYTES {
            kept.keeping = false;
            kept.messages = Vec::new();
        } else {
            kept.messages.push(message.clone());
        }
    }

    /// The response headers came: the server has the call, nothing more is kept.
    fn headers_came(&self) {
        let mut kept = self.kept.lock();
        kept.keeping = false;
        kept.messages = Vec::new();
    }

    /// Whether another attempt could send everything this one was given.
    fn replayable(&self) -> bool {
        self.kept.lock().keeping
    }
}

/// Opens the call on the lease's connection, moving it while the server never processed it;
/// `active` follows the connection the call runs on. The lease is held weakly: a stream let go
/// (and its lease released) while it opens gives its slot back at once, not after this ends.
pub(crate) async fn open(
    lease: Weak<Lease>,
    pool: Arc<TargetPool>,
    call: PreparedCall,
    mut connection: Arc<Connection>,
    body: RequestBody,
    cancel: CancelSignal,
    active: Arc<Mutex<Option<OwnedActiveStream>>>,
) -> Head {
    let mut budget = RetryBudget::default();
    loop {
        let mut extensions = http::Extensions::new();
        extensions.insert(cancel.clone());
        let request = call.request(extensions, body.attempt());
        let mut grpc = call.client(&connection);
        let error = match grpc.ready().await {
            Err(error) => error,
            Ok(()) => match grpc.streaming(request, call.path.clone(), RawCodec).await {
                Ok(response) => {
                    body.headers_came();
                    return Ok(response);
                }
                Err(status) => match stream_error(&status) {
                    Some(error) if error.unprocessed && body.replayable() => error.clone(),
                    _ => return Err(status),
                },
            },
        };
        if !budget.may_move(&pool, &connection, &error) {
            return Err(tonic::Status::new(
                tonic::Code::from(error.code.as_i32()),
                error.message,
            ));
        }
        let Some(lease) = lease.upgrade() else {
            return Err(tonic::Status::cancelled(
                "the stream was let go while it opened",
            ));
        };
        // The old slot goes back before waiting for a new one, as for unary calls.
        lease.slot().give_back();
        match reacquire(lease.slot(), &call).await {
            Ok(moved) => {
                *active.lock() = Some(OwnedActiveStream::new(Arc::clone(&moved)));
                connection = moved;
            }
            Err(response) => {
                return Err(tonic::Status::new(
                    tonic::Code::from(response.code.as_i32()),
                    format!("{error}; then {}", response.message),
                ))
            }
        }
    }
}
