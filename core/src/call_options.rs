//! Per-call options: the deadline, metadata, wait-for-ready and compression, declared once
//! for every face.

use std::time::{Duration, Instant};

use crate::{Error, Metadata, MetadataHook};

/// Per-call settings.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// When the call must be over. Sent as `grpc-timeout` and enforced locally.
    pub deadline: Option<Instant>,
    /// Request metadata.
    pub metadata: Metadata,
    /// Wait for a ready connection instead of failing fast with UNAVAILABLE while the target
    /// cannot be reached.
    pub wait_for_ready: bool,
    /// How request messages are compressed; `None` sends them as they are. Responses
    /// compressed with gzip are always accepted.
    pub compression: Option<Compression>,
    /// Adds request metadata to every attempt of this call, after the pool's hook
    /// ([`Config::metadata_hook`](crate::Config::metadata_hook)).
    pub metadata_hook: Option<MetadataHook>,
}

impl CallOptions {
    /// Options with a deadline `timeout` from now.
    pub fn with_timeout(timeout: Duration) -> CallOptions {
        CallOptions {
            deadline: Instant::now().checked_add(timeout),
            ..CallOptions::default()
        }
    }

    /// Sets the metadata.
    pub fn metadata(mut self, metadata: Metadata) -> CallOptions {
        self.metadata = metadata;
        self
    }

    /// Sets wait-for-ready.
    pub fn wait_for_ready(mut self, wait: bool) -> CallOptions {
        self.wait_for_ready = wait;
        self
    }

    /// Sets the call's metadata hook.
    pub fn metadata_hook(mut self, hook: Option<MetadataHook>) -> CallOptions {
        self.metadata_hook = hook;
        self
    }

    /// Compresses the request messages (`grpc-encoding`); the server must support it.
    pub fn compression(mut self, compression: Option<Compression>) -> CallOptions {
        self.compression = compression;
        self
    }
}

/// A message compression the core can apply to requests (and always accepts on responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// gzip, as every gRPC implementation supports.
    Gzip,
}

impl Compression {
    /// The name used on the wire and in the faces' options: `"gzip"`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
        }
    }

    /// The compression named `name` (`"gzip"`); `"identity"` and `""` mean none.
    pub fn from_name(name: &str) -> Result<Option<Compression>, Error> {
        match name.to_ascii_lowercase().as_str() {
            "gzip" => Ok(Some(Compression::Gzip)),
            "" | "identity" | "none" => Ok(None),
            _ => Err(Error::InvalidCompression(name.to_owned())),
        }
    }

    pub(crate) fn encoding(self) -> tonic::codec::CompressionEncoding {
        match self {
            Compression::Gzip => tonic::codec::CompressionEncoding::Gzip,
        }
    }
}

/// One per-call option, as the faces take it.
#[derive(Debug, Clone, Copy)]
pub struct CallOption {
    /// The option's name (snake_case; Node spells it in camelCase, `timeoutMs` for the timeout).
    pub name: &'static str,
    /// What it does, and what its absence means.
    pub summary: &'static str,
}

/// Every per-call option; each face takes all of them on unary and streaming calls.
pub const CALL_OPTIONS: &[CallOption] = &[
    CallOption {
        name: "timeout",
        summary: "How long the call may take, sent as grpc-timeout and enforced locally. 0 means \
                  the deadline is now: the call ends with DEADLINE_EXCEEDED without being sent, \
                  as grpc-go does with a context already done. No timeout: no deadline (a one-shot call's acquire \
                  still waits at most acquire_timeout).",
    },
    CallOption {
        name: "metadata",
        summary: "Request metadata: ASCII values, or bytes for keys ending in -bin.",
    },
    CallOption {
        name: "wait_for_ready",
        summary: "Wait for a connection while the target cannot be reached, instead of failing \
                  fast with UNAVAILABLE. Default false.",
    },
    CallOption {
        name: "compression",
        summary: "gzip compresses request messages (the server must accept gzip); identity or \
                  none sends them as they are (the default). gzip responses are always accepted.",
    },
];

/// A per-call option's value, as read from text by [`parse_call_option`]. Exhaustive, so a
/// face that takes options by name must handle a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOptionValue {
    /// `timeout`: the deadline this long after the call starts (zero: now).
    Timeout(Duration),
    /// `wait_for_ready`.
    WaitForReady(bool),
    /// `compression`; `None` sends messages as they are.
    Compression(Option<Compression>),
}

/// Reads a per-call option from text, as C's `grpcpool_call_options_set` takes it: `timeout`
/// as a duration with its unit (`250ms`, `2s`; `0` is now), `wait_for_ready` as `true` or
/// `false`, `compression` by name. Metadata is added entry by entry instead.
pub fn parse_call_option(name: &str, text: &str) -> Result<CallOptionValue, Error> {
    let invalid = |expected: &str| {
        Error::InvalidConfig(format!("call option {name} takes {expected}, not {text:?}"))
    };
    match name {
        "timeout" => crate::settings::parse_duration(text.trim(), false)
            .map(CallOptionValue::Timeout)
            .ok_or_else(|| invalid("a duration with its unit (250ms, 2s)")),
        "wait_for_ready" => match text.trim() {
            "true" | "1" => Ok(CallOptionValue::WaitForReady(true)),
            "false" | "0" => Ok(CallOptionValue::WaitForReady(false)),
            _ => Err(invalid("true or false")),
        },
        "compression" => Compression::from_name(text.trim()).map(CallOptionValue::Compression),
        _ => Err(Error::InvalidConfig(format!(
            "unknown call option {name:?} (metadata is added entry by entry)"
        ))),
    }
}
