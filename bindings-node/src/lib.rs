//! `grpcpool-node`: the napi-rs addon behind the npm package `grpcpool`.
//!
//! It stays thin. The JavaScript side (`index.js`, `lib/`) owns the promises, `AbortSignal`
//! handling, `GrpcError` and the generated clients; this addon owns the core [`Pool`], its leases
//! and streams, turns JavaScript values into core types and back, and maps core errors to
//! [`Failure`]s.
//!
//! Every asynchronous operation is started with an id chosen by JavaScript and runs on the pool's
//! own tokio runtime. When it ends, its [`Completion`] goes into the pool's queue, and one
//! threadsafe function per pool wakes the JavaScript thread, which settles every finished
//! operation of that wake-up in one batch: one hop into the runtime, one back, and no
//! threadsafe function (with its libuv handle) made per call.
//!
//! [`Pool`]: grpcpool_core::Pool

mod completions;
mod convert;
mod failure;
mod lease;
mod options;
mod pool;
mod pool_state;
mod stats;
mod status;
mod stream;

pub use completions::Completion;
pub use convert::{CallResult, MetadataEntry};
pub use failure::Failure;
pub use lease::NativeLease;
pub use options::{pool_option_defaults, pool_option_names};
pub use pool::NativePool;
pub use stats::{ConnectionCounts, LeakedLease, PoolStats, TargetStats};
pub use status::Status;
pub use stream::NativeStream;
