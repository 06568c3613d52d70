/* Minimal test runner: named cases, CHECK macros that report file:line and
 * the library's last error, and a closing "N passed, N failed" line. */
#ifndef TCPX_P2P_CHECK_H
#define TCPX_P2P_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

typedef int (*check_case_fn)(void);
typedef struct { const char *name; check_case_fn fn; } check_case;

/* A case returns 0 on success; CHECK* return 1 from the case on failure. */
#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "  FAIL %s:%d: %s (last error: %s)\n", __FILE__,    \
              __LINE__, #cond, err_get());                                 \
      return 1;                                                            \
    }                                                                      \
  } while (0)

#define CHECK_EQ(a, b)                                                     \
  do {                                                                     \
    long long va_ = (long long)(a), vb_ = (long long)(b);                  \
    if (va_ != vb_) {                                                      \
      fprintf(stderr, "  FAIL %s:%d: %s == %s (%lld != %lld; last error: %s)\n", \
              __FILE__, __LINE__, #a, #b, va_, vb_, err_get());            \
      return 1;                                                            \
    }                                                                      \
  } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                    \
  do {                                                                     \
    const char *h_ = (hay), *n_ = (needle);                                \
    if (!h_ || !strstr(h_, n_)) {                                          \
      fprintf(stderr, "  FAIL %s:%d: \"%s\" does not contain \"%s\"\n",   \
              __FILE__, __LINE__, h_ ? h_ : "(null)", n_);                 \
      return 1;                                                            \
    }                                                                      \
  } while (0)

/* Run the cases whose name contains argv[1] (all when absent); print one
 * line per case and the closing count. Returns the process exit code. */
static inline int check_run(const check_case *cases, int n, int argc,
                            char **argv) {
  int passed = 0, failed = 0;
  const char *only = argc > 1 ? argv[1] : NULL;
  for (int i = 0; i < n; i++) {
    if (only && !strstr(cases[i].name, only)) continue;
    err_clear();
    int rc = cases[i].fn();
    printf("%s %s\n", rc == 0 ? "ok  " : "FAIL", cases[i].name);
    fflush(stdout);
    rc == 0 ? passed++ : failed++;
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}

#define CHECK_CASE(fn) { #fn, fn }
#define CHECK_MAIN(cases)                                                  \
  int main(int argc, char **argv) {                                        \
    return check_run(cases, (int)(sizeof(cases) / sizeof(cases[0])), argc, argv); \
  }

#endif
