//! The settings table: every pool setting declared once, with its type, unit, default, the
//! reason for the default, what turns it off and whether a target may override it.
//!
//! The faces read this table instead of keeping lists of their own: C sets any setting by name
//! (`grpcpool_config_set`), Python takes each as a keyword argument, Node as an option, and the
//! README's table, Python's `PoolSettings` and Node's `PoolOptions` are generated from it. A
//! face only converts units (seconds in Python, milliseconds in C and Node).

use std::time::Duration;

use crate::{Config, Error};

/// What kind of value a setting holds; it decides how each face takes the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SettingType {
    /// A whole number from 0 to `max`.
    Integer {
        /// The largest value the field can hold (ranges are checked by [`Config::validate`]).
        max: u64,
    },
    /// A real number.
    Number,
    /// A duration. Where [`Setting::off`] is set, zero turns the feature off.
    Duration,
    /// True or false.
    Bool,
    /// PEM text (certificates or a key).
    Pem,
    /// A string.
    Text,
    /// A JSON document, as text (Python also takes a dict, Node an object).
    Json,
}

/// A value for a setting, in the engine's units.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingValue {
    /// For [`SettingType::Integer`].
    Integer(u64),
    /// For [`SettingType::Number`].
    Number(f64),
    /// For [`SettingType::Duration`]; zero turns off a setting that can be turned off.
    Duration(Duration),
    /// For [`SettingType::Bool`].
    Bool(bool),
    /// For [`SettingType::Pem`].
    Pem(Vec<u8>),
    /// For [`SettingType::Text`].
    Text(String),
}

/// One pool setting.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Setting {
    /// The setting's name: snake_case, as C's `grpcpool_config_set` and Python's keyword
    /// arguments spell it (Node: [`Setting::camel_case_name`]).
    pub name: &'static str,
    /// What it holds.
    #[serde(flatten)]
    pub kind: SettingType,
    /// The unit of an integer (`connections`, `bytes`, ...); "" for the other types.
    pub unit: &'static str,
    /// What it does, in one sentence.
    pub summary: &'static str,
    /// Why the default is what it is.
    pub why: &'static str,
    /// What a value of zero turns off, for settings that can be turned off.
    pub off: Option<&'static str>,
    /// Whether a target's own configuration may override it (the per-target service config
    /// takes these; the others belong to the pool as a whole).
    pub per_target: bool,
    #[serde(skip)]
    read: fn(&Config) -> Option<SettingValue>,
    #[serde(skip)]
    write: fn(&mut Config, SettingValue) -> Option<()>,
}

const U32: u64 = u32::MAX as u64;

fn integer<T: TryFrom<u64>>(value: SettingValue) -> Option<T> {
    match value {
        SettingValue::Integer(number) => T::try_from(number).ok(),
        _ => None,
    }
}

fn duration(value: SettingValue) -> Option<Duration> {
    match value {
        SettingValue::Duration(duration) => Some(duration),
        _ => None,
    }
}

/// A duration where zero turns the feature off.
fn optional_duration(value: SettingValue) -> Option<Option<Duration>> {
    duration(value).map(|duration| (!duration.is_zero()).then_some(duration))
}

fn number(value: SettingValue) -> Option<f64> {
    match value {
        SettingValue::Number(number) => Some(number),
        // A whole number is a number too.
        SettingValue::Integer(number) => Some(number as f64),
        _ => None,
    }
}

fn flag(value: SettingValue) -> Option<bool> {
    match value {
        SettingValue::Bool(flag) => Some(flag),
        _ => None,
    }
}

fn pem(value: SettingValue) -> Option<Vec<u8>> {
    match value {
        SettingValue::Pem(bytes) => Some(bytes),
        SettingValue::Text(text) => Some(text.into_bytes()),
        _ => None,
    }
}

fn text(value: SettingValue) -> Option<String> {
    match value {
        SettingValue::Text(text) => Some(text),
        _ => None,
    }
}

fn some_integer(value: usize) -> Option<SettingValue> {
    Some(SettingValue::Integer(value as u64))
}

fn some_duration(value: Option<Duration>) -> Option<SettingValue> {
    Some(SettingValue::Duration(value.unwrap_or(Duration::ZERO)))
}

/// Every pool setting, in the order the README lists them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "min_connections_per_target",
        kind: SettingType::Integer { max: U32 },
        unit: "connections",
        summary: "Connections kept open per target once it has been used.",
        why: "1: the first call after a quiet spell pays no handshake.",
        off: None,
        per_target: true,
        read: |config| some_integer(config.min_connections_per_target),
        write: |config, value| {
            config.min_connections_per_target = integer(value)?;
            Some(())
        },
    },
    Setting {
        name: "max_connections_per_target",
        kind: SettingType::Integer { max: U32 },
        unit: "connections",
        summary: "Upper bound on connections per target.",
        why: "4: one HTTP/2 connection carries many streams; a few spread load over server \
              threads and survive one connection's loss.",
        off: None,
        per_target: true,
        read: |config| some_integer(config.max_connections_per_target),
        write: |config, value| {
            config.max_connections_per_target = integer(value)?;
            Some(())
        },
    },
    Setting {
        name: "streams_per_connection",
        kind: SettingType::Integer { max: U32 },
        unit: "streams",
        summary: "Streams in flight per connection before another connection is opened.",
        why: "64: below the common server limit of 100 concurrent streams, so growth starts \
              before servers queue.",
        off: None,
        per_target: true,
        read: |config| Some(SettingValue::Integer(config.streams_per_connection.into())),
        write: |config, value| {
            config.streams_per_connection = integer(value)?;
            Some(())
        },
    },
    Setting {
        name: "connect_timeout",
        kind: SettingType::Duration,
        unit: "",
        summary: "Time allowed for TCP connect, TLS and the HTTP/2 handshake.",
        why: "20 s, gRPC's minimum connect timeout.",
        off: None,
        per_target: true,
        read: |config| some_duration(Some(config.connect_timeout)),
        write: |config, value| {
            config.connect_timeout = duration(value)?;
            Some(())
        },
    },
    Setting {
        name: "keepalive_time",
        kind: SettingType::Duration,
        unit: "",
        summary: "Interval between HTTP/2 keepalive pings; doubled per target after a GOAWAY \
                  too_many_pings (gRPC A8).",
        why: "5 min: a grpc-go server's default enforcement (MinTime 5 minutes) never answers \
              it with GOAWAY too_many_pings.",
        off: Some("sends no pings"),
        per_target: true,
        read: |config| some_duration(config.keepalive_time),
        write: |config, value| {
            config.keepalive_time = optional_duration(value)?;
            Some(())
        },
    },
    Setting {
        name: "keepalive_timeout",
        kind: SettingType::Duration,
        unit: "",
        summary: "How long a ping may go unanswered before the connection is declared dead.",
        why: "20 s, gRPC's default keepalive timeout.",
        off: None,
        per_target: true,
        read: |config| some_duration(Some(config.keepalive_timeout)),
        write: |config, value| {
            config.keepalive_timeout = duration(value)?;
            Some(())
        },
    },
    Setting {
        name: "keepalive_while_idle",
        kind: SettingType::Bool,
        unit: "",
        summary: "Whether to ping connections with no calls in flight.",
        why: "false: grpc-go servers by default (PermitWithoutStream false) count such pings \
              as abuse and close the connection.",
        off: None,
        per_target: true,
        read: |config| Some(SettingValue::Bool(config.keepalive_while_idle)),
        write: |config, value| {
            config.keepalive_while_idle = flag(value)?;
            Some(())
        },
    },
    Setting {
        name: "tcp_nodelay",
        kind: SettingType::Bool,
        unit: "",
        summary: "Sets TCP_NODELAY on every connection.",
        why: "true: gRPC messages are small and latency-bound.",
        off: None,
        per_target: true,
        read: |config| Some(SettingValue::Bool(config.tcp_nodelay)),
        write: |config, value| {
            config.tcp_nodelay = flag(value)?;
            Some(())
        },
    },
    Setting {
        name: "tcp_keepalive",
        kind: SettingType::Duration,
        unit: "",
        summary: "TCP keepalive idle time.",
        why: "60 s: finds dead peers on idle connections without gRPC pings a server might \
              reject.",
        off: Some("leaves the OS default"),
        per_target: true,
        read: |config| some_duration(config.tcp_keepalive),
        write: |config, value| {
            config.tcp_keepalive = optional_duration(value)?;
            Some(())
        },
    },
    Setting {
        name: "idle_timeout",
        kind: SettingType::Duration,
        unit: "",
        summary: "Connections above the minimum that carry no call for this long are closed.",
        why: "2 min: a burst that needed them is likely to return soon, yet well under common \
              load balancer idle cut-offs (350 s and more).",
        off: None,
        per_target: true,
        read: |config| some_duration(Some(config.idle_timeout)),
        write: |config, value| {
            config.idle_timeout = duration(value)?;
            Some(())
        },
    },
    Setting {
        name: "target_idle_timeout",
        kind: SettingType::Duration,
        unit: "",
        summary: "A target with no call, lease or stream for this long leaves the pool: its \
                  connections close and its upkeep stops; using it again starts it afresh.",
        why: "30 min, gRPC's default channel idle timeout: a fleet's retired backends do not \
              hold connections and tasks for the pool's life.",
        off: Some("keeps every target for the pool's life"),
        per_target: false,
        read: |config| some_duration(config.target_idle_timeout),
        write: |config, value| {
            config.target_idle_timeout = optional_duration(value)?;
            Some(())
        },
    },
    Setting {
        name: "max_connection_age",
        kind: SettingType::Duration,
        unit: "",
        summary: "Connections older than this (±10% jitter) are replaced: a new one opens \
                  first, then the old one drains.",
        why: "30 min: new DNS answers and backends get traffic.",
        off: Some("keeps connections for good"),
        per_target: true,
        read: |config| some_duration(config.max_connection_age),
        write: |config, value| {
            config.max_connection_age = optional_duration(value)?;
            Some(())
        },
    },
    Setting {
        name: "backoff_initial",
        kind: SettingType::Duration,
        unit: "",
        summary: "Delay after the first failed connection attempt.",
        why: "1 s, gRPC's connection-backoff spec.",
        off: None,
        per_target: true,
        read: |config| some_duration(Some(config.backoff.initial)),
        write: |config, value| {
            config.backoff.initial = duration(value)?;
            Some(())
        },
    },
    Setting {
        name: "backoff_multiplier",
        kind: SettingType::Number,
        unit: "",
        summary: "Growth of the delay per failed attempt (at least 1).",
        why: "1.6, gRPC's connection-backoff spec.",
        off: None,
        per_target: true,
        read: |config| Some(SettingValue::Number(config.backoff.multiplier)),
        write: |config, value| {
            config.backoff.multiplier = number(value)?;
            Some(())
        },
    },
    Setting {
        name: "backoff_jitter",
        kind: SettingType::Number,
        unit: "",
        summary: "Random spread of each delay, as a fraction from 0 to below 1.",
        why: "0.2, gRPC's connection-backoff spec: clients that failed together do not retry \
              together.",
        off: None,
        per_target: true,
        read: |config| Some(SettingValue::Number(config.backoff.jitter)),
        write: |config, value| {
            config.backoff.jitter = number(value)?;
            Some(())
        },
    },
    Setting {
        name: "backoff_max",
        kind: SettingType::Duration,
        unit: "",
        summary: "Longest delay between connection attempts.",
        why: "120 s, gRPC's connection-backoff spec.",
        off: None,
        per_target: true,
        read: |config| some_duration(Some(config.backoff.max)),
        write: |config, value| {
            config.backoff.max = duration(value)?;
            Some(())
        },
    },
    Setting {
        name: "acquire_timeout",
        kind: SettingType::Duration,
        unit: "",
        summary: "How long an acquire waits for a slot when the caller gives no timeout.",
        why: "10 s: long enough to ride out a reconnect, short enough to surface a stuck pool.",
        off: None,
        per_target: true,
        read: |config| some_duration(Some(config.acquire_timeout)),
        write: |config, value| {
            config.acquire_timeout = duration(value)?;
            Some(())
        },
    },
    Setting {
        name: "lease_leak_threshold",
        kind: SettingType::Duration,
        unit: "",
        summary: "A lease held longer than this is reported as a leak, with where it was taken.",
        why: "60 s: far above any sane call, short enough to be seen in a log.",
        off: None,
        per_target: false,
        read: |config| some_duration(Some(config.lease_leak_threshold)),
        write: |config, value| {
            config.lease_leak_threshold = duration(value)?;
            Some(())
        },
    },
    Setting {
        name: "initial_stream_window_size",
        kind: SettingType::Integer { max: U32 },
        unit: "bytes",
        summary: "HTTP/2 initial stream flow-control window (65535 to 2^31-1).",
        why: "2 MiB: a 1 MiB message crosses a loopback or LAN link without waiting for \
              WINDOW_UPDATE; h2's default of 64 KiB throttles large messages.",
        off: None,
        per_target: true,
        read: |config| {
            Some(SettingValue::Integer(
                config.initial_stream_window_size.into(),
            ))
        },
        write: |config, value| {
            config.initial_stream_window_size = integer(value)?;
            Some(())
        },
    },
    Setting {
        name: "initial_connection_window_size",
        kind: SettingType::Integer { max: U32 },
        unit: "bytes",
        summary: "HTTP/2 initial connection flow-control window (65535 to 2^31-1).",
        why: "8 MiB: several large streams at once.",
        off: None,
        per_target: true,
        read: |config| {
            Some(SettingValue::Integer(
                config.initial_connection_window_size.into(),
            ))
        },
        write: |config, value| {
            config.initial_connection_window_size = integer(value)?;
            Some(())
        },
    },
    Setting {
        name: "max_send_message_size",
        kind: SettingType::Integer { max: U32 },
        unit: "bytes",
        summary: "Largest request message accepted; a larger one fails before it is sent.",
        why: "4 MiB, the receive limit of most gRPC servers.",
        off: None,
        per_target: true,
        read: |config| some_integer(config.max_send_message_size),
        write: |config, value| {
            config.max_send_message_size = integer(value)?;
            Some(())
        },
    },
    Setting {
        name: "max_receive_message_size",
        kind: SettingType::Integer { max: U32 },
        unit: "bytes",
        summary: "Largest response message accepted; a larger one ends the call with \
                  RESOURCE_EXHAUSTED.",
        why: "4 MiB, gRPC's default.",
        off: None,
        per_target: true,
        read: |config| some_integer(config.max_receive_message_size),
        write: |config, value| {
            config.max_receive_message_size = integer(value)?;
            Some(())
        },
    },
    Setting {
        name: "per_call_retry_buffer_size",
        kind: SettingType::Integer { max: U32 },
        unit: "bytes",
        summary: "Request bytes a call keeps for another attempt (configured and transparent \
                  retries); a call that sends more is committed to its attempt.",
        why: "256 KiB, gRPC's per-call retry buffer: most requests fit, large uploads are not \
              held twice.",
        off: None,
        per_target: true,
        read: |config| some_integer(config.per_call_retry_buffer_size),
        write: |config, value| {
            config.per_call_retry_buffer_size = integer(value)?;
            Some(())
        },
    },
    Setting {
        name: "retry_buffer_size",
        kind: SettingType::Integer { max: U32 },
        unit: "bytes",
        summary: "Request bytes all the pool's streams keep for other attempts together; a \
                  stream that would pass it is committed to its attempt.",
        why: "16 MiB: retries never hold much of a process's memory, however many streams.",
        off: None,
        per_target: false,
        read: |config| some_integer(config.retry_buffer_size),
        write: |config, value| {
            config.retry_buffer_size = integer(value)?;
            Some(())
        },
    },
    Setting {
        name: "dns_refresh_interval",
        kind: SettingType::Duration,
        unit: "",
        summary: "How often host names in targets are resolved again.",
        why: "30 s: connections follow DNS changes within a minute without loading resolvers.",
        off: None,
        per_target: true,
        read: |config| some_duration(Some(config.dns_refresh_interval)),
        write: |config, value| {
            config.dns_refresh_interval = duration(value)?;
            Some(())
        },
    },
    Setting {
        name: "worker_threads",
        kind: SettingType::Integer {
            max: crate::config::MAX_WORKER_THREADS as u64,
        },
        unit: "threads",
        summary: "Worker threads of the pool's internal runtime; 0 means one per core, at most 4.",
        why: "0: a pool's work is network waits, so a few threads serve thousands of calls.",
        off: None,
        per_target: false,
        read: |config| some_integer(config.worker_threads),
        write: |config, value| {
            config.worker_threads = integer(value)?;
            Some(())
        },
    },
    Setting {
        name: "tls_ca_pem",
        kind: SettingType::Pem,
        unit: "",
        summary: "PEM certificates to trust for https:// targets instead of the system roots.",
        why: "unset: the system's roots, as a browser or curl would trust.",
        off: None,
        per_target: true,
        read: |config| config.tls.ca_pem.clone().map(SettingValue::Pem),
        write: |config, value| {
            config.tls.ca_pem = Some(pem(value)?);
            Some(())
        },
    },
    Setting {
        name: "tls_client_cert_pem",
        kind: SettingType::Pem,
        unit: "",
        summary: "PEM certificate chain presented to servers that ask for one (mTLS).",
        why: "unset: no client certificate.",
        off: None,
        per_target: true,
        read: |config| config.tls.client_cert_pem.clone().map(SettingValue::Pem),
        write: |config, value| {
            config.tls.client_cert_pem = Some(pem(value)?);
            Some(())
        },
    },
    Setting {
        name: "tls_client_key_pem",
        kind: SettingType::Pem,
        unit: "",
        summary: "PEM private key of tls_client_cert_pem.",
        why: "unset: no client certificate.",
        off: None,
        per_target: true,
        read: |config| config.tls.client_key_pem.clone().map(SettingValue::Pem),
        write: |config, value| {
            config.tls.client_key_pem = Some(pem(value)?);
            Some(())
        },
    },
    Setting {
        name: "tls_server_name",
        kind: SettingType::Text,
        unit: "",
        summary: "The name checked against the server's certificate (and sent as SNI) instead \
                  of the target's host.",
        why: "unset: the target's host, as TLS expects.",
        off: None,
        per_target: true,
        read: |config| {
            config
                .tls
                .server_name_override
                .clone()
                .map(SettingValue::Text)
        },
        write: |config, value| {
            config.tls.server_name_override = Some(text(value)?);
            Some(())
        },
    },
    Setting {
        name: "authority",
        kind: SettingType::Text,
        unit: "",
        summary: "The :authority sent with every call instead of the target's host:port (a \
                  virtual host behind a proxy or load balancer).",
        why: "unset: the target's host:port, as gRPC sends it.",
        off: None,
        per_target: true,
        read: |config| config.authority.clone().map(SettingValue::Text),
        write: |config, value| {
            config.authority = Some(text(value)?);
            Some(())
        },
    },
    Setting {
        name: "service_config",
        kind: SettingType::Json,
        unit: "",
        summary: "gRPC service config (JSON): per-method timeout, waitForReady, message limits \
                  and retryPolicy, and retryThrottling, as grpc-go reads them.",
        why: "unset: no per-method policy; only transparent retries.",
        off: None,
        per_target: true,
        read: |config| config.service_config.clone().map(SettingValue::Text),
        write: |config, value| {
            config.service_config = Some(text(value)?);
            Some(())
        },
    },
    Setting {
        name: "xds_bootstrap",
        kind: SettingType::Json,
        unit: "",
        summary: "The xDS bootstrap (gRPC A27) for xds:///name targets: xds_servers \
                  (server_uri, channel_creds insecure or tls, server_features) and node.",
        why: "unset: the file GRPC_XDS_BOOTSTRAP names, else GRPC_XDS_BOOTSTRAP_CONFIG, as \
              gRPC reads them.",
        off: None,
        per_target: false,
        read: |config| config.xds_bootstrap.clone().map(SettingValue::Text),
        write: |config, value| {
            config.xds_bootstrap = Some(text(value)?);
            Some(())
        },
    },
];

/// The setting called `name` (snake_case).
pub fn setting(name: &str) -> Result<&'static Setting, Error> {
    SETTINGS
        .iter()
        .find(|setting| setting.name == name)
        .ok_or_else(|| Error::InvalidConfig(format!("unknown pool setting {name:?}")))
}

impl Setting {
    /// The value `config` holds; `None` for a setting left unset (the TLS ones).
    pub fn get(&self, config: &Config) -> Option<SettingValue> {
        (self.read)(config)
    }

    /// The default value; `None` when it is unset by default.
    pub fn default_value(&self) -> Option<SettingValue> {
        self.get(&Config::default())
    }

    /// The name in camelCase, with `Ms` after a duration's name: how the Node face and its
    /// TypeScript types spell the setting (`keepalive_time` is `keepaliveTimeMs`).
    pub fn camel_case_name(&self) -> String {
        let mut name = String::with_capacity(self.name.len() + 2);
        let mut upper = false;
        for character in self.name.chars() {
            if character == '_' {
                upper = true;
            } else if upper {
                name.push(character.to_ascii_uppercase());
                upper = false;
            } else {
                name.push(character);
            }
        }
        if self.kind == SettingType::Duration {
            name.push_str("Ms");
        }
        name
    }

    /// Reads a value from text, as C's `grpcpool_config_set` takes it: a whole number, a real
    /// number, `true`/`false`, a duration with its unit (`250ms`, `20s`, `5m`, `1h`; `0` or
    /// `off` turns off a setting that can be), PEM text, or a string.
    pub fn parse(&self, text: &str) -> Result<SettingValue, Error> {
        let trimmed = text.trim();
        let invalid = |expected: &str| {
            Error::InvalidConfig(format!("{} takes {expected}, not {text:?}", self.name))
        };
        match self.kind {
            SettingType::Integer { .. } => trimmed
                .parse()
                .map(SettingValue::Integer)
                .map_err(|_| invalid("a whole number")),
            SettingType::Number => trimmed
                .parse::<f64>()
                .ok()
                .filter(|number| number.is_finite())
                .map(SettingValue::Number)
                .ok_or_else(|| invalid("a number")),
            SettingType::Bool => match trimmed {
                "true" | "1" => Ok(SettingValue::Bool(true)),
                "false" | "0" => Ok(SettingValue::Bool(false)),
                _ => Err(invalid("true or false")),
            },
            SettingType::Duration => parse_duration(trimmed, self.off.is_some())
                .map(SettingValue::Duration)
                .ok_or_else(|| {
                    invalid(if self.off.is_some() {
                        "a duration with its unit (250ms, 20s, 5m, 1h), or 0 or off"
                    } else {
                        "a duration with its unit (250ms, 20s, 5m, 1h)"
                    })
                }),
            SettingType::Pem => Ok(SettingValue::Pem(text.as_bytes().to_vec())),
            SettingType::Text | SettingType::Json => Ok(SettingValue::Text(text.to_owned())),
        }
    }

    /// A value as text that [`Setting::parse`] reads back: the README's defaults column.
    pub fn format(&self, value: &SettingValue) -> String {
        match value {
            SettingValue::Integer(number) => number.to_string(),
            SettingValue::Number(number) => number.to_string(),
            SettingValue::Duration(duration) if duration.is_zero() && self.off.is_some() => {
                "off".to_owned()
            }
            SettingValue::Duration(duration) => format_duration(*duration),
            SettingValue::Bool(flag) => flag.to_string(),
            SettingValue::Pem(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            SettingValue::Text(text) => text.clone(),
        }
    }

    fn apply(&self, config: &mut Config, value: SettingValue) -> Result<(), Error> {
        let shown = match &value {
            SettingValue::Pem(_) => "PEM bytes".to_owned(),
            SettingValue::Text(text) => format!("{text:?}"),
            other => self.format(other),
        };
        (self.write)(config, value).ok_or_else(|| {
            Error::InvalidConfig(format!(
                "{} takes {}, not {shown}",
                self.name,
                self.expects()
            ))
        })
    }

    /// What the setting takes, for error messages.
    fn expects(&self) -> String {
        match self.kind {
            SettingType::Integer { max } => format!("a whole number from 0 to {max}"),
            SettingType::Number => "a number".to_owned(),
            SettingType::Duration => "a duration".to_owned(),
            SettingType::Bool => "true or false".to_owned(),
            SettingType::Pem => "PEM text".to_owned(),
            SettingType::Text => "a string".to_owned(),
            SettingType::Json => "a JSON document".to_owned(),
        }
    }
}

impl Config {
    /// Sets the setting called `name` (see [`SETTINGS`]); the value's type must be the
    /// setting's. Ranges are checked when the pool is made ([`Config::validate`]).
    pub fn set(&mut self, name: &str, value: SettingValue) -> Result<(), Error> {
        setting(name)?.apply(self, value)
    }

    /// Sets a setting from text, as [`Setting::parse`] reads it.
    pub fn set_text(&mut self, name: &str, text: &str) -> Result<(), Error> {
        let setting = setting(name)?;
        let value = setting.parse(text)?;
        setting.apply(self, value)
    }

    /// Sets the setting called `name` for calls to `target` alone (the exact target string),
    /// over the pool's own value: one of the settings marked [`Setting::per_target`]. The
    /// value's type is checked now; the target's whole configuration when the pool is made.
    pub fn set_for_target(
        &mut self,
        target: &str,
        name: &str,
        value: SettingValue,
    ) -> Result<(), Error> {
        let setting = setting(name)?;
        if !setting.per_target {
            return Err(Error::InvalidConfig(format!(
                "{name} belongs to the pool as a whole and cannot be set per target"
            )));
        }
        // The type, checked on a scratch copy: the override is applied when the pool is made.
        setting.apply(&mut Config::default(), value.clone())?;
        let overrides = self.target_settings.entry(target.to_owned()).or_default();
        overrides.retain(|(existing, _)| *existing != setting.name);
        overrides.push((setting.name, value));
        Ok(())
    }

    /// [`Config::set_for_target`] from text, as [`Setting::parse`] reads it.
    pub fn set_text_for_target(
        &mut self,
        target: &str,
        name: &str,
        text: &str,
    ) -> Result<(), Error> {
        let value = setting(name)?.parse(text)?;
        self.set_for_target(target, name, value)
    }

    /// The targets with settings of their own.
    pub fn targets_with_settings(&self) -> impl Iterator<Item = &str> {
        self.target_settings.keys().map(String::as_str)
    }

    /// The configuration calls to `target` run under: the pool's, with the target's own
    /// settings over it; `None` when the target has none.
    pub fn for_target(&self, target: &str) -> Option<Result<Config, Error>> {
        let overrides = self.target_settings.get(target)?;
        let mut config = self.clone();
        config.target_settings.clear();
        for (name, value) in overrides {
            if let Err(error) = config.set(name, value.clone()) {
                return Some(Err(error));
            }
        }
        Some(Ok(config))
    }
}

/// `250ms`, `20s`, `1.5s`, `5m`, `1h`; `0` (and `off` where `may_be_off`) is zero.
pub(crate) fn parse_duration(text: &str, may_be_off: bool) -> Option<Duration> {
    if text == "0" || (may_be_off && text == "off") {
        return Some(Duration::ZERO);
    }
    let split = text.find(|character: char| character.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let nanos_per_unit: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    // Decimal digits, in integers: an f64 holds whole nanoseconds only below 2^22 s (about 48
    // days), and a config may hold up to 10 years.
    let number = number.trim();
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    // A u128 of the unit (parsing fails past it), then nanoseconds with checked arithmetic:
    // anything past a u64 of seconds is refused below.
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    // Digits past the 20th are below a nanosecond in every unit; they are dropped.
    let fraction = &fraction[..fraction.len().min(20)];
    let fraction_nanos = if fraction.is_empty() {
        0
    } else {
        let scale = 10u128.pow(u32::try_from(fraction.len()).ok()?);
        fraction.parse::<u128>().ok()? * nanos_per_unit / scale
    };
    let nanos = whole
        .checked_mul(nanos_per_unit)?
        .checked_add(fraction_nanos)?;
    let seconds = u64::try_from(nanos / 1_000_000_000).ok()?;
    let subsec = u32::try_from(nanos % 1_000_000_000).ok()?;
    Some(Duration::new(seconds, subsec))
}

/// The largest unit that shows `duration` exactly.
fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    let nanos = duration.subsec_nanos();
    if duration.is_zero() {
        "0".to_owned()
    } else if !nanos.is_multiple_of(1_000_000) {
        // Seconds with the nanoseconds written out exactly, trailing zeros dropped.
        let fraction = format!("{nanos:09}");
        format!("{}.{}s", duration.as_secs(), fraction.trim_end_matches('0'))
    } else if !millis.is_multiple_of(1000) {
        format!("{millis}ms")
    } else if millis.is_multiple_of(3_600_000) {
        format!("{}h", millis / 3_600_000)
    } else if millis.is_multiple_of(60_000) {
        format!("{}m", millis / 60_000)
    } else {
        format!("{}s", millis / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_field_is_in_the_table() {
        // Debug lists every field of Config, BackoffConfig and TlsConfig by name.
        let shown = format!("{:#?}", Config::default());
        let mut fields = Vec::new();
        let mut section = "";
        for line in shown.lines() {
            let trimmed = line.trim();
            let Some((field, rest)) = trimmed.split_once(": ") else {
                continue;
            };
            let depth = line.len() - line.trim_start().len();
            if depth == 4 {
                section = if rest.ends_with('{') { field } else { "" };
                if section.is_empty() {
                    fields.push(field.to_owned());
                }
            } else if depth == 8 {
                match section {
                    "backoff" => fields.push(format!("backoff_{field}")),
                    "tls" => fields.push(format!("tls_{field}")),
                    _ => {}
                }
            }
        }
        let renamed = |field: &str| match field {
            "tls_server_name_override" => "tls_server_name".to_owned(),
            other => other.to_owned(),
        };
        let missing: Vec<String> = fields
            .iter()
            .map(|field| renamed(field))
            // The resolver and the metadata hook are Rust objects, not values a face can give
            // as text (faces set the hook with a setter of their own); target_settings holds
            // other settings, by target (set_for_target).
            .filter(|field| {
                field != "resolver" && field != "metadata_hook" && field != "target_settings"
            })
            .filter(|field| setting(field).is_err())
            .collect();
        assert!(fields.len() > 20, "parsed {fields:?}");
        assert!(
            missing.is_empty(),
            "fields missing from SETTINGS: {missing:?}"
        );
    }

    #[test]
    fn every_default_round_trips_through_text() {
        for setting in SETTINGS {
            let Some(value) = setting.default_value() else {
                continue;
            };
            let text = setting.format(&value);
            let mut config = Config::default();
            config
                .set_text(setting.name, &text)
                .unwrap_or_else(|error| panic!("{}: {error}", setting.name));
            assert_eq!(setting.get(&config), Some(value), "{}", setting.name);
        }
    }

    #[test]
    fn names_are_unique_and_bad_values_are_named() {
        let mut names: Vec<&str> = SETTINGS.iter().map(|setting| setting.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len());
        let mut config = Config::default();
        let error = config
            .set("keepalive_time", SettingValue::Bool(true))
            .expect_err("wrong type");
        assert!(error.to_string().contains("keepalive_time"), "{error}");
        let error = config.set_text("no_such", "1").expect_err("unknown");
        assert!(error.to_string().contains("no_such"), "{error}");
        assert!(config.set_text("connect_timeout", "20").is_err(), "no unit");
        config.set_text("keepalive_time", "off").expect("off");
        assert_eq!(config.keepalive_time, None);
        config.set_text("keepalive_time", "1.5s").expect("fraction");
        assert_eq!(config.keepalive_time, Some(Duration::from_millis(1500)));
        assert!(config
            .set("streams_per_connection", SettingValue::Integer(1 << 40))
            .is_err());
    }

    #[test]
    fn durations_read_and_write_exactly() {
        for (text, expected) in [
            ("250ms", Duration::from_millis(250)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("2.s", Duration::from_secs(2)),
            ("0.000000001s", Duration::from_nanos(1)),
            ("1.5m", Duration::from_secs(90)),
            ("1 h", Duration::from_secs(3600)),
            // Found by fuzz/fuzz_targets/settings.rs: f64 arithmetic rounded these.
            ("184157092048ms", Duration::from_millis(184_157_092_048)),
            ("8447783.065190666s", Duration::new(8_447_783, 65_190_666)),
            // Found by fuzz/fuzz_targets/settings.rs: 21 digits of milliseconds.
            (
                "177192000178111962360ms",
                Duration::new(177_192_000_178_111_962, 360_000_000),
            ),
        ] {
            assert_eq!(parse_duration(text, false), Some(expected), "{text}");
        }
        for refused in [
            "",
            "s",
            ".s",
            "+1s",
            "-1s",
            "1e3s",
            "1..5s",
            "1.5",
            "5d",
            "99999999999999999999999h",
        ] {
            assert_eq!(parse_duration(refused, false), None, "{refused}");
        }
        for duration in [
            Duration::new(315_360_000, 999_999_999),
            Duration::new(8_447_783, 65_190_666),
            Duration::from_nanos(1),
            Duration::from_millis(1500),
            Duration::new(177_192_000_178_111_962, 360_000_000),
            Duration::new(u64::MAX, 999_999_999),
        ] {
            let text = format_duration(duration);
            assert_eq!(parse_duration(&text, false), Some(duration), "{text}");
        }
    }

    #[test]
    fn camel_case_names_add_ms_to_durations() {
        let name = |name| setting(name).map(Setting::camel_case_name).ok();
        assert_eq!(name("keepalive_time").as_deref(), Some("keepaliveTimeMs"));
        assert_eq!(name("tls_ca_pem").as_deref(), Some("tlsCaPem"));
        assert_eq!(
            name("max_connections_per_target").as_deref(),
            Some("maxConnectionsPerTarget")
        );
    }
}
