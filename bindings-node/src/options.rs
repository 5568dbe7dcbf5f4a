//! Pool settings from JavaScript: every core setting, durations in milliseconds.

use grpcpool_core::Config;
use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;

use crate::convert::millis;
use crate::failure::Failure;

/// Every setting of a pool; each is optional and defaults to the core's default (see the
/// README). Durations are milliseconds; 0 turns off `keepaliveTimeMs`, `tcpKeepaliveMs` and
/// `maxConnectionAgeMs`.
#[napi(object)]
#[derive(Default)]
pub struct PoolOptions {
    /// Connections kept open per target once it has been used (default 1).
    pub min_connections_per_target: Option<f64>,
    /// Upper bound on connections per target (default 4).
    pub max_connections_per_target: Option<f64>,
    /// Streams in flight per connection before another connection opens (default 64).
    pub streams_per_connection: Option<f64>,
    /// Time for TCP connect, TLS and the HTTP/2 handshake (default 20000).
    pub connect_timeout_ms: Option<f64>,
    /// Interval between HTTP/2 keepalive pings; 0 sends none (default 300000).
    pub keepalive_time_ms: Option<f64>,
    /// How long a ping may go unanswered before the connection is dead (default 20000).
    pub keepalive_timeout_ms: Option<f64>,
    /// Whether to ping connections with no calls in flight (default false).
    pub keepalive_while_idle: Option<bool>,
    /// Sets TCP_NODELAY (default true).
    pub tcp_nodelay: Option<bool>,
    /// TCP keepalive idle time; 0 leaves the OS default (default 60000).
    pub tcp_keepalive_ms: Option<f64>,
    /// Connections above the minimum idle this long are closed (default 120000).
    pub idle_timeout_ms: Option<f64>,
    /// Connections older than this are replaced; 0 never (default 1800000).
    pub max_connection_age_ms: Option<f64>,
    /// Delay after the first failed connection attempt (default 1000).
    pub backoff_initial_ms: Option<f64>,
    /// Growth of the delay per failure (default 1.6).
    pub backoff_multiplier: Option<f64>,
    /// Random spread of each delay as a fraction, 0 to below 1 (default 0.2).
    pub backoff_jitter: Option<f64>,
    /// Longest delay between connection attempts (default 120000).
    pub backoff_max_ms: Option<f64>,
    /// How long `acquire` waits for a slot when no timeout is given (default 10000).
    pub acquire_timeout_ms: Option<f64>,
    /// A lease held longer than this is reported as a leak (default 60000).
    pub lease_leak_threshold_ms: Option<f64>,
    /// HTTP/2 initial stream window in bytes (default 2 MiB).
    pub initial_stream_window_size: Option<f64>,
    /// HTTP/2 initial connection window in bytes (default 8 MiB).
    pub initial_connection_window_size: Option<f64>,
    /// Largest request accepted, in bytes (default 4 MiB).
    pub max_send_message_size: Option<f64>,
    /// Largest response accepted, in bytes (default 4 MiB).
    pub max_receive_message_size: Option<f64>,
    /// How often host names in targets are resolved again (default 30000).
    pub dns_refresh_interval_ms: Option<f64>,
    /// Worker threads of the internal runtime; 0 is one per core, at most 4 (default 0).
    pub worker_threads: Option<f64>,
    /// PEM certificates to trust for `https://` targets instead of the system roots.
    pub tls_ca_pem: Option<Either<String, Buffer>>,
    /// PEM certificate chain presented to servers that ask for one (mTLS).
    pub tls_client_cert_pem: Option<Either<String, Buffer>>,
    /// PEM private key for `tlsClientCertPem`.
    pub tls_client_key_pem: Option<Either<String, Buffer>>,
    /// The name checked against the server's certificate (and sent as SNI) instead of the
    /// target's host.
    pub tls_server_name: Option<String>,
}

/// A whole number within `max`.
fn whole<T: TryFrom<u64>>(name: &str, value: f64, max: u64) -> Result<T, Failure> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= max as f64 {
        if let Ok(number) = T::try_from(value as u64) {
            return Ok(number);
        }
    }
    Err(Failure::invalid(format!(
        "{name} must be a whole number from 0 to {max}, not {value}"
    )))
}

/// A duration that 0 turns off.
fn optional_millis(name: &str, value: f64) -> Result<Option<std::time::Duration>, Failure> {
    let duration = millis(name, value)?;
    Ok((!duration.is_zero()).then_some(duration))
}

fn pem(value: Either<String, Buffer>) -> Vec<u8> {
    match value {
        Either::A(text) => text.into_bytes(),
        Either::B(bytes) => bytes.to_vec(),
    }
}

impl PoolOptions {
    /// The core configuration these options describe; the core validates ranges afterwards.
    pub(crate) fn into_config(self) -> Result<Config, Failure> {
        let mut config = Config::default();
        let u32_max = u64::from(u32::MAX);
        if let Some(v) = self.min_connections_per_target {
            config.min_connections_per_target = whole("minConnectionsPerTarget", v, u32_max)?;
        }
        if let Some(v) = self.max_connections_per_target {
            config.max_connections_per_target = whole("maxConnectionsPerTarget", v, u32_max)?;
        }
        if let Some(v) = self.streams_per_connection {
            config.streams_per_connection = whole("streamsPerConnection", v, u32_max)?;
        }
        if let Some(v) = self.connect_timeout_ms {
            config.connect_timeout = millis("connectTimeoutMs", v)?;
        }
        if let Some(v) = self.keepalive_time_ms {
            config.keepalive_time = optional_millis("keepaliveTimeMs", v)?;
        }
        if let Some(v) = self.keepalive_timeout_ms {
            config.keepalive_timeout = millis("keepaliveTimeoutMs", v)?;
        }
        if let Some(v) = self.keepalive_while_idle {
            config.keepalive_while_idle = v;
        }
        if let Some(v) = self.tcp_nodelay {
            config.tcp_nodelay = v;
        }
        if let Some(v) = self.tcp_keepalive_ms {
            config.tcp_keepalive = optional_millis("tcpKeepaliveMs", v)?;
        }
        if let Some(v) = self.idle_timeout_ms {
            config.idle_timeout = millis("idleTimeoutMs", v)?;
        }
        if let Some(v) = self.max_connection_age_ms {
            config.max_connection_age = optional_millis("maxConnectionAgeMs", v)?;
        }
        if let Some(v) = self.backoff_initial_ms {
            config.backoff.initial = millis("backoffInitialMs", v)?;
        }
        if let Some(v) = self.backoff_multiplier {
            config.backoff.multiplier = v;
        }
        if let Some(v) = self.backoff_jitter {
            config.backoff.jitter = v;
        }
        if let Some(v) = self.backoff_max_ms {
            config.backoff.max = millis("backoffMaxMs", v)?;
        }
        if let Some(v) = self.acquire_timeout_ms {
            config.acquire_timeout = millis("acquireTimeoutMs", v)?;
        }
        if let Some(v) = self.lease_leak_threshold_ms {
            config.lease_leak_threshold = millis("leaseLeakThresholdMs", v)?;
        }
        if let Some(v) = self.initial_stream_window_size {
            config.initial_stream_window_size = whole("initialStreamWindowSize", v, u32_max)?;
        }
        if let Some(v) = self.initial_connection_window_size {
            config.initial_connection_window_size =
                whole("initialConnectionWindowSize", v, u32_max)?;
        }
        if let Some(v) = self.max_send_message_size {
            config.max_send_message_size = whole("maxSendMessageSize", v, u32_max)?;
        }
        if let Some(v) = self.max_receive_message_size {
            config.max_receive_message_size = whole("maxReceiveMessageSize", v, u32_max)?;
        }
        if let Some(v) = self.dns_refresh_interval_ms {
            config.dns_refresh_interval = millis("dnsRefreshIntervalMs", v)?;
        }
        if let Some(v) = self.worker_threads {
            config.worker_threads = whole("workerThreads", v, 64)?;
        }
        if let Some(v) = self.tls_ca_pem {
            config.tls.ca_pem = Some(pem(v));
        }
        if let Some(v) = self.tls_client_cert_pem {
            config.tls.client_cert_pem = Some(pem(v));
        }
        if let Some(v) = self.tls_client_key_pem {
            config.tls.client_key_pem = Some(pem(v));
        }
        if let Some(v) = self.tls_server_name {
            config.tls.server_name_override = Some(v);
        }
        Ok(config)
    }
}
