// Command xds-control-plane is the xDS control plane of grpcpool's xDS tests: go-control-plane's
// snapshot cache behind its ADS server on loopback, fed by the test over stdin.
//
// Each stdin line is a JSON snapshot (see the snapshot type); the program answers "applied
// <version>" on stdout once the cache holds it. It prints "listening <port>" once it serves,
// and for each request a client sends, "ack <type> <version> <nonce>" or, when the request
// carries an error_detail, "nack <type> <version> <nonce> <message>". With -tls-cert and
// -tls-key it serves ADS over TLS.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// snapshot is one full configuration the test sets.
type snapshot struct {
	Version  string         `json:"version"`
	Listener string         `json:"listener"`
	Route    string         `json:"route"`
	Inline   bool           `json:"inline_route"`
	Domains  []string       `json:"domains"`
	Routes   []routeEntry   `json:"routes"`
	Clusters []clusterEntry `json:"clusters"`
}

type routeEntry struct {
	Prefix   string          `json:"prefix"`
	Path     string          `json:"path"`
	Clusters []weightedEntry `json:"clusters"`
}

type weightedEntry struct {
	Name   string `json:"name"`
	Weight uint32 `json:"weight"`
}

type clusterEntry struct {
	Name        string          `json:"name"`
	Lb          string          `json:"lb"`
	MaxRequests uint32          `json:"max_requests"`
	Endpoints   []endpointEntry `json:"endpoints"`
}

type endpointEntry struct {
	Address  string `json:"address"`
	Port     uint32 `json:"port"`
	Weight   uint32 `json:"weight"`
	Priority uint32 `json:"priority"`
	Health   string `json:"health"`
}

var out sync.Mutex

func say(format string, args ...any) {
	out.Lock()
	defer out.Unlock()
	fmt.Printf(format+"\n", args...)
}

func main() {
	port := flag.Int("port", 0, "loopback port to serve ADS on (0: any)")
	node := flag.String("node", "grpcpool-test", "the node id whose snapshot the test sets")
	tlsCert := flag.String("tls-cert", "", "serve ADS over TLS with this PEM certificate chain (with -tls-key)")
	tlsKey := flag.String("tls-key", "", "the PEM private key of -tls-cert")
	flag.Parse()

	ctx := context.Background()
	// ads=false: in ADS mode the cache answers only requests naming every resource of a type
	// in the snapshot (as Envoy asks for all clusters); a gRPC client asks for those it uses.
	snapshots := cache.NewSnapshotCache(false, cache.IDHash{}, nil)
	// Every snapshot set, by version, and the version in the cache now.
	var applied sync.Map
	var current sync.Map
	callbacks := server.CallbackFuncs{
		StreamRequestFunc: func(_ int64, request *discoverygrpc.DiscoveryRequest) error {
			short := request.GetTypeUrl()[strings.LastIndex(request.GetTypeUrl(), ".")+1:]
			if detail := request.GetErrorDetail(); detail != nil {
				message := strings.ReplaceAll(detail.GetMessage(), "\n", " ")
				say("nack %s %q %q %s", short, request.GetVersionInfo(), request.GetResponseNonce(), message)
				// The snapshot cache answers a request whose version differs from its own at
				// once, so a NACK would bring the refused version back in a loop. Like a control
				// plane that handles NACKs, go back to the snapshot the client last accepted.
				now, _ := current.Load("version")
				if good, ok := applied.Load(request.GetVersionInfo()); ok && now != request.GetVersionInfo() {
					if err := snapshots.SetSnapshot(ctx, *node, good.(*cache.Snapshot)); err == nil {
						current.Store("version", request.GetVersionInfo())
						say("rolled back to %s", request.GetVersionInfo())
					}
				}
			} else if request.GetResponseNonce() != "" {
				say("ack %s %q %q", short, request.GetVersionInfo(), request.GetResponseNonce())
			}
			return nil
		},
	}
	ads := server.NewServer(ctx, snapshots, callbacks)
	var options []grpc.ServerOption
	if *tlsCert != "" {
		creds, err := credentials.NewServerTLSFromFile(*tlsCert, *tlsKey)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tls:", err)
			os.Exit(1)
		}
		options = append(options, grpc.Creds(creds))
	}
	grpcServer := grpc.NewServer(options...)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(grpcServer, ads)
	socket, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	go func() {
		if err := grpcServer.Serve(socket); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
	}()
	say("listening %d", socket.Addr().(*net.TCPAddr).Port)

	lines := bufio.NewScanner(os.Stdin)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	for lines.Scan() {
		var wanted snapshot
		if err := json.Unmarshal(lines.Bytes(), &wanted); err != nil {
			say("error %q", err.Error())
			continue
		}
		built, err := build(wanted)
		if err == nil {
			applied.Store(wanted.Version, built)
			current.Store("version", wanted.Version)
			err = snapshots.SetSnapshot(ctx, *node, built)
		}
		if err != nil {
			say("error %q", err.Error())
			continue
		}
		say("applied %s", wanted.Version)
	}
	// stdin closed: the test is done with us.
	grpcServer.GracefulStop()
	time.Sleep(10 * time.Millisecond)
}

func build(wanted snapshot) (*cache.Snapshot, error) {
	routeName := wanted.Route
	if routeName == "" {
		routeName = wanted.Listener + "-route"
	}
	domains := wanted.Domains
	if len(domains) == 0 {
		domains = []string{"*"}
	}
	routeConfig := &route.RouteConfiguration{
		Name: routeName,
		VirtualHosts: []*route.VirtualHost{{
			Name:    "default",
			Domains: domains,
			Routes:  routes(wanted.Routes),
		}},
	}
	// The router filter ends the filter chain, as gRPC's xDS clients require (grpc-go refuses
	// a listener without one); grpcpool has no HTTP filters and reads only the routes.
	routerConfig, err := anypb.New(&router.Router{})
	if err != nil {
		return nil, err
	}
	manager := &hcm.HttpConnectionManager{
		CodecType:  hcm.HttpConnectionManager_AUTO,
		StatPrefix: "grpc",
		HttpFilters: []*hcm.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: routerConfig},
		}},
	}
	resources := map[resource.Type][]types.Resource{}
	if wanted.Inline {
		manager.RouteSpecifier = &hcm.HttpConnectionManager_RouteConfig{RouteConfig: routeConfig}
	} else {
		manager.RouteSpecifier = &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			RouteConfigName: routeName,
			ConfigSource: &core.ConfigSource{
				ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
				ResourceApiVersion:    core.ApiVersion_V3,
			},
		}}
		resources[resource.RouteType] = []types.Resource{routeConfig}
	}
	packed, err := anypb.New(manager)
	if err != nil {
		return nil, err
	}
	resources[resource.ListenerType] = []types.Resource{&listener.Listener{
		Name:        wanted.Listener,
		ApiListener: &listener.ApiListener{ApiListener: packed},
	}}
	for _, entry := range wanted.Clusters {
		resources[resource.ClusterType] = append(resources[resource.ClusterType], clusterOf(entry))
		resources[resource.EndpointType] = append(resources[resource.EndpointType], assignmentOf(entry))
	}
	return cache.NewSnapshot(wanted.Version, resources)
}

func routes(entries []routeEntry) []*route.Route {
	var built []*route.Route
	for _, entry := range entries {
		match := &route.RouteMatch{}
		if entry.Path != "" {
			match.PathSpecifier = &route.RouteMatch_Path{Path: entry.Path}
		} else {
			match.PathSpecifier = &route.RouteMatch_Prefix{Prefix: entry.Prefix}
		}
		action := &route.RouteAction{}
		if len(entry.Clusters) == 1 {
			action.ClusterSpecifier = &route.RouteAction_Cluster{Cluster: entry.Clusters[0].Name}
		} else {
			weighted := &route.WeightedCluster{}
			for _, cluster := range entry.Clusters {
				weighted.Clusters = append(weighted.Clusters, &route.WeightedCluster_ClusterWeight{
					Name:   cluster.Name,
					Weight: wrapperspb.UInt32(cluster.Weight),
				})
			}
			action.ClusterSpecifier = &route.RouteAction_WeightedClusters{WeightedClusters: weighted}
		}
		built = append(built, &route.Route{
			Match:  match,
			Action: &route.Route_Route{Route: action},
		})
	}
	return built
}

func clusterOf(entry clusterEntry) *cluster.Cluster {
	built := &cluster.Cluster{
		Name:                 entry.Name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{
			EdsConfig: &core.ConfigSource{
				ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
				ResourceApiVersion:    core.ApiVersion_V3,
			},
		},
	}
	switch entry.Lb {
	case "LEAST_REQUEST":
		built.LbPolicy = cluster.Cluster_LEAST_REQUEST
	case "RING_HASH":
		built.LbPolicy = cluster.Cluster_RING_HASH
	default:
		built.LbPolicy = cluster.Cluster_ROUND_ROBIN
	}
	if entry.MaxRequests > 0 {
		built.CircuitBreakers = &cluster.CircuitBreakers{
			Thresholds: []*cluster.CircuitBreakers_Thresholds{{
				MaxRequests: wrapperspb.UInt32(entry.MaxRequests),
			}},
		}
	}
	return built
}

func assignmentOf(entry clusterEntry) *endpoint.ClusterLoadAssignment {
	byPriority := map[uint32]*endpoint.LocalityLbEndpoints{}
	var localities []*endpoint.LocalityLbEndpoints
	for _, wanted := range entry.Endpoints {
		locality, ok := byPriority[wanted.Priority]
		if !ok {
			locality = &endpoint.LocalityLbEndpoints{
				Locality:            &core.Locality{Region: "test", Zone: fmt.Sprintf("p%d", wanted.Priority)},
				LoadBalancingWeight: wrapperspb.UInt32(1),
				Priority:            wanted.Priority,
			}
			byPriority[wanted.Priority] = locality
			localities = append(localities, locality)
		}
		health := core.HealthStatus_HEALTHY
		if value, ok := core.HealthStatus_value[wanted.Health]; ok && wanted.Health != "" {
			health = core.HealthStatus(value)
		}
		one := &endpoint.LbEndpoint{
			HealthStatus: health,
			HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Address:       wanted.Address,
					PortSpecifier: &core.SocketAddress_PortValue{PortValue: wanted.Port},
				}}},
			}},
		}
		if wanted.Weight > 0 {
			one.LoadBalancingWeight = wrapperspb.UInt32(wanted.Weight)
		}
		locality.LbEndpoints = append(locality.LbEndpoints, one)
	}
	return &endpoint.ClusterLoadAssignment{ClusterName: entry.Name, Endpoints: localities}
}
