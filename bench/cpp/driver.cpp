// The C++ client row of grpcpool-bench (cpp-threads): blocking grpcpool::Pool::unary calls
// through the header-only wrapper include/grpcpool.hpp from N std::threads, speaking the
// harness's driver protocol (bench/src/driver.rs):
//
//   driver --target URL --concurrency N --seconds S --payload BYTES [--connections K]
//          [--warmup S] [--method PATH] [--tls-ca FILE --server-name NAME]
//   driver --check
//
// After --warmup seconds uncounted, N threads make closed-loop one-shot calls for S seconds;
// it prints one JSON line: calls, errors, seconds, qps, p50_us, p99_us, cpu_us_per_call
// (getrusage of this process over the counted window) and peak_rss_kib (ru_maxrss), as
// bench/c/driver.c does. The pool keeps K connections (min = max = K). The harness builds it
// with c++ -std=c++17 against target/release/libgrpcpool.so.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <grpcpool.hpp>

namespace {

constexpr size_t kMaxCallsPerWorker = 2000000;
constexpr int kWarmUpConcurrencyCap = 1024;
constexpr std::chrono::milliseconds kCallTimeout(10000);

using Clock = std::chrono::steady_clock;

// What every thread calls, set once before the threads start.
struct Call {
  const grpcpool::Pool* pool;
  std::string target;
  std::string method;
  std::string request;
};

// One closed loop's figures, written by its own thread only.
struct Worker {
  std::vector<double> latencies_us;
  uint64_t errors = 0;
};

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec) + static_cast<double>(usage.ru_utime.tv_usec) / 1e6 +
         static_cast<double>(usage.ru_stime.tv_sec) + static_cast<double>(usage.ru_stime.tv_usec) / 1e6;
}

long peak_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;  // KiB on Linux
}

void varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

// The interop SimpleRequest{response_size: payload, payload: {body: payload zero bytes}}.
std::string make_request(size_t payload) {
  if (payload == 0) return {};
  std::string body("\x12", 1);
  varint(body, payload);
  body.append(payload, '\0');
  std::string out("\x10", 1);
  varint(out, payload);
  out.push_back('\x1a');
  varint(out, body.size());
  return out + body;
}

bool call_once(const Call& call) {
  try {
    grpcpool::Response response = call.pool->unary(call.target, call.method, call.request, {}, kCallTimeout);
    return response.ok();
  } catch (const grpcpool::Error&) {
    return false;
  }
}

void work(const Call& call, Clock::time_point until, Worker& worker) {
  worker.latencies_us.reserve(4096);
  while (Clock::now() < until && worker.latencies_us.size() < kMaxCallsPerWorker) {
    Clock::time_point started = Clock::now();
    if (!call_once(call)) {
      worker.errors++;
      continue;
    }
    worker.latencies_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - started).count());
  }
}

// Runs `threads` closed loops for `seconds`; false when a thread could not be started.
bool load(const Call& call, std::vector<Worker>& workers, int threads, double seconds) {
  workers.assign(static_cast<size_t>(threads), Worker{});
  Clock::time_point until =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> ids;
  ids.reserve(workers.size());
  bool started = true;
  for (Worker& worker : workers) {
    try {
      ids.emplace_back(work, std::cref(call), until, std::ref(worker));
    } catch (const std::system_error&) {
      started = false;
      break;
    }
  }
  for (std::thread& id : ids) id.join();
  return started;
}

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0.0;
  size_t index = static_cast<size_t>(static_cast<double>(sorted.size()) * q + 0.999999999);
  index = std::clamp<size_t>(index, 1, sorted.size());
  return sorted[index - 1];
}

int usage(const char* why) {
  std::fprintf(stderr,
               "driver: %s\nusage: driver --target URL --concurrency N --seconds S --payload BYTES "
               "[--connections K] [--warmup S] [--method PATH] [--tls-ca FILE --server-name NAME]\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int concurrency = 1, connections = 1;
  double seconds = 1.0, warmup = 0.3;
  size_t payload = 0;
  const char *target = nullptr, *tls_ca = nullptr, *server_name = nullptr;
  std::string method = "/grpc.testing.TestService/UnaryCall";
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    if (arg == "--check") return 0;
    if (i + 1 >= argc) return usage("an argument needs a value");
    const char* value = argv[++i];
    if (arg == "--target") target = value;
    else if (arg == "--concurrency") concurrency = std::atoi(value);
    else if (arg == "--seconds") seconds = std::atof(value);
    else if (arg == "--warmup") warmup = std::atof(value);
    else if (arg == "--payload") payload = static_cast<size_t>(std::atol(value));
    else if (arg == "--connections") connections = std::atoi(value);
    else if (arg == "--method") method = value;
    else if (arg == "--tls-ca") tls_ca = value;
    else if (arg == "--server-name") server_name = value;
    else return usage("unknown argument");
  }
  if (target == nullptr) return usage("--target is required");
  concurrency = std::max(concurrency, 1);
  connections = std::max(connections, 1);

  try {
    grpcpool::Config config;
    config.min_connections(static_cast<uint32_t>(connections))
        .max_connections(static_cast<uint32_t>(connections))
        .streams_per_connection(1000);
    if (tls_ca != nullptr) config.tls_ca_file(tls_ca);
    if (server_name != nullptr) config.tls_server_name(server_name);
    grpcpool::Pool pool(config);
    const Call call{&pool, target, method, make_request(payload)};

    std::vector<Worker> workers;
    if (!load(call, workers, std::min(concurrency, kWarmUpConcurrencyCap), warmup)) return 1;

    double cpu_before = cpu_seconds();
    Clock::time_point started = Clock::now();
    if (!load(call, workers, concurrency, seconds)) {
      std::fprintf(stderr, "could not start %d threads\n", concurrency);
      return 1;
    }
    double wall = std::chrono::duration<double>(Clock::now() - started).count();
    double cpu = cpu_seconds() - cpu_before;

    std::vector<double> all;
    uint64_t errors = 0;
    for (Worker& worker : workers) {
      all.insert(all.end(), worker.latencies_us.begin(), worker.latencies_us.end());
      errors += worker.errors;
    }
    workers.clear();
    std::sort(all.begin(), all.end());
    size_t calls = all.size();
    std::printf(
        "{\"calls\":%zu,\"errors\":%llu,\"seconds\":%.6f,\"qps\":%.3f,\"p50_us\":%.3f,\"p99_us\":%.3f,"
        "\"cpu_us_per_call\":%.3f,\"peak_rss_kib\":%ld}\n",
        calls, static_cast<unsigned long long>(errors), wall,
        static_cast<double>(calls) / std::max(wall, 1e-9), percentile(all, 0.50), percentile(all, 0.99),
        calls ? cpu * 1e6 / static_cast<double>(calls) : 0.0, peak_rss_kib());
    std::fflush(stdout);
    return 0;
  } catch (const grpcpool::Error& error) {
    std::fprintf(stderr, "driver: %s: %s\n", error.name(), error.what());
    return 1;
  }
}
