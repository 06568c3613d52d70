/* Integer settings from the environment (TCPX_P2P_* knobs). */
#ifndef TCPX_P2P_ENV_H
#define TCPX_P2P_ENV_H

#include <stdlib.h>

/* $name as an int, or dflt when unset or empty. */
static inline int env_int(const char *name, int dflt) {
  const char *v = getenv(name);
  return v && *v ? atoi(v) : dflt;
}

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
