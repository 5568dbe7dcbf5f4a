//! Pool settings, each default with the reason it was chosen.

use std::time::Duration;

use crate::backoff::BackoffConfig;
use crate::metadata_hook::MetadataHook;
use crate::resolver::Resolver;
use crate::Error;

/// TLS settings for `https://` targets.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM certificates to trust instead of the system roots. `None` uses the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM certificate chain presented to servers that ask for one (mTLS).
    pub client_cert_pem: Option<Vec<u8>>,
    /// PEM private key for `client_cert_pem`.
    pub client_key_pem: Option<Vec<u8>>,
    /// The name checked against the server's certificate (and sent as SNI) instead of the
    /// target's host, for servers reached by address whose certificate names a host.
    pub server_name_override: Option<String>,
}

/// Every setting of a [`Pool`](crate::Pool).
///
/// Start from `Config::default()` and change fields (or [`Config::set`] by name);
/// [`Config::validate`] runs when a pool is made. [`SETTINGS`](crate::SETTINGS) declares each
/// setting for the faces: its type, unit, default and what turns it off.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Connections kept open per target once it has been used. Default 1: the first call after a
    /// quiet spell pays no handshake.
    pub min_connections_per_target: usize,
    /// Upper bound on connections per target. Default 4: one HTTP/2 connection carries many
    /// streams; a few spread load over server threads and survive one connection's loss.
    pub max_connections_per_target: usize,
    /// Streams in flight per connection before another connection is opened. Default 64: below
    /// the common server limit of 100 concurrent streams, so growth starts before servers queue.
    pub streams_per_connection: u32,
    /// Time allowed for TCP connect, TLS and the HTTP/2 handshake. Default 20 s, gRPC's
    /// minimum connect timeout.
    pub connect_timeout: Duration,
    /// Interval between HTTP/2 keepalive pings. Default 300 s: a grpc-go server's default
    /// enforcement (`MinTime` 5 minutes) never answers it with GOAWAY `too_many_pings`. Doubled
    /// per target if that GOAWAY ever arrives (gRPC A8). `None` sends no pings.
    pub keepalive_time: Option<Duration>,
    /// How long a ping may go unanswered before the connection is declared dead. Default 20 s,
    /// gRPC's default keepalive timeout.
    pub keepalive_timeout: Duration,
    /// Whether to ping connections with no calls in flight. Default false: grpc-go servers by
    /// default (`PermitWithoutStream` false) count such pings as abuse and close the connection.
    pub keepalive_while_idle: bool,
    /// Sets TCP_NODELAY. Default true: gRPC messages are small and latency-bound.
    pub tcp_nodelay: bool,
    /// TCP keepalive idle time; `None` leaves the OS default. Default 60 s: finds dead peers on
    /// idle connections without gRPC pings a server might reject.
    pub tcp_keepalive: Option<Duration>,
    /// Connections above the minimum that carry no call for this long are closed. Default 120 s:
    /// a burst that needed them is likely to return soon, yet well under common load balancer
    /// idle cut-offs (350 s and more).
    pub idle_timeout: Duration,
    /// A target with no call, lease or stream for this long leaves the pool (its connections
    /// close, its upkeep stops; using it again starts it afresh). Default 30 minutes, gRPC's
    /// default channel idle timeout. `None` keeps every target for the pool's life.
    pub target_idle_timeout: Option<Duration>,
    /// Connections older than this (±10% jitter) are replaced: a new one is opened first, then
    /// the old one drains. Default 30 minutes: new DNS answers and backends get traffic.
    pub max_connection_age: Option<Duration>,
    /// Delays between connection attempts after failures (gRPC connection-backoff spec).
    pub backoff: BackoffConfig,
    /// How long `acquire` waits for a slot when none is given. Default 10 s.
    pub acquire_timeout: Duration,
    /// A lease held longer than this is reported as a leak. Default 60 s: far above any sane
    /// call, short enough to be seen in a log.
    pub lease_leak_threshold: Duration,
    /// HTTP/2 initial stream window. Default 2 MiB: a 1 MiB message crosses a loopback or LAN
    /// link without waiting for WINDOW_UPDATE; the h2 default of 64 KiB throttles large messages.
    pub initial_stream_window_size: u32,
    /// HTTP/2 initial connection window. Default 8 MiB: several large streams at once.
    pub initial_connection_window_size: u32,
    /// Largest request accepted. Default 4 MiB, the receive limit of most gRPC servers.
    pub max_send_message_size: usize,
    /// Largest response accepted. Default 4 MiB, gRPC's default.
    pub max_receive_message_size: usize,
    /// Request bytes a call keeps for another attempt (configured and transparent retries); a
    /// call that sends more is committed to its attempt. Default 256 KiB, gRPC's.
    pub per_call_retry_buffer_size: usize,
    /// Request bytes all the pool's streams keep for other attempts together. Default 16 MiB.
    pub retry_buffer_size: usize,
    /// How often host names in targets are resolved again. Default 30 s.
    pub dns_refresh_interval: Duration,
    /// Worker threads of the internal runtime; 0 means one per core, at most 4. Default 0.
    /// At most 256.
    pub worker_threads: usize,
    /// TLS settings for `https://` targets.
    pub tls: TlsConfig,
    /// Resolves host names in targets. Default: the operating system's resolver.
    pub resolver: Resolver,
    /// gRPC's service config as JSON ([`ServiceConfig`](crate::ServiceConfig) reads it when the
    /// pool is made): per-method timeouts, wait-for-ready, message limits and retry policies,
    /// and retry throttling. Default unset: no per-method policy, only transparent retries.
    pub service_config: Option<String>,
    /// The `:authority` sent with every call instead of the target's `host:port`. Default
    /// unset. Usually set for one target ([`Config::set_for_target`]).
    pub authority: Option<String>,
    /// Adds request metadata (an auth token) to every attempt of every call and stream, before
    /// a call's own hook ([`CallOptions::metadata_hook`](crate::CallOptions::metadata_hook)).
    /// A callback, not a value: not in the settings table. Default none.
    pub metadata_hook: Option<MetadataHook>,
    /// The xDS bootstrap (gRPC A27) as JSON, for `xds:///name` targets. Default unset: the
    /// file `GRPC_XDS_BOOTSTRAP` names, else the JSON in `GRPC_XDS_BOOTSTRAP_CONFIG`.
    pub xds_bootstrap: Option<String>,
    /// Settings of single targets over the pool's ([`Config::set_for_target`]).
    pub(crate) target_settings:
        std::collections::BTreeMap<String, Vec<(&'static str, crate::SettingValue)>>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            min_connections_per_target: 1,
            max_connections_per_target: 4,
            streams_per_connection: 64,
            connect_timeout: Duration::from_secs(20),
            keepalive_time: Some(Duration::from_secs(300)),
            keepalive_timeout: Duration::from_secs(20),
            keepalive_while_idle: false,
            tcp_nodelay: true,
            tcp_keepalive: Some(Duration::from_secs(60)),
            idle_timeout: Duration::from_secs(120),
            target_idle_timeout: Some(Duration::from_secs(30 * 60)),
            max_connection_age: Some(Duration::from_secs(30 * 60)),
            backoff: BackoffConfig::default(),
            acquire_timeout: Duration::from_secs(10),
            lease_leak_threshold: Duration::from_secs(60),
            initial_stream_window_size: 2 * 1024 * 1024,
            initial_connection_window_size: 8 * 1024 * 1024,
            max_send_message_size: 4 * 1024 * 1024,
            max_receive_message_size: 4 * 1024 * 1024,
            per_call_retry_buffer_size: 256 * 1024,
            retry_buffer_size: 16 * 1024 * 1024,
            dns_refresh_interval: Duration::from_secs(30),
            worker_threads: 0,
            tls: TlsConfig::default(),
            resolver: Resolver::system(),
            service_config: None,
            authority: None,
            metadata_hook: None,
            xds_bootstrap: None,
            target_settings: std::collections::BTreeMap::new(),
        }
    }
}

/// The longest duration a setting may hold: long enough to mean "never", short enough that
/// adding it to the current time cannot overflow.
const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The most worker threads a pool's runtime may have: far above any use (the pool's work is
/// network waits), low enough that a typo is refused instead of exhausting the process.
pub(crate) const MAX_WORKER_THREADS: usize = 256;

/// HTTP/2 caps a flow-control window at 2^31 - 1 bytes.
const MAX_WINDOW: u32 = (1 << 31) - 1;

impl Config {
    /// Checks that every value is in range.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |message: &str| Err(Error::InvalidConfig(message.to_owned()));
        if self.max_connections_per_target == 0 {
            return fail("max_connections_per_target must be at least 1");
        }
        if self.min_connections_per_target > self.max_connections_per_target {
            return fail("min_connections_per_target may not exceed max_connections_per_target");
        }
        if self.streams_per_connection == 0 {
            return fail("streams_per_connection must be at least 1");
        }
        if self.connect_timeout.is_zero() || self.keepalive_timeout.is_zero() {
            return fail("connect_timeout and keepalive_timeout must be above zero");
        }
        if self.keepalive_time.is_some_and(|time| time.is_zero()) {
            return fail("keepalive_time must be above zero (None disables pings)");
        }
        if self.lease_leak_threshold.is_zero() || self.dns_refresh_interval.is_zero() {
            return fail("lease_leak_threshold and dns_refresh_interval must be above zero");
        }
        if self.max_connection_age.is_some_and(|age| age.is_zero()) {
            return fail("max_connection_age must be above zero (None disables it)");
        }
        for (name, size) in [
            (
                "initial_stream_window_size",
                self.initial_stream_window_size,
            ),
            (
                "initial_connection_window_size",
                self.initial_connection_window_size,
            ),
        ] {
            if !(65_535..=MAX_WINDOW).contains(&size) {
                return fail(&format!("{name} must be between 65535 and 2^31-1"));
            }
        }
        let durations = [
            ("connect_timeout", Some(self.connect_timeout)),
            ("keepalive_time", self.keepalive_time),
            ("keepalive_timeout", Some(self.keepalive_timeout)),
            ("tcp_keepalive", self.tcp_keepalive),
            ("idle_timeout", Some(self.idle_timeout)),
            ("max_connection_age", self.max_connection_age),
            ("target_idle_timeout", self.target_idle_timeout),
            ("acquire_timeout", Some(self.acquire_timeout)),
            ("lease_leak_threshold", Some(self.lease_leak_threshold)),
            ("dns_refresh_interval", Some(self.dns_refresh_interval)),
            ("backoff.initial", Some(self.backoff.initial)),
            ("backoff.max", Some(self.backoff.max)),
        ];
        for (name, duration) in durations {
            if duration.is_some_and(|duration| duration > MAX_DURATION) {
                return fail(&format!("{name} may be at most 10 years"));
            }
        }
        if self.worker_threads > MAX_WORKER_THREADS {
            return fail(&format!(
                "worker_threads may be at most {MAX_WORKER_THREADS} (0: one per core, at most 4)"
            ));
        }
        if self.max_send_message_size == 0 || self.max_receive_message_size == 0 {
            return fail("message size limits must be above zero");
        }
        if let Some(authority) = &self.authority {
            if authority.parse::<http::uri::Authority>().is_err() {
                return fail(&format!("authority {authority:?} is not a host[:port]"));
            }
        }
        self.backoff.validate()
    }

    /// The worker count the runtime will use.
    pub(crate) fn effective_worker_threads(&self) -> usize {
        if self.worker_threads > 0 {
            return self.worker_threads;
        }
        std::thread::available_parallelism()
            .map(|cores| cores.get().min(4))
            .unwrap_or(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_out_of_range_values_are_named() {
        Config::default().validate().expect("defaults are valid");
        let config = Config {
            min_connections_per_target: 9,
            ..Config::default()
        };
        let message = config.validate().expect_err("min above max").to_string();
        assert!(message.contains("min_connections_per_target"), "{message}");
        let config = Config {
            initial_stream_window_size: 10,
            ..Config::default()
        };
        assert!(config.validate().is_err());
    }
}
