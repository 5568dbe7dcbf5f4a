/*
 * The soak client of grpcpool-bench (`grpcpool-bench soak`, bench/src/soak.rs): a long run of
 * blocking grpcpool_unary calls from T pthreads through include/grpcpool.h, watching this
 * process's memory while it runs.
 *
 *   soak --target URL --calls N --threads T --payload BYTES [--warmup-calls W]
 *        [--max-seconds S] [--interval-ms MS] [--method PATH]
 *   soak --check
 *
 * The threads claim calls from one shared counter until N calls are made or S seconds have
 * passed, whichever comes first, so the run is bounded in count and in time. A monitor thread
 * prints one JSON line per interval (the first before any call, and one more with running
 * false once the threads have joined):
 *
 *   {"kind":"sample","running":B,"t":S,"calls":N,"failures":N,"rss_kib":N,"heap_kib":N,
 *    "threads":N,"fds":N}
 *
 * rss_kib is VmRSS from /proc/self/status; heap_kib is glibc's mallinfo2 (bytes allocated and not
 * freed over every arena; -1 without it), which, unlike RSS, neither hides a leak behind pages
 * freed earlier nor counts pages the allocator keeps. The Rust library uses the same malloc, so
 * it covers grpcpool's heap too. Then one line:
 *
 *   {"kind":"end", calls, ok, failures by gRPC code name and by grpcpool_result name, seconds,
 *    warmup_seconds, stopped_by ("calls" or "time"), cpu_seconds, peak_rss_kib, stats (the
 *    pool's grpcpool_pool_stats_json once every call returned), leaks (grpcpool_pool_leaks_json),
 *    rss and heap before grpcpool_pool_new and after grpcpool_pool_free}
 *
 * The harness builds it with cc against libgrpcpool.so, as it builds driver.c.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <grpcpool.h>

#define CALL_TIMEOUT_MS 10000u
/* gRPC status codes are 0..16; anything else a server sends is counted as the last slot. */
#define CODES 18
/* grpcpool_result values are small and stable; room for ones added later. */
#define RESULTS 64

static const char *const CODE_NAMES[CODES] = {
    "OK",          "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",   "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL",     "UNAVAILABLE",       "DATA_LOSS",
    "UNAUTHENTICATED", "OTHER_CODE"};

static const char *target;
static const char *method = "/grpc.testing.TestService/UnaryCall";
static const grpcpool_pool_t *pool;
static uint8_t *request;
static size_t request_len;

static uint64_t total_calls = 1000000;
static double deadline; /* monotonic seconds: no call is claimed after it */
static uint64_t warmup_calls;
static double warmup_done_at; /* seconds since start; written once by the thread that crossed it */

static atomic_uint_fast64_t claimed;
static atomic_uint_fast64_t done;
static atomic_uint_fast64_t failed;
static atomic_uint_fast64_t by_code[CODES];
static atomic_uint_fast64_t by_result[RESULTS];
static atomic_int finished;

static double start_time;

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

/* VmRSS and Threads from /proc/self/status; -1 where the line is missing. */
static void status(long *rss_kib, long *threads) {
  *rss_kib = -1;
  *threads = -1;
  FILE *file = fopen("/proc/self/status", "r");
  if (!file) return;
  char line[256];
  while (fgets(line, sizeof line, file)) {
    if (strncmp(line, "VmRSS:", 6) == 0) *rss_kib = strtol(line + 6, NULL, 10);
    else if (strncmp(line, "Threads:", 8) == 0) *threads = strtol(line + 8, NULL, 10);
  }
  fclose(file);
}

/* Open file descriptors (sockets included), less the one reading the directory. */
static long open_fds(void) {
  DIR *dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  long count = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] != '.') count++;
  }
  closedir(dir);
  return count > 0 ? count - 1 : 0;
}

static long heap_kib(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 info = mallinfo2();
  return (long)((info.uordblks + info.hblkhd) / 1024);
#else
  return -1;
#endif
}

/* `running` is false for the sample after the workers exited: their stacks are gone then, so it
 * is no measure of what the calls left behind. */
static void sample(int running) {
  long rss, threads;
  status(&rss, &threads);
  printf("{\"kind\":\"sample\",\"running\":%s,\"t\":%.3f,\"calls\":%llu,\"failures\":%llu,"
         "\"rss_kib\":%ld,\"heap_kib\":%ld,\"threads\":%ld,\"fds\":%ld}\n",
         running ? "true" : "false", now() - start_time, (unsigned long long)atomic_load(&done),
         (unsigned long long)atomic_load(&failed), rss, heap_kib(), threads, open_fds());
  fflush(stdout);
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

/* The interop SimpleRequest{response_size: payload, payload: {body: payload zero bytes}}, as
 * driver.c and bench/src/driver.rs build it; the tonic echo server sends it back. */
static int make_request(size_t payload) {
  if (payload == 0) return 0;
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
  if (!request) return 1;
  memcpy(request, head, head_len);
  memcpy(request + head_len, body_head, body_head_len);
  return 0;
}

static void call(void) {
  grpcpool_response_t *response = NULL;
  grpcpool_result rc = grpcpool_unary(pool, target, method, request, request_len, NULL, 0,
                                      CALL_TIMEOUT_MS, &response);
  if (rc != GRPCPOOL_OK) {
    int slot = (int)rc >= 0 && (int)rc < RESULTS ? (int)rc : RESULTS - 1;
    atomic_fetch_add(&by_result[slot], 1);
    atomic_fetch_add(&failed, 1);
  } else {
    int32_t code = grpcpool_response_code(response);
    int slot = code >= 0 && code < CODES - 1 ? code : CODES - 1;
    atomic_fetch_add(&by_code[slot], 1);
    if (code != 0) atomic_fetch_add(&failed, 1);
  }
  grpcpool_response_free(response);
  /* Only the thread whose call completes the warm-up's count writes the time. */
  if (atomic_fetch_add(&done, 1) + 1 == warmup_calls) warmup_done_at = now() - start_time;
}

static void *work(void *arg) {
  (void)arg;
  while (now() < deadline) {
    if (atomic_fetch_add(&claimed, 1) >= total_calls) break;
    call();
  }
  return NULL;
}

/* Samples every interval on an absolute clock (no drift) until the workers are done. */
static void *monitor(void *arg) {
  long interval_ms = *(const long *)arg;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (;;) {
    next.tv_nsec += (interval_ms % 1000) * 1000000L;
    next.tv_sec += interval_ms / 1000 + next.tv_nsec / 1000000000L;
    next.tv_nsec %= 1000000000L;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
    }
    if (atomic_load(&finished)) break;
    sample(1);
  }
  return NULL;
}

static int usage(const char *why) {
  fprintf(stderr,
          "soak: %s\nusage: soak --target URL --calls N --threads T --payload BYTES "
          "[--warmup-calls W] [--max-seconds S] [--interval-ms MS] [--method PATH]\n",
          why);
  return 2;
}

/* Prints the non-zero slots from..n-1 of a counter array as a JSON object of `"name":count`. */
static void print_counts(const char *field, atomic_uint_fast64_t *counts, int from, int n,
                         const char *(*name)(int)) {
  printf("\"%s\":{", field);
  int first = 1;
  for (int i = from; i < n; i++) {
    uint64_t count = atomic_load(&counts[i]);
    if (count == 0) continue;
    printf("%s\"%s\":%llu", first ? "" : ",", name(i), (unsigned long long)count);
    first = 0;
  }
  printf("}");
}

static const char *code_name(int code) { return CODE_NAMES[code]; }
static const char *result_name(int rc) { return grpcpool_result_name(rc); }

int main(int argc, char **argv) {
  int threads = 16;
  double max_seconds = 900.0;
  long interval_ms = 1000;
  size_t payload = 1024;
  int warmup_given = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--check") == 0) return 0;
    if (i + 1 >= argc) return usage("an argument needs a value");
    const char *value = argv[++i];
    char *end = NULL;
    errno = 0;
    if (strcmp(arg, "--target") == 0) target = value;
    else if (strcmp(arg, "--method") == 0) method = value;
    else if (strcmp(arg, "--calls") == 0) total_calls = strtoull(value, &end, 10);
    else if (strcmp(arg, "--threads") == 0) threads = (int)strtol(value, &end, 10);
    else if (strcmp(arg, "--payload") == 0) payload = (size_t)strtoull(value, &end, 10);
    else if (strcmp(arg, "--warmup-calls") == 0) {
      warmup_calls = strtoull(value, &end, 10);
      warmup_given = 1;
    } else if (strcmp(arg, "--max-seconds") == 0) max_seconds = strtod(value, &end);
    else if (strcmp(arg, "--interval-ms") == 0) interval_ms = strtol(value, &end, 10);
    else return usage("unknown argument");
    if (end && (*end != '\0' || end == value || errno != 0)) return usage("a bad number");
  }
  if (!target) return usage("--target is required");
  if (threads < 1 || threads > 4096) return usage("--threads takes 1 to 4096");
  if (total_calls < 1) return usage("--calls takes at least 1");
  if (!(max_seconds > 0.0)) return usage("--max-seconds takes a positive number");
  if (interval_ms < 10) return usage("--interval-ms takes at least 10");
  /* A twentieth of the calls by default: the pool's connections, the runtime's threads and the
   * allocator's per-thread arenas are all in place well before then. */
  if (!warmup_given) warmup_calls = total_calls / 20;
  if (make_request(payload) != 0) return 1;

  long rss_before_pool, threads_before;
  status(&rss_before_pool, &threads_before);
  long heap_before_pool = heap_kib();
  grpcpool_config_t *config = grpcpool_config_new();
  grpcpool_pool_t *owned = NULL;
  /* The pool's defaults: what a program that just creates a pool gets. */
  grpcpool_result rc = grpcpool_pool_new(config, &owned);
  grpcpool_config_free(config);
  if (rc != GRPCPOOL_OK) {
    fprintf(stderr, "grpcpool_pool_new: %s: %s\n", grpcpool_result_name(rc), grpcpool_last_error());
    return 1;
  }
  pool = owned;

  start_time = now();
  deadline = start_time + max_seconds;
  double cpu_before = cpu_seconds();
  sample(1);
  pthread_t monitor_id;
  if (pthread_create(&monitor_id, NULL, monitor, &interval_ms) != 0) {
    fprintf(stderr, "could not start the monitor thread\n");
    return 1;
  }
  pthread_t *ids = calloc((size_t)threads, sizeof *ids);
  if (!ids) return 1;
  int started = 0;
  for (; started < threads; started++) {
    if (pthread_create(&ids[started], NULL, work, NULL) != 0) break;
  }
  for (int i = 0; i < started; i++) pthread_join(ids[i], NULL);
  free(ids);
  double seconds = now() - start_time, cpu = cpu_seconds() - cpu_before;
  atomic_store(&finished, 1);
  pthread_join(monitor_id, NULL);
  sample(0);
  if (started < threads) {
    fprintf(stderr, "could start only %d of %d threads\n", started, threads);
    return 1;
  }

  /* Every call has returned: a lease or stream still counted now was never given back. */
  char *stats = NULL, *leaks = NULL;
  if (grpcpool_pool_stats_json(pool, &stats) != GRPCPOOL_OK) stats = NULL;
  if (grpcpool_pool_leaks_json(pool, &leaks) != GRPCPOOL_OK) leaks = NULL;
  uint64_t calls = atomic_load(&done), failures = atomic_load(&failed);
  printf("{\"kind\":\"end\",\"threads\":%d,\"payload\":%zu,\"calls\":%llu,\"ok\":%llu,", threads,
         payload, (unsigned long long)calls, (unsigned long long)(calls - failures));
  /* From 1: OK is not a failure, as GRPCPOOL_OK is not. */
  print_counts("failures_by_code", by_code, 1, CODES, code_name);
  printf(",");
  print_counts("failures_by_result", by_result, 1, RESULTS, result_name);
  printf(",\"seconds\":%.6f,\"warmup_calls\":%llu,\"warmup_seconds\":%.6f,\"stopped_by\":\"%s\","
         "\"cpu_seconds\":%.6f,\"peak_rss_kib\":%ld,\"stats\":%s,\"leaks\":%s,"
         "\"rss_before_pool_kib\":%ld,\"heap_before_pool_kib\":%ld,",
         seconds, (unsigned long long)warmup_calls, warmup_done_at,
         calls >= total_calls ? "calls" : "time", cpu, peak_rss_kib(),
         stats ? stats : "null", leaks ? leaks : "null", rss_before_pool, heap_before_pool);
  grpcpool_string_free(stats);
  grpcpool_string_free(leaks);
  grpcpool_pool_free(owned);
  pool = NULL;
  long rss_after_free, threads_after;
  status(&rss_after_free, &threads_after);
  printf("\"rss_after_free_kib\":%ld,\"heap_after_free_kib\":%ld,\"threads_after_free\":%ld}\n",
         rss_after_free, heap_kib(), threads_after);
  fflush(stdout);
  free(request);
  return 0;
}
