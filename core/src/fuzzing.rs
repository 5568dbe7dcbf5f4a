//! Entry points for the cargo-fuzz targets in `fuzz/`: the crate-private parsers and encoders
//! that the faces feed with user input, reachable only with the `fuzzing` feature. Each is a
//! thin call into the code the engine itself runs; none is an API to build on.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tonic::metadata::MetadataMap;

use crate::prepared_call::PreparedCall;
use crate::target::{Endpoint, Security, Target};
use crate::{CallOptions, Config, Error, Metadata};

/// What `Target::parse` made of a target string, in plain types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedTarget {
    /// Whether connections are made with TLS (`https://`).
    pub tls: bool,
    /// Every endpoint the target names, in order.
    pub endpoints: Vec<ParsedEndpoint>,
    /// The `:authority` sent with every call.
    pub authority: String,
    /// The `:scheme` sent with every call (`http` or `https`).
    pub scheme: String,
    /// The host a server certificate must match (before any override).
    pub tls_host: String,
    /// Whether some endpoint is a host name that DNS must resolve (or the endpoints are pushed).
    pub needs_resolution: bool,
    /// For `static:///name`: the name whose endpoints `Pool::set_endpoints` sets.
    pub pushed: Option<String>,
}

/// One endpoint of a [`ParsedTarget`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedEndpoint {
    /// A host (IP literal without brackets, or a name) and a port.
    Tcp {
        /// The host.
        host: String,
        /// The port; never 0.
        port: u16,
    },
    /// A unix socket path.
    Unix(PathBuf),
}

/// Parses a target string as `Pool::acquire` does (`Target::parse`).
#[doc(hidden)]
pub fn parse_target(text: &str) -> Result<ParsedTarget, Error> {
    let target = Target::parse(text)?;
    Ok(ParsedTarget {
        tls: target.security == Security::Tls,
        endpoints: target
            .endpoints
            .iter()
            .map(|endpoint| match endpoint {
                Endpoint::Tcp { host, port } => ParsedEndpoint::Tcp {
                    host: host.clone(),
                    port: *port,
                },
                Endpoint::Unix(path) => ParsedEndpoint::Unix(path.clone()),
            })
            .collect(),
        authority: target.authority.as_str().to_owned(),
        scheme: target.scheme.as_str().to_owned(),
        tls_host: target.tls_host().to_owned(),
        needs_resolution: target.needs_resolution(),
        pushed: target.pushed_name().map(str::to_owned),
    })
}

/// Checks request metadata and builds its wire form, as every call does (`Metadata::to_wire`).
#[doc(hidden)]
pub fn metadata_to_wire(metadata: &Metadata) -> Result<MetadataMap, Error> {
    metadata.to_wire()
}

/// Converts received headers or trailers into what callers see (`Metadata::from_wire`).
#[doc(hidden)]
pub fn metadata_from_wire(map: &MetadataMap) -> Metadata {
    Metadata::from_wire(map)
}

/// The `grpc-timeout` header a call with a deadline `timeout` from now sends, built by the
/// call's own request path (`PreparedCall::request`), and an upper bound on the time that
/// passed between taking the deadline and encoding it (the encoding sees that much less).
/// `None` for the header when the call has no deadline (`timeout` too large for an `Instant`).
#[doc(hidden)]
pub fn grpc_timeout_header(timeout: Duration) -> Result<(Option<String>, Duration), Error> {
    let started = Instant::now();
    let call = PreparedCall::configured(
        &Config::default(),
        None,
        "/fuzz.Service/Method",
        Bytes::new(),
        CallOptions::with_timeout(timeout),
    )?;
    let request = call.request(
        tonic::metadata::MetadataMap::new(),
        http::Extensions::new(),
        (),
    );
    let elapsed = started.elapsed();
    let header = request
        .metadata()
        .get("grpc-timeout")
        .map(|value| String::from_utf8_lossy(value.as_encoded_bytes()).into_owned());
    Ok((header, elapsed))
}
