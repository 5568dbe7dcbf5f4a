/* Smallest end-to-end check: a pooled echo call through the C ABI. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "grpcpool.h"

int main(void) {
  const char *target = getenv("GRPCPOOL_TEST_TARGET");
  grpcpool_pool_t *pool = NULL;
  if (grpcpool_pool_new(NULL, &pool) != GRPCPOOL_OK) { fprintf(stderr, "pool: %s\n", grpcpool_last_error()); return 1; }
  grpcpool_response_t *response = NULL;
  const char *body = "hello";
  grpcpool_result rc = grpcpool_unary(pool, target, "/grpcpool.test.Echo/Unary", (const uint8_t *)body, 5, NULL, 0, 10000, &response);
  if (rc != GRPCPOOL_OK) { fprintf(stderr, "unary: %s\n", grpcpool_last_error()); return 1; }
  grpcpool_bytes_t echoed = grpcpool_response_body(response);
  int ok = grpcpool_response_code(response) == 0 && echoed.len == 5 && memcmp(echoed.data, body, 5) == 0;
  if (!ok) fprintf(stderr, "code %d: %s\n", grpcpool_response_code(response), grpcpool_response_message(response));
  grpcpool_response_free(response);
  grpcpool_pool_free(pool);
  printf("%s\n", ok ? "ok" : "mismatch");
  return ok ? 0 : 1;
}
