/*
 * grpcpool_acquire_async: a lease handed to the callback and usable; a timeout against a target
 * that never becomes ready (a listener that accepts TCP but never speaks HTTP/2);
 * UNAVAILABLE for a closed port; a cancel before completion giving one GRPCPOOL_CANCELLED
 * callback, and cancels racing completion leaking no lease; pool shutdown ending a waiting
 * acquire with GRPCPOOL_POOL_CLOSED and pool free with GRPCPOOL_CANCELLED before it returns;
 * bad input refused at once without a callback.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "grpcpool.h"
#include "check.h"

#define ECHO "/grpcpool.test.Echo/Unary"

/* One acquire's outcome: the callback's arguments and how often it ran. */
typedef struct {
  atomic_int runs;
  atomic_int result;
  grpcpool_lease_t lease;
  char error[256];
} acquired;

static void on_acquired(void *user_data, grpcpool_result result, grpcpool_lease_t lease) {
  acquired *outcome = user_data;
  outcome->lease = lease;
  if (result != GRPCPOOL_OK) snprintf(outcome->error, sizeof outcome->error, "%s", grpcpool_last_error());
  atomic_store(&outcome->result, (int)result);
  atomic_fetch_add(&outcome->runs, 1);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Waits (at most 10 s) for the callback; true once it ran. */
static int wait_done(acquired *outcome) {
  for (int i = 0; i < 2000 && atomic_load(&outcome->runs) == 0; i++) sleep_ms(5);
  return atomic_load(&outcome->runs) > 0;
}

/* A loopback listener that never accepts: connects complete in the kernel's backlog, and the
 * HTTP/2 handshake never does. Returns the socket; `target` gets its http:// target. */
static int silent_listener(char *target, size_t size) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, (struct sockaddr *)&address, &length) != 0) {
    perror("silent listener");
    exit(2);
  }
  snprintf(target, size, "http://127.0.0.1:%d", ntohs(address.sin_port));
  return fd;
}

/* A target on a loopback port nothing listens on. */
static void closed_port(char *target, size_t size) {
  char listening[64];
  int fd = silent_listener(listening, sizeof listening);
  snprintf(target, size, "%s", listening);
  close(fd);
}

/* Whether the pool's stats say no lease is out. */
static int no_lease_out(grpcpool_pool_t *pool) {
  char *json = NULL;
  if (grpcpool_pool_stats_json(pool, &json) != GRPCPOOL_OK) return 0;
  int none = strstr(json, "\"leases_out\":0,") != NULL || strstr(json, "\"leases_out\":0}") != NULL;
  if (!none) fprintf(stderr, "stats: %s\n", json);
  grpcpool_string_free(json);
  return none;
}

static void check_acquired(grpcpool_pool_t *pool, const char *target) {
  check_section("an acquired lease reaches the callback and serves calls");
  acquired outcome;
  memset(&outcome, 0, sizeof outcome);
  grpcpool_call_t call = 0;
  CHECK_RC(grpcpool_acquire_async(pool, target, 5000, on_acquired, &outcome, &call), GRPCPOOL_OK);
  CHECK(call != 0, "no call handle");
  CHECK(wait_done(&outcome), "callback never ran");
  CHECK(atomic_load(&outcome.result) == GRPCPOOL_OK, "result %s: %s",
        grpcpool_result_name(atomic_load(&outcome.result)), outcome.error);
  CHECK(outcome.lease != 0, "no lease");
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_lease_unary(outcome.lease, ECHO, (const uint8_t *)"ok", 2, NULL, 0, 5000, &response),
           GRPCPOOL_OK);
  CHECK(response != NULL && grpcpool_response_code(response) == 0, "call on the lease");
  grpcpool_response_free(response);
  CHECK_RC(grpcpool_release(outcome.lease), GRPCPOOL_OK);
  /* The handle died with the callback. */
  CHECK_RC(grpcpool_call_cancel(call), GRPCPOOL_INVALID_HANDLE);
  CHECK(atomic_load(&outcome.runs) == 1, "callback ran %d times", atomic_load(&outcome.runs));
  CHECK(no_lease_out(pool), "a lease is still out");
}

static void check_not_ready(grpcpool_pool_t *pool) {
  check_section("a target that never becomes ready times out; a closed port is unavailable");
  char silent[64];
  int fd = silent_listener(silent, sizeof silent);
  acquired outcome;
  memset(&outcome, 0, sizeof outcome);
  CHECK_RC(grpcpool_acquire_async(pool, silent, 200, on_acquired, &outcome, NULL), GRPCPOOL_OK);
  CHECK(wait_done(&outcome), "callback never ran");
  CHECK(atomic_load(&outcome.result) == GRPCPOOL_ACQUIRE_TIMEOUT, "result %s: %s",
        grpcpool_result_name(atomic_load(&outcome.result)), outcome.error);
  CHECK(outcome.lease == 0 && outcome.error[0] != '\0', "lease %llu, error \"%s\"",
        (unsigned long long)outcome.lease, outcome.error);

  char closed[64];
  closed_port(closed, sizeof closed);
  memset(&outcome, 0, sizeof outcome);
  CHECK_RC(grpcpool_acquire_async(pool, closed, 5000, on_acquired, &outcome, NULL), GRPCPOOL_OK);
  CHECK(wait_done(&outcome), "callback never ran");
  CHECK(atomic_load(&outcome.result) == GRPCPOOL_UNAVAILABLE, "result %s: %s",
        grpcpool_result_name(atomic_load(&outcome.result)), outcome.error);
  close(fd);
}

static void check_cancel(grpcpool_pool_t *pool, const char *target, int light) {
  check_section("cancel: one GRPCPOOL_CANCELLED callback; racing completion leaks no lease");
  char silent[64];
  int fd = silent_listener(silent, sizeof silent);
  acquired outcome;
  memset(&outcome, 0, sizeof outcome);
  grpcpool_call_t call = 0;
  CHECK_RC(grpcpool_acquire_async(pool, silent, 30000, on_acquired, &outcome, &call), GRPCPOOL_OK);
  sleep_ms(50);
  CHECK(atomic_load(&outcome.runs) == 0, "completed before the cancel");
  CHECK_RC(grpcpool_call_cancel(call), GRPCPOOL_OK);
  CHECK(wait_done(&outcome), "callback never ran after the cancel");
  CHECK(atomic_load(&outcome.result) == GRPCPOOL_CANCELLED, "result %s",
        grpcpool_result_name(atomic_load(&outcome.result)));
  CHECK_RC(grpcpool_call_cancel(call), GRPCPOOL_INVALID_HANDLE);
  sleep_ms(50);
  CHECK(atomic_load(&outcome.runs) == 1, "callback ran %d times", atomic_load(&outcome.runs));
  close(fd);

  /* Cancelled at once against a ready target: either the cancel won (CANCELLED, and a slot
   * found meanwhile went back) or the lease came first (the cancel is refused). */
  int rounds = light ? 10 : 100, cancelled = 0, granted = 0, once = 1;
  for (int i = 0; i < rounds; i++) {
    acquired racing;
    memset(&racing, 0, sizeof racing);
    grpcpool_call_t handle = 0;
    if (grpcpool_acquire_async(pool, target, 5000, on_acquired, &racing, &handle) != GRPCPOOL_OK) break;
    grpcpool_result cancel = grpcpool_call_cancel(handle);
    if (!wait_done(&racing)) break;
    int result = atomic_load(&racing.result);
    if (cancel == GRPCPOOL_OK && result == GRPCPOOL_CANCELLED) {
      cancelled++;
    } else if (cancel == GRPCPOOL_INVALID_HANDLE && result == GRPCPOOL_OK) {
      granted++;
      grpcpool_release(racing.lease);
    }
    if (atomic_load(&racing.runs) != 1) once = 0;
  }
  CHECK(cancelled + granted == rounds, "%d cancelled + %d granted of %d", cancelled, granted, rounds);
  CHECK(once, "a callback ran other than once");
  CHECK(no_lease_out(pool), "a lease leaked");
  printf("racing cancels: %d cancelled, %d granted\n", cancelled, granted);
}

static void check_bad_input(grpcpool_pool_t *pool, const char *target) {
  check_section("bad input is refused at once, without a callback or a handle");
  acquired outcome;
  memset(&outcome, 0, sizeof outcome);
  grpcpool_call_t call = 7;
  CHECK_RC(grpcpool_acquire_async(pool, "nonsense://x", 100, on_acquired, &outcome, &call), GRPCPOOL_INVALID_TARGET);
  CHECK_RC(grpcpool_acquire_async(pool, target, 100, NULL, &outcome, &call), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_acquire_async(NULL, target, 100, on_acquired, &outcome, &call), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_acquire_async(pool, NULL, 100, on_acquired, &outcome, &call), GRPCPOOL_NULL_ARGUMENT);
  CHECK(call == 7, "out_call written on failure");
  sleep_ms(20);
  CHECK(atomic_load(&outcome.runs) == 0, "a callback ran for refused input");
}

static void check_shutdown_and_free(const char *target) {
  check_section("shutdown ends a waiting acquire with POOL_CLOSED; free with CANCELLED");
  char silent[64];
  int fd = silent_listener(silent, sizeof silent);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(NULL, &pool), GRPCPOOL_OK);
  if (pool == NULL) return;
  acquired waiting;
  memset(&waiting, 0, sizeof waiting);
  CHECK_RC(grpcpool_acquire_async(pool, silent, 30000, on_acquired, &waiting, NULL), GRPCPOOL_OK);
  sleep_ms(50);
  CHECK_RC(grpcpool_pool_shutdown(pool, 0, NULL), GRPCPOOL_OK);
  CHECK(wait_done(&waiting), "callback never ran after the shutdown");
  CHECK(atomic_load(&waiting.result) == GRPCPOOL_POOL_CLOSED, "result %s: %s",
        grpcpool_result_name(atomic_load(&waiting.result)), waiting.error);
  /* A closed pool refuses a new acquire at once. */
  CHECK_RC(grpcpool_acquire_async(pool, target, 100, on_acquired, &waiting, NULL), GRPCPOOL_POOL_CLOSED);
  grpcpool_pool_free(pool);
  CHECK(atomic_load(&waiting.runs) == 1, "callback ran %d times", atomic_load(&waiting.runs));

  pool = NULL;
  CHECK_RC(grpcpool_pool_new(NULL, &pool), GRPCPOOL_OK);
  if (pool == NULL) return;
  acquired freed;
  memset(&freed, 0, sizeof freed);
  CHECK_RC(grpcpool_acquire_async(pool, silent, 30000, on_acquired, &freed, NULL), GRPCPOOL_OK);
  sleep_ms(50);
  grpcpool_pool_free(pool);
  /* No waiting: the callback ran before grpcpool_pool_free returned. */
  CHECK(atomic_load(&freed.runs) == 1, "callback ran %d times by the end of pool_free", atomic_load(&freed.runs));
  CHECK(atomic_load(&freed.result) == GRPCPOOL_CANCELLED, "result %s",
        grpcpool_result_name(atomic_load(&freed.result)));
  close(fd);
}

int main(void) {
  const char *target = check_env("GRPCPOOL_TEST_TARGET");
  int light = check_env_flag("GRPCPOOL_TEST_LIGHT");
  grpcpool_pool_t *pool = NULL;
  if (grpcpool_pool_new(NULL, &pool) != GRPCPOOL_OK) {
    fprintf(stderr, "pool_new: %s\n", grpcpool_last_error());
    return 1;
  }
  check_acquired(pool, target);
  check_not_ready(pool);
  check_cancel(pool, target, light);
  check_bad_input(pool, target);
  grpcpool_pool_free(pool);
  check_shutdown_and_free(target);
  return check_summary("test_acquire_async");
}
