//! Hedged streaming calls (gRPC A6): attempts of one stream run side by side on connections of
//! their own, each sent every request message from the first (the shared
//! [`RequestBody`]); the first to get response headers wins, the call commits to it, and the
//! others are reset. A call whose buffered messages pass the retry buffer commits to the
//! attempt that has sent the most, and the others are reset at once.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tonic::codec::Streaming;

use crate::attempt::{failure_response, stream_error};
use crate::body::CancelSignal;
use crate::codec::RawCodec;
use crate::connection::{Connection, OwnedActiveStream};
use crate::hedging::{hedge, AttemptFuture, HedgeSlot, Outcome};
use crate::metrics::MethodStats;
use crate::prepared_call::PreparedCall;
use crate::request_body::RequestBody;
use crate::retry::{mark_attempt, Pushback};
use crate::service_config::HedgingPolicy;
use crate::stream_open::{status_of, Head, Opening};
use crate::{Code, Metadata};

/// The attempt that got its response headers first.
struct Opened<'a> {
    response: tonic::Response<Streaming<Bytes>>,
    connection: Arc<Connection>,
    /// The hedge's own slot; `None` for the first attempt, on the lease's slot.
    slot: Option<HedgeSlot<'a>>,
    started: Instant,
}

/// Opens a hedged stream: the first attempt on the lease's connection, hedges under `policy`.
/// The winner's connection becomes the lease's slot and the one `attempts.active` follows.
pub(crate) async fn open(opening: Opening, policy: HedgingPolicy) -> Head {
    let Opening {
        lease,
        pool,
        call,
        connection: first,
        body,
        cancel,
        attempts,
    } = opening;
    let method = Arc::clone(&attempts.method);
    let opened: Result<Opened<'_>, tonic::Status> = hedge(
        &pool,
        &policy,
        one(&call, &policy, first, None, &body, &cancel, &method, 0),
        |slot, previous| {
            let connection = Arc::clone(slot.connection());
            one(
                &call,
                &policy,
                connection,
                Some(slot),
                &body,
                &cancel,
                &method,
                previous,
            )
        },
        || body.replayable(),
        |why| Err(tonic::Status::unavailable(why)),
    )
    .await;
    let opened = opened?;
    let Some(lease) = lease.upgrade() else {
        return Err(tonic::Status::cancelled(
            "the stream was let go while it opened",
        ));
    };
    if let Some(slot) = opened.slot {
        slot.adopt_into(lease.slot());
    }
    *attempts.active.lock() = Some(OwnedActiveStream::new(opened.connection));
    *attempts.last_started.lock() = opened.started;
    Ok(opened.response)
}

/// One attempt of the stream, judged for the driver.
#[allow(clippy::too_many_arguments)] // One attempt's whole context; kept flat for the driver.
fn one<'a>(
    call: &'a PreparedCall,
    policy: &'a HedgingPolicy,
    connection: Arc<Connection>,
    slot: Option<HedgeSlot<'a>>,
    body: &'a RequestBody,
    cancel: &'a CancelSignal,
    method: &'a MethodStats,
    previous_attempts: u32,
) -> AttemptFuture<'a, Result<Opened<'a>, tonic::Status>> {
    Box::pin(async move {
        let (id, messages) = body.hedge();
        let started = Instant::now();
        method.attempt_started();
        let ended = |code: Code| method.attempt_ended(code, started.elapsed());
        let metadata = match call.attempt_metadata(previous_attempts) {
            Ok(metadata) => metadata,
            // A metadata hook failed: nothing was sent; judged as any status, but not against
            // the connection.
            Err(error) => {
                let response = error.response();
                ended(response.code);
                let status = status_of(&response);
                return if policy.is_non_fatal(response.code) {
                    Outcome::NonFatal(Err(status), Pushback::None)
                } else {
                    Outcome::Ended(Err(status))
                };
            }
        };
        let opening = async {
            let mut extensions = http::Extensions::new();
            extensions.insert(cancel.clone());
            let mut request = call.request(metadata, extensions, messages);
            mark_attempt(&mut request, previous_attempts);
            let mut grpc = call.client(&connection);
            if let Err(error) = grpc.ready().await {
                // As tonic wraps a transport error, so failure_response reads it back.
                return Err(tonic::Status::from_error(Box::new(error)));
            }
            grpc.streaming(request, call.path.clone(), RawCodec).await
        };
        let opened = tokio::select! {
            biased;
            () = body.superseded(id) => {
                ended(Code::Cancelled);
                return Outcome::Abandoned;
            }
            opened = opening => opened,
        };
        match opened {
            Ok(response) if body.commit(id) => Outcome::Won(Ok(Opened {
                response,
                connection,
                slot,
                started,
            })),
            // Headers came just after the call committed to another attempt.
            Ok(_) => {
                ended(Code::Cancelled);
                Outcome::Abandoned
            }
            Err(status) => {
                let unprocessed = stream_error(&status).is_some_and(|error| error.unprocessed);
                let response = failure_response(&status, Metadata::new());
                ended(response.code);
                if !unprocessed {
                    // Outlier detection counts answered attempts only: a reset by the call
                    // (another attempt won) or a request never processed is no verdict.
                    connection.attempt_ended(response.code);
                }
                if unprocessed {
                    // Never processed: as good as a non-fatal failure; the next hedge goes now.
                    Outcome::NonFatal(Err(status), Pushback::None)
                } else if policy.is_non_fatal(response.code) {
                    let pushback = Pushback::of(status.metadata());
                    Outcome::NonFatal(Err(status), pushback)
                } else {
                    Outcome::Ended(Err(status))
                }
            }
        }
    })
}
