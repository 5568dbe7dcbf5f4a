//! xDS for `xds:///name` targets (gRPC A27 and the proposals it builds on): the bootstrap,
//! the ADS client, the resources as gRPC's proxyless client uses them, and what a target
//! selects from them.
//!
//! What a target gets: the listener `name` (an API listener whose HttpConnectionManager has
//! its routes inline or in a RouteConfiguration by RDS), the virtual host matching the
//! target's authority, and in it the first route that takes every path (else the first
//! route). That route's cluster, or its weighted clusters, give the endpoints: each cluster's
//! lowest priority with a healthy endpoint, localities and endpoints by their weights, as
//! round_robin weights of the target's addresses. The first cluster's lb_policy
//! (ROUND_ROBIN, LEAST_REQUEST) is the target's balancing policy, and its default-priority
//! circuit breaker `max_requests` caps the target's calls in flight. Calls are not routed
//! path by path: all of them take that route.
//!
//! The endpoints go the way of `static:///name` endpoints (`Pool::set_endpoints`): new
//! connections open before old ones drain.

pub(crate) mod bootstrap;
pub(crate) mod client;
pub(crate) mod resources;
pub(crate) mod selection;
