/* FakeTCPX's rule checker: every broken TCPX rule is a violation that the
 * tests count. A violation is printed, appended to $FAKE_TCPX_VIOLATIONS
 * (one line each; tests/strict_run.sh fails a run that left any), and the
 * call fails with an internal error, as real TCPX would fail, crash or
 * hang there. */
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_tcpx.h"

static ncclDebugLogger_t ft_logger;

void ft_set_logger(ncclDebugLogger_t logger) { ft_logger = logger; }

ncclResult_t ft_warn(ncclResult_t rc, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (ft_logger) ft_logger(NCCL_LOG_WARN, NCCL_NET, __FILE__, __LINE__, "%s", msg);
  return rc;
}

/* One write with O_APPEND: lines from several processes never interleave. */
static void append_line(const char *var, const char *line) {
  const char *path = getenv(var);
  if (!path || !*path) return;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  if (write(fd, line, strlen(line)) < 0) { /* the stderr copy remains */ }
  close(fd);
}

ncclResult_t ft_violation(const char *rule, const char *fmt, ...) {
  char why[400], line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  snprintf(line, sizeof line, "FakeTCPX: RULE VIOLATION [%s] (pid %d): %s\n",
           rule, (int)getpid(), why);
  append_line("FAKE_TCPX_VIOLATIONS", line);
  if (ft_logger) ft_logger(NCCL_LOG_WARN, NCCL_NET, __FILE__, __LINE__, "%s", line);
  else fputs(line, stderr);
  return NCCL_INTERNAL_ERROR;
}

void ft_note_init(void) {
  char line[64];
  snprintf(line, sizeof line, "init in pid %d\n", (int)getpid());
  append_line("FAKE_TCPX_USED", line);
}

/* ---- connect handles ---------------------------------------------------------- */

/* Listen-handle ids this process has started a connection to. */
static pthread_mutex_t started_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *started;
static size_t nstarted, capstarted;

static int was_started(uint64_t id) {
  for (size_t i = 0; i < nstarted; i++)
    if (started[i] == id) return 1;
  return 0;
}

/* The plugin may be unloaded (dlclose) while the process goes on. */
__attribute__((destructor)) static void forget_started(void) {
  free(started);
  started = NULL;
  nstarted = capstarted = 0;
}

ncclResult_t ft_connect_start(uint64_t id) {
  pthread_mutex_lock(&started_lock);
  int again = was_started(id);
  if (!again && nstarted == capstarted) {
    size_t cap = capstarted ? 2 * capstarted : 64;
    uint64_t *grown = realloc(started, cap * sizeof *grown);
    if (grown) started = grown, capstarted = cap;
  }
  if (!again && nstarted < capstarted) started[nstarted++] = id;
  pthread_mutex_unlock(&started_lock);
  if (again)
    return ft_violation("connect-handle", "connect given a fresh copy of listen "
                        "handle %llx, which already started a connection (retry "
                        "a pending connect with the same buffer; listen once per "
                        "comm)", (unsigned long long)id);
  return NCCL_OK;
}
