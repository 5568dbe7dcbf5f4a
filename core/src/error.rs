//! The engine's errors: bad input and pool conditions. A non-OK gRPC status is not one of them.

use std::time::Duration;

use crate::Code;

/// Why the pool could not do what was asked.
///
/// RPC outcomes, including locally produced `DEADLINE_EXCEEDED` and `UNAVAILABLE`, come back as
/// a [`Response`](crate::Response) status instead; only [`Pool::acquire`](crate::Pool::acquire)
/// reports an unreachable target or a full pool as an error, since no call is involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target string could not be parsed.
    #[error("invalid target {target:?}: {reason}")]
    InvalidTarget {
        /// The target as given.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The method path is not of the form `/package.Service/Method`.
    #[error("invalid method {method:?}: {reason}")]
    InvalidMethod {
        /// The method as given.
        method: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The compression is not one the core supports (`gzip`, or `identity` for none).
    #[error("unsupported compression {0:?}: use \"gzip\" or \"identity\"")]
    InvalidCompression(String),
    /// A metadata key or value is not allowed by gRPC.
    #[error("invalid metadata {key:?}: {reason}")]
    InvalidMetadata {
        /// The key as given.
        key: String,
        /// What is wrong with the key or its value.
        reason: &'static str,
    },
    /// The request is larger than `Config::max_send_message_size`.
    #[error("request of {size} bytes exceeds max_send_message_size of {limit} bytes")]
    MessageTooLarge {
        /// The request's size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// TLS material could not be loaded.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// No slot became free on the target within the acquire timeout.
    #[error("no connection slot to {target} within {waited:?}")]
    AcquireTimeout {
        /// The target.
        target: String,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The target has no ready connection and the last attempt to connect failed.
    #[error("{target} is unavailable: {reason}")]
    Unavailable {
        /// The target.
        target: String,
        /// The last connection error.
        reason: String,
    },
    /// The pool has been shut down.
    #[error("the pool is closed")]
    PoolClosed,
    /// A blocking call was made on a thread that runs async code (a tokio runtime's thread,
    /// such as a binding's callback); it would stall that runtime.
    #[error("a blocking call was made from async code; await the async form instead")]
    BlockingInAsync,
    /// A stream's sending side is closed: half-closed, cancelled, or the call has ended (its
    /// final status says why).
    #[error("the stream is closed for sending")]
    StreamClosed,
    /// An operation of the same kind is already waiting on this stream (a second send, or a
    /// second recv, headers or finish); nothing happened.
    #[error("{0}")]
    Busy(&'static str),
    /// The internal runtime could not be started (its threads were refused, say).
    #[error("could not start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// What kind of failure an [`Error`] is: the one classification every face maps, each in one
/// module. Deliberately exhaustive (unlike `Error`), so that a new kind fails to compile in a
/// face that does not map it instead of falling into a catch-all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The target string could not be parsed.
    InvalidTarget,
    /// The method path is malformed.
    InvalidMethod,
    /// A metadata key or value is not allowed.
    InvalidMetadata,
    /// The compression is not one the core supports.
    InvalidCompression,
    /// A message is larger than the pool's limit.
    MessageTooLarge,
    /// A setting is unknown, of the wrong type or out of range.
    InvalidConfig,
    /// TLS material could not be loaded.
    Tls,
    /// No slot became free in time.
    AcquireTimeout,
    /// The target cannot be reached now.
    Unavailable,
    /// The pool is closed.
    PoolClosed,
    /// A blocking call from async code.
    BlockingInAsync,
    /// The stream is closed for sending.
    StreamClosed,
    /// An operation of the same kind is already waiting on the stream.
    Busy,
    /// The runtime could not start.
    Runtime,
}

impl Error {
    /// The kind of failure, for the faces' error maps.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidTarget { .. } => ErrorKind::InvalidTarget,
            Error::InvalidMethod { .. } => ErrorKind::InvalidMethod,
            Error::InvalidMetadata { .. } => ErrorKind::InvalidMetadata,
            Error::InvalidCompression(_) => ErrorKind::InvalidCompression,
            Error::MessageTooLarge { .. } => ErrorKind::MessageTooLarge,
            Error::InvalidConfig(_) => ErrorKind::InvalidConfig,
            Error::Tls(_) => ErrorKind::Tls,
            Error::AcquireTimeout { .. } => ErrorKind::AcquireTimeout,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::PoolClosed => ErrorKind::PoolClosed,
            Error::BlockingInAsync => ErrorKind::BlockingInAsync,
            Error::StreamClosed => ErrorKind::StreamClosed,
            Error::Busy(_) => ErrorKind::Busy,
            Error::Runtime(_) => ErrorKind::Runtime,
        }
    }

    /// The gRPC status code that best describes this error, for bindings that raise one kind of error.
    pub fn code(&self) -> Code {
        match self.kind() {
            ErrorKind::InvalidTarget
            | ErrorKind::InvalidMethod
            | ErrorKind::InvalidMetadata
            | ErrorKind::InvalidCompression
            | ErrorKind::InvalidConfig
            | ErrorKind::Tls => Code::InvalidArgument,
            ErrorKind::MessageTooLarge => Code::ResourceExhausted,
            ErrorKind::AcquireTimeout => Code::DeadlineExceeded,
            ErrorKind::Unavailable | ErrorKind::PoolClosed => Code::Unavailable,
            ErrorKind::BlockingInAsync | ErrorKind::StreamClosed | ErrorKind::Busy => {
                Code::FailedPrecondition
            }
            ErrorKind::Runtime => Code::Internal,
        }
    }
}
