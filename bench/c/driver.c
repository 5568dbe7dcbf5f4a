/*
 * The C client rows of grpcpool-bench: grpcpool_unary through include/grpcpool.h, blocking or
 * async, speaking the harness's driver protocol (bench/src/driver.rs):
 *
 *   driver --target URL --concurrency N --seconds S --payload BYTES [--connections K]
 *          [--warmup S] [--method PATH] [--tls-ca FILE --server-name NAME]
 *          [--api blocking|async]
 *   driver --check
 *
 * --api blocking (the default; row c-pthreads): N pthreads each make closed-loop blocking
 * grpcpool_unary calls. --api async (row c-async): N chains of grpcpool_unary_async, one call
 * in flight each; a call's completion callback, on a pool thread, records its latency in its
 * chain's own array (no lock), frees the response and starts the chain's next call until the
 * time is up, and the main thread waits for every chain to stop.
 *
 * After --warmup seconds uncounted, it runs for S seconds and prints one JSON line: calls,
 * errors, seconds, qps, p50_us, p99_us, cpu_us_per_call (getrusage of this process over the
 * counted window, pool threads included) and peak_rss_kib (ru_maxrss). The pool keeps K
 * connections (min = max = K). The harness builds it with cc against
 * target/release/libgrpcpool.so.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <grpcpool.h>

#define MAX_CALLS_PER_WORKER 2000000u
#define WARM_UP_CONCURRENCY_CAP 1024
#define CALL_TIMEOUT_MS 10000u

static const char *target;
static const char *method = "/grpc.testing.TestService/UnaryCall";
static const grpcpool_pool_t *pool;
static uint8_t *request;
static size_t request_len;

/* One closed loop: a pthread (blocking) or a chain of async calls, only ever one call at a time. */
typedef struct {
  double until;   /* monotonic seconds */
  double started; /* when the chain's call in flight started (async) */
  double *latencies_us;
  size_t count, capacity;
  uint64_t errors;
} worker_t;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
         (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
}

static long peak_rss_kib(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss; /* KiB on Linux */
}

static size_t varint(uint8_t *out, uint64_t value) {
  size_t n = 0;
  while (value >= 0x80) {
    out[n++] = (uint8_t)(value | 0x80);
    value >>= 7;
  }
  out[n++] = (uint8_t)value;
  return n;
}

/* The interop SimpleRequest{response_size: payload, payload: {body: payload zero bytes}}. */
static void make_request(size_t payload) {
  if (payload == 0) return;
  uint8_t head[16], body_head[16];
  size_t body_head_len = 0;
  body_head[body_head_len++] = 0x12;
  body_head_len += varint(body_head + body_head_len, payload);
  size_t body_len = body_head_len + payload;
  size_t head_len = 0;
  head[head_len++] = 0x10;
  head_len += varint(head + head_len, payload);
  head[head_len++] = 0x1a;
  head_len += varint(head + head_len, body_len);
  request_len = head_len + body_len;
  request = calloc(request_len, 1);
  if (!request) exit(2);
  memcpy(request, head, head_len);
  memcpy(request + head_len, body_head, body_head_len);
}

static int call(void) {
  grpcpool_response_t *response = NULL;
  grpcpool_result rc = grpcpool_unary(pool, target, method, request, request_len, NULL, 0,
                                      CALL_TIMEOUT_MS, &response);
  int ok = rc == GRPCPOOL_OK && grpcpool_response_code(response) == 0;
  grpcpool_response_free(response);
  return ok;
}

/* Appends one latency to the worker's own array; 0 when it cannot grow. */
static int record(worker_t *w, double seconds) {
  if (w->count == w->capacity) {
    size_t capacity = w->capacity ? w->capacity * 2 : 4096;
    double *grown = realloc(w->latencies_us, capacity * sizeof *grown);
    if (!grown) return 0;
    w->latencies_us = grown;
    w->capacity = capacity;
  }
  w->latencies_us[w->count++] = seconds * 1e6;
  return 1;
}

static int running(const worker_t *w) { return now() < w->until && w->count < MAX_CALLS_PER_WORKER; }

static void *work(void *arg) {
  worker_t *w = arg;
  while (running(w)) {
    double started = now();
    if (!call()) {
      w->errors++;
      continue;
    }
    if (!record(w, now() - started)) break;
  }
  return NULL;
}

/* Runs `threads` closed loops for `seconds`; fills `workers`. Returns 0 on success. */
static int load(worker_t *workers, int threads, double seconds) {
  pthread_t *ids = calloc((size_t)threads, sizeof *ids);
  if (!ids) return 1;
  double until = now() + seconds;
  int started = 0;
  for (; started < threads; started++) {
    memset(&workers[started], 0, sizeof workers[started]);
    workers[started].until = until;
    if (pthread_create(&ids[started], NULL, work, &workers[started]) != 0) break;
  }
  for (int i = 0; i < started; i++) pthread_join(ids[i], NULL);
  free(ids);
  return started == threads ? 0 : 1;
}

/* The async chains still running; the main thread waits for none. Taken once per chain. */
static pthread_mutex_t chains_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t chains_done = PTHREAD_COND_INITIALIZER;
static int chains_running;

static void chain_stopped(void) {
  pthread_mutex_lock(&chains_lock);
  if (--chains_running == 0) pthread_cond_signal(&chains_done);
  pthread_mutex_unlock(&chains_lock);
}

static void on_response(void *user_data, grpcpool_response_t *response);

/* Starts the chain's next call, or stops the chain once its time is up. After a call started,
 * its callback (on a pool thread, possibly before this returns) owns `w`. */
static void next_call(worker_t *w) {
  while (running(w)) {
    w->started = now();
    grpcpool_result rc = grpcpool_unary_async(pool, target, method, request, request_len, NULL, 0,
                                              CALL_TIMEOUT_MS, on_response, w, NULL);
    if (rc == GRPCPOOL_OK) return;
    w->errors++; /* nothing started, and no callback will come */
  }
  chain_stopped();
}

static void on_response(void *user_data, grpcpool_response_t *response) {
  worker_t *w = user_data;
  double latency = now() - w->started;
  int ok = grpcpool_response_code(response) == 0;
  grpcpool_response_free(response);
  if (!ok) w->errors++;
  else if (!record(w, latency)) {
    chain_stopped();
    return;
  }
  next_call(w);
}

/* Runs `chains` closed loops of async calls for `seconds`; fills `workers`. Returns 0. */
static int load_async(worker_t *workers, int chains, double seconds) {
  double until = now() + seconds;
  for (int i = 0; i < chains; i++) {
    memset(&workers[i], 0, sizeof workers[i]);
    workers[i].until = until;
  }
  pthread_mutex_lock(&chains_lock);
  chains_running = chains;
  pthread_mutex_unlock(&chains_lock);
  for (int i = 0; i < chains; i++) next_call(&workers[i]);
  pthread_mutex_lock(&chains_lock);
  while (chains_running > 0) pthread_cond_wait(&chains_done, &chains_lock);
  pthread_mutex_unlock(&chains_lock);
  return 0;
}

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double q) {
  if (n == 0) return 0.0;
  size_t index = (size_t)((double)n * q + 0.999999999);
  if (index < 1) index = 1;
  if (index > n) index = n;
  return sorted[index - 1];
}

static int usage(const char *why) {
  fprintf(stderr, "driver: %s\nusage: driver --target URL --concurrency N --seconds S --payload BYTES "
                  "[--connections K] [--warmup S] [--method PATH] [--tls-ca FILE --server-name NAME]\n"
                  "       [--api blocking|async]\n",
          why);
  return 2;
}

int main(int argc, char **argv) {
  int concurrency = 1, connections = 1;
  double seconds = 1.0, warmup = 0.3;
  size_t payload = 0;
  const char *tls_ca = NULL, *server_name = NULL;
  int (*run)(worker_t *, int, double) = load;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--check") == 0) return 0;
    if (i + 1 >= argc) return usage("an argument needs a value");
    const char *value = argv[++i];
    if (strcmp(arg, "--target") == 0) target = value;
    else if (strcmp(arg, "--concurrency") == 0) concurrency = atoi(value);
    else if (strcmp(arg, "--seconds") == 0) seconds = atof(value);
    else if (strcmp(arg, "--warmup") == 0) warmup = atof(value);
    else if (strcmp(arg, "--payload") == 0) payload = (size_t)atol(value);
    else if (strcmp(arg, "--connections") == 0) connections = atoi(value);
    else if (strcmp(arg, "--method") == 0) method = value;
    else if (strcmp(arg, "--tls-ca") == 0) tls_ca = value;
    else if (strcmp(arg, "--server-name") == 0) server_name = value;
    else if (strcmp(arg, "--api") == 0 && strcmp(value, "blocking") == 0) run = load;
    else if (strcmp(arg, "--api") == 0 && strcmp(value, "async") == 0) run = load_async;
    else if (strcmp(arg, "--api") == 0) return usage("--api takes blocking or async");
    else return usage("unknown argument");
  }
  if (!target) return usage("--target is required");
  if (concurrency < 1) concurrency = 1;
  if (connections < 1) connections = 1;
  make_request(payload);

  grpcpool_config_t *config = grpcpool_config_new();
  char count[16];
  snprintf(count, sizeof count, "%d", connections);
  grpcpool_config_set(config, "min_connections_per_target", count);
  grpcpool_config_set(config, "max_connections_per_target", count);
  grpcpool_config_set(config, "streams_per_connection", "1000");
  if (tls_ca && grpcpool_config_set_tls_ca_file(config, tls_ca) != GRPCPOOL_OK) {
    fprintf(stderr, "tls ca: %s\n", grpcpool_last_error());
    return 1;
  }
  if (server_name) grpcpool_config_set_tls_server_name(config, server_name);
  grpcpool_pool_t *owned = NULL;
  grpcpool_result rc = grpcpool_pool_new(config, &owned);
  grpcpool_config_free(config);
  if (rc != GRPCPOOL_OK) {
    fprintf(stderr, "grpcpool_pool_new: %s: %s\n", grpcpool_result_name(rc), grpcpool_last_error());
    return 1;
  }
  pool = owned;

  worker_t *workers = calloc((size_t)concurrency, sizeof *workers);
  if (!workers) return 1;
  int warm = concurrency < WARM_UP_CONCURRENCY_CAP ? concurrency : WARM_UP_CONCURRENCY_CAP;
  if (run(workers, warm, warmup) != 0) return 1;
  for (int i = 0; i < warm; i++) free(workers[i].latencies_us);

  double cpu_before = cpu_seconds(), started = now();
  if (run(workers, concurrency, seconds) != 0) {
    fprintf(stderr, "could not start %d threads\n", concurrency);
    return 1;
  }
  double wall = now() - started, cpu = cpu_seconds() - cpu_before;

  size_t calls = 0;
  uint64_t errors = 0;
  for (int i = 0; i < concurrency; i++) {
    calls += workers[i].count;
    errors += workers[i].errors;
  }
  double *all = malloc((calls ? calls : 1) * sizeof *all);
  if (!all) return 1;
  size_t at = 0;
  for (int i = 0; i < concurrency; i++) {
    if (workers[i].count) memcpy(all + at, workers[i].latencies_us, workers[i].count * sizeof *all);
    at += workers[i].count;
    free(workers[i].latencies_us);
  }
  qsort(all, calls, sizeof *all, compare);
  printf("{\"calls\":%zu,\"errors\":%llu,\"seconds\":%.6f,\"qps\":%.3f,\"p50_us\":%.3f,\"p99_us\":%.3f,"
         "\"cpu_us_per_call\":%.3f,\"peak_rss_kib\":%ld}\n",
         calls, (unsigned long long)errors, wall, (double)calls / (wall > 1e-9 ? wall : 1e-9),
         percentile(all, calls, 0.50), percentile(all, calls, 0.99),
         calls ? cpu * 1e6 / (double)calls : 0.0, peak_rss_kib());
  fflush(stdout);
  free(all);
  free(workers);
  free(request);
  grpcpool_pool_free(owned);
  return 0;
}
