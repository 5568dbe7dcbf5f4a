//! Why an operation failed, in the form JavaScript turns into an Error: the face's one error
//! map (core errors by [`ErrorKind`], and the face's own handle checks).

use grpcpool_core::{Code, Error, ErrorKind};
use napi_derive::napi;

/// Why an operation could not be done. JavaScript turns it into an Error: `kind` picks the class.
#[napi(object)]
pub struct Failure {
    /// `"status"`: a gRPC status (GrpcError); `"invalid"`: bad input (TypeError); `"closed"`:
    /// the pool is closed; `"released"`: the lease was released; `"stream-closed"`: the
    /// stream no longer sends; `"busy"`: other work in flight refuses it now (nothing
    /// happened; try again once that work is done); `"internal"`: the library itself failed.
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

    /// The lease was released.
    pub(crate) fn released() -> Failure {
        Failure::new(
            "released",
            Code::FailedPrecondition,
            "the lease was released: acquire a new one",
        )
    }

    /// A core error, by kind. Exhaustive on purpose: a kind the core adds fails to compile
    /// here until it is given a JavaScript form.
    pub(crate) fn from_error(error: Error) -> Failure {
        let kind = match error.kind() {
            ErrorKind::InvalidTarget
            | ErrorKind::InvalidMethod
            | ErrorKind::InvalidMetadata
            | ErrorKind::InvalidCompression
            | ErrorKind::InvalidConfig
            | ErrorKind::Tls => "invalid",
            // As gRPC clients report them: an oversized request is RESOURCE_EXHAUSTED, no slot
            // in time DEADLINE_EXCEEDED, an unreachable target UNAVAILABLE.
            ErrorKind::MessageTooLarge | ErrorKind::AcquireTimeout | ErrorKind::Unavailable => {
                "status"
            }
            ErrorKind::PoolClosed => return Failure::closed(),
            ErrorKind::StreamClosed => "stream-closed",
            ErrorKind::Busy => "busy",
            ErrorKind::BlockingInAsync | ErrorKind::Runtime => "internal",
        };
        Failure::new(kind, error.code(), error.to_string())
    }
}
