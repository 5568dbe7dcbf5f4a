//! Target strings: what a caller names, parsed into where to connect and how.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use http::uri::{Authority, Scheme};

use crate::resolver::Resolver;
use crate::Error;

/// Whether connections to a target are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    Plaintext,
    Tls,
}

/// One place a target names: a host and port (an IP literal or a name to resolve), or a socket path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

/// One concrete address a connection is made to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Address {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(address) => write!(f, "{address}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A parsed target.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) text: String,
    pub(crate) security: Security,
    pub(crate) endpoints: Vec<Endpoint>,
    /// The `:authority` sent with every call.
    pub(crate) authority: Authority,
    pub(crate) scheme: Scheme,
    /// For `static:///name`: the name whose endpoints the host program sets
    /// (`Pool::set_endpoints`); `endpoints` is then empty. For `xds:///name`: the whole
    /// target text, the key its xDS endpoints are kept under.
    pushed: Option<String>,
    /// For `xds:///name`: the name, the listener the pool's xDS client subscribes to.
    xds: Option<String>,
}

impl Target {
    /// Parses `http://host:port`, `https://host:port`, several comma-separated `host:port`s after
    /// either scheme, `unix:/path`, `unix:///path`, `dns:///host:port` or `static:///name`.
    pub(crate) fn parse(text: &str) -> Result<Target, Error> {
        let invalid = |reason: &str| Error::InvalidTarget {
            target: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.trim() != text || text.is_empty() {
            return Err(invalid("empty, or surrounded by white space"));
        }
        let (scheme, rest) = text.split_once(':').ok_or_else(|| {
            invalid("no scheme; expected http://, https://, unix:, dns:/// or static:///")
        })?;
        match scheme {
            "http" | "https" => {
                let hosts = rest
                    .strip_prefix("//")
                    .ok_or_else(|| invalid("expected // after the scheme"))?;
                let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
                let security = if scheme == "https" {
                    Security::Tls
                } else {
                    Security::Plaintext
                };
                let default_port = if security == Security::Tls { 443 } else { 80 };
                let endpoints = hosts
                    .split(',')
                    .map(|host| {
                        parse_host_port(host, Some(default_port)).map_err(|reason| invalid(&reason))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Target::from_endpoints(text, security, endpoints)
            }
            "dns" => {
                let host = rest.strip_prefix("///").ok_or_else(|| {
                    invalid("expected dns:///host:port (DNS authorities are not supported)")
                })?;
                let endpoint =
                    parse_host_port(host, Some(443)).map_err(|reason| invalid(&reason))?;
                Target::from_endpoints(text, Security::Plaintext, vec![endpoint])
            }
            "unix" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    return Err(invalid("expected a socket path after unix:"));
                }
                if rest.starts_with("//") && !path.starts_with('/') {
                    return Err(invalid("unix:// takes an absolute path (unix:///path)"));
                }
                Target::from_endpoints(
                    text,
                    Security::Plaintext,
                    vec![Endpoint::Unix(PathBuf::from(path))],
                )
            }
            "static" => {
                let name = rest.strip_prefix("///").ok_or_else(|| {
                    invalid("expected static:///name (the name set_endpoints is given)")
                })?;
                check_pushed_name(name).map_err(|reason| invalid(&reason))?;
                let mut target = Target::from_endpoints(text, Security::Plaintext, Vec::new())?;
                // Checked above: a name is a valid authority.
                if let Ok(authority) = Authority::from_str(name) {
                    target.authority = authority;
                }
                target.pushed = Some(name.to_owned());
                Ok(target)
            }
            "xds" => {
                let name = rest.strip_prefix("///").ok_or_else(|| {
                    invalid("expected xds:///name (xDS authorities are not supported)")
                })?;
                let authority = Authority::from_str(name)
                    .ok()
                    .filter(|_| !name.is_empty() && !name.contains(['/', '@', '?', '#']))
                    .ok_or_else(|| {
                        invalid(&format!(
                            "{name:?} is no xDS listener name (a host or host:port)"
                        ))
                    })?;
                let mut target = Target::from_endpoints(text, Security::Plaintext, Vec::new())?;
                target.authority = authority;
                target.pushed = Some(text.to_owned());
                target.xds = Some(name.to_owned());
                Ok(target)
            }
            _ => Err(invalid(&format!(
                "unknown scheme {scheme:?}; expected http, https, unix, dns, static or xds"
            ))),
        }
    }

    fn from_endpoints(
        text: &str,
        security: Security,
        endpoints: Vec<Endpoint>,
    ) -> Result<Target, Error> {
        let authority = match endpoints.first() {
            Some(Endpoint::Tcp { host, port }) if host.contains(':') => format!("[{host}]:{port}"),
            Some(Endpoint::Tcp { host, port }) => format!("{host}:{port}"),
            _ => "localhost".to_owned(),
        };
        let authority = Authority::from_str(&authority).map_err(|error| Error::InvalidTarget {
            target: text.to_owned(),
            reason: error.to_string(),
        })?;
        let scheme = match security {
            Security::Tls => Scheme::HTTPS,
            Security::Plaintext => Scheme::HTTP,
        };
        Ok(Target {
            text: text.to_owned(),
            security,
            endpoints,
            authority,
            scheme,
            pushed: None,
            xds: None,
        })
    }

    /// The name whose endpoints the host program sets, for a `static:///name` target.
    pub(crate) fn pushed_name(&self) -> Option<&str> {
        self.pushed.as_deref()
    }

    /// The part of an `xds:///name` target that serves one of its routes: its calls carry
    /// the target's authority, its endpoints are kept under `key`.
    pub(crate) fn for_route(&self, key: &str) -> Target {
        Target {
            text: key.to_owned(),
            pushed: Some(key.to_owned()),
            ..self.clone()
        }
    }

    /// The listener name of an `xds:///name` target.
    pub(crate) fn xds_name(&self) -> Option<&str> {
        self.xds.as_deref()
    }

    /// The host name the server's certificate must match, before any override.
    pub(crate) fn tls_host(&self) -> &str {
        self.authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
    }

    /// Whether some endpoint is a name that DNS must resolve (and re-resolve), or the
    /// endpoints are the host program's (read again on the same schedule and on each update).
    pub(crate) fn needs_resolution(&self) -> bool {
        self.pushed.is_some()
            || self.endpoints.iter().any(|endpoint| match endpoint {
                Endpoint::Tcp { host, .. } => host.parse::<IpAddr>().is_err(),
                Endpoint::Unix(_) => false,
            })
    }

    /// Every address the endpoints stand for now, deduplicated and sorted.
    pub(crate) async fn resolve(&self, resolver: &Resolver) -> Result<Vec<Address>, String> {
        self.resolve_endpoints(&self.endpoints, resolver).await
    }

    /// Every address `endpoints` stand for now (the target's own, or those pushed for it),
    /// deduplicated and sorted.
    pub(crate) async fn resolve_endpoints(
        &self,
        endpoints: &[Endpoint],
        resolver: &Resolver,
    ) -> Result<Vec<Address>, String> {
        let mut addresses = Vec::new();
        let mut failures = Vec::new();
        for endpoint in endpoints {
            match (literal_address(endpoint), endpoint) {
                (Some(address), _) => addresses.push(address),
                (None, Endpoint::Tcp { host, port }) => match resolver.resolve(host, *port).await {
                    Ok(found) => addresses.extend(found.into_iter().map(Address::Tcp)),
                    Err(error) => failures.push(format!("resolving {host}: {error}")),
                },
                (None, Endpoint::Unix(_)) => {}
            }
        }
        addresses.sort();
        addresses.dedup();
        if !addresses.is_empty() {
            Ok(addresses)
        } else if failures.is_empty() {
            Err(format!("{} resolved to no address", self.text))
        } else {
            Err(failures.join("; "))
        }
    }
}

/// The addresses `endpoints` name when none needs resolving (IP literals and socket paths),
/// deduplicated and sorted; `None` when some name must be looked up.
pub(crate) fn literal_addresses(endpoints: &[Endpoint]) -> Option<Vec<Address>> {
    let mut addresses = endpoints
        .iter()
        .map(literal_address)
        .collect::<Option<Vec<_>>>()?;
    addresses.sort();
    addresses.dedup();
    Some(addresses)
}

/// The address an endpoint names without a lookup: a socket path or an IP literal.
fn literal_address(endpoint: &Endpoint) -> Option<Address> {
    match endpoint {
        Endpoint::Unix(path) => Some(Address::Unix(path.clone())),
        Endpoint::Tcp { host, port } => host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| Address::Tcp(SocketAddr::new(ip, *port))),
    }
}

/// A name `static:///name` targets use: a DNS-like label sequence, as it goes out as the
/// `:authority`.
pub(crate) fn check_pushed_name(name: &str) -> Result<(), String> {
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_');
    if name.is_empty() || name.len() > 253 || !name.bytes().all(allowed) {
        return Err(format!(
            "{name:?} is no endpoint name (letters, digits, '.', '-' and '_', at most 253)"
        ));
    }
    Ok(())
}

/// One address the host program gives for a `static:///name` target: `host:port` (an IP
/// literal, `[v6]:port`, or a name resolved as DNS targets are) or `unix:/path`.
pub(crate) fn parse_pushed_endpoint(text: &str) -> Result<Endpoint, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(format!("{text:?}: expected a socket path after unix:"));
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    parse_host_port(text, None)
}

/// `host[:port]`, the port `default_port` when absent (required when that is `None`).
fn parse_host_port(text: &str, default_port: Option<u16>) -> Result<Endpoint, String> {
    if text.is_empty() {
        return Err("empty host".to_owned());
    }
    if text.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "{text:?} is not host:port (no path, query or user info)"
        ));
    }
    let authority = Authority::from_str(text).map_err(|error| format!("{text:?}: {error}"))?;
    let host = authority.host();
    // `http` takes brackets anywhere in a host ("127.[7.0]") and around anything ("[14.3%]");
    // RFC 3986 allows them only around an IP literal, and a connection needs an IPv6 one.
    let misbracketed =
        || format!("{text:?}: brackets hold only an IPv6 address, as in [::1]:50051");
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) if inner.parse::<Ipv6Addr>().is_ok() => inner,
        Some(_) => return Err(misbracketed()),
        None if host.contains(['[', ']']) => return Err(misbracketed()),
        None => host,
    };
    if host.is_empty() {
        return Err(format!("{text:?} has no host"));
    }
    let port_text = match text.strip_prefix('[') {
        Some(bracketed) => bracketed.split_once("]:").map(|(_, port)| port),
        None => text.split_once(':').map(|(_, port)| port),
    };
    let port = match port_text {
        // Decimal digits only (RFC 3986 `port = *DIGIT`); `u16::from_str` would take "+80".
        Some(port) => Some(port)
            .filter(|port| !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()))
            .and_then(|port| port.parse::<u16>().ok())
            .ok_or_else(|| format!("{text:?} has an invalid port {port:?}"))?,
        None => default_port.ok_or_else(|| format!("{text:?} needs a port (host:port)"))?,
    };
    if port == 0 {
        return Err(format!("{text:?}: port 0 cannot be connected to"));
    }
    Ok(Endpoint::Tcp {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let target = Target::parse("http://127.0.0.1:50051").expect("plain");
        assert_eq!(target.security, Security::Plaintext);
        assert_eq!(target.authority.as_str(), "127.0.0.1:50051");
        assert!(!target.needs_resolution());

        let target = Target::parse("https://example.test").expect("tls");
        assert_eq!(target.security, Security::Tls);
        assert_eq!(target.authority.as_str(), "example.test:443");
        assert_eq!(target.tls_host(), "example.test");
        assert!(target.needs_resolution());

        let target = Target::parse("http://127.0.0.1:1,127.0.0.1:2,[::1]:3").expect("several");
        assert_eq!(target.endpoints.len(), 3);
        let target = Target::parse("http://[::1]:3").expect("IPv6");
        assert_eq!(target.tls_host(), "::1");
        assert!(!target.needs_resolution());

        let target = Target::parse("unix:///tmp/a.sock").expect("unix");
        assert_eq!(target.endpoints, vec![Endpoint::Unix("/tmp/a.sock".into())]);
        let target = Target::parse("unix:relative.sock").expect("unix relative");
        assert_eq!(
            target.endpoints,
            vec![Endpoint::Unix("relative.sock".into())]
        );

        let target = Target::parse("dns:///localhost:8080").expect("dns");
        assert_eq!(target.authority.as_str(), "localhost:8080");

        let target = Target::parse("xds:///svc.example:8080").expect("xds");
        assert_eq!(target.authority.as_str(), "svc.example:8080");
        assert_eq!(target.xds_name(), Some("svc.example:8080"));
        assert_eq!(target.pushed_name(), Some("xds:///svc.example:8080"));
    }

    #[test]
    fn rejects_malformed_targets_with_a_reason() {
        for bad in [
            "",
            " http://a:1",
            "127.0.0.1:50051",
            "ftp://host:21",
            "http:/host:1",
            "http://",
            "http://host:1/path",
            "http://host:notaport",
            "http://host:0",
            "http://a:1,,b:2",
            "http://user@host:1",
            "dns://8.8.8.8/host:1",
            "unix:",
            "unix://relative",
            // Found by fuzz/fuzz_targets/target_parse.rs (fuzz/regressions/target_parse/).
            "http://a:+80",
            "http://a:",
            "http://127.[7.0]:3",
            "http://0,[14.3%]:6",
            "http://[127.0.0.1]:6",
            "http://[::1:6",
            "xds://authority/name",
            "xds:///",
            "xds:///a/b",
        ] {
            let error = Target::parse(bad).expect_err(bad);
            assert!(
                matches!(error, Error::InvalidTarget { .. }),
                "{bad}: {error}"
            );
        }
    }
}
