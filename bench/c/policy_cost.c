/*
 * What the policy layer (the service config: method configs, retries, hedging, balancing) costs
 * on the hot path, measured by bench/policy_cost.sh under valgrind's callgrind as instructions per
 * call against the library from before it: sequential blocking grpcpool_unary calls (one in
 * flight) through include/grpcpool.h, nothing timed.
 *
 *   policy_cost --target URL --calls N [--warmup-calls W] [--payload BYTES] [--method PATH]
 *               [--worker-threads K] [--timeout-ms MS|none]
 *   policy_cost --check
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

/* One blocking call; 1 when it came back OK with the request echoed. */
static int call(void) {
  grpcpool_response_t *response = NULL;
  grpcpool_result rc = grpcpool_unary(pool, target, method, request, request_len, NULL, 0,
                                      timeout_ms, &response);
  int ok = rc == GRPCPOOL_OK && grpcpool_response_code(response) == 0;
  if (ok) {
    grpcpool_bytes_t body = grpcpool_response_body(response);
    ok = body.len == request_len &&
         (request_len == 0 || memcmp(body.data, request, request_len) == 0);
    if (!ok) fprintf(stderr, "policy_cost: the response is not the request echoed\n");
  } else if (rc != GRPCPOOL_OK) {
    fprintf(stderr, "policy_cost: grpcpool_unary: %s: %s\n", grpcpool_result_name(rc),
            grpcpool_last_error());
  } else {
    fprintf(stderr, "policy_cost: status %d: %s\n", grpcpool_response_code(response),
            grpcpool_response_message(response));
  }
  grpcpool_response_free(response);
  return ok;
}

static int usage(const char *why) {
  fprintf(stderr, "policy_cost: %s\nusage: policy_cost --target URL --calls N [--warmup-calls W] "
                  "[--payload BYTES] [--method PATH] [--worker-threads K] [--timeout-ms MS|none]\n",
          why);
  return 2;
}

int main(int argc, char **argv) {
  long calls = -1, warmup_calls = 100;
  const char *worker_threads = NULL;
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

  for (long i = 0; i < warmup_calls; i++) {
    if (!call()) {
      fprintf(stderr, "policy_cost: warm-up call %ld failed\n", i + 1);
      grpcpool_pool_free(owned);
      return 1;
    }
  }
  long ok = 0;
  for (long i = 0; i < calls; i++) {
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
