#define _POSIX_C_SOURCE 200809L
/* The C face of the parity suite's discovery scenarios (tests/parity/discovery.sh): calls to
 * xds:///svc through the control plane the runner started, then static:///load under load while
 * grpcpool_pool_set_endpoints adds, removes and replaces its endpoints. Prints one JSON line per
 * scenario, as parity.c does. Usage: discovery <A> <B> <C> <D>, each backend's ip:port.
 * The rules are the same in every face; see tests/parity/expected-discovery.txt. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpcpool.h"

#define ECHO "/grpcpool.test.Echo/Unary"
/* The xds_weighted_split scenario's calls. */
#define SPLIT_CALLS 800
/* The load: workers, each making at most MAX_CALLS calls, all within LOAD_LIMIT_MS. */
#define WORKERS 4
#define MAX_CALLS 4000
#define LOAD_LIMIT_MS 30000
/* After an update, the new set must be all that answers within this long. */
#define SETTLE_MS 2000
/* The new set has settled once this many calls in a row came from it. */
#define SETTLED_RUN 20
/* Each set then takes the load this long before the next update, so that calls still on a
 * connection being drained, and the ones after, are in the count. */
#define HOLD_MS 300
#define ROUND_ROBIN "{\"loadBalancingConfig\": [{\"round_robin\": {}}]}"

static const char *backends[4];

static void report(const char *scenario, const char *class_name, const char *detail) {
  printf("{\"scenario\": \"%s\", \"class\": \"%s\", \"via\": \"c\", \"detail\": \"", scenario, class_name);
  for (const char *p = detail; *p; p++) {
    if (*p == '"' || *p == '\\') putchar('\\');
    if ((unsigned char)*p >= 0x20) putchar(*p);
  }
  printf("\"}\n");
  fflush(stdout);
}

static long now_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec * 1000L + now.tv_nsec / 1000000L;
}

static void sleep_ms(int ms) {
  struct timespec pause = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&pause, NULL);
}

/* Which backend answered a call: 0-3, 4 for an answer naming none of them, -1 for a failure. */
static int call_once(grpcpool_pool_t *pool, const char *target, grpcpool_call_options_t *options) {
  grpcpool_response_t *response = NULL;
  if (grpcpool_unary_with(pool, target, ECHO, (const uint8_t *)"x", 1, options, &response) != GRPCPOOL_OK) return -1;
  int served = -1;
  if (grpcpool_response_code(response) == 0) {
    served = 4;
    for (size_t i = 0; i < grpcpool_response_header_count(response); i++) {
      grpcpool_metadata_entry_t entry;
      if (grpcpool_response_header(response, i, &entry) != GRPCPOOL_OK || strcmp(entry.key, "x-echo-served-by") != 0)
        continue;
      for (int b = 0; b < 4; b++)
        if (strlen(backends[b]) == entry.value_len && memcmp(entry.value, backends[b], entry.value_len) == 0) served = b;
    }
  }
  grpcpool_response_free(response);
  return served;
}

static grpcpool_call_options_t *report_calls(void) {
  grpcpool_call_options_t *options = grpcpool_call_options_new();
  grpcpool_call_options_set_timeout_ms(options, 10000);
  grpcpool_call_options_add_metadata(options, "x-report-calls", (const uint8_t *)"1", 1);
  return options;
}

/* The pool's xDS stats after the calls: connected, a resource of each kind held, no NACK. */
static void xds_stats(grpcpool_pool_t *pool) {
  static const char *kinds[] = {"listener", "route_config", "cluster", "endpoints"};
  char *json = NULL;
  if (grpcpool_pool_stats_json(pool, &json) != GRPCPOOL_OK) {
    report("xds_stats", "stats_failed", grpcpool_last_error());
    return;
  }
  const char *xds = strstr(json, "\"xds\":{");
  const char *class_name = "connected_all_kinds";
  char detail[96] = "";
  if (xds == NULL) class_name = "no_xds_stats";
  else if (strstr(xds, "\"connected\":true") == NULL) class_name = "not_connected";
  else if (strstr(xds, "\"nacks\":0") == NULL) class_name = "nacked";
  for (int k = 0; xds != NULL && k < 4; k++) {
    char wanted[48];
    snprintf(wanted, sizeof wanted, "\"kind\":\"%s\"", kinds[k]);
    if (strstr(xds, wanted) == NULL) {
      class_name = "missing_kind";
      snprintf(detail, sizeof detail, "no %s", kinds[k]);
    }
  }
  report("xds_stats", class_name, detail);
  grpcpool_string_free(json);
}

/* 800 calls to xds:///svc, counted by who answered; discovery.sh judges the counts. */
static void weighted_split(void) {
  grpcpool_config_t *config = grpcpool_config_new();
  grpcpool_pool_t *pool = NULL;
  if (grpcpool_pool_new(config, &pool) != GRPCPOOL_OK) {
    report("xds_weighted_split", "pool_failed", grpcpool_last_error());
    grpcpool_config_free(config);
    return;
  }
  grpcpool_config_free(config);
  grpcpool_call_options_t *options = report_calls();
  int served[5] = {0}, failed = 0;
  for (int i = 0; i < SPLIT_CALLS; i++) {
    int by = call_once(pool, "xds:///svc", options);
    if (by < 0) failed++;
    else served[by]++;
  }
  grpcpool_call_options_free(options);
  xds_stats(pool);
  grpcpool_pool_free(pool);
  char detail[160];
  snprintf(detail, sizeof detail, "A=%d B=%d C=%d D=%d other=%d failed=%d", served[0], served[1], served[2],
           served[3], served[4], failed);
  report("xds_weighted_split", "counted", detail);
}

/* The load's record: who answered each call, in the order they ended. */
static struct {
  pthread_mutex_t lock;
  int served[WORKERS * MAX_CALLS];
  size_t count;
  atomic_bool stop;
  long until_ms;
  grpcpool_pool_t *pool;
} load = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *worker(void *unused) {
  (void)unused;
  grpcpool_call_options_t *options = report_calls();
  for (int i = 0; i < MAX_CALLS && !atomic_load(&load.stop) && now_ms() < load.until_ms; i++) {
    int by = call_once(load.pool, "static:///load", options);
    pthread_mutex_lock(&load.lock);
    load.served[load.count++] = by;
    pthread_mutex_unlock(&load.lock);
  }
  grpcpool_call_options_free(options);
  return NULL;
}

static size_t recorded(void) {
  pthread_mutex_lock(&load.lock);
  size_t count = load.count;
  pthread_mutex_unlock(&load.lock);
  return count;
}

/* Whether the calls recorded since `from` reached every member of `set` and the last
 * SETTLED_RUN of them all came from it. */
static int settled(size_t from, const int *set, int members) {
  pthread_mutex_lock(&load.lock);
  size_t count = load.count;
  int seen[5] = {0}, run = 0;
  for (size_t i = from; i < count; i++) {
    int by = load.served[i], in_set = 0;
    for (int m = 0; m < members; m++) in_set |= by == set[m];
    if (by >= 0) seen[by] = 1;
    run = in_set ? run + 1 : 0;
  }
  pthread_mutex_unlock(&load.lock);
  int all = 1;
  for (int m = 0; m < members; m++) all &= seen[set[m]];
  return all && run >= SETTLED_RUN;
}

static void pushed_under_load(void) {
  static const struct {
    const char *scenario;
    int set[2];
    int members;
  } steps[] = {{"pushed_add", {0, 1}, 2}, {"pushed_remove", {1, 0}, 1}, {"pushed_replace", {2, 3}, 2}};
  /* round_robin: connections to every address, so every member of a set takes calls. */
  grpcpool_config_t *config = grpcpool_config_new();
  if (grpcpool_config_set_service_config(config, ROUND_ROBIN) == GRPCPOOL_OK) grpcpool_pool_new(config, &load.pool);
  grpcpool_config_free(config);
  const char *first[] = {backends[0]};
  if (load.pool == NULL || grpcpool_pool_set_endpoints(load.pool, "load", first, 1) != GRPCPOOL_OK) {
    for (int s = 0; s < 3; s++) report(steps[s].scenario, "set_endpoints_failed", grpcpool_last_error());
    grpcpool_pool_free(load.pool);
    return;
  }
  atomic_init(&load.stop, false);
  load.until_ms = now_ms() + LOAD_LIMIT_MS;
  pthread_t threads[WORKERS];
  for (int w = 0; w < WORKERS; w++) pthread_create(&threads[w], NULL, worker, NULL);
  for (int i = 0; i < 500 && recorded() < 50; i++) sleep_ms(10);
  size_t marks[4];
  long took[3];
  for (int s = 0; s < 3; s++) {
    const char *endpoints[2];
    for (int m = 0; m < steps[s].members; m++) endpoints[m] = backends[steps[s].set[m]];
    marks[s] = recorded();
    long started = now_ms();
    grpcpool_pool_set_endpoints(load.pool, "load", endpoints, (size_t)steps[s].members);
    took[s] = -1;
    while (now_ms() - started <= SETTLE_MS) {
      if (settled(marks[s], steps[s].set, steps[s].members)) {
        took[s] = now_ms() - started;
        break;
      }
      sleep_ms(5);
    }
    sleep_ms(HOLD_MS);
  }
  atomic_store(&load.stop, true);
  for (int w = 0; w < WORKERS; w++) pthread_join(threads[w], NULL);
  marks[3] = load.count;
  for (int s = 0; s < 3; s++) {
    int failed = 0;
    for (size_t i = marks[s]; i < marks[s + 1]; i++) failed += load.served[i] < 0;
    char detail[160];
    snprintf(detail, sizeof detail, "%zu calls, %d failed, new set alone after %ld ms", marks[s + 1] - marks[s],
             failed, took[s]);
    report(steps[s].scenario, failed > 0 ? "failed_calls" : took[s] < 0 ? "not_within_2s" : "ok", detail);
  }
  grpcpool_pool_free(load.pool);
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s <A> <B> <C> <D>\n", argv[0]);
    return 2;
  }
  for (int b = 0; b < 4; b++) backends[b] = argv[b + 1];
  weighted_split();
  pushed_under_load();
  return 0;
}
