//! xDS for `xds:///name` targets (gRPC A27 and the proposals it builds on): the bootstrap,
//! the ADS client, the resources as gRPC's proxyless client uses them, and what a target
//! selects from them.
//!
//! What a target gets: the listener `name` (an API listener whose HttpConnectionManager has
//! its routes inline or in a RouteConfiguration by RDS) and in it the virtual host matching
//! the target's authority. Each call takes the first route whose path match (prefix or exact)
//! takes its method path; no route: UNAVAILABLE. A route's cluster, or its weighted
//! clusters, give endpoints: each cluster's lowest priority with a healthy endpoint,
//! localities and endpoints by their weights, as round_robin weights of the addresses (so
//! weighted clusters share one set of connections, split by weight, rather than being picked
//! call by call). The first cluster's lb_policy (ROUND_ROBIN, LEAST_REQUEST) is the policy of
//! those connections, and its default-priority circuit breaker `max_requests` caps their
//! calls in flight.
//!
//! The target's own pool serves its default route (the first that takes every path, else the
//! first); a route to other clusters gets a pool of its own, keyed `xds:///name#cluster:weight`
//! and shown under that name in stats. Their endpoints go the way of `static:///name`
//! endpoints (`Pool::set_endpoints`): new connections open before old ones drain. A lease
//! acquired on the target is on the default route's connections, whatever it calls.
//!
//! Not done (gRPC does them): header and regex route matchers (such routes are skipped),
//! fallback to a second `xds_servers` entry, xDS federation
//! (`xds://authority/name`), and load reporting (LRS).

pub(crate) mod bootstrap;
pub(crate) mod client;
pub(crate) mod resources;
pub(crate) mod selection;
