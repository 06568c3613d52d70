#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[P2P_ERR_MAX];

/* last_error = a + ": " + b, cut to fit (messages are bounded on purpose). */
static void set_joined(const char *a, const char *b) {
  size_t at = 0;
  const char *parts[3] = {a, ": ", b};
  for (int i = 0; i < 3; i++)
    for (const char *p = parts[i]; *p && at + 1 < sizeof last_error; p++)
      last_error[at++] = *p;
  last_error[at] = '\0';
}

int err_set(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return code;
}

int err_sys(int code, int errnum, const char *fmt, ...) {
  char msg[P2P_ERR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  set_joined(msg, strerror(errnum));
  return code;
}

int err_wrap(int code, const char *fmt, ...) {
  char prefix[P2P_ERR_MAX], old[P2P_ERR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, last_error, sizeof old);
  set_joined(prefix, old);
  return code;
}

const char *err_get(void) { return last_error; }

void err_clear(void) { last_error[0] = '\0'; }
