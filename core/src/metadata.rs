//! Request and response metadata: ordered key/value pairs, ASCII or binary (`-bin` keys).

use bytes::Bytes;
use tonic::metadata::{
    AsciiMetadataValue, BinaryMetadataValue, KeyAndValueRef, MetadataKey, MetadataMap,
};

use crate::Error;

/// One metadata value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataValue {
    /// A printable ASCII value, for keys without the `-bin` suffix.
    Ascii(String),
    /// Raw bytes, for keys ending in `-bin` (base64 on the wire).
    Binary(Bytes),
}

impl MetadataValue {
    /// The value's bytes: the text of an ASCII value, the raw bytes of a binary one.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            MetadataValue::Ascii(text) => text.as_bytes(),
            MetadataValue::Binary(bytes) => bytes,
        }
    }
}

/// Ordered gRPC metadata. Keys are lower case; a key may repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, MetadataValue)>,
}

/// Headers owned by the gRPC protocol itself, never shown as or accepted from user metadata.
const RESERVED: &[&str] = &["content-type", "te", "user-agent", "content-length", "host"];

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Appends an ASCII entry; validated when the call is made.
    pub fn insert_ascii(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.entries
            .push((key.into(), MetadataValue::Ascii(value.into())));
        self
    }

    /// Appends a binary entry; the key must end in `-bin`.
    pub fn insert_binary(&mut self, key: impl Into<String>, value: impl Into<Bytes>) -> &mut Self {
        self.entries
            .push((key.into(), MetadataValue::Binary(value.into())));
        self
    }

    /// The first value for `key`.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.entries
            .iter()
            .find(|(candidate, _)| candidate == key)
            .map(|(_, value)| value)
    }

    /// Every entry, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.entries
            .iter()
            .map(|(key, value)| (key.as_str(), value))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks every entry against gRPC's rules, as a call does: [`Error::InvalidMetadata`]
    /// names the first entry that breaks them.
    pub fn validate(&self) -> Result<(), Error> {
        self.to_wire().map(drop)
    }

    /// Checks every entry against gRPC's rules and builds the wire form.
    pub(crate) fn to_wire(&self) -> Result<MetadataMap, Error> {
        let mut map = MetadataMap::with_capacity(self.entries.len());
        for (key, value) in &self.entries {
            validate_key(key)?;
            let invalid = |reason| Error::InvalidMetadata {
                key: key.clone(),
                reason,
            };
            match value {
                MetadataValue::Ascii(text) => {
                    if key.ends_with("-bin") {
                        return Err(invalid("a key ending in -bin takes a binary value"));
                    }
                    if !text.bytes().all(|byte| (0x20..=0x7e).contains(&byte)) {
                        return Err(invalid(
                            "an ASCII value may hold only printable ASCII (0x20-0x7E)",
                        ));
                    }
                    let key = MetadataKey::from_bytes(key.as_bytes())
                        .map_err(|_| invalid("not a valid header name"))?;
                    let value = AsciiMetadataValue::try_from(text.as_bytes())
                        .map_err(|_| invalid("not a valid header value"))?;
                    map.append(key, value);
                }
                MetadataValue::Binary(bytes) => {
                    if !key.ends_with("-bin") {
                        return Err(invalid("a binary value needs a key ending in -bin"));
                    }
                    let key = MetadataKey::from_bytes(key.as_bytes())
                        .map_err(|_| invalid("not a valid header name"))?;
                    map.append_bin(key, BinaryMetadataValue::from_bytes(bytes));
                }
            }
        }
        Ok(map)
    }

    /// Converts received headers or trailers, leaving out protocol headers and gRPC's own status keys.
    pub(crate) fn from_wire(map: &MetadataMap) -> Metadata {
        let mut entries = Vec::new();
        for entry in map.iter() {
            match entry {
                KeyAndValueRef::Ascii(key, value) if is_user_key(key.as_str()) => {
                    let text = String::from_utf8_lossy(value.as_encoded_bytes()).into_owned();
                    entries.push((key.as_str().to_owned(), MetadataValue::Ascii(text)));
                }
                KeyAndValueRef::Binary(key, value) if is_user_key(key.as_str()) => {
                    // A value that is not valid base64 is kept as received rather than dropped.
                    let bytes = value
                        .to_bytes()
                        .unwrap_or_else(|_| Bytes::copy_from_slice(value.as_encoded_bytes()));
                    entries.push((key.as_str().to_owned(), MetadataValue::Binary(bytes)));
                }
                _ => {}
            }
        }
        Metadata { entries }
    }
}

fn is_user_key(key: &str) -> bool {
    !key.starts_with("grpc-") && !RESERVED.contains(&key)
}

fn validate_key(key: &str) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidMetadata {
        key: key.to_owned(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("a key may not be empty"));
    }
    if !key
        .bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"-_.".contains(&byte))
    {
        return Err(invalid("a key may hold only 0-9, a-z, '-', '_' and '.'"));
    }
    if key.starts_with("grpc-") || key.starts_with(':') || RESERVED.contains(&key) {
        return Err(invalid("the key is reserved by the gRPC protocol"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_keys_and_values() {
        let good = Metadata::new()
            .insert_ascii("x-id", "abc 123")
            .insert_binary("x-raw-bin", vec![0u8, 255])
            .clone();
        let wire = good.to_wire().expect("valid metadata");
        assert_eq!(wire.len(), 2);

        for (key, value) in [
            ("", MetadataValue::Ascii("v".into())),
            ("X-Upper", MetadataValue::Ascii("v".into())),
            ("x key", MetadataValue::Ascii("v".into())),
            ("grpc-timeout", MetadataValue::Ascii("1S".into())),
            ("x-id", MetadataValue::Ascii("line\nbreak".into())),
            ("x-id", MetadataValue::Ascii("caf\u{e9}".into())),
            ("x-id-bin", MetadataValue::Ascii("text".into())),
            ("x-id", MetadataValue::Binary(Bytes::from_static(b"raw"))),
        ] {
            let metadata = Metadata {
                entries: vec![(key.to_owned(), value)],
            };
            assert!(
                matches!(metadata.to_wire(), Err(Error::InvalidMetadata { .. })),
                "{key:?} should be rejected"
            );
        }
    }

    #[test]
    fn binary_values_round_trip_through_the_wire_form() {
        let sent = Metadata::new()
            .insert_binary("x-raw-bin", vec![0u8, 1, 254, 255])
            .clone();
        let wire = sent.to_wire().expect("valid metadata");
        let received = Metadata::from_wire(&wire);
        assert_eq!(received, sent);
    }
}
