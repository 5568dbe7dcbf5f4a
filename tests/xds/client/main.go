// Command xds-client is the reference for the parity suite's xDS scenario: grpc-go's own xDS
// client dials xds:///svc with the bootstrap named by GRPC_XDS_BOOTSTRAP and makes the same
// unary calls to the project's echo servers as grpcpool's faces, printing the scenario's JSON
// line as they do. It shows that the control plane and the scenario's expectations are right.
//
// Usage: xds-client <A> <B> <C> <D>, each backend's ip:port: the route splits calls 1:3 between
// cluster "one" (A) and cluster "three" (B and C); D serves but is in no cluster.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	_ "google.golang.org/grpc/xds" // the xds:/// resolver and the xDS balancers
)

// calls is the scenario's count, as in every face.
const calls = 800

// rawCodec sends and receives messages as the bytes they are: the echo service is not
// generated code here.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

func report(scenario, class, detail string) {
	line, _ := json.Marshal(map[string]string{"scenario": scenario, "class": class, "via": "grpc-go", "detail": detail})
	fmt.Println(string(line))
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: xds-client <A> <B> <C> <D>")
		os.Exit(2)
	}
	backends := os.Args[1:]
	conn, err := grpc.NewClient("xds:///svc", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		report("xds_weighted_split", "dial_failed", err.Error())
		return
	}
	defer conn.Close()
	served := map[string]int{}
	failed := 0
	lastError := ""
	for i := 0; i < calls; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ctx = metadata.AppendToOutgoingContext(ctx, "x-report-calls", "1")
		var header metadata.MD
		request, response := []byte("x"), []byte(nil)
		err := conn.Invoke(ctx, "/grpcpool.test.Echo/Unary", &request, &response,
			grpc.ForceCodec(rawCodec{}), grpc.Header(&header), grpc.WaitForReady(true))
		cancel()
		if err != nil {
			failed++
			lastError = err.Error()
			continue
		}
		by := header.Get("x-echo-served-by")
		if len(by) == 1 {
			served[by[0]]++
		} else {
			served["?"]++
		}
	}
	report("xds_weighted_split", "counted", detail(backends, served, failed, lastError))
}

// detail is the counts, as every face writes them; tests/parity/discovery.sh judges them.
func detail(backends []string, served map[string]int, failed int, lastError string) string {
	text := fmt.Sprintf("A=%d B=%d C=%d D=%d other=%d failed=%d", served[backends[0]], served[backends[1]],
		served[backends[2]], served[backends[3]], calls-failed-served[backends[0]]-served[backends[1]]-served[backends[2]]-served[backends[3]], failed)
	if lastError != "" {
		text += " last error: " + lastError
	}
	return text
}
