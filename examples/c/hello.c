/*
 * grpcpool from C: pooled unary calls to a gRPC server.
 *
 *   make install PREFIX=$HOME/.local
 *   export PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig
 *   cc examples/c/hello.c $(pkg-config --cflags --libs grpcpool) -o hello
 *   ./hello http://127.0.0.1:50051 /grpcpool.test.Echo/Unary
 */
#include <stdio.h>
#include <string.h>

#include <grpcpool.h>

static int fail(const char *what, grpcpool_result rc) {
  fprintf(stderr, "%s: %s: %s\n", what, grpcpool_result_name(rc), grpcpool_last_error());
  return 1;
}

int main(int argc, char **argv) {
  const char *target = argc > 1 ? argv[1] : "http://127.0.0.1:50051";
  const char *method = argc > 2 ? argv[2] : "/grpcpool.test.Echo/Unary";
  printf("grpcpool %s (header %d.%d.%d)\n", grpcpool_version(), GRPCPOOL_VERSION_MAJOR,
         GRPCPOOL_VERSION_MINOR, GRPCPOOL_VERSION_PATCH);

  grpcpool_config_t *config = grpcpool_config_new();
  grpcpool_config_set(config, "max_connections_per_target", "2");
  grpcpool_pool_t *pool = NULL;
  grpcpool_result rc = grpcpool_pool_new(config, &pool);
  grpcpool_config_free(config);
  if (rc != GRPCPOOL_OK) return fail("grpcpool_pool_new", rc);

  /* A lease: one slot on a pooled connection, for several calls. */
  grpcpool_lease_t lease;
  rc = GRPCPOOL_ACQUIRE(pool, target, 2000, &lease);
  if (rc != GRPCPOOL_OK) return fail("acquire", rc);
  const char *ascii = "x-echo-greeting";
  grpcpool_metadata_entry_t metadata[] = {{ascii, (const uint8_t *)"hello", 5}};
  for (int i = 0; i < 3; i++) {
    char request[32];
    int len = snprintf(request, sizeof request, "request %d", i);
    grpcpool_response_t *response = NULL;
    rc = grpcpool_lease_unary(lease, method, (const uint8_t *)request, (size_t)len, metadata, 1, 1000, &response);
    if (rc != GRPCPOOL_OK) return fail("grpcpool_lease_unary", rc);
    grpcpool_bytes_t body = grpcpool_response_body(response);
    printf("status %d, %zu bytes: %.*s\n", grpcpool_response_code(response), body.len, (int)body.len,
           (const char *)body.data);
    grpcpool_response_free(response);
  }
  grpcpool_release(lease);

  /* A one-shot call: acquire, call and release in one. */
  grpcpool_response_t *response = NULL;
  rc = grpcpool_unary(pool, target, method, (const uint8_t *)"one-shot", 8, NULL, 0, 1000, &response);
  if (rc != GRPCPOOL_OK) return fail("grpcpool_unary", rc);
  printf("one-shot status %d %s\n", grpcpool_response_code(response), grpcpool_response_message(response));
  grpcpool_response_free(response);

  char *stats = NULL;
  if (grpcpool_pool_stats_json(pool, &stats) == GRPCPOOL_OK) {
    printf("stats: %s\n", stats);
    grpcpool_string_free(stats);
  }
  grpcpool_pool_free(pool);
  return 0;
}
