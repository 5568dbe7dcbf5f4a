//! The request every unary row sends: the interop service's SimpleRequest, encoded by hand
//! (response_size, then a payload of that many zero bytes), so that the matrix, ir-loop, the
//! scale run and the allocation counter all send the same bytes. Also a module of the
//! grpcpool-alloc-count binary (`#[path]`), which cannot reach this crate's main binary.

/// The request message for `payload` bytes: an encoded interop SimpleRequest (1,033 bytes for
/// 1 KiB), empty for 0.
pub fn request(payload: usize) -> Vec<u8> {
    if payload == 0 {
        return Vec::new();
    }
    let mut body = vec![0x12];
    varint(&mut body, payload as u64);
    body.resize(body.len() + payload, 0);
    let mut out = vec![0x10];
    varint(&mut out, payload as u64);
    out.push(0x1a);
    varint(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::request;

    #[test]
    fn request_is_a_simple_request() {
        assert!(request(0).is_empty());
        // response_size 3, payload { body: 3 zero bytes }
        assert_eq!(request(3), vec![0x10, 3, 0x1a, 5, 0x12, 3, 0, 0, 0]);
        assert_eq!(request(1024).len(), 1033);
        assert_eq!(request(65536).len(), 65536 + 12);
    }
}
