//! The ADS client: one aggregated discovery stream (state of the world, v3) to the bootstrap's
//! control plane, on the pool's runtime, for every `xds:///name` target of the pool.
//!
//! Each target's listener is subscribed to, and from what arrives its route configuration,
//! clusters and endpoints. Every response is answered: an ACK carries its version and nonce; a
//! response with a resource that fails validation is NACKed (the last accepted version, the
//! nonce, and why in `error_detail`) and the resource's last good copy is kept. A stream that
//! fails is opened again after the pool's backoff, and until then the targets keep the
//! configuration they have.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use http::uri::Scheme;
use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, Notify};

use super::bootstrap::{Bootstrap, ChannelCreds};
use super::resources::{decode, Kind, Resource};
use super::selection::{Cache, Outcome, RouteChoice};
use crate::backoff::Backoff;
use crate::channel::H2Channel;
use crate::config::Config;
use crate::pushed_endpoints::{PushedEndpoints, Weighted};
use crate::stats::{XdsResource, XdsStats};
use crate::target::{Endpoint, Security, Target};
use crate::transport::{Dialer, Handshaken};

/// How long a subscribed resource may take to arrive before it counts as absent (gRPC's
/// resource-does-not-exist timer, A27): calls that do not wait for ready fail fast from then.
pub(crate) const DOES_NOT_EXIST_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest response the client takes: xDS responses carry whole configurations.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Told the key (`xds:///name`) of a target whose configuration changed.
pub(crate) type Notifier = Box<dyn Fn(&str) + Send + Sync>;

/// One target the client serves.
struct Watch {
    /// The `:authority` virtual hosts are matched against.
    authority: String,
    /// Where the target's own connections (its default route) stand.
    outcome: Outcome,
    /// Routes to other clusters that calls took, by key (`xds:///name#clusters`): their
    /// clusters and where they stand.
    routes: BTreeMap<String, (Vec<(String, u32)>, Outcome)>,
    /// The route each path called so far takes; cleared on every change.
    by_path: HashMap<String, Route>,
}

/// Where calls to one path go.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Route {
    /// To the target's own connections.
    Default,
    /// To the connections of the route with this key.
    Other(String),
    /// Nowhere: no route matches (the call fails with UNAVAILABLE and this reason).
    Unrouted(String),
    /// Not known yet: the target's routes have not arrived.
    Pending,
}

/// Everything the stream learned, behind one lock held only between awaits.
#[derive(Default)]
struct State {
    /// Targets by listener name.
    watches: BTreeMap<String, Watch>,
    cache: Cache,
    /// The last accepted version of each kind.
    versions: HashMap<Kind, String>,
    /// The nonce of the last response of each kind on this stream.
    nonces: HashMap<Kind, String>,
    /// The names last asked for on this stream, by kind.
    sent: HashMap<Kind, BTreeSet<String>>,
    /// When each name still missing was first asked for on this stream.
    requested_at: HashMap<(Kind, String), Instant>,
    /// The version each resource in use arrived in.
    resource_versions: BTreeMap<(Kind, String), String>,
    /// Whether this stream carried its first request (which alone carries the node).
    node_sent: bool,
    connected: bool,
    nacks: u64,
    last_nack: Option<String>,
    last_error: Option<String>,
}

/// The pool's xDS client.
pub(crate) struct XdsClient {
    bootstrap: Bootstrap,
    config: Arc<Config>,
    dialer: Dialer,
    runtime: Handle,
    pushed: Arc<PushedEndpoints>,
    notify: Notifier,
    state: Mutex<State>,
    /// Subscriptions changed: the stream asks for them.
    wake: Notify,
    /// Some target's configuration changed (calls waiting for a route look again).
    config_changed: Notify,
    closed: AtomicBool,
    closing: Notify,
}

/// The key a target's endpoints are kept under: its target text, which no `static:///`
/// name can equal.
pub(crate) fn endpoints_key(name: &str) -> String {
    format!("xds:///{name}")
}

impl XdsClient {
    /// Makes the client and starts its stream on `runtime`.
    pub(crate) fn start(
        bootstrap: Bootstrap,
        config: Arc<Config>,
        runtime: Handle,
        pushed: Arc<PushedEndpoints>,
        notify: Notifier,
    ) -> Arc<XdsClient> {
        let client = Arc::new(XdsClient {
            bootstrap,
            dialer: Dialer::new(Arc::clone(&config)),
            config,
            runtime: runtime.clone(),
            pushed,
            notify,
            state: Mutex::default(),
            wake: Notify::new(),
            config_changed: Notify::new(),
            closed: AtomicBool::new(false),
            closing: Notify::new(),
        });
        runtime.spawn(Arc::clone(&client).run());
        client
    }

    /// Follows the listener `name` for a target whose calls carry `authority`.
    pub(crate) fn watch(&self, name: &str, authority: &str) {
        let mut state = self.state.lock();
        if state.watches.contains_key(name) {
            return;
        }
        let outcome = state.cache.select(name, authority);
        self.publish(&endpoints_key(name), &outcome);
        state.watches.insert(
            name.to_owned(),
            Watch {
                authority: authority.to_owned(),
                outcome,
                routes: BTreeMap::new(),
                by_path: HashMap::new(),
            },
        );
        drop(state);
        self.wake.notify_one();
    }

    /// Stops following the listener `name` (its target left the pool); the stream asks for
    /// what the remaining targets need.
    pub(crate) fn unwatch(&self, name: &str) {
        if self.state.lock().watches.remove(name).is_some() {
            self.wake.notify_one();
        }
    }

    /// Where the target following `name` stands now: its own connections, or (`key` is a
    /// route's) those of one of its routes.
    pub(crate) fn outcome(&self, name: &str, key: &str) -> Outcome {
        let state = self.state.lock();
        let Some(watch) = state.watches.get(name) else {
            return Outcome::Waiting(format!("xDS listener {name:?} is not subscribed to"));
        };
        if key == endpoints_key(name) {
            return watch.outcome.clone();
        }
        watch.routes.get(key).map_or_else(
            || Outcome::Waiting(format!("no xDS route {key:?}")),
            |(_, outcome)| outcome.clone(),
        )
    }

    /// Where calls to `path` on the target following `name` go. A route to other clusters
    /// than the default route's gets a key of its own, whose endpoints are published like
    /// the target's.
    pub(crate) fn route(&self, name: &str, path: &str) -> Route {
        let mut state = self.state.lock();
        let State { watches, cache, .. } = &mut *state;
        let Some(watch) = watches.get_mut(name) else {
            return Route::Default;
        };
        if let Some(route) = watch.by_path.get(path) {
            return route.clone();
        }
        let route = match cache.route_for(name, &watch.authority, path) {
            RouteChoice::Pending => return Route::Pending,
            RouteChoice::Default => Route::Default,
            RouteChoice::NoRoute(reason) => Route::Unrouted(reason),
            RouteChoice::Clusters(clusters) => {
                let key = route_key(name, &clusters);
                if !watch.routes.contains_key(&key) {
                    let outcome = cache.select_clusters(&clusters);
                    self.publish(&key, &outcome);
                    watch.routes.insert(key.clone(), (clusters, outcome));
                }
                Route::Other(key)
            }
        };
        // Bounded by the methods the program calls.
        watch.by_path.insert(path.to_owned(), route.clone());
        route
    }

    /// Resolves when some target's configuration changes next (enable it before looking).
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.config_changed.notified()
    }

    /// Stops the stream for good (the pool closes).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.closing.notify_waiters();
        self.closing.notify_one();
    }

    /// The client's state for stats.
    pub(crate) fn stats(&self) -> XdsStats {
        let state = self.state.lock();
        XdsStats {
            server: self.bootstrap.server.uri.clone(),
            connected: state.connected,
            resources: state
                .resource_versions
                .iter()
                .map(|((kind, name), version)| XdsResource {
                    kind: kind.name().to_owned(),
                    name: name.clone(),
                    version: version.clone(),
                })
                .collect(),
            nacks: state.nacks,
            last_nack: state.last_nack.clone(),
            last_error: state.last_error.clone(),
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    async fn run(self: Arc<Self>) {
        let mut backoff = Backoff::new(self.config.backoff.clone());
        while !self.is_closed() {
            let ended = self.session(&mut backoff).await;
            {
                let mut state = self.state.lock();
                state.connected = false;
                // A new stream starts afresh: the control plane sends every resource again
                // (the cache keeps serving meanwhile).
                state.nonces.clear();
                state.versions.clear();
                state.sent.clear();
                state.requested_at.clear();
                state.node_sent = false;
                if let Err(message) = &ended {
                    state.last_error = Some(message.clone());
                }
            }
            if self.is_closed() {
                return;
            }
            let delay = backoff.next_delay();
            if let Err(message) = ended {
                tracing::warn!(
                    server = %self.bootstrap.server.uri,
                    error = %message,
                    retry_in_ms = delay.as_millis() as u64,
                    "xDS stream ended; the targets keep their configuration"
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.closing.notified() => return,
            }
        }
    }

    /// One ADS stream, from dial to its end.
    async fn session(&self, backoff: &mut Backoff) -> Result<(), String> {
        let channel = self.connect().await?;
        let (sender, mut receiver) = mpsc::unbounded_channel::<DiscoveryRequest>();
        let requests = futures_util::stream::poll_fn(move |context| receiver.poll_recv(context));
        let mut client = AggregatedDiscoveryServiceClient::new(channel)
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        // Queued before the stream opens, so they go out with it.
        self.send_changed(&sender);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let opened = client.stream_aggregated_resources(requests);
        tokio::pin!(opened);
        // The server may send its headers only with its first response.
        let mut responses = loop {
            tokio::select! {
                opened = &mut opened => match opened {
                    Ok(response) => break response.into_inner(),
                    Err(status) => return Err(format!(
                        "opening the ADS stream to {}: {status}",
                        self.bootstrap.server.uri
                    )),
                },
                _ = self.wake.notified() => self.send_changed(&sender),
                _ = tick.tick() => self.expire(),
                _ = self.closing.notified() => return Ok(()),
            }
        };
        {
            let mut state = self.state.lock();
            state.connected = true;
            state.last_error = None;
        }
        tracing::debug!(server = %self.bootstrap.server.uri, "xDS stream open");
        loop {
            tokio::select! {
                message = responses.message() => match message {
                    Ok(Some(response)) => {
                        backoff.reset();
                        self.handle(response, &sender);
                    }
                    Ok(None) => return Err(format!(
                        "the control plane {} ended the ADS stream",
                        self.bootstrap.server.uri
                    )),
                    Err(status) => return Err(format!(
                        "the ADS stream to {} failed: {status}",
                        self.bootstrap.server.uri
                    )),
                },
                _ = self.wake.notified() => self.send_changed(&sender),
                _ = tick.tick() => self.expire(),
                _ = self.closing.notified() => return Ok(()),
            }
        }
    }

    /// Dials the control plane with the pool's dialer and drives the connection.
    async fn connect(&self) -> Result<H2Channel, String> {
        let target = control_plane_target(&self.bootstrap)?;
        let addresses = target.resolve(&self.config.resolver).await?;
        let mut failures = Vec::new();
        for address in addresses {
            match self.dialer.dial(&target, &address).await {
                // Its few streams gain nothing from batched writes: no rounds, every write
                // goes straight through.
                Ok(Handshaken {
                    send,
                    mut connection,
                    ..
                }) => {
                    let pings = connection.ping_pong();
                    let server = self.bootstrap.server.uri.clone();
                    let driver = self.runtime.spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%server, %error, "xDS connection ended");
                        }
                    });
                    if let (Some(pings), Some(every)) = (pings, self.config.keepalive_time) {
                        self.runtime.spawn(keepalive(
                            pings,
                            every,
                            self.config.keepalive_timeout,
                            driver.abort_handle(),
                            self.bootstrap.server.uri.clone(),
                        ));
                    }
                    return Ok(H2Channel {
                        send,
                        scheme: target.scheme.clone(),
                        authority: target.authority.clone(),
                        runtime: self.runtime.clone(),
                    });
                }
                Err(message) => failures.push(message),
            }
        }
        Err(format!(
            "connecting to the control plane {}: {}",
            self.bootstrap.server.uri,
            failures.join("; ")
        ))
    }

    /// Asks for each kind whose wanted names differ from those last asked for.
    fn send_changed(&self, sender: &mpsc::UnboundedSender<DiscoveryRequest>) {
        let mut state = self.state.lock();
        let wanted = wanted(&state);
        for kind in Kind::ALL {
            let names = wanted.get(&kind).cloned().unwrap_or_default();
            let sent = state.sent.get(&kind);
            let unchanged = sent.map_or(names.is_empty(), |sent| *sent == names);
            // An empty list asks LDS and CDS for everything (a wildcard): never sent.
            if unchanged || (names.is_empty() && kind.absence_deletes()) {
                continue;
            }
            let request = request(&mut state, &self.bootstrap, kind, names, None);
            let _ = sender.send(request);
        }
    }

    /// Takes one response: validates its resources, keeps the good ones, answers with an
    /// ACK or NACK, asks for what the new resources lead to, and tells the targets.
    fn handle(
        &self,
        response: DiscoveryResponse,
        sender: &mpsc::UnboundedSender<DiscoveryRequest>,
    ) {
        let Some(kind) = Kind::from_type_url(&response.type_url) else {
            tracing::debug!(type_url = %response.type_url, "xDS response of a type not asked for");
            return;
        };
        let changed = {
            let mut state = self.state.lock();
            let subscribed = state.sent.get(&kind).cloned().unwrap_or_default();
            let mut seen = BTreeSet::new();
            let mut errors = Vec::new();
            for any in &response.resources {
                match decode(kind, any) {
                    Ok((name, resource)) => {
                        seen.insert(name.clone());
                        if subscribed.contains(&name) {
                            accept(&mut state, kind, &name, resource, &response.version_info);
                        }
                    }
                    Err((name, reason)) => {
                        let which = name.as_deref().unwrap_or("(unnamed)").to_owned();
                        if let Some(name) = name {
                            seen.insert(name);
                        }
                        errors.push(format!("{} {which:?}: {reason}", kind.name()));
                    }
                }
            }
            if kind.absence_deletes() && !self.bootstrap.server.ignores_resource_deletion() {
                for name in subscribed.difference(&seen) {
                    forget(&mut state, kind, name);
                }
            }
            state.nonces.insert(kind, response.nonce.clone());
            let error = if errors.is_empty() {
                state.versions.insert(kind, response.version_info.clone());
                None
            } else {
                let message = errors.join("; ");
                tracing::warn!(
                    version = %response.version_info,
                    error = %message,
                    "xDS response NACKed; the last good resources stay in use"
                );
                state.nacks += 1;
                state.last_nack = Some(message.clone());
                Some(message)
            };
            let mut names = wanted(&state).remove(&kind).unwrap_or_default();
            if names.is_empty() && kind.absence_deletes() {
                // No longer wanted, but an empty LDS or CDS list would ask for everything.
                names = subscribed;
            }
            let answer = request(&mut state, &self.bootstrap, kind, names, error);
            let _ = sender.send(answer);
            self.republish(&mut state)
        };
        self.send_changed(sender);
        for key in changed {
            (self.notify)(&key);
        }
    }

    /// Marks names asked for more than [`DOES_NOT_EXIST_TIMEOUT`] ago and still missing as
    /// absent.
    fn expire(&self) {
        let changed = {
            let mut state = self.state.lock();
            let now = Instant::now();
            let expired: Vec<(Kind, String)> = state
                .requested_at
                .iter()
                .filter(|(_, asked)| {
                    now.saturating_duration_since(**asked) >= DOES_NOT_EXIST_TIMEOUT
                })
                .map(|(key, _)| key.clone())
                .collect();
            if expired.is_empty() {
                return;
            }
            for key in expired {
                state.requested_at.remove(&key);
                tracing::warn!(kind = key.0.name(), name = %key.1, "xDS resource did not arrive in time");
                state.cache.absent.insert(key);
            }
            self.republish(&mut state)
        };
        for key in changed {
            (self.notify)(&key);
        }
    }

    /// Works out each target's outcome again; gives back the keys of those that changed.
    /// A target that is served keeps its configuration while a new one is still arriving
    /// (make-before-break), as gRPC's resolver does.
    fn republish(&self, state: &mut State) -> Vec<String> {
        let State { watches, cache, .. } = state;
        let mut changed = Vec::new();
        for (name, watch) in watches.iter_mut() {
            watch.by_path.clear();
            let outcome = cache.select(name, &watch.authority);
            let key = endpoints_key(name);
            if self.replace(&key, &mut watch.outcome, outcome) {
                changed.push(key);
            }
            for (key, (clusters, kept)) in watch.routes.iter_mut() {
                let outcome = cache.select_clusters(clusters);
                if self.replace(key, kept, outcome) {
                    changed.push(key.clone());
                }
            }
        }
        if !changed.is_empty() {
            self.config_changed.notify_waiters();
        }
        changed
    }

    /// Takes `outcome` for `key` unless it equals the kept one, or would replace a served
    /// configuration with one still arriving; whether it was taken.
    fn replace(&self, key: &str, kept: &mut Outcome, outcome: Outcome) -> bool {
        if outcome == *kept
            || (matches!(outcome, Outcome::Waiting(_)) && matches!(kept, Outcome::Ready(_)))
        {
            return false;
        }
        self.publish(key, &outcome);
        tracing::debug!(target = %key, ?outcome, "xDS configuration changed");
        *kept = outcome;
        true
    }
}

impl XdsClient {
    /// Gives a target's endpoints to the pushed-endpoints store its target pool reads.
    fn publish(&self, key: &str, outcome: &Outcome) {
        match outcome {
            Outcome::Ready(selected) => {
                let endpoints = selected
                    .addresses
                    .iter()
                    .map(|(address, weight)| Weighted {
                        endpoint: Endpoint::Tcp {
                            host: address.ip().to_string(),
                            port: address.port(),
                        },
                        weight: *weight,
                    })
                    .collect();
                self.pushed.set(key, endpoints);
            }
            Outcome::Failing(_) => self.pushed.set(key, Vec::new()),
            Outcome::Waiting(_) => {}
        }
    }
}

/// Pings the control plane every `every` (the pool's keepalive_time; the ADS stream is
/// always open, so pings are never idle ones) and ends the connection when a ping goes
/// unanswered for `timeout`: a control plane behind a dead network is noticed, and the
/// stream opened again, instead of waiting on it for good.
async fn keepalive(
    mut pings: h2::PingPong,
    every: Duration,
    timeout: Duration,
    driver: tokio::task::AbortHandle,
    server: String,
) {
    loop {
        tokio::time::sleep(every).await;
        if driver.is_finished() {
            return;
        }
        match tokio::time::timeout(timeout, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::warn!(%server, "the xDS control plane did not answer a keepalive ping");
                driver.abort();
                return;
            }
        }
    }
}

/// The key of a route to `clusters` (name, weight) of the target following `name`.
pub(crate) fn route_key(name: &str, clusters: &[(String, u32)]) -> String {
    let clusters: Vec<String> = clusters
        .iter()
        .map(|(cluster, weight)| format!("{cluster}:{weight}"))
        .collect();
    format!("xds:///{name}#{}", clusters.join(","))
}

/// Every name the targets lead to now, by kind.
fn wanted(state: &State) -> BTreeMap<Kind, BTreeSet<String>> {
    state.cache.wanted(
        state
            .watches
            .iter()
            .map(|(name, watch)| (name.as_str(), watch.authority.as_str())),
    )
}

/// A request for `names` of `kind`, answering the last response of that kind (an ACK, or a
/// NACK when `error` is set); records what was asked for.
fn request(
    state: &mut State,
    bootstrap: &Bootstrap,
    kind: Kind,
    names: BTreeSet<String>,
    error: Option<String>,
) -> DiscoveryRequest {
    let now = Instant::now();
    for name in &names {
        let held = state.resource_versions.contains_key(&(kind, name.clone()));
        if !held && !state.cache.absent.contains(&(kind, name.clone())) {
            state
                .requested_at
                .entry((kind, name.clone()))
                .or_insert(now);
        }
    }
    let node = (!state.node_sent).then(|| bootstrap.node.to_proto());
    state.node_sent = true;
    let request = DiscoveryRequest {
        version_info: state.versions.get(&kind).cloned().unwrap_or_default(),
        node,
        resource_names: names.iter().cloned().collect(),
        type_url: kind.type_url().to_owned(),
        response_nonce: state.nonces.get(&kind).cloned().unwrap_or_default(),
        error_detail: error.map(|message| RpcStatus {
            // INVALID_ARGUMENT, as gRPC NACKs.
            code: 3,
            message,
            details: Vec::new(),
        }),
        ..DiscoveryRequest::default()
    };
    state.sent.insert(kind, names);
    request
}

/// Keeps a validated resource.
fn accept(state: &mut State, kind: Kind, name: &str, resource: Resource, version: &str) {
    let key = (kind, name.to_owned());
    state.requested_at.remove(&key);
    state.cache.absent.remove(&key);
    state.resource_versions.insert(key, version.to_owned());
    let cache = &mut state.cache;
    match resource {
        Resource::Listener(update) => {
            cache.listeners.insert(name.to_owned(), update);
        }
        Resource::RouteConfiguration(update) => {
            cache.routes.insert(name.to_owned(), update);
        }
        Resource::Cluster(update) => {
            cache.clusters.insert(name.to_owned(), update);
        }
        Resource::ClusterLoadAssignment(update) => {
            cache.endpoints.insert(name.to_owned(), update);
        }
    }
}

/// A LDS or CDS resource the control plane no longer sends: gone. Only one it sent before:
/// a response may answer an earlier request that did not name it yet (the does-not-exist
/// timer covers those that never come), as gRPC does.
fn forget(state: &mut State, kind: Kind, name: &str) {
    let key = (kind, name.to_owned());
    if state.resource_versions.remove(&key).is_none() {
        return;
    }
    state.requested_at.remove(&key);
    let cache = &mut state.cache;
    match kind {
        Kind::Listener => {
            cache.listeners.remove(name);
        }
        Kind::Cluster => {
            cache.clusters.remove(name);
        }
        Kind::RouteConfiguration | Kind::ClusterLoadAssignment => return,
    }
    cache.absent.insert(key);
}

/// The control plane as a target the pool's dialer takes: `server_uri` is `host:port`,
/// `dns:///host:port` or `unix:/path`; TLS as `channel_creds` says.
fn control_plane_target(bootstrap: &Bootstrap) -> Result<Target, String> {
    let uri = &bootstrap.server.uri;
    let tls = bootstrap.server.creds == ChannelCreds::Tls;
    let parsed = if uri.starts_with("dns:") || uri.starts_with("unix:") {
        Target::parse(uri)
    } else if tls {
        Target::parse(&format!("https://{uri}"))
    } else {
        Target::parse(&format!("http://{uri}"))
    };
    let mut target = parsed.map_err(|error| format!("server_uri {uri:?}: {error}"))?;
    if tls {
        target.security = Security::Tls;
        target.scheme = Scheme::HTTPS;
    }
    Ok(target)
}
