//! grpcpool-core: long-lived, multiplexed gRPC connections per target, lent out as leases.
//!
//! A [`Pool`] owns a tokio runtime of its own and, per target, a few HTTP/2 connections kept
//! healthy (keepalive, reconnect with backoff, idle reaping, max age, GOAWAY drain). Callers
//! [`Pool::acquire`] a [`Lease`] on the least-loaded connection, make calls on it with raw
//! protobuf bytes, and drop it. Bindings for C, Python and Node sit on top of this crate.
//!
//! ```no_run
//! # async fn demo() -> Result<(), grpcpool_core::Error> {
//! use std::time::Duration;
//! use grpcpool_core::{CallOptions, Config, Pool};
//!
//! let pool = Pool::new(Config::default())?;
//! let lease = pool.acquire("http://127.0.0.1:50051", Duration::from_secs(1)).await?;
//! let response = lease
//!     .unary("/pkg.Service/Method", b"\x0a\x03abc".to_vec(), CallOptions::with_timeout(Duration::from_secs(2)))
//!     .await?;
//! println!("{} {:?}", response.code, response.body);
//! # Ok(()) }
//! ```
//!
//! Logs go through `tracing`; the library installs no subscriber, so it is silent unless the
//! host program (or a binding, under `GRPCPOOL_LOG`) sets one up.

mod address_book;
mod attempt;
mod backoff;
mod batched_writes;
mod body;
mod call;
mod call_options;
mod channel;
mod code;
mod codec;
mod config;
mod connection;
mod connectivity;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod health_check;
mod hedging;
mod histogram;
mod json_fields;
mod lease;
mod leases;
mod metadata;
mod metadata_hook;
mod metrics;
mod outlier_detection;
mod pool;
mod prepared_call;
mod pushed_endpoints;
mod reachability;
mod request_body;
mod resolver;
mod response;
mod retry;
mod runtime;
mod service_config;
mod settings;
mod shared;
mod shared_stream;
mod slot;
mod socket;
mod stats;
mod status_headers;
mod stream;
mod stream_hedging;
mod stream_open;
mod target;
mod target_pool;
mod tls;
mod transport;
mod wait_queue;
mod xds;

pub use backoff::BackoffConfig;
pub use call_options::{
    parse_call_option, CallOption, CallOptionValue, CallOptions, Compression, CALL_OPTIONS,
};
pub use code::Code;
pub use config::{Config, TlsConfig};
pub use connectivity::Connectivity;
pub use error::{Error, ErrorKind};
pub use lease::Lease;
pub use leases::{AcquireSite, LeakReport};
pub use metadata::{Metadata, MetadataValue};
pub use metadata_hook::{HookContext, HookError, MetadataHook};
pub use outlier_detection::{FailurePercentageEjection, OutlierDetection, SuccessRateEjection};
pub use pool::{AcquireOptions, BlockingTask, Pool};
pub use prepared_call::PreparedCall;
pub use resolver::{Resolve, Resolver, Resolving};
pub use response::Response;
pub use service_config::{
    HedgingPolicy, LoadBalancing, MethodConfig, RetryPolicy, RetryThrottling, ServiceConfig,
};
pub use settings::{setting, Setting, SettingType, SettingValue, SETTINGS};
pub use shared_stream::SharedStream;
pub use stats::{
    ConnectionCounts, ConnectionStats, PoolStats, TargetStats, WaitPercentiles, XdsResource,
    XdsStats,
};
pub use stream::{Stream, StreamSender};
