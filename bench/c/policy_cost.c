/*
 * What the policy layer (the service config: method configs, retries, hedging, balancing) costs
 * on the hot path, measured by bench/policy_cost.sh under valgrind's callgrind as instructions per
 * call against the library from before it: sequential blocking grpcpool_unary calls (one in
 * flight) through include/grpcpool.h, nothing timed.
 *
 *   policy_cost --target URL --calls N [--warmup-calls W] [--payload BYTES] [--method PATH]
 *               [--worker-threads K] [--timeout-ms MS|none] [--api blocking|async]
 *   policy_cost --check
 *
 * --api async (bench/call_paths.sh) makes the same calls with grpcpool_unary_async instead,
 * one in flight: each completion callback checks its response and starts the next call, on
 * the pool's thread, and the main thread waits for the last (the C ABI's event-loop path).
 *
 * The pool is made from a config with default settings (and worker_threads K when given). When
 * the environment variable GRPCPOOL_SERVICE_CONFIG is set, its value is set as the
 * `service_config` setting; a library without that setting (one from before the policy layer)
 * refuses it, and the program exits with 1, so only a library that has it runs that row. W
 * uncounted calls first (default 100), then N counted ones, each a PAYLOAD-byte request
 * (default 1,024) to METHOD (default the test server's /grpcpool.test.Echo/Unary, which echoes
 * it), each with a deadline of MS milliseconds (default 86,400,000, one day; none: no deadline
 * and no grpc-timeout header). Every call must come back OK with the request echoed, or the
 * program exits with 1. It prints one JSON line: {"calls":N,"ok":N,"warmup_calls":W,
 * "payload":BYTES,"service_config":true|false}.
 *
 * Run it twice with different N under callgrind and the difference of the two totals over the
 * difference of N is the instructions per call, start-up and pool creation cancelled.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpcpool.h>

static const char *target;
static const char *method = "/grpcpool.test.Echo/Unary";
static const grpcpool_pool_t *pool;
static uint8_t *request;
static size_t request_len = 1024;
/* One day: grpc-timeout is then sent in whole seconds, the same value call after call. A 30 s
 * deadline goes out in microseconds, a new HPACK table entry on every call, whose cost moves
 * with the table's hashes and made the same run differ by about 1%. */
static uint32_t timeout_ms = 86400000;

/* 1 when `response` is OK with the request echoed; frees it. */
static int checked(grpcpool_response_t *response) {
  int ok = grpcpool_response_code(response) == 0;
  if (ok) {
    grpcpool_bytes_t body = grpcpool_response_body(response);
    ok = body.len == request_len &&
         (request_len == 0 || memcmp(body.data, request, request_len) == 0);
    if (!ok) fprintf(stderr, "policy_cost: the response is not the request echoed\n");
  } else {
    fprintf(stderr, "policy_cost: status %d: %s\n", grpcpool_response_code(response),
            grpcpool_response_message(response));
  }
  grpcpool_response_free(response);
  return ok;
}

/* One blocking call; 1 when it came back OK with the request echoed. */
static int call(void) {
  grpcpool_response_t *response = NULL;
  grpcpool_result rc = grpcpool_unary(pool, target, method, request, request_len, NULL, 0,
                                      timeout_ms, &response);
  if (rc != GRPCPOOL_OK) {
    fprintf(stderr, "policy_cost: grpcpool_unary: %s: %s\n", grpcpool_result_name(rc),
            grpcpool_last_error());
    return 0;
  }
  return checked(response);
}

/* The async chain: calls left to start, how many came back OK, and the end. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t done;
  long left;
  long ok;
  int over;
} chain = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void finish_chain(void) {
  pthread_mutex_lock(&chain.lock);
  chain.over = 1;
  pthread_cond_signal(&chain.done);
  pthread_mutex_unlock(&chain.lock);
}

static void on_response(void *user_data, grpcpool_response_t *response);

/* Starts the chain's next call, or ends the chain. */
static void next_async(void) {
  if (chain.left == 0) {
    finish_chain();
    return;
  }
  chain.left--;
  grpcpool_result rc = grpcpool_unary_async(pool, target, method, request, request_len, NULL, 0,
                                            timeout_ms, on_response, NULL, NULL);
  if (rc != GRPCPOOL_OK) {
    fprintf(stderr, "policy_cost: grpcpool_unary_async: %s: %s\n", grpcpool_result_name(rc),
            grpcpool_last_error());
    finish_chain();
  }
}

static void on_response(void *user_data, grpcpool_response_t *response) {
  (void)user_data;
  if (!checked(response)) {
    finish_chain();
    return;
  }
  chain.ok++;
  next_async();
}

/* `count` calls through the async API, one after another; how many came back OK. */
static long run_async(long count) {
  chain.left = count;
  chain.ok = 0;
  chain.over = 0;
  next_async();
  pthread_mutex_lock(&chain.lock);
  while (!chain.over) pthread_cond_wait(&chain.done, &chain.lock);
  pthread_mutex_unlock(&chain.lock);
  return chain.ok;
}

static int usage(const char *why) {
  fprintf(stderr, "policy_cost: %s\nusage: policy_cost --target URL --calls N [--warmup-calls W] "
                  "[--payload BYTES] [--method PATH] [--worker-threads K] [--timeout-ms MS|none]\n"
                  "       [--api blocking|async]\n",
          why);
  return 2;
}

int main(int argc, char **argv) {
  long calls = -1, warmup_calls = 100;
  const char *worker_threads = NULL;
  int async_api = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--check") == 0) return 0;
    if (i + 1 >= argc) return usage("an argument needs a value");
    const char *value = argv[++i];
    if (strcmp(arg, "--target") == 0) target = value;
    else if (strcmp(arg, "--calls") == 0) calls = atol(value);
    else if (strcmp(arg, "--warmup-calls") == 0) warmup_calls = atol(value);
    else if (strcmp(arg, "--payload") == 0) request_len = (size_t)atol(value);
    else if (strcmp(arg, "--method") == 0) method = value;
    else if (strcmp(arg, "--worker-threads") == 0) worker_threads = value;
    else if (strcmp(arg, "--api") == 0 && strcmp(value, "async") == 0) async_api = 1;
    else if (strcmp(arg, "--api") == 0 && strcmp(value, "blocking") == 0) async_api = 0;
    else if (strcmp(arg, "--timeout-ms") == 0)
      timeout_ms = strcmp(value, "none") == 0 ? GRPCPOOL_NO_TIMEOUT : (uint32_t)atol(value);
    else return usage("unknown argument");
  }
  if (!target) return usage("--target is required");
  if (calls < 0) return usage("--calls is required");
  if (warmup_calls < 0) warmup_calls = 0;

  request = malloc(request_len ? request_len : 1);
  if (!request) return 1;
  for (size_t i = 0; i < request_len; i++) request[i] = (uint8_t)(i * 31u + 7u);

  grpcpool_config_t *config = grpcpool_config_new();
  if (worker_threads &&
      grpcpool_config_set(config, "worker_threads", worker_threads) != GRPCPOOL_OK) {
    fprintf(stderr, "policy_cost: worker_threads: %s\n", grpcpool_last_error());
    return 1;
  }
  const char *service_config = getenv("GRPCPOOL_SERVICE_CONFIG");
  if (service_config) {
    grpcpool_result rc = grpcpool_config_set(config, "service_config", service_config);
    if (rc != GRPCPOOL_OK) {
      fprintf(stderr, "policy_cost: service_config: %s: %s\n", grpcpool_result_name(rc),
              grpcpool_last_error());
      grpcpool_config_free(config);
      return 1;
    }
  }
  grpcpool_pool_t *owned = NULL;
  grpcpool_result rc = grpcpool_pool_new(config, &owned);
  grpcpool_config_free(config);
  if (rc != GRPCPOOL_OK) {
    fprintf(stderr, "policy_cost: grpcpool_pool_new: %s: %s\n", grpcpool_result_name(rc),
            grpcpool_last_error());
    return 1;
  }
  pool = owned;

  if (async_api ? run_async(warmup_calls) != warmup_calls : 0) {
    fprintf(stderr, "policy_cost: an async warm-up call failed\n");
    grpcpool_pool_free(owned);
    return 1;
  }
  for (long i = 0; !async_api && i < warmup_calls; i++) {
    if (!call()) {
      fprintf(stderr, "policy_cost: warm-up call %ld failed\n", i + 1);
      grpcpool_pool_free(owned);
      return 1;
    }
  }
  long ok = 0;
  if (async_api) ok = run_async(calls);
  for (long i = 0; !async_api && i < calls; i++) {
    if (!call()) break;
    ok++;
  }
  printf("{\"calls\":%ld,\"ok\":%ld,\"warmup_calls\":%ld,\"payload\":%zu,\"service_config\":%s}\n",
         calls, ok, warmup_calls, request_len, service_config ? "true" : "false");
  fflush(stdout);
  grpcpool_pool_free(owned);
  free(request);
  return ok == calls ? 0 : 1;
}
