#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

int log_level(void) {
  static atomic_int level = -1; /* read once; racing readers agree */
  int l = atomic_load(&level);
  if (l < 0) {
    const char *v = getenv("TCPX_P2P_LOG_LEVEL");
    if (!v || !*v) v = getenv("UCCL_P2P_LOG_LEVEL");
    l = v && *v >= '0' && *v <= '9' ? atoi(v) : LOG_WARN;
    atomic_store(&level, l);
  }
  return l;
}

void log_msg(int level, const char *fmt, ...) {
  if (level > log_level()) return;
  static const char *names[] = {"", "error", "warning", "info", "debug"};
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "tcpx-p2p %s: %s\n", names[level >= 1 && level <= 4 ? level : 0], line);
}
