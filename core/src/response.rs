//! The outcome of a call: its status, headers, trailers and message.

use std::time::Instant;

use bytes::Bytes;

use crate::{Code, Metadata};

/// The outcome of a call: its status, and what the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code; `Code::Ok` on success.
    pub code: Code,
    /// The status message.
    pub message: String,
    /// The status details (`grpc-status-details-bin`, usually a `google.rpc.Status`).
    pub details: Bytes,
    /// Response headers (initial metadata).
    pub headers: Metadata,
    /// Response trailers (trailing metadata).
    pub trailers: Metadata,
    /// The response message; empty unless the status is OK.
    pub body: Bytes,
}

impl Response {
    /// Whether the status is OK.
    pub fn is_ok(&self) -> bool {
        self.code == Code::Ok
    }

    /// A response with only a status, as the client itself produces for deadlines and lost
    /// connections.
    pub fn with_status(code: Code, message: impl Into<String>) -> Response {
        Response {
            code,
            message: message.into(),
            details: Bytes::new(),
            headers: Metadata::new(),
            trailers: Metadata::new(),
            body: Bytes::new(),
        }
    }

    /// A failure that lands at or after `deadline` is the deadline's, as in every gRPC client:
    /// DEADLINE_EXCEEDED with the failure's message kept.
    pub(crate) fn after_deadline(self, deadline: Option<Instant>) -> Response {
        match deadline {
            Some(deadline) if !self.is_ok() && Instant::now() >= deadline => Response {
                code: Code::DeadlineExceeded,
                message: format!("deadline exceeded ({})", self.message),
                ..self
            },
            _ => self,
        }
    }

    pub(crate) fn from_status(status: &tonic::Status, headers: Metadata) -> Response {
        Response {
            code: status.code().into(),
            message: status.message().to_owned(),
            details: status.details().to_vec().into(),
            headers,
            trailers: Metadata::from_wire(status.metadata()),
            body: Bytes::new(),
        }
    }
}
