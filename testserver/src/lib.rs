//! An in-process gRPC server for grpcpool's tests, demo and benchmarks.
//!
//! [`TestServer`] serves one raw-bytes unary method, [`UNARY_PATH`]
//! (`/grpcpool.test.Echo/Unary`), over HTTP/2: plaintext, TLS or a unix
//! socket. Any other path answers UNIMPLEMENTED. The response body is the
//! request body, unless request metadata asks otherwise:
//!
//! | key | effect |
//! |---|---|
//! | `x-sleep-ms: N` | sleep N ms before answering |
//! | `x-status-code: N` (0..=16) | answer with that status instead of echoing (0 echoes) |
//! | `x-status-message` | the status message (raw UTF-8) |
//! | `x-status-details-bin` | the status details |
//! | `x-echo-*` | copied into the response headers |
//! | `x-trailer-*` | copied into the response trailers |
//! | `x-raw-trailer-NAME` | the trailer `NAME` (in a trailers-only answer's headers), as sent, replacing the server's own |
//! | `x-truncate-bytes: N` | an OK response's message loses its last N bytes on the wire |
//! | `x-response-compression: gzip` | compress the response messages (if the client accepts gzip) |
//! | `x-fail-attempts: N` | with `x-status-code`, fail only attempts whose `grpc-previous-rpc-attempts` is below N |
//! | `x-pushback-ms: V` | a failure carries `grpc-retry-pushback-ms: V` |
//! | `x-slow-attempts: N` | with `x-sleep-ms`, sleep only in attempts whose `grpc-previous-rpc-attempts` is below N |
//! | `x-report-calls` | an OK unary response carries `x-server-calls`: the calls the server counted so far, this one included |
//!
//! The server accepts gzip-compressed requests; an OK unary response carries the request's
//! `grpc-encoding` as [`RECEIVED_ENCODING_KEY`] and its `grpc-accept-encoding` as
//! [`RECEIVED_ACCEPT_ENCODING_KEY`].
//!
//! An OK response also carries the request's `grpc-timeout`, if it had one, as
//! [`RECEIVED_TIMEOUT_KEY`], and its `grpc-previous-rpc-attempts` as
//! [`RECEIVED_PREVIOUS_ATTEMPTS_KEY`].
//!
//! A non-OK status is sent trailers-only (as tonic does), so `x-echo-*` and
//! `x-trailer-*` entries then arrive together in that one header block.
//! Unparsable control values answer INVALID_ARGUMENT.
//!
//! The server counts connections and calls so tests can check how a client
//! spreads its load. Connections are served one by one with hyper, so a test
//! can crash the server ([`TestServer::kill`]), drain it
//! ([`TestServer::shutdown`]) or have it recycle connections
//! ([`ServerOptions::max_connection_age`]). [`TestCa`] makes throwaway
//! certificates for TLS and mutual TLS tests.

mod body;
mod ca;
mod codec;
mod connection;
mod health;
mod listener;
mod registry;
mod server;
mod service;
pub mod standalone;
mod streaming;
mod tls;

pub use ca::TestCa;
pub use codec::BytesCodec;
pub use health::HEALTH_WATCH_PATH;
pub use server::{ServerOptions, ServerTls, TestServer};
pub use service::{
    ECHO_PREFIX, FAIL_ATTEMPTS_KEY, PUSHBACK_KEY, RAW_TRAILER_PREFIX, RECEIVED_ACCEPT_ENCODING_KEY,
    RECEIVED_AUTHORITY_KEY, RECEIVED_ENCODING_KEY, RECEIVED_PREVIOUS_ATTEMPTS_KEY,
    RECEIVED_TIMEOUT_KEY, REPORT_CALLS_KEY, RESPONSE_COMPRESSION_KEY, SERVER_CALLS_KEY,
    SLEEP_MS_KEY, SLOW_ATTEMPTS_KEY, STATUS_CODE_KEY, STATUS_DETAILS_KEY, STATUS_MESSAGE_KEY,
    TRAILER_PREFIX, TRUNCATE_KEY, UNARY_PATH,
};
pub use streaming::{
    BIDI_PATH, CLIENT_STREAM_PATH, COUNT_KEY, INTERVAL_MS_KEY, SERVER_STREAM_PATH,
};
