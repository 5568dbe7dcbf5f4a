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
use crate::retry::{Pushback, Retries, PREVIOUS_ATTEMPTS_KEY};
use crate::service_config::{MethodConfig, RetryPolicy, ServiceConfig};
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
    /// The request and response limits: the pool's, or the method config's when smaller.
    pub(crate) max_send: usize,
    max_receive: usize,
    /// The method config's retry policy; `None`: only transparent retries.
    retry_policy: Option<Arc<MethodConfig>>,
}

impl PreparedCall {
    /// A call under the pool's settings and the service config's entry for its method: the
    /// sooner of the caller's deadline and the method's timeout, wait-for-ready when either
    /// asks for it, the smaller of each message limit, and the method's retry policy.
    pub(crate) fn configured(
        config: &Config,
        service_config: Option<&ServiceConfig>,
        method: &str,
        request: Bytes,
        options: CallOptions,
    ) -> Result<PreparedCall, Error> {
        let path = parse_method(method)?;
        let method_config = service_config.and_then(|service| service.method(path.as_str()));
        let mut call = PreparedCall {
            path,
            metadata: options.metadata.to_wire()?,
            request,
            deadline: options.deadline,
            wait_for_ready: options.wait_for_ready,
            compression: options.compression,
            max_send: config.max_send_message_size,
            max_receive: config.max_receive_message_size,
            retry_policy: None,
        };
        if let Some(method_config) = method_config {
            call.apply(method_config);
        }
        if call.request.len() > call.max_send {
            return Err(Error::MessageTooLarge {
                size: call.request.len(),
                limit: call.max_send,
            });
        }
        Ok(call)
    }

    /// A call on a lease of the pool `shared` belongs to, under its settings and service config.
    pub(crate) fn on_lease(
        shared: &crate::shared::Shared,
        method: &str,
        request: Bytes,
        options: CallOptions,
    ) -> Result<PreparedCall, Error> {
        PreparedCall::configured(
            &shared.config,
            shared.service_config.as_deref(),
            method,
            request,
            options,
        )
    }

    fn apply(&mut self, method_config: &Arc<MethodConfig>) {
        if let Some(timeout) = method_config.timeout {
            let method_deadline = Instant::now().checked_add(timeout);
            self.deadline = match (self.deadline, method_deadline) {
                (Some(caller), Some(method)) => Some(caller.min(method)),
                (caller, method) => caller.or(method),
            };
        }
        self.wait_for_ready |= method_config.wait_for_ready == Some(true);
        if let Some(limit) = method_config.max_request_message_bytes {
            self.max_send = self.max_send.min(limit);
        }
        if let Some(limit) = method_config.max_response_message_bytes {
            self.max_receive = self.max_receive.min(limit);
        }
        if method_config.retry_policy.is_some() {
            self.retry_policy = Some(Arc::clone(method_config));
        }
    }

    /// The method's retry policy, if its service config entry has one.
    pub(crate) fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.retry_policy
            .as_deref()
            .and_then(|method| method.retry_policy.as_ref())
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
    let mut retries = Retries::new(call.retry_policy());
    loop {
        let connection = match slot.connection() {
            Some(connection) => connection,
            // A retry earlier found no slot; this call looks for one.
            None => match reacquire(slot, call).await {
                Ok(connection) => connection,
                Err(response) => return response,
            },
        };
        let previous = retries.previous_attempts();
        let error = match attempt(&connection, call, previous).await {
            Attempt::Finished {
                response,
                committed,
                pushback,
            } => {
                if response.code == Code::Unavailable && connection.is_broken() {
                    pool.connection_failed(&connection);
                }
                if response.is_ok() {
                    if let Some(throttle) = pool.retry_throttle() {
                        throttle.succeeded();
                    }
                }
                if committed {
                    return response;
                }
                let throttle = pool.retry_throttle();
                let Some(delay) = retries.after(
                    &response,
                    pushback,
                    call.deadline,
                    throttle,
                    pool.counters(),
                ) else {
                    return response;
                };
                // The next attempt picks a connection afresh, as gRPC's do; the slot goes
                // back while this one waits out its backoff.
                slot.give_back();
                pool.shared().sleep(delay).await;
                if let Err(next) = reacquire(slot, call).await {
                    return Response {
                        message: format!("{}; then {}", response.message, next.message),
                        ..next
                    };
                }
                continue;
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
    pub(crate) fn client(&self, connection: &Connection) -> tonic::client::Grpc<H2Channel> {
        let grpc = tonic::client::Grpc::new(connection.channel.clone())
            .max_decoding_message_size(self.max_receive)
            .max_encoding_message_size(self.max_send)
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

async fn attempt(connection: &Connection, call: &PreparedCall, previous_attempts: u32) -> Attempt {
    let _active = connection.stream_started();
    let mut grpc = call.client(connection);
    if let Err(error) = grpc.ready().await {
        return Attempt::Unprocessed(error);
    }
    let mut request = call.request(http::Extensions::new(), call.request.clone());
    if previous_attempts > 0 {
        request.metadata_mut().insert(
            PREVIOUS_ATTEMPTS_KEY,
            tonic::metadata::MetadataValue::from(previous_attempts),
        );
    }
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
