//! Fuzzes target-string parsing: `Target::parse` (core/src/target.rs), which every face hands
//! the caller's text to (`grpcpool_acquire`, `grpcpool_unary`, Python's and Node's `acquire`).
//!
//! For any UTF-8 text it checks that:
//! - parsing never panics, a failure is always `ErrorKind::InvalidTarget` and its message
//!   names the text, and parsing twice gives the same answer;
//! - an accepted target has no surrounding white space, a known scheme, at least one
//!   endpoint (none for `static:///name`, whose endpoints are pushed), `https` exactly when it
//!   is TLS, no TCP port 0, no empty host, an `:authority` that `http` accepts again, a TLS
//!   host that is the first endpoint's host (the name for `static:`), and `needs_resolution`
//!   exactly when some host is not an IP literal or the target is `static:`;
//! - what was accepted follows the documented grammar (`host[:port]` with a decimal port,
//!   brackets only around an IPv6 address, `unix:` with a path, `dns:///host[:port]`);
//! - writing the parsed endpoints back as a target string gives the same parse (a round trip).
#![no_main]

use std::net::IpAddr;
use std::str::FromStr;

use grpcpool_core::fuzzing::{parse_target, ParsedEndpoint, ParsedTarget};
use grpcpool_core::ErrorKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_target(text);
    let again = parse_target(text);
    match (&parsed, &again) {
        (Ok(first), Ok(second)) => assert_eq!(first, second, "parse is not deterministic"),
        (Err(_), Err(_)) => {}
        _ => panic!("parse is not deterministic for {text:?}"),
    }
    match parsed {
        Err(error) => {
            assert_eq!(error.kind(), ErrorKind::InvalidTarget, "{text:?}: {error}");
            assert!(
                error.to_string().contains(&format!("{text:?}")),
                "the error does not name the target: {error}"
            );
        }
        Ok(target) => {
            check_accepted(text, &target);
            let written = write_back(text, &target);
            let reparsed = parse_target(&written).unwrap_or_else(|error| {
                panic!("{text:?} parsed, but its written form {written:?} does not: {error}")
            });
            assert_eq!(
                reparsed, target,
                "{text:?} -> {written:?} changed the parse"
            );
        }
    }
});

fn check_accepted(text: &str, target: &ParsedTarget) {
    assert_eq!(text.trim(), text, "accepted surrounding white space");
    let scheme = text.split_once(':').map(|(scheme, _)| scheme);
    assert!(
        matches!(
            scheme,
            Some("http" | "https" | "unix" | "dns" | "static" | "xds")
        ),
        "accepted an unknown scheme: {text:?}"
    );
    if scheme == Some("static") {
        check_static(text, target);
        return;
    }
    if scheme == Some("xds") {
        check_xds(text, target);
        return;
    }
    assert!(
        target.pushed.is_none(),
        "{text:?}: pushed endpoints for another scheme"
    );
    assert!(!target.endpoints.is_empty(), "{text:?}: no endpoint");
    assert_eq!(
        target.tls,
        scheme == Some("https"),
        "{text:?}: TLS mismatch"
    );
    assert_eq!(
        target.scheme,
        if target.tls { "https" } else { "http" },
        "{text:?}"
    );
    assert!(
        http::uri::Authority::from_str(&target.authority).is_ok(),
        "{text:?}: the authority {:?} is not one",
        target.authority
    );
    assert!(!target.tls_host.is_empty(), "{text:?}: empty TLS host");
    let mut any_name = false;
    for endpoint in &target.endpoints {
        match endpoint {
            ParsedEndpoint::Tcp { host, port } => {
                assert_ne!(*port, 0, "{text:?}: port 0");
                assert!(!host.is_empty(), "{text:?}: empty host");
                assert!(
                    !host.contains(['[', ']']),
                    "{text:?}: accepted the host {host:?}"
                );
                any_name |= host.parse::<IpAddr>().is_err();
            }
            ParsedEndpoint::Unix(path) => {
                assert_eq!(
                    scheme,
                    Some("unix"),
                    "{text:?}: a unix path from another scheme"
                );
                assert!(!path.as_os_str().is_empty(), "{text:?}: empty unix path");
            }
        }
    }
    assert_eq!(
        target.needs_resolution, any_name,
        "{text:?}: needs_resolution"
    );
    match &target.endpoints[0] {
        ParsedEndpoint::Tcp { host, .. } => assert_eq!(&target.tls_host, host, "{text:?}"),
        ParsedEndpoint::Unix(_) => assert_eq!(target.tls_host, "localhost", "{text:?}"),
    }
    let rest = &text[text.find(':').map_or(0, |colon| colon + 1)..];
    match scheme {
        Some("http" | "https") => {
            let hosts = rest
                .strip_prefix("//")
                .unwrap_or_else(|| panic!("{text:?}"));
            let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
            for host in hosts.split(',') {
                check_host_port(text, host);
            }
        }
        Some("dns") => {
            let host = rest
                .strip_prefix("///")
                .unwrap_or_else(|| panic!("{text:?}"));
            check_host_port(text, host);
        }
        _ => assert_eq!(target.endpoints.len(), 1, "{text:?}"),
    }
}

/// `static:///name`: no endpoint of its own, the name as `:authority` and TLS host, always
/// resolved (from what the program pushes), plaintext.
fn check_static(text: &str, target: &ParsedTarget) {
    let name = text
        .strip_prefix("static:///")
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(
        target.endpoints.is_empty(),
        "{text:?}: endpoints of its own"
    );
    assert_eq!(target.pushed.as_deref(), Some(name), "{text:?}");
    assert_eq!(target.authority, name, "{text:?}");
    assert_eq!(target.tls_host, name, "{text:?}");
    assert!(target.needs_resolution && !target.tls, "{text:?}");
    assert!(
        !name.is_empty()
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b".-_".contains(&byte)),
        "{text:?}: the name {name:?}"
    );
}

/// `xds:///name`: no endpoint of its own (the control plane gives them), the name (a listener
/// name, any valid authority without a path, user info, query or fragment) as `:authority`,
/// pushed under the whole target text, plaintext.
fn check_xds(text: &str, target: &ParsedTarget) {
    let name = text
        .strip_prefix("xds:///")
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(
        target.endpoints.is_empty(),
        "{text:?}: endpoints of its own"
    );
    assert_eq!(target.pushed.as_deref(), Some(text), "{text:?}");
    assert_eq!(target.authority, name, "{text:?}");
    assert!(!target.tls, "{text:?}: TLS");
    assert!(
        !name.is_empty() && !name.contains(['/', '@', '?', '#']),
        "{text:?}: the name {name:?}"
    );
    assert!(
        http::uri::Authority::from_str(name).is_ok(),
        "{text:?}: the name {name:?} is no authority"
    );
}

/// `host[:port]` where a port is decimal digits (RFC 3986: `port = *DIGIT`).
fn check_host_port(text: &str, element: &str) {
    if let Some(bracketed) = element.strip_prefix('[') {
        let host = bracketed
            .split_once(']')
            .map_or(bracketed, |(host, _)| host);
        assert!(
            host.parse::<std::net::Ipv6Addr>().is_ok(),
            "{text:?}: brackets around {host:?}, which is not an IPv6 address"
        );
    }
    let port = match element.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once("]:").map(|(_, port)| port),
        None => element.split_once(':').map(|(_, port)| port),
    };
    if let Some(port) = port {
        assert!(
            !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()),
            "{text:?} was accepted with the port {port:?}, which is not decimal digits"
        );
    }
}

/// The target string for the parsed endpoints, in the same scheme.
fn write_back(text: &str, target: &ParsedTarget) -> String {
    let host_port = |endpoint: &ParsedEndpoint| match endpoint {
        ParsedEndpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
        ParsedEndpoint::Tcp { host, port } => format!("{host}:{port}"),
        ParsedEndpoint::Unix(path) => path.display().to_string(),
    };
    if text.starts_with("unix:") {
        let path = host_port(&target.endpoints[0]);
        return if path.starts_with('/') {
            format!("unix://{path}")
        } else {
            format!("unix:{path}")
        };
    }
    if text.starts_with("dns:") {
        return format!("dns:///{}", host_port(&target.endpoints[0]));
    }
    if text.starts_with("xds:") {
        return format!("xds:///{}", target.authority);
    }
    if let Some(name) = &target.pushed {
        return format!("static:///{name}");
    }
    let hosts: Vec<String> = target.endpoints.iter().map(host_port).collect();
    format!("{}://{}", target.scheme, hosts.join(","))
}
