//! Fuzzes how a call reads the end of a response: `grpc-status`, the percent-encoded
//! `grpc-message`, `grpc-status-details-bin` and the other trailers (and headers), whether they
//! come as trailers after the messages or as a trailers-only response, over the real path: an
//! in-process HTTP/2 server (hyper) answers each call with the headers, data frames and
//! trailers the input describes, and the core's client (its h2 channel, tonic's decoding,
//! `failure_response` and `Response::from_status` in core/src/call.rs and response.rs, the
//! stream's reading in core/src/stream.rs) turns that into a `Response`.
//!
//! For any response it checks that:
//! - the call ends with a status, without a panic anywhere and without waiting for its
//!   deadline;
//! - no `grpc-` or protocol header reaches the caller's headers or trailers;
//! - a canonical `grpc-status` (0-16) is the code the caller sees, with the message the server
//!   percent-encoded and the details it base64-encoded, padded or not, and the server's
//!   other trailers;
//! - OK is only ever reported for `grpc-status: 0` with well-framed messages (exactly one for
//!   a unary call, every one of them received on a stream); a missing or garbled
//!   `grpc-status`, a broken message frame or a missing message is never OK;
//! - without `grpc-status`, the code follows gRPC's HTTP-to-gRPC status mapping.
#![no_main]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use grpcpool_core::{CallOptions, Code, Config, Metadata, MetadataValue, Pool, Response};
use grpcpool_fuzz::{
    base64_encode, block_sigpipe_in_this_thread, expected_metadata, is_user_key, percent_encode,
    same_metadata, sigpipe_aborts, tracing,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body::{Body, Frame};
use libfuzzer_sys::fuzz_target;

/// Long enough never to pass while the server answers at once: a call that waits it out hung.
const DEADLINE: Duration = Duration::from_secs(20);

#[derive(Arbitrary, Debug)]
enum HttpStatus {
    Ok,
    Other(u16),
}

#[derive(Arbitrary, Debug)]
enum ContentType {
    Grpc,
    GrpcProto,
    Missing,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum StatusField {
    Missing,
    Code(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum MessageField {
    /// A message the server percent-encodes as the spec says.
    Text(String),
    /// Raw header bytes (broken `%` escapes, bytes that are not UTF-8 once decoded).
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum DetailsField {
    /// Details the server base64-encodes, padded or not.
    Bytes { data: Vec<u8>, padded: bool },
    /// Raw header bytes.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Case {
    streaming: bool,
    http_status: HttpStatus,
    content_type: ContentType,
    trailers_only: bool,
    status: StatusField,
    message: Option<MessageField>,
    details: Option<DetailsField>,
    /// Other entries in the block that ends the call (trailers, or the trailers-only headers).
    extra: Vec<(String, Vec<u8>)>,
    /// Other response headers, when there are trailers.
    headers: Vec<(String, Vec<u8>)>,
    messages: Vec<Vec<u8>>,
    /// Bytes after the last whole message frame.
    garbage: Option<Vec<u8>>,
}

/// What the server sends for the next call.
#[derive(Debug, Clone, Default)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    data: Vec<Bytes>,
    trailers: Option<HeaderMap>,
}

/// The server, a client pool on it, and the reply the server gives next.
struct Fixture {
    pool: Pool,
    target: String,
    reply: Arc<Mutex<Reply>>,
    _server: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        sigpipe_aborts();
        let server = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(block_sigpipe_in_this_thread)
            .enable_all()
            .build()
            .expect("the server's runtime starts");
        let reply = Arc::new(Mutex::new(Reply::default()));
        let address = server.block_on(serve(Arc::clone(&reply)));
        let mut config = Config::default();
        config.worker_threads = 1;
        let pool = Pool::new(config).expect("the default config is valid");
        Fixture {
            pool,
            target: format!("http://{address}"),
            reply,
            _server: server,
        }
    })
}

/// Starts an HTTP/2 server on 127.0.0.1 that reads each request to its end and answers with
/// the current reply.
async fn serve(reply: Arc<Mutex<Reply>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port is free");
    let address = listener
        .local_addr()
        .expect("a bound listener has an address");
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let reply = Arc::clone(&reply);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let reply = Arc::clone(&reply);
                    async move { answer(request, &reply).await }
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .auto_date_header(false)
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                        .await;
            });
        }
    });
    address
}

async fn answer(
    request: http::Request<hyper::body::Incoming>,
    reply: &Mutex<Reply>,
) -> Result<http::Response<Frames>, Infallible> {
    let _ = http_body_util::BodyExt::collect(request.into_body()).await;
    let reply = reply
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .clone();
    let mut frames: VecDeque<Frame<Bytes>> = reply.data.into_iter().map(Frame::data).collect();
    frames.extend(reply.trailers.map(Frame::trailers));
    let mut response = http::Response::new(Frames(frames));
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers;
    Ok(response)
}

/// A response body of fixed frames.
struct Frames(VecDeque<Frame<Bytes>>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// Headers HTTP/2 forbids (connection-specific) or that describe the body: the server would
/// refuse the response, which says nothing about the client.
fn sendable(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "content-length"
            | "host"
    )
}

fn add(block: &mut HeaderMap, name: &str, value: &[u8]) {
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_bytes(value),
    ) {
        if sendable(&name) && !name.as_str().starts_with("grpc-") {
            block.append(name, value);
        }
    }
}

/// What the input means the server sends, and the block that ends the call (the headers when
/// trailers-only, else the trailers) as sent.
fn reply_for(case: &Case) -> (Reply, HeaderMap) {
    let status = match case.http_status {
        HttpStatus::Ok => StatusCode::OK,
        // A final status: 200 to 599.
        HttpStatus::Other(code) => StatusCode::from_u16(200 + code % 400).unwrap_or(StatusCode::OK),
    };
    let mut headers = HeaderMap::new();
    let content_type: Option<&[u8]> = match &case.content_type {
        ContentType::Grpc => Some(b"application/grpc"),
        ContentType::GrpcProto => Some(b"application/grpc+proto"),
        ContentType::Missing => None,
        ContentType::Other(text) => Some(text.as_bytes()),
    };
    if let Some(value) = content_type.and_then(|text| HeaderValue::from_bytes(text).ok()) {
        headers.insert(http::header::CONTENT_TYPE, value);
    }
    let mut block = HeaderMap::new();
    match &case.status {
        StatusField::Missing => {}
        StatusField::Code(code) => add_raw(&mut block, "grpc-status", code.to_string().as_bytes()),
        StatusField::Raw(bytes) => add_raw(&mut block, "grpc-status", bytes),
    }
    match &case.message {
        Some(MessageField::Text(text)) => {
            add_raw(&mut block, "grpc-message", percent_encode(text).as_bytes())
        }
        Some(MessageField::Raw(bytes)) => add_raw(&mut block, "grpc-message", bytes),
        None => {}
    }
    match &case.details {
        Some(DetailsField::Bytes { data, padded }) => add_raw(
            &mut block,
            "grpc-status-details-bin",
            base64_encode(data, *padded).as_bytes(),
        ),
        Some(DetailsField::Raw(bytes)) => add_raw(&mut block, "grpc-status-details-bin", bytes),
        None => {}
    }
    for (name, value) in &case.extra {
        add(&mut block, name, value);
    }
    if case.trailers_only {
        // One header block, no body: the status block is the headers.
        for (name, value) in &block {
            headers.append(name.clone(), value.clone());
        }
        let reply = Reply {
            status,
            headers: headers.clone(),
            data: Vec::new(),
            trailers: None,
        };
        return (reply, headers);
    }
    for (name, value) in &case.headers {
        add(&mut headers, name, value);
    }
    let mut data = Vec::new();
    for message in case.messages.iter().take(3) {
        let mut frame = Vec::with_capacity(5 + message.len());
        frame.push(0);
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(message);
        data.push(Bytes::from(frame));
    }
    // Not as an empty DATA frame: h2 allows a connection 100 of those in its life and then
    // goes away (ENHANCE_YOUR_CALM), which thousands of inputs on one connection would reach.
    if let Some(garbage) = case.garbage.as_ref().filter(|garbage| !garbage.is_empty()) {
        data.push(Bytes::copy_from_slice(garbage));
    }
    let reply = Reply {
        status,
        headers,
        data,
        trailers: Some(block.clone()),
    };
    (reply, block)
}

fn add_raw(block: &mut HeaderMap, name: &'static str, value: &[u8]) {
    if let Ok(value) = HeaderValue::from_bytes(value) {
        block.append(HeaderName::from_static(name), value);
    }
}

/// The code a `grpc-status` value stands for, when it is canonical (`0` to `16`, no sign or
/// leading zero).
fn canonical_code(value: &[u8]) -> Option<Code> {
    let text = std::str::from_utf8(value).ok()?;
    let number: i32 = text.parse().ok()?;
    (number.to_string() == text && (0..=16).contains(&number)).then(|| Code::from_i32(number))
}

/// gRPC's mapping for a response without `grpc-status` (doc/http-grpc-status-mapping.md).
fn http_mapping(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// What a body of these data frames holds as gRPC message frames (flag 0, a big-endian
/// length, that many bytes).
#[derive(Debug)]
enum Framing {
    /// Whole frames, nothing else.
    Whole(Vec<Vec<u8>>),
    /// Whole frames, then the start of one cut short.
    Truncated,
    /// A frame with a flag other than 0 (no `grpc-encoding` is sent).
    Invalid,
}

fn framing(data: &[Bytes]) -> Framing {
    let body: Vec<u8> = data
        .iter()
        .flat_map(|chunk| chunk.iter().copied())
        .collect();
    let mut rest = body.as_slice();
    let mut messages = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Framing::Truncated;
        }
        if rest[0] != 0 {
            return Framing::Invalid;
        }
        let length = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let Some(message) = rest.get(5..5 + length) else {
            return Framing::Truncated;
        };
        messages.push(message.to_vec());
        rest = &rest[5 + length..];
    }
    Framing::Whole(messages)
}

/// What the call must end with.
#[derive(Debug, PartialEq)]
enum Expect {
    Code(Code),
    NotOk,
}

/// Makes the call the input asks for: the response, and the messages a stream received.
fn call(fixture: &Fixture, streaming: bool) -> (Response, Vec<Bytes>) {
    let options = CallOptions::with_timeout(DEADLINE).wait_for_ready(true);
    let pool = &fixture.pool;
    let outcome = if streaming {
        let opening = pool.open_stream(&fixture.target, "/fuzz.Echo/Stream", options);
        pool.block_on(async move {
            let mut stream = opening.await.expect("a valid stream call opens");
            stream.close_send();
            let mut received = Vec::new();
            while let Some(message) = stream.recv().await {
                received.push(message);
            }
            (stream.finish().await, received)
        })
    } else {
        let calling = pool.unary(
            &fixture.target,
            "/fuzz.Echo/Unary",
            Bytes::from_static(b"ping"),
            options,
        );
        pool.block_on(async move {
            let response = calling.await.expect("a valid unary call is made");
            let body = response.body.clone();
            (response, vec![body])
        })
    };
    outcome.expect("the fuzz thread may block")
}

fn user_entries(metadata: &Metadata) -> Vec<(String, MetadataValue)> {
    metadata
        .iter()
        .map(|(key, value)| (key.to_owned(), value.clone()))
        .collect()
}

fuzz_target!(|case: Case| {
    if tracing() {
        eprintln!("{case:#?}");
    }
    let fixture = fixture();
    let (reply, block) = reply_for(&case);
    *fixture
        .reply
        .lock()
        .unwrap_or_else(|poison| poison.into_inner()) = reply.clone();
    let started = Instant::now();
    let (response, received) = call(fixture, case.streaming);
    let shown = format!("{case:?}\n=> {response:?}");

    assert!(
        started.elapsed() < DEADLINE / 2,
        "the call waited for its deadline: {shown}"
    );
    for (key, _) in response.headers.iter().chain(response.trailers.iter()) {
        assert!(is_user_key(key), "{key:?} reached the caller: {shown}");
    }

    let grpc_status = block
        .get("grpc-status")
        .map(|value| value.as_bytes().to_vec());
    let status_code = grpc_status.as_deref().and_then(canonical_code);
    let framing = framing(&reply.data);
    let messages = match framing {
        Framing::Whole(messages) => Some(messages),
        Framing::Truncated | Framing::Invalid => None,
    };
    // What the call must end with, and whether that is the server's own status.
    let (expect, servers) = match (&messages, &grpc_status, status_code) {
        (None, _, _) => (Expect::NotOk, false),
        // A unary call reads one message and then the end; a second message is a protocol
        // violation before any status.
        (Some(messages), _, _) if !case.streaming && messages.len() >= 2 => {
            (Expect::Code(Code::Internal), false)
        }
        (Some(_), None, _) => (Expect::Code(http_mapping(reply.status)), false),
        (Some(_), Some(_), None) => (Expect::NotOk, false),
        (Some(messages), Some(_), Some(Code::Ok)) if !case.streaming && messages.is_empty() => {
            (Expect::Code(Code::Internal), false)
        }
        (Some(_), Some(_), Some(code)) => (Expect::Code(code), true),
    };
    match expect {
        Expect::NotOk => assert_ne!(response.code, Code::Ok, "{shown}"),
        Expect::Code(code) => assert_eq!(response.code, code, "{shown}"),
    }

    if response.is_ok() {
        let messages = messages.unwrap_or_default();
        if case.streaming {
            let received: Vec<&[u8]> = received.iter().map(|message| message.as_ref()).collect();
            let sent: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            assert_eq!(received, sent, "messages: {shown}");
        } else {
            assert_eq!(
                response.body.as_ref(),
                messages[0].as_slice(),
                "body: {shown}"
            );
        }
    }
    if servers && !response.is_ok() {
        // The server's own status: its message, details and trailers as it sent them.
        if let Some(MessageField::Text(text)) = &case.message {
            assert_eq!(&response.message, text, "grpc-message: {shown}");
        }
        if let Some(DetailsField::Bytes { data, .. }) = &case.details {
            assert_eq!(
                response.details.as_ref(),
                data.as_slice(),
                "details: {shown}"
            );
        }
    }
    if servers {
        let expected = expected_metadata(&block);
        let trailers = user_entries(&response.trailers);
        if case.trailers_only {
            // One header block: its entries may be shown as headers or as trailers.
            let headers = user_entries(&response.headers);
            assert!(
                same_metadata(&trailers, &expected) || same_metadata(&headers, &expected),
                "trailers-only entries: {shown}"
            );
        } else {
            assert!(same_metadata(&trailers, &expected), "trailers: {shown}");
            assert!(
                same_metadata(
                    &user_entries(&response.headers),
                    &expected_metadata(&reply.headers)
                ),
                "headers: {shown}"
            );
        }
    }
});
