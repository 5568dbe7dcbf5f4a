//! The Echo service: one raw-bytes unary method steered by request metadata.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderMap;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::server::{Grpc, UnaryService};
use tonic::{Code, Request, Response, Status};

use crate::body::{ExtraTrailers, Truncate, WithTrailers};
use crate::codec::BytesCodec;
use crate::health::{HealthStates, HealthWatch, HEALTH_WATCH_PATH};
use crate::streaming::{
    Bidi, ClientStream, ServerStream, BIDI_PATH, CLIENT_STREAM_PATH, SERVER_STREAM_PATH,
};

/// Path of the unary echo method.
pub const UNARY_PATH: &str = "/grpcpool.test.Echo/Unary";
/// Request metadata: sleep this many milliseconds before answering.
pub const SLEEP_MS_KEY: &str = "x-sleep-ms";
/// Request metadata: answer with this status code (0..=16) instead of echoing.
pub const STATUS_CODE_KEY: &str = "x-status-code";
/// Request metadata: the message of the status asked for by [`STATUS_CODE_KEY`].
pub const STATUS_MESSAGE_KEY: &str = "x-status-message";
/// Request metadata (binary): the details of the status asked for by [`STATUS_CODE_KEY`].
pub const STATUS_DETAILS_KEY: &str = "x-status-details-bin";
/// Request metadata with keys starting with this prefix is copied into the response headers.
pub const ECHO_PREFIX: &str = "x-echo-";
/// Request metadata with keys starting with this prefix is copied into the response trailers.
pub const TRAILER_PREFIX: &str = "x-trailer-";
/// Request metadata with keys starting with this prefix goes into the response's trailers
/// (the headers of a trailers-only answer) with the prefix taken off, as sent, replacing the
/// server's own entry of that name: `x-raw-trailer-grpc-message: %FF` sends a `grpc-message`
/// that is not UTF-8. A `-bin` entry's bytes are sent as they are, not base64-encoded, so
/// `x-raw-trailer-grpc-status-details-bin` can send details that are not base64.
pub const RAW_TRAILER_PREFIX: &str = "x-raw-trailer-";
/// How binary metadata arrives: the standard alphabet, padding optional.
const RAW_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Request metadata: an OK unary response's message loses its last N bytes on the wire, the
/// trailers still saying OK.
pub const TRUNCATE_KEY: &str = "x-truncate-bytes";

/// Request metadata: `gzip` has the server compress its response messages (when the client
/// accepts gzip). The server always accepts gzip-compressed requests.
pub const RESPONSE_COMPRESSION_KEY: &str = "x-response-compression";
/// Response header carrying the `grpc-encoding` the request arrived with, if any.
pub const RECEIVED_ENCODING_KEY: &str = "x-received-grpc-encoding";
/// Response header carrying the `grpc-accept-encoding` the request arrived with, if any.
pub const RECEIVED_ACCEPT_ENCODING_KEY: &str = "x-received-grpc-accept-encoding";

/// Request metadata: with [`STATUS_CODE_KEY`], fail only attempts whose
/// `grpc-previous-rpc-attempts` is below this number (the first attempt has none: 0), so a
/// retrying client succeeds on attempt N + 1.
pub const FAIL_ATTEMPTS_KEY: &str = "x-fail-attempts";

/// Request metadata: with [`SLEEP_MS_KEY`], sleep only in attempts whose
/// `grpc-previous-rpc-attempts` is below this number: a first attempt held while a hedge or a
/// retry is answered at once.
pub const SLOW_ATTEMPTS_KEY: &str = "x-slow-attempts";

/// Request metadata: a failure asked for by [`STATUS_CODE_KEY`] carries this value as
/// `grpc-retry-pushback-ms`.
pub const PUSHBACK_KEY: &str = "x-pushback-ms";

/// Response header carrying the `grpc-previous-rpc-attempts` the request arrived with.
pub const RECEIVED_PREVIOUS_ATTEMPTS_KEY: &str = "x-received-previous-attempts";

/// Response header carrying the `:authority` the request arrived with (an `x-echo-` key, so
/// every method's echo returns it).
pub const RECEIVED_AUTHORITY_KEY: &str = "x-echo-received-authority";

/// Request metadata: an OK unary response carries [`SERVER_CALLS_KEY`].
pub const REPORT_CALLS_KEY: &str = "x-report-calls";

/// Response header (with [`REPORT_CALLS_KEY`]): the calls the server has counted since it
/// started, this one included, so a test can tell that calls never reached it.
pub const SERVER_CALLS_KEY: &str = "x-server-calls";

/// Response header (with [`REPORT_CALLS_KEY`]): the address the server listens on, `ip:port`,
/// so a test calling through discovery can tell which backend answered each call.
pub const SERVED_BY_KEY: &str = "x-echo-served-by";

/// Response header carrying the `grpc-timeout` the request arrived with, if any.
pub const RECEIVED_TIMEOUT_KEY: &str = "x-received-grpc-timeout";

/// Largest message the server decodes or encodes.
const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Per-call counters: the server-wide total and this connection's share.
#[derive(Debug, Clone)]
pub(crate) struct CallCounters {
    pub(crate) total: Arc<AtomicU64>,
    pub(crate) connection: Arc<AtomicU64>,
    /// Calls the client cancelled before they were answered (see [`Unanswered`]).
    pub(crate) cancelled: Arc<AtomicU64>,
}

/// Counts a call as cancelled when its handler is dropped before it answered (hyper drops it
/// on the client's RST_STREAM): a unary call before its response, a stream before its
/// response headers.
pub(crate) struct Unanswered(Option<Arc<AtomicU64>>);

impl Unanswered {
    /// Counts in `counters` until answered.
    pub(crate) fn of(counters: &CallCounters) -> Unanswered {
        Unanswered(Some(Arc::clone(&counters.cancelled)))
    }

    /// The call was answered: no longer counted as cancelled.
    pub(crate) fn answered(&mut self) {
        self.0 = None;
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(cancelled) = self.0.take() {
            cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The HTTP service for one connection: routes the Echo method, answers
/// UNIMPLEMENTED for any other path.
#[derive(Debug, Clone)]
pub(crate) struct EchoService {
    handler: UnaryHandler,
    health: Option<Arc<HealthStates>>,
    served_by: Option<http::HeaderValue>,
}

impl EchoService {
    /// A service counting its calls in `counters`.
    pub(crate) fn new(
        counters: CallCounters,
        delay: Option<Duration>,
        failure: Option<i32>,
        health: Option<Arc<HealthStates>>,
        served_by: Option<http::HeaderValue>,
    ) -> Self {
        Self {
            handler: UnaryHandler {
                counters,
                delay,
                failure,
            },
            health,
            served_by,
        }
    }
}

impl<B> hyper::service::Service<http::Request<B>> for EchoService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = http::Response<WithTrailers>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn call(&self, mut request: http::Request<B>) -> Self::Future {
        let handler = self.handler.clone();
        let health = self.health.clone();
        // The :authority the call came with, as request metadata the echo copies into its
        // response headers (every `x-echo-*` entry is).
        let authority = request
            .uri()
            .authority()
            .and_then(|authority| http::HeaderValue::from_str(authority.as_str()).ok());
        if let Some(authority) = authority {
            request
                .headers_mut()
                .insert(RECEIVED_AUTHORITY_KEY, authority);
        }
        // As request metadata too, so every method's echo carries it (`x-echo-*` is copied).
        if let Some(served_by) = &self.served_by {
            if request.headers().contains_key(REPORT_CALLS_KEY) {
                request
                    .headers_mut()
                    .insert(SERVED_BY_KEY, served_by.clone());
            }
        }
        let mut raw = HeaderMap::new();
        for (name, value) in request.headers() {
            if let Some(raw_name) = name.as_str().strip_prefix(RAW_TRAILER_PREFIX) {
                let value = match raw_name.ends_with("-bin") {
                    // A binary entry arrives base64-encoded; its bytes are what is sent.
                    true => RAW_BASE64
                        .decode(value.as_bytes())
                        .ok()
                        .and_then(|bytes| http::HeaderValue::from_bytes(&bytes).ok()),
                    false => Some(value.clone()),
                };
                if let (Ok(raw_name), Some(value)) =
                    (http::HeaderName::from_bytes(raw_name.as_bytes()), value)
                {
                    raw.insert(raw_name, value);
                }
            }
        }
        Box::pin(async move {
            let mut grpc = Grpc::new(BytesCodec)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE)
                .accept_compressed(CompressionEncoding::Gzip);
            let compress = request
                .headers()
                .get(RESPONSE_COMPRESSION_KEY)
                .is_some_and(|value| value.as_bytes() == b"gzip");
            if compress {
                grpc = grpc.send_compressed(CompressionEncoding::Gzip);
            }
            let counters = handler.counters.clone();
            let response = match request.uri().path() {
                UNARY_PATH => grpc.unary(handler, request).await,
                SERVER_STREAM_PATH => grpc.server_streaming(ServerStream(counters), request).await,
                CLIENT_STREAM_PATH => grpc.client_streaming(ClientStream(counters), request).await,
                BIDI_PATH => grpc.streaming(Bidi(counters), request).await,
                HEALTH_WATCH_PATH if health.is_some() => {
                    let states = health.unwrap_or_else(|| Arc::new(HealthStates::new()));
                    grpc.server_streaming(HealthWatch(states), request).await
                }
                path => {
                    let status = Status::unimplemented(format!("unknown method {path}"));
                    return Ok(status
                        .into_http::<tonic::body::Body>()
                        .map(|body| WithTrailers::new(body, None)));
                }
            };
            let mut response = response;
            let mut extra = response
                .extensions_mut()
                .remove::<ExtraTrailers>()
                .map(|ExtraTrailers(map)| map);
            if !raw.is_empty() {
                if response.headers().contains_key("grpc-status") {
                    // Trailers-only: the status travels in the headers.
                    response.headers_mut().extend(raw);
                } else {
                    extra.get_or_insert_with(HeaderMap::new).extend(raw);
                }
            }
            let Truncate(truncate) = response
                .extensions_mut()
                .remove::<Truncate>()
                .unwrap_or_default();
            Ok(response.map(|body| WithTrailers::new(body, extra).truncating(truncate)))
        })
    }
}

/// The unary handler tonic's [`Grpc`] calls with the decoded request.
#[derive(Debug, Clone)]
struct UnaryHandler {
    counters: CallCounters,
    /// Every call waits this long first (a slow backend).
    delay: Option<Duration>,
    /// Every call fails with this status code (a broken backend).
    failure: Option<i32>,
}

impl UnaryService<Bytes> for UnaryHandler {
    type Response = Bytes;
    type Future = BoxFuture<Result<Response<Bytes>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let calls = self.counters.total.fetch_add(1, Ordering::Relaxed) + 1;
        self.counters.connection.fetch_add(1, Ordering::Relaxed);
        let delay = self.delay;
        let failure = self.failure;
        let mut unanswered = Unanswered::of(&self.counters);
        Box::pin(async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            let answer = match failure {
                Some(code) => Err(Status::new(
                    Code::from_i32(code),
                    "this server fails every call",
                )),
                None => echo(request, calls).await,
            };
            unanswered.answered();
            answer
        })
    }
}

/// What the request's metadata asks of the handler.
struct Controls {
    sleep: Option<Duration>,
    status: Option<Status>,
    truncate: Option<usize>,
}

impl Controls {
    fn parse(metadata: &MetadataMap) -> Result<Self, Status> {
        let previous: u32 = match metadata.get("grpc-previous-rpc-attempts") {
            Some(value) => parse_number("grpc-previous-rpc-attempts", value)?,
            None => 0,
        };
        let sleep = sleep_asked(metadata, previous)?;
        let status = match metadata.get(STATUS_CODE_KEY) {
            Some(value) => match parse_number::<i32>(STATUS_CODE_KEY, value)? {
                0 => None,
                code @ 1..=16 => Some(Status::with_details(
                    Code::from_i32(code),
                    status_message(metadata),
                    status_details(metadata)?,
                )),
                other => {
                    return Err(Status::invalid_argument(format!(
                        "{STATUS_CODE_KEY} {other} is not in 0..=16"
                    )))
                }
            },
            None => None,
        };
        let status = match metadata.get(FAIL_ATTEMPTS_KEY) {
            Some(value) => {
                let failing: u32 = parse_number(FAIL_ATTEMPTS_KEY, value)?;
                status.filter(|_| previous < failing)
            }
            None => status,
        };
        let status = match (status, metadata.get(PUSHBACK_KEY)) {
            (Some(mut status), Some(pushback)) => {
                status
                    .metadata_mut()
                    .insert("grpc-retry-pushback-ms", pushback.clone());
                Some(status)
            }
            (status, _) => status,
        };
        let truncate = match metadata.get(TRUNCATE_KEY) {
            Some(value) => Some(parse_number(TRUNCATE_KEY, value)?),
            None => None,
        };
        Ok(Self {
            sleep,
            status,
            truncate,
        })
    }
}

/// The sleep `x-sleep-ms` asks for, in an attempt with `previous` attempts before it (only
/// those below `x-slow-attempts`, when given, sleep).
fn sleep_asked(metadata: &MetadataMap, previous: u32) -> Result<Option<Duration>, Status> {
    let sleep = match metadata.get(SLEEP_MS_KEY) {
        Some(value) => Some(Duration::from_millis(parse_number(SLEEP_MS_KEY, value)?)),
        None => None,
    };
    match metadata.get(SLOW_ATTEMPTS_KEY) {
        Some(value) => {
            let slow: u32 = parse_number(SLOW_ATTEMPTS_KEY, value)?;
            Ok(sleep.filter(|_| previous < slow))
        }
        None => Ok(sleep),
    }
}

/// Sleeps as `x-sleep-ms` and `x-slow-attempts` ask, before a stream's response headers.
pub(crate) async fn hold(metadata: &MetadataMap) -> Result<(), Status> {
    let previous: u32 = match metadata.get("grpc-previous-rpc-attempts") {
        Some(value) => parse_number("grpc-previous-rpc-attempts", value)?,
        None => 0,
    };
    if let Some(sleep) = sleep_asked(metadata, previous)? {
        tokio::time::sleep(sleep).await;
    }
    Ok(())
}

fn parse_number<T: FromStr>(key: &str, value: &MetadataValue<Ascii>) -> Result<T, Status> {
    value
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Status::invalid_argument(format!("{key} is not a number")))
}

/// The raw bytes of `x-status-message` as UTF-8 (lossy), empty when absent.
fn status_message(metadata: &MetadataMap) -> String {
    metadata
        .get(STATUS_MESSAGE_KEY)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// The decoded bytes of `x-status-details-bin`, empty when absent.
fn status_details(metadata: &MetadataMap) -> Result<Bytes, Status> {
    match metadata.get_bin(STATUS_DETAILS_KEY) {
        Some(value) => value
            .to_bytes()
            .map_err(|_| Status::invalid_argument(format!("{STATUS_DETAILS_KEY} is not base64"))),
        None => Ok(Bytes::new()),
    }
}

/// Copies the entries of `from` whose key starts with `prefix` into `to`.
pub(crate) fn copy_prefixed(from: &HeaderMap, prefix: &str, to: &mut HeaderMap) {
    for (name, value) in from {
        if name.as_str().starts_with(prefix) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Answers one call: sleep and status as asked, else the request body echoed,
/// with `x-echo-*` metadata as headers and `x-trailer-*` metadata as trailers.
/// `calls` is the server's count of calls, this one included.
async fn echo(request: Request<Bytes>, calls: u64) -> Result<Response<Bytes>, Status> {
    let controls = Controls::parse(request.metadata())?;
    if let Some(sleep) = controls.sleep {
        tokio::time::sleep(sleep).await;
    }
    let (metadata, _extensions, message) = request.into_parts();
    let headers = metadata.into_headers();
    if let Some(mut status) = controls.status {
        // tonic sends an error trailers-only: headers and trailers travel together.
        let map = status.metadata_mut().as_mut();
        copy_prefixed(&headers, ECHO_PREFIX, map);
        copy_prefixed(&headers, TRAILER_PREFIX, map);
        return Err(status);
    }
    let mut response = Response::new(message);
    copy_prefixed(&headers, ECHO_PREFIX, response.metadata_mut().as_mut());
    for (received, key) in [
        ("grpc-encoding", RECEIVED_ENCODING_KEY),
        ("grpc-accept-encoding", RECEIVED_ACCEPT_ENCODING_KEY),
        ("grpc-previous-rpc-attempts", RECEIVED_PREVIOUS_ATTEMPTS_KEY),
    ] {
        if let Some(value) = headers.get(received) {
            response.metadata_mut().as_mut().insert(key, value.clone());
        }
    }
    if headers.contains_key(REPORT_CALLS_KEY) {
        response
            .metadata_mut()
            .insert(SERVER_CALLS_KEY, MetadataValue::from(calls));
    }
    if let Some(timeout) = headers.get("grpc-timeout") {
        response
            .metadata_mut()
            .as_mut()
            .insert(RECEIVED_TIMEOUT_KEY, timeout.clone());
    }
    let mut trailers = HeaderMap::new();
    copy_prefixed(&headers, TRAILER_PREFIX, &mut trailers);
    if !trailers.is_empty() {
        response.extensions_mut().insert(ExtraTrailers(trailers));
    }
    if let Some(truncate) = controls.truncate {
        response.extensions_mut().insert(Truncate(truncate));
    }
    Ok(response)
}
