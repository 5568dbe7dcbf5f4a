//! The pool: the object a program makes once, holding the runtime and a pool per target.

use std::collections::HashMap;
use std::future::Future;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{self, Either};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use tokio::runtime::Handle;

use crate::call_options::CallOptions;
use crate::connectivity::{self, Connectivity, ConnectivitySignal};
use crate::leases::{AcquireSite, LeakReport};
use crate::metrics::TargetMetrics;
use crate::prepared_call::PreparedCall;
use crate::pushed_endpoints::{PushedEndpoints, Weighted};
use crate::response::Response;
use crate::retry::{Pushback, Retries};
use crate::runtime::LazyRuntime;
use crate::service_config::ServiceConfig;
use crate::shared::Shared;
use crate::stats::{Counters, PoolStats};
use crate::target::{check_pushed_name, parse_pushed_endpoint, Security, Target};
use crate::target_pool::{TargetPool, TargetSettings};
use crate::transport::Dialer;
use crate::xds::client::endpoints_key;

use crate::{Config, Error, Lease, Stream};

mod batched_wakes;
mod tasks;
mod xds_routing;

pub use tasks::BlockingTask;

/// How to acquire a lease.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AcquireOptions {
    /// How long to wait for a slot; `None` uses `Config::acquire_timeout`.
    pub timeout: Option<Duration>,
    /// Wait for a connection while the target is unreachable instead of failing fast.
    pub wait_for_ready: bool,
    /// Where the lease is acquired, for leak reports; `None` records the Rust caller.
    pub site: Option<Arc<str>>,
}

impl AcquireOptions {
    /// Options with the given timeout.
    pub fn with_timeout(timeout: Duration) -> AcquireOptions {
        AcquireOptions {
            timeout: Some(timeout),
            ..AcquireOptions::default()
        }
    }
}

/// A pool of gRPC connections to any number of targets. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    config: Arc<Config>,
    /// `config.service_config`, parsed when the pool was made.
    service_config: Option<Arc<ServiceConfig>>,
    /// The targets with settings of their own, checked when the pool was made.
    per_target: HashMap<String, TargetSettings>,
    runtime: LazyRuntime,
    /// Set by [`Pool::close`]: no new acquire, call or stream from then on.
    closed: AtomicBool,
    shared: OnceLock<Arc<Shared>>,
    /// Serialises the first start of the runtime and the shared state.
    starting: Mutex<()>,
    /// Every target in use; shared (weakly) with each target, which leaves it when idle.
    /// (Fx-hashed: looked up on every call, keyed by the program's own target strings.)
    targets: Arc<RwLock<FxHashMap<String, Arc<TargetPool>>>>,
    /// Endpoints set for `static:///name` targets, kept from before the runtime starts.
    pushed: Arc<PushedEndpoints>,
    /// Told when any target's connectivity may have changed (made before the runtime starts,
    /// so a watch may begin first).
    connectivity: Arc<ConnectivitySignal>,
    /// Where blocking callers sleep until their calls end.
    wakes: Arc<batched_wakes::BatchedWakes>,
}

impl Pool {
    /// Makes a pool. No thread or connection starts until the first acquire.
    pub fn new(config: Config) -> Result<Pool, Error> {
        let service_config = checked(&config)?;
        // Each target with settings of its own is checked whole now, not at its first call.
        let mut per_target = HashMap::new();
        for target in config.targets_with_settings() {
            let in_target = |error: Error| match error {
                Error::InvalidConfig(message) => {
                    Error::InvalidConfig(format!("target {target}: {message}"))
                }
                other => other,
            };
            let Some(own) = config.for_target(target) else {
                continue;
            };
            let own = own.map_err(in_target)?;
            let own_service_config = checked(&own).map_err(in_target)?;
            per_target.insert(
                target.to_owned(),
                TargetSettings {
                    config: Arc::new(own),
                    service_config: own_service_config,
                    own: true,
                },
            );
        }
        let runtime = LazyRuntime::new(config.effective_worker_threads());
        Ok(Pool {
            inner: Arc::new(PoolInner {
                config: Arc::new(config),
                service_config,
                per_target,
                runtime,
                closed: AtomicBool::new(false),
                shared: OnceLock::new(),
                starting: Mutex::new(()),
                targets: Arc::new(RwLock::new(FxHashMap::default())),
                pushed: Arc::default(),
                connectivity: Arc::default(),
                wakes: Arc::default(),
            }),
        })
    }

    /// The settings the pool was made with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Acquires a lease on `target`, waiting up to `timeout` for a slot.
    ///
    /// Fails with [`Error::Unavailable`] at once when the target has no ready connection and
    /// the last attempt to connect failed, and with [`Error::AcquireTimeout`] when no slot frees.
    #[track_caller]
    pub fn acquire(
        &self,
        target: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<Lease, Error>> + Send + 'static {
        self.acquire_with(target, AcquireOptions::with_timeout(timeout))
    }

    /// Acquires a lease with all options.
    #[track_caller]
    pub fn acquire_with(
        &self,
        target: &str,
        options: AcquireOptions,
    ) -> impl Future<Output = Result<Lease, Error>> + Send + 'static {
        let started = self.start_acquire(target, options);
        started_or_failed(started)
    }

    /// [`Pool::acquire_with`] with the target checked now: a bad target or a closed pool is
    /// reported before anything starts (bindings use it to fail synchronously); the returned
    /// future waits for the slot.
    #[track_caller]
    pub fn start_acquire(
        &self,
        target: &str,
        options: AcquireOptions,
    ) -> Result<impl Future<Output = Result<Lease, Error>> + Send + 'static, Error> {
        let site = match options.site.clone() {
            Some(described) => AcquireSite::Described(described),
            None => AcquireSite::Code(Location::caller()),
        };
        let target_pool = self.target_pool(target)?;
        Ok(async move {
            let timeout = options
                .timeout
                .unwrap_or(target_pool.config().acquire_timeout);
            let connection = target_pool.acquire(timeout, options.wait_for_ready).await?;
            Ok(Lease::new(target_pool, connection, site))
        })
    }

    /// Acquires, calls and releases: a one-shot unary call.
    ///
    /// The acquire waits until the call's deadline, or `Config::acquire_timeout` without one.
    /// A target that cannot be reached, or no free slot in time, comes back as an UNAVAILABLE
    /// or DEADLINE_EXCEEDED response, as from any gRPC client; `Err` is for bad input and a
    /// closed pool.
    #[track_caller]
    pub fn unary(
        &self,
        target: &str,
        method: &str,
        request: impl Into<Bytes>,
        options: CallOptions,
    ) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
        let started = self
            .prepare(method, request, options)
            .and_then(|call| self.unary_prepared(target, call));
        started_or_failed(started)
    }

    /// Checks a call's method, size and metadata against this pool's settings, so that bad
    /// input is reported before anything starts (bindings use it to fail synchronously).
    /// [`Error::PoolClosed`] once the pool is closed.
    pub fn prepare(
        &self,
        method: &str,
        request: impl Into<Bytes>,
        options: CallOptions,
    ) -> Result<PreparedCall, Error> {
        // Every face prepares before it calls, so a closed pool refuses calls on leases too.
        if self.is_closed() {
            return Err(Error::PoolClosed);
        }
        PreparedCall::configured(
            &self.inner.config,
            self.inner.service_config.as_deref(),
            method,
            request.into(),
            options,
        )
    }

    /// The one-shot call for a prepared call. The target is checked now; the returned future
    /// acquires, calls and releases.
    #[track_caller]
    pub fn unary_prepared(
        &self,
        target: &str,
        mut call: PreparedCall,
    ) -> Result<impl Future<Output = Result<Response, Error>> + Send + 'static, Error> {
        let site = AcquireSite::Code(Location::caller());
        let main_pool = self.target_pool(target)?;
        if main_pool.has_own_settings() {
            call.retarget(main_pool.config(), main_pool.service_config())?;
        }
        let config = Arc::clone(main_pool.config());
        let pool = self.clone();
        Ok(async move {
            let target_pool = match pool.route_call(&main_pool, &call).await {
                Ok(routed) => routed,
                // No xDS route for the path: UNAVAILABLE is the call's status, as a failed
                // pick's.
                Err(error @ Error::Unavailable { .. }) => {
                    let response = Response::with_status(error.code(), error.to_string())
                        .after_deadline(call.deadline());
                    let counters = main_pool.counters();
                    Counters::bump(&counters.calls_started);
                    counters.call_finished(response.code);
                    return Ok(response);
                }
                Err(error) => return Err(error),
            };
            drop(pool);
            // Measured after the route is known: waiting for it may have taken part.
            let timeout = call.acquire_wait(&config);
            let started = Instant::now();
            let mut retries = Retries::new(call.retry_policy());
            let mut timeout = timeout;
            loop {
                match target_pool.acquire(timeout, call.wait_for_ready()).await {
                    Ok(connection) => {
                        let lease = Lease::new(target_pool, connection, site);
                        return Ok(lease.call(call).await);
                    }
                    // The call could not start: as a gRPC client would, report it as its
                    // status, after the retries its policy allows (A6 retries a pick that
                    // failed with the target unreachable).
                    Err(error @ (Error::Unavailable { .. } | Error::AcquireTimeout { .. })) => {
                        // Past the deadline (a timeout of 0 among them) it is the deadline's,
                        // whatever the pick said.
                        let response = Response::with_status(error.code(), error.to_string())
                            .after_deadline(call.deadline());
                        let counters = target_pool.counters();
                        let throttle = target_pool.retry_throttle();
                        if let Some(delay) = retries.after(
                            &response,
                            Pushback::None,
                            call.deadline(),
                            throttle,
                            counters,
                        ) {
                            target_pool.shared().sleep(delay).await;
                            timeout = call.acquire_wait(&config);
                            continue;
                        }
                        Counters::bump(&counters.calls_started);
                        counters.call_finished(response.code);
                        target_pool
                            .method_metrics()
                            .of(call.path.as_str())
                            .call_ended(response.code, started.elapsed());
                        return Ok(response);
                    }
                    Err(error) => return Err(error),
                }
            }
        })
    }

    /// Acquires a lease on `target` and opens a streaming call on it; the stream gives the
    /// slot back when it ends. The acquire waits until the call's deadline, or
    /// `Config::acquire_timeout` without one.
    #[track_caller]
    pub fn open_stream(
        &self,
        target: &str,
        method: &str,
        options: CallOptions,
    ) -> impl Future<Output = Result<Stream, Error>> + Send + 'static {
        let started = self
            .prepare_stream(method, options)
            .and_then(|call| self.open_stream_prepared(target, call));
        started_or_failed(started)
    }

    /// Checks a streaming call's method and metadata against this pool's settings, so that
    /// bad input is reported before anything starts.
    pub fn prepare_stream(
        &self,
        method: &str,
        options: CallOptions,
    ) -> Result<PreparedCall, Error> {
        self.prepare(method, Bytes::new(), options)
    }

    /// The one-shot stream for a prepared call: the target is checked now; the returned future
    /// acquires (waiting until the call's deadline, or `Config::acquire_timeout`) and opens.
    #[track_caller]
    pub fn open_stream_prepared(
        &self,
        target: &str,
        mut call: PreparedCall,
    ) -> Result<impl Future<Output = Result<Stream, Error>> + Send + 'static, Error> {
        let site = AcquireSite::Code(Location::caller());
        let main_pool = self.target_pool(target)?;
        if main_pool.has_own_settings() {
            call.retarget(main_pool.config(), main_pool.service_config())?;
        }
        let pool = self.clone();
        Ok(async move {
            let target_pool = pool.route_call(&main_pool, &call).await?;
            drop(pool);
            let timeout = call.acquire_wait(target_pool.config());
            let connection = target_pool.acquire(timeout, call.wait_for_ready()).await?;
            Arc::new(Lease::new(target_pool, connection, site)).open_stream_prepared(call)
        })
    }

    /// Sets the endpoints of `static:///name` targets: `host:port` (an IP literal, `[v6]:port`
    /// or a name resolved as DNS targets are) or `unix:/path` each. Every target naming it
    /// follows at once: connections to new addresses open before those to removed ones drain,
    /// so calls in flight finish and new calls keep going; with no endpoint, calls that are not
    /// wait-for-ready fail fast with UNAVAILABLE. Endpoints may be set before any call.
    pub fn set_endpoints<S: AsRef<str>>(&self, name: &str, endpoints: &[S]) -> Result<(), Error> {
        let weighted: Vec<(&str, u32)> = endpoints
            .iter()
            .map(|endpoint| (endpoint.as_ref(), 1))
            .collect();
        self.set_weighted_endpoints(name, &weighted)
    }

    /// [`Pool::set_endpoints`] with a weight (1 or more) for each endpoint: under
    /// `round_robin` an endpoint's addresses get that many turns per round (3 and 1: three
    /// calls of four to the first); other policies ignore weights.
    pub fn set_weighted_endpoints<S: AsRef<str>>(
        &self,
        name: &str,
        endpoints: &[(S, u32)],
    ) -> Result<(), Error> {
        let invalid = |reason: String| Error::InvalidTarget {
            target: format!("static:///{name}"),
            reason,
        };
        check_pushed_name(name).map_err(invalid)?;
        let parsed = endpoints
            .iter()
            .map(|(endpoint, weight)| {
                let text = endpoint.as_ref();
                if *weight == 0 {
                    return Err(format!("{text:?} has weight 0; weights are 1 or more"));
                }
                Ok(Weighted {
                    endpoint: parse_pushed_endpoint(text)?,
                    weight: *weight,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        if self.is_closed() {
            return Err(Error::PoolClosed);
        }
        self.inner.pushed.set(name, parsed);
        endpoints_changed(&self.inner.targets, name);
        Ok(())
    }

    /// The pool's metrics in the Prometheus text exposition format: gRPC's OpenTelemetry
    /// client metrics (A66) by method, target and status, and the pool's own `grpcpool_*`
    /// (connections by state, leases out, retries, hedges, GOAWAYs, ...), for a scrape
    /// endpoint or a metrics library's collector.
    pub fn metrics_text(&self) -> String {
        let mut targets: Vec<Arc<TargetPool>> =
            self.inner.targets.read().values().cloned().collect();
        targets.sort_by(|a, b| a.text().cmp(b.text()));
        let parts: Vec<TargetMetrics<'_>> = targets
            .iter()
            .map(|target| TargetMetrics {
                methods: target.method_metrics(),
                stats: target.stats(),
            })
            .collect();
        let xds = self.xds_stats();
        crate::metrics::render(&parts, xds.as_ref())
    }

    /// A snapshot of every target's counters.
    pub fn stats(&self) -> PoolStats {
        let targets = self
            .inner
            .targets
            .read()
            .values()
            .map(|pool| pool.stats())
            .collect();
        let mut stats = PoolStats::from_targets(targets);
        stats.runtime_tasks = self.inner.shared.get().map_or(0, |shared| {
            shared.runtime.metrics().num_alive_tasks() as u64
        });
        stats.xds = self.xds_stats();
        stats
    }

    /// The xDS client's state, once an `xds:///` target started it.
    fn xds_stats(&self) -> Option<crate::XdsStats> {
        self.inner
            .shared
            .get()
            .and_then(|shared| shared.xds())
            .map(|client| client.stats())
    }

    /// Leases held longer than the leak threshold now.
    pub fn leaked_leases(&self) -> Vec<LeakReport> {
        let threshold = self.inner.config.lease_leak_threshold;
        self.inner
            .targets
            .read()
            .values()
            .flat_map(|pool| pool.leases().held_past(threshold, pool.text()))
            .collect()
    }

    /// The connectivity of `target` now, in gRPC's five states. With `try_to_connect`, an idle
    /// target joins the pool and starts connecting (grpcio's `try_to_connect`); without it,
    /// asking never dials. A target the pool has not used is [`Connectivity::Idle`].
    pub fn connectivity(&self, target: &str, try_to_connect: bool) -> Result<Connectivity, Error> {
        if self.is_closed() {
            return Ok(Connectivity::Shutdown);
        }
        Target::parse(target)?;
        if let Some(pool) = self.inner.targets.read().get(target) {
            return Ok(pool.connectivity());
        }
        if try_to_connect {
            return Ok(self.target_pool(target)?.connectivity());
        }
        Ok(Connectivity::Idle)
    }

    /// Waits until `target`'s connectivity is other than `last` and returns the new state, or
    /// returns the state at `timeout` (then possibly `last`). Never dials (see
    /// [`Pool::connectivity`] for that); a closed pool answers [`Connectivity::Shutdown`].
    pub async fn connectivity_changed(
        &self,
        target: &str,
        last: Connectivity,
        timeout: Option<Duration>,
    ) -> Result<Connectivity, Error> {
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        let state = self.connectivity(target, false)?;
        if state != last || state == Connectivity::Shutdown {
            return Ok(state);
        }
        let shared = Arc::clone(self.shared()?);
        connectivity::changed_from(&self.inner.connectivity, &shared, last, deadline, || {
            self.connectivity(target, false)
        })
        .await
    }

    /// Closes the pool to new work, now and from any thread: acquires, calls and streams
    /// started from now on fail with [`Error::PoolClosed`], and acquires waiting for a slot wake
    /// with it. Work in flight goes on; [`Pool::shutdown`] waits for it and closes connections.
    pub fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.connectivity.changed();
        let Some(shared) = self.inner.shared.get() else {
            return;
        };
        shared.mark_closed();
        for pool in self.inner.targets.read().values() {
            // Waiters see the pool closed; upkeep stops.
            pool.wake_for_close();
        }
    }

    /// Whether [`Pool::close`] (or [`Pool::shutdown`]) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Closes the pool ([`Pool::close`]), waits up to `grace` for slots in use to be released,
    /// then closes every connection. Returns the number of slots still in use when it gave up
    /// (0 on a clean stop).
    pub async fn shutdown(&self, grace: Duration) -> u64 {
        self.close();
        let Some(shared) = self.inner.shared.get() else {
            return 0;
        };
        let targets: Vec<Arc<TargetPool>> = self.inner.targets.read().values().cloned().collect();
        let deadline = Instant::now()
            .checked_add(grace)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600));
        let in_flight = || targets.iter().map(|pool| pool.in_flight()).sum::<u64>();
        while in_flight() > 0 && Instant::now() < deadline {
            let pause_until = deadline.min(Instant::now() + Duration::from_millis(5));
            let _ = shared
                .until(pause_until, std::future::pending::<()>())
                .await;
        }
        let left = in_flight();
        for pool in &targets {
            pool.close_all();
        }
        left
    }

    /// The handle of the pool's runtime, starting it if needed, for bindings that spawn onto it.
    pub fn runtime_handle(&self) -> Result<Handle, Error> {
        Ok(self.runtime()?.clone())
    }

    /// The pool's runtime, borrowed: a call spawns through it without the clone (an atomic
    /// increment and decrement) that [`Pool::runtime_handle`] costs.
    fn runtime(&self) -> Result<&Handle, Error> {
        Ok(&self.shared()?.runtime)
    }

    fn shared(&self) -> Result<&Arc<Shared>, Error> {
        if let Some(shared) = self.inner.shared.get() {
            return Ok(shared);
        }
        let _starting = self.inner.starting.lock();
        if let Some(shared) = self.inner.shared.get() {
            return Ok(shared);
        }
        if self.is_closed() {
            return Err(Error::PoolClosed);
        }
        let handle = self.inner.runtime.handle()?;
        let config = Arc::clone(&self.inner.config);
        let shared = Arc::new(Shared::new(
            Arc::clone(&config),
            self.inner.service_config.clone(),
            Dialer::new(config),
            handle,
            Arc::clone(&self.inner.pushed),
            Arc::clone(&self.inner.connectivity),
        ));
        let shared = self.inner.shared.get_or_init(|| shared);
        if self.is_closed() {
            // A close that came while the runtime started saw no shared state to mark.
            shared.mark_closed();
        }
        Ok(shared)
    }

    fn target_pool(&self, text: &str) -> Result<Arc<TargetPool>, Error> {
        self.target_pool_with(text, text, || Target::parse(text))
    }

    /// The pool of `text` (a target, or a key of one of an xDS target's routes), made from
    /// `target` under the settings of `settings_of` when it is new.
    fn target_pool_with(
        &self,
        text: &str,
        settings_of: &str,
        target: impl FnOnce() -> Result<Target, Error>,
    ) -> Result<Arc<TargetPool>, Error> {
        if self.is_closed() {
            return Err(Error::PoolClosed);
        }
        let shared = self.shared()?;
        if shared.is_closed() {
            return Err(Error::PoolClosed);
        }
        if let Some(pool) = self.inner.targets.read().get(text) {
            // Touched under the map's lock: an idle target's upkeep, which checks idleness
            // again under the write lock before it leaves, sees this use.
            pool.touch();
            return Ok(Arc::clone(pool));
        }
        let target = target()?;
        if target.security == Security::Tls {
            shared.dialer.tls().map_err(Error::Tls)?;
        }
        if let Some(name) = target.xds_name() {
            self.xds_client(shared)?
                .watch(name, target.authority.as_str());
        }
        let mut targets = self.inner.targets.write();
        let pool = targets.entry(text.to_owned()).or_insert_with(|| {
            let settings = self
                .inner
                .per_target
                .get(settings_of)
                .cloned()
                .unwrap_or_else(|| TargetSettings {
                    config: Arc::clone(&shared.config),
                    service_config: shared.service_config.clone(),
                    own: false,
                });
            let pool = TargetPool::new(target, Arc::clone(shared), settings, self.leave());
            shared.runtime.spawn(Arc::clone(&pool).upkeep());
            shared.connectivity.changed();
            pool
        });
        pool.touch();
        Ok(Arc::clone(pool))
    }

    /// How an idle target takes itself out of the map. It holds the map weakly, so a target
    /// never keeps its pool's state alive, and dropping the map there drops no runtime.
    fn leave(&self) -> crate::target_pool::Leave {
        let targets = Arc::downgrade(&self.inner.targets);
        Box::new(move |target: &TargetPool| {
            let Some(targets) = targets.upgrade() else {
                return false;
            };
            let mut map = targets.write();
            let ours = map
                .get(target.text())
                .is_some_and(|entry| std::ptr::eq(Arc::as_ptr(entry), target));
            if !ours || !target.is_idle(Instant::now()) {
                return false;
            }
            map.remove(target.text());
            drop(map);
            // An xDS target's own pool gone: its listener is no longer followed (a later call
            // subscribes again).
            if let (Some(name), Some(client)) = (target.xds_name(), target.shared().xds()) {
                if target.pushed_name() == Some(endpoints_key(name).as_str()) {
                    client.unwatch(name);
                }
            }
            target.shared().connectivity.changed();
            true
        })
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.get() {
            shared.mark_closed();
        }
        for pool in self.targets.read().values() {
            pool.close_all();
        }
        self.runtime.shutdown();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("targets", &self.inner.targets.read().len())
            .finish()
    }
}

/// Tells every target following the pushed endpoints of `name` (a `static:///` name, or an
/// `xds:///` target's key) that they changed.
fn endpoints_changed(targets: &RwLock<FxHashMap<String, Arc<TargetPool>>>, name: &str) {
    let following: Vec<Arc<TargetPool>> = targets
        .read()
        .values()
        .filter(|target| target.pushed_name() == Some(name))
        .cloned()
        .collect();
    for target in following {
        target.endpoints_changed();
    }
}

/// Checks a configuration whole (ranges, TLS material, the service config) and returns its
/// parsed service config.
fn checked(config: &Config) -> Result<Option<Arc<ServiceConfig>>, Error> {
    config.validate()?;
    let tls = &config.tls;
    if tls.ca_pem.is_some() || tls.client_cert_pem.is_some() || tls.client_key_pem.is_some() {
        // Report bad TLS material now, not at the first https call.
        crate::tls::client_config(tls)?;
    }
    if let Some(name) = &tls.server_name_override {
        crate::tls::server_name(tls, name)?;
    }
    if let Some(json) = &config.xds_bootstrap {
        // A JSON object now; whether it names a control plane is checked when the first
        // xds:/// target starts the xDS client, as gRPC reads its bootstrap then.
        let object =
            serde_json::from_str::<serde_json::Value>(json).is_ok_and(|value| value.is_object());
        if !object {
            return Err(Error::InvalidConfig(
                "xds_bootstrap must be a JSON object".to_owned(),
            ));
        }
    }
    match &config.service_config {
        Some(json) => Ok(Some(Arc::new(ServiceConfig::parse(json)?))),
        None => Ok(None),
    }
}

/// The started future, or one ready with the error that kept it from starting. Not
/// `async move { started?.await }`: that keeps the `Result` and the future it awaits as two
/// fields, twice the size of the call's state.
fn started_or_failed<T, F: Future<Output = Result<T, Error>>>(
    started: Result<F, Error>,
) -> impl Future<Output = Result<T, Error>> {
    match started {
        Ok(started) => Either::Left(started),
        Err(error) => Either::Right(future::ready(Err(error))),
    }
}
