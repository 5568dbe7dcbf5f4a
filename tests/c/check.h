/*
 * A tiny check harness shared by the C and C++ tests of the C ABI.
 *
 *   CHECK(cond, "format", args...)  counts a check; on failure prints file:line, the condition
 *                                   and the message, and counts a failure (never aborts).
 *   CHECK_RC(expr, expected)        CHECK that a grpcpool call returns `expected`; prints the
 *                                   result names and grpcpool_last_error() when it does not.
 *   check_section("name")           starts a group of checks; check_section_end() prints
 *                                   "[ok] name (N checks)" or "[FAIL] ...", so each test program
 *                                   lists what it checked.
 *   return check_summary("test_x"); prints the totals; returns 1 if anything failed.
 *
 * The counters are atomic, so CHECK may be used from callbacks on library threads.
 */
#ifndef GRPCPOOL_TEST_CHECK_H
#define GRPCPOOL_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
#include <atomic>
typedef std::atomic<int> check_counter_t;
#else
#include <stdatomic.h>
typedef atomic_int check_counter_t;
#endif

static check_counter_t check_total;
static check_counter_t check_failed;
static int check_section_total;
static int check_section_failed;
static const char *check_section_name;

#define CHECK(cond, ...)                                                          \
  do {                                                                            \
    check_total++;                                                                \
    if (!(cond)) {                                                                \
      check_failed++;                                                             \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);    \
      fprintf(stderr, __VA_ARGS__);                                               \
      fputc('\n', stderr);                                                        \
      fflush(stderr);                                                             \
    }                                                                             \
  } while (0)

#ifdef GRPCPOOL_H
/* The last error is copied before anything else touches the library on this thread. */
#define CHECK_RC(expr, expected)                                                  \
  do {                                                                            \
    grpcpool_result check_rc_ = (expr);                                           \
    char check_error_[512] = "";                                                  \
    if (check_rc_ != GRPCPOOL_OK)                                                 \
      snprintf(check_error_, sizeof check_error_, "%s", grpcpool_last_error());   \
    grpcpool_result check_expected_ = (expected);                                 \
    CHECK(check_rc_ == check_expected_, "%s returned %s, expected %s (last error: %s)", \
          #expr, grpcpool_result_name(check_rc_), grpcpool_result_name(check_expected_), \
          check_error_);                                                          \
  } while (0)
#endif

/* Ends the current section, printing how it went. */
static inline void check_section_end(void) {
  if (check_section_name == NULL) return;
  int total = check_total - check_section_total;
  int failed = check_failed - check_section_failed;
  if (failed == 0) {
    printf("[ok]   %s (%d checks)\n", check_section_name, total);
  } else {
    printf("[FAIL] %s (%d of %d checks failed)\n", check_section_name, failed, total);
  }
  fflush(stdout);
  check_section_name = NULL;
}

/* Starts a named group of checks (ending the previous one). */
static inline void check_section(const char *name) {
  check_section_end();
  check_section_name = name;
  check_section_total = check_total;
  check_section_failed = check_failed;
}

/* Prints the totals; returns the process exit code (1 if any check failed). */
static inline int check_summary(const char *program) {
  check_section_end();
  int total = check_total;
  int failed = check_failed;
  printf("%s: %d checks, %d failed\n", program, total, failed);
  fflush(stdout);
  return failed == 0 ? 0 : 1;
}

/* An environment flag: set and not "0" (GRPCPOOL_TEST_LIGHT shrinks loops under valgrind). */
static inline int check_env_flag(const char *name) {
  const char *value = getenv(name);
  return value != NULL && value[0] != '\0' && strcmp(value, "0") != 0;
}

/* A required environment variable; exits with a message when it is missing. */
static inline const char *check_env(const char *name) {
  const char *value = getenv(name);
  if (value == NULL || value[0] == '\0') {
    fprintf(stderr, "%s is not set; run the tests through tests/c/run.sh\n", name);
    exit(2);
  }
  return value;
}

#endif /* GRPCPOOL_TEST_CHECK_H */
