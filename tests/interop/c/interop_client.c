/*
 * The gRPC interop client cases through the C ABI (include/grpcpool.h only), against the
 * grpc-go interop server: empty_unary, large_unary, custom_metadata, status_code_and_message,
 * special_status_message, unimplemented_method, server_streaming, ping_pong. The few protobuf
 * messages are encoded and decoded by hand below (varints and length-delimited fields).
 *
 * Build (from the repository root, after `cargo build -p grpcpool-ffi --lib`; the library's
 * soname is libgrpcpool.so.0, which the build tree lacks, hence the symlink):
 *
 *   ln -sf libgrpcpool.so target/debug/libgrpcpool.so.0
 *   gcc -Wall -Wextra -Werror -std=c11 -Iinclude tests/interop/c/interop_client.c -Ltarget/debug -lgrpcpool -Wl,-rpath,$PWD/target/debug -o target/debug/interop-c
 *
 * Environment:
 *   GRPCPOOL_INTEROP_TARGET       http://127.0.0.1:PORT or https://127.0.0.1:PORT (required)
 *   GRPCPOOL_INTEROP_CA_FILE      CA certificate (PEM) to trust, for https
 *   GRPCPOOL_INTEROP_SERVER_NAME  name to check the server's certificate against, for https
 *
 * Arguments: case names to run only those (default: all). Prints one line per case,
 * "  ok   <case> (<ms> ms)" or "  FAIL <case>: <reason>", then "<N> passed, <M> failed";
 * exits 0 only when nothing failed. Every call has a 10 s deadline, so a case cannot hang.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpcpool.h"

#define SERVICE "/grpc.testing.TestService/"
#define DEADLINE_MS 10000u

static const char SPECIAL_MESSAGE[] =
    "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP \xf0\x9f\x98\x88\t\n";
static const size_t SIZES[4][2] = {{27182, 31415}, {8, 9}, {1828, 2653}, {45904, 58979}};

/* ---- outcome of a case: 0, or -1 with the reason in `reason` ---- */

static char reason[512];

static int fail(const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(reason, sizeof reason, format, args);
  va_end(args);
  return -1;
}

/* Fails with the library's message for a result that is not GRPCPOOL_OK. */
static int fail_rc(const char *what, grpcpool_result rc) {
  return fail("%s: %s: %s", what, grpcpool_result_name(rc), grpcpool_last_error());
}

/* ---- protobuf encoding: a growable buffer ---- */

typedef struct {
  uint8_t *data;
  size_t len;
  size_t cap;
  int out_of_memory;
} buf_t;

static void buf_reserve(buf_t *b, size_t more) {
  if (b->out_of_memory || b->len + more <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + more) cap *= 2;
  uint8_t *data = realloc(b->data, cap);
  if (data == NULL) {
    b->out_of_memory = 1;
    return;
  }
  b->data = data;
  b->cap = cap;
}

static void buf_raw(buf_t *b, const void *data, size_t len) {
  buf_reserve(b, len);
  if (b->out_of_memory || len == 0) return;
  memcpy(b->data + b->len, data, len);
  b->len += len;
}

static void buf_zeros(buf_t *b, size_t len) {
  buf_reserve(b, len);
  if (b->out_of_memory || len == 0) return;
  memset(b->data + b->len, 0, len);
  b->len += len;
}

static void put_varint(buf_t *b, uint64_t value) {
  uint8_t bytes[10];
  size_t n = 0;
  do {
    bytes[n] = (uint8_t)(value & 0x7f);
    value >>= 7;
    if (value != 0) bytes[n] |= 0x80;
    n++;
  } while (value != 0);
  buf_raw(b, bytes, n);
}

/* A varint field (wire type 0). */
static void put_uint_field(buf_t *b, unsigned field, uint64_t value) {
  put_varint(b, (uint64_t)field << 3 | 0);
  put_varint(b, value);
}

/* A length-delimited field (wire type 2) holding `len` bytes of `data`. */
static void put_bytes_field(buf_t *b, unsigned field, const void *data, size_t len) {
  put_varint(b, (uint64_t)field << 3 | 2);
  put_varint(b, len);
  buf_raw(b, data, len);
}

/* A message field holding Payload { body (2): `zeros` zero bytes }. */
static void put_payload(buf_t *b, unsigned field, size_t zeros) {
  buf_t payload = {0};
  put_varint(&payload, 2u << 3 | 2);
  put_varint(&payload, zeros);
  buf_zeros(&payload, zeros);
  put_bytes_field(b, field, payload.data, payload.len);
  b->out_of_memory |= payload.out_of_memory;
  free(payload.data);
}

/* A message field holding EchoStatus { code (1), message (2) }. */
static void put_echo_status(buf_t *b, unsigned field, int code, const char *message) {
  buf_t status = {0};
  put_uint_field(&status, 1, (uint64_t)code);
  put_bytes_field(&status, 2, message, strlen(message));
  put_bytes_field(b, field, status.data, status.len);
  b->out_of_memory |= status.out_of_memory;
  free(status.data);
}

/* SimpleRequest { response_size (2), payload (3), response_status (7) }; 0 / NULL leave them out. */
static buf_t simple_request(size_t response_size, size_t payload, const char *status_message) {
  buf_t b = {0};
  if (response_size > 0) put_uint_field(&b, 2, response_size);
  if (payload > 0) put_payload(&b, 3, payload);
  if (status_message != NULL) put_echo_status(&b, 7, 2, status_message);
  return b;
}

/* StreamingOutputCallRequest { response_parameters (2): [{ size (1) }], payload (3),
 * response_status (7) }. */
static buf_t output_request(const size_t *sizes, size_t count, size_t payload, const char *status_message) {
  buf_t b = {0};
  for (size_t i = 0; i < count; i++) {
    buf_t parameters = {0};
    put_uint_field(&parameters, 1, sizes[i]);
    put_bytes_field(&b, 2, parameters.data, parameters.len);
    b.out_of_memory |= parameters.out_of_memory;
    free(parameters.data);
  }
  if (payload > 0) put_payload(&b, 3, payload);
  if (status_message != NULL) put_echo_status(&b, 7, 2, status_message);
  return b;
}

/* ---- protobuf decoding ---- */

static int get_varint(const uint8_t **at, const uint8_t *end, uint64_t *value) {
  uint64_t result = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (*at >= end) return -1;
    uint8_t byte = *(*at)++;
    result |= (uint64_t)(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *value = result;
      return 0;
    }
  }
  return -1;
}

/* Finds the last length-delimited field `field` of a message (absent: *out_len = 0, found 0);
 * returns 1 if found, 0 if absent, -1 if the message is malformed. */
static int find_bytes_field(const uint8_t *data, size_t len, unsigned field, const uint8_t **out,
                            size_t *out_len) {
  const uint8_t *at = data, *end = data + len;
  int found = 0;
  *out = data;
  *out_len = 0;
  while (at < end) {
    uint64_t key, value;
    if (get_varint(&at, end, &key) != 0) return -1;
    switch (key & 7) {
      case 0:
        if (get_varint(&at, end, &value) != 0) return -1;
        break;
      case 1:
        if (end - at < 8) return -1;
        at += 8;
        break;
      case 2:
        if (get_varint(&at, end, &value) != 0 || value > (uint64_t)(end - at)) return -1;
        if ((key >> 3) == field) {
          *out = at;
          *out_len = (size_t)value;
          found = 1;
        }
        at += value;
        break;
      case 5:
        if (end - at < 4) return -1;
        at += 4;
        break;
      default:
        return -1;
    }
  }
  return found;
}

/* The body of the Payload in field 1 of a SimpleResponse or StreamingOutputCallResponse: checks
 * it is `expected` zero bytes. */
static int check_payload(const uint8_t *message, size_t len, size_t expected) {
  const uint8_t *payload, *body;
  size_t payload_len, body_len;
  if (find_bytes_field(message, len, 1, &payload, &payload_len) < 0 ||
      find_bytes_field(payload, payload_len, 2, &body, &body_len) < 0) {
    return fail("malformed response of %zu bytes", len);
  }
  if (body_len != expected) return fail("payload of %zu bytes, wanted %zu", body_len, expected);
  for (size_t i = 0; i < body_len; i++) {
    if (body[i] != 0) return fail("payload byte %zu is %u, not 0", i, body[i]);
  }
  return 0;
}

/* ---- calls ---- */

static grpcpool_pool_t *pool;
static const char *target;

static const uint8_t TRAILING_VALUE[] = {0xab, 0xab, 0xab};
static const char INITIAL_VALUE[] = "test_initial_metadata_value";

static const grpcpool_metadata_entry_t ECHO_METADATA[2] = {
    {"x-grpc-test-echo-initial", (const uint8_t *)INITIAL_VALUE, sizeof INITIAL_VALUE - 1},
    {"x-grpc-test-echo-trailing-bin", TRAILING_VALUE, sizeof TRAILING_VALUE},
};

/* A unary call with a 10 s deadline; the response in *out, or -1 with the reason. */
static int unary(const char *method, const buf_t *request, const grpcpool_metadata_entry_t *metadata,
                 size_t metadata_len, grpcpool_response_t **out) {
  if (request->out_of_memory) return fail("out of memory encoding the request");
  grpcpool_result rc = grpcpool_unary(pool, target, method, request->data, request->len, metadata, metadata_len,
                                      DEADLINE_MS, out);
  return rc == GRPCPOOL_OK ? 0 : fail_rc(method, rc);
}

static int check_ok(const grpcpool_response_t *response) {
  int code = grpcpool_response_code(response);
  return code == 0 ? 0 : fail("status %d: %s", code, grpcpool_response_message(response));
}

static int check_status(const grpcpool_response_t *response, int code, const char *message) {
  if (grpcpool_response_code(response) != code || strcmp(grpcpool_response_message(response), message) != 0) {
    return fail("status %d \"%s\", wanted %d \"%s\"", grpcpool_response_code(response),
                grpcpool_response_message(response), code, message);
  }
  return 0;
}

/* Whether the headers (or trailers) have `key` with exactly these bytes. */
static int has_entry(const grpcpool_response_t *response, int trailers, const char *key, const void *value,
                     size_t len) {
  size_t count = trailers ? grpcpool_response_trailer_count(response) : grpcpool_response_header_count(response);
  for (size_t i = 0; i < count; i++) {
    grpcpool_metadata_entry_t entry;
    grpcpool_result rc = trailers ? grpcpool_response_trailer(response, i, &entry)
                                  : grpcpool_response_header(response, i, &entry);
    if (rc == GRPCPOOL_OK && strcmp(entry.key, key) == 0) {
      return entry.value_len == len && memcmp(entry.value, value, len) == 0;
    }
  }
  return 0;
}

static int check_echoed_metadata(const grpcpool_response_t *response) {
  if (!has_entry(response, 0, "x-grpc-test-echo-initial", INITIAL_VALUE, sizeof INITIAL_VALUE - 1)) {
    return fail("x-grpc-test-echo-initial not echoed in the headers");
  }
  if (!has_entry(response, 1, "x-grpc-test-echo-trailing-bin", TRAILING_VALUE, sizeof TRAILING_VALUE)) {
    return fail("x-grpc-test-echo-trailing-bin not echoed in the trailers as ab ab ab");
  }
  return 0;
}

/* Opens a stream with a 10 s deadline on the whole call. */
static int open_stream(const char *method, const grpcpool_metadata_entry_t *metadata, size_t metadata_len,
                       grpcpool_stream_t *out) {
  grpcpool_result rc = grpcpool_open_stream(pool, target, method, metadata, metadata_len, DEADLINE_MS, out);
  return rc == GRPCPOOL_OK ? 0 : fail_rc(method, rc);
}

static int send_message(grpcpool_stream_t stream, buf_t *request) {
  if (request->out_of_memory) return fail("out of memory encoding the request");
  grpcpool_result rc = grpcpool_stream_send(stream, request->data, request->len);
  return rc == GRPCPOOL_OK ? 0 : fail_rc("send", rc);
}

static int close_send(grpcpool_stream_t stream) {
  grpcpool_result rc = grpcpool_stream_close_send(stream);
  return rc == GRPCPOOL_OK ? 0 : fail_rc("close_send", rc);
}

/* The next message in *out (NULL at the end). */
static int recv_message(grpcpool_stream_t stream, grpcpool_message_t **out) {
  grpcpool_result rc = grpcpool_stream_recv(stream, out);
  return rc == GRPCPOOL_OK ? 0 : fail_rc("recv", rc);
}

/* Receives one reply and checks its payload size; the end of the stream is a failure that says
 * what the status was. */
static int expect_reply(grpcpool_stream_t stream, size_t size) {
  grpcpool_message_t *message = NULL;
  if (recv_message(stream, &message) != 0) return -1;
  if (message == NULL) {
    grpcpool_response_t *response = NULL;
    if (grpcpool_stream_finish(stream, &response) != GRPCPOOL_OK) return fail("no reply");
    fail("no reply; status %d: %s", grpcpool_response_code(response), grpcpool_response_message(response));
    grpcpool_response_free(response);
    return -1;
  }
  grpcpool_bytes_t bytes = grpcpool_message_bytes(message);
  int outcome = check_payload(bytes.data, bytes.len, size);
  grpcpool_message_free(message);
  return outcome;
}

static int expect_end(grpcpool_stream_t stream) {
  grpcpool_message_t *message = NULL;
  if (recv_message(stream, &message) != 0) return -1;
  if (message != NULL) {
    grpcpool_message_free(message);
    return fail("a message too many");
  }
  return 0;
}

/* ---- the cases ---- */

static int empty_unary(void) {
  buf_t request = {0};
  grpcpool_response_t *response = NULL;
  if (unary(SERVICE "EmptyCall", &request, NULL, 0, &response) != 0) return -1;
  int outcome = check_ok(response);
  if (outcome == 0 && grpcpool_response_body(response).len != 0) {
    outcome = fail("%zu bytes back for Empty", grpcpool_response_body(response).len);
  }
  grpcpool_response_free(response);
  return outcome;
}

static int large_unary_with(const grpcpool_metadata_entry_t *metadata, size_t metadata_len) {
  buf_t request = simple_request(314159, 271828, NULL);
  grpcpool_response_t *response = NULL;
  int outcome = unary(SERVICE "UnaryCall", &request, metadata, metadata_len, &response);
  free(request.data);
  if (outcome != 0) return -1;
  outcome = check_ok(response);
  if (outcome == 0) {
    grpcpool_bytes_t body = grpcpool_response_body(response);
    outcome = check_payload(body.data, body.len, 314159);
  }
  if (outcome == 0 && metadata_len > 0) outcome = check_echoed_metadata(response);
  grpcpool_response_free(response);
  return outcome;
}

static int large_unary(void) { return large_unary_with(NULL, 0); }

static int custom_metadata(void) {
  if (large_unary_with(ECHO_METADATA, 2) != 0) return -1;
  grpcpool_stream_t stream = 0;
  if (open_stream(SERVICE "FullDuplexCall", ECHO_METADATA, 2, &stream) != 0) return -1;
  const size_t size = 314159;
  buf_t request = output_request(&size, 1, 271828, NULL);
  int outcome = send_message(stream, &request);
  free(request.data);
  if (outcome == 0) outcome = expect_reply(stream, size);
  if (outcome == 0) outcome = close_send(stream);
  grpcpool_response_t *response = NULL;
  if (outcome == 0) {
    grpcpool_result rc = grpcpool_stream_finish(stream, &response);
    outcome = rc == GRPCPOOL_OK ? 0 : fail_rc("finish", rc);
  }
  if (outcome == 0) outcome = check_ok(response);
  if (outcome == 0) outcome = check_echoed_metadata(response);
  grpcpool_response_free(response);
  grpcpool_stream_free(stream);
  return outcome;
}

static int unary_status(const char *message) {
  buf_t request = simple_request(0, 0, message);
  grpcpool_response_t *response = NULL;
  int outcome = unary(SERVICE "UnaryCall", &request, NULL, 0, &response);
  free(request.data);
  if (outcome != 0) return -1;
  outcome = check_status(response, 2, message);
  grpcpool_response_free(response);
  return outcome;
}

static int status_code_and_message(void) {
  const char *message = "test status message";
  if (unary_status(message) != 0) return -1;
  grpcpool_stream_t stream = 0;
  if (open_stream(SERVICE "FullDuplexCall", NULL, 0, &stream) != 0) return -1;
  buf_t request = output_request(NULL, 0, 0, message);
  int outcome = send_message(stream, &request);
  free(request.data);
  if (outcome == 0) outcome = close_send(stream);
  grpcpool_response_t *response = NULL;
  if (outcome == 0) {
    /* finish drains whatever comes before the status. */
    grpcpool_result rc = grpcpool_stream_finish(stream, &response);
    outcome = rc == GRPCPOOL_OK ? 0 : fail_rc("finish", rc);
  }
  if (outcome == 0) outcome = check_status(response, 2, message);
  grpcpool_response_free(response);
  grpcpool_stream_free(stream);
  return outcome;
}

static int special_status_message(void) { return unary_status(SPECIAL_MESSAGE); }

static int unimplemented_method(void) {
  buf_t request = {0};
  grpcpool_response_t *response = NULL;
  if (unary(SERVICE "UnimplementedCall", &request, NULL, 0, &response) != 0) return -1;
  int code = grpcpool_response_code(response);
  int outcome = code == 12 ? 0 : fail("status %d: %s, wanted 12", code, grpcpool_response_message(response));
  grpcpool_response_free(response);
  return outcome;
}

static int server_streaming(void) {
  grpcpool_stream_t stream = 0;
  if (open_stream(SERVICE "StreamingOutputCall", NULL, 0, &stream) != 0) return -1;
  size_t sizes[4];
  for (int i = 0; i < 4; i++) sizes[i] = SIZES[i][1];
  buf_t request = output_request(sizes, 4, 0, NULL);
  int outcome = send_message(stream, &request);
  free(request.data);
  if (outcome == 0) outcome = close_send(stream);
  for (int i = 0; i < 4 && outcome == 0; i++) {
    outcome = expect_reply(stream, sizes[i]);
    if (outcome != 0) {
      char inner[sizeof reason];
      memcpy(inner, reason, sizeof inner);
      fail("response %d: %s", i, inner);
    }
  }
  if (outcome == 0) outcome = expect_end(stream);
  grpcpool_response_t *response = NULL;
  if (outcome == 0) {
    grpcpool_result rc = grpcpool_stream_finish(stream, &response);
    outcome = rc == GRPCPOOL_OK ? 0 : fail_rc("finish", rc);
  }
  if (outcome == 0) outcome = check_ok(response);
  grpcpool_response_free(response);
  grpcpool_stream_free(stream);
  return outcome;
}

static int ping_pong(void) {
  grpcpool_stream_t stream = 0;
  if (open_stream(SERVICE "FullDuplexCall", NULL, 0, &stream) != 0) return -1;
  int outcome = 0;
  for (int i = 0; i < 4 && outcome == 0; i++) {
    buf_t request = output_request(&SIZES[i][1], 1, SIZES[i][0], NULL);
    outcome = send_message(stream, &request);
    free(request.data);
    if (outcome == 0) outcome = expect_reply(stream, SIZES[i][1]);
  }
  if (outcome == 0) outcome = close_send(stream);
  if (outcome == 0) outcome = expect_end(stream);
  grpcpool_response_t *response = NULL;
  if (outcome == 0) {
    grpcpool_result rc = grpcpool_stream_finish(stream, &response);
    outcome = rc == GRPCPOOL_OK ? 0 : fail_rc("finish", rc);
  }
  if (outcome == 0) outcome = check_ok(response);
  grpcpool_response_free(response);
  grpcpool_stream_free(stream);
  return outcome;
}

static const struct {
  const char *name;
  int (*run)(void);
} CASES[] = {
    {"empty_unary", empty_unary},
    {"large_unary", large_unary},
    {"custom_metadata", custom_metadata},
    {"status_code_and_message", status_code_and_message},
    {"special_status_message", special_status_message},
    {"unimplemented_method", unimplemented_method},
    {"server_streaming", server_streaming},
    {"ping_pong", ping_pong},
};
#define CASE_COUNT (sizeof CASES / sizeof CASES[0])

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Whether `name` was asked for on the command line (everything when nothing was). */
static int selected(const char *name, int argc, char **argv) {
  if (argc < 2) return 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], name) == 0) return 1;
  }
  return 0;
}

/* A pool for the target: with the CA and server name from the environment, if given. */
static int make_pool(void) {
  grpcpool_config_t *config = grpcpool_config_new();
  if (config == NULL) return fail("grpcpool_config_new returned NULL");
  const char *ca_file = getenv("GRPCPOOL_INTEROP_CA_FILE");
  const char *server_name = getenv("GRPCPOOL_INTEROP_SERVER_NAME");
  grpcpool_result rc = GRPCPOOL_OK;
  if (ca_file != NULL && ca_file[0] != '\0') rc = grpcpool_config_set_tls_ca_file(config, ca_file);
  if (rc == GRPCPOOL_OK && server_name != NULL && server_name[0] != '\0') {
    rc = grpcpool_config_set_tls_server_name(config, server_name);
  }
  if (rc == GRPCPOOL_OK) rc = grpcpool_config_set(config, "acquire_timeout", "10s"); /* DEADLINE_MS */
  if (rc == GRPCPOOL_OK) rc = grpcpool_pool_new(config, &pool);
  grpcpool_config_free(config);
  return rc == GRPCPOOL_OK ? 0 : fail_rc("making the pool", rc);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    int known = 0;
    for (size_t c = 0; c < CASE_COUNT; c++) known |= strcmp(argv[i], CASES[c].name) == 0;
    if (!known) {
      fprintf(stderr, "unknown case %s\n", argv[i]);
      printf("0 passed, 1 failed\n");
      return 1;
    }
  }
  int passed = 0, failed = 0;
  target = getenv("GRPCPOOL_INTEROP_TARGET");
  int ready = target != NULL && target[0] != '\0' ? make_pool() : fail("GRPCPOOL_INTEROP_TARGET is not set");
  for (size_t c = 0; c < CASE_COUNT; c++) {
    if (!selected(CASES[c].name, argc, argv)) continue;
    if (ready != 0) {
      printf("  FAIL %s: %s\n", CASES[c].name, reason);
      failed++;
      continue;
    }
    reason[0] = '\0';
    double started = now_ms();
    int outcome = CASES[c].run();
    if (outcome == 0) {
      printf("  ok   %s (%.0f ms)\n", CASES[c].name, now_ms() - started);
      passed++;
    } else {
      printf("  FAIL %s: %s\n", CASES[c].name, reason[0] ? reason : "(no reason given)");
      failed++;
    }
    fflush(stdout);
  }
  grpcpool_pool_free(pool);
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
