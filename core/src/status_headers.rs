//! The server's status headers made safe for tonic to read.
//!
//! tonic's `Status::from_header_map` (0.14) panics on a `grpc-status-details-bin` that is not
//! base64, and replaces the server's code with UNKNOWN when a `grpc-message` is not UTF-8 once
//! percent-decoded, even for grpc-status 0. PROTOCOL-HTTP2 says a client must not fail a call
//! or throw the message away over such a value; so before tonic reads a response's headers or
//! trailers, details that do not decode are dropped and a message that is not UTF-8 is
//! re-encoded with its invalid bytes as U+FFFD.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use http::{HeaderMap, HeaderValue};
use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, CONTROLS};

const GRPC_MESSAGE: &str = "grpc-message";
const GRPC_STATUS_DETAILS: &str = "grpc-status-details-bin";

/// What tonic decodes details with: the standard alphabet, padding optional.
const DETAILS_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// PROTOCOL-HTTP2's grpc-message encoding: printable ASCII but '%' as is, the rest
/// percent-encoded.
const MESSAGE_ENCODED: &AsciiSet = &CONTROLS.add(b'%').add(0x7f);

/// Drops undecodable details and re-encodes a message that is not UTF-8; leaves well-formed
/// headers as they are. Runs on every response's headers and trailers, so the usual case (no
/// details, an ASCII message or none) is one pass over a few entries comparing names, not a
/// hashed lookup per name (which measured some 900 instructions a call).
pub(crate) fn sanitize(headers: &mut HeaderMap) {
    let mut bad_details = false;
    let mut bad_message = false;
    for (name, value) in headers.iter() {
        match name.as_str() {
            GRPC_STATUS_DETAILS => {
                bad_details |= DETAILS_BASE64.decode(value.as_bytes()).is_err();
            }
            GRPC_MESSAGE => {
                let bytes = value.as_bytes();
                // Plain ASCII without escapes decodes to itself; escapes, or raw bytes above
                // ASCII (which a header value may carry), can make bytes that are not UTF-8.
                if !bytes.is_ascii() || bytes.contains(&b'%') {
                    bad_message |= percent_decode(bytes).decode_utf8().is_err();
                }
            }
            _ => {}
        }
    }
    if bad_details {
        tracing::debug!("dropping a grpc-status-details-bin that is not base64");
        headers.remove(GRPC_STATUS_DETAILS);
    }
    if bad_message {
        reencode_message(headers);
    }
}

/// Replaces `grpc-message` with its UTF-8 reading, invalid bytes as U+FFFD, encoded again.
fn reencode_message(headers: &mut HeaderMap) {
    let Some(message) = headers.get(GRPC_MESSAGE) else {
        return;
    };
    let lossy = percent_decode(message.as_bytes()).decode_utf8_lossy();
    let encoded = utf8_percent_encode(&lossy, MESSAGE_ENCODED).to_string();
    match HeaderValue::from_str(&encoded) {
        Ok(value) => {
            headers.insert(GRPC_MESSAGE, value);
        }
        // Cannot happen (the encoding leaves visible ASCII only); without a message the
        // status still reads right.
        Err(_) => {
            headers.remove(GRPC_MESSAGE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(entries: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (key, value) in entries {
            map.insert(*key, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    #[test]
    fn status_headers_tonic_would_misread_are_made_safe() {
        let mut map = headers(&[
            ("grpc-status", b"0"),
            ("grpc-message", b"ok %FF%FE then %E2%9C%93"),
            ("grpc-status-details-bin", b"not base64!"),
        ]);
        sanitize(&mut map);
        assert!(map.get(GRPC_STATUS_DETAILS).is_none());
        let status = tonic::Status::from_header_map(&map).unwrap();
        assert_eq!(status.code(), tonic::Code::Ok);
        assert_eq!(status.message(), "ok \u{fffd}\u{fffd} then \u{2713}");
        // Raw bytes above ASCII, not percent-encoded (found by fuzz/fuzz_targets/trailers.rs).
        let mut map = headers(&[("grpc-status", b"10"), ("grpc-message", b"\xff\xff\xff")]);
        sanitize(&mut map);
        let status = tonic::Status::from_header_map(&map).unwrap();
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert_eq!(status.message(), "\u{fffd}\u{fffd}\u{fffd}");
    }

    #[test]
    fn well_formed_status_headers_are_left_alone() {
        let original = headers(&[
            ("grpc-status", b"5"),
            ("grpc-message", b"not %25 found %E2%9C%93"),
            ("grpc-status-details-bin", b"AAEC"),
        ]);
        let mut map = original.clone();
        sanitize(&mut map);
        assert_eq!(map, original);
    }
}
