/*
 * Streaming calls through the C ABI against the echo server: server, client and bidi
 * streaming (blocking), a sender thread and a receiver thread on one stream, headers and
 * trailers, statuses, deadlines, cancel waking a blocked recv from another thread, BUSY for a
 * second recv, the slot a stream holds, freeing mid-stream (the server sees the reset), stale
 * and forged handles, bad input, and the callback flavours (each callback exactly once, many
 * streams at once, free and pool free with operations pending).
 *
 * GRPCPOOL_TEST_LIGHT (set for the valgrind pass) shrinks the loops.
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

#define SERVER_STREAM "/grpcpool.test.Echo/ServerStream"
#define CLIENT_STREAM "/grpcpool.test.Echo/ClientStream"
#define BIDI "/grpcpool.test.Echo/Bidi"

static int light;

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
    sleep_ms(2);
  }
  return 1;
}

static grpcpool_metadata_entry_t ascii(const char *key, const char *value) {
  grpcpool_metadata_entry_t entry = {key, (const uint8_t *)value, strlen(value)};
  return entry;
}

static grpcpool_result send_text(grpcpool_stream_t stream, const char *text) {
  return grpcpool_stream_send(stream, (const uint8_t *)text, strlen(text));
}

/* A sentinel for out-parameters: a function that fails must leave it alone. */
static grpcpool_message_t *const UNTOUCHED = (grpcpool_message_t *)(uintptr_t)0x5a5a;

/* Receives one message into buf (NUL-terminated): its length, -1 at the end, -2 on an error. */
static int recv_text(grpcpool_stream_t stream, char *buf, size_t cap) {
  grpcpool_message_t *message = UNTOUCHED;
  grpcpool_result rc = grpcpool_stream_recv(stream, &message);
  if (rc != GRPCPOOL_OK) {
    fprintf(stderr, "recv: %s: %s\n", grpcpool_result_name(rc), grpcpool_last_error());
    return -2;
  }
  if (message == NULL) return -1;
  if (message == UNTOUCHED) return -2;
  grpcpool_bytes_t bytes = grpcpool_message_bytes(message);
  size_t len = bytes.len < cap - 1 ? bytes.len : cap - 1;
  memcpy(buf, bytes.data, len);
  buf[len] = '\0';
  grpcpool_message_free(message);
  return (int)bytes.len;
}

/* Finishes the stream: its status code (-100 on an error), the response in *out if not NULL. */
static int finish_code(grpcpool_stream_t stream, grpcpool_response_t **out) {
  grpcpool_response_t *response = NULL;
  grpcpool_result rc = grpcpool_stream_finish(stream, &response);
  if (rc != GRPCPOOL_OK) {
    fprintf(stderr, "finish: %s: %s\n", grpcpool_result_name(rc), grpcpool_last_error());
    return -100;
  }
  int code = grpcpool_response_code(response);
  if (out != NULL) {
    *out = response;
  } else {
    grpcpool_response_free(response);
  }
  return code;
}

/* 1 if the list has `key` with exactly `len` bytes `value`. */
static int metadata_has(const grpcpool_metadata_t *metadata, const char *key, const void *value,
                        size_t len) {
  for (size_t i = 0; i < grpcpool_metadata_count(metadata); i++) {
    grpcpool_metadata_entry_t entry;
    if (grpcpool_metadata_get(metadata, i, &entry) != GRPCPOOL_OK) return 0;
    if (strcmp(entry.key, key) == 0) {
      return entry.value_len == len && (len == 0 || memcmp(entry.value, value, len) == 0);
    }
  }
  return 0;
}

/* 1 if the response's trailers (headers when !trailers) have `key` = `value`. */
static int response_has(const grpcpool_response_t *response, int trailers, const char *key,
                        const char *value) {
  size_t count = trailers ? grpcpool_response_trailer_count(response)
                          : grpcpool_response_header_count(response);
  for (size_t i = 0; i < count; i++) {
    grpcpool_metadata_entry_t entry;
    grpcpool_result rc = trailers ? grpcpool_response_trailer(response, i, &entry)
                                  : grpcpool_response_header(response, i, &entry);
    if (rc != GRPCPOOL_OK) return 0;
    if (strcmp(entry.key, key) == 0) {
      return entry.value_len == strlen(value) && memcmp(entry.value, value, entry.value_len) == 0;
    }
  }
  return 0;
}

/* ---- server, client and bidi streaming, blocking ---- */

static void check_server_streaming(grpcpool_pool_t *pool, const char *target) {
  check_section("server streaming: 5 messages, headers, trailers, OK; on a lease, which stays the caller's");
  const uint8_t raw[] = {0x00, 0x01, 0xff};
  grpcpool_metadata_entry_t metadata[] = {
      ascii("x-count", "5"),
      ascii("x-echo-tag", "server-stream"),
      {"x-echo-raw-bin", raw, sizeof raw},
      ascii("x-trailer-note", "done"),
  };
  grpcpool_stream_t stream = 0;
  CHECK_RC(grpcpool_open_stream(pool, target, SERVER_STREAM, metadata, 4, 10000, &stream), GRPCPOOL_OK);
  CHECK(stream != 0, "no handle");
  CHECK_RC(send_text(stream, "tick"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_close_send(stream), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_close_send(stream), GRPCPOOL_OK); /* again: harmless */
  CHECK_RC(send_text(stream, "late"), GRPCPOOL_STREAM_CLOSED);

  grpcpool_metadata_t *headers = NULL;
  CHECK_RC(grpcpool_stream_headers(stream, &headers), GRPCPOOL_OK);
  CHECK(headers != NULL, "no headers");
  CHECK(metadata_has(headers, "x-echo-tag", "server-stream", 13), "x-echo-tag header");
  CHECK(metadata_has(headers, "x-echo-raw-bin", raw, sizeof raw), "binary header not decoded");
  grpcpool_metadata_entry_t entry;
  CHECK_RC(grpcpool_metadata_get(headers, grpcpool_metadata_count(headers), &entry),
           GRPCPOOL_INVALID_ARGUMENT);
  grpcpool_metadata_free(headers);

  char buf[64];
  int received = 0;
  int n;
  while ((n = recv_text(stream, buf, sizeof buf)) >= 0) {
    CHECK(strcmp(buf, "tick") == 0, "message %d: %s", received, buf);
    received++;
  }
  CHECK(n == -1, "recv failed");
  CHECK(received == 5, "%d messages, expected 5", received);
  CHECK(recv_text(stream, buf, sizeof buf) == -1, "recv after the end is the end again");

  grpcpool_response_t *response = NULL;
  CHECK(finish_code(stream, &response) == 0, "status");
  CHECK(response != NULL && grpcpool_response_body(response).len == 0, "finish has a body");
  CHECK(response_has(response, 0, "x-echo-tag", "server-stream"), "headers in the final response");
  CHECK(response_has(response, 1, "x-trailer-note", "done"), "x-trailer-note trailer");
  grpcpool_response_free(response);
  CHECK(finish_code(stream, NULL) == 0, "finish again gives the same status");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);

  /* On a lease: the stream uses the lease's slot; the lease stays the caller's. */
  grpcpool_lease_t lease = 0;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, target, 10000, &lease), GRPCPOOL_OK);
  grpcpool_metadata_entry_t three = ascii("x-count", "3");
  CHECK_RC(grpcpool_lease_open_stream(lease, SERVER_STREAM, &three, 1, 10000, &stream), GRPCPOOL_OK);
  grpcpool_stream_t second = 0;
  CHECK_RC(grpcpool_lease_open_stream(lease, SERVER_STREAM, &three, 1, 10000, &second), GRPCPOOL_BUSY);
  CHECK(second == 0, "out-param written on BUSY");
  CHECK_RC(send_text(stream, "on a lease"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_close_send(stream), GRPCPOOL_OK);
  received = 0;
  while (recv_text(stream, buf, sizeof buf) >= 0) received += strcmp(buf, "on a lease") == 0;
  CHECK(received == 3, "%d messages on the lease, expected 3", received);
  CHECK(finish_code(stream, NULL) == 0, "status on the lease");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
  /* The call is over: the lease takes calls and streams again, then is released as usual. */
  grpcpool_response_t *unary = NULL;
  CHECK_RC(grpcpool_lease_unary(lease, "/grpcpool.test.Echo/Unary", (const uint8_t *)"x", 1, NULL, 0, 10000, &unary),
           GRPCPOOL_OK);
  CHECK(unary != NULL && grpcpool_response_code(unary) == 0, "a call on the lease after its stream");
  grpcpool_response_free(unary);
  CHECK_RC(grpcpool_lease_open_stream(lease, SERVER_STREAM, &three, 1, 10000, &stream), GRPCPOOL_OK);
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK); /* the stream keeps the slot until it ends */
  CHECK_RC(send_text(stream, "released"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_close_send(stream), GRPCPOOL_OK);
  CHECK(finish_code(stream, NULL) == 0, "status after the lease was released");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
}

static void check_client_streaming(grpcpool_pool_t *pool, const char *target) {
  check_section("client streaming: 4 messages joined into one reply");
  grpcpool_stream_t stream = 0;
  CHECK_RC(grpcpool_open_stream(pool, target, CLIENT_STREAM, NULL, 0, 10000, &stream), GRPCPOOL_OK);
  const char *parts[] = {"alpha ", "beta ", "", "gamma"};
  for (int i = 0; i < 4; i++) CHECK_RC(send_text(stream, parts[i]), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_send(stream, NULL, 0), GRPCPOOL_OK); /* NULL is fine with 0 bytes */
  CHECK_RC(grpcpool_stream_close_send(stream), GRPCPOOL_OK);
  char buf[64];
  CHECK(recv_text(stream, buf, sizeof buf) == 16 && strcmp(buf, "alpha beta gamma") == 0, "reply %s", buf);
  CHECK(recv_text(stream, buf, sizeof buf) == -1, "one reply only");
  CHECK(finish_code(stream, NULL) == 0, "status");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
}

static void check_bidi_ping_pong(grpcpool_pool_t *pool, const char *target) {
  check_section("bidi ping-pong: each reply read before the next send, then half-close and OK");
  grpcpool_stream_t stream = 0;
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 0, 20000, &stream), GRPCPOOL_OK);
  int rounds = light ? 5 : 50;
  int matched = 0;
  for (int i = 0; i < rounds; i++) {
    char out[32], in[32];
    snprintf(out, sizeof out, "ping %d", i);
    CHECK_RC(send_text(stream, out), GRPCPOOL_OK);
    matched += recv_text(stream, in, sizeof in) >= 0 && strcmp(in, out) == 0;
  }
  CHECK(matched == rounds, "%d of %d replies matched", matched, rounds);
  CHECK_RC(grpcpool_stream_close_send(stream), GRPCPOOL_OK);
  char buf[32];
  CHECK(recv_text(stream, buf, sizeof buf) == -1, "end after half-close");
  CHECK(finish_code(stream, NULL) == 0, "status");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);

  /* finish half-closes by itself and drops replies not read. */
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 0, 20000, &stream), GRPCPOOL_OK);
  for (int i = 0; i < 3; i++) CHECK_RC(send_text(stream, "unread"), GRPCPOOL_OK);
  CHECK(finish_code(stream, NULL) == 0, "finish without close_send or recv");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
}

/* ---- one thread sends while another receives ---- */

typedef struct {
  grpcpool_stream_t stream;
  int count;
  size_t size;
  int failures;
  int received;
  int out_of_order;
} duplex_arg;

static void fill(char *buf, size_t size, int i) {
  memset(buf, 'a' + i % 26, size);
  snprintf(buf, size, "%08d", i);
}

static void *sender_main(void *p) {
  duplex_arg *arg = p;
  char *buf = malloc(arg->size);
  for (int i = 0; i < arg->count; i++) {
    fill(buf, arg->size, i);
    if (grpcpool_stream_send(arg->stream, (const uint8_t *)buf, arg->size) != GRPCPOOL_OK) arg->failures++;
  }
  if (grpcpool_stream_close_send(arg->stream) != GRPCPOOL_OK) arg->failures++;
  free(buf);
  return NULL;
}

static void *receiver_main(void *p) {
  duplex_arg *arg = p;
  char *expected = malloc(arg->size);
  for (;;) {
    grpcpool_message_t *message = NULL;
    if (grpcpool_stream_recv(arg->stream, &message) != GRPCPOOL_OK) {
      arg->failures++;
      break;
    }
    if (message == NULL) break;
    grpcpool_bytes_t bytes = grpcpool_message_bytes(message);
    fill(expected, arg->size, arg->received);
    if (bytes.len != arg->size || memcmp(bytes.data, expected, arg->size) != 0) arg->out_of_order++;
    arg->received++;
    grpcpool_message_free(message);
  }
  free(expected);
  return NULL;
}

static void check_duplex_threads(grpcpool_pool_t *pool, const char *target) {
  static char name[128];
  int count = light ? 40 : 1000;
  size_t size = 16 * 1024;
  snprintf(name, sizeof name, "bidi with a sender thread and a receiver thread: %d x %zu KiB each way", count,
           size / 1024);
  check_section(name);
  grpcpool_stream_t stream = 0;
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 0, 120000, &stream), GRPCPOOL_OK);
  duplex_arg arg = {stream, count, size, 0, 0, 0};
  duplex_arg recv_arg = arg;
  pthread_t sender, receiver;
  CHECK(pthread_create(&receiver, NULL, receiver_main, &recv_arg) == 0, "pthread_create");
  CHECK(pthread_create(&sender, NULL, sender_main, &arg) == 0, "pthread_create");
  pthread_join(sender, NULL);
  pthread_join(receiver, NULL);
  CHECK(arg.failures == 0 && recv_arg.failures == 0, "send failures %d, recv failures %d", arg.failures,
        recv_arg.failures);
  CHECK(recv_arg.received == count, "received %d of %d", recv_arg.received, count);
  CHECK(recv_arg.out_of_order == 0, "%d messages wrong or out of order", recv_arg.out_of_order);
  CHECK(finish_code(stream, NULL) == 0, "status");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
}

/* ---- cancel, busy, deadline ---- */

typedef struct {
  grpcpool_stream_t stream;
  grpcpool_result rc;
  grpcpool_message_t *message;
  double waited_ms;
  atomic_int started;
} blocked_recv;

static void *blocked_recv_main(void *p) {
  blocked_recv *arg = p;
  arg->message = UNTOUCHED;
  atomic_store(&arg->started, 1);
  double started = now_ms();
  arg->rc = grpcpool_stream_recv(arg->stream, &arg->message);
  arg->waited_ms = now_ms() - started;
  return NULL;
}

static void check_cancel_wakes_recv(grpcpool_pool_t *pool, const char *target) {
  check_section("cancel from another thread wakes a blocked recv; a second recv is BUSY; send goes on");
  grpcpool_stream_t stream = 0;
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 0, 60000, &stream), GRPCPOOL_OK);
  blocked_recv arg = {.stream = stream};
  atomic_init(&arg.started, 0);
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, blocked_recv_main, &arg) == 0, "pthread_create");
  wait_for(&arg.started, 1, 5000);
  sleep_ms(200);
  /* The recv half is taken; the send half is free. */
  grpcpool_message_t *message = UNTOUCHED;
  CHECK_RC(grpcpool_stream_recv(stream, &message), GRPCPOOL_BUSY);
  CHECK(message == UNTOUCHED, "out-param written on BUSY");
  grpcpool_metadata_t *headers = NULL;
  CHECK_RC(grpcpool_stream_headers(stream, &headers), GRPCPOOL_BUSY);
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_stream_finish(stream, &response), GRPCPOOL_BUSY);
  CHECK(response == NULL, "out-param written on BUSY");
  /* Sending while the other thread waits: it receives the echo. */
  CHECK_RC(send_text(stream, "while you wait"), GRPCPOOL_OK);
  pthread_join(thread, NULL);
  CHECK(arg.rc == GRPCPOOL_OK && arg.message != NULL && arg.message != UNTOUCHED, "the waiting recv: %s",
        grpcpool_result_name(arg.rc));
  if (arg.rc == GRPCPOOL_OK && arg.message != NULL && arg.message != UNTOUCHED) {
    grpcpool_bytes_t bytes = grpcpool_message_bytes(arg.message);
    CHECK(bytes.len == 14 && memcmp(bytes.data, "while you wait", 14) == 0, "echo");
    grpcpool_message_free(arg.message);
  }

  /* Now block again and cancel from here. */
  atomic_store(&arg.started, 0);
  CHECK(pthread_create(&thread, NULL, blocked_recv_main, &arg) == 0, "pthread_create");
  wait_for(&arg.started, 1, 5000);
  sleep_ms(200);
  double cancelled_at = now_ms();
  CHECK_RC(grpcpool_stream_cancel(stream), GRPCPOOL_OK);
  pthread_join(thread, NULL);
  double woke_after = now_ms() - cancelled_at;
  CHECK(arg.rc == GRPCPOOL_OK && arg.message == NULL, "cancelled recv: %s, message %p", grpcpool_result_name(arg.rc),
        (void *)arg.message);
  CHECK(arg.waited_ms >= 150, "recv returned after %.0f ms, before the cancel", arg.waited_ms);
  CHECK(woke_after < 2000, "recv woke %.0f ms after the cancel", woke_after);
  CHECK_RC(send_text(stream, "after cancel"), GRPCPOOL_STREAM_CLOSED);
  CHECK_RC(grpcpool_stream_cancel(stream), GRPCPOOL_OK); /* again: nothing to do */
  char buf[16];
  CHECK(recv_text(stream, buf, sizeof buf) == -1, "recv after cancel is the end");
  CHECK(finish_code(stream, NULL) == 1, "status after cancel is CANCELLED");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);

  /* Cancel before anything was read; cancel after the end changes nothing. */
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 0, 10000, &stream), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_cancel(stream), GRPCPOOL_OK);
  CHECK(finish_code(stream, NULL) == 1, "cancelled at once");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
  CHECK_RC(grpcpool_open_stream(pool, target, CLIENT_STREAM, NULL, 0, 10000, &stream), GRPCPOOL_OK);
  CHECK(finish_code(stream, NULL) == 0, "empty client stream");
  CHECK_RC(grpcpool_stream_cancel(stream), GRPCPOOL_OK);
  CHECK(finish_code(stream, NULL) == 0, "cancel after the end keeps OK");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
}

static void check_deadline(grpcpool_pool_t *pool, const char *target) {
  check_section("deadline: a waiting recv ends at the deadline with DEADLINE_EXCEEDED");
  grpcpool_stream_t stream = 0;
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 0, 300, &stream), GRPCPOOL_OK);
  double started = now_ms();
  char buf[16];
  CHECK(recv_text(stream, buf, sizeof buf) == -1, "recv ends");
  double waited = now_ms() - started;
  CHECK(waited >= 200 && waited < 3000, "recv waited %.0f ms for a 300 ms deadline", waited);
  CHECK_RC(send_text(stream, "too late"), GRPCPOOL_STREAM_CLOSED);
  CHECK(finish_code(stream, NULL) == 4, "DEADLINE_EXCEEDED");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);

  /* Messages arrive, then the deadline cuts the rest. */
  grpcpool_metadata_entry_t slow[] = {ascii("x-count", "100"), ascii("x-interval-ms", "100")};
  CHECK_RC(grpcpool_open_stream(pool, target, SERVER_STREAM, slow, 2, 450, &stream), GRPCPOOL_OK);
  CHECK_RC(send_text(stream, "slow"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_close_send(stream), GRPCPOOL_OK);
  int received = 0;
  while (recv_text(stream, buf, sizeof buf) >= 0) received++;
  CHECK(received >= 1 && received < 100, "%d messages before the deadline", received);
  CHECK(finish_code(stream, NULL) == 4, "DEADLINE_EXCEEDED after some messages");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
}

static void check_status_and_trailers(grpcpool_pool_t *pool, const char *target) {
  check_section("a non-OK status after messages, with its message and trailers; unknown method");
  grpcpool_metadata_entry_t metadata[] = {
      ascii("x-count", "2"),
      ascii("x-status-code", "9"),
      ascii("x-status-message", "not now"),
      ascii("x-trailer-why", "testing"),
  };
  grpcpool_stream_t stream = 0;
  CHECK_RC(grpcpool_open_stream(pool, target, SERVER_STREAM, metadata, 4, 10000, &stream), GRPCPOOL_OK);
  CHECK_RC(send_text(stream, "m"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_close_send(stream), GRPCPOOL_OK);
  char buf[16];
  int received = 0;
  while (recv_text(stream, buf, sizeof buf) >= 0) received++;
  CHECK(received == 2, "%d messages before the status", received);
  grpcpool_response_t *response = NULL;
  CHECK(finish_code(stream, &response) == 9, "FAILED_PRECONDITION");
  CHECK(strcmp(grpcpool_response_message(response), "not now") == 0, "message %s",
        grpcpool_response_message(response));
  CHECK(response_has(response, 1, "x-trailer-why", "testing"), "trailer with the status");
  grpcpool_response_free(response);
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);

  /* Bidi ending with a status after echoing. */
  grpcpool_metadata_entry_t bidi_status[] = {ascii("x-status-code", "8"), ascii("x-status-message", "full")};
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, bidi_status, 2, 10000, &stream), GRPCPOOL_OK);
  CHECK_RC(send_text(stream, "one"), GRPCPOOL_OK);
  CHECK(recv_text(stream, buf, sizeof buf) == 3, "echo before the status");
  CHECK(finish_code(stream, &response) == 8, "RESOURCE_EXHAUSTED");
  CHECK(strcmp(grpcpool_response_message(response), "full") == 0, "bidi status message");
  grpcpool_response_free(response);
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);

  /* A method the server does not have: opens (it is valid), ends UNIMPLEMENTED, no headers. */
  CHECK_RC(grpcpool_open_stream(pool, target, "/grpcpool.test.Echo/Nope", NULL, 0, 10000, &stream), GRPCPOOL_OK);
  grpcpool_metadata_t *headers = (grpcpool_metadata_t *)(uintptr_t)1;
  CHECK_RC(grpcpool_stream_headers(stream, &headers), GRPCPOOL_OK);
  CHECK(headers == NULL, "headers of a trailers-only answer");
  CHECK(recv_text(stream, buf, sizeof buf) == -1, "no messages");
  CHECK_RC(send_text(stream, "after the end"), GRPCPOOL_STREAM_CLOSED);
  CHECK(finish_code(stream, NULL) == 12, "UNIMPLEMENTED");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
}

/* ---- slots, freeing mid-stream, the server seeing the reset ---- */

static void check_slots_and_free(const char *limited) {
  check_section("a stream holds its slot until it ends; freeing mid-stream cancels and returns it; "
                "the server sees the resets");
  /* One connection to a server allowing 2 streams: two open streams take every slot. */
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set(config, "max_connections_per_target", "1"), GRPCPOOL_OK);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_config_free(config);

  char buf[16];
  grpcpool_stream_t streams[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    CHECK_RC(grpcpool_open_stream(pool, limited, BIDI, NULL, 0, 10000, &streams[i]), GRPCPOOL_OK);
    CHECK_RC(send_text(streams[i], "hold"), GRPCPOOL_OK);
    CHECK(recv_text(streams[i], buf, sizeof buf) == 4, "echo %d", i);
  }
  grpcpool_lease_t lease = 0;
  CHECK_RC(grpcpool_acquire(pool, limited, 200, &lease), GRPCPOOL_ACQUIRE_TIMEOUT);
  grpcpool_stream_t third = 0;
  CHECK_RC(grpcpool_open_stream(pool, limited, BIDI, NULL, 0, 200, &third), GRPCPOOL_ACQUIRE_TIMEOUT);
  CHECK(third == 0, "out-param written on failure");
  /* Freed mid-stream: cancelled, and the slot comes back. */
  CHECK_RC(grpcpool_stream_free(streams[0]), GRPCPOOL_OK);
  CHECK_RC(grpcpool_acquire(pool, limited, 5000, &lease), GRPCPOOL_OK);
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);
  /* A stream that ended gives its slot back before it is freed. */
  CHECK_RC(grpcpool_stream_close_send(streams[1]), GRPCPOOL_OK);
  CHECK(finish_code(streams[1], NULL) == 0, "status");
  grpcpool_lease_t leases[2] = {0, 0};
  CHECK_RC(grpcpool_acquire(pool, limited, 5000, &leases[0]), GRPCPOOL_OK);
  CHECK_RC(grpcpool_acquire(pool, limited, 5000, &leases[1]), GRPCPOOL_OK);
  CHECK_RC(grpcpool_release(leases[0]), GRPCPOOL_OK);
  CHECK_RC(grpcpool_release(leases[1]), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_free(streams[1]), GRPCPOOL_OK);

  /* The server counts at most 2 streams: were the streams freed or cancelled mid-call still
   * open there, the next ones on this same connection would be refused. */
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 2; i++) {
      CHECK_RC(grpcpool_open_stream(pool, limited, BIDI, NULL, 0, 5000, &streams[i]), GRPCPOOL_OK);
      CHECK_RC(send_text(streams[i], "open"), GRPCPOOL_OK);
      CHECK(recv_text(streams[i], buf, sizeof buf) == 4, "round %d stream %d echo", round, i);
    }
    CHECK_RC(grpcpool_stream_cancel(streams[0]), GRPCPOOL_OK);
    CHECK_RC(grpcpool_stream_free(streams[0]), GRPCPOOL_OK);
    CHECK_RC(grpcpool_stream_free(streams[1]), GRPCPOOL_OK);
  }
  char *json = NULL;
  CHECK_RC(grpcpool_pool_stats_json(pool, &json), GRPCPOOL_OK);
  CHECK(json != NULL && strstr(json, "\"connections\":{\"connecting\":0,\"ready\":1") != NULL,
        "one connection all along: %s", json ? json : "(null)");
  grpcpool_string_free(json);
  grpcpool_pool_free(pool);
}

static void check_stale_handles(grpcpool_pool_t *pool, const char *target) {
  check_section("stale, double-freed and forged stream handles give INVALID_HANDLE");
  grpcpool_stream_t stream = 0;
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 0, 10000, &stream), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
  grpcpool_stream_t forged[] = {stream, 1, 12345, UINT64_MAX, stream ^ (1ull << 40), stream + 7};
  for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
    grpcpool_stream_t handle = forged[i];
    grpcpool_message_t *message = UNTOUCHED;
    grpcpool_response_t *response = NULL;
    grpcpool_metadata_t *headers = NULL;
    CHECK_RC(send_text(handle, "x"), GRPCPOOL_INVALID_HANDLE);
    CHECK_RC(grpcpool_stream_recv(handle, &message), GRPCPOOL_INVALID_HANDLE);
    CHECK(message == UNTOUCHED, "out-param written");
    CHECK_RC(grpcpool_stream_headers(handle, &headers), GRPCPOOL_INVALID_HANDLE);
    CHECK_RC(grpcpool_stream_finish(handle, &response), GRPCPOOL_INVALID_HANDLE);
    CHECK(response == NULL && headers == NULL, "out-param written");
    CHECK_RC(grpcpool_stream_close_send(handle), GRPCPOOL_INVALID_HANDLE);
    CHECK_RC(grpcpool_stream_cancel(handle), GRPCPOOL_INVALID_HANDLE);
    CHECK_RC(grpcpool_stream_free(handle), GRPCPOOL_INVALID_HANDLE);
  }
  CHECK(strstr(grpcpool_last_error(), "stream") != NULL, "last error: %s", grpcpool_last_error());
  CHECK_RC(grpcpool_stream_free(0), GRPCPOOL_OK); /* 0 is ignored, as NULL */
  /* A lease is not a stream, nor the reverse. */
  grpcpool_lease_t lease = 0;
  CHECK_RC(grpcpool_acquire(pool, target, 10000, &lease), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_cancel(lease), GRPCPOOL_INVALID_HANDLE);
  CHECK_RC(grpcpool_lease_open_stream(lease, BIDI, NULL, 0, 10000, &stream), GRPCPOOL_OK);
  CHECK_RC(grpcpool_release(stream), GRPCPOOL_INVALID_HANDLE);
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);
  CHECK_RC(grpcpool_lease_open_stream(lease, BIDI, NULL, 0, 10000, &stream), GRPCPOOL_INVALID_HANDLE);
}

/* ---- bad input ---- */

static void noop_send_callback(void *user_data, grpcpool_result result) {
  (void)user_data;
  (void)result;
}

static atomic_int unary_done;
static void unary_done_callback(void *user_data, grpcpool_response_t *response) {
  (void)user_data;
  grpcpool_response_free(response);
  atomic_fetch_add(&unary_done, 1);
}

static void check_bad_input(const char *target) {
  check_section("bad input: NULL, bad method, metadata, target, sizes; the lease survives; BUSY lease");
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set(config, "max_send_message_size", "1024"), GRPCPOOL_OK);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_config_free(config);
  grpcpool_stream_t stream = 0;
  CHECK_RC(grpcpool_open_stream(NULL, target, BIDI, NULL, 0, 1000, &stream), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_open_stream(pool, NULL, BIDI, NULL, 0, 1000, &stream), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_open_stream(pool, target, NULL, NULL, 0, 1000, &stream), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 0, 1000, NULL), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 2, 1000, &stream), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_open_stream(pool, target, "no-slash", NULL, 0, 1000, &stream), GRPCPOOL_INVALID_METHOD);
  CHECK_RC(grpcpool_open_stream(pool, "nonsense://x", BIDI, NULL, 0, 1000, &stream), GRPCPOOL_INVALID_TARGET);
  grpcpool_metadata_entry_t bad = ascii("Bad Key", "v");
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, &bad, 1, 1000, &stream), GRPCPOOL_INVALID_METADATA);
  CHECK(stream == 0, "out-param written on failure");

  grpcpool_lease_t lease = 0;
  CHECK_RC(grpcpool_acquire(pool, target, 10000, &lease), GRPCPOOL_OK);
  CHECK_RC(grpcpool_lease_open_stream(lease, "no-slash", NULL, 0, 1000, &stream), GRPCPOOL_INVALID_METHOD);
  CHECK_RC(grpcpool_lease_open_stream(lease, NULL, NULL, 0, 1000, &stream), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_lease_open_stream(lease, BIDI, &bad, 1, 1000, &stream), GRPCPOOL_INVALID_METADATA);
  CHECK_RC(grpcpool_lease_open_stream(lease, BIDI, NULL, 0, 1000, NULL), GRPCPOOL_NULL_ARGUMENT);
  /* A lease with an async call in flight is busy; once the call is done it opens. */
  grpcpool_metadata_entry_t sleep = ascii("x-sleep-ms", "300");
  atomic_store(&unary_done, 0);
  CHECK_RC(grpcpool_lease_unary_async(lease, "/grpcpool.test.Echo/Unary", NULL, 0, &sleep, 1, 10000,
                                      unary_done_callback, NULL, NULL),
           GRPCPOOL_OK);
  CHECK_RC(grpcpool_lease_open_stream(lease, BIDI, NULL, 0, 10000, &stream), GRPCPOOL_BUSY);
  CHECK(wait_for(&unary_done, 1, 10000), "async unary never completed");
  CHECK_RC(grpcpool_lease_open_stream(lease, BIDI, NULL, 0, 10000, &stream), GRPCPOOL_OK);
  CHECK(stream != 0, "no stream after the lease's bad input");

  CHECK_RC(grpcpool_stream_send(stream, NULL, 5), GRPCPOOL_NULL_ARGUMENT);
  static uint8_t big[2048];
  CHECK_RC(grpcpool_stream_send(stream, big, sizeof big), GRPCPOOL_MESSAGE_TOO_LARGE);
  CHECK_RC(grpcpool_stream_send_async(stream, big, sizeof big, noop_send_callback, NULL),
           GRPCPOOL_MESSAGE_TOO_LARGE);
  CHECK_RC(grpcpool_stream_send(stream, big, 1024), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_recv(stream, NULL), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_stream_headers(stream, NULL), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_stream_finish(stream, NULL), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_stream_send_async(stream, big, 1, NULL, NULL), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_stream_recv_async(stream, NULL, NULL), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_stream_finish_async(stream, NULL, NULL), GRPCPOOL_NULL_ARGUMENT);
  /* Accessors on NULL are harmless. */
  CHECK(grpcpool_message_bytes(NULL).len == 0 && grpcpool_metadata_count(NULL) == 0, "NULL accessors");
  grpcpool_metadata_entry_t entry;
  CHECK_RC(grpcpool_metadata_get(NULL, 0, &entry), GRPCPOOL_NULL_ARGUMENT);
  grpcpool_message_free(NULL);
  grpcpool_metadata_free(NULL);
  char buf[8];
  CHECK(recv_text(stream, buf, sizeof buf) == 1024, "the 1024-byte echo");
  CHECK(finish_code(stream, NULL) == 0, "status");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
  grpcpool_pool_free(pool);

  /* A one-shot open on a shut-down pool, or an unreachable target. */
  CHECK_RC(grpcpool_pool_new(NULL, &pool), GRPCPOOL_OK);
  CHECK_RC(grpcpool_open_stream(pool, "http://127.0.0.1:1", BIDI, NULL, 0, 2000, &stream), GRPCPOOL_UNAVAILABLE);
  CHECK_RC(grpcpool_pool_shutdown(pool, 0, NULL), GRPCPOOL_OK);
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 0, 1000, &stream), GRPCPOOL_POOL_CLOSED);
  grpcpool_pool_free(pool);
}

/* ---- callbacks ---- */

typedef struct {
  grpcpool_stream_t stream;
  int round;
  int rounds;
  char expected[32];
  atomic_int sends, send_callbacks, recvs, recv_callbacks, finishes, finish_callbacks;
  atomic_int errors;
  atomic_int code;
  atomic_int *done;
} async_stream;

static void on_finish(void *user_data, grpcpool_response_t *response) {
  async_stream *s = user_data;
  atomic_store(&s->code, response == NULL ? -100 : grpcpool_response_code(response));
  grpcpool_response_free(response);
  atomic_fetch_add(&s->finish_callbacks, 1);
  atomic_fetch_add(s->done, 1);
}

static void start_finish(async_stream *s) {
  atomic_fetch_add(&s->finishes, 1);
  if (grpcpool_stream_finish_async(s->stream, on_finish, s) != GRPCPOOL_OK) {
    atomic_fetch_add(&s->errors, 1);
    atomic_fetch_add(s->done, 1);
  }
}

static void on_send(void *user_data, grpcpool_result result);

static void start_send(async_stream *s) {
  snprintf(s->expected, sizeof s->expected, "stream %llu round %d", (unsigned long long)s->stream, s->round);
  atomic_fetch_add(&s->sends, 1);
  if (grpcpool_stream_send_async(s->stream, (const uint8_t *)s->expected, strlen(s->expected), on_send, s) !=
      GRPCPOOL_OK) {
    atomic_fetch_add(&s->errors, 1);
    start_finish(s);
  }
}

static void on_recv(void *user_data, grpcpool_message_t *message) {
  async_stream *s = user_data;
  atomic_fetch_add(&s->recv_callbacks, 1);
  grpcpool_bytes_t bytes = grpcpool_message_bytes(message);
  if (message == NULL || bytes.len != strlen(s->expected) || memcmp(bytes.data, s->expected, bytes.len) != 0) {
    atomic_fetch_add(&s->errors, 1);
  }
  grpcpool_message_free(message);
  /* Blocking functions are refused here; the async ones and close_send are fine. */
  grpcpool_message_t *other = NULL;
  if (grpcpool_stream_recv(s->stream, &other) != GRPCPOOL_BLOCKING_IN_CALLBACK) atomic_fetch_add(&s->errors, 1);
  if (grpcpool_stream_send(s->stream, NULL, 0) != GRPCPOOL_BLOCKING_IN_CALLBACK) atomic_fetch_add(&s->errors, 1);
  if (++s->round < s->rounds) {
    start_send(s);
  } else {
    if (grpcpool_stream_close_send(s->stream) != GRPCPOOL_OK) atomic_fetch_add(&s->errors, 1);
    start_finish(s);
  }
}

static void on_send(void *user_data, grpcpool_result result) {
  async_stream *s = user_data;
  atomic_fetch_add(&s->send_callbacks, 1);
  if (result != GRPCPOOL_OK) {
    atomic_fetch_add(&s->errors, 1);
    start_finish(s);
    return;
  }
  atomic_fetch_add(&s->recvs, 1);
  if (grpcpool_stream_recv_async(s->stream, on_recv, s) != GRPCPOOL_OK) {
    atomic_fetch_add(&s->errors, 1);
    start_finish(s);
  }
}

static void check_async_streams(grpcpool_pool_t *pool, const char *target) {
  static char name[160];
  int count = light ? 6 : 64;
  int rounds = light ? 3 : 10;
  snprintf(name, sizeof name,
           "%d bidi streams at once, %d async send/recv rounds each then async finish: every callback once",
           count, rounds);
  check_section(name);
  async_stream *streams = calloc((size_t)count, sizeof *streams);
  atomic_int done;
  atomic_init(&done, 0);
  int opened = 0;
  for (int i = 0; i < count; i++) {
    async_stream *s = &streams[i];
    s->rounds = rounds;
    s->done = &done;
    atomic_init(&s->code, -1);
    if (grpcpool_open_stream(pool, target, BIDI, NULL, 0, 60000, &s->stream) == GRPCPOOL_OK) opened++;
  }
  CHECK(opened == count, "opened %d of %d", opened, count);
  for (int i = 0; i < opened; i++) start_send(&streams[i]);
  CHECK(wait_for(&done, opened, 60000), "%d of %d streams finished", atomic_load(&done), opened);
  sleep_ms(50); /* a second callback would show up by now */
  int bad = 0;
  for (int i = 0; i < opened; i++) {
    async_stream *s = &streams[i];
    int ok = atomic_load(&s->errors) == 0 && atomic_load(&s->code) == 0 &&
             atomic_load(&s->sends) == rounds && atomic_load(&s->send_callbacks) == rounds &&
             atomic_load(&s->recvs) == rounds && atomic_load(&s->recv_callbacks) == rounds &&
             atomic_load(&s->finishes) == 1 && atomic_load(&s->finish_callbacks) == 1;
    if (!ok && bad++ < 3) {
      fprintf(stderr, "stream %d: errors %d code %d sends %d/%d recvs %d/%d finishes %d/%d\n", i,
              atomic_load(&s->errors), atomic_load(&s->code), atomic_load(&s->sends),
              atomic_load(&s->send_callbacks), atomic_load(&s->recvs), atomic_load(&s->recv_callbacks),
              atomic_load(&s->finishes), atomic_load(&s->finish_callbacks));
    }
    CHECK_RC(grpcpool_stream_free(s->stream), GRPCPOOL_OK);
  }
  CHECK(bad == 0, "%d streams went wrong", bad);
  free(streams);
}

typedef struct {
  atomic_int runs;
  atomic_int got_null;
  atomic_int result;
  atomic_int code;
} probe;

static void probe_recv(void *user_data, grpcpool_message_t *message) {
  probe *p = user_data;
  atomic_store(&p->got_null, message == NULL);
  grpcpool_message_free(message);
  atomic_fetch_add(&p->runs, 1);
}

static void probe_send(void *user_data, grpcpool_result result) {
  probe *p = user_data;
  atomic_store(&p->result, (int)result);
  atomic_fetch_add(&p->runs, 1);
}

static void probe_finish(void *user_data, grpcpool_response_t *response) {
  probe *p = user_data;
  atomic_store(&p->code, grpcpool_response_code(response));
  grpcpool_response_free(response);
  atomic_fetch_add(&p->runs, 1);
}

static void probe_init(probe *p) {
  atomic_init(&p->runs, 0);
  atomic_init(&p->got_null, 0);
  atomic_init(&p->result, -1);
  atomic_init(&p->code, -1);
}

static void check_async_pending(const char *target) {
  check_section("pending async operations: free, cancel and pool free run each callback once");
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(NULL, &pool), GRPCPOOL_OK);

  /* A recv waiting when the stream is freed gets the end. */
  probe freed;
  probe_init(&freed);
  grpcpool_stream_t stream = 0;
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 0, 60000, &stream), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_recv_async(stream, probe_recv, &freed), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_recv_async(stream, probe_recv, &freed), GRPCPOOL_BUSY);
  grpcpool_message_t *message = UNTOUCHED;
  CHECK_RC(grpcpool_stream_recv(stream, &message), GRPCPOOL_BUSY);
  sleep_ms(100);
  CHECK(atomic_load(&freed.runs) == 0, "recv callback before any message");
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);
  CHECK(wait_for(&freed.runs, 1, 5000), "recv callback after free");
  CHECK(atomic_load(&freed.got_null) == 1, "recv after free is the end");

  /* A recv and a send pending on a cancelled stream. */
  probe recv_probe, finish_probe;
  probe_init(&recv_probe);
  probe_init(&finish_probe);
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 0, 60000, &stream), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_recv_async(stream, probe_recv, &recv_probe), GRPCPOOL_OK);
  sleep_ms(50);
  CHECK_RC(grpcpool_stream_cancel(stream), GRPCPOOL_OK);
  CHECK(wait_for(&recv_probe.runs, 1, 5000), "recv callback after cancel");
  CHECK(atomic_load(&recv_probe.got_null) == 1, "recv after cancel is the end");
  probe send_probe;
  probe_init(&send_probe);
  CHECK_RC(grpcpool_stream_send_async(stream, (const uint8_t *)"x", 1, probe_send, &send_probe), GRPCPOOL_OK);
  CHECK(wait_for(&send_probe.runs, 1, 5000), "send callback after cancel");
  CHECK(atomic_load(&send_probe.result) == GRPCPOOL_STREAM_CLOSED, "send after cancel: %s",
        grpcpool_result_name(atomic_load(&send_probe.result)));
  CHECK_RC(grpcpool_stream_finish_async(stream, probe_finish, &finish_probe), GRPCPOOL_OK);
  CHECK(wait_for(&finish_probe.runs, 1, 5000), "finish callback");
  CHECK(atomic_load(&finish_probe.code) == 1, "finish after cancel: %d", atomic_load(&finish_probe.code));
  CHECK_RC(grpcpool_stream_free(stream), GRPCPOOL_OK);

  /* Pool free with a recv and a finish pending on two streams never freed. */
  probe left_recv, left_finish;
  probe_init(&left_recv);
  probe_init(&left_finish);
  grpcpool_stream_t a = 0, b = 0;
  grpcpool_metadata_entry_t slow[] = {ascii("x-count", "2"), ascii("x-interval-ms", "30000")};
  CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 0, 60000, &a), GRPCPOOL_OK);
  CHECK_RC(grpcpool_open_stream(pool, target, SERVER_STREAM, slow, 2, 60000, &b), GRPCPOOL_OK);
  CHECK_RC(send_text(b, "slow"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_close_send(b), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_recv_async(a, probe_recv, &left_recv), GRPCPOOL_OK);
  CHECK_RC(grpcpool_stream_finish_async(b, probe_finish, &left_finish), GRPCPOOL_OK);
  sleep_ms(100);
  CHECK(atomic_load(&left_recv.runs) == 0 && atomic_load(&left_finish.runs) == 0, "callbacks ran early");
  double started = now_ms();
  grpcpool_pool_free(pool);
  CHECK(now_ms() - started < 5000, "pool free took %.0f ms", now_ms() - started);
  CHECK(atomic_load(&left_recv.runs) == 1 && atomic_load(&left_recv.got_null) == 1,
        "recv callback by the time pool free returned: runs %d", atomic_load(&left_recv.runs));
  CHECK(atomic_load(&left_finish.runs) == 1 && atomic_load(&left_finish.code) == 1,
        "finish callback by the time pool free returned: runs %d code %d", atomic_load(&left_finish.runs),
        atomic_load(&left_finish.code));
  CHECK_RC(grpcpool_stream_cancel(a), GRPCPOOL_INVALID_HANDLE);
  CHECK_RC(grpcpool_stream_free(b), GRPCPOOL_INVALID_HANDLE);
  sleep_ms(50);
  CHECK(atomic_load(&left_recv.runs) == 1 && atomic_load(&left_finish.runs) == 1, "a callback ran twice");
}

int main(void) {
  light = check_env_flag("GRPCPOOL_TEST_LIGHT");
  const char *target = check_env("GRPCPOOL_TEST_TARGET");
  const char *limited = check_env("GRPCPOOL_TEST_TARGET_LIMITED");
  grpcpool_pool_t *pool = NULL;
  if (grpcpool_pool_new(NULL, &pool) != GRPCPOOL_OK) {
    fprintf(stderr, "pool: %s\n", grpcpool_last_error());
    return 1;
  }
  check_server_streaming(pool, target);
  check_client_streaming(pool, target);
  check_bidi_ping_pong(pool, target);
  check_duplex_threads(pool, target);
  check_cancel_wakes_recv(pool, target);
  check_deadline(pool, target);
  check_status_and_trailers(pool, target);
  check_slots_and_free(limited);
  check_stale_handles(pool, target);
  check_bad_input(target);
  check_async_streams(pool, target);
  check_async_pending(target);

  /* Streams left open when the pool is freed are cancelled and their handles die. */
  check_section("pool free with streams still open");
  grpcpool_stream_t open_streams[3] = {0, 0, 0};
  for (int i = 0; i < 3; i++) {
    CHECK_RC(grpcpool_open_stream(pool, target, BIDI, NULL, 0, 60000, &open_streams[i]), GRPCPOOL_OK);
    CHECK_RC(send_text(open_streams[i], "left open"), GRPCPOOL_OK);
  }
  grpcpool_pool_free(pool);
  for (int i = 0; i < 3; i++) CHECK_RC(grpcpool_stream_free(open_streams[i]), GRPCPOOL_INVALID_HANDLE);
  return check_summary("test_streams");
}
