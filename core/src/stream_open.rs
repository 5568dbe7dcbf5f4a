//! Opening a streaming call: the attempt on the lease's connection and, when the server never
//! processed it (the connection was going away, or refused the stream), the same request on
//! another connection, as unary calls get (gRPC A6 transparent retry); when the server failed
//! it with a status the method's retry policy names before any response headers, another
//! attempt after the policy's backoff (A6 configured retry). The request messages are shared
//! by the attempts (crate::request_body): a new attempt sends those kept again; once the call
//! is committed (response headers, or the retry buffer passed) no attempt follows. Hedged
//! streams open in crate::stream_hedging.

use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tonic::codec::Streaming;

use crate::attempt::{failure_response, stream_error};
use crate::body::CancelSignal;
use crate::call::{reacquire, RetryBudget};
use crate::codec::RawCodec;
use crate::connection::{Connection, OwnedActiveStream};
use crate::lease::Lease;
use crate::metrics::MethodStats;
use crate::prepared_call::PreparedCall;
use crate::request_body::RequestBody;
use crate::retry::{mark_attempt, Pushback, Retries};
use crate::target_pool::TargetPool;
use crate::{Code, Metadata};

/// What opening a stream gives: the response head, or the status it failed with.
pub(crate) type Head = Result<tonic::Response<Streaming<Bytes>>, tonic::Status>;

/// What opening a stream starts from: its lease (held weakly: a stream let go while it opens
/// gives its slot back at once), target, call, the lease's connection, the request messages,
/// the caller's cancel and where the attempts are followed.
pub(crate) struct Opening {
    pub(crate) lease: Weak<Lease>,
    pub(crate) pool: Arc<TargetPool>,
    pub(crate) call: PreparedCall,
    pub(crate) connection: Arc<Connection>,
    pub(crate) body: RequestBody,
    pub(crate) cancel: CancelSignal,
    pub(crate) attempts: Attempts,
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
pub(crate) async fn open(opening: Opening) -> Head {
    let Opening {
        lease,
        pool,
        call,
        mut connection,
        body,
        cancel,
        attempts,
    } = opening;
    let active = &attempts.active;
    let mut budget = RetryBudget::default();
    let mut retries = Retries::new(call.retry_policy());
    loop {
        attempts.started();
        // What ended the attempt short of response headers: a request the server never
        // processed (it may move), or a status, with whether the server gave it (a metadata
        // hook's failure never reached it, so says nothing of the connection).
        let failed = match call.attempt_metadata(retries.previous_attempts()) {
            Err(error) => Err((status_of(&error.response()), false)),
            Ok(metadata) => {
                let mut extensions = http::Extensions::new();
                extensions.insert(cancel.clone());
                let mut request = call.request(metadata, extensions, body.attempt());
                mark_attempt(&mut request, retries.previous_attempts());
                let mut grpc = call.client(&connection);
                match grpc.ready().await {
                    Err(error) => Ok(error),
                    Ok(()) => match grpc.streaming(request, call.path.clone(), RawCodec).await {
                        Ok(response) => {
                            body.headers_came();
                            return Ok(response);
                        }
                        Err(status) => match stream_error(&status) {
                            Some(error) if error.unprocessed && body.replayable() => {
                                Ok(error.clone())
                            }
                            _ => Err((status, true)),
                        },
                    },
                }
            }
        };
        let error = match failed {
            Ok(error) => error,
            // A status before any response headers: the policy may try again.
            Err((status, answered)) => {
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
                if answered {
                    connection.attempt_ended(response.code);
                }
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

/// A response's status as tonic's, for a stream whose opening failed before sending.
pub(crate) fn status_of(response: &crate::Response) -> tonic::Status {
    tonic::Status::new(
        tonic::Code::from(response.code.as_i32()),
        response.message.clone(),
    )
}
