/* Two "hosts" for network tests: see twohost.h. Namespaces and the veth
 * pair are made with the `ip` tool (fork+exec, no shell), so the harness
 * needs no netlink code of its own. */
#include "twohost.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "prng.h"

#define TWOHOST_NET "10.211"  /* NIC k: 10.211.k.1 (side 0), 10.211.k.2 */
#define TWOHOST_PREFIX 24
#define OOB_TIMEOUT_MS 30000
/* After one side has failed, the other gets this long to finish before it
 * is killed: it is usually blocked waiting for the side that is gone. */
#define FAILED_PEER_GRACE_MS 5000
#define STOP_GRACE_MS 1000

/* ---- running `ip` ---- */

/* Find the `ip` binary: PATH first, then the sbin folders that a non-login
 * PATH often lacks. Returns 0 and the path, or -1. */
static int find_ip(char *out, size_t cap) {
  const char *path = getenv("PATH");
  char dirs[4096];
  snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/sbin:/usr/bin:/bin",
           path ? path : "");
  for (char *save = NULL, *dir = strtok_r(dirs, ":", &save); dir;
       dir = strtok_r(NULL, ":", &save)) {
    if (!*dir) continue;
    snprintf(out, cap, "%s/ip", dir);
    if (access(out, X_OK) == 0) return 0;
  }
  return -1;
}

/* Enter namespace `ns` (a name under /var/run/netns) for this thread. */
static int enter_ns(const char *ns) {
  char path[128];
  snprintf(path, sizeof path, "/var/run/netns/%s", ns);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return err_sys(-1, errno, "open %s", path);
  int rc = setns(fd, CLONE_NEWNET);
  int saved = errno;
  close(fd);
  return rc ? err_sys(-1, saved, "setns %s", path) : 0;
}

/* Child side of run_ip: never returns. */
static void exec_ip(const char *ip, const char *ns, char *argv[]) {
  int devnull = open("/dev/null", O_WRONLY);
  if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
  if (ns && enter_ns(ns)) {
    fprintf(stderr, "twohost: %s\n", err_get());
    _exit(126);
  }
  execv(ip, argv);
  _exit(127);
}

/* Run `ip ARGS...` (inside namespace `ns` unless NULL) and wait for it.
 * Entering by setns() rather than `ip -n` avoids ip's remount of /, which
 * fails in a chroot. Its stdout is discarded; its stderr stays visible,
 * because it says why a step failed. */
static int run_ip(const char *ip, const char *ns, char *const args[]) {
  char *argv[16] = {(char *)"ip"};
  int n = 1;
  for (; args[n - 1] && n < 15; n++) argv[n] = args[n - 1];
  argv[n] = NULL;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return err_sys(-1, errno, "fork for %s", ip);
  if (pid == 0) exec_ip(ip, ns, argv);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return err_sys(-1, errno, "waitpid for %s", ip);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  char cmd[256];
  snprintf(cmd, sizeof cmd, "%s%s%sip", ns ? "in " : "", ns ? ns : "",
           ns ? ": " : "");
  for (int i = 1; i < n; i++)
    snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " %s", argv[i]);
  if (WIFEXITED(status))
    return err_set(-1, "`%s` failed (exit %d)", cmd, WEXITSTATUS(status));
  return err_set(-1, "`%s` failed (wait status 0x%x)", cmd, status);
}

/* ---- namespace mode ---- */

/* Namespace names unique per process and per setup, short enough for an
 * interface name (15 characters): tpx<pid>-<n><a|b>. One NIC keeps those
 * names for its veth ends too; several are nic<k>a / nic<k>b, names that
 * only exist inside the test's own namespaces. */
static void name_hosts(twohost *th, int nnics) {
  static unsigned setups;  /* test helper state: distinguishes setups */
  unsigned n = __atomic_fetch_add(&setups, 1, __ATOMIC_RELAXED) % 1000;
  th->nnics = nnics;
  for (int side = 0; side < 2; side++) {
    snprintf(th->ns[side], sizeof th->ns[side], "tpx%d-%u%c", (int)getpid(),
             n, 'a' + side);
    for (int k = 0; k < nnics; k++) {
      if (nnics == 1)
        snprintf(th->nic[k][side], sizeof th->nic[k][side], "%.15s", th->ns[side]);
      else
        snprintf(th->nic[k][side], sizeof th->nic[k][side], "nic%d%c", k,
                 'a' + side);
      snprintf(th->nic_addr[k][side], sizeof th->nic_addr[k][side],
               TWOHOST_NET ".%d.%d", k, side + 1);
    }
    snprintf(th->ifname[side], sizeof th->ifname[side], "%s", th->nic[0][side]);
    snprintf(th->addr[side], sizeof th->addr[side], "%s", th->nic_addr[0][side]);
  }
}

static int delete_ns(const char *ip, const char *ns) {
  return run_ip(ip, NULL, (char *[]){"netns", "del", (char *)ns, NULL});
}

/* Create NIC k's veth pair inside the first namespace with its peer end
 * already in the second, so no interface ever appears in ours. */
static int make_link(const char *ip, const twohost *th, int k) {
  return run_ip(ip, th->ns[0],
                (char *[]){"link", "add", (char *)th->nic[k][0], "type",
                           "veth", "peer", "name", (char *)th->nic[k][1],
                           "netns", (char *)th->ns[1], NULL});
}

static int configure_side(const twohost *th, const char *ip, int side) {
  const char *ns = th->ns[side];
  for (int k = 0; k < th->nnics; k++) {
    char cidr[80];
    snprintf(cidr, sizeof cidr, "%s/%d", th->nic_addr[k][side], TWOHOST_PREFIX);
    char *dev = (char *)th->nic[k][side];
    if (run_ip(ip, ns, (char *[]){"addr", "add", cidr, "dev", dev, NULL}) ||
        run_ip(ip, ns, (char *[]){"link", "set", dev, "up", NULL}))
      return -1;
  }
  return run_ip(ip, ns, (char *[]){"link", "set", "lo", "up", NULL});
}

static int make_links(const char *ip, const twohost *th) {
  for (int k = 0; k < th->nnics; k++)
    if (make_link(ip, th, k)) return -1;
  return configure_side(th, ip, 0) || configure_side(th, ip, 1) ? -1 : 0;
}

/* Make both namespaces and the links; on failure remove what was made. */
static int setup_netns(twohost *th, const char *ip, int nnics) {
  name_hosts(th, nnics);
  int made = 0;
  for (; made < 2; made++)
    if (run_ip(ip, NULL, (char *[]){"netns", "add", th->ns[made], NULL}))
      break;
  if (made == 2 && make_links(ip, th) == 0) {
    th->netns = 1;
    return 0;
  }
  char why[P2P_ERR_MAX];
  snprintf(why, sizeof why, "%s", err_get());
  while (made-- > 0) delete_ns(ip, th->ns[made]);
  return err_set(-1, "%s", why);
}

/* ---- loopback mode ---- */

/* Loopback works when a socket can bind 127.0.0.1. */
static int check_loopback(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return err_sys(-1, errno, "socket");
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  if (rc) err_sys(-1, errno, "bind 127.0.0.1");
  close(fd);
  return rc ? -1 : 0;
}

static int setup_loopback(twohost *th, const char *why) {
  memset(th, 0, sizeof *th);
  th->nnics = 1;
  for (int side = 0; side < 2; side++) {
    snprintf(th->ifname[side], sizeof th->ifname[side], "lo");
    snprintf(th->addr[side], sizeof th->addr[side], "127.0.0.1");
    snprintf(th->nic[0][side], sizeof th->nic[0][side], "lo");
    snprintf(th->nic_addr[0][side], sizeof th->nic_addr[0][side], "127.0.0.1");
  }
  if (check_loopback()) {
    fprintf(stderr, "twohost: no namespaces (%s) and no loopback: %s\n", why,
            err_get());
    return -1;
  }
  fprintf(stderr, "twohost: loopback mode (%s): both sides on lo 127.0.0.1\n",
          why);
  return 0;
}

/* Why namespaces cannot be used, or NULL when they can be tried. */
static const char *netns_unavailable(char *ip, size_t cap) {
  const char *force = getenv("TCPX_P2P_NO_NETNS");
  if (force && strcmp(force, "1") == 0) return "TCPX_P2P_NO_NETNS=1";
  if (geteuid() != 0) return "not root";
  if (find_ip(ip, cap)) return "no `ip` command (install iproute2)";
  return NULL;
}

int twohost_setup_nics(twohost *th, int nnics) {
  char ip[4096], why[P2P_ERR_MAX];
  memset(th, 0, sizeof *th);
  if (nnics < 1 || nnics > TWOHOST_MAX_NICS) {
    fprintf(stderr, "twohost: %d NICs asked; 1..%d possible\n", nnics,
            TWOHOST_MAX_NICS);
    return -1;
  }
  const char *no = netns_unavailable(ip, sizeof ip);
  if (no) return setup_loopback(th, no);
  if (setup_netns(th, ip, nnics) == 0) {
    for (int k = 0; k < nnics; k++)
      fprintf(stderr, "twohost: netns mode: %s (%s %s) <-> %s (%s %s)\n",
              th->ns[0], th->nic[k][0], th->nic_addr[k][0], th->ns[1],
              th->nic[k][1], th->nic_addr[k][1]);
    return 0;
  }
  snprintf(why, sizeof why, "namespace setup failed: %s", err_get());
  return setup_loopback(th, why);
}

int twohost_setup(twohost *th) { return twohost_setup_nics(th, 1); }

void twohost_teardown(twohost *th) {
  char ip[4096];
  if (!th->netns) return;
  if (find_ip(ip, sizeof ip) == 0)
    for (int side = 0; side < 2; side++)
      if (th->ns[side][0] && delete_ns(ip, th->ns[side]))
        fprintf(stderr, "twohost: teardown: %s\n", err_get());
  memset(th, 0, sizeof *th);
}

int twohost_gpu_nic(const twohost *th, int gpu) {
  int n = th->nnics > 0 ? th->nnics : 1;
  return gpu < 0 ? 0 : (gpu / 2) % n;
}

/* The side's interface filter ("=nic0a,nic1a,...") and A3 GPU map
 * ("0:nic0a;1:nic0a;2:nic1a;..."), for several NICs. */
static int export_nics(const twohost *th, int side) {
  char filter[TWOHOST_MAX_NICS * 17 + 2] = "=";
  char map[TWOHOST_GPUS * 24] = "";
  for (int k = 0; k < th->nnics; k++)
    snprintf(filter + strlen(filter), sizeof filter - strlen(filter), "%s%s",
             k ? "," : "", th->nic[k][side]);
  for (int g = 0; g < TWOHOST_GPUS; g++)
    snprintf(map + strlen(map), sizeof map - strlen(map), "%s%d:%s", g ? ";" : "",
             g, th->nic[twohost_gpu_nic(th, g)][side]);
  if (setenv("TCPX_P2P_SOCKET_IFNAME", filter, 1) ||
      setenv("TCPX_P2P_GPU_NICS", map, 1))
    return err_sys(-1, errno, "setenv of the NIC filter and GPU map");
  return 0;
}

int twohost_enter(const twohost *th, int side) {
  if (side != 0 && side != 1) return err_set(-1, "twohost_enter: side %d", side);
  if (th->netns && enter_ns(th->ns[side])) return -1;
  if (th->nnics > 1) return export_nics(th, side);
  if (setenv("TCPX_P2P_SOCKET_IFNAME", th->ifname[side], 1))
    return err_sys(-1, errno, "setenv TCPX_P2P_SOCKET_IFNAME");
  return 0;
}

int twohost_if_bytes(const char *ifname, unsigned long long *rx,
                     unsigned long long *tx) {
  FILE *f = fopen("/proc/thread-self/net/dev", "r");
  if (!f) return err_sys(-1, errno, "open /proc/thread-self/net/dev");
  char line[512];
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':'), *name = line;
    if (!colon) continue;  /* the two header lines */
    *colon = '\0';
    while (*name == ' ') name++;
    if (strcmp(name, ifname)) continue;
    unsigned long long v[9];  /* rx: bytes packets errs drop fifo frame
                                 compressed multicast; tx: bytes */
    found = sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu",
                   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7],
                   &v[8]) == 9;
    if (found) *rx = v[0], *tx = v[8];
  }
  fclose(f);
  return found ? 0 : err_set(-1, "no interface %s in /proc/thread-self/net/dev",
                             ifname);
}

/* ---- running both sides ---- */

/* Child body: enter the side, run fn, exit with its result (0..255, any
 * other non-zero result becomes 1 so it cannot read as success). */
static void run_side(const twohost *th, int side, twohost_fn fn, int fd,
                     void *arg) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  /* no orphan if the test is killed */
  int rc = twohost_enter(th, side);
  if (rc)
    fprintf(stderr, "twohost: side %d: %s\n", side, err_get());
  else
    rc = fn(th, side, fd, arg);
  if (rc && (rc & 0xff) == 0) rc = 1;
  fflush(NULL);
  _exit(rc & 0xff);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int side_failed(int status) {
  return !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

static volatile sig_atomic_t stop_requested; /* twohost_interrupt */

void twohost_interrupt(void) { stop_requested = 1; }

/* On twohost_interrupt: SIGTERM to the sides still running, once, and
 * STOP_GRACE_MS for them to go before the SIGKILL. */
static void stop_sides(const pid_t pid[2], long long *deadline, int *stopped) {
  if (!stop_requested || *stopped) return;
  *stopped = 1;
  for (int side = 0; side < 2; side++)
    if (pid[side] > 0) kill(pid[side], SIGTERM);
  if (now_ms() + STOP_GRACE_MS < *deadline) *deadline = now_ms() + STOP_GRACE_MS;
}

/* Reap both children, killing any still running at the deadline (or
 * FAILED_PEER_GRACE_MS after the other side failed, or STOP_GRACE_MS after
 * twohost_interrupt). */
static void wait_sides(pid_t pid[2], int st[2], int timeout_s) {
  long long deadline = now_ms() + (long long)timeout_s * 1000;
  int left = (pid[0] > 0) + (pid[1] > 0), stopped = 0;
  while (left > 0) {
    stop_sides(pid, &deadline, &stopped);
    for (int side = 0; side < 2; side++) {
      if (pid[side] <= 0 || waitpid(pid[side], &st[side], WNOHANG) <= 0)
        continue;
      pid[side] = 0;
      left--;
      if (side_failed(st[side]) && now_ms() + FAILED_PEER_GRACE_MS < deadline)
        deadline = now_ms() + FAILED_PEER_GRACE_MS;
    }
    if (left > 0 && now_ms() >= deadline) break;
    if (left > 0) nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
  }
  for (int side = 0; side < 2; side++) {
    if (pid[side] <= 0) continue;
    fprintf(stderr, "twohost: side %d (pid %d) still running: killed\n", side,
            (int)pid[side]);
    kill(pid[side], SIGKILL);
    while (waitpid(pid[side], &st[side], 0) < 0 && errno == EINTR) {}
  }
}

int twohost_run(const twohost *th, twohost_fn fn[2], void *arg, int timeout_s,
                int status[2]) {
  int sv[2], st[2] = {-1, -1};
  pid_t pid[2] = {0, 0};
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
    return err_sys(-1, errno, "twohost_run: socketpair");
  fflush(NULL);  /* children must not repeat buffered output */
  for (int side = 0; side < 2; side++) {
    pid[side] = fork();
    if (pid[side] < 0) {
      fprintf(stderr, "twohost_run: fork side %d: %s\n", side,
              strerror(errno));
      timeout_s = 0;  /* the other side cannot finish alone */
      break;
    }
    if (pid[side] == 0) {
      close(sv[1 - side]);
      run_side(th, side, fn[side], sv[side], arg);
    }
  }
  close(sv[0]);
  close(sv[1]);
  wait_sides(pid, st, timeout_s);
  if (status) memcpy(status, st, sizeof st);
  int rc = stop_requested ? -1 : 0;
  for (int side = 0; side < 2; side++) {
    if (!side_failed(st[side]) || stop_requested) continue; /* stop: no news */
    if (WIFEXITED(st[side]))
      fprintf(stderr, "twohost: side %d failed: exit %d\n", side,
              WEXITSTATUS(st[side]));
    else if (WIFSIGNALED(st[side]))
      fprintf(stderr, "twohost: side %d failed: killed by signal %d\n", side,
              WTERMSIG(st[side]));
    else
      fprintf(stderr, "twohost: side %d failed: not started\n", side);
    rc = -1;
  }
  return rc;
}

/* ---- out-of-band helpers ---- */

/* Wait until fd is ready for `events`, within the time left to deadline. */
static int oob_wait(int fd, short events, long long deadline, const char *op) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0)
      return err_set(-1, "%s: timed out after %d ms", op, OOB_TIMEOUT_MS);
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, (int)left);
    if (n > 0) return 0;
    if (n < 0 && errno != EINTR) return err_sys(-1, errno, "%s: poll", op);
  }
}

int oob_send(int fd, const void *buf, size_t len) {
  long long deadline = now_ms() + OOB_TIMEOUT_MS;
  const char *p = buf;
  while (len > 0) {
    if (oob_wait(fd, POLLOUT, deadline, "oob_send")) return -1;
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return err_sys(-1, errno, "oob_send: send");
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int oob_recv(int fd, void *buf, size_t len) {
  long long deadline = now_ms() + OOB_TIMEOUT_MS;
  char *p = buf;
  while (len > 0) {
    if (oob_wait(fd, POLLIN, deadline, "oob_recv")) return -1;
    ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return err_sys(-1, errno, "oob_recv: recv");
    if (n == 0)
      return err_set(-1, "oob_recv: peer closed with %zu bytes missing", len);
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* ---- data helpers ---- */

/* The library's seeded generator: tests and the CLI derive the same bytes. */
void fill_random(void *buf, size_t len, unsigned long long seed) {
  prng_fill(buf, len, (uint64_t)seed);
}

int bytes_equal(const void *a, const void *b, size_t len, const char *what) {
  if (memcmp(a, b, len) == 0) return 1;
  const unsigned char *x = a, *y = b;
  size_t off = 0;
  while (x[off] == y[off]) off++;
  fprintf(stderr, "%s: first mismatch at offset %zu of %zu: 0x%02x != 0x%02x\n",
          what ? what : "bytes_equal", off, len, x[off], y[off]);
  return 0;
}
