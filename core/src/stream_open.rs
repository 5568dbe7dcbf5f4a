//! Opening a streaming call: the attempt on the lease's connection and, when the server never
//! processed it (the connection was going away, or refused the stream), the same request on
//! another connection, as unary calls get (gRPC A6 transparent retry); when the server failed
//! it with a status the method's retry policy names before any response headers, another
//! attempt after the policy's backoff (A6 configured retry). The request messages are shared
//! by the attempts: those handed to an attempt before its response headers came are kept, so a
//! new attempt sends them again; once the headers came (the call is committed), or the kept
//! bytes pass the per-call or the pool-wide retry buffer, nothing is kept and no attempt
//! follows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch, Mutex as AsyncMutex};
use tonic::codec::Streaming;

use crate::attempt::{failure_response, stream_error};
use crate::body::CancelSignal;
use crate::call::{reacquire, RetryBudget};
use crate::codec::RawCodec;
use crate::connection::{Connection, OwnedActiveStream};
use crate::lease::Lease;
use crate::metrics::MethodStats;
use crate::prepared_call::PreparedCall;
use crate::retry::{mark_attempt, Pushback, Retries};
use crate::target_pool::TargetPool;
use crate::{Code, Metadata};

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
    /// Still keeping: no headers yet, and under the limits.
    keeping: bool,
    /// `per_call_retry_buffer_size`.
    per_call: usize,
    /// What the pool's streams keep together, and its limit (`retry_buffer_size`).
    pool_kept: Arc<AtomicUsize>,
    pool_limit: usize,
}

impl Kept {
    /// Stops keeping: the call is committed to its attempt; its bytes leave the pool's count.
    fn stop(&mut self) {
        self.keeping = false;
        self.messages = Vec::new();
        self.pool_kept.fetch_sub(self.bytes, Ordering::AcqRel);
        self.bytes = 0;
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.pool_kept.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl RequestBody {
    /// The body of a stream whose messages come through `receiver`, kept for other attempts
    /// within `per_call` bytes and the pool's `pool_limit` shared in `pool_kept`.
    pub(crate) fn new(
        receiver: mpsc::Receiver<Bytes>,
        per_call: usize,
        pool_kept: Arc<AtomicUsize>,
        pool_limit: usize,
    ) -> RequestBody {
        RequestBody {
            receiver: Arc::new(AsyncMutex::new(receiver)),
            kept: Arc::new(Mutex::new(Kept {
                messages: Vec::new(),
                bytes: 0,
                keeping: true,
                per_call,
                pool_kept,
                pool_limit,
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

    /// Keeps a message read from the channel while keeping and within both buffers.
    fn keep(&self, message: &Bytes) {
        let mut kept = self.kept.lock();
        if !kept.keeping {
            return;
        }
        let size = message.len();
        let pool_before = kept.pool_kept.fetch_add(size, Ordering::AcqRel);
        kept.bytes += size;
        if kept.bytes > kept.per_call || pool_before + size > kept.pool_limit {
            kept.stop();
        } else {
            kept.messages.push(message.clone());
        }
    }

    /// The response headers came: the server has the call, nothing more is kept.
    fn headers_came(&self) {
        self.kept.lock().stop();
    }

    /// Whether another attempt could send everything this one was given.
    fn replayable(&self) -> bool {
        self.kept.lock().keeping
    }
}

/// Where a stream's attempts are followed: the connection it runs on now (for that
/// connection's count of streams), its method's metrics, and when its last attempt started
/// (the stream times that attempt to its end).
pub(crate) struct Attempts {
    pub(crate) active: Arc<Mutex<Option<OwnedActiveStream>>>,
    pub(crate) method: Arc<MethodStats>,
    pub(crate) last_started: Arc<Mutex<Instant>>,
}

impl Attempts {
    fn started(&self) {
        self.method.attempt_started();
        *self.last_started.lock() = Instant::now();
    }

    /// An attempt ended in `open`, before the stream got its response head.
    fn failed(&self, code: Code) {
        self.method
            .attempt_ended(code, self.last_started.lock().elapsed());
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
    attempts: Attempts,
) -> Head {
    let active = &attempts.active;
    let mut budget = RetryBudget::default();
    let mut retries = Retries::new(call.retry_policy());
    loop {
        attempts.started();
        let mut extensions = http::Extensions::new();
        extensions.insert(cancel.clone());
        let mut request = call.request(extensions, body.attempt());
        mark_attempt(&mut request, retries.previous_attempts());
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
                    // A status before any response headers: the policy may try again.
                    _ => {
                        let response = failure_response(&status, Metadata::new());
                        let delay = body.replayable().then(|| {
                            retries.after(
                                &response,
                                Pushback::of(status.metadata()),
                                call.deadline(),
                                pool.retry_throttle(),
                                pool.counters(),
                            )
                        });
                        let Some(Some(delay)) = delay else {
                            return Err(status);
                        };
                        let Some(lease) = lease.upgrade() else {
                            return Err(status);
                        };
                        // This attempt is over; the stream times the next one to its end.
                        attempts.failed(response.code);
                        lease.slot().give_back();
                        pool.shared().sleep(delay).await;
                        match reacquire(lease.slot(), &call).await {
                            Ok(next) => {
                                *active.lock() = Some(OwnedActiveStream::new(Arc::clone(&next)));
                                connection = next;
                                continue;
                            }
                            Err(next) => {
                                return Err(tonic::Status::new(
                                    tonic::Code::from(next.code.as_i32()),
                                    format!("{}; then {}", response.message, next.message),
                                ))
                            }
                        }
                    }
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
        attempts.failed(error.code);
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
