/* The pool's runtime cannot start: this process caps its user's threads (RLIMIT_NPROC) at
 * what it has plus one, then drops root for an unprivileged user so the cap holds. The first
 * call must come back with an error instead of hanging. Prints one JSON line
 * {"scenario": "runtime_refused", "class", "via", "detail"}; needs root (run.sh runs it so). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "grpcpool.h"

/* Threads of this process now, from /proc/self/status. */
static long threads_now(void) {
  FILE *status = fopen("/proc/self/status", "r");
  char line[256];
  long threads = -1;
  while (status != NULL && fgets(line, sizeof line, status) != NULL) {
    if (strncmp(line, "Threads:", 8) == 0) threads = strtol(line + 8, NULL, 10);
  }
  if (status != NULL) fclose(status);
  return threads;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s <target>\n", argv[0]);
    return 2;
  }
  /* Room for one more thread: the runtime's two workers cannot both start. */
  struct rlimit cap = {(rlim_t)threads_now() + 1, (rlim_t)threads_now() + 1};
  if (setrlimit(RLIMIT_NPROC, &cap) != 0 || setgid(65534) != 0 || setuid(65534) != 0) {
    perror("capping threads and dropping root");
    return 1;
  }
  grpcpool_config_t *config = grpcpool_config_new();
  grpcpool_config_set(config, "worker_threads", "2");
  grpcpool_pool_t *pool = NULL;
  grpcpool_result rc = grpcpool_pool_new(config, &pool);
  grpcpool_config_free(config);
  if (rc != GRPCPOOL_OK) {
    fprintf(stderr, "pool_new: %s\n", grpcpool_last_error());
    return 1;
  }
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  grpcpool_response_t *response = NULL;
  rc = grpcpool_unary(pool, argv[1], "/grpcpool.test.Echo/Unary", (const uint8_t *)"x", 1, NULL, 0, 2000, &response);
  clock_gettime(CLOCK_MONOTONIC, &end);
  double ms = (double)(end.tv_sec - start.tv_sec) * 1e3 + (double)(end.tv_nsec - start.tv_nsec) / 1e6;
  const char *class_name = rc == GRPCPOOL_RUNTIME_ERROR ? "runtime_error" : rc == GRPCPOOL_OK ? "ok" : "other";
  printf("{\"scenario\": \"runtime_refused\", \"class\": \"%s\", \"via\": \"error\", \"detail\": \"%s after %.1f ms: %s\"}\n",
         class_name, grpcpool_result_name(rc), ms, rc == GRPCPOOL_OK ? "" : grpcpool_last_error());
  grpcpool_response_free(response);
  grpcpool_pool_free(pool);
  return 0;
}
