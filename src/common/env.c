/* Integer settings from the environment: see env.h. */
#include "env.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"

#define ENV_MAX_BAD 16
#define ENV_NAME_MAX 64
#define ENV_MSG_MAX 256

/* Variables bad at their last read (process-wide: options are read on one
 * thread and checked on another). */
static struct {
  char name[ENV_NAME_MAX];
  char msg[ENV_MSG_MAX];
} bad[ENV_MAX_BAD];
static int nbad;
static pthread_mutex_t bad_lock = PTHREAD_MUTEX_INITIALIZER;

/* What [min, max] means in words. */
static void accepts(int min, int max, char *buf, size_t len) {
  if (min == INT_MIN && max == INT_MAX) snprintf(buf, len, "a whole number");
  else if (max == INT_MAX) snprintf(buf, len, "a whole number >= %d", min);
  else snprintf(buf, len, "%d..%d", min, max);
}

int env_int_get(const char *name, int dflt, int min, int max, int *out) {
  const char *v = getenv(name);
  *out = dflt;
  if (!v || !*v) return 0;
  char *end, what[64];
  errno = 0;
  long n = strtol(v, &end, 10);
  int digits = (*v >= '0' && *v <= '9') ||
               (*v == '-' && v[1] >= '0' && v[1] <= '9');
  accepts(min, max, what, sizeof what);
  if (!digits || *end || errno == ERANGE || n < INT_MIN || n > INT_MAX)
    return err_set(-1, "%s='%.40s': not a whole number; it accepts %s", name,
                   v, what);
  if (n < min || n > max)
    return err_set(-1, "%s='%.40s': out of range; it accepts %s", name, v,
                   what);
  *out = (int)n;
  return 0;
}

/* Remember `name` as bad with `msg`, or forget it (msg NULL). */
static void note(const char *name, const char *msg) {
  pthread_mutex_lock(&bad_lock);
  int i = 0;
  while (i < nbad && strcmp(bad[i].name, name) != 0) i++;
  if (!msg && i < nbad) {
    bad[i] = bad[--nbad];
  } else if (msg && (i < nbad || nbad < ENV_MAX_BAD)) {
    if (i == nbad) nbad++;
    snprintf(bad[i].name, sizeof bad[i].name, "%s", name);
    snprintf(bad[i].msg, sizeof bad[i].msg, "%s", msg);
  }
  pthread_mutex_unlock(&bad_lock);
}

int env_int_in(const char *name, int dflt, int min, int max) {
  char saved[P2P_ERR_MAX];
  int value;
  snprintf(saved, sizeof saved, "%s", err_get()); /* a read is no failure */
  if (env_int_get(name, dflt, min, max, &value) == 0) {
    note(name, NULL);
  } else {
    log_msg(LOG_WARN, "%s", err_get());
    note(name, err_get());
  }
  err_set(0, "%s", saved);
  return value;
}

int env_bad(char *buf, size_t len) {
  pthread_mutex_lock(&bad_lock);
  int any = nbad > 0;
  if (any) snprintf(buf, len, "%s", bad[0].msg);
  pthread_mutex_unlock(&bad_lock);
  return any;
}
