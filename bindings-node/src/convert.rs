//! Values between JavaScript and the core: metadata, durations, responses.

use std::time::Duration;

use bytes::Bytes;
use grpcpool_core::{CallOptions, Compression, Metadata, MetadataValue, Response};
use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;

use crate::failure::Failure;

/// One metadata entry: a string value, or bytes for keys ending in `-bin`.
#[napi(object)]
pub struct MetadataEntry {
    /// The key, lower case.
    pub key: String,
    /// A string (printable ASCII) or, for `-bin` keys, a Buffer.
    pub value: Either<String, Buffer>,
}

/// A call's whole outcome: status, headers, trailers and body.
#[napi(object)]
pub struct CallResult {
    /// The gRPC status code (0 is OK).
    pub code: i32,
    /// The status message.
    pub details: String,
    /// The `grpc-status-details-bin` bytes (usually a `google.rpc.Status`), if any.
    pub status_details: Option<Buffer>,
    /// Response headers (initial metadata).
    pub headers: Vec<MetadataEntry>,
    /// Response trailers (trailing metadata).
    pub trailers: Vec<MetadataEntry>,
    /// The response message (empty unless the status is OK).
    pub body: Buffer,
}

/// A duration in milliseconds from JavaScript.
pub(crate) fn millis(name: &str, value: f64) -> Result<Duration, Failure> {
    if !value.is_finite() || value < 0.0 {
        return Err(Failure::invalid(format!(
            "{name} must be a finite number of milliseconds >= 0, not {value}"
        )));
    }
    Duration::try_from_secs_f64(value / 1000.0)
        .map_err(|_| Failure::invalid(format!("{name} is out of range: {value}")))
}

/// Request metadata from entries: a Buffer only for keys ending in `-bin`.
pub(crate) fn metadata_from(entries: Vec<MetadataEntry>) -> Metadata {
    let mut metadata = Metadata::new();
    for entry in entries {
        match entry.value {
            Either::A(text) => metadata.insert_ascii(entry.key, text),
            Either::B(bytes) => metadata.insert_binary(entry.key, bytes.to_vec()),
        };
    }
    metadata
}

/// Metadata as entries for JavaScript.
pub(crate) fn metadata_to_js(metadata: &Metadata) -> Vec<MetadataEntry> {
    metadata
        .iter()
        .map(|(key, value)| MetadataEntry {
            key: key.to_owned(),
            value: match value {
                MetadataValue::Ascii(text) => Either::A(text.clone()),
                MetadataValue::Binary(bytes) => Either::B(buffer(bytes.clone())),
            },
        })
        .collect()
}

/// Bytes as a Buffer; no copy when the bytes own their whole allocation.
pub(crate) fn buffer(bytes: Bytes) -> Buffer {
    Buffer::from(Vec::<u8>::from(bytes))
}

/// The whole response for JavaScript.
pub(crate) fn call_result(response: Response) -> CallResult {
    CallResult {
        code: response.code.as_i32(),
        details: response.message,
        status_details: (!response.details.is_empty()).then(|| buffer(response.details)),
        headers: metadata_to_js(&response.headers),
        trailers: metadata_to_js(&response.trailers),
        body: buffer(response.body),
    }
}

/// Call options from the positional arguments JavaScript passes. A timeout of 0 is a deadline
/// already past (DEADLINE_EXCEEDED), as in grpc-js; the compression is a name the core reads
/// (`"gzip"`, or `"identity"` for none).
pub(crate) fn call_options(
    timeout_ms: Option<f64>,
    metadata: Option<Vec<MetadataEntry>>,
    wait_for_ready: Option<bool>,
    compression: Option<String>,
) -> Result<CallOptions, Failure> {
    let mut options = match timeout_ms {
        Some(timeout) => CallOptions::with_timeout(millis("timeoutMs", timeout)?),
        None => CallOptions::default(),
    };
    if let Some(entries) = metadata {
        options = options.metadata(metadata_from(entries));
    }
    if let Some(name) = compression {
        let compression = Compression::from_name(&name).map_err(Failure::from_error)?;
        options = options.compression(compression);
    }
    Ok(options.wait_for_ready(wait_for_ready.unwrap_or(false)))
}
