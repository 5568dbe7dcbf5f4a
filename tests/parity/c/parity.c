#define _POSIX_C_SOURCE 200809L
/* The C face of the parity suite: runs each scenario against the project's echo server and
 * prints one JSON line per scenario, {"scenario", "class", "via", "detail"}, for
 * tests/parity/run.sh to compare with the other faces. Usage: parity <target> <down_target>. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "grpcpool.h"

#define ECHO "/grpcpool.test.Echo/Unary"
#define BIDI "/grpcpool.test.Echo/Bidi"

static void report(const char *scenario, const char *class_name, const char *via, const char *detail) {
  printf("{\"scenario\": \"%s\", \"class\": \"%s\", \"via\": \"%s\", \"detail\": \"", scenario, class_name, via);
  for (const char *p = detail; *p; p++) {
    if (*p == '"' || *p == '\\') putchar('\\');
    if ((unsigned char)*p >= 0x20) putchar(*p);
  }
  printf("\"}\n");
  fflush(stdout);
}

/* The class of a gRPC status code. */
static const char *status_class(int code) {
  switch (code) {
    case 0: return "ok";
    case 4: return "deadline_exceeded";
    case 8: return "resource_exhausted";
    case 3: return "invalid_argument";
    case 14: return "unavailable";
    case 1: return "cancelled";
    default: return "other";
  }
}

/* The class of a library failure. */
static const char *error_class(grpcpool_result rc) {
  switch (rc) {
    case GRPCPOOL_MESSAGE_TOO_LARGE: return "resource_exhausted";
    case GRPCPOOL_INVALID_METADATA:
    case GRPCPOOL_INVALID_ARGUMENT:
    case GRPCPOOL_INVALID_METHOD:
    case GRPCPOOL_INVALID_TARGET:
    case GRPCPOOL_INVALID_CONFIG: return "invalid_argument";
    case GRPCPOOL_POOL_CLOSED: return "pool_closed";
    case GRPCPOOL_BUSY: return "busy";
    case GRPCPOOL_STREAM_CLOSED: return "stream_closed";
    case GRPCPOOL_UNAVAILABLE: return "unavailable";
    case GRPCPOOL_ACQUIRE_TIMEOUT: return "deadline_exceeded";
    default: return "other";
  }
}

static grpcpool_pool_t *pool_with(const char *name, const char *value) {
  grpcpool_config_t *config = grpcpool_config_new();
  if (name != NULL && grpcpool_config_set(config, name, value) != GRPCPOOL_OK) {
    fprintf(stderr, "config_set %s: %s\n", name, grpcpool_last_error());
  }
  grpcpool_pool_t *pool = NULL;
  if (grpcpool_pool_new(config, &pool) != GRPCPOOL_OK) fprintf(stderr, "pool_new: %s\n", grpcpool_last_error());
  grpcpool_config_free(config);
  return pool;
}

/* One unary call with `options`; reports its class. `check_gzip` makes "ok" need the server to
 * have received gzip. */
static void unary(const char *scenario, grpcpool_pool_t *pool, const char *target, size_t size,
                  grpcpool_call_options_t *options, int check_gzip) {
  uint8_t *request = calloc(size ? size : 1, 1);
  grpcpool_response_t *response = NULL;
  grpcpool_result rc = grpcpool_unary_with(pool, target, ECHO, request, size, options, &response);
  free(request);
  if (rc != GRPCPOOL_OK) {
    report(scenario, error_class(rc), "error", grpcpool_last_error());
    return;
  }
  int code = grpcpool_response_code(response);
  const char *class_name = status_class(code);
  if (code == 0 && check_gzip) {
    int gzip = 0;
    for (size_t i = 0; i < grpcpool_response_header_count(response); i++) {
      grpcpool_metadata_entry_t entry;
      if (grpcpool_response_header(response, i, &entry) == GRPCPOOL_OK &&
          strcmp(entry.key, "x-received-grpc-encoding") == 0 && entry.value_len == 4 &&
          memcmp(entry.value, "gzip", 4) == 0)
        gzip = 1;
    }
    if (!gzip) class_name = "wrong_encoding";
  }
  char detail[256];
  snprintf(detail, sizeof detail, "%.200s", grpcpool_response_message(response));
  report(scenario, class_name, code == 0 ? "ok" : "status", detail);
  grpcpool_response_free(response);
}

static grpcpool_call_options_t *timeout_options(uint32_t ms) {
  grpcpool_call_options_t *options = grpcpool_call_options_new();
  grpcpool_call_options_set_timeout_ms(options, ms);
  return options;
}

typedef struct {
  grpcpool_stream_t stream;
  atomic_int sent;
  grpcpool_result last;
} sender;

static void *send_until_blocked(void *p) {
  sender *s = p;
  static uint8_t chunk[32 * 1024];
  for (int i = 0; i < 400; i++) {
    s->last = grpcpool_stream_send(s->stream, chunk, sizeof chunk);
    if (s->last != GRPCPOOL_OK) break;
    atomic_fetch_add(&s->sent, 1);
  }
  return NULL;
}

static void sleep_ms(int ms) {
  struct timespec pause = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&pause, NULL);
}

/* A second send while one waits on flow control (nobody reads the echoes). */
static void concurrent_send(const char *target) {
  grpcpool_config_t *config = grpcpool_config_new();
  grpcpool_config_set(config, "initial_stream_window_size", "65535");
  grpcpool_config_set(config, "initial_connection_window_size", "65535");
  grpcpool_pool_t *pool = NULL;
  grpcpool_pool_new(config, &pool);
  grpcpool_config_free(config);
  sender s = {.stream = 0};
  atomic_init(&s.sent, 0);
  grpcpool_result rc = grpcpool_open_stream(pool, target, BIDI, NULL, 0, 20000, &s.stream);
  if (rc != GRPCPOOL_OK) {
    report("concurrent_send", "other:open", "error", grpcpool_last_error());
    grpcpool_pool_free(pool);
    return;
  }
  pthread_t thread;
  pthread_create(&thread, NULL, send_until_blocked, &s);
  int last = -1, still = 0;
  for (int i = 0; i < 200 && still < 3; i++) {
    sleep_ms(100);
    int now = atomic_load(&s.sent);
    still = now == last ? still + 1 : 0;
    last = now;
  }
  rc = grpcpool_stream_send(s.stream, (const uint8_t *)"x", 1);
  char detail[128];
  snprintf(detail, sizeof detail, "after %d sends", atomic_load(&s.sent));
  report("concurrent_send", rc == GRPCPOOL_OK ? "ok" : error_class(rc), rc == GRPCPOOL_OK ? "ok" : "error", detail);
  grpcpool_stream_cancel(s.stream);
  pthread_join(thread, NULL);
  grpcpool_stream_free(s.stream);
  grpcpool_pool_free(pool);
}

/* Every setting of the table by name at its default, then a call. */
static void settings_by_name(const char *target) {
  char *json = NULL;
  grpcpool_settings_json(&json);
  grpcpool_config_t *config = grpcpool_config_new();
  int count = 0, refused = 0;
  for (const char *at = json ? strstr(json, "\"name\":\"") : NULL; at != NULL; at = strstr(at + 1, "\"name\":\"")) {
    const char *end = strchr(at, '}');
    char name[128] = "", value[256] = "";
    sscanf(at, "\"name\":\"%127[^\"]\"", name);
    const char *def = strstr(at, "\"default\":\"");
    count++;
    if (def == NULL || def > end) continue;
    sscanf(def, "\"default\":\"%255[^\"]\"", value);
    if (grpcpool_config_set(config, name, value) != GRPCPOOL_OK) refused++;
  }
  grpcpool_string_free(json);
  grpcpool_pool_t *pool = NULL;
  grpcpool_result rc = grpcpool_pool_new(config, &pool);
  grpcpool_config_free(config);
  char detail[64];
  snprintf(detail, sizeof detail, "%d settings", count);
  if (rc != GRPCPOOL_OK || refused > 0) {
    report("settings_by_name", "other:refused", "error", grpcpool_last_error());
    return;
  }
  grpcpool_response_t *response = NULL;
  rc = grpcpool_unary(pool, target, ECHO, (const uint8_t *)"x", 1, NULL, 0, 5000, &response);
  report("settings_by_name", rc == GRPCPOOL_OK ? status_class(grpcpool_response_code(response)) : error_class(rc),
         "ok", detail);
  grpcpool_response_free(response);
  grpcpool_pool_free(pool);
}

static const char *connectivity_class(grpcpool_connectivity state) {
  switch (state) {
    case GRPCPOOL_IDLE: return "idle";
    case GRPCPOOL_CONNECTING: return "connecting";
    case GRPCPOOL_READY: return "ready";
    case GRPCPOOL_TRANSIENT_FAILURE: return "transient_failure";
    case GRPCPOOL_SHUTDOWN: return "shutdown";
  }
  return "other";
}

/* try_to_connect, then waits (bounded) for a state other than IDLE and CONNECTING; reports it. */
static void settled_connectivity(const char *scenario, grpcpool_pool_t *pool, const char *target) {
  grpcpool_connectivity state = GRPCPOOL_IDLE;
  grpcpool_result rc = grpcpool_pool_connectivity(pool, target, true, &state);
  for (int round = 0; rc == GRPCPOOL_OK && round < 20; round++) {
    if (state != GRPCPOOL_IDLE && state != GRPCPOOL_CONNECTING) break;
    rc = grpcpool_pool_wait_connectivity_change(pool, target, state, 5000, &state);
  }
  if (rc != GRPCPOOL_OK) {
    report(scenario, error_class(rc), "error", grpcpool_last_error());
    return;
  }
  report(scenario, connectivity_class(state), "state", "");
}

static void connectivity(const char *target, const char *down) {
  grpcpool_pool_t *pool = pool_with(NULL, NULL);
  grpcpool_connectivity state = GRPCPOOL_SHUTDOWN;
  grpcpool_result rc = grpcpool_pool_connectivity(pool, target, false, &state);
  report("connectivity_unused", rc == GRPCPOOL_OK ? connectivity_class(state) : error_class(rc),
         rc == GRPCPOOL_OK ? "state" : "error", "");
  settled_connectivity("connectivity_up", pool, target);
  settled_connectivity("connectivity_down", pool, down);
  grpcpool_pool_shutdown(pool, 1000, NULL);
  rc = grpcpool_pool_connectivity(pool, target, false, &state);
  report("connectivity_closed", rc == GRPCPOOL_OK ? connectivity_class(state) : error_class(rc),
         rc == GRPCPOOL_OK ? "state" : "error", "");
  grpcpool_pool_free(pool);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s <target> <down_target>\n", argv[0]);
    return 2;
  }
  const char *target = argv[1], *down = argv[2];
  grpcpool_pool_t *pool = pool_with(NULL, NULL);
  grpcpool_call_options_t *options = timeout_options(0);
  unary("timeout_zero", pool, target, 1, options, 0);
  grpcpool_call_options_free(options);

  options = timeout_options(100);
  grpcpool_call_options_add_metadata(options, "x-sleep-ms", (const uint8_t *)"500", 3);
  unary("deadline", pool, target, 1, options, 0);
  grpcpool_call_options_free(options);

  options = timeout_options(5000);
  grpcpool_call_options_add_metadata(options, "Bad Key", (const uint8_t *)"v", 1);
  unary("bad_metadata", pool, target, 1, options, 0);
  grpcpool_call_options_free(options);

  options = timeout_options(5000);
  grpcpool_call_options_set_compression(options, "gzip");
  unary("gzip", pool, target, 64, options, 1);
  grpcpool_call_options_free(options);

  options = timeout_options(1000);
  unary("fail_fast_down", pool, down, 1, options, 0);
  grpcpool_call_options_free(options);

  options = timeout_options(300);
  grpcpool_call_options_set_wait_for_ready(options, true);
  unary("wait_for_ready_down", pool, down, 1, options, 0);
  grpcpool_call_options_free(options);
  grpcpool_pool_free(pool);

  options = timeout_options(5000);
  pool = pool_with("max_send_message_size", "1024");
  unary("oversized_request", pool, target, 2000, options, 0);
  grpcpool_pool_free(pool);
  pool = pool_with("max_receive_message_size", "512");
  unary("oversized_response", pool, target, 800, options, 0);
  grpcpool_pool_free(pool);
  /* static:///name: nothing set, then the echo server's address, then one with no port. */
  pool = pool_with(NULL, NULL);
  unary("pushed_none", pool, "static:///parity", 1, options, 0);
  const char *endpoint = strstr(target, "//") + 2;
  if (grpcpool_pool_set_endpoints(pool, "parity", &endpoint, 1) != GRPCPOOL_OK) {
    fprintf(stderr, "set_endpoints: %s\n", grpcpool_last_error());
  }
  unary("pushed_endpoints", pool, "static:///parity", 1, options, 0);
  const char *no_port = "127.0.0.1";
  grpcpool_result pushed = grpcpool_pool_set_endpoints(pool, "parity", &no_port, 1);
  report("pushed_bad_endpoint", pushed == GRPCPOOL_OK ? "ok" : error_class(pushed), "error",
         pushed == GRPCPOOL_OK ? "" : grpcpool_last_error());
  grpcpool_pool_free(pool);
  pool = pool_with(NULL, NULL);
  grpcpool_pool_shutdown(pool, 1000, NULL);
  unary("closed_pool", pool, target, 1, options, 0);
  grpcpool_pool_free(pool);
  grpcpool_call_options_free(options);

  concurrent_send(target);
  settings_by_name(target);
  connectivity(target, down);
  return 0;
}
