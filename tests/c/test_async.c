/*
 * Async calls through the C ABI: 8 threads x 1000 calls on one pool (one-shot and on leases),
 * each callback exactly once with its own user_data; cancellation (slow calls, calls cancelled
 * at once, cancel after completion); blocking functions refused inside a callback;
 * grpcpool_pool_free running the callbacks of calls still in flight; the log callback.
 *
 * GRPCPOOL_TEST_LIGHT (set for the valgrind pass) shrinks the load to 2 threads x 20 calls.
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

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Polls until *counter reaches `target` or `limit_ms` passes; true if it got there. */
static int wait_for(atomic_int *counter, int target, double limit_ms) {
  double deadline = now_ms() + limit_ms;
  while (atomic_load(counter) < target) {
    if (now_ms() > deadline) return 0;
    sleep_ms(5);
  }
  return 1;
}

static grpcpool_metadata_entry_t ascii(const char *key, const char *value) {
  grpcpool_metadata_entry_t entry = {key, (const uint8_t *)value, strlen(value)};
  return entry;
}

/* One async call: its user_data, and what its callback saw. */
typedef struct {
  char body[32];
  size_t body_len;
  atomic_int started; /* the start function returned OK */
  atomic_int runs;    /* how many times the callback ran */
  atomic_int code;    /* the status code the callback saw */
  atomic_int body_ok; /* the callback saw this call's body echoed */
  grpcpool_call_t call;
  grpcpool_result cancel_result;
  atomic_int *done;   /* bumped last by the callback */
} call_slot;

/* Records what the response says into the slot that user_data points at. */
static void slot_callback(void *user_data, grpcpool_response_t *response) {
  call_slot *slot = user_data;
  if (response == NULL) {
    atomic_store(&slot->code, -100);
  } else {
    atomic_store(&slot->code, grpcpool_response_code(response));
    grpcpool_bytes_t body = grpcpool_response_body(response);
    atomic_store(&slot->body_ok, body.len == slot->body_len &&
                                     memcmp(body.data, slot->body, slot->body_len) == 0);
    grpcpool_response_free(response);
  }
  atomic_fetch_add(&slot->runs, 1);
  atomic_fetch_add(slot->done, 1);
}

static void slot_init(call_slot *slot, atomic_int *done, const char *fmt, int a, int b) {
  memset(slot, 0, sizeof *slot);
  int len = snprintf(slot->body, sizeof slot->body, fmt, a, b);
  slot->body_len = (size_t)len;
  atomic_init(&slot->started, 0);
  atomic_init(&slot->runs, 0);
  atomic_init(&slot->code, -1);
  atomic_init(&slot->body_ok, 0);
  slot->done = done;
}

/* ---- 8 threads x 1000 calls ---- */

typedef struct {
  grpcpool_pool_t *pool;
  const char *target;
  call_slot *slots;
  int thread;
  int count;
  atomic_int *start_failures;
} load_thread;

static void *load_thread_main(void *arg) {
  load_thread *self = arg;
  grpcpool_lease_t lease = 0;
  int have_lease = GRPCPOOL_ACQUIRE(self->pool, self->target, 10000, &lease) == GRPCPOOL_OK;
  if (!have_lease) atomic_fetch_add(self->start_failures, 1);
  for (int i = 0; i < self->count; i++) {
    call_slot *slot = &self->slots[i];
    grpcpool_result rc;
    /* Every fourth call on this thread's lease, the rest one-shot on the pool. */
    if (i % 4 == 0 && have_lease) {
      rc = grpcpool_lease_unary_async(lease, ECHO, (const uint8_t *)slot->body, slot->body_len, NULL, 0,
                                      60000, slot_callback, slot, &slot->call);
    } else {
      rc = grpcpool_unary_async(self->pool, self->target, ECHO, (const uint8_t *)slot->body,
                                slot->body_len, NULL, 0, 60000, slot_callback, slot, &slot->call);
    }
    if (rc == GRPCPOOL_OK) {
      atomic_store(&slot->started, 1);
    } else {
      atomic_fetch_add(self->start_failures, 1);
      fprintf(stderr, "thread %d call %d: %s: %s\n", self->thread, i, grpcpool_result_name(rc),
              grpcpool_last_error());
    }
  }
  /* Released while its calls may still run: they finish first, then the slot returns. */
  if (have_lease && grpcpool_release(lease) != GRPCPOOL_OK) atomic_fetch_add(self->start_failures, 1);
  return NULL;
}

static void check_load(grpcpool_pool_t *pool, const char *target, int threads, int per_thread) {
  static char name[128];
  snprintf(name, sizeof name, "%d threads x %d async calls (one in four on a lease): each callback once, "
           "code 0, its own body", threads, per_thread);
  check_section(name);
  int total = threads * per_thread;
  call_slot *slots = calloc((size_t)total, sizeof *slots);
  load_thread *args = calloc((size_t)threads, sizeof *args);
  pthread_t *ids = calloc((size_t)threads, sizeof *ids);
  atomic_int done, start_failures;
  atomic_init(&done, 0);
  atomic_init(&start_failures, 0);
  for (int t = 0; t < threads; t++) {
    for (int i = 0; i < per_thread; i++) {
      slot_init(&slots[t * per_thread + i], &done, "thread %d call %d", t, i);
    }
  }
  double started = now_ms();
  for (int t = 0; t < threads; t++) {
    args[t] = (load_thread){pool, target, &slots[t * per_thread], t, per_thread, &start_failures};
    CHECK(pthread_create(&ids[t], NULL, load_thread_main, &args[t]) == 0, "pthread_create");
  }
  for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
  CHECK(atomic_load(&start_failures) == 0, "%d acquires, starts or releases failed",
        atomic_load(&start_failures));
  int expected = 0;
  for (int i = 0; i < total; i++) expected += atomic_load(&slots[i].started);
  int all_done = wait_for(&done, expected, 60000);
  double took = now_ms() - started;
  CHECK(all_done, "only %d of %d callbacks ran within 60 s", atomic_load(&done), expected);
  /* Nothing runs twice, even a while later. */
  sleep_ms(100);
  CHECK(atomic_load(&done) == expected, "%d callbacks for %d calls", atomic_load(&done), expected);
  int not_once = 0, bad_code = 0, bad_body = 0;
  for (int i = 0; i < total; i++) {
    int runs = atomic_load(&slots[i].runs);
    if (runs != atomic_load(&slots[i].started)) {
      if (not_once++ < 5) fprintf(stderr, "call %d: callback ran %d times\n", i, runs);
    } else if (runs == 1 && atomic_load(&slots[i].code) != 0) {
      if (bad_code++ < 5) fprintf(stderr, "call %d: code %d\n", i, atomic_load(&slots[i].code));
    } else if (runs == 1 && !atomic_load(&slots[i].body_ok)) {
      if (bad_body++ < 5) fprintf(stderr, "call %d: wrong body\n", i);
    }
  }
  CHECK(expected == total, "%d of %d calls started", expected, total);
  CHECK(not_once == 0, "%d calls whose callback did not run exactly once", not_once);
  CHECK(bad_code == 0, "%d calls with a non-zero code", bad_code);
  CHECK(bad_body == 0, "%d calls that got another call's body", bad_body);
  printf("       %d calls, %d callbacks in %.0f ms\n", total, atomic_load(&done), took);
  free(slots);
  free(args);
  free(ids);
}

/* ---- cancellation ---- */

static void check_cancellation(grpcpool_pool_t *pool, const char *target, int fast_count) {
  check_section("cancel a call sleeping 5 s after 50 ms: CANCELLED (1) once; second cancel INVALID_HANDLE");
  atomic_int done;
  atomic_init(&done, 0);
  call_slot slow[2];
  slot_init(&slow[0], &done, "slow call %d of %d (one-shot)", 1, 2);
  slot_init(&slow[1], &done, "slow call %d of %d (on a lease)", 2, 2);
  grpcpool_metadata_entry_t sleep = ascii("x-sleep-ms", "5000");
  grpcpool_lease_t lease = 0;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, target, 10000, &lease), GRPCPOOL_OK);
  double started = now_ms();
  CHECK_RC(grpcpool_unary_async(pool, target, ECHO, (const uint8_t *)slow[0].body, slow[0].body_len, &sleep, 1,
                                10000, slot_callback, &slow[0], &slow[0].call),
           GRPCPOOL_OK);
  CHECK_RC(grpcpool_lease_unary_async(lease, ECHO, (const uint8_t *)slow[1].body, slow[1].body_len, &sleep, 1,
                                      10000, slot_callback, &slow[1], &slow[1].call),
           GRPCPOOL_OK);
  CHECK(slow[0].call != 0 && slow[1].call != 0 && slow[0].call != slow[1].call, "call handles");
  sleep_ms(50);
  CHECK(atomic_load(&done) == 0, "a sleeping call finished early");
  CHECK_RC(grpcpool_call_cancel(slow[0].call), GRPCPOOL_OK);
  CHECK_RC(grpcpool_call_cancel(slow[1].call), GRPCPOOL_OK);
  CHECK(wait_for(&done, 2, 4000), "cancelled callbacks did not run");
  double took = now_ms() - started;
  CHECK(took < 3000, "cancelled calls took %.0f ms to call back", took);
  CHECK_RC(grpcpool_call_cancel(slow[0].call), GRPCPOOL_INVALID_HANDLE);
  CHECK_RC(grpcpool_call_cancel(slow[1].call), GRPCPOOL_INVALID_HANDLE);
  sleep_ms(100);
  for (int i = 0; i < 2; i++) {
    CHECK(atomic_load(&slow[i].runs) == 1, "slow call %d: callback ran %d times", i, atomic_load(&slow[i].runs));
    CHECK(atomic_load(&slow[i].code) == 1, "slow call %d: code %d, expected CANCELLED", i,
          atomic_load(&slow[i].code));
  }
  /* The lease is still usable after a call on it was cancelled. */
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_lease_unary(lease, ECHO, (const uint8_t *)"after", 5, NULL, 0, 10000, &response), GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 0, "code %d after a cancel", grpcpool_response_code(response));
  grpcpool_response_free(response);
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);

  check_section("cancel after completion: INVALID_HANDLE, callback stays at one run");
  call_slot quick;
  atomic_init(&done, 0);
  slot_init(&quick, &done, "quick call %d.%d", 1, 0);
  CHECK_RC(grpcpool_unary_async(pool, target, ECHO, (const uint8_t *)quick.body, quick.body_len, NULL, 0, 10000,
                                slot_callback, &quick, &quick.call),
           GRPCPOOL_OK);
  CHECK(wait_for(&done, 1, 10000), "quick call did not finish");
  CHECK_RC(grpcpool_call_cancel(quick.call), GRPCPOOL_INVALID_HANDLE);
  CHECK(atomic_load(&quick.runs) == 1 && atomic_load(&quick.code) == 0 && atomic_load(&quick.body_ok),
        "quick call: runs %d code %d", atomic_load(&quick.runs), atomic_load(&quick.code));
  /* out_call may be NULL. */
  call_slot anonymous;
  atomic_init(&done, 0);
  slot_init(&anonymous, &done, "call %d.%d without a handle", 1, 0);
  CHECK_RC(grpcpool_unary_async(pool, target, ECHO, (const uint8_t *)anonymous.body, anonymous.body_len, NULL, 0,
                                10000, slot_callback, &anonymous, NULL),
           GRPCPOOL_OK);
  CHECK(wait_for(&done, 1, 10000) && atomic_load(&anonymous.code) == 0, "call without a handle");

  static char name[128];
  snprintf(name, sizeof name, "%d fast calls each cancelled at once: one callback each, "
           "CANCELLED exactly when the cancel was accepted", fast_count);
  check_section(name);
  call_slot *fast = calloc((size_t)fast_count, sizeof *fast);
  atomic_init(&done, 0);
  for (int i = 0; i < fast_count; i++) slot_init(&fast[i], &done, "fast %d-%d", i, fast_count);
  int started_count = 0;
  for (int i = 0; i < fast_count; i++) {
    grpcpool_result rc = i % 2 == 0
        ? grpcpool_unary_async(pool, target, ECHO, (const uint8_t *)fast[i].body, fast[i].body_len, NULL, 0,
                               10000, slot_callback, &fast[i], &fast[i].call)
        : grpcpool_unary_async(pool, target, ECHO, (const uint8_t *)fast[i].body, fast[i].body_len, NULL, 0,
                               GRPCPOOL_NO_TIMEOUT, slot_callback, &fast[i], &fast[i].call);
    if (rc != GRPCPOOL_OK) continue;
    started_count++;
    /* Every fourth one gets a moment first, so some finish before their cancel arrives. */
    if (i % 4 == 3) sleep_ms(3);
    fast[i].cancel_result = grpcpool_call_cancel(fast[i].call);
  }
  CHECK(started_count == fast_count, "%d of %d started", started_count, fast_count);
  CHECK(wait_for(&done, started_count, 30000), "%d of %d callbacks ran", atomic_load(&done), started_count);
  sleep_ms(100);
  int cancelled = 0, completed = 0, wrong = 0;
  for (int i = 0; i < fast_count; i++) {
    int runs = atomic_load(&fast[i].runs), code = atomic_load(&fast[i].code);
    grpcpool_result cancel = fast[i].cancel_result;
    int consistent = runs == 1 &&
                     ((cancel == GRPCPOOL_OK && code == 1) ||
                      (cancel == GRPCPOOL_INVALID_HANDLE && code == 0 && atomic_load(&fast[i].body_ok)));
    if (!consistent) {
      if (wrong++ < 5) {
        fprintf(stderr, "fast call %d: runs %d code %d cancel %s\n", i, runs, code, grpcpool_result_name(cancel));
      }
    } else if (code == 1) {
      cancelled++;
    } else {
      completed++;
    }
  }
  CHECK(wrong == 0, "%d fast calls with a wrong outcome", wrong);
  CHECK(atomic_load(&done) == started_count, "%d callbacks for %d calls", atomic_load(&done), started_count);
  printf("       %d cancelled, %d completed before their cancel\n", cancelled, completed);
  free(fast);
}

/* ---- blocking functions inside a callback ---- */

typedef struct {
  grpcpool_pool_t *pool;
  const char *target;
  grpcpool_lease_t lease;
  grpcpool_result unary, lease_unary, acquire, shutdown, stats, release, nested_start;
  char error[256];
  int response_non_null;
  call_slot nested;
  atomic_int done;
} callback_probe;

static void probing_callback(void *user_data, grpcpool_response_t *response) {
  callback_probe *probe = user_data;
  probe->response_non_null = response != NULL;
  grpcpool_response_free(response);
  grpcpool_response_t *out = NULL;
  probe->unary = grpcpool_unary(probe->pool, probe->target, ECHO, NULL, 0, NULL, 0, 1000, &out);
  snprintf(probe->error, sizeof probe->error, "%s", grpcpool_last_error());
  if (probe->unary == GRPCPOOL_OK) grpcpool_response_free(out);
  out = NULL;
  probe->lease_unary = grpcpool_lease_unary(probe->lease, ECHO, NULL, 0, NULL, 0, 1000, &out);
  if (probe->lease_unary == GRPCPOOL_OK) grpcpool_response_free(out);
  grpcpool_lease_t lease = 0;
  probe->acquire = grpcpool_acquire(probe->pool, probe->target, 1000, &lease);
  if (probe->acquire == GRPCPOOL_OK) grpcpool_release(lease);
  probe->shutdown = grpcpool_pool_shutdown(probe->pool, 0, NULL);
  /* Allowed in a callback: reading stats, releasing a lease, starting another async call. */
  char *json = NULL;
  probe->stats = grpcpool_pool_stats_json(probe->pool, &json);
  grpcpool_string_free(json);
  probe->release = grpcpool_release(probe->lease);
  probe->nested_start = grpcpool_unary_async(probe->pool, probe->target, ECHO, (const uint8_t *)probe->nested.body,
                                             probe->nested.body_len, NULL, 0, 10000, slot_callback, &probe->nested,
                                             &probe->nested.call);
  atomic_fetch_add(&probe->done, 1);
}

static void check_blocking_in_callback(grpcpool_pool_t *pool, const char *target) {
  check_section("blocking functions inside a callback give BLOCKING_IN_CALLBACK; release, stats, async allowed");
  static callback_probe probe;
  memset(&probe, 0, sizeof probe);
  probe.pool = pool;
  probe.target = target;
  atomic_init(&probe.done, 0);
  slot_init(&probe.nested, &probe.done, "nested call %d.%d", 1, 0);
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, target, 10000, &probe.lease), GRPCPOOL_OK);
  CHECK_RC(grpcpool_lease_unary_async(probe.lease, ECHO, (const uint8_t *)"cb", 2, NULL, 0, 10000, probing_callback,
                                      &probe, NULL),
           GRPCPOOL_OK);
  /* One for the probe, one for the nested call it started. */
  CHECK(wait_for(&probe.done, 2, 20000), "callbacks did not run (%d)", atomic_load(&probe.done));
  CHECK(probe.response_non_null, "callback got a NULL response");
  CHECK(probe.unary == GRPCPOOL_BLOCKING_IN_CALLBACK, "grpcpool_unary in a callback: %s",
        grpcpool_result_name(probe.unary));
  CHECK(probe.error[0] != '\0', "no last error in the callback");
  CHECK(probe.lease_unary == GRPCPOOL_BLOCKING_IN_CALLBACK, "grpcpool_lease_unary in a callback: %s",
        grpcpool_result_name(probe.lease_unary));
  CHECK(probe.acquire == GRPCPOOL_BLOCKING_IN_CALLBACK, "grpcpool_acquire in a callback: %s",
        grpcpool_result_name(probe.acquire));
  CHECK(probe.shutdown == GRPCPOOL_BLOCKING_IN_CALLBACK, "grpcpool_pool_shutdown in a callback: %s",
        grpcpool_result_name(probe.shutdown));
  CHECK(probe.stats == GRPCPOOL_OK, "stats in a callback: %s", grpcpool_result_name(probe.stats));
  CHECK(probe.release == GRPCPOOL_OK, "release in a callback: %s", grpcpool_result_name(probe.release));
  CHECK(probe.nested_start == GRPCPOOL_OK, "async call from a callback: %s", grpcpool_result_name(probe.nested_start));
  CHECK(atomic_load(&probe.nested.runs) == 1 && atomic_load(&probe.nested.code) == 0 &&
            atomic_load(&probe.nested.body_ok),
        "nested call: runs %d code %d", atomic_load(&probe.nested.runs), atomic_load(&probe.nested.code));
  printf("       in a callback: %s\n", probe.error);
  /* The pool was not shut down by the refused call. */
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_unary(pool, target, ECHO, (const uint8_t *)"still", 5, NULL, 0, 10000, &response), GRPCPOOL_OK);
  grpcpool_response_free(response);
  CHECK_RC(grpcpool_release(probe.lease), GRPCPOOL_INVALID_HANDLE);
}

/* ---- pool_free with calls in flight ---- */

static void check_free_with_calls_in_flight(const char *target) {
  check_section("pool_free with calls sleeping on the server: their callbacks run (CANCELLED) before it returns");
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(NULL, &pool), GRPCPOOL_OK);
  if (pool == NULL) return;
  enum { N = 4 };
  atomic_int done;
  atomic_init(&done, 0);
  call_slot slots[N];
  grpcpool_metadata_entry_t sleep = ascii("x-sleep-ms", "5000");
  grpcpool_lease_t lease = 0;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, target, 10000, &lease), GRPCPOOL_OK);
  for (int i = 0; i < N; i++) {
    slot_init(&slots[i], &done, "in flight %d of %d", i + 1, N);
    grpcpool_result rc = i < 2
        ? grpcpool_unary_async(pool, target, ECHO, (const uint8_t *)slots[i].body, slots[i].body_len, &sleep, 1,
                               10000, slot_callback, &slots[i], &slots[i].call)
        : grpcpool_lease_unary_async(lease, ECHO, (const uint8_t *)slots[i].body, slots[i].body_len, &sleep, 1,
                                     10000, slot_callback, &slots[i], &slots[i].call);
    CHECK(rc == GRPCPOOL_OK, "start %d: %s", i, grpcpool_result_name(rc));
  }
  sleep_ms(200);
  CHECK(atomic_load(&done) == 0, "a sleeping call finished early");
  double started = now_ms();
  grpcpool_pool_free(pool);
  double took = now_ms() - started;
  /* No waiting here: pool_free must have run every callback already. */
  CHECK(atomic_load(&done) == N, "%d of %d callbacks had run when pool_free returned", atomic_load(&done), N);
  CHECK(took < 4000, "pool_free took %.0f ms", took);
  for (int i = 0; i < N; i++) {
    CHECK(atomic_load(&slots[i].runs) == 1 && atomic_load(&slots[i].code) == 1, "call %d: runs %d code %d", i,
          atomic_load(&slots[i].runs), atomic_load(&slots[i].code));
    CHECK_RC(grpcpool_call_cancel(slots[i].call), GRPCPOOL_INVALID_HANDLE);
  }
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_INVALID_HANDLE);
  sleep_ms(100);
  CHECK(atomic_load(&done) == N, "callbacks ran again after pool_free");
}

/* ---- the log callback ---- */

typedef struct {
  atomic_int lines;
  atomic_int bad;
  atomic_int claimed;
  char sample[200];
} log_state;

static void log_callback(void *user_data, int32_t level, const char *message, size_t message_len) {
  log_state *state = user_data;
  if (level < 1 || level > 4 || message == NULL || message_len == 0) atomic_fetch_add(&state->bad, 1);
  int expected = 0;
  if (message != NULL && atomic_compare_exchange_strong(&state->claimed, &expected, 1)) {
    size_t len = message_len < sizeof state->sample - 1 ? message_len : sizeof state->sample - 1;
    memcpy(state->sample, message, len);
    state->sample[len] = '\0';
    atomic_store(&state->claimed, 2);
  }
  atomic_fetch_add(&state->lines, 1);
}

static void check_log_callback(const char *target) {
  check_section("log callback at debug level receives lines; NULL stops it");
  static log_state state;
  atomic_init(&state.lines, 0);
  atomic_init(&state.bad, 0);
  atomic_init(&state.claimed, 0);
  CHECK_RC(grpcpool_set_log_callback(log_callback, &state, 4), GRPCPOOL_OK);
  /* A new pool dials a new connection, which logs at debug level. */
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(NULL, &pool), GRPCPOOL_OK);
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_unary(pool, target, ECHO, (const uint8_t *)"log", 3, NULL, 0, 10000, &response), GRPCPOOL_OK);
  grpcpool_response_free(response);
  grpcpool_pool_free(pool);
  CHECK(atomic_load(&state.lines) > 0, "no log lines at debug level");
  CHECK(atomic_load(&state.bad) == 0, "%d log lines with a bad level or empty text", atomic_load(&state.bad));
  if (atomic_load(&state.claimed) == 2) printf("       first log line: %s\n", state.sample);
  CHECK_RC(grpcpool_set_log_callback(NULL, NULL, 0), GRPCPOOL_OK);
  int before = atomic_load(&state.lines);
  pool = NULL;
  CHECK_RC(grpcpool_pool_new(NULL, &pool), GRPCPOOL_OK);
  response = NULL;
  CHECK_RC(grpcpool_unary(pool, target, ECHO, (const uint8_t *)"log", 3, NULL, 0, 10000, &response), GRPCPOOL_OK);
  grpcpool_response_free(response);
  grpcpool_pool_free(pool);
  CHECK(atomic_load(&state.lines) == before, "%d lines after the callback was removed",
        atomic_load(&state.lines) - before);
}

int main(void) {
  const char *target = check_env("GRPCPOOL_TEST_TARGET");
  int light = check_env_flag("GRPCPOOL_TEST_LIGHT");

  grpcpool_config_t *config = grpcpool_config_new();
  grpcpool_config_set(config, "max_connections_per_target", "4");
  grpcpool_config_set(config, "acquire_timeout", "60000ms");
  grpcpool_pool_t *pool = NULL;
  grpcpool_result rc = grpcpool_pool_new(config, &pool);
  grpcpool_config_free(config);
  if (rc != GRPCPOOL_OK) {
    fprintf(stderr, "pool_new: %s\n", grpcpool_last_error());
    return 1;
  }
  check_log_callback(target);
  check_load(pool, target, light ? 2 : 8, light ? 20 : 1000);
  check_cancellation(pool, target, light ? 20 : 200);
  check_blocking_in_callback(pool, target);
  grpcpool_pool_free(pool);
  check_free_with_calls_in_flight(target);
  return check_summary("test_async");
}
