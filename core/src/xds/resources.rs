//! The four xDS resource kinds as gRPC's proxyless client uses them (gRPC A27, A28): each
//! decoded from its `Any`, validated, and reduced to what the pool acts on. A resource that
//! fails validation is an error the client NACKs with, keeping the last good one.

use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, LbConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, RoutingPriority};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::service::discovery::v3::Resource as WrappedResource;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use crate::service_config::LoadBalancing;

/// The four resource kinds, in the order one target's resources depend on each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Listener,
    RouteConfiguration,
    Cluster,
    ClusterLoadAssignment,
}

impl Kind {
    /// Every kind, LDS first.
    pub(crate) const ALL: [Kind; 4] = [
        Kind::Listener,
        Kind::RouteConfiguration,
        Kind::Cluster,
        Kind::ClusterLoadAssignment,
    ];

    /// The v3 type URL requests and responses carry.
    pub(crate) fn type_url(self) -> &'static str {
        match self {
            Kind::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            Kind::RouteConfiguration => {
                "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
            }
            Kind::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            Kind::ClusterLoadAssignment => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
        }
    }

    /// The kind a type URL names, if it is one of the four.
    pub(crate) fn from_type_url(url: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.type_url() == url)
    }

    /// The short name used in messages and stats (`listener`, `route_config`, ...).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Listener => "listener",
            Kind::RouteConfiguration => "route_config",
            Kind::Cluster => "cluster",
            Kind::ClusterLoadAssignment => "endpoints",
        }
    }

    /// Whether a state-of-the-world response leaving a resource out means it is gone
    /// (LDS and CDS); RDS and EDS responses carry only what changed.
    pub(crate) fn absence_deletes(self) -> bool {
        matches!(self, Kind::Listener | Kind::Cluster)
    }
}

const RESOURCE_WRAPPER: &str = "type.googleapis.com/envoy.service.discovery.v3.Resource";

const HTTP_CONNECTION_MANAGER: &str = "type.googleapis.com/envoy.extensions.filters.network.\
                                       http_connection_manager.v3.HttpConnectionManager";

/// A validated resource of any kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resource {
    Listener(ListenerUpdate),
    RouteConfiguration(RouteConfig),
    Cluster(ClusterUpdate),
    ClusterLoadAssignment(EndpointsUpdate),
}

/// Where a listener's routes are.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ListenerUpdate {
    /// In a RouteConfiguration of this name (RDS).
    Rds(String),
    /// In the listener itself.
    Inline(RouteConfig),
}

/// A RouteConfiguration's virtual hosts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RouteConfig {
    pub(crate) virtual_hosts: Vec<VirtualHost>,
}

/// One virtual host: the domains it serves and its routes, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VirtualHost {
    pub(crate) domains: Vec<String>,
    pub(crate) routes: Vec<Route>,
}

/// How a route matches a call's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathMatch {
    Prefix(String),
    Exact(String),
}

impl PathMatch {
    /// Whether `path` (`/package.Service/Method`) matches, in the same case or any.
    pub(crate) fn matches(&self, path: &str, ignore_case: bool) -> bool {
        match (self, ignore_case) {
            (PathMatch::Prefix(prefix), false) => path.starts_with(prefix.as_str()),
            (PathMatch::Prefix(prefix), true) => path
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
            (PathMatch::Exact(exact), false) => path == exact,
            (PathMatch::Exact(exact), true) => path.eq_ignore_ascii_case(exact),
        }
    }

    /// Whether the match takes every path (prefix "" or "/").
    pub(crate) fn takes_all(&self) -> bool {
        matches!(self, PathMatch::Prefix(prefix) if prefix.is_empty() || prefix == "/")
    }
}

/// One route: a path match and the clusters it sends calls to, with their weights.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Route {
    pub(crate) path: PathMatch,
    /// `case_sensitive: false`: the path matches in any case.
    pub(crate) ignore_case: bool,
    /// One cluster with weight 1, or the weighted clusters.
    pub(crate) clusters: Vec<(String, u32)>,
}

/// A cluster as the pool uses it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClusterUpdate {
    /// The ClusterLoadAssignment to ask for (`eds_cluster_config.service_name`, else the
    /// cluster's name).
    pub(crate) eds_service_name: String,
    pub(crate) balancing: LoadBalancing,
    /// The circuit breaker's `max_requests` for the default priority.
    pub(crate) max_requests: Option<u32>,
}

/// One locality's endpoints.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Locality {
    pub(crate) priority: u32,
    pub(crate) weight: u32,
    /// Healthy (or UNKNOWN) endpoints with their weights; the others are left out.
    pub(crate) endpoints: Vec<(SocketAddr, u32)>,
}

/// A ClusterLoadAssignment's localities.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EndpointsUpdate {
    pub(crate) localities: Vec<Locality>,
}

/// Decodes and validates one resource of `kind`: its name and content, or the name (when it
/// could be read) and why it is refused.
pub(crate) fn decode(
    kind: Kind,
    any: &Any,
) -> Result<(String, Resource), (Option<String>, String)> {
    // Advertised with the client feature xds.config.resource-in-sotw: a resource may come
    // wrapped in a discovery `Resource`.
    let unwrapped;
    let any = if any.type_url == RESOURCE_WRAPPER {
        unwrapped = WrappedResource::decode(any.value.as_slice())
            .map_err(|error| (None, format!("undecodable Resource wrapper: {error}")))?
            .resource
            .ok_or((None, "a Resource wrapper holds no resource".to_owned()))?;
        &unwrapped
    } else {
        any
    };
    if any.type_url != kind.type_url() {
        return Err((
            None,
            format!("a {} response holds a {}", kind.name(), any.type_url),
        ));
    }
    let bytes = any.value.as_slice();
    let undecodable = |error: prost::DecodeError| (None, format!("undecodable: {error}"));
    match kind {
        Kind::Listener => {
            let listener = Listener::decode(bytes).map_err(undecodable)?;
            let name = listener.name.clone();
            listener_update(&listener)
                .map(|update| (name.clone(), Resource::Listener(update)))
                .map_err(|reason| (Some(name), reason))
        }
        Kind::RouteConfiguration => {
            let config = RouteConfiguration::decode(bytes).map_err(undecodable)?;
            let name = config.name.clone();
            route_config(&config)
                .map(|update| (name.clone(), Resource::RouteConfiguration(update)))
                .map_err(|reason| (Some(name), reason))
        }
        Kind::Cluster => {
            let cluster = Cluster::decode(bytes).map_err(undecodable)?;
            let name = cluster.name.clone();
            cluster_update(&cluster)
                .map(|update| (name.clone(), Resource::Cluster(update)))
                .map_err(|reason| (Some(name), reason))
        }
        Kind::ClusterLoadAssignment => {
            let assignment = ClusterLoadAssignment::decode(bytes).map_err(undecodable)?;
            let name = assignment.cluster_name.clone();
            endpoints_update(&assignment)
                .map(|update| (name.clone(), Resource::ClusterLoadAssignment(update)))
                .map_err(|reason| (Some(name), reason))
        }
    }
}

fn listener_update(listener: &Listener) -> Result<ListenerUpdate, String> {
    let api = listener
        .api_listener
        .as_ref()
        .and_then(|api| api.api_listener.as_ref())
        .ok_or("no api_listener (a gRPC client uses API listeners only)")?;
    if api.type_url != HTTP_CONNECTION_MANAGER {
        return Err(format!(
            "api_listener holds {}, not an HttpConnectionManager",
            api.type_url
        ));
    }
    let manager = HttpConnectionManager::decode(api.value.as_slice())
        .map_err(|error| format!("undecodable HttpConnectionManager: {error}"))?;
    match manager.route_specifier {
        Some(RouteSpecifier::Rds(rds)) => {
            if rds.route_config_name.is_empty() {
                return Err("rds.route_config_name is empty".to_owned());
            }
            Ok(ListenerUpdate::Rds(rds.route_config_name))
        }
        Some(RouteSpecifier::RouteConfig(config)) => {
            Ok(ListenerUpdate::Inline(route_config(&config)?))
        }
        Some(RouteSpecifier::ScopedRoutes(_)) => {
            Err("scoped_routes are not supported (rds or route_config)".to_owned())
        }
        None => Err("the HttpConnectionManager has no routes (rds or route_config)".to_owned()),
    }
}

fn route_config(config: &RouteConfiguration) -> Result<RouteConfig, String> {
    let mut virtual_hosts = Vec::new();
    for host in &config.virtual_hosts {
        if host.domains.is_empty() {
            return Err(format!("virtual host {:?} has no domains", host.name));
        }
        let mut routes = Vec::new();
        for route in &host.routes {
            let Some(matcher) = &route.r#match else {
                return Err(format!("a route of {:?} has no match", host.name));
            };
            // gRPC ignores routes it cannot match (regex, headers it does not see) rather than
            // refusing the whole configuration; the pool matches paths only, so a route with
            // header matchers is skipped too.
            if !matcher.headers.is_empty() || !matcher.query_parameters.is_empty() {
                continue;
            }
            let path = match &matcher.path_specifier {
                Some(PathSpecifier::Prefix(prefix)) => PathMatch::Prefix(prefix.clone()),
                Some(PathSpecifier::Path(path)) => PathMatch::Exact(path.clone()),
                _ => continue,
            };
            let action = match &route.action {
                Some(Action::Route(action)) => action,
                // Non-forwarding actions (redirects, direct responses) do not route calls.
                _ => continue,
            };
            let clusters = match &action.cluster_specifier {
                Some(ClusterSpecifier::Cluster(name)) if !name.is_empty() => {
                    vec![(name.clone(), 1)]
                }
                Some(ClusterSpecifier::WeightedClusters(weighted)) => {
                    let clusters: Vec<(String, u32)> = weighted
                        .clusters
                        .iter()
                        .filter_map(|cluster| {
                            let weight = cluster.weight.as_ref().map_or(0, |w| w.value);
                            (weight > 0).then(|| (cluster.name.clone(), weight))
                        })
                        .collect();
                    let total: u64 = clusters.iter().map(|(_, weight)| u64::from(*weight)).sum();
                    if clusters.is_empty() || total > u64::from(u32::MAX) {
                        return Err(format!(
                            "weighted clusters of {:?} total {total} (1 to 2^32-1)",
                            host.name
                        ));
                    }
                    clusters
                }
                _ => {
                    return Err(format!(
                        "a route of {:?} names no cluster (cluster or weighted_clusters)",
                        host.name
                    ))
                }
            };
            // case_sensitive defaults to true.
            let ignore_case = matcher
                .case_sensitive
                .as_ref()
                .is_some_and(|sensitive| !sensitive.value);
            routes.push(Route {
                path,
                ignore_case,
                clusters,
            });
        }
        virtual_hosts.push(VirtualHost {
            domains: host.domains.clone(),
            routes,
        });
    }
    Ok(RouteConfig { virtual_hosts })
}

fn cluster_update(cluster: &Cluster) -> Result<ClusterUpdate, String> {
    match cluster.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(kind)) if kind == DiscoveryType::Eds as i32 => {}
        _ => return Err("only EDS clusters are supported".to_owned()),
    }
    let eds_service_name = cluster
        .eds_cluster_config
        .as_ref()
        .map(|config| config.service_name.clone())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| cluster.name.clone());
    let balancing = match LbPolicy::try_from(cluster.lb_policy) {
        Ok(LbPolicy::RoundRobin) => LoadBalancing::RoundRobin,
        Ok(LbPolicy::LeastRequest) => {
            let choice_count = match &cluster.lb_config {
                Some(LbConfig::LeastRequestLbConfig(config)) => {
                    config.choice_count.as_ref().map_or(2, |count| count.value)
                }
                _ => 2,
            };
            if choice_count < 2 {
                return Err(format!(
                    "least_request choice_count {choice_count} is below 2"
                ));
            }
            // A48 caps the choices at 10.
            LoadBalancing::LeastRequest {
                choice_count: choice_count.min(10),
            }
        }
        Ok(other) => {
            return Err(format!(
                "lb_policy {} is not supported (ROUND_ROBIN or LEAST_REQUEST)",
                other.as_str_name()
            ))
        }
        Err(_) => return Err(format!("unknown lb_policy {}", cluster.lb_policy)),
    };
    let max_requests = cluster.circuit_breakers.as_ref().and_then(|breakers| {
        breakers
            .thresholds
            .iter()
            .find(|threshold| threshold.priority == RoutingPriority::Default as i32)
            .and_then(|threshold| threshold.max_requests.as_ref())
            .map(|max| max.value)
    });
    Ok(ClusterUpdate {
        eds_service_name,
        balancing,
        max_requests,
    })
}

fn endpoints_update(assignment: &ClusterLoadAssignment) -> Result<EndpointsUpdate, String> {
    let mut localities = Vec::new();
    for locality in &assignment.endpoints {
        let weight = locality
            .load_balancing_weight
            .as_ref()
            .map_or(1, |w| w.value);
        // gRPC drops localities with weight 0 (they take no calls).
        if weight == 0 {
            continue;
        }
        let mut endpoints = Vec::new();
        for endpoint in &locality.lb_endpoints {
            let address = match &endpoint.host_identifier {
                Some(HostIdentifier::Endpoint(endpoint)) => endpoint
                    .address
                    .as_ref()
                    .and_then(|address| address.address.as_ref()),
                _ => None,
            };
            let Some(AddressKind::SocketAddress(socket)) = address else {
                return Err("an endpoint has no socket address".to_owned());
            };
            let ip: IpAddr = socket.address.parse().map_err(|_| {
                format!("endpoint address {:?} is not an IP address", socket.address)
            })?;
            let port = match socket.port_specifier {
                Some(PortSpecifier::PortValue(port)) => port,
                _ => 0,
            };
            let port = u16::try_from(port)
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| format!("endpoint {ip} has port {port} (1 to 65535)"))?;
            let lb_weight = endpoint
                .load_balancing_weight
                .as_ref()
                .map_or(1, |w| w.value);
            if lb_weight == 0 {
                return Err(format!("endpoint {ip}:{port} has load_balancing_weight 0"));
            }
            // gRPC A27: only HEALTHY and UNKNOWN endpoints take calls.
            let healthy = matches!(
                HealthStatus::try_from(endpoint.health_status),
                Ok(HealthStatus::Healthy | HealthStatus::Unknown)
            );
            if healthy {
                endpoints.push((SocketAddr::new(ip, port), lb_weight));
            }
        }
        localities.push(Locality {
            priority: locality.priority,
            weight,
            endpoints,
        });
    }
    Ok(EndpointsUpdate { localities })
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::EdsClusterConfig;
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
    use envoy_types::pb::envoy::config::endpoint::v3::{Endpoint, LbEndpoint, LocalityLbEndpoints};
    use envoy_types::pb::envoy::config::listener::v3::ApiListener;
    use envoy_types::pb::google::protobuf::UInt32Value;

    use super::*;

    fn any(kind: Kind, message: &impl Message) -> Any {
        Any {
            type_url: kind.type_url().to_owned(),
            value: message.encode_to_vec(),
        }
    }

    fn eds_cluster(lb_policy: LbPolicy) -> Cluster {
        Cluster {
            name: "c".into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(EdsClusterConfig {
                service_name: "c-eds".into(),
                ..EdsClusterConfig::default()
            }),
            lb_policy: lb_policy as i32,
            ..Cluster::default()
        }
    }

    fn lb_endpoint(ip: &str, port: u32, health: HealthStatus) -> LbEndpoint {
        LbEndpoint {
            health_status: health as i32,
            load_balancing_weight: Some(UInt32Value { value: 2 }),
            host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(AddressKind::SocketAddress(SocketAddress {
                        address: ip.into(),
                        port_specifier: Some(PortSpecifier::PortValue(port)),
                        ..SocketAddress::default()
                    })),
                }),
                ..Endpoint::default()
            })),
            ..LbEndpoint::default()
        }
    }

    #[test]
    fn clusters_map_their_lb_policy_and_refuse_others() {
        let decoded = decode(
            Kind::Cluster,
            &any(Kind::Cluster, &eds_cluster(LbPolicy::LeastRequest)),
        );
        let Ok((name, Resource::Cluster(update))) = decoded else {
            panic!("{decoded:?}");
        };
        assert_eq!(name, "c");
        assert_eq!(update.eds_service_name, "c-eds");
        assert_eq!(
            update.balancing,
            LoadBalancing::LeastRequest { choice_count: 2 }
        );
        let refused = decode(
            Kind::Cluster,
            &any(Kind::Cluster, &eds_cluster(LbPolicy::RingHash)),
        );
        assert!(
            matches!(refused, Err((Some(_), ref why)) if why.contains("RING_HASH")),
            "{refused:?}"
        );
        let mut logical_dns = eds_cluster(LbPolicy::RoundRobin);
        logical_dns.cluster_discovery_type =
            Some(ClusterDiscoveryType::Type(DiscoveryType::LogicalDns as i32));
        assert!(decode(Kind::Cluster, &any(Kind::Cluster, &logical_dns)).is_err());
    }

    #[test]
    fn endpoints_keep_the_healthy_and_refuse_port_zero() {
        let assignment = ClusterLoadAssignment {
            cluster_name: "c-eds".into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![
                    lb_endpoint("127.0.0.1", 1, HealthStatus::Healthy),
                    lb_endpoint("127.0.0.2", 2, HealthStatus::Unknown),
                    lb_endpoint("127.0.0.3", 3, HealthStatus::Unhealthy),
                    lb_endpoint("127.0.0.4", 4, HealthStatus::Draining),
                ],
                priority: 1,
                ..LocalityLbEndpoints::default()
            }],
            ..ClusterLoadAssignment::default()
        };
        let decoded = decode(
            Kind::ClusterLoadAssignment,
            &any(Kind::ClusterLoadAssignment, &assignment),
        );
        let Ok((_, Resource::ClusterLoadAssignment(update))) = decoded else {
            panic!("{decoded:?}");
        };
        let locality = &update.localities[0];
        assert_eq!((locality.priority, locality.weight), (1, 1));
        let ports: Vec<(u16, u32)> = locality
            .endpoints
            .iter()
            .map(|(a, w)| (a.port(), *w))
            .collect();
        assert_eq!(ports, vec![(1, 2), (2, 2)]);

        let mut bad = assignment;
        bad.endpoints[0]
            .lb_endpoints
            .push(lb_endpoint("127.0.0.5", 0, HealthStatus::Healthy));
        let refused = decode(
            Kind::ClusterLoadAssignment,
            &any(Kind::ClusterLoadAssignment, &bad),
        );
        assert!(
            matches!(refused, Err((Some(ref name), ref why)) if name == "c-eds" && why.contains("port 0")),
            "{refused:?}"
        );
    }

    #[test]
    fn listeners_need_an_http_connection_manager_with_routes() {
        let without = Listener {
            name: "svc".into(),
            ..Listener::default()
        };
        assert!(decode(Kind::Listener, &any(Kind::Listener, &without)).is_err());
        let manager = HttpConnectionManager {
            route_specifier: None,
            ..HttpConnectionManager::default()
        };
        let with_empty_manager = Listener {
            name: "svc".into(),
            api_listener: Some(ApiListener {
                api_listener: Some(Any {
                    type_url: HTTP_CONNECTION_MANAGER.to_owned(),
                    value: manager.encode_to_vec(),
                }),
            }),
            ..Listener::default()
        };
        let refused = decode(Kind::Listener, &any(Kind::Listener, &with_empty_manager));
        assert!(
            matches!(refused, Err((Some(_), ref why)) if why.contains("no routes")),
            "{refused:?}"
        );
        // Wrapped in a discovery Resource, it reads the same.
        let wrapped = Any {
            type_url: RESOURCE_WRAPPER.to_owned(),
            value: WrappedResource {
                resource: Some(any(Kind::Listener, &with_empty_manager)),
                ..WrappedResource::default()
            }
            .encode_to_vec(),
        };
        let refused = decode(Kind::Listener, &wrapped);
        assert!(
            matches!(refused, Err((Some(_), ref why)) if why.contains("no routes")),
            "{refused:?}"
        );
        // A response of the wrong type is refused as a whole.
        let wrong = decode(Kind::Cluster, &any(Kind::Listener, &without));
        assert!(matches!(wrong, Err((None, _))), "{wrong:?}");
    }
}
