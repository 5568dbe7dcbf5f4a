/* Settings by name and per-call options from C: every setting of core's table (from
 * grpcpool_settings_json) set by name at its default, unknown names and bad values refused,
 * the per-call options (timeout 0, wait-for-ready, gzip, metadata) through
 * grpcpool_call_options_t on the _with calls, by setter and by name, and a service config's
 * retry policy and its refusals. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpcpool.h"
#include "check.h"

#define ECHO "/grpcpool.test.Echo/Unary"
#define BIDI "/grpcpool.test.Echo/Bidi"
#define DOWN "http://127.0.0.1:1"

/* Copies the JSON string value that starts at `from` (just after its opening quote) into
 * `out`; returns the position after the closing quote, or NULL. The table's strings hold no
 * escapes other than \" and \\ (checked by the caller's count). */
static const char *json_string(const char *from, char *out, size_t size) {
  size_t n = 0;
  for (const char *p = from; *p; p++) {
    if (*p == '\\' && p[1]) p++;
    else if (*p == '"') {
      out[n < size ? n : size - 1] = '\0';
      return p + 1;
    }
    if (n + 1 < size) out[n++] = *p;
  }
  return NULL;
}

/* The value of `"key":"..."` in the object starting at `object`, before `end`; 0 if absent or null. */
static int field(const char *object, const char *end, const char *key, char *out, size_t size) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
  const char *at = strstr(object, pattern);
  if (at == NULL || at >= end) return 0;
  return json_string(at + strlen(pattern), out, size) != NULL;
}

static void check_settings_by_name(const char *target) {
  check_section("every setting of the table set by name at its default; unknown names and bad values refused");
  char *json = NULL;
  CHECK_RC(grpcpool_settings_json(&json), GRPCPOOL_OK);
  CHECK(json != NULL && json[0] == '[', "settings JSON: %s", json ? json : "(null)");
  if (json == NULL) return;
  grpcpool_config_t *config = grpcpool_config_new();
  int count = 0, with_default = 0;
  for (const char *object = strchr(json, '{'); object != NULL; object = strchr(object + 1, '{')) {
    const char *end = strchr(object, '}');
    if (end == NULL) break;
    char name[128], value[256];
    if (!field(object, end, "name", name, sizeof name)) continue;
    count++;
    if (!field(object, end, "default", value, sizeof value)) continue; /* unset by default */
    with_default++;
    CHECK_RC(grpcpool_config_set(config, name, value), GRPCPOOL_OK);
  }
  grpcpool_string_free(json);
  CHECK(count >= 25, "%d settings described", count);
  CHECK(with_default >= 21, "%d settings with a default", with_default);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_response_t *response = NULL;
  /* The pool's first call starts its runtime and connects: generous under valgrind. */
  CHECK_RC(grpcpool_unary(pool, target, ECHO, (const uint8_t *)"x", 1, NULL, 0, 30000, &response), GRPCPOOL_OK);
  CHECK(response != NULL && grpcpool_response_code(response) == 0, "a call on a pool set by name: code %d %s",
        response ? grpcpool_response_code(response) : -1, grpcpool_last_error());
  grpcpool_response_free(response);
  grpcpool_pool_free(pool);

  CHECK_RC(grpcpool_config_set(config, "no_such_setting", "1"), GRPCPOOL_INVALID_CONFIG);
  CHECK(strstr(grpcpool_last_error(), "no_such_setting") != NULL, "last error: %s", grpcpool_last_error());
  CHECK_RC(grpcpool_config_set(config, "connect_timeout", "20"), GRPCPOOL_INVALID_CONFIG); /* no unit */
  CHECK_RC(grpcpool_config_set(config, "tcp_nodelay", "maybe"), GRPCPOOL_INVALID_CONFIG);
  CHECK_RC(grpcpool_config_set(config, "keepalive_time", "off"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "backoff_multiplier", "2.5"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "tls_server_name", "example.test"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, NULL, "1"), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_config_set(NULL, "tcp_nodelay", "true"), GRPCPOOL_NULL_ARGUMENT);
  /* A value in range for its type but not for the pool is refused when the pool is made. */
  CHECK_RC(grpcpool_config_set(config, "worker_threads", "100000"), GRPCPOOL_OK);
  pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_INVALID_CONFIG);
  CHECK(pool == NULL && strstr(grpcpool_last_error(), "worker_threads") != NULL, "last error: %s",
        grpcpool_last_error());
  grpcpool_config_free(config);
}

static void check_call_options(const char *target) {
  check_section("per-call options: timeout 0, wait-for-ready, gzip, metadata, by setter and by name");
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(NULL, &pool), GRPCPOOL_OK);
  grpcpool_response_t *response = NULL;

  /* NULL options: the defaults. */
  CHECK_RC(grpcpool_unary_with(pool, target, ECHO, (const uint8_t *)"d", 1, NULL, &response), GRPCPOOL_OK);
  CHECK(response != NULL && grpcpool_response_code(response) == 0, "defaults");
  grpcpool_response_free(response);

  grpcpool_call_options_t *options = grpcpool_call_options_new();
  CHECK_RC(grpcpool_call_options_set_timeout_ms(options, 0), GRPCPOOL_OK);
  CHECK_RC(grpcpool_unary_with(pool, target, ECHO, (const uint8_t *)"z", 1, options, &response), GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 4, "timeout 0: code %d", grpcpool_response_code(response));
  grpcpool_response_free(response);
  grpcpool_stream_t stream = 0;
  CHECK_RC(grpcpool_open_stream_with(pool, target, BIDI, options, &stream), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_send(stream, (const uint8_t *)"s", 1), GRPCPOOL_STREAM_CLOSED);
  response = NULL;
  CHECK_RC(grpcpool_stream_finish(stream, &response), GRPCPOOL_OK);
  CHECK(response != NULL && grpcpool_response_code(response) == 4, "stream with timeout 0: code %d",
        response ? grpcpool_response_code(response) : -1);
  grpcpool_response_free(response);
  grpcpool_stream_free(stream);

  /* Fail fast against a target that is down; wait for it with wait-for-ready. */
  CHECK_RC(grpcpool_call_options_set_timeout_ms(options, 300), GRPCPOOL_OK);
  CHECK_RC(grpcpool_unary_with(pool, DOWN, ECHO, NULL, 0, options, &response), GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 14, "fail fast: code %d", grpcpool_response_code(response));
  grpcpool_response_free(response);
  CHECK_RC(grpcpool_call_options_set_wait_for_ready(options, true), GRPCPOOL_OK);
  CHECK_RC(grpcpool_unary_with(pool, DOWN, ECHO, NULL, 0, options, &response), GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 4, "wait for ready: code %d", grpcpool_response_code(response));
  grpcpool_response_free(response);

  /* gzip reaches the server; metadata is sent. */
  grpcpool_call_options_t *gzip = grpcpool_call_options_new();
  CHECK_RC(grpcpool_call_options_set_compression(gzip, "gzip"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_call_options_add_metadata(gzip, "x-echo-who", (const uint8_t *)"c", 1), GRPCPOOL_OK);
  CHECK_RC(grpcpool_call_options_set_timeout_ms(gzip, 5000), GRPCPOOL_OK);
  CHECK_RC(grpcpool_unary_with(pool, target, ECHO, (const uint8_t *)"packed", 6, gzip, &response), GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 0, "gzip call: code %d", grpcpool_response_code(response));
  size_t headers = grpcpool_response_header_count(response);
  int saw_gzip = 0, saw_who = 0;
  for (size_t i = 0; i < headers; i++) {
    grpcpool_metadata_entry_t entry;
    if (grpcpool_response_header(response, i, &entry) != GRPCPOOL_OK) continue;
    saw_gzip |= strcmp(entry.key, "x-received-grpc-encoding") == 0 && entry.value_len == 4 &&
                memcmp(entry.value, "gzip", 4) == 0;
    saw_who |= strcmp(entry.key, "x-echo-who") == 0 && entry.value_len == 1;
  }
  CHECK(saw_gzip, "the server did not receive gzip");
  CHECK(saw_who, "the metadata did not arrive");
  grpcpool_response_free(response);
  CHECK_RC(grpcpool_call_options_set_compression(gzip, "brotli"), GRPCPOOL_INVALID_ARGUMENT);
  CHECK_RC(grpcpool_call_options_add_metadata(gzip, "Bad Key", (const uint8_t *)"v", 1), GRPCPOOL_OK);
  CHECK_RC(grpcpool_unary_with(pool, target, ECHO, NULL, 0, gzip, &response), GRPCPOOL_INVALID_METADATA);
  grpcpool_call_options_free(gzip);

  /* The same options by name. */
  grpcpool_call_options_t *named = grpcpool_call_options_new();
  CHECK_RC(grpcpool_call_options_set(named, "timeout", "300ms"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_call_options_set(named, "wait_for_ready", "true"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_call_options_set(named, "compression", "identity"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_call_options_set(named, "timeout", "soon"), GRPCPOOL_INVALID_CONFIG);
  CHECK_RC(grpcpool_call_options_set(named, "retries", "3"), GRPCPOOL_INVALID_CONFIG);
  CHECK_RC(grpcpool_unary_with(pool, DOWN, ECHO, NULL, 0, named, &response), GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 4, "by name, wait for ready: code %d", grpcpool_response_code(response));
  grpcpool_response_free(response);
  grpcpool_call_options_free(named);
  grpcpool_call_options_free(options);
  grpcpool_call_options_free(NULL);
  CHECK_RC(grpcpool_call_options_set_timeout_ms(NULL, 1), GRPCPOOL_NULL_ARGUMENT);
  grpcpool_pool_free(pool);
}

static void check_service_config(const char *target) {
  check_section("service config: a retry policy retries the echo server's first two failures; bad configs name the field");
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set_service_config(config, "{\"methodConfig\": [{\"name\": [{}], \"timeout\": 5}]}"),
           GRPCPOOL_INVALID_CONFIG);
  const char *message = grpcpool_last_error();
  CHECK(message != NULL && strstr(message, "methodConfig[0].timeout") != NULL, "field named: %s",
        message ? message : "(null)");
  CHECK_RC(grpcpool_config_set_service_config(config, "{"), GRPCPOOL_INVALID_CONFIG);
  CHECK_RC(grpcpool_config_set_service_config(NULL, "{}"), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_config_set_service_config(
               config,
               "{\"methodConfig\": [{\"name\": [{\"service\": \"grpcpool.test.Echo\"}], \"retryPolicy\": "
               "{\"maxAttempts\": 4, \"initialBackoff\": \"0.01s\", \"maxBackoff\": \"0.05s\", "
               "\"backoffMultiplier\": 2, \"retryableStatusCodes\": [\"UNAVAILABLE\"]}}]}"),
           GRPCPOOL_OK);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_config_free(config);
  grpcpool_call_options_t *options = grpcpool_call_options_new();
  CHECK_RC(grpcpool_call_options_set_timeout_ms(options, 5000), GRPCPOOL_OK);
  CHECK_RC(grpcpool_call_options_add_metadata(options, "x-status-code", (const uint8_t *)"14", 2), GRPCPOOL_OK);
  CHECK_RC(grpcpool_call_options_add_metadata(options, "x-fail-attempts", (const uint8_t *)"2", 1), GRPCPOOL_OK);
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_unary_with(pool, target, ECHO, (const uint8_t *)"r", 1, options, &response), GRPCPOOL_OK);
  CHECK(response != NULL && grpcpool_response_code(response) == 0, "retried to success: code %d",
        response ? grpcpool_response_code(response) : -1);
  int previous = -1;
  size_t headers = response ? grpcpool_response_header_count(response) : 0;
  for (size_t i = 0; i < headers; i++) {
    grpcpool_metadata_entry_t entry;
    if (grpcpool_response_header(response, i, &entry) == GRPCPOOL_OK &&
        strcmp(entry.key, "x-received-previous-attempts") == 0 && entry.value_len == 1)
      previous = entry.value[0] - '0';
  }
  CHECK(previous == 2, "the third attempt said two came before: %d", previous);
  grpcpool_response_free(response);
  char *stats = NULL;
  CHECK_RC(grpcpool_pool_stats_json(pool, &stats), GRPCPOOL_OK);
  CHECK(stats != NULL && strstr(stats, "\"retries\":2") != NULL, "stats count the retries: %s", stats ? stats : "(null)");
  grpcpool_string_free(stats);
  char *metrics = NULL;
  CHECK_RC(grpcpool_pool_metrics_text(pool, &metrics), GRPCPOOL_OK);
  char expected[512];
  snprintf(expected, sizeof expected,
           "grpc_client_attempt_started_total{grpc_method=\"grpcpool.test.Echo/Unary\",grpc_target=\"%s\"} 3\n", target);
  CHECK(metrics != NULL && strstr(metrics, expected) != NULL, "three attempts in the metrics text");
  snprintf(expected, sizeof expected,
           "grpc_client_call_duration_seconds_count{grpc_method=\"grpcpool.test.Echo/Unary\",grpc_target=\"%s\","
           "grpc_status=\"OK\"} 1\n", target);
  CHECK(metrics != NULL && strstr(metrics, expected) != NULL, "one OK call in the metrics text");
  grpcpool_string_free(metrics);
  CHECK_RC(grpcpool_pool_metrics_text(pool, NULL), GRPCPOOL_NULL_ARGUMENT);
  grpcpool_call_options_free(options);
  grpcpool_pool_free(pool);
}

/* Acquires and releases `count` leases on `target`, counting the leases per address (up to 3). */
static void count_addresses(grpcpool_pool_t *pool, const char *target, int count, char seen[3][64], int hits[3]) {
  for (int i = 0; i < count; i++) {
    grpcpool_lease_t lease = 0;
    if (grpcpool_acquire(pool, target, 5000, &lease) != GRPCPOOL_OK) continue;
    char *address = NULL;
    if (grpcpool_lease_address(lease, &address) != GRPCPOOL_OK) address = NULL; /* counted below */
    for (int slot = 0; slot < 3 && address != NULL; slot++) {
      if (seen[slot][0] == '\0') snprintf(seen[slot], 64, "%s", address);
      if (strcmp(seen[slot], address) == 0) {
        hits[slot]++;
        break;
      }
    }
    grpcpool_string_free(address);
    grpcpool_release(lease);
  }
}

static void check_balancing(const char *three) {
  check_section("balancing: round_robin rotates over three addresses, pick_first keeps to the first");
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set_service_config(config, "{\"loadBalancingConfig\": [{\"round_robin\": {}}]}"), GRPCPOOL_OK);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  char seen[3][64] = {{0}};
  int hits[3] = {0, 0, 0};
  /* Until a connection to every address is up: the pool dials them one after another
   * (bounded: 100 rounds of 30 leases, 50 ms apart). */
  for (int round = 0; round < 100 && (hits[0] == 0 || hits[1] == 0 || hits[2] == 0); round++) {
    count_addresses(pool, three, 30, seen, hits);
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  memset(seen, 0, sizeof seen);
  memset(hits, 0, sizeof hits);
  count_addresses(pool, three, 300, seen, hits);
  CHECK(hits[0] + hits[1] + hits[2] == 300, "every lease said its address");
  CHECK(hits[0] == 100 && hits[1] == 100 && hits[2] == 100, "round_robin spread %d/%d/%d", hits[0], hits[1], hits[2]);
  grpcpool_pool_free(pool);

  char *address = NULL;
  CHECK_RC(grpcpool_lease_address(0, &address), GRPCPOOL_INVALID_HANDLE);
  CHECK_RC(grpcpool_lease_address(0, NULL), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_config_set_service_config(config, "{\"loadBalancingConfig\": [{\"pick_first\": {}}]}"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  memset(seen, 0, sizeof seen);
  memset(hits, 0, sizeof hits);
  count_addresses(pool, three, 300, seen, hits);
  CHECK(hits[0] == 300 && strncmp(seen[0], "127.0.0.1:", 10) == 0, "pick_first: %d to %s", hits[0], seen[0]);
  grpcpool_pool_free(pool);
  grpcpool_config_free(config);
}

static void check_per_target(const char *target) {
  check_section("settings of single targets: a target's own retry policy; pool-wide settings refused");
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set_for_target(config, target, "worker_threads", "2"), GRPCPOOL_INVALID_CONFIG);
  CHECK_RC(grpcpool_config_set_for_target(config, target, "keepalive_time", "soon"), GRPCPOOL_INVALID_CONFIG);
  CHECK_RC(grpcpool_config_set_for_target(NULL, target, "keepalive_time", "1m"), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_config_set_for_target(
               config, target, "service_config",
               "{\"methodConfig\": [{\"name\": [{}], \"retryPolicy\": {\"maxAttempts\": 2, "
               "\"initialBackoff\": \"0.01s\", \"maxBackoff\": \"0.01s\", \"backoffMultiplier\": 1, "
               "\"retryableStatusCodes\": [\"UNAVAILABLE\"]}}]}"),
           GRPCPOOL_OK);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_call_options_t *options = grpcpool_call_options_new();
  CHECK_RC(grpcpool_call_options_set_timeout_ms(options, 5000), GRPCPOOL_OK);
  CHECK_RC(grpcpool_call_options_add_metadata(options, "x-status-code", (const uint8_t *)"14", 2), GRPCPOOL_OK);
  CHECK_RC(grpcpool_call_options_add_metadata(options, "x-fail-attempts", (const uint8_t *)"1", 1), GRPCPOOL_OK);
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_unary_with(pool, target, ECHO, (const uint8_t *)"t", 1, options, &response), GRPCPOOL_OK);
  CHECK(response != NULL && grpcpool_response_code(response) == 0, "the target's own retry policy: code %d",
        response ? grpcpool_response_code(response) : -1);
  grpcpool_response_free(response);
  /* The same server by another name keeps the pool's settings: no retry. */
  char other[128];
  const char *port = strrchr(target, ':');
  snprintf(other, sizeof other, "http://localhost%s", port ? port : ":1");
  CHECK_RC(grpcpool_unary_with(pool, other, ECHO, (const uint8_t *)"t", 1, options, &response), GRPCPOOL_OK);
  CHECK(response != NULL && grpcpool_response_code(response) == 14, "elsewhere no retry: code %d",
        response ? grpcpool_response_code(response) : -1);
  grpcpool_response_free(response);
  grpcpool_call_options_free(options);
  grpcpool_pool_free(pool);
  CHECK_RC(grpcpool_config_set_for_target(config, target, "max_connections_per_target", "0"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_INVALID_CONFIG);
  const char *message = grpcpool_last_error();
  CHECK(message != NULL && strstr(message, "max_connections_per_target") != NULL && strstr(message, target) != NULL,
        "the target is named: %s", message ? message : "(null)");
  grpcpool_config_free(config);
}

int main(void) {
  const char *target = check_env("GRPCPOOL_TEST_TARGET");
  check_settings_by_name(target);
  check_call_options(target);
  check_service_config(target);
  check_per_target(target);
  check_balancing(check_env("GRPCPOOL_TEST_THREE_TARGET"));
  return check_summary("test_options");
}
