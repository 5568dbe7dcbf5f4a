//! One attempt of a unary call on one connection, and how its failure reads: a status the
//! server sent, or a transport error the server never saw (which may move elsewhere).

use bytes::Bytes;

use crate::channel::StreamError;
use crate::codec::RawCodec;
use crate::connection::Connection;
use crate::metrics::MethodStats;
use crate::prepared_call::PreparedCall;
use crate::response::Response;
use crate::retry::{mark_attempt, Pushback};
use crate::{Code, Metadata};

/// What one attempt on one connection came to.
pub(crate) enum Attempt {
    /// The call ended with this response; `committed` once response headers had arrived (a
    /// configured retry may try again only before that, gRPC A6).
    Finished {
        response: Response,
        committed: bool,
        pushback: Pushback,
    },
    /// The server never processed the request; it may go to another connection.
    Unprocessed(StreamError),
}

/// Makes one attempt of `call` on `connection`, counted and timed in `method`'s metrics;
/// `previous_attempts` (configured retries or hedges before this one) goes out as
/// `grpc-previous-rpc-attempts` when above 0.
pub(crate) async fn attempt(
    connection: &Connection,
    call: &PreparedCall,
    previous_attempts: u32,
    method: &MethodStats,
) -> Attempt {
    method.attempt_started();
    let started = std::time::Instant::now();
    let outcome = match call.attempt_metadata(previous_attempts) {
        Ok(metadata) => {
            let outcome = attempt_on(connection, call, metadata, previous_attempts).await;
            if let Attempt::Finished { response, .. } = &outcome {
                // A request the server never processed (a GOAWAY, a refused stream) says
                // nothing of how it serves: outlier detection counts only answered attempts.
                connection.attempt_ended(response.code);
            }
            outcome
        }
        // A metadata hook failed: nothing was sent, so nothing is said of the connection; the
        // retry policy may try again, as after any status before response headers.
        Err(error) => Attempt::Finished {
            response: error.response(),
            committed: false,
            pushback: Pushback::None,
        },
    };
    let code = match &outcome {
        Attempt::Finished { response, .. } => response.code,
        Attempt::Unprocessed(error) => error.code,
    };
    method.attempt_ended(code, started.elapsed());
    outcome
}

async fn attempt_on(
    connection: &Connection,
    call: &PreparedCall,
    metadata: tonic::metadata::MetadataMap,
    previous_attempts: u32,
) -> Attempt {
    let _active = connection.stream_started();
    let mut grpc = call.client(connection);
    if let Err(error) = grpc.ready().await {
        return Attempt::Unprocessed(error);
    }
    let mut request = call.request(metadata, http::Extensions::new(), call.request.clone());
    mark_attempt(&mut request, previous_attempts);
    let response = match grpc
        .server_streaming(request, call.path.clone(), RawCodec)
        .await
    {
        Ok(response) => response,
        // A status without response headers (Trailers-Only): not committed.
        Err(status) => return failed(&status, Metadata::new(), false),
    };
    let (headers, mut messages, _) = response.into_parts();
    let headers = Metadata::from_wire(&headers);
    let body = match messages.message().await {
        Ok(Some(body)) => body,
        Ok(None) => {
            return Attempt::Finished {
                response: Response {
                    headers,
                    ..Response::with_status(
                        Code::Internal,
                        "the server ended a unary call without a response message",
                    )
                },
                committed: true,
                pushback: Pushback::None,
            }
        }
        Err(status) => return failed(&status, headers, true),
    };
    match messages.message().await {
        Ok(None) => {}
        Ok(Some(_)) => {
            return Attempt::Finished {
                response: Response {
                    headers,
                    ..Response::with_status(
                        Code::Internal,
                        "the server sent more than one message for a unary call",
                    )
                },
                committed: true,
                pushback: Pushback::None,
            }
        }
        Err(status) => return failed(&status, headers, true),
    }
    let trailers = match messages.trailers().await {
        Ok(trailers) => trailers
            .map(|trailers| Metadata::from_wire(&trailers))
            .unwrap_or_default(),
        Err(status) => return failed(&status, headers, true),
    };
    Attempt::Finished {
        response: Response {
            code: Code::Ok,
            message: String::new(),
            details: Bytes::new(),
            headers,
            trailers,
            body,
        },
        committed: true,
        pushback: Pushback::None,
    }
}

/// A failed call: transport errors the server never saw are retried, everything else is a
/// status; `committed` when response headers had arrived before it.
fn failed(status: &tonic::Status, headers: Metadata, committed: bool) -> Attempt {
    match stream_error(status) {
        Some(error) if error.unprocessed => Attempt::Unprocessed(error.clone()),
        _ => Attempt::Finished {
            response: failure_response(status, headers),
            committed,
            pushback: Pushback::of(status.metadata()),
        },
    }
}

/// The transport error behind a failed call's status, if that is what it was.
pub(crate) fn stream_error(status: &tonic::Status) -> Option<&StreamError> {
    std::error::Error::source(status).and_then(|source| source.downcast_ref::<StreamError>())
}

/// The response for a call that failed with `status`: the transport's own code for a stream
/// error (tonic would say UNKNOWN), the server's status otherwise.
pub(crate) fn failure_response(status: &tonic::Status, headers: Metadata) -> Response {
    if let Some(error) = stream_error(status) {
        return Response {
            headers,
            ..Response::with_status(error.code, error.message.clone())
        };
    }
    let mut response = Response::from_status(status, headers);
    // tonic's decoder reports a message over the receive limit as OUT_OF_RANGE; gRPC
    // specifies RESOURCE_EXHAUSTED. The pinned tonic version is covered by a test.
    if response.code == Code::OutOfRange && response.message.contains("message length too large") {
        response.code = Code::ResourceExhausted;
    }
    response
}
