/* Integer settings from the environment (TCPX_P2P_* knobs).
 *
 * A value that is set but not a whole number, or outside what the setting
 * accepts, is never read as something else (atoi's "abc" -> 0): the
 * default is used, a warning is logged, and the variable is remembered as
 * bad until a later read finds it valid. The option checks of the
 * transport and the endpoint call env_bad() and fail with its message,
 * which names the variable, its value and what it accepts. */
#ifndef TCPX_P2P_ENV_H
#define TCPX_P2P_ENV_H

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>

/* $name as an int in [min, max], or dflt when unset or empty (also when
 * bad, see above). */
int env_int_in(const char *name, int dflt, int min, int max);

/* $name as any int, or dflt when unset or empty. */
static inline int env_int(const char *name, int dflt) {
  return env_int_in(name, dflt, INT_MIN, INT_MAX);
}

/* $name into *out (dflt when unset or empty). Returns 0, or -1 with the
 * message in err_get() ("TCPX_P2P_TCP_STREAMS='abc': not a whole number;
 * it accepts 1..64"). Remembers nothing: for a caller that reports the
 * error itself (the CLI). */
int env_int_get(const char *name, int dflt, int min, int max, int *out);

/* 1 when a variable read by env_int_in was bad at its last read, with the
 * message of the first such variable in buf; else 0. */
int env_bad(char *buf, size_t len);

/* $name as a byte count or other size, or dflt when unset, empty or not a
 * number. */
static inline size_t env_size(const char *name, size_t dflt) {
  const char *v = getenv(name);
  char *end;
  if (!v || !*v) return dflt;
  unsigned long long n = strtoull(v, &end, 10);
  return *end || v[0] == '-' ? dflt : (size_t)n;
}

#endif
