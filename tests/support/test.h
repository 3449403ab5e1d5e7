/* test.h — a tiny test harness: typed asserts and a runner.
 *
 * A test file defines cases with TEST(name) { ... } and ends with TEST_MAIN().
 * The runner runs every case (or those named on the command line), each with
 * a fresh failure flag, and prints "N passed, M failed" as its last line;
 * the exit status is non-zero when anything failed. An ASSERT failure ends
 * the current case (longjmp) and reports file:line and both values. */
#ifndef SQLTDE_TEST_H
#define SQLTDE_TEST_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(void);
typedef struct test_case {
  const char *name;
  test_fn fn;
} test_case;

#define TEST_MAX 256
extern test_case g_tests[TEST_MAX];
extern int g_ntests;
extern jmp_buf g_test_jmp;

#define TEST(name)                                                                   \
  static void test_##name(void);                                                     \
  __attribute__((constructor)) static void register_##name(void) {                  \
    if(g_ntests < TEST_MAX)                                                           \
      g_tests[g_ntests++] = (test_case){#name, test_##name};                          \
  }                                                                                  \
  static void test_##name(void)

#define TEST_FAIL_(...)                                                              \
  do {                                                                               \
    fprintf(stderr, "  FAIL %s:%d: ", __FILE__, __LINE__);                           \
    fprintf(stderr, __VA_ARGS__);                                                    \
    fprintf(stderr, "\n");                                                           \
    longjmp(g_test_jmp, 1);                                                          \
  } while(0)

#define ASSERT(cond)                                                                 \
  do {                                                                               \
    if(!(cond))                                                                      \
      TEST_FAIL_("assertion failed: %s", #cond);                                     \
  } while(0)

#define ASSERT_INT_(a, op, b)                                                        \
  do {                                                                               \
    int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                    \
    if(!(a_ op b_))                                                                  \
      TEST_FAIL_("%s %s %s (%" PRId64 " vs %" PRId64 ")", #a, #op, #b, a_, b_);      \
  } while(0)

#define ASSERT_EQ(a, b) ASSERT_INT_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_INT_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_INT_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_INT_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_INT_(a, >=, b)
#define ASSERT_OK(a) ASSERT_EQ((a), 0)

#define ASSERT_STR_EQ(a, b)                                                          \
  do {                                                                               \
    const char *a_ = (a), *b_ = (b);                                                 \
    if(!a_ || !b_ || strcmp(a_, b_))                                                 \
      TEST_FAIL_("%s == %s (\"%s\" vs \"%s\")", #a, #b, a_ ? a_ : "(null)",          \
                 b_ ? b_ : "(null)");                                                \
  } while(0)

#define ASSERT_STR_CONTAINS(hay, needle)                                             \
  do {                                                                               \
    const char *h_ = (hay), *n_ = (needle);                                          \
    if(!h_ || !strstr(h_, n_))                                                       \
      TEST_FAIL_("%s contains \"%s\" (got \"%s\")", #hay, n_, h_ ? h_ : "(null)");   \
  } while(0)

#define ASSERT_NULL(p) ASSERT((p) == NULL)
#define ASSERT_NOT_NULL(p) ASSERT((p) != NULL)

#define TEST_MAIN()                                                                  \
  test_case g_tests[TEST_MAX];                                                       \
  int g_ntests;                                                                      \
  jmp_buf g_test_jmp;                                                                \
  static int run_case_(test_fn fn) {                                                 \
    if(setjmp(g_test_jmp) == 0) {                                                    \
      fn();                                                                          \
      return 1;                                                                      \
    }                                                                                \
    return 0;                                                                        \
  }                                                                                  \
  int main(int argc, char **argv) {                                                  \
    int passed = 0, failed = 0;                                                      \
    setvbuf(stdout, NULL, _IOLBF, 0);                                                \
    for(int i = 0; i < g_ntests; i++) {                                              \
      int selected = argc < 2;                                                       \
      for(int j = 1; j < argc; j++)                                                  \
        if(!strcmp(argv[j], g_tests[i].name))                                        \
          selected = 1;                                                              \
      if(!selected)                                                                  \
        continue;                                                                    \
      printf("RUN  %s\n", g_tests[i].name);                                          \
      if(run_case_(g_tests[i].fn)) {                                                 \
        printf("PASS %s\n", g_tests[i].name);                                        \
        passed++;                                                                    \
      } else {                                                                       \
        printf("FAIL %s\n", g_tests[i].name);                                        \
        failed++;                                                                    \
      }                                                                              \
    }                                                                                \
    printf("%d passed, %d failed\n", passed, failed);                                \
    return failed ? 1 : (passed ? 0 : 2);                                            \
  }

#endif
