/* Helpers shared by the loader's two test programs: test_loader.c (the
 * loader itself) and test_loader_tcpx.c (what GPUDirect-TCPX needs of it).
 * Both are built with LOADER_BUILD_DIR, the build tree that holds the
 * exported plugin and test-plugins/ (tests/loader.cmake). */
#ifndef TCPX_P2P_TEST_LOADER_COMMON_H
#define TCPX_P2P_TEST_LOADER_COMMON_H

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define FAKE(name) LOADER_BUILD_DIR "/test-plugins/lib" name ".so"
#define BUILTIN_HINT_TEXT "set TCPX_P2P_NET_PLUGIN=builtin"
#define SKIPPED 77

/* Print why a case cannot run here; returns SKIPPED. */
static inline int skip(const char *fmt, ...) P2P_PRINTF(1, 2);
static inline int skip(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("  skip: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  return SKIPPED;
}

/* Run fn in a forked child (fresh loader state, private mounts allowed).
 * The child's exit code is the result; SKIPPED counts as passed. */
static inline int in_child(int (*fn)(void)) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    int rc = fn();
    fflush(stdout);
    _exit(rc);
  }
  int status;
  if (waitpid(pid, &status, 0) != pid) return 1;
  if (!WIFEXITED(status)) {
    fprintf(stderr, "  FAIL: child ended by signal %d\n", WTERMSIG(status));
    return 1;
  }
  if (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != SKIPPED)
    fprintf(stderr, "  FAIL: child exited with %d\n", WEXITSTATUS(status));
  return WEXITSTATUS(status) == SKIPPED ? 0 : WEXITSTATUS(status);
}

/* Start every case from the same selection environment. */
static inline void reset_selection_env(void) {
  unsetenv("TCPX_P2P_NET_PLUGIN");
  unsetenv("TCPX_P2P_NET_PLUGIN_VERSION");
  unsetenv("NCCL_NET_PLUGIN");
  setenv("TCPX_P2P_SOCKET_IFNAME", "lo", 1);
}

static inline int write_text_file(const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  for (int i = 0; i < 8; i++)
    fputs("this is a text file, not a shared object\n", f);
  return fclose(f);
}

/* A private mount namespace for this (child) process: SKIPPED where it
 * cannot be made. */
static inline int private_mounts(void) {
  if (unshare(CLONE_NEWNS) != 0)
    return skip("unshare(CLONE_NEWNS): %s", strerror(errno));
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
    return skip("making / private: %s", strerror(errno));
  return 0;
}

/* Each case runs from, and leaves behind, the same selection environment:
 * LOADER_CASE(fn) defines run_fn, LOADER_ENTRY(fn) lists it. */
#define LOADER_CASE(fn)                                                    \
  static int run_##fn(void) {                                              \
    reset_selection_env();                                                 \
    int rc = fn();                                                         \
    reset_selection_env();                                                 \
    return rc;                                                             \
  }
#define LOADER_ENTRY(fn) {#fn, run_##fn}

#endif
