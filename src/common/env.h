/* Integer settings from the environment (TCPX_P2P_* knobs). */
#ifndef TCPX_P2P_ENV_H
#define TCPX_P2P_ENV_H

#include <stdlib.h>

/* $name as an int, or dflt when unset or empty. */
static inline int env_int(const char *name, int dflt) {
  const char *v = getenv(name);
  return v && *v ? atoi(v) : dflt;
}

#endif
