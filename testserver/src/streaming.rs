//! The streaming methods of the Echo service.
//!
//! - [`SERVER_STREAM_PATH`]: answers `x-count` (default 3) copies of the request message,
//!   `x-interval-ms` apart (default 0).
//! - [`CLIENT_STREAM_PATH`]: answers one message, all request messages joined.
//! - [`BIDI_PATH`]: answers each request message as it arrives; ends when the client does.
//!
//! `x-status-code` and `x-status-message` end any of them with that status after the messages.
//! `x-sleep-ms` (with `x-slow-attempts`) holds the client-streaming and bidi methods' response
//! headers that long; a call reset before its headers counts in `calls_cancelled`.
//! As for the unary method, `x-echo-*` request metadata comes back in the response headers and
//! `x-trailer-*` in the trailers (whatever the status).

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tonic::server::{ClientStreamingService, ServerStreamingService, StreamingService};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::body::ExtraTrailers;
use crate::service::{
    copy_prefixed, hold, CallCounters, Unanswered, ECHO_PREFIX, FAIL_ATTEMPTS_KEY,
    RECEIVED_PREVIOUS_ATTEMPTS_KEY, STATUS_CODE_KEY, STATUS_MESSAGE_KEY, TRAILER_PREFIX,
};

/// Path of the server-streaming echo method.
pub const SERVER_STREAM_PATH: &str = "/grpcpool.test.Echo/ServerStream";
/// Path of the client-streaming method.
pub const CLIENT_STREAM_PATH: &str = "/grpcpool.test.Echo/ClientStream";
/// Path of the bidirectional echo method.
pub const BIDI_PATH: &str = "/grpcpool.test.Echo/Bidi";
/// Request metadata: how many messages the server-streaming method sends.
pub const COUNT_KEY: &str = "x-count";
/// Request metadata: milliseconds between the server-streaming method's messages.
pub const INTERVAL_MS_KEY: &str = "x-interval-ms";

type MessageStream = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send + 'static>>;
type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

fn number(
    request_metadata: &tonic::metadata::MetadataMap,
    key: &str,
    default: u64,
) -> Result<u64, Status> {
    match request_metadata.get(key) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| Status::invalid_argument(format!("{key} is not a number"))),
        None => Ok(default),
    }
}

/// The status asked for by `x-status-code`, if any. With `x-fail-attempts`, only attempts
/// whose `grpc-previous-rpc-attempts` is below it fail, and they fail at once, before any
/// response (trailers-only): what a retrying client may try again.
fn final_status(request_metadata: &tonic::metadata::MetadataMap) -> Result<Option<Status>, Status> {
    let code = number(request_metadata, STATUS_CODE_KEY, 0)?;
    if code == 0 {
        return Ok(None);
    }
    if request_metadata.get(FAIL_ATTEMPTS_KEY).is_some() {
        let failing = number(request_metadata, FAIL_ATTEMPTS_KEY, 0)?;
        let previous = number(request_metadata, "grpc-previous-rpc-attempts", 0)?;
        if previous >= failing {
            return Ok(None);
        }
    }
    let message = request_metadata
        .get(STATUS_MESSAGE_KEY)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    Ok(Some(Status::new(Code::from_i32(code as i32), message)))
}

/// The failure an early attempt gets before any response, with `x-fail-attempts`.
fn early_failure(request_metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
    if request_metadata.get(FAIL_ATTEMPTS_KEY).is_none() {
        return Ok(());
    }
    match final_status(request_metadata)? {
        Some(status) => Err(status),
        None => Ok(()),
    }
}

/// A response carrying the request's `x-echo-*` entries as headers (and its
/// `grpc-previous-rpc-attempts` as [`RECEIVED_PREVIOUS_ATTEMPTS_KEY`]) and its `x-trailer-*`
/// entries as extra trailers.
fn echoing<T>(request_metadata: &tonic::metadata::MetadataMap, message: T) -> Response<T> {
    let mut response = Response::new(message);
    let request_headers = request_metadata.as_ref();
    if let Some(previous) = request_headers.get("grpc-previous-rpc-attempts") {
        response
            .metadata_mut()
            .as_mut()
            .insert(RECEIVED_PREVIOUS_ATTEMPTS_KEY, previous.clone());
    }
    copy_prefixed(
        request_headers,
        ECHO_PREFIX,
        response.metadata_mut().as_mut(),
    );
    let mut trailers = http::HeaderMap::new();
    copy_prefixed(request_headers, TRAILER_PREFIX, &mut trailers);
    if !trailers.is_empty() {
        response.extensions_mut().insert(ExtraTrailers(trailers));
    }
    response
}

fn count(counters: &CallCounters) {
    counters.total.fetch_add(1, Ordering::Relaxed);
    counters.connection.fetch_add(1, Ordering::Relaxed);
}

/// Handler of [`SERVER_STREAM_PATH`].
#[derive(Debug, Clone)]
pub(crate) struct ServerStream(pub(crate) CallCounters);

impl ServerStreamingService<Bytes> for ServerStream {
    type Response = Bytes;
    type ResponseStream = MessageStream;
    type Future = BoxFuture<Result<Response<MessageStream>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        count(&self.0);
        Box::pin(async move {
            early_failure(request.metadata())?;
            let copies = number(request.metadata(), COUNT_KEY, 3)?.min(100_000);
            let interval = Duration::from_millis(number(request.metadata(), INTERVAL_MS_KEY, 0)?);
            let ending = final_status(request.metadata())?;
            let metadata = request.metadata().clone();
            let message = request.into_inner();
            let messages = futures_util::stream::unfold(0u64, move |sent| {
                let message = message.clone();
                async move {
                    if sent == copies {
                        return None;
                    }
                    if sent > 0 && !interval.is_zero() {
                        tokio::time::sleep(interval).await;
                    }
                    Some((Ok(message), sent + 1))
                }
            });
            let ending = futures_util::stream::iter(ending.map(Err));
            Ok(echoing(
                &metadata,
                Box::pin(messages.chain(ending)) as MessageStream,
            ))
        })
    }
}

/// Handler of [`CLIENT_STREAM_PATH`].
#[derive(Debug, Clone)]
pub(crate) struct ClientStream(pub(crate) CallCounters);

impl ClientStreamingService<Bytes> for ClientStream {
    type Response = Bytes;
    type Future = BoxFuture<Result<Response<Bytes>, Status>>;

    fn call(&mut self, request: Request<Streaming<Bytes>>) -> Self::Future {
        count(&self.0);
        let mut unanswered = Unanswered::of(&self.0);
        Box::pin(async move {
            let answer = async move {
                let ending = final_status(request.metadata())?;
                let metadata = request.metadata().clone();
                let mut messages = request.into_inner();
                let mut joined = BytesMut::new();
                while let Some(message) = messages.message().await? {
                    joined.extend_from_slice(&message);
                }
                hold(&metadata).await?;
                match ending {
                    // Trailers-only, as the unary method's errors: both kinds travel together.
                    Some(mut status) => {
                        let map = status.metadata_mut().as_mut();
                        copy_prefixed(metadata.as_ref(), ECHO_PREFIX, map);
                        copy_prefixed(metadata.as_ref(), TRAILER_PREFIX, map);
                        Err(status)
                    }
                    None => Ok(echoing(&metadata, joined.freeze())),
                }
            }
            .await;
            unanswered.answered();
            answer
        })
    }
}

/// Handler of [`BIDI_PATH`].
#[derive(Debug, Clone)]
pub(crate) struct Bidi(pub(crate) CallCounters);

impl StreamingService<Bytes> for Bidi {
    type Response = Bytes;
    type ResponseStream = MessageStream;
    type Future = BoxFuture<Result<Response<MessageStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<Bytes>>) -> Self::Future {
        count(&self.0);
        let mut unanswered = Unanswered::of(&self.0);
        Box::pin(async move {
            let answer = async move {
                early_failure(request.metadata())?;
                hold(request.metadata()).await?;
                let ending = final_status(request.metadata())?;
                let metadata = request.metadata().clone();
                let messages = request.into_inner();
                let ending = futures_util::stream::iter(ending.map(Err));
                Ok(echoing(
                    &metadata,
                    Box::pin(messages.chain(ending)) as MessageStream,
                ))
            }
            .await;
            unanswered.answered();
            answer
        })
    }
}
