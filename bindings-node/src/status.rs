//! The gRPC status codes by name, as `Status` in JavaScript (`status` of @grpc/grpc-js).

#![allow(non_camel_case_types, clippy::upper_case_acronyms)]

use napi_derive::napi;

/// The gRPC status codes, named and numbered as @grpc/grpc-js's `status`.
#[napi]
pub enum Status {
    /// Not an error.
    OK = 0,
    /// The operation was cancelled, typically by the caller.
    CANCELLED = 1,
    /// Unknown error.
    UNKNOWN = 2,
    /// The client specified an invalid argument.
    INVALID_ARGUMENT = 3,
    /// The deadline expired before the operation could complete.
    DEADLINE_EXCEEDED = 4,
    /// Some requested entity was not found.
    NOT_FOUND = 5,
    /// The entity that a client attempted to create already exists.
    ALREADY_EXISTS = 6,
    /// The caller does not have permission to execute the operation.
    PERMISSION_DENIED = 7,
    /// Some resource has been exhausted.
    RESOURCE_EXHAUSTED = 8,
    /// The system is not in a state required for the operation.
    FAILED_PRECONDITION = 9,
    /// The operation was aborted.
    ABORTED = 10,
    /// The operation was attempted past the valid range.
    OUT_OF_RANGE = 11,
    /// The operation is not implemented or supported.
    UNIMPLEMENTED = 12,
    /// An internal invariant was broken.
    INTERNAL = 13,
    /// The service is currently unavailable; retrying with backoff may help.
    UNAVAILABLE = 14,
    /// Unrecoverable data loss or corruption.
    DATA_LOSS = 15,
    /// The request lacks valid authentication credentials.
    UNAUTHENTICATED = 16,
}
