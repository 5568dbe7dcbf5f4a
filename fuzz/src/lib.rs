//! Oracles shared by the fuzz targets: the gRPC HTTP/2 spec's encodings written out
//! independently of the code under test, so a target can check the engine against the spec
//! rather than against itself.

use std::sync::OnceLock;

// The C-ABI fuzzer drives the C API through raw pointers and C callbacks.
#[allow(unsafe_code)]
pub mod ffi;

use bytes::Bytes;
use grpcpool_core::MetadataValue;

/// Whether the open bug `name` is tolerated in this run. Each open bug a target knows of has a
/// name, a reproducing input under `fuzz/regressions/<target>/` and a line in
/// `fuzz/regressions/KNOWN`; `run.sh` puts those names in `GRPCPOOL_FUZZ_KNOWN` (comma
/// separated) while it fuzzes, so a run does not stop on a bug already recorded, and leaves it
/// empty when it replays `fuzz/regressions/`, where every recorded input must still fail until
/// its bug is fixed. Without the variable nothing is tolerated.
pub fn tolerated(name: &str) -> bool {
    static KNOWN: OnceLock<Vec<String>> = OnceLock::new();
    KNOWN
        .get_or_init(|| {
            std::env::var("GRPCPOOL_FUZZ_KNOWN")
                .unwrap_or_default()
                .split(',')
                .map(|known| known.trim().to_owned())
                .filter(|known| !known.is_empty())
                .collect()
        })
        .iter()
        .any(|known| known == name)
}

/// Whether to print each input as a target decodes it (`GRPCPOOL_FUZZ_TRACE=1`), to read a
/// crash.
pub fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("GRPCPOOL_FUZZ_TRACE").is_some_and(|value| value == "1"))
}

/// Blocks SIGPIPE in the calling thread, for the threads of the in-process servers: a write
/// to a client that hung up then fails with EPIPE instead of killing the fuzz process, which,
/// as a C host would, keeps the default SIGPIPE disposition (libFuzzer's `main` never runs
/// Rust's start-up code, which ignores SIGPIPE). Call it on every server thread.
pub fn block_sigpipe_in_this_thread() {
    // SAFETY: plain libc calls on a local signal set.
    #[allow(unsafe_code)]
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Makes a SIGPIPE raised by the library (in a thread that has not blocked it) abort with a
/// message, so libFuzzer records the input as a crash: a C program that, like most, keeps the
/// default disposition would be killed (fuzz/regressions/ffi_sequence/sigpipe-on-hang-up).
pub fn sigpipe_aborts() {
    extern "C" fn on_sigpipe(_: libc::c_int) {
        const MESSAGE: &[u8] =
            b"\n==== SIGPIPE raised in a grpcpool thread: a C host with the default \
SIGPIPE disposition would be killed (a write to a peer that hung up)\n";
        // SAFETY: write(2) and abort(3) are async-signal-safe.
        #[allow(unsafe_code)]
        unsafe {
            libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
            libc::abort();
        }
    }
    let handler = on_sigpipe as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: installs a handler that only makes async-signal-safe calls.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, handler);
    }
}

/// Headers the gRPC protocol owns, besides every `grpc-` key and pseudo-header; never shown
/// to callers as metadata and never accepted from them.
pub const RESERVED: &[&str] = &["content-type", "te", "user-agent", "content-length", "host"];

/// Whether a received header is the caller's metadata: not `grpc-` and not a protocol header.
pub fn is_user_key(key: &str) -> bool {
    !key.starts_with("grpc-") && !RESERVED.contains(&key)
}

/// Canonical base64 (RFC 4648 standard alphabet), with or without its padding: how the gRPC
/// HTTP/2 spec sends `-bin` values. `None` for anything else.
pub fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let unpadded = match text.iter().position(|&byte| byte == b'=') {
        Some(start) => {
            let padding = &text[start..];
            if !text.len().is_multiple_of(4)
                || padding.len() > 2
                || padding.iter().any(|&b| b != b'=')
            {
                return None;
            }
            &text[..start]
        }
        None => text,
    };
    if unpadded.len() % 4 == 1 {
        return None;
    }
    let sextet = |byte: u8| -> Option<u32> {
        Some(u32::from(match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(unpadded.len() * 3 / 4);
    for chunk in unpadded.chunks(4) {
        let mut bits = 0u32;
        for &byte in chunk {
            bits = (bits << 6) | sextet(byte)?;
        }
        let whole = chunk.len() * 6 / 8;
        let spare = chunk.len() * 6 - whole * 8;
        // Canonical: the bits after the last whole byte are zero.
        if bits & ((1 << spare) - 1) != 0 {
            return None;
        }
        let bits = bits >> spare;
        for index in (0..whole).rev() {
            out.push((bits >> (index * 8)) as u8);
        }
    }
    Some(out)
}

/// Base64 (RFC 4648 standard alphabet) of `bytes`, padded or not.
pub fn base64_encode(bytes: &[u8], padded: bool) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut bits = 0u32;
        for (index, &byte) in chunk.iter().enumerate() {
            bits |= u32::from(byte) << (16 - 8 * index);
        }
        for index in 0..=chunk.len() {
            out.push(char::from(
                ALPHABET[((bits >> (18 - 6 * index)) & 63) as usize],
            ));
        }
        if padded {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

/// `grpc-message` encoding per the spec: bytes outside 0x20-0x7E, and `%` itself, become
/// `%XX` with upper-case hex digits.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `grpc-message` decoding per the spec: each `%XX` is the byte it names, everything else is
/// itself (a broken `%` escape included, as the spec allows).
pub fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let hex = |byte: u8| char::from(byte).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[index + 1]), hex(bytes[index + 2])) {
                out.push((high * 16 + low) as u8);
                index += 3;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    out
}

/// What a caller should see of a received header block: its user entries in order, ASCII
/// values as their bytes (lossily as UTF-8), binary ones decoded when canonical base64 and
/// as received otherwise.
pub fn expected_metadata(headers: &http::HeaderMap) -> Vec<(String, MetadataValue)> {
    headers
        .iter()
        .filter(|(name, _)| is_user_key(name.as_str()))
        .map(|(name, value)| {
            let raw = value.as_bytes();
            let value = if name.as_str().ends_with("-bin") {
                MetadataValue::Binary(Bytes::from(
                    base64_decode(raw).unwrap_or_else(|| raw.to_vec()),
                ))
            } else {
                MetadataValue::Ascii(String::from_utf8_lossy(raw).into_owned())
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// Whether two lists of metadata hold the same entries with each key's values in the same
/// order: what gRPC keeps of metadata order (HTTP/2 header blocks, and tonic, may reorder
/// different keys).
pub fn same_metadata(a: &[(String, MetadataValue)], b: &[(String, MetadataValue)]) -> bool {
    let values = |list: &[(String, MetadataValue)], key: &str| -> Vec<MetadataValue> {
        list.iter()
            .filter(|(candidate, _)| candidate == key)
            .map(|(_, value)| value.clone())
            .collect()
    };
    a.len() == b.len() && a.iter().all(|(key, _)| values(a, key) == values(b, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_refuses_non_canonical_text() {
        for length in 0..10 {
            let bytes: Vec<u8> = (0..length).map(|n| (n * 37 + 200) as u8).collect();
            for padded in [false, true] {
                let text = base64_encode(&bytes, padded);
                assert_eq!(
                    base64_decode(text.as_bytes()),
                    Some(bytes.clone()),
                    "{text}"
                );
            }
        }
        assert_eq!(base64_decode(b"QQ=="), Some(b"A".to_vec()));
        assert_eq!(base64_decode(b"QR"), None, "non-zero trailing bits");
        assert_eq!(base64_decode(b"Q"), None);
        assert_eq!(base64_decode(b"QQ=A"), None);
        assert_eq!(base64_decode(b"QQ="), None);
    }

    #[test]
    fn percent_encoding_escapes_what_the_spec_says() {
        assert_eq!(percent_encode("a b%\n\u{e9}"), "a b%25%0A%C3%A9");
        assert_eq!(
            percent_decode(b"a b%25%0A%C3%A9"),
            "a b%\n\u{e9}".as_bytes()
        );
        assert_eq!(percent_decode(b"%zz%4"), b"%zz%4");
    }
}
