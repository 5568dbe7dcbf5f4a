/*
 * Metadata hooks through the C ABI, against the echo server (which echoes x-echo-* request
 * metadata as response headers): the pool's hook reaches the server on unary calls and streams,
 * always on a grpcpool worker, never the caller's thread, blocking or not; a call's own hook adds
 * after it; a failing hook (non-OK return, grpcpool_metadata_sink_fail, a refused entry) fails
 * the call with the documented status and the server counts no call; the hook runs once per
 * attempt of a retried call; release runs exactly once.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpcpool.h"
#include "check.h"

#define ECHO "/grpcpool.test.Echo/Unary"
#define SERVER_STREAM "/grpcpool.test.Echo/ServerStream"

/* What a hook adds and saw; the hook's user_data. */
typedef struct {
  const char *prefix;   /* the value added is "<prefix>-<run>" */
  atomic_int runs;
  atomic_int released;
  atomic_int other_thread; /* runs not on `caller` */
  pthread_t caller;
  char last_target[128];
  char last_method[128];
  pthread_mutex_t lock;
} hook_state;

static void hook_state_init(hook_state *state, const char *prefix) {
  memset(state, 0, sizeof *state);
  state->prefix = prefix;
  state->caller = pthread_self();
  pthread_mutex_init(&state->lock, NULL);
}

static int32_t token_hook(void *user_data, const char *target, const char *method,
                          grpcpool_metadata_sink_t *sink) {
  hook_state *state = user_data;
  int run = atomic_fetch_add(&state->runs, 1) + 1;
  if (!pthread_equal(pthread_self(), state->caller)) atomic_fetch_add(&state->other_thread, 1);
  pthread_mutex_lock(&state->lock);
  snprintf(state->last_target, sizeof state->last_target, "%s", target);
  snprintf(state->last_method, sizeof state->last_method, "%s", method);
  pthread_mutex_unlock(&state->lock);
  char value[64];
  int len = snprintf(value, sizeof value, "%s-%d", state->prefix, run);
  return grpcpool_metadata_sink_add(sink, "x-echo-token", (const uint8_t *)value, (size_t)len);
}

static void release_state(void *user_data) {
  hook_state *state = user_data;
  atomic_fetch_add(&state->released, 1);
}

/* A hook that fails as `mode` says; counts its runs in the int user_data points at. */
enum { FAIL_RETURN, FAIL_UNAUTHENTICATED, FAIL_NOT_FOUND, FAIL_BAD_ENTRY, FAIL_BAD_CODE };
typedef struct {
  int mode;
  atomic_int runs;
  grpcpool_result add_result;
} failing_state;

static int32_t failing_hook(void *user_data, const char *target, const char *method,
                            grpcpool_metadata_sink_t *sink) {
  (void)target;
  (void)method;
  failing_state *state = user_data;
  atomic_fetch_add(&state->runs, 1);
  switch (state->mode) {
    case FAIL_RETURN:
      return GRPCPOOL_UNAVAILABLE;
    case FAIL_UNAUTHENTICATED:
      grpcpool_metadata_sink_fail(sink, 16, "token expired");
      return GRPCPOOL_OK;
    case FAIL_NOT_FOUND:
      grpcpool_metadata_sink_fail(sink, 5, "no such key");
      return GRPCPOOL_OK;
    case FAIL_BAD_ENTRY:
      /* A reserved key: refused, and the attempt fails even though the hook returns OK. */
      state->add_result = grpcpool_metadata_sink_add(sink, "grpc-timeout", (const uint8_t *)"1S", 2);
      return GRPCPOOL_OK;
    default:
      state->add_result = grpcpool_metadata_sink_fail(sink, 0, "OK is not a failure");
      return GRPCPOOL_OK;
  }
}

/* The first value of header `key` in `response`, copied into `out` ("" when absent); how many
 * entries `key` has. */
static int header(const grpcpool_response_t *response, const char *key, char *out, size_t size) {
  int found = 0;
  out[0] = '\0';
  for (size_t i = 0; i < grpcpool_response_header_count(response); i++) {
    grpcpool_metadata_entry_t entry;
    if (grpcpool_response_header(response, i, &entry) != GRPCPOOL_OK) continue;
    if (strcmp(entry.key, key) != 0) continue;
    if (found++ == 0) snprintf(out, size, "%.*s", (int)entry.value_len, (const char *)entry.value);
  }
  return found;
}

static grpcpool_metadata_entry_t ascii(const char *key, const char *value) {
  grpcpool_metadata_entry_t entry = {key, (const uint8_t *)value, strlen(value)};
  return entry;
}

/* The server's count of calls so far, from an echo asking for it (itself counted); -1 on error. */
static long server_calls(grpcpool_pool_t *pool, const char *target) {
  grpcpool_metadata_entry_t report = ascii("x-report-calls", "1");
  grpcpool_response_t *response = NULL;
  if (grpcpool_unary(pool, target, ECHO, NULL, 0, &report, 1, 5000, &response) != GRPCPOOL_OK) return -1;
  char value[32];
  long calls = -1;
  if (grpcpool_response_code(response) == 0 && header(response, "x-server-calls", value, sizeof value))
    calls = strtol(value, NULL, 10);
  grpcpool_response_free(response);
  return calls;
}

static void check_pool_hook(const char *target) {
  check_section("the pool's hook: token on unary calls and streams, on a worker for both");
  hook_state state;
  hook_state_init(&state, "pool");
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set_metadata_hook(config, token_hook, &state, release_state), GRPCPOOL_OK);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_config_free(config);
  CHECK(atomic_load(&state.released) == 0, "released while the pool holds the hook");
  if (pool == NULL) return;

  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_unary(pool, target, ECHO, (const uint8_t *)"hi", 2, NULL, 0, 5000, &response), GRPCPOOL_OK);
  char value[64];
  if (response != NULL) {
    CHECK(grpcpool_response_code(response) == 0, "status %d: %s", grpcpool_response_code(response),
          grpcpool_response_message(response));
    CHECK(header(response, "x-echo-token", value, sizeof value) == 1 && strcmp(value, "pool-1") == 0,
          "x-echo-token %s", value);
    grpcpool_response_free(response);
  }
  CHECK(atomic_load(&state.other_thread) == 1, "a blocking call's hook runs on a worker (%d)",
        atomic_load(&state.other_thread));
  CHECK(strcmp(state.last_target, target) == 0, "hook told target %s", state.last_target);
  CHECK(strcmp(state.last_method, ECHO) == 0, "hook told method %s", state.last_method);

  grpcpool_metadata_entry_t count = ascii("x-count", "1");
  grpcpool_stream_t stream = 0;
  CHECK_RC(grpcpool_open_stream(pool, target, SERVER_STREAM, &count, 1, 5000, &stream), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_send(stream, (const uint8_t *)"m", 1), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_close_send(stream), GRPCPOOL_OK);
  grpcpool_metadata_t *headers = NULL;
  CHECK_RC(grpcpool_stream_headers(stream, &headers), GRPCPOOL_OK);
  int tokens = 0;
  value[0] = '\0';
  for (size_t i = 0; headers != NULL && i < grpcpool_metadata_count(headers); i++) {
    grpcpool_metadata_entry_t entry;
    if (grpcpool_metadata_get(headers, i, &entry) == GRPCPOOL_OK && strcmp(entry.key, "x-echo-token") == 0) {
      tokens++;
      snprintf(value, sizeof value, "%.*s", (int)entry.value_len, (const char *)entry.value);
    }
  }
  grpcpool_metadata_free(headers);
  CHECK(tokens == 1 && strcmp(value, "pool-2") == 0, "stream x-echo-token %s (%d)", value, tokens);
  grpcpool_response_t *status = NULL;
  CHECK_RC(grpcpool_stream_finish(stream, &status), GRPCPOOL_OK);
  CHECK(status != NULL && grpcpool_response_code(status) == 0, "stream status");
  grpcpool_response_free(status);
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
  CHECK(atomic_load(&state.other_thread) == 2, "a stream's hook runs on a worker (%d)",
        atomic_load(&state.other_thread));
  CHECK(strcmp(state.last_method, SERVER_STREAM) == 0, "hook told method %s", state.last_method);

  grpcpool_pool_free(pool);
  CHECK(atomic_load(&state.released) == 1, "released %d times after the config and pool were freed",
        atomic_load(&state.released));
  pthread_mutex_destroy(&state.lock);
}

/* An async call's outcome. */
typedef struct {
  atomic_int done;
  int code;
  char tokens[2][32];
  int token_count;
} async_outcome;

static void async_done(void *user_data, grpcpool_response_t *response) {
  async_outcome *outcome = user_data;
  outcome->code = grpcpool_response_code(response);
  for (size_t i = 0; i < grpcpool_response_header_count(response); i++) {
    grpcpool_metadata_entry_t entry;
    if (grpcpool_response_header(response, i, &entry) == GRPCPOOL_OK && strcmp(entry.key, "x-echo-token") == 0 &&
        outcome->token_count < 2) {
      snprintf(outcome->tokens[outcome->token_count++], 32, "%.*s", (int)entry.value_len,
               (const char *)entry.value);
    }
  }
  grpcpool_response_free(response);
  atomic_store(&outcome->done, 1);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void check_call_hook(const char *target) {
  check_section("a call's own hook adds after the pool's (blocking and async), released once");
  hook_state pool_state, call_state;
  hook_state_init(&pool_state, "pool");
  hook_state_init(&call_state, "call");
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set_metadata_hook(config, token_hook, &pool_state, release_state), GRPCPOOL_OK);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_config_free(config);
  if (pool == NULL) return;
  grpcpool_call_options_t *options = grpcpool_call_options_new();
  CHECK_RC(grpcpool_call_options_set_metadata_hook(options, token_hook, &call_state, release_state), GRPCPOOL_OK);
  CHECK_RC(grpcpool_call_options_set_timeout_ms(options, 5000), GRPCPOOL_OK);

  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_unary_with(pool, target, ECHO, NULL, 0, options, &response), GRPCPOOL_OK);
  if (response != NULL) {
    char first[64];
    int count = header(response, "x-echo-token", first, sizeof first);
    CHECK(count == 2 && strcmp(first, "pool-1") == 0, "%d tokens, first %s", count, first);
    /* The second entry is the call's. */
    size_t seen = 0;
    for (size_t i = 0; i < grpcpool_response_header_count(response); i++) {
      grpcpool_metadata_entry_t entry;
      if (grpcpool_response_header(response, i, &entry) == GRPCPOOL_OK && strcmp(entry.key, "x-echo-token") == 0 &&
          seen++ == 1)
        CHECK(entry.value_len == 6 && memcmp(entry.value, "call-1", 6) == 0, "second token");
    }
    grpcpool_response_free(response);
  }

  async_outcome outcome;
  memset(&outcome, 0, sizeof outcome);
  CHECK_RC(grpcpool_unary_async_with(pool, target, ECHO, NULL, 0, options, async_done, &outcome, NULL), GRPCPOOL_OK);
  /* The options may go now: the call keeps its hook until it ends. */
  grpcpool_call_options_free(options);
  for (int i = 0; i < 1000 && !atomic_load(&outcome.done); i++) sleep_ms(10);
  CHECK(atomic_load(&outcome.done), "async call never completed");
  CHECK(outcome.code == 0 && outcome.token_count == 2 && strcmp(outcome.tokens[0], "pool-2") == 0 &&
            strcmp(outcome.tokens[1], "call-2") == 0,
        "async: code %d, tokens %s %s", outcome.code, outcome.tokens[0], outcome.tokens[1]);
  CHECK(atomic_load(&call_state.other_thread) == 2, "the blocking and the async call's hooks run on a worker (%d)",
        atomic_load(&call_state.other_thread));
  for (int i = 0; i < 200 && atomic_load(&call_state.released) == 0; i++) sleep_ms(10);
  CHECK(atomic_load(&call_state.released) == 1, "the call's user data released %d times once the options "
        "were freed and the call ended", atomic_load(&call_state.released));

  /* Replacing the pool's hook on a config releases the old user data; a NULL hook clears it. */
  hook_state replaced;
  hook_state_init(&replaced, "old");
  config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set_metadata_hook(config, token_hook, &replaced, release_state), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set_metadata_hook(config, NULL, NULL, NULL), GRPCPOOL_OK);
  CHECK(atomic_load(&replaced.released) == 1, "the replaced hook's user data released");
  grpcpool_config_free(config);
  CHECK(atomic_load(&replaced.released) == 1, "released once only");
  hook_state orphan;
  hook_state_init(&orphan, "orphan");
  CHECK_RC(grpcpool_config_set_metadata_hook(NULL, token_hook, &orphan, release_state), GRPCPOOL_NULL_ARGUMENT);
  CHECK(atomic_load(&orphan.released) == 1, "user data released when the setter fails");

  grpcpool_pool_free(pool);
  CHECK(atomic_load(&pool_state.released) == 1, "pool hook released once");
  pthread_mutex_destroy(&pool_state.lock);
  pthread_mutex_destroy(&call_state.lock);
  pthread_mutex_destroy(&replaced.lock);
  pthread_mutex_destroy(&orphan.lock);
}

static void check_failing_hooks(const char *target) {
  check_section("a failing hook fails the call with its status; the server sees no call");
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(NULL, &pool), GRPCPOOL_OK);
  if (pool == NULL) return;
  long before = server_calls(pool, target);
  CHECK(before > 0, "the server reports its calls (%ld)", before);
  struct {
    int mode;
    int code;
    const char *message;
  } cases[] = {
      {FAIL_RETURN, 14, "metadata hook failed"},
      {FAIL_UNAUTHENTICATED, 16, "token expired"},
      {FAIL_NOT_FOUND, 13, "no such key"},
      {FAIL_BAD_ENTRY, 13, "grpc-timeout"},
      {FAIL_BAD_CODE, 13, "not one of 1..16"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    failing_state state;
    memset(&state, 0, sizeof state);
    state.mode = cases[i].mode;
    grpcpool_call_options_t *options = grpcpool_call_options_new();
    grpcpool_call_options_set_metadata_hook(options, failing_hook, &state, NULL);
    grpcpool_response_t *response = NULL;
    CHECK_RC(grpcpool_unary_with(pool, target, ECHO, NULL, 0, options, &response), GRPCPOOL_OK);
    if (response != NULL) {
      CHECK(grpcpool_response_code(response) == cases[i].code, "case %zu: status %d (%s), expected %d", i,
            grpcpool_response_code(response), grpcpool_response_message(response), cases[i].code);
      CHECK(strstr(grpcpool_response_message(response), cases[i].message) != NULL, "case %zu: message %s", i,
            grpcpool_response_message(response));
      grpcpool_response_free(response);
    }
    CHECK(atomic_load(&state.runs) == 1, "case %zu: hook ran %d times", i, atomic_load(&state.runs));
    if (cases[i].mode == FAIL_BAD_ENTRY)
      CHECK(state.add_result == GRPCPOOL_INVALID_METADATA, "sink_add of a reserved key gave %s",
            grpcpool_result_name(state.add_result));
    if (cases[i].mode == FAIL_BAD_CODE)
      CHECK(state.add_result == GRPCPOOL_INVALID_ARGUMENT, "sink_fail(0) gave %s",
            grpcpool_result_name(state.add_result));

    /* A stream opened with the failing hook ends with the same status. */
    grpcpool_stream_t stream = 0;
    CHECK_RC(grpcpool_open_stream_with(pool, target, SERVER_STREAM, options, &stream), GRPCPOOL_OK);
    grpcpool_response_t *status = NULL;
    CHECK_RC(grpcpool_stream_finish(stream, &status), GRPCPOOL_OK);
    CHECK(status != NULL && grpcpool_response_code(status) == cases[i].code, "case %zu: stream status %d", i,
          status ? grpcpool_response_code(status) : -1);
    grpcpool_response_free(status);
    grpcpool_stream_free(stream);
    grpcpool_call_options_free(options);
  }
  long after = server_calls(pool, target);
  CHECK(after == before + 1, "the server counted %ld calls between two reports, expected only the report",
        after - before);
  grpcpool_pool_free(pool);
}

static void check_retried_call(const char *target) {
  check_section("a retried call runs the hook once per attempt, each with a fresh token");
  hook_state state;
  hook_state_init(&state, "attempt");
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set_service_config(
               config,
               "{\"methodConfig\": [{\"name\": [{\"service\": \"grpcpool.test.Echo\"}],"
               " \"retryPolicy\": {\"maxAttempts\": 4, \"initialBackoff\": \"0.01s\", \"maxBackoff\": \"0.05s\","
               " \"backoffMultiplier\": 2, \"retryableStatusCodes\": [\"UNAVAILABLE\"]}}]}"),
           GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set_metadata_hook(config, token_hook, &state, release_state), GRPCPOOL_OK);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_config_free(config);
  if (pool == NULL) return;
  /* The server fails the first two attempts with UNAVAILABLE. */
  grpcpool_metadata_entry_t controls[] = {ascii("x-status-code", "14"), ascii("x-fail-attempts", "2")};
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_unary(pool, target, ECHO, (const uint8_t *)"r", 1, controls, 2, 5000, &response), GRPCPOOL_OK);
  if (response != NULL) {
    char value[64];
    CHECK(grpcpool_response_code(response) == 0, "status %d: %s", grpcpool_response_code(response),
          grpcpool_response_message(response));
    CHECK(header(response, "x-echo-token", value, sizeof value) == 1 && strcmp(value, "attempt-3") == 0,
          "the answered attempt carried %s", value);
    CHECK(header(response, "x-received-previous-attempts", value, sizeof value) == 1 && strcmp(value, "2") == 0,
          "previous attempts %s", value);
    grpcpool_response_free(response);
  }
  CHECK(atomic_load(&state.runs) == 3, "the hook ran %d times for three attempts", atomic_load(&state.runs));
  grpcpool_pool_free(pool);
  CHECK(atomic_load(&state.released) == 1, "released once");
  pthread_mutex_destroy(&state.lock);
}

static void check_sink_arguments(void) {
  check_section("sink functions refuse NULL");
  CHECK_RC(grpcpool_metadata_sink_add(NULL, "k", (const uint8_t *)"v", 1), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_metadata_sink_fail(NULL, 16, "x"), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_call_options_set_metadata_hook(NULL, NULL, NULL, NULL), GRPCPOOL_NULL_ARGUMENT);
}

int main(void) {
  const char *target = check_env("GRPCPOOL_TEST_TARGET");
  check_pool_hook(target);
  check_call_hook(target);
  check_failing_hooks(target);
  check_retried_call(target);
  check_sink_arguments();
  return check_summary("test_hooks");
}
