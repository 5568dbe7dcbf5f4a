//! What one `xds:///name` target gets from the resources received so far: the chain
//! listener -> route configuration -> virtual host -> route -> clusters -> endpoints followed
//! for the target's name, reduced to weighted addresses and a balancing policy, or the first
//! resource of the chain that is missing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;

use super::resources::{
    ClusterUpdate, EndpointsUpdate, Kind, ListenerUpdate, Route, RouteConfig, VirtualHost,
};
use crate::service_config::LoadBalancing;

/// The resources accepted so far, by kind and name.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    pub(crate) listeners: HashMap<String, ListenerUpdate>,
    pub(crate) routes: HashMap<String, RouteConfig>,
    pub(crate) clusters: HashMap<String, ClusterUpdate>,
    pub(crate) endpoints: HashMap<String, EndpointsUpdate>,
    /// Resources the control plane said do not exist (left out of a LDS/CDS response, or not
    /// sent within the does-not-exist timeout).
    pub(crate) absent: HashSet<(Kind, String)>,
}

/// Where a target stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// A resource of the chain has not arrived yet: calls wait for it.
    Waiting(String),
    /// A resource of the chain does not exist, or the configuration cannot route the target:
    /// calls fail with UNAVAILABLE and this reason.
    Failing(String),
    /// Every resource is here.
    Ready(Selected),
}

/// Which connections a call to one path takes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RouteChoice {
    /// The target's own (its default route, or a configuration that fails).
    Default,
    /// Not known yet: the routes have not arrived.
    Pending,
    /// Those of a route to other clusters (name, weight).
    Clusters(Vec<(String, u32)>),
    /// None: no route matches; the call fails with UNAVAILABLE.
    NoRoute(String),
}

/// What a target whose resources are all here uses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Selected {
    /// Healthy endpoints of the route's clusters with their weights (all 1 when equal).
    pub(crate) addresses: Vec<(SocketAddr, u32)>,
    /// The (first) cluster's lb_policy.
    pub(crate) balancing: LoadBalancing,
    /// The (first) cluster's circuit breaker.
    pub(crate) max_requests: Option<u32>,
    /// The clusters calls go to, for messages.
    pub(crate) clusters: Vec<String>,
}

impl Cache {
    fn lacking(&self, kind: Kind, name: &str) -> Outcome {
        if self.absent.contains(&(kind, name.to_owned())) {
            Outcome::Failing(format!("xDS {} {name:?} does not exist", kind.name()))
        } else {
            Outcome::Waiting(format!(
                "xDS {} {name:?} has not arrived from the control plane",
                kind.name()
            ))
        }
    }

    /// The route configuration of a listener, or why there is none yet.
    fn route_config<'a>(&'a self, listener: &str) -> Result<(&'a RouteConfig, String), Outcome> {
        match self.listeners.get(listener) {
            None => Err(self.lacking(Kind::Listener, listener)),
            Some(ListenerUpdate::Inline(config)) => {
                Ok((config, format!("the inline route config of {listener:?}")))
            }
            Some(ListenerUpdate::Rds(name)) => match self.routes.get(name) {
                Some(config) => Ok((config, format!("route config {name:?}"))),
                None => Err(self.lacking(Kind::RouteConfiguration, name)),
            },
        }
    }

    /// The routes of the virtual host `listener` has for `authority`, or where the target
    /// stands without them.
    fn routes<'a>(&'a self, listener: &str, authority: &str) -> Result<&'a [Route], Outcome> {
        let (config, which) = self.route_config(listener)?;
        let Some(host) = matching_host(&config.virtual_hosts, authority) else {
            return Err(Outcome::Failing(format!(
                "no virtual host of {which} matches {authority:?}"
            )));
        };
        if host.routes.is_empty() {
            return Err(Outcome::Failing(format!(
                "the virtual host for {authority:?} in {which} has no route to a cluster"
            )));
        }
        Ok(&host.routes)
    }

    /// Where `listener` (followed by a target with `authority`) leads now, for calls the
    /// target's own connections serve: its default route.
    pub(crate) fn select(&self, listener: &str, authority: &str) -> Outcome {
        match self.routes(listener, authority) {
            Ok(routes) => match default_route(routes) {
                Some(route) => self.select_clusters(&route.clusters),
                None => Outcome::Failing("no route".to_owned()),
            },
            Err(outcome) => outcome,
        }
    }

    /// Which route a call to `path` takes: the first that matches, as gRPC picks it.
    pub(crate) fn route_for(&self, listener: &str, authority: &str, path: &str) -> RouteChoice {
        let routes = match self.routes(listener, authority) {
            Ok(routes) => routes,
            Err(Outcome::Waiting(_)) => return RouteChoice::Pending,
            // The target's own pool says why it cannot be served.
            Err(_) => return RouteChoice::Default,
        };
        let Some(route) = routes
            .iter()
            .find(|route| route.path.matches(path, route.ignore_case))
        else {
            return RouteChoice::NoRoute(format!(
                "no xDS route of listener {listener:?} matches {path}"
            ));
        };
        match default_route(routes) {
            Some(default) if default.clusters == route.clusters => RouteChoice::Default,
            _ => RouteChoice::Clusters(route.clusters.clone()),
        }
    }

    /// What calls spread over `clusters` (name, weight) get.
    pub(crate) fn select_clusters(&self, clusters: &[(String, u32)]) -> Outcome {
        let mut shares: Vec<(SocketAddr, f64)> = Vec::new();
        let total_weight: f64 = clusters.iter().map(|(_, w)| f64::from(*w)).sum();
        let mut first: Option<&ClusterUpdate> = None;
        for (name, weight) in clusters {
            let Some(cluster) = self.clusters.get(name) else {
                return self.lacking(Kind::Cluster, name);
            };
            first.get_or_insert(cluster);
            let Some(assignment) = self.endpoints.get(&cluster.eds_service_name) else {
                return self.lacking(Kind::ClusterLoadAssignment, &cluster.eds_service_name);
            };
            let share = f64::from(*weight) / total_weight;
            shares.extend(
                endpoint_shares(assignment)
                    .into_iter()
                    .map(|(address, part)| (address, part * share)),
            );
        }
        let (balancing, max_requests) = first.map_or((LoadBalancing::RoundRobin, None), |c| {
            (c.balancing, c.max_requests)
        });
        Outcome::Ready(Selected {
            addresses: integer_weights(shares),
            balancing,
            max_requests,
            clusters: clusters.iter().map(|(name, _)| name.clone()).collect(),
        })
    }

    /// Every resource name `listeners` (with their targets' authorities) lead to now, by
    /// kind: what the client subscribes to.
    pub(crate) fn wanted<'a>(
        &self,
        listeners: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> BTreeMap<Kind, BTreeSet<String>> {
        let mut wanted: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
        let mut add = |kind: Kind, name: &str| {
            wanted.entry(kind).or_default().insert(name.to_owned());
        };
        for (listener, authority) in listeners {
            add(Kind::Listener, listener);
            if let Some(ListenerUpdate::Rds(name)) = self.listeners.get(listener) {
                add(Kind::RouteConfiguration, name);
            }
            let Ok((config, _)) = self.route_config(listener) else {
                continue;
            };
            let Some(host) = matching_host(&config.virtual_hosts, authority) else {
                continue;
            };
            for route in &host.routes {
                for (cluster, _) in &route.clusters {
                    add(Kind::Cluster, cluster);
                    if let Some(update) = self.clusters.get(cluster) {
                        add(Kind::ClusterLoadAssignment, &update.eds_service_name);
                    }
                }
            }
        }
        wanted
    }
}

/// The virtual host for `authority` as gRPC picks it (A27): an exact domain, else the
/// longest `*suffix`, else the longest `prefix*`, else `*`; case-insensitive.
fn matching_host<'a>(hosts: &'a [VirtualHost], authority: &str) -> Option<&'a VirtualHost> {
    let authority = authority.to_ascii_lowercase();
    // (rank, length): exact 3, suffix 2, prefix 1, any 0; longer patterns first.
    let mut best: Option<((u8, usize), &VirtualHost)> = None;
    for host in hosts {
        for domain in &host.domains {
            let domain = domain.to_ascii_lowercase();
            let rank = if domain == "*" {
                Some(0)
            } else if let Some(suffix) = domain.strip_prefix('*') {
                authority.ends_with(suffix).then_some(2)
            } else if let Some(prefix) = domain.strip_suffix('*') {
                authority.starts_with(prefix).then_some(1)
            } else {
                (domain == authority).then_some(3)
            };
            if let Some(rank) = rank {
                let key = (rank, domain.len());
                if best.as_ref().is_none_or(|(kept, _)| key > *kept) {
                    best = Some((key, host));
                }
            }
        }
    }
    best.map(|(_, host)| host)
}

/// The route the target's own connections serve: the first that takes every path, else the
/// first route. Calls whose path another route takes first go to that route's connections.
fn default_route(routes: &[Route]) -> Option<&Route> {
    routes
        .iter()
        .find(|route| route.path.takes_all())
        .or_else(|| routes.first())
}

/// Each healthy endpoint's share of the cluster's calls: the lowest priority that has a
/// healthy endpoint, each locality by its weight, each endpoint by its weight within it.
fn endpoint_shares(assignment: &EndpointsUpdate) -> Vec<(SocketAddr, f64)> {
    let Some(priority) = assignment
        .localities
        .iter()
        .filter(|locality| !locality.endpoints.is_empty())
        .map(|locality| locality.priority)
        .min()
    else {
        return Vec::new();
    };
    let chosen: Vec<_> = assignment
        .localities
        .iter()
        .filter(|locality| locality.priority == priority && !locality.endpoints.is_empty())
        .collect();
    let locality_total: f64 = chosen.iter().map(|l| f64::from(l.weight)).sum();
    let mut shares = Vec::new();
    for locality in chosen {
        let endpoint_total: f64 = locality.endpoints.iter().map(|(_, w)| f64::from(*w)).sum();
        for (address, weight) in &locality.endpoints {
            let share =
                f64::from(locality.weight) / locality_total * f64::from(*weight) / endpoint_total;
            shares.push((*address, share));
        }
    }
    shares
}

/// Shares as whole round_robin turns: per mille, reduced by their common divisor (1:3 stays
/// 1:3), an address listed twice keeping the sum of its shares.
fn integer_weights(shares: Vec<(SocketAddr, f64)>) -> Vec<(SocketAddr, u32)> {
    let mut summed: BTreeMap<SocketAddr, f64> = BTreeMap::new();
    for (address, share) in shares {
        *summed.entry(address).or_default() += share;
    }
    let weights: Vec<(SocketAddr, u32)> = summed
        .into_iter()
        // Shares are at most 1, so the product fits.
        .map(|(address, share)| (address, ((share * 1000.0).round() as u32).max(1)))
        .collect();
    let divisor = weights
        .iter()
        .fold(0, |kept, (_, weight)| gcd(kept, *weight));
    weights
        .into_iter()
        .map(|(address, weight)| (address, weight / divisor.max(1)))
        .collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::resources::{Locality, PathMatch};

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn cache() -> Cache {
        let mut cache = Cache::default();
        cache
            .listeners
            .insert("svc".into(), ListenerUpdate::Rds("r".into()));
        cache.routes.insert(
            "r".into(),
            RouteConfig {
                virtual_hosts: vec![
                    VirtualHost {
                        domains: vec!["other".into()],
                        routes: vec![],
                    },
                    VirtualHost {
                        domains: vec!["*".into()],
                        routes: vec![
                            Route {
                                path: PathMatch::Exact("/X.y/z".into()),
                                ignore_case: true,
                                clusters: vec![("b".into(), 1)],
                            },
                            Route {
                                path: PathMatch::Prefix("".into()),
                                ignore_case: false,
                                clusters: vec![("a".into(), 1), ("b".into(), 3)],
                            },
                        ],
                    },
                ],
            },
        );
        for name in ["a", "b"] {
            cache.clusters.insert(
                name.into(),
                ClusterUpdate {
                    eds_service_name: format!("{name}-eds"),
                    balancing: LoadBalancing::RoundRobin,
                    max_requests: None,
                },
            );
        }
        cache
    }

    #[test]
    fn follows_the_chain_and_names_what_is_missing() {
        let mut cache = cache();
        assert_eq!(
            cache.select("nope", "nope"),
            Outcome::Waiting("xDS listener \"nope\" has not arrived from the control plane".into())
        );
        let Outcome::Waiting(reason) = cache.select("svc", "svc") else {
            panic!("endpoints are missing");
        };
        assert!(reason.contains("a-eds"), "{reason}");
        cache
            .absent
            .insert((Kind::ClusterLoadAssignment, "a-eds".into()));
        assert!(matches!(cache.select("svc", "svc"), Outcome::Failing(_)));
        let wanted = cache.wanted([("svc", "svc")].into_iter());
        assert_eq!(
            cache.route_for("svc", "svc", "/x.Y/Z"),
            RouteChoice::Clusters(vec![("b".into(), 1)])
        );
        assert_eq!(
            cache.route_for("svc", "svc", "/x.Y/W"),
            RouteChoice::Default
        );
        assert_eq!(wanted[&Kind::Cluster].len(), 2);
        assert_eq!(wanted[&Kind::ClusterLoadAssignment].len(), 2);
    }

    #[test]
    fn weights_clusters_localities_and_endpoints() {
        let mut cache = cache();
        cache.endpoints.insert(
            "a-eds".into(),
            EndpointsUpdate {
                localities: vec![Locality {
                    priority: 0,
                    weight: 1,
                    endpoints: vec![(address(1), 1)],
                }],
            },
        );
        cache.endpoints.insert(
            "b-eds".into(),
            EndpointsUpdate {
                localities: vec![
                    Locality {
                        priority: 1,
                        weight: 1,
                        endpoints: vec![(address(9), 1)],
                    },
                    Locality {
                        priority: 0,
                        weight: 1,
                        endpoints: vec![(address(2), 1), (address(3), 2)],
                    },
                ],
            },
        );
        let Outcome::Ready(selected) = cache.select("svc", "svc") else {
            panic!("all resources are here");
        };
        // a: 1/4; b: 3/4 split 1:2 between 2 and 3.
        assert_eq!(
            selected.addresses,
            vec![(address(1), 1), (address(2), 1), (address(3), 2)]
        );
    }
}
