/* Same-host connections (connect_local) against other users, inside a
 * test namespace, with a private TMPDIR:
 * - the socket lives in a 0700 directory of ours; connect_local works;
 * - (as root) a process of another user (a forked child that setuid()s to
 *   nobody) cannot reach it, and when the directory is opened up on
 *   purpose, its connection is still refused by the credential check and
 *   never sees a HELLO;
 * - (as root) a socket another user put at the GPU's path is refused by
 *   the connecting side (P2P_EAUTH), not talked to;
 * - endpoints of the same GPU index created at the same moment both get
 *   their socket (a rename, not unlink-then-bind: no "Address already in
 *   use"). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "ep_harness.h"
#include "twohost.h"

static twohost hosts;
#define NOBODY 65534

static char dir[256];      /* TMPDIR/tcpx-p2p-<uid> */

static int make_tmpdir(void) {
  static char tmp[] = "/tmp/tpxlocal-XXXXXX";
  CHECK(mkdtemp(tmp) != NULL);
  CHECK_EQ(chmod(tmp, 0755), 0); /* others may enter TMPDIR, not ours */
  setenv("TMPDIR", tmp, 1);
  snprintf(dir, sizeof dir, "%s/tcpx-p2p-%u", tmp, (unsigned)geteuid());
  return 0;
}

/* Remove what the endpoints left (nothing, if they cleaned up) and more. */
static void remove_tmpdir(void) {
  char path[300];
  snprintf(path, sizeof path, "%s/gpu9.sock", dir);
  unlink(path);
  rmdir(dir);
  rmdir(getenv("TMPDIR"));
}

static int local_endpoint(int gpu, p2p_endpoint **ep) {
  p2p_options o;
  eph_options(&o);
  o.gpu_index = gpu;
  o.op_timeout_ms = 500;
  CHECK_EQ(eph_create(&o, ep), P2P_OK);
  return 0;
}

/* In a child as `nobody`: run fn; exit status 0 when it returned 0. */
static int as_nobody(int (*fn)(const char *), const char *path) {
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    if (setgid(NOBODY) != 0 || setuid(NOBODY) != 0) _exit(3);
    _exit(fn(path) ? 1 : 0);
  }
  int st;
  CHECK_EQ(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 2;
}

static int unix_connect(const char *path) {
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sun.sun_path) return -1;
  memcpy(sun.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* Child: the socket must be out of reach (EACCES). */
static int cannot_reach(const char *path) {
  int fd = unix_connect(path);
  if (fd >= 0) close(fd);
  return fd < 0 && errno == EACCES ? 0 : 1;
}

/* Child: connect, say HELLO, and be hung up on without an answer. */
static int hung_up_on(const char *path) {
  int fd = unix_connect(path);
  if (fd < 0) return 1;
  ctrl_msg m = {.type = CTRL_HELLO,
                .u.hello = {.comms_per_lane = 1, .chunk_size = 1 << 20}};
  uint8_t buf[256], in[64];
  size_t n = ctrl_encode(&m, NULL, buf, sizeof buf);
  if (send(fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n) return 0; /* already closed */
  ssize_t got = recv(fd, in, sizeof in, 0);
  close(fd);
  return got <= 0 ? 0 : 1; /* any byte back: it was talked to */
}

/* Child: listen at the GPU's path as another user, until killed. */
static int squat(const char *path) {
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sun.sun_path) return -1;
  memcpy(sun.sun_path, path, strlen(path) + 1);
  /* Listening before the path appears (rename), so a connect that sees
   * the path is never refused. */
  char tmp[sizeof sun.sun_path + 8];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (strlen(tmp) >= sizeof sun.sun_path) return 1;
  memcpy(sun.sun_path, tmp, strlen(tmp) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink(path);
  unlink(tmp);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
      listen(fd, 4) != 0 || chmod(tmp, 0777) != 0 || rename(tmp, path) != 0)
    return 1;
  pause();
  return 0;
}

static int local_body(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)fd, (void)arg;
  if (side == 1) return 0;
  CHECK_EQ(make_tmpdir(), 0);
  p2p_endpoint *a, *b;
  uint64_t ca, cb;
  int gpu;
  CHECK_EQ(local_endpoint(3, &a), 0);
  CHECK_EQ(local_endpoint(4, &b), 0);
  struct stat st;
  CHECK_EQ(lstat(dir, &st), 0);
  CHECK(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700 && st.st_uid == geteuid());
  CHECK_EQ(p2p_connect_local(b, 3, &cb), P2P_OK);
  CHECK_EQ(p2p_accept_local(a, &gpu, &ca), P2P_OK);
  CHECK_EQ(gpu, 4);
  if (geteuid() != 0) {
    printf("  not root: the other-user cases are skipped\n");
  } else {
    char path[300];
    snprintf(path, sizeof path, "%s/gpu3.sock", dir);
    CHECK_EQ(as_nobody(cannot_reach, path), 0);
    CHECK_EQ(chmod(dir, 0777), 0); /* opened up on purpose: creds still hold */
    CHECK_EQ(chmod(path, 0777), 0);
    CHECK_EQ(as_nobody(hung_up_on, path), 0);
    CHECK_EQ(p2p_accept_local(a, &gpu, &ca), P2P_ETIMEDOUT);
    char fake[300];
    snprintf(fake, sizeof fake, "%s/gpu9.sock", dir);
    pid_t squatter = fork();
    CHECK(squatter >= 0);
    if (squatter == 0) {
      if (setgid(NOBODY) != 0 || setuid(NOBODY) != 0) _exit(3);
      _exit(squat(fake));
    }
    for (int i = 0; i < 500 && access(fake, F_OK) != 0; i++) usleep(10000);
    int rc = p2p_connect_local(b, 9, &cb);
    kill(squatter, SIGKILL); /* before any check: it holds the test's output */
    waitpid(squatter, NULL, 0);
    CHECK_EQ(rc, P2P_EAUTH);
    CHECK_STR_CONTAINS(p2p_last_error(), "belongs to user");
    CHECK_EQ(chmod(dir, 0700), 0);
  }
  p2p_endpoint_destroy(b);
  p2p_endpoint_destroy(a);
  remove_tmpdir();
  return eph_leak_check();
}

static int test_local_socket_is_private_and_checked(void) {
  CHECK_EQ(eph_run(&hosts, local_body, local_body, NULL, 120), 0);
  return 0;
}

/* ---- endpoints of one GPU index starting together ---- */

static void *make_one(void *arg) {
  p2p_endpoint **ep = arg;
  p2p_options o;
  eph_options(&o);
  o.gpu_index = 6;
  if (p2p_endpoint_create(&o, ep) != P2P_OK) *ep = NULL;
  return NULL;
}

static int race_body(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)fd, (void)arg;
  if (side == 1) return 0;
  CHECK_EQ(make_tmpdir(), 0);
  for (int round = 0; round < 30; round++) {
    p2p_endpoint *ep[2] = {0};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) CHECK_EQ(pthread_create(&t[i], NULL, make_one, &ep[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
      CHECK(ep[i] != NULL);
      CHECK(ep[i]->local_fd >= 0); /* its same-host socket came up */
      p2p_endpoint_destroy(ep[i]);
    }
  }
  remove_tmpdir();
  return eph_leak_check();
}

static int test_local_sockets_of_one_gpu_started_together(void) {
  CHECK_EQ(eph_run(&hosts, race_body, race_body, NULL, 120), 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_local_socket_is_private_and_checked),
    CHECK_CASE(test_local_sockets_of_one_gpu_started_together),
};

int main(int argc, char **argv) {
  if (twohost_setup(&hosts)) return 1;
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  twohost_teardown(&hosts);
  return rc;
}
