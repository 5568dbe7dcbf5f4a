// Command driver is the grpc-go client row of grpcpool-bench: closed-loop unary calls with
// grpc-go's ClientConn, speaking the harness's driver protocol (see bench/src/driver.rs).
//
//	driver --target URL --concurrency N --seconds S --payload BYTES [--connections K]
//	       [--warmup S] [--method PATH] [--tls-ca FILE --server-name NAME]
//
// It prints one JSON line: calls, errors, seconds, qps, p50_us, p99_us, cpu_us_per_call
// (getrusage of this process over the counted window) and peak_rss_kib.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/url"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// rawCodec sends and receives pre-encoded message bytes, as the Rust and Python rows do, so
// every row measures the client library rather than protobuf. Named "proto" so the
// content-type is the one every server accepts.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	out := v.(*[]byte)
	*out = append((*out)[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// request encodes the interop SimpleRequest{response_size: n, payload: {body: n zero bytes}};
// the echo server sends it back, the interop server answers with n bytes.
func request(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	body := make([]byte, n)
	payload := append([]byte{0x12}, varint(uint64(n))...)
	payload = append(payload, body...)
	out := append([]byte{0x10}, varint(uint64(n))...)
	out = append(out, 0x1a)
	out = append(out, varint(uint64(len(payload)))...)
	return append(out, payload...)
}

func varint(v uint64) []byte {
	var out []byte
	for v >= 0x80 {
		out = append(out, byte(v)|0x80)
		v >>= 7
	}
	return append(out, byte(v))
}

func cpu() time.Duration {
	var usage syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

func peakRSS() int64 {
	var usage syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	return usage.Maxrss // KiB on Linux
}

// run makes closed-loop calls from `concurrency` goroutines until `until`, at most maxCalls each.
func run(conns []*grpc.ClientConn, method string, req []byte, concurrency int, until time.Time, record bool) ([]time.Duration, int64) {
	const maxCalls = 2_000_000
	var wg sync.WaitGroup
	lat := make([][]time.Duration, concurrency)
	errs := make([]int64, concurrency)
	for i := 0; i < concurrency; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			conn := conns[i%len(conns)]
			var reply []byte
			for n := 0; n < maxCalls && time.Now().Before(until); n++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				start := time.Now()
				err := conn.Invoke(ctx, method, &req, &reply)
				cancel()
				if err != nil {
					errs[i]++
				} else if record {
					lat[i] = append(lat[i], time.Since(start))
				}
			}
		}(i)
	}
	wg.Wait()
	var all []time.Duration
	var errors int64
	for i := range lat {
		all = append(all, lat[i]...)
		errors += errs[i]
	}
	return all, errors
}

func main() {
	target := flag.String("target", "", "http://HOST:PORT or https://HOST:PORT")
	concurrency := flag.Int("concurrency", 1, "calls in flight")
	seconds := flag.Float64("seconds", 1, "counted seconds")
	warmup := flag.Float64("warmup", 0.3, "seconds of uncounted calls first")
	payload := flag.Int("payload", 0, "request and response payload bytes")
	connections := flag.Int("connections", 1, "ClientConns, calls spread round-robin")
	method := flag.String("method", "/grpc.testing.TestService/UnaryCall", "method path")
	caFile := flag.String("tls-ca", "", "CA certificate (PEM) for https targets")
	serverName := flag.String("server-name", "", "TLS server name override")
	flag.Parse()

	parsed, err := url.Parse(*target)
	if err != nil || parsed.Host == "" {
		fmt.Fprintf(os.Stderr, "bad --target %q\n", *target)
		os.Exit(2)
	}
	creds := insecure.NewCredentials()
	if parsed.Scheme == "https" {
		config := &tls.Config{ServerName: *serverName}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			config.RootCAs = pool
		}
		creds = credentials.NewTLS(config)
	}
	conns := make([]*grpc.ClientConn, max(*connections, 1))
	for i := range conns {
		conns[i], err = grpc.NewClient("passthrough:///"+parsed.Host,
			grpc.WithTransportCredentials(creds),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer conns[i].Close()
	}
	req := request(*payload)
	run(conns, *method, req, *concurrency, time.Now().Add(time.Duration(*warmup*float64(time.Second))), false)

	cpuBefore := cpu()
	start := time.Now()
	lat, errors := run(conns, *method, req, *concurrency, start.Add(time.Duration(*seconds*float64(time.Second))), true)
	wall := time.Since(start)
	used := cpu() - cpuBefore

	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(math.Ceil(float64(len(lat))*q)) - 1
		i = min(max(i, 0), len(lat)-1)
		return float64(lat[i].Nanoseconds()) / 1e3
	}
	calls := int64(len(lat))
	perCall := 0.0
	if calls > 0 {
		perCall = float64(used.Nanoseconds()) / 1e3 / float64(calls)
	}
	out, _ := json.Marshal(map[string]any{
		"calls": calls, "errors": errors, "seconds": wall.Seconds(),
		"qps": float64(calls) / wall.Seconds(), "p50_us": pct(0.50), "p99_us": pct(0.99),
		"cpu_us_per_call": perCall, "peak_rss_kib": peakRSS(),
	})
	fmt.Println(string(out))
}
