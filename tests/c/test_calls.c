/*
 * Calls through the C ABI against the echo server: version, config setters, acquire and
 * release, blocking unary calls on a lease and one-shot, metadata both ways (ascii and -bin),
 * every status code with message and details, deadlines, stats, the leak report, shutdown and
 * TLS with a CA of our own.
 */
#define _POSIX_C_SOURCE 200809L
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

/* An ascii metadata entry borrowing `key` and `value`. */
static grpcpool_metadata_entry_t ascii(const char *key, const char *value) {
  grpcpool_metadata_entry_t entry = {key, (const uint8_t *)value, strlen(value)};
  return entry;
}

/* Finds `key` among the response's headers (trailers when `trailers`); 1 if found. */
static int find_entry(const grpcpool_response_t *response, int trailers, const char *key,
                      grpcpool_metadata_entry_t *out) {
  size_t count = trailers ? grpcpool_response_trailer_count(response)
                          : grpcpool_response_header_count(response);
  for (size_t i = 0; i < count; i++) {
    grpcpool_metadata_entry_t entry;
    grpcpool_result rc = trailers ? grpcpool_response_trailer(response, i, &entry)
                                  : grpcpool_response_header(response, i, &entry);
    if (rc != GRPCPOOL_OK) return 0;
    if (strcmp(entry.key, key) == 0) {
      *out = entry;
      return 1;
    }
  }
  return 0;
}

/* 1 if the entry `key` is there with exactly `len` bytes `value`. */
static int has_entry(const grpcpool_response_t *response, int trailers, const char *key,
                     const void *value, size_t len) {
  grpcpool_metadata_entry_t entry;
  if (!find_entry(response, trailers, key, &entry)) return 0;
  return entry.value_len == len && (len == 0 || memcmp(entry.value, value, len) == 0);
}

static int body_is(const grpcpool_response_t *response, const void *data, size_t len) {
  grpcpool_bytes_t body = grpcpool_response_body(response);
  return body.data != NULL && body.len == len && (len == 0 || memcmp(body.data, data, len) == 0);
}

static void check_version(void) {
  check_section("version string matches GRPCPOOL_VERSION_* macros");
  char expected[64];
  snprintf(expected, sizeof expected, "%d.%d.%d", GRPCPOOL_VERSION_MAJOR, GRPCPOOL_VERSION_MINOR,
           GRPCPOOL_VERSION_PATCH);
  const char *version = grpcpool_version();
  CHECK(version != NULL && strcmp(version, expected) == 0, "version %s, header says %s",
        version ? version : "(null)", expected);
}

/* A pool with many settings changed from their defaults. */
static grpcpool_pool_t *configured_pool(void) {
  check_section("config with setters, pool_new");
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK(config != NULL, "grpcpool_config_new returned NULL");
  CHECK_RC(grpcpool_config_set(config, "min_connections_per_target", "1"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "max_connections_per_target", "2"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "streams_per_connection", "100"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "connect_timeout", "5000ms"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "keepalive_time", "60000ms"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "keepalive_timeout", "10000ms"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "keepalive_while_idle", "false"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "tcp_nodelay", "true"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "tcp_keepalive", "30000ms"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "idle_timeout", "60000ms"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "max_connection_age", "600000ms"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "acquire_timeout", "10000ms"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "lease_leak_threshold", "30000ms"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "initial_stream_window_size", "1048576"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "initial_connection_window_size", "4194304"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "max_send_message_size", "1048576"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "max_receive_message_size", "1048576"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "dns_refresh_interval", "10000ms"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "worker_threads", "2"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set_backoff(config, 100, 1.6, 0.2, 2000), GRPCPOOL_OK);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  CHECK(pool != NULL, "pool_new gave OK but no pool");
  /* The config is copied: freeing it now must not affect the pool. */
  grpcpool_config_free(config);
  return pool;
}

static void check_lease_calls(grpcpool_pool_t *pool, const char *target) {
  check_section("acquire (plain and GRPCPOOL_ACQUIRE), unary on the lease echoes the body");
  grpcpool_lease_t plain = 0;
  CHECK_RC(grpcpool_acquire(pool, target, 10000, &plain), GRPCPOOL_OK);
  CHECK(plain != 0, "lease handle is 0");
  grpcpool_lease_t lease = 0;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, target, 10000, &lease), GRPCPOOL_OK);
  CHECK(lease != 0 && lease != plain, "second lease %llu vs first %llu",
        (unsigned long long)lease, (unsigned long long)plain);

  /* A body with a NUL and high bytes, echoed byte for byte. */
  const uint8_t request[] = {'h', 'e', 'l', 'l', 'o', 0x00, 0xff, 0x7f, '!'};
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_lease_unary(lease, ECHO, request, sizeof request, NULL, 0, 10000, &response),
           GRPCPOOL_OK);
  CHECK(response != NULL, "no response");
  CHECK(grpcpool_response_code(response) == 0, "code %d: %s", grpcpool_response_code(response),
        grpcpool_response_message(response));
  CHECK(body_is(response, request, sizeof request), "body not echoed (len %zu)",
        grpcpool_response_body(response).len);
  CHECK(grpcpool_response_details(response).len == 0, "details on an OK response");
  CHECK(strcmp(grpcpool_response_message(response), "") == 0, "message on an OK response: %s",
        grpcpool_response_message(response));
  grpcpool_response_free(response);

  /* An empty request, NULL pointer with length 0, is allowed and echoes empty. */
  response = NULL;
  CHECK_RC(grpcpool_lease_unary(plain, ECHO, NULL, 0, NULL, 0, 10000, &response), GRPCPOOL_OK);
  CHECK(response != NULL && grpcpool_response_code(response) == 0, "empty request failed");
  CHECK(body_is(response, "", 0), "empty request, non-empty body");
  grpcpool_response_free(response);

  /* Many sequential calls on one lease. */
  int good = 0;
  for (int i = 0; i < 20; i++) {
    char text[32];
    int len = snprintf(text, sizeof text, "call-%d", i);
    response = NULL;
    if (grpcpool_lease_unary(lease, ECHO, (const uint8_t *)text, (size_t)len, NULL, 0, 10000,
                             &response) == GRPCPOOL_OK &&
        grpcpool_response_code(response) == 0 && body_is(response, text, (size_t)len)) {
      good++;
    }
    grpcpool_response_free(response);
  }
  CHECK(good == 20, "%d of 20 sequential calls on one lease echoed", good);

  check_section("unknown method answers UNIMPLEMENTED (12) as a response, not an error");
  response = NULL;
  CHECK_RC(grpcpool_lease_unary(lease, "/grpcpool.test.Echo/Nope", NULL, 0, NULL, 0, 10000, &response),
           GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 12, "code %d", grpcpool_response_code(response));
  CHECK(grpcpool_response_body(response).len == 0, "body on an error");
  grpcpool_response_free(response);

  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);
  CHECK_RC(grpcpool_release(plain), GRPCPOOL_OK);
}

static void check_metadata(grpcpool_pool_t *pool, const char *target) {
  check_section("metadata both ways: ascii x-echo-id, binary x-echo-raw-bin, x-trailer-note");
  grpcpool_lease_t lease = 0;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, target, 10000, &lease), GRPCPOOL_OK);
  static const uint8_t raw[] = {0x00, 0xff};
  grpcpool_metadata_entry_t metadata[3] = {
      ascii("x-echo-id", "id-42 with spaces"),
      {"x-echo-raw-bin", raw, sizeof raw},
      ascii("x-trailer-note", "see you at the end"),
  };
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_lease_unary(lease, ECHO, (const uint8_t *)"md", 2, metadata, 3, 10000,
                                &response),
           GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 0, "code %d: %s", grpcpool_response_code(response),
        grpcpool_response_message(response));
  CHECK(has_entry(response, 0, "x-echo-id", "id-42 with spaces", 17), "x-echo-id header missing or wrong");
  CHECK(has_entry(response, 0, "x-echo-raw-bin", raw, sizeof raw),
        "x-echo-raw-bin header missing or not decoded to 00 ff");
  CHECK(has_entry(response, 1, "x-trailer-note", "see you at the end", 18),
        "x-trailer-note trailer missing or wrong");
  grpcpool_metadata_entry_t entry;
  CHECK(!find_entry(response, 1, "x-echo-id", &entry), "x-echo-id came back as a trailer too");
  CHECK(!find_entry(response, 0, "x-trailer-note", &entry), "x-trailer-note came back as a header");
  /* gRPC's own keys (grpc-status...) and HTTP/2 pseudo headers are not user metadata. */
  for (size_t i = 0; i < grpcpool_response_trailer_count(response); i++) {
    CHECK_RC(grpcpool_response_trailer(response, i, &entry), GRPCPOOL_OK);
    CHECK(strncmp(entry.key, "grpc-", 5) != 0 && entry.key[0] != ':', "trailer %s exposed", entry.key);
  }
  /* An index past the end is an error and leaves the out-param alone. */
  grpcpool_metadata_entry_t untouched = {"sentinel", NULL, 77};
  size_t headers = grpcpool_response_header_count(response);
  CHECK_RC(grpcpool_response_header(response, headers, &untouched), GRPCPOOL_INVALID_ARGUMENT);
  CHECK(strcmp(untouched.key, "sentinel") == 0 && untouched.value_len == 77, "out-param written");
  CHECK_RC(grpcpool_response_trailer(response, (size_t)-1, &untouched), GRPCPOOL_INVALID_ARGUMENT);
  grpcpool_response_free(response);

  /* A binary value with every byte value survives the round trip. */
  uint8_t all[256];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
  grpcpool_metadata_entry_t every = {"x-echo-all-bin", all, sizeof all};
  response = NULL;
  CHECK_RC(grpcpool_lease_unary(lease, ECHO, NULL, 0, &every, 1, 10000, &response), GRPCPOOL_OK);
  CHECK(has_entry(response, 0, "x-echo-all-bin", all, sizeof all), "256-byte binary value altered");
  grpcpool_response_free(response);
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);
}

static const char *const status_names[17] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED"};

static void check_statuses(grpcpool_pool_t *pool, const char *target) {
  check_section("every status code 1..16 with message, details and metadata in trailers");
  grpcpool_lease_t lease = 0;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, target, 10000, &lease), GRPCPOOL_OK);
  for (int code = 1; code <= 16; code++) {
    char code_text[8], message[64];
    snprintf(code_text, sizeof code_text, "%d", code);
    snprintf(message, sizeof message, "status %s asked for", status_names[code]);
    uint8_t details[4] = {(uint8_t)code, 0x00, 0xff, 0x0a};
    grpcpool_metadata_entry_t metadata[5] = {
        ascii("x-status-code", code_text),
        ascii("x-status-message", message),
        {"x-status-details-bin", details, sizeof details},
        ascii("x-echo-id", code_text),
        ascii("x-trailer-note", "t"),
    };
    grpcpool_response_t *response = NULL;
    grpcpool_result rc =
        grpcpool_lease_unary(lease, ECHO, (const uint8_t *)"x", 1, metadata, 5, 10000, &response);
    CHECK(rc == GRPCPOOL_OK, "status %d: call failed: %s", code, grpcpool_last_error());
    if (rc != GRPCPOOL_OK) continue;
    CHECK(grpcpool_response_code(response) == code, "asked for %d, got %d (%s)", code,
          grpcpool_response_code(response), grpcpool_response_message(response));
    CHECK(strcmp(grpcpool_response_message(response), message) == 0, "status %d message %s",
          code, grpcpool_response_message(response));
    grpcpool_bytes_t got = grpcpool_response_details(response);
    CHECK(got.len == sizeof details && memcmp(got.data, details, sizeof details) == 0,
          "status %d details of %zu bytes", code, got.len);
    CHECK(grpcpool_response_body(response).len == 0, "status %d with a body", code);
    /* Trailers-only: x-echo-* and x-trailer-* both arrive among the trailers. */
    CHECK(has_entry(response, 1, "x-echo-id", code_text, strlen(code_text)),
          "status %d: x-echo-id not in the trailers", code);
    CHECK(has_entry(response, 1, "x-trailer-note", "t", 1),
          "status %d: x-trailer-note not in the trailers", code);
    grpcpool_response_free(response);
  }
  /* The lease is still good after sixteen error statuses. */
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_lease_unary(lease, ECHO, (const uint8_t *)"after", 5, NULL, 0, 10000, &response),
           GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 0 && body_is(response, "after", 5),
        "lease unusable after error statuses");
  grpcpool_response_free(response);
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);
}

static void check_deadline(grpcpool_pool_t *pool, const char *target) {
  check_section("deadline: x-sleep-ms 2000 with a 200 ms timeout gives DEADLINE_EXCEEDED early");
  grpcpool_lease_t lease = 0;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, target, 10000, &lease), GRPCPOOL_OK);
  grpcpool_metadata_entry_t sleep = ascii("x-sleep-ms", "2000");
  grpcpool_response_t *response = NULL;
  double started = now_ms();
  CHECK_RC(grpcpool_lease_unary(lease, ECHO, (const uint8_t *)"slow", 4, &sleep, 1, 200, &response),
           GRPCPOOL_OK);
  double took = now_ms() - started;
  CHECK(grpcpool_response_code(response) == 4, "code %d: %s", grpcpool_response_code(response),
        grpcpool_response_message(response));
  CHECK(took >= 150 && took < 1500, "took %.0f ms for a 200 ms deadline", took);
  grpcpool_response_free(response);

  /* The same through the one-shot call. */
  response = NULL;
  started = now_ms();
  CHECK_RC(grpcpool_unary(pool, target, ECHO, (const uint8_t *)"slow", 4, &sleep, 1, 200, &response),
           GRPCPOOL_OK);
  took = now_ms() - started;
  CHECK(grpcpool_response_code(response) == 4, "one-shot code %d", grpcpool_response_code(response));
  CHECK(took < 1500, "one-shot took %.0f ms for a 200 ms deadline", took);
  grpcpool_response_free(response);

  /* A short sleep inside a generous deadline succeeds. */
  grpcpool_metadata_entry_t short_sleep = ascii("x-sleep-ms", "50");
  response = NULL;
  CHECK_RC(grpcpool_lease_unary(lease, ECHO, (const uint8_t *)"ok", 2, &short_sleep, 1, 10000,
                                &response),
           GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 0 && body_is(response, "ok", 2), "code %d",
        grpcpool_response_code(response));
  grpcpool_response_free(response);
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);
}

static void check_one_shot_and_stats(grpcpool_pool_t *pool, const char *target) {
  check_section("one-shot grpcpool_unary, stats JSON");
  grpcpool_metadata_entry_t id = ascii("x-echo-id", "one-shot");
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_unary(pool, target, ECHO, (const uint8_t *)"once", 4, &id, 1, 10000, &response),
           GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 0, "code %d", grpcpool_response_code(response));
  CHECK(body_is(response, "once", 4), "one-shot body not echoed");
  CHECK(has_entry(response, 0, "x-echo-id", "one-shot", 8), "one-shot header missing");
  grpcpool_response_free(response);
  /* GRPCPOOL_NO_TIMEOUT: no deadline, acquire waits up to the config's acquire timeout. */
  response = NULL;
  CHECK_RC(grpcpool_unary(pool, target, ECHO, (const uint8_t *)"none", 4, NULL, 0, GRPCPOOL_NO_TIMEOUT,
                          &response),
           GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 0 && body_is(response, "none", 4), "no-deadline call");
  grpcpool_response_free(response);
  /* timeout 0: the deadline is now, as in grpcio and grpc-js. */
  response = NULL;
  CHECK_RC(grpcpool_unary(pool, target, ECHO, (const uint8_t *)"zero", 4, NULL, 0, 0, &response),
           GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 4, "timeout 0: code %d, expected DEADLINE_EXCEEDED",
        grpcpool_response_code(response));
  grpcpool_response_free(response);

  char *json = NULL;
  CHECK_RC(grpcpool_pool_stats_json(pool, &json), GRPCPOOL_OK);
  CHECK(json != NULL && json[0] == '{', "stats is not a JSON object: %s", json ? json : "(null)");
  CHECK(json != NULL && strstr(json, "\"calls_succeeded\"") != NULL, "no calls_succeeded in %s",
        json ? json : "(null)");
  CHECK(json != NULL && strstr(json, "\"calls_succeeded\":0,") == NULL,
        "calls_succeeded is 0 after successful calls: %s", json ? json : "(null)");
  grpcpool_string_free(json);
}

static void check_leak_report(const char *target) {
  check_section("leak report names test_calls.c:LINE of a lease held past the threshold");
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set(config, "lease_leak_threshold", "100ms"), GRPCPOOL_OK);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_config_free(config);
  grpcpool_lease_t lease = 0;
  int line = __LINE__; grpcpool_result rc = GRPCPOOL_ACQUIRE(pool, target, 10000, &lease);
  CHECK_RC(rc, GRPCPOOL_OK);
  char *json = NULL;
  CHECK_RC(grpcpool_pool_leaks_json(pool, &json), GRPCPOOL_OK);
  CHECK(json != NULL && strcmp(json, "[]") == 0, "a fresh lease is already a leak: %s",
        json ? json : "(null)");
  grpcpool_string_free(json);
  sleep_ms(500);
  char site[64];
  snprintf(site, sizeof site, "test_calls.c:%d", line);
  json = NULL;
  CHECK_RC(grpcpool_pool_leaks_json(pool, &json), GRPCPOOL_OK);
  CHECK(json != NULL && strstr(json, site) != NULL, "leak report %s does not name %s",
        json ? json : "(null)", site);
  CHECK(json != NULL && strstr(json, "\"held_ms\"") != NULL && strstr(json, target) != NULL,
        "leak report lacks held_ms or the target: %s", json ? json : "(null)");
  printf("       leak report: %s\n", json ? json : "(null)");
  grpcpool_string_free(json);
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);
  json = NULL;
  CHECK_RC(grpcpool_pool_leaks_json(pool, &json), GRPCPOOL_OK);
  CHECK(json != NULL && strcmp(json, "[]") == 0, "released lease still reported: %s",
        json ? json : "(null)");
  grpcpool_string_free(json);

  check_section("pool shutdown: clean with nothing in use, counts a lease still held");
  uint64_t still = 99;
  CHECK_RC(grpcpool_pool_shutdown(pool, 1000, &still), GRPCPOOL_OK);
  CHECK(still == 0, "still in use after a clean shutdown: %llu", (unsigned long long)still);
  grpcpool_pool_free(pool);

  pool = NULL;
  CHECK_RC(grpcpool_pool_new(NULL, &pool), GRPCPOOL_OK);
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, target, 10000, &lease), GRPCPOOL_OK);
  still = 99;
  double started = now_ms();
  CHECK_RC(grpcpool_pool_shutdown(pool, 200, &still), GRPCPOOL_OK);
  double took = now_ms() - started;
  CHECK(still == 1, "one lease held through the grace, still in use %llu",
        (unsigned long long)still);
  CHECK(took >= 150 && took < 3000, "shutdown with 200 ms grace took %.0f ms", took);
  CHECK_RC(grpcpool_pool_shutdown(pool, 0, NULL), GRPCPOOL_OK);
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);
  grpcpool_pool_free(pool);
}

static void check_tls(const char *tls_target, const char *ca_file) {
  check_section("TLS: own CA + server name \"localhost\" works; without the CA, UNAVAILABLE");
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set_tls_ca_file(config, ca_file), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set_tls_server_name(config, "localhost"), GRPCPOOL_OK);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_config_free(config);
  grpcpool_lease_t lease = 0;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, tls_target, 10000, &lease), GRPCPOOL_OK);
  grpcpool_metadata_entry_t id = ascii("x-echo-id", "tls");
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_lease_unary(lease, ECHO, (const uint8_t *)"secret", 6, &id, 1, 10000, &response),
           GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 0, "TLS call code %d: %s",
        grpcpool_response_code(response), grpcpool_response_message(response));
  CHECK(body_is(response, "secret", 6), "TLS body not echoed");
  CHECK(has_entry(response, 0, "x-echo-id", "tls", 3), "TLS header missing");
  grpcpool_response_free(response);
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);
  grpcpool_pool_free(pool);

  /* The CA given as PEM bytes, and the certificate's 127.0.0.1 name without an override. */
  FILE *file = fopen(ca_file, "rb");
  CHECK(file != NULL, "cannot open %s", ca_file);
  if (file != NULL) {
    static uint8_t pem[65536];
    size_t len = fread(pem, 1, sizeof pem, file);
    fclose(file);
    config = grpcpool_config_new();
    CHECK_RC(grpcpool_config_set_tls_ca_pem(config, pem, len), GRPCPOOL_OK);
    pool = NULL;
    CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
    grpcpool_config_free(config);
    response = NULL;
    CHECK_RC(grpcpool_unary(pool, tls_target, ECHO, (const uint8_t *)"pem", 3, NULL, 0, 10000, &response),
             GRPCPOOL_OK);
    CHECK(grpcpool_response_code(response) == 0 && body_is(response, "pem", 3),
          "TLS with CA PEM bytes: code %d: %s", grpcpool_response_code(response),
          grpcpool_response_message(response));
    grpcpool_response_free(response);
    grpcpool_pool_free(pool);
  }

  /* Without our CA the server's certificate is not trusted. */
  config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set_tls_server_name(config, "localhost"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "connect_timeout", "5000ms"), GRPCPOOL_OK);
  pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_config_free(config);
  grpcpool_lease_t untouched = 0xabcdef;
  grpcpool_result rc = grpcpool_acquire(pool, tls_target, 5000, &untouched);
  char error[512] = "";
  if (rc != GRPCPOOL_OK) snprintf(error, sizeof error, "%s", grpcpool_last_error());
  /* A machine without system roots refuses at once with TLS_ERROR instead; that says the same. */
  int no_roots = rc == GRPCPOOL_TLS_ERROR && strstr(error, "no system root certificates") != NULL;
  CHECK(rc == GRPCPOOL_UNAVAILABLE || no_roots, "acquire without the CA gave %s: %s",
        grpcpool_result_name(rc), error);
  if (rc == GRPCPOOL_UNAVAILABLE) printf("       without the CA: %s\n", error);
  if (rc == GRPCPOOL_OK) grpcpool_release(untouched);
  else CHECK(untouched == 0xabcdef, "out-param written on failure");
  response = NULL;
  rc = grpcpool_unary(pool, tls_target, ECHO, (const uint8_t *)"x", 1, NULL, 0, 5000, &response);
  CHECK(rc == GRPCPOOL_UNAVAILABLE || (no_roots && rc == GRPCPOOL_TLS_ERROR) ||
            (rc == GRPCPOOL_OK && grpcpool_response_code(response) == 14),
        "one-shot without the CA gave %s / code %d", grpcpool_result_name(rc),
        rc == GRPCPOOL_OK ? grpcpool_response_code(response) : -1);
  if (rc == GRPCPOOL_OK) grpcpool_response_free(response);
  grpcpool_pool_free(pool);
}

/* static:///name targets follow the endpoints the program sets. */
static void check_pushed_endpoints(grpcpool_pool_t *pool, const char *target) {
  check_section("static:///name follows grpcpool_pool_set_endpoints; none set fails fast");
  const char *host_port = strstr(target, "//") + 2;
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_unary(pool, "static:///c-echo", ECHO, (const uint8_t *)"x", 1, NULL, 0, 5000,
                          &response),
           GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 14, "before any endpoint: code %d",
        grpcpool_response_code(response));
  grpcpool_response_free(response);
  const char *endpoints[] = {host_port};
  CHECK_RC(grpcpool_pool_set_endpoints(pool, "c-echo", endpoints, 1), GRPCPOOL_OK);
  response = NULL;
  CHECK_RC(grpcpool_unary(pool, "static:///c-echo", ECHO, (const uint8_t *)"pushed", 6, NULL, 0,
                          5000, &response),
           GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 0 && body_is(response, "pushed", 6),
        "with the endpoint set: code %d", grpcpool_response_code(response));
  grpcpool_response_free(response);
  CHECK_RC(grpcpool_pool_set_endpoints(pool, "c-echo", NULL, 0), GRPCPOOL_OK);
  response = NULL;
  CHECK_RC(grpcpool_unary(pool, "static:///c-echo", ECHO, (const uint8_t *)"x", 1, NULL, 0, 5000,
                          &response),
           GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 14, "with none: code %d",
        grpcpool_response_code(response));
  grpcpool_response_free(response);
  const char *no_port[] = {"127.0.0.1"};
  CHECK_RC(grpcpool_pool_set_endpoints(pool, "c-echo", no_port, 1), GRPCPOOL_INVALID_TARGET);
  CHECK(strstr(grpcpool_last_error(), "needs a port") != NULL, "error: %s", grpcpool_last_error());
  CHECK_RC(grpcpool_pool_set_endpoints(pool, "no name", endpoints, 1), GRPCPOOL_INVALID_TARGET);
  CHECK_RC(grpcpool_pool_set_endpoints(pool, NULL, endpoints, 1), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_pool_set_endpoints(pool, "c-echo", NULL, 1), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_pool_set_endpoints(NULL, "c-echo", endpoints, 1), GRPCPOOL_NULL_ARGUMENT);
  /* Weighted: round_robin gives an endpoint as many turns as its weight; 0 is refused. */
  uint32_t weights[] = {3};
  CHECK_RC(grpcpool_pool_set_weighted_endpoints(pool, "c-echo", endpoints, weights, 1), GRPCPOOL_OK);
  response = NULL;
  CHECK_RC(grpcpool_unary(pool, "static:///c-echo", ECHO, (const uint8_t *)"w", 1, NULL, 0, 5000,
                          &response),
           GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 0, "weighted: code %d", grpcpool_response_code(response));
  grpcpool_response_free(response);
  uint32_t zero[] = {0};
  CHECK_RC(grpcpool_pool_set_weighted_endpoints(pool, "c-echo", endpoints, zero, 1),
           GRPCPOOL_INVALID_TARGET);
  CHECK_RC(grpcpool_pool_set_weighted_endpoints(pool, "c-echo", endpoints, NULL, 1),
           GRPCPOOL_NULL_ARGUMENT);
}

/* Waits (bounded) through grpcpool_pool_wait_connectivity_change until `target` is `wanted`. */
static grpcpool_connectivity wait_until_state(grpcpool_pool_t *pool, const char *target,
                                             grpcpool_connectivity wanted) {
  grpcpool_connectivity state = GRPCPOOL_IDLE;
  CHECK_RC(grpcpool_pool_connectivity(pool, target, false, &state), GRPCPOOL_OK);
  for (int round = 0; round < 50 && state != wanted; round++) {
    grpcpool_connectivity next = state;
    CHECK_RC(grpcpool_pool_wait_connectivity_change(pool, target, state, 10000, &next), GRPCPOOL_OK);
    CHECK(next != state, "a 10 s wait saw no change from %d", state);
    state = next;
  }
  return state;
}

static void check_connectivity(const char *target) {
  grpcpool_pool_t *pool = configured_pool();
  if (pool == NULL) return;
  check_section("connectivity: IDLE, READY after try_to_connect, TRANSIENT_FAILURE, SHUTDOWN");
  grpcpool_connectivity state = GRPCPOOL_READY;
  CHECK_RC(grpcpool_pool_connectivity(pool, target, false, &state), GRPCPOOL_OK);
  CHECK(state == GRPCPOOL_IDLE, "unused target: %d", state);
  CHECK_RC(grpcpool_pool_connectivity(pool, target, true, &state), GRPCPOOL_OK);
  CHECK(state == GRPCPOOL_CONNECTING || state == GRPCPOOL_READY, "after try_to_connect: %d", state);
  CHECK(wait_until_state(pool, target, GRPCPOOL_READY) == GRPCPOOL_READY, "never READY");
  /* A wait with nothing changing returns the same state at its timeout. */
  grpcpool_connectivity same = GRPCPOOL_IDLE;
  CHECK_RC(grpcpool_pool_wait_connectivity_change(pool, target, GRPCPOOL_READY, 50, &same),
           GRPCPOOL_OK);
  CHECK(same == GRPCPOOL_READY, "after a quiet wait: %d", same);
  /* Nothing listens on port 1: TRANSIENT_FAILURE, never READY. */
  const char *dead = "http://127.0.0.1:1";
  CHECK_RC(grpcpool_pool_connectivity(pool, dead, true, &state), GRPCPOOL_OK);
  CHECK(wait_until_state(pool, dead, GRPCPOOL_TRANSIENT_FAILURE) == GRPCPOOL_TRANSIENT_FAILURE,
        "a dead target never reached TRANSIENT_FAILURE");
  grpcpool_connectivity untouched = GRPCPOOL_SHUTDOWN;
  CHECK_RC(grpcpool_pool_connectivity(pool, "http://a:+80", false, &untouched),
           GRPCPOOL_INVALID_TARGET);
  CHECK(untouched == GRPCPOOL_SHUTDOWN, "out_state written on failure");
  CHECK_RC(grpcpool_pool_wait_connectivity_change(pool, target, 9, 10, &untouched),
           GRPCPOOL_INVALID_ARGUMENT);
  CHECK_RC(grpcpool_pool_connectivity(pool, target, false, NULL), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_pool_connectivity(NULL, target, false, &state), GRPCPOOL_NULL_ARGUMENT);
  CHECK_RC(grpcpool_pool_connectivity(pool, NULL, false, &state), GRPCPOOL_NULL_ARGUMENT);
  uint64_t left = 0;
  CHECK_RC(grpcpool_pool_shutdown(pool, 1000, &left), GRPCPOOL_OK);
  CHECK_RC(grpcpool_pool_connectivity(pool, target, true, &state), GRPCPOOL_OK);
  CHECK(state == GRPCPOOL_SHUTDOWN, "after shutdown: %d", state);
  CHECK_RC(grpcpool_pool_wait_connectivity_change(pool, target, GRPCPOOL_READY, GRPCPOOL_NO_TIMEOUT,
                                                  &state),
           GRPCPOOL_OK);
  CHECK(state == GRPCPOOL_SHUTDOWN, "a wait after shutdown: %d", state);
  grpcpool_pool_free(pool);
}

int main(void) {
  const char *target = check_env("GRPCPOOL_TEST_TARGET");
  const char *tls_target = check_env("GRPCPOOL_TEST_TLS_TARGET");
  const char *ca_file = check_env("GRPCPOOL_TEST_CA_FILE");

  check_version();
  grpcpool_pool_t *pool = configured_pool();
  if (pool == NULL) return check_summary("test_calls");
  check_lease_calls(pool, target);
  check_metadata(pool, target);
  check_statuses(pool, target);
  check_deadline(pool, target);
  check_one_shot_and_stats(pool, target);
  check_pushed_endpoints(pool, target);
  check_section("pool_free of a used pool returns promptly; pool_free(NULL) is a no-op");
  double started = now_ms();
  grpcpool_pool_free(pool);
  double took = now_ms() - started;
  CHECK(took < 3000, "pool_free took %.0f ms", took);
  grpcpool_pool_free(NULL);
  check_leak_report(target);
  check_tls(tls_target, ca_file);
  check_connectivity(target);
  return check_summary("test_calls");
}
