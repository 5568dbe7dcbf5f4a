/*
 * Bad input through the C ABI: each returns its documented code, sets a non-empty
 * grpcpool_last_error() on this thread, and leaves out-params untouched. Also stale and forged
 * handles, an unreachable port, a saturated target, a closed pool. Everything is freed at the
 * end: AddressSanitizer and valgrind report any leak.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
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

/* Sentinels the out-params are preset to; a failing call must leave them as they are. */
#define LEASE_SENTINEL ((grpcpool_lease_t)0x5e5e5e5e5e5eULL)
#define CALL_SENTINEL ((grpcpool_call_t)0x7a7a7a7aULL)
static char sentinel_byte;
#define POINTER_SENTINEL ((void *)&sentinel_byte)

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/*
 * Leaves a known message in this thread's last error (reading a CA file that no other check
 * uses), so that a check afterwards can tell that the call under test set its own message.
 */
static const char *marker_error(void) {
  static char marker[256];
  grpcpool_config_t *config = grpcpool_config_new();
  grpcpool_config_set_tls_ca_file(config, "/nonexistent/grpcpool-test-marker");
  grpcpool_config_free(config);
  snprintf(marker, sizeof marker, "%s", grpcpool_last_error());
  return marker;
}

/* Runs `expr` and checks its code and that it set a fresh, non-empty last error. */
#define EXPECT_FAIL(expr, expected)                                                          \
  do {                                                                                       \
    const char *marker_ = marker_error();                                                    \
    grpcpool_result rc_ = (expr);                                                            \
    char error_[512];                                                                        \
    snprintf(error_, sizeof error_, "%s", grpcpool_last_error());                           \
    CHECK(rc_ == (expected), "%s gave %s, expected %s (%s)", #expr, grpcpool_result_name(rc_), \
          grpcpool_result_name(expected), error_);                                           \
    CHECK(error_[0] != '\0' && strcmp(error_, marker_) != 0,                                 \
          "%s: last error not set (\"%s\")", #expr, error_);                                 \
  } while (0)

static void noop_callback(void *user_data, grpcpool_response_t *response) {
  int *ran = user_data;
  (*ran)++;
  grpcpool_response_free(response);
}

static grpcpool_metadata_entry_t ascii(const char *key, const char *value) {
  grpcpool_metadata_entry_t entry = {key, (const uint8_t *)value, strlen(value)};
  return entry;
}

/* A TCP port on 127.0.0.1 that nothing listens on (bound, read, closed). */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t len = sizeof address;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&address, sizeof address) == 0 &&
      getsockname(fd, (struct sockaddr *)&address, &len) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

static void check_null_arguments(grpcpool_pool_t *pool, const char *target) {
  check_section("NULL pool / target / out / method / request / metadata / callback");
  grpcpool_lease_t lease = LEASE_SENTINEL;
  EXPECT_FAIL(grpcpool_pool_new(NULL, NULL), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_acquire(NULL, target, 100, &lease), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_acquire(pool, NULL, 100, &lease), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_acquire(pool, target, 100, NULL), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_acquire_at(NULL, target, 100, "site", &lease), GRPCPOOL_NULL_ARGUMENT);
  CHECK(lease == LEASE_SENTINEL, "lease out-param written on failure");

  grpcpool_response_t *response = POINTER_SENTINEL;
  EXPECT_FAIL(grpcpool_unary(NULL, target, ECHO, NULL, 0, NULL, 0, 1000, &response), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_unary(pool, NULL, ECHO, NULL, 0, NULL, 0, 1000, &response), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_unary(pool, target, NULL, NULL, 0, NULL, 0, 1000, &response), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_unary(pool, target, ECHO, NULL, 0, NULL, 0, 1000, NULL), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_unary(pool, target, ECHO, NULL, 5, NULL, 0, 1000, &response), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_unary(pool, target, ECHO, NULL, 0, NULL, 2, 1000, &response), GRPCPOOL_NULL_ARGUMENT);
  grpcpool_metadata_entry_t null_key = {NULL, (const uint8_t *)"v", 1};
  EXPECT_FAIL(grpcpool_unary(pool, target, ECHO, NULL, 0, &null_key, 1, 1000, &response), GRPCPOOL_NULL_ARGUMENT);
  grpcpool_metadata_entry_t null_value = {"x-key", NULL, 3};
  EXPECT_FAIL(grpcpool_unary(pool, target, ECHO, NULL, 0, &null_value, 1, 1000, &response), GRPCPOOL_NULL_ARGUMENT);
  CHECK(response == POINTER_SENTINEL, "response out-param written on failure");

  lease = 0;
  CHECK_RC(grpcpool_acquire_at(pool, target, 10000, NULL, &lease), GRPCPOOL_OK); /* site is optional */
  EXPECT_FAIL(grpcpool_lease_unary(lease, NULL, NULL, 0, NULL, 0, 1000, &response), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_lease_unary(lease, ECHO, NULL, 0, NULL, 0, 1000, NULL), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_lease_unary(lease, ECHO, NULL, 3, NULL, 0, 1000, &response), GRPCPOOL_NULL_ARGUMENT);
  CHECK(response == POINTER_SENTINEL, "response out-param written on failure");

  int ran = 0;
  grpcpool_call_t call = CALL_SENTINEL;
  EXPECT_FAIL(grpcpool_lease_unary_async(lease, ECHO, NULL, 0, NULL, 0, 1000, NULL, &ran, &call), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_lease_unary_async(lease, NULL, NULL, 0, NULL, 0, 1000, noop_callback, &ran, &call), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_unary_async(NULL, target, ECHO, NULL, 0, NULL, 0, 1000, noop_callback, &ran, &call), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_unary_async(pool, NULL, ECHO, NULL, 0, NULL, 0, 1000, noop_callback, &ran, &call), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_unary_async(pool, target, ECHO, NULL, 0, NULL, 0, 1000, NULL, &ran, &call), GRPCPOOL_NULL_ARGUMENT);
  CHECK(call == CALL_SENTINEL, "call out-param written on failure");
  CHECK(ran == 0, "a callback ran for a call that did not start");
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);

  char *json = POINTER_SENTINEL;
  EXPECT_FAIL(grpcpool_pool_stats_json(NULL, &json), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_pool_stats_json(pool, NULL), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_pool_leaks_json(NULL, &json), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_pool_leaks_json(pool, NULL), GRPCPOOL_NULL_ARGUMENT);
  CHECK(json == POINTER_SENTINEL, "json out-param written on failure");
  uint64_t still = 77;
  EXPECT_FAIL(grpcpool_pool_shutdown(NULL, 0, &still), GRPCPOOL_NULL_ARGUMENT);
  CHECK(still == 77, "still_in_use written on failure");

  EXPECT_FAIL(grpcpool_config_set(NULL, "max_connections_per_target", "2"), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_config_set_backoff(NULL, 1, 1.5, 0.1, 10), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_config_set_tls_server_name(NULL, "x"), GRPCPOOL_NULL_ARGUMENT);
  grpcpool_config_t *config = grpcpool_config_new();
  EXPECT_FAIL(grpcpool_config_set_tls_ca_file(config, NULL), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_config_set_tls_ca_pem(config, NULL, 10), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_config_set_tls_server_name(config, NULL), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_config_set_tls_client_cert_files(config, "a", NULL), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_config_set_tls_client_cert_pem(config, NULL, 4, (const uint8_t *)"k", 1), GRPCPOOL_NULL_ARGUMENT);
  grpcpool_config_free(config);

  check_section("NULL response: accessors give neutral values, entry lookups NULL_ARGUMENT");
  CHECK(grpcpool_response_code(NULL) == -1, "code of NULL is %d", grpcpool_response_code(NULL));
  CHECK(strcmp(grpcpool_response_message(NULL), "") == 0, "message of NULL not empty");
  grpcpool_bytes_t body = grpcpool_response_body(NULL);
  CHECK(body.data != NULL && body.len == 0, "body of NULL: data %p len %zu", (const void *)body.data, body.len);
  grpcpool_bytes_t details = grpcpool_response_details(NULL);
  CHECK(details.data != NULL && details.len == 0, "details of NULL");
  CHECK(grpcpool_response_header_count(NULL) == 0 && grpcpool_response_trailer_count(NULL) == 0,
        "counts of NULL");
  grpcpool_metadata_entry_t entry = {"sentinel", NULL, 9};
  EXPECT_FAIL(grpcpool_response_header(NULL, 0, &entry), GRPCPOOL_NULL_ARGUMENT);
  EXPECT_FAIL(grpcpool_response_trailer(NULL, 0, &entry), GRPCPOOL_NULL_ARGUMENT);
  CHECK(strcmp(entry.key, "sentinel") == 0 && entry.value_len == 9, "entry written on failure");
  /* Every _free accepts NULL. */
  grpcpool_response_free(NULL);
  grpcpool_config_free(NULL);
  grpcpool_pool_free(NULL);
  grpcpool_string_free(NULL);
}

static void check_targets(grpcpool_pool_t *pool) {
  check_section("malformed targets: INVALID_TARGET; unknown scheme ftp://x:1; non-UTF-8");
  static const char *const bad[] = {
      "",           " http://127.0.0.1:1", "127.0.0.1",       "http:127.0.0.1:1",
      "http://",    "http://127.0.0.1:x",  "http://127.0.0.1:0", "http://127.0.0.1:99999",
      "http://a/b", "ftp://x:1",           "dns://host:1",       "unix:",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    grpcpool_lease_t lease = LEASE_SENTINEL;
    const char *marker = marker_error();
    grpcpool_result rc = grpcpool_acquire(pool, bad[i], 100, &lease);
    const char *error = grpcpool_last_error();
    CHECK(rc == GRPCPOOL_INVALID_TARGET, "target \"%s\" gave %s (%s)", bad[i], grpcpool_result_name(rc), error);
    CHECK(error[0] != '\0' && strcmp(error, marker) != 0, "target \"%s\": last error not set", bad[i]);
    CHECK(lease == LEASE_SENTINEL, "target \"%s\": lease written", bad[i]);
  }
  grpcpool_response_t *response = POINTER_SENTINEL;
  EXPECT_FAIL(grpcpool_unary(pool, "ftp://x:1", ECHO, NULL, 0, NULL, 0, 100, &response), GRPCPOOL_INVALID_TARGET);
  CHECK(response == POINTER_SENTINEL, "response written on failure");
  int ran = 0;
  grpcpool_call_t call = CALL_SENTINEL;
  EXPECT_FAIL(grpcpool_unary_async(pool, "not a target", ECHO, NULL, 0, NULL, 0, 100, noop_callback, &ran, &call),
              GRPCPOOL_INVALID_TARGET);
  CHECK(call == CALL_SENTINEL && ran == 0, "async call with a bad target started");
  grpcpool_lease_t lease = LEASE_SENTINEL;
  EXPECT_FAIL(grpcpool_acquire(pool, "http://\xff\xfe:1", 100, &lease), GRPCPOOL_INVALID_ARGUMENT);
  CHECK(lease == LEASE_SENTINEL, "lease written on failure");
}

static void check_methods_and_metadata(grpcpool_pool_t *pool, const char *target) {
  check_section("methods: empty, no leading slash, no method name: INVALID_METHOD");
  grpcpool_lease_t lease = 0;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, target, 10000, &lease), GRPCPOOL_OK);
  static const char *const bad_methods[] = {"", "grpcpool.test.Echo/Unary", "/grpcpool.test.Echo",
                                            "/grpcpool.test.Echo/", "/a/b/c", "/a b/c"};
  for (size_t i = 0; i < sizeof bad_methods / sizeof bad_methods[0]; i++) {
    grpcpool_response_t *response = POINTER_SENTINEL;
    const char *marker = marker_error();
    grpcpool_result rc = grpcpool_lease_unary(lease, bad_methods[i], NULL, 0, NULL, 0, 1000, &response);
    const char *error = grpcpool_last_error();
    CHECK(rc == GRPCPOOL_INVALID_METHOD, "method \"%s\" gave %s", bad_methods[i], grpcpool_result_name(rc));
    CHECK(error[0] != '\0' && strcmp(error, marker) != 0, "method \"%s\": last error not set", bad_methods[i]);
    CHECK(response == POINTER_SENTINEL, "method \"%s\": response written", bad_methods[i]);
  }
  grpcpool_response_t *response = POINTER_SENTINEL;
  EXPECT_FAIL(grpcpool_unary(pool, target, "", NULL, 0, NULL, 0, 1000, &response), GRPCPOOL_INVALID_METHOD);
  EXPECT_FAIL(grpcpool_unary(pool, target, "no/slash", NULL, 0, NULL, 0, 1000, &response), GRPCPOOL_INVALID_METHOD);
  CHECK(response == POINTER_SENTINEL, "response written on failure");
  int ran = 0;
  grpcpool_call_t call = CALL_SENTINEL;
  EXPECT_FAIL(grpcpool_lease_unary_async(lease, "no/slash", NULL, 0, NULL, 0, 1000, noop_callback, &ran, &call),
              GRPCPOOL_INVALID_METHOD);
  EXPECT_FAIL(grpcpool_unary_async(pool, target, "", NULL, 0, NULL, 0, 1000, noop_callback, &ran, &call),
              GRPCPOOL_INVALID_METHOD);
  CHECK(call == CALL_SENTINEL && ran == 0, "async call with a bad method started");

  check_section("metadata: key \"Bad Key\", newline in an ascii value, reserved key: INVALID_METADATA");
  grpcpool_metadata_entry_t bad_key = ascii("Bad Key", "v");
  grpcpool_metadata_entry_t upper_key = ascii("X-Upper", "v");
  grpcpool_metadata_entry_t newline = ascii("x-note", "line\nbreak");
  grpcpool_metadata_entry_t reserved = ascii("grpc-timeout", "1S");
  grpcpool_metadata_entry_t empty_key = ascii("", "v");
  static const uint8_t high[] = {'a', 0xff};
  grpcpool_metadata_entry_t non_ascii = {"x-note", high, sizeof high};
  grpcpool_metadata_entry_t *bad_entries[] = {&bad_key, &upper_key, &newline, &reserved, &empty_key, &non_ascii};
  for (size_t i = 0; i < sizeof bad_entries / sizeof bad_entries[0]; i++) {
    /* The bad entry comes after a good one: the whole call is refused. */
    grpcpool_metadata_entry_t entries[2] = {ascii("x-echo-ok", "fine"), *bad_entries[i]};
    response = POINTER_SENTINEL;
    const char *marker = marker_error();
    grpcpool_result rc = grpcpool_lease_unary(lease, ECHO, NULL, 0, entries, 2, 1000, &response);
    const char *error = grpcpool_last_error();
    CHECK(rc == GRPCPOOL_INVALID_METADATA, "metadata key \"%s\" gave %s", bad_entries[i]->key,
          grpcpool_result_name(rc));
    CHECK(error[0] != '\0' && strcmp(error, marker) != 0, "metadata \"%s\": last error not set", bad_entries[i]->key);
    CHECK(response == POINTER_SENTINEL, "metadata \"%s\": response written", bad_entries[i]->key);
  }
  EXPECT_FAIL(grpcpool_unary(pool, target, ECHO, NULL, 0, &bad_key, 1, 1000, &response), GRPCPOOL_INVALID_METADATA);
  EXPECT_FAIL(grpcpool_lease_unary_async(lease, ECHO, NULL, 0, &newline, 1, 1000, noop_callback, &ran, &call),
              GRPCPOOL_INVALID_METADATA);
  EXPECT_FAIL(grpcpool_unary_async(pool, target, ECHO, NULL, 0, &bad_key, 1, 1000, noop_callback, &ran, &call),
              GRPCPOOL_INVALID_METADATA);
  CHECK(response == POINTER_SENTINEL && call == CALL_SENTINEL && ran == 0, "out-params written or call started");
  /* The lease is still fine after all that. */
  response = NULL;
  CHECK_RC(grpcpool_lease_unary(lease, ECHO, (const uint8_t *)"ok", 2, NULL, 0, 10000, &response), GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 0, "code %d", grpcpool_response_code(response));
  grpcpool_response_free(response);
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);
}

static void check_message_size(const char *target) {
  check_section("max send 1024: 1024 bytes go, 1025 give MESSAGE_TOO_LARGE");
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set(config, "max_send_message_size", "1024"), GRPCPOOL_OK);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_config_free(config);
  static uint8_t request[1025];
  memset(request, 'a', sizeof request);
  grpcpool_lease_t lease = 0;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, target, 10000, &lease), GRPCPOOL_OK);
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_lease_unary(lease, ECHO, request, 1024, NULL, 0, 10000, &response), GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 0 && grpcpool_response_body(response).len == 1024,
        "1024-byte call: code %d", grpcpool_response_code(response));
  grpcpool_response_free(response);
  response = POINTER_SENTINEL;
  EXPECT_FAIL(grpcpool_lease_unary(lease, ECHO, request, 1025, NULL, 0, 10000, &response), GRPCPOOL_MESSAGE_TOO_LARGE);
  EXPECT_FAIL(grpcpool_unary(pool, target, ECHO, request, 1025, NULL, 0, 10000, &response), GRPCPOOL_MESSAGE_TOO_LARGE);
  CHECK(response == POINTER_SENTINEL, "response written on failure");
  int ran = 0;
  grpcpool_call_t call = CALL_SENTINEL;
  EXPECT_FAIL(grpcpool_lease_unary_async(lease, ECHO, request, 1025, NULL, 0, 10000, noop_callback, &ran, &call),
              GRPCPOOL_MESSAGE_TOO_LARGE);
  EXPECT_FAIL(grpcpool_unary_async(pool, target, ECHO, request, 1025, NULL, 0, 10000, noop_callback, &ran, &call),
              GRPCPOOL_MESSAGE_TOO_LARGE);
  CHECK(call == CALL_SENTINEL && ran == 0, "oversized async call started");
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);
  grpcpool_pool_free(pool);
}

/* pool_new with one bad setting must fail with `expected` and leave *out alone. */
static void expect_pool_new_fails(grpcpool_config_t *config, grpcpool_result expected, const char *what) {
  grpcpool_pool_t *pool = POINTER_SENTINEL;
  const char *marker = marker_error();
  grpcpool_result rc = grpcpool_pool_new(config, &pool);
  const char *error = grpcpool_last_error();
  CHECK(rc == expected, "%s: pool_new gave %s, expected %s (%s)", what, grpcpool_result_name(rc),
        grpcpool_result_name(expected), error);
  CHECK(error[0] != '\0' && strcmp(error, marker) != 0, "%s: last error not set", what);
  CHECK(pool == POINTER_SENTINEL, "%s: pool out-param written", what);
  if (rc == GRPCPOOL_OK && pool != POINTER_SENTINEL) grpcpool_pool_free(pool);
  grpcpool_config_free(config);
}

static void check_configs(void) {
  check_section("config: min > max and other out-of-range values give INVALID_CONFIG at pool_new");
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set(config, "min_connections_per_target", "5"), GRPCPOOL_OK);
  CHECK_RC(grpcpool_config_set(config, "max_connections_per_target", "2"), GRPCPOOL_OK);
  expect_pool_new_fails(config, GRPCPOOL_INVALID_CONFIG, "min 5 > max 2");
  config = grpcpool_config_new();
  grpcpool_config_set(config, "max_connections_per_target", "0");
  expect_pool_new_fails(config, GRPCPOOL_INVALID_CONFIG, "max connections 0");
  config = grpcpool_config_new();
  grpcpool_config_set(config, "streams_per_connection", "0");
  expect_pool_new_fails(config, GRPCPOOL_INVALID_CONFIG, "streams per connection 0");
  config = grpcpool_config_new();
  grpcpool_config_set(config, "initial_stream_window_size", "10");
  expect_pool_new_fails(config, GRPCPOOL_INVALID_CONFIG, "stream window 10");
  config = grpcpool_config_new();
  grpcpool_config_set(config, "connect_timeout", "0");
  expect_pool_new_fails(config, GRPCPOOL_INVALID_CONFIG, "connect timeout 0");
  config = grpcpool_config_new();
  grpcpool_config_set(config, "max_send_message_size", "0");
  expect_pool_new_fails(config, GRPCPOOL_INVALID_CONFIG, "max send 0");
  config = grpcpool_config_new();
  grpcpool_config_set_backoff(config, 100, 0.5, 0.2, 1000);
  expect_pool_new_fails(config, GRPCPOOL_INVALID_CONFIG, "backoff multiplier 0.5");
  config = grpcpool_config_new();
  grpcpool_config_set_backoff(config, 1000, 1.6, 0.2, 10);
  expect_pool_new_fails(config, GRPCPOOL_INVALID_CONFIG, "backoff max below initial");
  EXPECT_FAIL(grpcpool_set_log_callback(NULL, NULL, 6), GRPCPOOL_INVALID_ARGUMENT);
  EXPECT_FAIL(grpcpool_set_log_callback(NULL, NULL, -1), GRPCPOOL_INVALID_ARGUMENT);

  check_section("TLS material: missing CA file IO_ERROR; garbage CA PEM TLS_ERROR at pool_new");
  config = grpcpool_config_new();
  EXPECT_FAIL(grpcpool_config_set_tls_ca_file(config, "/nonexistent/grpcpool/ca.pem"), GRPCPOOL_IO_ERROR);
  EXPECT_FAIL(grpcpool_config_set_tls_client_cert_files(config, "/nonexistent/cert.pem", "/nonexistent/key.pem"),
              GRPCPOOL_IO_ERROR);
  /* A failed setter changes nothing: this config still makes a pool. */
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_pool_free(pool);
  grpcpool_config_free(config);

  static const char garbage[] = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
  config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set_tls_ca_pem(config, (const uint8_t *)garbage, sizeof garbage - 1), GRPCPOOL_OK);
  expect_pool_new_fails(config, GRPCPOOL_TLS_ERROR, "garbage CA PEM");
  config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set_tls_ca_pem(config, (const uint8_t *)"hello", 5), GRPCPOOL_OK);
  expect_pool_new_fails(config, GRPCPOOL_TLS_ERROR, "CA PEM without a certificate");
  config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set_tls_client_cert_pem(config, (const uint8_t *)garbage, sizeof garbage - 1,
                                                   (const uint8_t *)"no key", 6),
           GRPCPOOL_OK);
  expect_pool_new_fails(config, GRPCPOOL_TLS_ERROR, "garbage client certificate and key");
  config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set_tls_server_name(config, "not a host name!"), GRPCPOOL_OK);
  expect_pool_new_fails(config, GRPCPOOL_TLS_ERROR, "server name \"not a host name!\"");
}

static void check_handles(const char *target) {
  check_section("handles: double release, forged, unary on a released lease, cancel of a forged call");
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(NULL, &pool), GRPCPOOL_OK);
  grpcpool_lease_t lease = 0;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, target, 10000, &lease), GRPCPOOL_OK);
  CHECK_RC(grpcpool_release(lease), GRPCPOOL_OK);
  EXPECT_FAIL(grpcpool_release(lease), GRPCPOOL_INVALID_HANDLE);
  grpcpool_response_t *response = POINTER_SENTINEL;
  EXPECT_FAIL(grpcpool_lease_unary(lease, ECHO, NULL, 0, NULL, 0, 1000, &response), GRPCPOOL_INVALID_HANDLE);
  CHECK(response == POINTER_SENTINEL, "response written for a released lease");
  int ran = 0;
  grpcpool_call_t call = CALL_SENTINEL;
  EXPECT_FAIL(grpcpool_lease_unary_async(lease, ECHO, NULL, 0, NULL, 0, 1000, noop_callback, &ran, &call),
              GRPCPOOL_INVALID_HANDLE);
  CHECK(call == CALL_SENTINEL && ran == 0, "async call started on a released lease");

  /* A new lease may reuse the slot; the old handle stays dead. */
  grpcpool_lease_t next = 0;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, target, 10000, &next), GRPCPOOL_OK);
  CHECK(next != lease, "a reused slot gave the same handle");
  EXPECT_FAIL(grpcpool_release(lease), GRPCPOOL_INVALID_HANDLE);
  const grpcpool_lease_t forged[] = {12345, 0, UINT64_MAX, 1, next ^ (1ULL << 32), next ^ (1ULL << 40), next + 1};
  for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
    const char *marker = marker_error();
    grpcpool_result rc = grpcpool_release(forged[i]);
    CHECK(rc == GRPCPOOL_INVALID_HANDLE, "release(%#llx) gave %s", (unsigned long long)forged[i], grpcpool_result_name(rc));
    CHECK(strcmp(grpcpool_last_error(), marker) != 0, "release(%#llx): last error not set", (unsigned long long)forged[i]);
    rc = grpcpool_lease_unary(forged[i], ECHO, NULL, 0, NULL, 0, 1000, &response);
    CHECK(rc == GRPCPOOL_INVALID_HANDLE, "lease_unary(%#llx) gave %s", (unsigned long long)forged[i], grpcpool_result_name(rc));
    rc = grpcpool_call_cancel(forged[i]);
    CHECK(rc == GRPCPOOL_INVALID_HANDLE, "call_cancel(%#llx) gave %s", (unsigned long long)forged[i], grpcpool_result_name(rc));
  }
  CHECK(response == POINTER_SENTINEL, "response written for a forged lease");
  /* The forged releases did not release the real lease. */
  response = NULL;
  CHECK_RC(grpcpool_lease_unary(next, ECHO, (const uint8_t *)"alive", 5, NULL, 0, 10000, &response), GRPCPOOL_OK);
  CHECK(grpcpool_response_code(response) == 0, "live lease broken by forged handles");
  grpcpool_response_free(response);

  check_section("a lease still held when its pool is freed: INVALID_HANDLE afterwards");
  grpcpool_pool_free(pool);
  EXPECT_FAIL(grpcpool_release(next), GRPCPOOL_INVALID_HANDLE);
  response = POINTER_SENTINEL;
  EXPECT_FAIL(grpcpool_lease_unary(next, ECHO, NULL, 0, NULL, 0, 1000, &response), GRPCPOOL_INVALID_HANDLE);
  CHECK(response == POINTER_SENTINEL, "response written for a lease of a freed pool");
}

static void check_unavailable(grpcpool_pool_t *pool) {
  check_section("acquire on a closed port: UNAVAILABLE");
  int port = closed_port();
  CHECK(port > 0, "could not find a free port");
  char target[64];
  snprintf(target, sizeof target, "http://127.0.0.1:%d", port);
  grpcpool_lease_t lease = LEASE_SENTINEL;
  double started = now_ms();
  EXPECT_FAIL(grpcpool_acquire(pool, target, 5000, &lease), GRPCPOOL_UNAVAILABLE);
  double took = now_ms() - started;
  CHECK(took < 4000, "UNAVAILABLE took %.0f ms; it should come when the connect fails", took);
  CHECK(lease == LEASE_SENTINEL, "lease written on failure");
  /* A second try fails fast from the remembered failure. */
  EXPECT_FAIL(grpcpool_acquire(pool, target, 5000, &lease), GRPCPOOL_UNAVAILABLE);
  /* A one-shot call is an RPC: the unreachable target is its status, UNAVAILABLE (14). */
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_unary(pool, target, ECHO, NULL, 0, NULL, 0, 5000, &response), GRPCPOOL_OK);
  CHECK(response != NULL && grpcpool_response_code(response) == 14, "one-shot to a closed port: status %d",
        grpcpool_response_code(response));
  grpcpool_response_free(response);
}

static void check_saturation(const char *limited) {
  check_section("saturation: 2 streams/connection, max 1 connection: third acquire ACQUIRE_TIMEOUT");
  grpcpool_config_t *config = grpcpool_config_new();
  CHECK_RC(grpcpool_config_set(config, "max_connections_per_target", "1"), GRPCPOOL_OK);
  grpcpool_pool_t *pool = NULL;
  CHECK_RC(grpcpool_pool_new(config, &pool), GRPCPOOL_OK);
  grpcpool_config_free(config);
  grpcpool_lease_t first = 0, second = 0, third = LEASE_SENTINEL;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, limited, 10000, &first), GRPCPOOL_OK);
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, limited, 10000, &second), GRPCPOOL_OK);
  double started = now_ms();
  EXPECT_FAIL(GRPCPOOL_ACQUIRE(pool, limited, 200, &third), GRPCPOOL_ACQUIRE_TIMEOUT);
  double took = now_ms() - started;
  CHECK(took >= 180 && took < 2000, "a 200 ms acquire gave up after %.0f ms", took);
  CHECK(third == LEASE_SENTINEL, "lease written on failure");
  /* A one-shot call that finds no slot in its deadline ends with DEADLINE_EXCEEDED (4). */
  grpcpool_response_t *response = NULL;
  CHECK_RC(grpcpool_unary(pool, limited, ECHO, NULL, 0, NULL, 0, 200, &response), GRPCPOOL_OK);
  CHECK(response != NULL && grpcpool_response_code(response) == 4, "one-shot on a full pool: status %d",
        grpcpool_response_code(response));
  grpcpool_response_free(response);
  /* A released slot is taken by the next acquire. */
  CHECK_RC(grpcpool_release(first), GRPCPOOL_OK);
  third = 0;
  CHECK_RC(GRPCPOOL_ACQUIRE(pool, limited, 10000, &third), GRPCPOOL_OK);
  CHECK_RC(grpcpool_release(second), GRPCPOOL_OK);
  CHECK_RC(grpcpool_release(third), GRPCPOOL_OK);

  check_section("after shutdown: acquire and unary give POOL_CLOSED");
  uint64_t still = 99;
  CHECK_RC(grpcpool_pool_shutdown(pool, 1000, &still), GRPCPOOL_OK);
  CHECK(still == 0, "still in use %llu", (unsigned long long)still);
  grpcpool_lease_t lease = LEASE_SENTINEL;
  EXPECT_FAIL(grpcpool_acquire(pool, limited, 1000, &lease), GRPCPOOL_POOL_CLOSED);
  EXPECT_FAIL(grpcpool_acquire(pool, "http://127.0.0.1:1", 1000, &lease), GRPCPOOL_POOL_CLOSED);
  CHECK(lease == LEASE_SENTINEL, "lease written on failure");
  response = POINTER_SENTINEL;
  EXPECT_FAIL(grpcpool_unary(pool, limited, ECHO, NULL, 0, NULL, 0, 1000, &response), GRPCPOOL_POOL_CLOSED);
  CHECK(response == POINTER_SENTINEL, "response written on failure");
  grpcpool_pool_free(pool);
}

static void check_result_names(void) {
  check_section("grpcpool_result_name");
  struct { grpcpool_result code; const char *name; } names[] = {
      {GRPCPOOL_OK, "GRPCPOOL_OK"},
      {GRPCPOOL_NULL_ARGUMENT, "GRPCPOOL_NULL_ARGUMENT"},
      {GRPCPOOL_INVALID_TARGET, "GRPCPOOL_INVALID_TARGET"},
      {GRPCPOOL_ACQUIRE_TIMEOUT, "GRPCPOOL_ACQUIRE_TIMEOUT"},
      {GRPCPOOL_INVALID_HANDLE, "GRPCPOOL_INVALID_HANDLE"},
      {GRPCPOOL_BLOCKING_IN_CALLBACK, "GRPCPOOL_BLOCKING_IN_CALLBACK"},
      {GRPCPOOL_INTERNAL, "GRPCPOOL_INTERNAL"},
      {GRPCPOOL_RUNTIME_ERROR, "GRPCPOOL_RUNTIME_ERROR"},
      {GRPCPOOL_CANCELLED, "GRPCPOOL_CANCELLED"},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *name = grpcpool_result_name(names[i].code);
    CHECK(name != NULL && strcmp(name, names[i].name) == 0, "name of %d is %s", (int)names[i].code,
          name ? name : "(null)");
  }
  /* A number this library does not know (from a newer header, say) has a name too. */
  CHECK(strcmp(grpcpool_result_name(999), "GRPCPOOL_UNKNOWN") == 0, "unknown code 999");
  CHECK(strcmp(grpcpool_result_name(-1), "GRPCPOOL_UNKNOWN") == 0, "unknown code -1");
  /* The numbers are part of the ABI. */
  CHECK(GRPCPOOL_OK == 0 && GRPCPOOL_INVALID_HANDLE == 12 && GRPCPOOL_INTERNAL == 16 &&
            GRPCPOOL_RUNTIME_ERROR == 19 && GRPCPOOL_CANCELLED == 20,
        "result numbers moved");
}

int main(void) {
  const char *target = check_env("GRPCPOOL_TEST_TARGET");
  const char *limited = check_env("GRPCPOOL_TEST_TARGET_LIMITED");

  grpcpool_pool_t *pool = NULL;
  if (grpcpool_pool_new(NULL, &pool) != GRPCPOOL_OK) {
    fprintf(stderr, "pool_new: %s\n", grpcpool_last_error());
    return 1;
  }
  check_null_arguments(pool, target);
  check_targets(pool);
  check_methods_and_metadata(pool, target);
  check_message_size(target);
  check_configs();
  check_handles(target);
  check_unavailable(pool);
  check_saturation(limited);
  check_result_names();
  grpcpool_pool_free(pool);
  return check_summary("test_errors");
}
