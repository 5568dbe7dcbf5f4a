//! Why an operation failed, in the form JavaScript turns into an Error.

use grpcpool_core::{Code, Error};
use napi_derive::napi;

/// Why an operation could not be done. JavaScript turns it into an Error: `kind` picks the class.
#[napi(object)]
pub struct Failure {
    /// `"status"`: a gRPC status (GrpcError); `"invalid"`: bad input (TypeError); `"closed"`:
    /// the pool is closed; `"released"`: the lease was released; `"stream-closed"`: the
    /// stream no longer sends; `"internal"`: the library itself failed.
    pub kind: String,
    /// The gRPC status code that best describes it.
    pub code: i32,
    /// What happened, for people.
    pub message: String,
}

impl Failure {
    fn new(kind: &str, code: Code, message: impl Into<String>) -> Failure {
        Failure {
            kind: kind.to_owned(),
            code: code.as_i32(),
            message: message.into(),
        }
    }

    /// Bad input from JavaScript.
    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new("invalid", Code::InvalidArgument, message)
    }

    /// The pool was closed.
    pub(crate) fn closed() -> Failure {
        Failure::new("closed", Code::Unavailable, "the pool is closed")
    }

    /// The lease was released (or handed to a stream).
    pub(crate) fn released() -> Failure {
        Failure::new(
            "released",
            Code::FailedPrecondition,
            "the lease was released: acquire a new one",
        )
    }

    /// A gRPC status produced without a call (a failed acquire, a cancelled operation).
    pub(crate) fn status(code: Code, message: impl Into<String>) -> Failure {
        Failure::new("status", code, message)
    }

    /// A core error, by kind.
    pub(crate) fn from_error(error: Error) -> Failure {
        let code = error.code();
        let kind = match &error {
            Error::PoolClosed => "closed",
            Error::StreamClosed => "stream-closed",
            Error::AcquireTimeout { .. }
            | Error::Unavailable { .. }
            | Error::MessageTooLarge { .. } => "status",
            Error::Runtime(_) | Error::BlockingInAsync => "internal",
            _ => "invalid",
        };
        Failure::new(kind, code, error.to_string())
    }
}
