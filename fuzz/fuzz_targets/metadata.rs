//! Fuzzes metadata: the check every call makes on request metadata the faces take from users
//! (`Metadata::to_wire`, core/src/metadata.rs) and the conversion of received headers and
//! trailers into what callers see (`Metadata::from_wire`).
//!
//! Request side, for any list of entries, it checks against the gRPC HTTP/2 spec's grammar
//! (written out here, not taken from the code under test) that:
//! - the list is accepted exactly when every key is 1* of `0-9 a-z _ - .`, is neither a
//!   `grpc-` key nor a protocol header, ends in `-bin` exactly when its value is binary, and
//!   every ASCII value is printable ASCII (0x20-0x7E); a refusal is `InvalidMetadata` naming
//!   the first bad key;
//! - what is accepted comes back unchanged through the wire form (binary values through
//!   base64), with the values of each key in order.
//!
//! Received side, for any header block `http` accepts, it checks that no `grpc-` or protocol
//! header reaches the caller, every other entry does (ASCII values as their bytes, binary ones
//! base64-decoded when canonical base64, padded or not, else as received), and nothing panics.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use grpcpool_core::fuzzing::{metadata_from_wire, metadata_to_wire};
use grpcpool_core::{Error, Metadata, MetadataValue};
use grpcpool_fuzz::{expected_metadata, RESERVED};
use libfuzzer_sys::fuzz_target;
use tonic::metadata::MetadataMap;

#[derive(Arbitrary, Debug)]
struct Entry {
    key: String,
    binary: bool,
    value: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    sent: Vec<Entry>,
    received: Vec<(Vec<u8>, Vec<u8>)>,
}

fuzz_target!(|input: Input| {
    check_sent(&input.sent);
    check_received(&input.received);
});

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'z' | b'_' | b'-' | b'.'))
        && !key.starts_with("grpc-")
        && !RESERVED.contains(&key)
}

fn check_sent(entries: &[Entry]) {
    let mut metadata = Metadata::new();
    let mut first_bad = None;
    for entry in entries {
        let valid = valid_key(&entry.key)
            && entry.key.ends_with("-bin") == entry.binary
            && (entry.binary || entry.value.iter().all(|byte| (0x20..=0x7e).contains(byte)));
        if !valid && first_bad.is_none() {
            first_bad = Some(entry.key.clone());
        }
        if entry.binary {
            metadata.insert_binary(entry.key.clone(), Bytes::copy_from_slice(&entry.value));
        } else {
            metadata.insert_ascii(
                entry.key.clone(),
                String::from_utf8_lossy(&entry.value).into_owned(),
            );
        }
    }
    // Lossy conversion only turns bytes that are not printable ASCII into others that are not.
    let wire = metadata_to_wire(&metadata);
    match (first_bad, wire) {
        (None, Ok(wire)) => {
            let back = metadata_from_wire(&wire);
            assert_eq!(back.len(), metadata.len(), "entries lost on the way out");
            let mut keys: Vec<&str> = Vec::new();
            for (key, _) in metadata.iter() {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            for key in keys {
                let sent: Vec<&MetadataValue> = values(&metadata, key);
                let received: Vec<&MetadataValue> = values(&back, key);
                assert_eq!(sent, received, "the values of {key:?} changed on the wire");
            }
        }
        (Some(bad), Err(Error::InvalidMetadata { key, .. })) => {
            assert_eq!(
                key, bad,
                "the error names another key than the first bad one"
            )
        }
        (Some(bad), Err(error)) => panic!("{bad:?} refused with the wrong error: {error}"),
        (Some(bad), Ok(_)) => panic!("accepted metadata with the bad key or value {bad:?}"),
        (None, Err(error)) => panic!("refused valid metadata: {error}"),
    }
}

fn values<'a>(metadata: &'a Metadata, key: &str) -> Vec<&'a MetadataValue> {
    metadata
        .iter()
        .filter(|(candidate, _)| *candidate == key)
        .map(|(_, value)| value)
        .collect()
}

fn check_received(pairs: &[(Vec<u8>, Vec<u8>)]) {
    let mut headers = http::HeaderMap::new();
    for (name, value) in pairs {
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let received = metadata_from_wire(&MetadataMap::from_headers(headers.clone()));
    let expected = expected_metadata(&headers);
    for (key, _) in received.iter() {
        assert!(
            !key.starts_with("grpc-") && !RESERVED.contains(&key),
            "{key:?} reached the caller"
        );
    }
    let received: Vec<(String, MetadataValue)> = received
        .iter()
        .map(|(key, value)| (key.to_owned(), value.clone()))
        .collect();
    assert_eq!(received, expected, "received metadata is not what arrived");
}
