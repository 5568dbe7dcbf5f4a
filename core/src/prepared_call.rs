//! A call checked before any slot is taken: its method path, metadata, deadline, limits and
//! retry policy under the pool's settings and service config, and the request it sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::PathAndQuery;
use tonic::metadata::MetadataMap;

use crate::call_options::{CallOptions, Compression};
use crate::channel::H2Channel;
use crate::config::Config;
use crate::connection::Connection;
use crate::metadata_hook::{self, CallHooks, HookError};
use crate::service_config::{HedgingPolicy, MethodConfig, RetryPolicy, ServiceConfig};
use crate::Error;

/// The longest `grpc-timeout` the wire format holds: 99999999 seconds.
const MAX_WIRE_TIMEOUT: Duration = Duration::from_secs(99_999_999);

/// A call checked before any slot is taken: bad input never costs a connection.
/// Made by [`Pool::prepare`](crate::Pool::prepare).
#[derive(Debug)]
pub struct PreparedCall {
    pub(crate) path: PathAndQuery,
    pub(crate) metadata: MetadataMap,
    pub(crate) request: Bytes,
    deadline: Option<Instant>,
    wait_for_ready: bool,
    /// The caller's own deadline and wait-for-ready, before a method config's.
    caller_deadline: Option<Instant>,
    caller_wait_for_ready: bool,
    compression: Option<Compression>,
    /// The request and response limits: the pool's, or the method config's when smaller.
    pub(crate) max_send: usize,
    max_receive: usize,
    /// The method config when it has a retry or hedging policy; `None`: only transparent
    /// retries.
    retry_policy: Option<Arc<MethodConfig>>,
    /// `per_call_retry_buffer_size`: a unary request larger than this is not retried or
    /// hedged (it is not kept for another attempt), as gRPC A6 has it.
    retry_buffer: usize,
    /// The pool's and the call's metadata hooks, run for each attempt; `None` without any.
    hooks: Option<Box<CallHooks>>,
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
            caller_deadline: options.deadline,
            caller_wait_for_ready: options.wait_for_ready,
            compression: options.compression,
            max_send: config.max_send_message_size,
            max_receive: config.max_receive_message_size,
            retry_policy: None,
            retry_buffer: config.per_call_retry_buffer_size,
            hooks: CallHooks::of(
                config.metadata_hook.as_ref(),
                options.metadata_hook.as_ref(),
            ),
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

    /// Checks the call again under a target's own settings and service config (a target with
    /// settings of its own): the caller's deadline and wait-for-ready with that target's
    /// method config over them, and its message limits.
    pub(crate) fn retarget(
        &mut self,
        config: &Config,
        service_config: Option<&ServiceConfig>,
    ) -> Result<(), Error> {
        self.deadline = self.caller_deadline;
        self.wait_for_ready = self.caller_wait_for_ready;
        self.max_send = config.max_send_message_size;
        self.max_receive = config.max_receive_message_size;
        self.retry_policy = None;
        self.retry_buffer = config.per_call_retry_buffer_size;
        if let Some(method_config) =
            service_config.and_then(|service| service.method(self.path.as_str()))
        {
            let method_config = Arc::clone(method_config);
            self.apply(&method_config);
        }
        if self.request.len() > self.max_send {
            return Err(Error::MessageTooLarge {
                size: self.request.len(),
                limit: self.max_send,
            });
        }
        Ok(())
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
        if method_config.retry_policy.is_some() || method_config.hedging_policy.is_some() {
            self.retry_policy = Some(Arc::clone(method_config));
        }
    }

    /// The method's hedging policy, if its service config entry has one and the request fits
    /// the per-call retry buffer.
    pub(crate) fn hedging_policy(&self) -> Option<&HedgingPolicy> {
        self.buffered()
            .and_then(|method| method.hedging_policy.as_ref())
    }

    /// The method's retry policy, if its service config entry has one and the request fits
    /// the per-call retry buffer.
    pub(crate) fn retry_policy(&self) -> Option<&RetryPolicy> {
        self.buffered()
            .and_then(|method| method.retry_policy.as_ref())
    }

    /// The method config with a policy, when the request can be kept for another attempt.
    fn buffered(&self) -> Option<&MethodConfig> {
        if self.request.len() > self.retry_buffer {
            return None;
        }
        self.retry_policy.as_deref()
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

    /// Names the target the call runs on, for its metadata hooks (nothing to do without any).
    pub(crate) fn bind_target(&mut self, target: &str) {
        if let Some(hooks) = &mut self.hooks {
            hooks.bind(target);
        }
    }

    /// The request metadata of the attempt after `previous_attempts` others: the call's own,
    /// then what its hooks add; a hook's failure as the status the attempt ends with.
    pub(crate) fn attempt_metadata(
        &self,
        previous_attempts: u32,
    ) -> Result<MetadataMap, HookError> {
        metadata_hook::attempt_metadata(
            self.hooks.as_deref(),
            self.path.as_str(),
            previous_attempts,
            &self.metadata,
        )
        .map(std::borrow::Cow::into_owned)
    }

    /// An attempt's request: `metadata` (from [`PreparedCall::attempt_metadata`]),
    /// `extensions`, `message`, and the deadline as `grpc-timeout` (which holds at most 8
    /// digits; longer deadlines are sent as that maximum).
    pub(crate) fn request<T>(
        &self,
        metadata: MetadataMap,
        extensions: http::Extensions,
        message: T,
    ) -> tonic::Request<T> {
        let mut request = tonic::Request::from_parts(metadata, extensions, message);
        if let Some(deadline) = self.deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            request.set_timeout(remaining.min(MAX_WIRE_TIMEOUT));
        }
        request
    }
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
