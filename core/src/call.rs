//! One unary call: validated input, the attempt on a connection, transparent retry elsewhere
//! when the request never reached the server, and the response with its status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::PathAndQuery;
use tonic::metadata::MetadataMap;

use crate::call_options::{CallOptions, Compression};
use crate::channel::{H2Channel, StreamError};
use crate::codec::RawCodec;
use crate::config::Config;
use crate::connection::Connection;
use crate::response::Response;
use crate::slot::Slot;
use crate::stats::Counters;
use crate::target_pool::TargetPool;
use crate::{Code, Error, Metadata};

/// How many times a call that never left the client is moved to another connection.
const MAX_UNSENT_RETRIES: u32 = 4;
/// How many times a call the server refused unprocessed (REFUSED_STREAM, or above a GOAWAY's
/// last stream) is moved: once, as gRPC A6 allows.
const MAX_REFUSED_RETRIES: u32 = 1;
/// The longest `grpc-timeout` the wire format holds: 99999999 seconds.
const MAX_WIRE_TIMEOUT: Duration = Duration::from_secs(99_999_999);

/// A call checked before any slot is taken: bad input never costs a connection.
/// Made by [`Pool::prepare`](crate::Pool::prepare).
#[derive(Debug)]
pub struct PreparedCall {
    pub(crate) path: PathAndQuery,
    pub(crate) metadata: MetadataMap,
    request: Bytes,
    deadline: Option<Instant>,
    wait_for_ready: bool,
    compression: Option<Compression>,
}

impl PreparedCall {
    pub(crate) fn new(
        config: &Config,
        method: &str,
        request: Bytes,
        options: CallOptions,
    ) -> Result<PreparedCall, Error> {
        let path = parse_method(method)?;
        if request.len() > config.max_send_message_size {
            return Err(Error::MessageTooLarge {
                size: request.len(),
                limit: config.max_send_message_size,
            });
        }
        Ok(PreparedCall {
            path,
            metadata: options.metadata.to_wire()?,
            request,
            deadline: options.deadline,
            wait_for_ready: options.wait_for_ready,
            compression: options.compression,
        })
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// How long acquiring a slot for this call may wait: until its deadline, or
    /// `Config::acquire_timeout` when it has none.
    pub(crate) fn acquire_wait(&self, config: &Config) -> Duration {
        self.deadline.map_or(config.acquire_timeout, |deadline| {
            deadline.saturating_duration_since(Instant::now())
        })
    }

    pub(crate) fn wait_for_ready(&self) -> bool {
        self.wait_for_ready
    }
}

/// Checks a method path: `/package.Service/Method`.
fn parse_method(method: &str) -> Result<PathAndQuery, Error> {
    let invalid = |reason| Error::InvalidMethod {
        method: method.to_owned(),
        reason,
    };
    if method.is_empty() {
        return Err(invalid("the method is empty"));
    }
    let Some(rest) = method.strip_prefix('/') else {
        return Err(invalid(
            "the method must start with '/': /package.Service/Method",
        ));
    };
    match rest.split_once('/') {
        Some((service, name)) if !service.is_empty() && !name.is_empty() && !name.contains('/') => {
        }
        _ => return Err(invalid("expected /package.Service/Method")),
    }
    if !method.bytes().all(|byte| byte.is_ascii_graphic()) || method.contains(['?', '#']) {
        return Err(invalid(
            "the method may hold only printable ASCII without '?' or '#'",
        ));
    }
    PathAndQuery::try_from(method).map_err(|_| invalid("not a valid URI path"))
}

/// What one attempt on one connection came to.
enum Attempt {
    Finished(Response),
    /// The server never processed the request; it may go to another connection.
    Unprocessed(StreamError),
}

/// Runs a call on the slot's connection, moving it when the connection died before the
/// request left (gRPC A6 transparent retry). Every outcome is a `Response`.
pub(crate) async fn run(slot: &Slot, call: PreparedCall) -> Response {
    let pool = slot.pool();
    Counters::bump(&pool.counters().calls_started);
    if call
        .deadline
        .is_some_and(|deadline| Instant::now() >= deadline)
    {
        // Already over (a timeout of 0): as every gRPC client, fail without sending.
        pool.counters().call_finished(Code::DeadlineExceeded);
        return Response::with_status(
            Code::DeadlineExceeded,
            "deadline exceeded before the call started",
        );
    }
    let response = match call.deadline {
        Some(deadline) => match pool.shared().until(deadline, attempts(slot, &call)).await {
            // A failure that lands after the deadline is the deadline's, as in every gRPC client.
            Some(response) if !response.is_ok() && Instant::now() >= deadline => Response {
                code: Code::DeadlineExceeded,
                message: format!("deadline exceeded ({})", response.message),
                ..response
            },
            Some(response) => response,
            None => Response::with_status(
                Code::DeadlineExceeded,
                "deadline exceeded before the response arrived",
            ),
        },
        None => attempts(slot, &call).await,
    };
    let response = closed_under(pool.shared(), response);
    pool.counters().call_finished(response.code);
    response
}

/// A call cut off because the pool shut its connections says so, instead of showing the
/// transport error the shutdown caused (a broken pipe, a reset).
pub(crate) fn closed_under(shared: &crate::shared::Shared, response: Response) -> Response {
    if response.is_ok() || response.code == Code::DeadlineExceeded || !shared.is_closed() {
        return response;
    }
    Response {
        code: Code::Unavailable,
        message: format!(
            "pool closed while the call was in flight ({})",
            response.message
        ),
        ..response
    }
}

async fn attempts(slot: &Slot, call: &PreparedCall) -> Response {
    let pool = slot.pool();
    let mut budget = RetryBudget::default();
    loop {
        let connection = match slot.connection() {
            Some(connection) => connection,
            // A retry earlier found no slot; this call looks for one.
            None => match reacquire(slot, call).await {
                Ok(connection) => connection,
                Err(response) => return response,
            },
        };
        let error = match attempt(&connection, call, &pool.shared().config).await {
            Attempt::Finished(response) => {
                if response.code == Code::Unavailable && connection.is_broken() {
                    pool.connection_failed(&connection);
                }
                return response;
            }
            Attempt::Unprocessed(error) => error,
        };
        if !budget.may_move(pool, &connection, &error) {
            return Response::with_status(error.code, error.message);
        }
        // Give the old slot back before waiting for a new one, so retries in a full pool do
        // not hold slots others wait for.
        slot.give_back();
        if let Err(response) = reacquire(slot, call).await {
            return Response {
                message: format!("{error}; then {}", response.message),
                ..response
            };
        }
    }
}

/// How many more times a call the server never processed may move to another connection
/// (gRPC A6 transparent retry), for unary calls and the opening of streams alike.
#[derive(Default)]
pub(crate) struct RetryBudget {
    unsent: u32,
    refused: u32,
}

impl RetryBudget {
    /// After `error` on `connection`: takes the connection out of rotation when the error says
    /// it is going away, and whether the call may move once more (counted as a transparent
    /// retry when it may).
    pub(crate) fn may_move(
        &mut self,
        pool: &TargetPool,
        connection: &Connection,
        error: &StreamError,
    ) -> bool {
        if error.calm_down {
            pool.note_goaway(connection, h2::Reason::ENHANCE_YOUR_CALM);
        } else if error.connection_lost {
            pool.connection_failed(connection);
        }
        let (retries, limit) = if error.never_sent {
            (&mut self.unsent, MAX_UNSENT_RETRIES)
        } else {
            (&mut self.refused, MAX_REFUSED_RETRIES)
        };
        *retries += 1;
        if *retries > limit {
            return false;
        }
        Counters::bump(&pool.counters().transparent_retries);
        tracing::debug!(target = %pool.text(), error = %error, "moving a call the server never processed");
        true
    }
}

/// Gets a new slot within the call's deadline; the failure as a status.
pub(crate) async fn reacquire(
    slot: &Slot,
    call: &PreparedCall,
) -> Result<Arc<Connection>, Response> {
    let pool = slot.pool();
    let wait = call.acquire_wait(&pool.shared().config);
    match pool.acquire(wait, call.wait_for_ready).await {
        Ok(connection) => {
            slot.take(Arc::clone(&connection));
            Ok(connection)
        }
        Err(error) => Err(Response::with_status(error.code(), error.to_string())),
    }
}

impl PreparedCall {
    /// tonic's client on `connection`, with the configured message size limits, gzip accepted
    /// on responses and the call's request compression.
    pub(crate) fn client(
        &self,
        connection: &Connection,
        config: &Config,
    ) -> tonic::client::Grpc<H2Channel> {
        let grpc = tonic::client::Grpc::new(connection.channel.clone())
            .max_decoding_message_size(config.max_receive_message_size)
            .max_encoding_message_size(config.max_send_message_size)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        match self.compression {
            Some(compression) => grpc.send_compressed(compression.encoding()),
            None => grpc,
        }
    }

    /// The call's request: its metadata, `extensions`, `message`, and the deadline as
    /// `grpc-timeout` (which holds at most 8 digits; longer deadlines are sent as that maximum).
    pub(crate) fn request<T>(&self, extensions: http::Extensions, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::from_parts(self.metadata.clone(), extensions, message);
        if let Some(deadline) = self.deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            request.set_timeout(remaining.min(MAX_WIRE_TIMEOUT));
        }
        request
    }
}

async fn attempt(connection: &Connection, call: &PreparedCall, config: &Config) -> Attempt {
    let _active = connection.stream_started();
    let mut grpc = call.client(connection, config);
    if let Err(error) = grpc.ready().await {
        return Attempt::Unprocessed(error);
    }
    let request = call.request(http::Extensions::new(), call.request.clone());
    let response = match grpc
        .server_streaming(request, call.path.clone(), RawCodec)
        .await
    {
        Ok(response) => response,
        Err(status) => return failed(&status, Metadata::new()),
    };
    let (headers, mut messages, _) = response.into_parts();
    let headers = Metadata::from_wire(&headers);
    let body = match messages.message().await {
        Ok(Some(body)) => body,
        Ok(None) => {
            return Attempt::Finished(Response {
                headers,
                ..Response::with_status(
                    Code::Internal,
                    "the server ended a unary call without a response message",
                )
            })
        }
        Err(status) => return failed(&status, headers),
    };
    match messages.message().await {
        Ok(None) => {}
        Ok(Some(_)) => {
            return Attempt::Finished(Response {
                headers,
                ..Response::with_status(
                    Code::Internal,
                    "the server sent more than one message for a unary call",
                )
            })
        }
        Err(status) => return failed(&status, headers),
    }
    let trailers = match messages.trailers().await {
        Ok(trailers) => trailers
            .map(|trailers| Metadata::from_wire(&trailers))
            .unwrap_or_default(),
        Err(status) => return failed(&status, headers),
    };
    Attempt::Finished(Response {
        code: Code::Ok,
        message: String::new(),
        details: Bytes::new(),
        headers,
        trailers,
        body,
    })
}

/// A failed call: transport errors the server never saw are retried, everything else is a status.
fn failed(status: &tonic::Status, headers: Metadata) -> Attempt {
    match stream_error(status) {
        Some(error) if error.unprocessed => Attempt::Unprocessed(error.clone()),
        _ => Attempt::Finished(failure_response(status, headers)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths_are_checked() {
        assert!(parse_method("/pkg.Service/Method").is_ok());
        for bad in [
            "",
            "pkg.Service/Method",
            "/",
            "//Method",
            "/pkg.Service/",
            "/a/b/c",
            "/a b/c",
            "/a/b?x",
        ] {
            assert!(
                matches!(parse_method(bad), Err(Error::InvalidMethod { .. })),
                "{bad:?}"
            );
        }
    }
}
