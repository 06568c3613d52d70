/* Proves the two-host harness: each side runs in its own namespace with
 * its own address, TCP and out-of-band exchange work between the sides,
 * failures and hangs are reported, and teardown leaves nothing behind. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "twohost.h"

static twohost hosts;  /* made once in main for every case */

/* What each side reports back to the test process (shared mapping). */
typedef struct side_report {
  unsigned long long netns_ino;
  int has_own_addr;      /* getifaddrs shows addr[side] on ifname[side] */
  int has_peer_addr;     /* ... and the other side's address anywhere */
  char ifname_env[64];   /* TCPX_P2P_SOCKET_IFNAME as the side sees it */
  char peer_seen[64];    /* address of the peer of an accepted socket */
} side_report;

static side_report *new_reports(void) {
  void *p = mmap(NULL, 2 * sizeof(side_report), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static void free_reports(side_report *r) { munmap(r, 2 * sizeof *r); }

static unsigned long long netns_inode(void) {
  struct stat st;
  return stat("/proc/self/ns/net", &st) == 0 ? (unsigned long long)st.st_ino
                                             : 0;
}

/* Does an IPv4 address `addr` exist here (on `ifname`, or on any interface
 * when ifname is NULL)? */
static int has_address(const char *ifname, const char *addr) {
  struct ifaddrs *list, *ifa;
  int found = 0;
  if (getifaddrs(&list)) return 0;
  for (ifa = list; ifa; ifa = ifa->ifa_next) {
    char text[INET_ADDRSTRLEN];
    if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET) continue;
    if (ifname && strcmp(ifa->ifa_name, ifname) != 0) continue;
    struct sockaddr_in *sin = (struct sockaddr_in *)ifa->ifa_addr;
    inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
    if (strcmp(text, addr) == 0) found = 1;
  }
  freeifaddrs(list);
  return found;
}

static int report_identity(const twohost *th, int side, int fd, void *arg) {
  (void)fd;
  side_report *r = (side_report *)arg + side;
  const char *env = getenv("TCPX_P2P_SOCKET_IFNAME");
  r->netns_ino = netns_inode();
  r->has_own_addr = has_address(th->ifname[side], th->addr[side]);
  r->has_peer_addr = has_address(NULL, th->addr[1 - side]);
  snprintf(r->ifname_env, sizeof r->ifname_env, "%s", env ? env : "(unset)");
  return 0;
}

static int test_sides_run_in_their_own_namespaces(void) {
  side_report *r = new_reports();
  CHECK(r);
  twohost_fn fn[2] = {report_identity, report_identity};
  int rc = twohost_run(&hosts, fn, r, 20, NULL);
  side_report got[2];
  memcpy(got, r, sizeof got);
  free_reports(r);
  CHECK_EQ(rc, 0);
  unsigned long long mine = netns_inode();
  CHECK(mine != 0 && got[0].netns_ino != 0 && got[1].netns_ino != 0);
  for (int side = 0; side < 2; side++) {
    CHECK_EQ(got[side].has_own_addr, 1);
    CHECK(strcmp(got[side].ifname_env, hosts.ifname[side]) == 0);
  }
  if (hosts.netns) {
    CHECK(got[0].netns_ino != got[1].netns_ino);
    CHECK(got[0].netns_ino != mine && got[1].netns_ino != mine);
    CHECK_EQ(got[0].has_peer_addr, 0);  /* the other host's address is */
    CHECK_EQ(got[1].has_peer_addr, 0);  /* not local: traffic uses veth */
  } else {
    CHECK(got[0].netns_ino == mine && got[1].netns_ino == mine);
  }
  return 0;
}

/* Side 0: listen on its address, tell side 1 the port, accept, record the
 * peer's address, answer "ping" with "pong". */
static int tcp_listen_side(const twohost *th, int side, int fd, void *arg) {
  side_report *r = (side_report *)arg + side;
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;
  char buf[4];
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  if (ls < 0 || inet_pton(AF_INET, th->addr[side], &sa.sin_addr) != 1) return 2;
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 1)) return 3;
  if (getsockname(ls, (struct sockaddr *)&sa, &len)) return 4;
  if (oob_send(fd, &sa.sin_port, sizeof sa.sin_port)) return 5;
  len = sizeof sa;
  int c = accept(ls, (struct sockaddr *)&sa, &len);
  if (c < 0) return 6;
  inet_ntop(AF_INET, &sa.sin_addr, r->peer_seen, sizeof r->peer_seen);
  if (recv(c, buf, 4, MSG_WAITALL) != 4 || memcmp(buf, "ping", 4)) return 7;
  if (send(c, "pong", 4, 0) != 4) return 8;
  close(c);
  close(ls);
  return 0;
}

/* Side 1: connect to side 0's address on the port it was told. */
static int tcp_connect_side(const twohost *th, int side, int fd, void *arg) {
  (void)arg;
  struct sockaddr_in sa = {.sin_family = AF_INET};
  char buf[4];
  if (oob_recv(fd, &sa.sin_port, sizeof sa.sin_port)) return 2;
  if (inet_pton(AF_INET, th->addr[1 - side], &sa.sin_addr) != 1) return 3;
  int c = socket(AF_INET, SOCK_STREAM, 0);
  if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof sa)) return 4;
  if (send(c, "ping", 4, 0) != 4) return 5;
  if (recv(c, buf, 4, MSG_WAITALL) != 4 || memcmp(buf, "pong", 4)) return 6;
  close(c);
  return 0;
}

static int test_tcp_from_side1_reaches_side0(void) {
  side_report *r = new_reports();
  CHECK(r);
  twohost_fn fn[2] = {tcp_listen_side, tcp_connect_side};
  int status[2];
  int rc = twohost_run(&hosts, fn, r, 20, status);
  char peer[64];
  snprintf(peer, sizeof peer, "%s", r[0].peer_seen);
  free_reports(r);
  CHECK_EQ(rc, 0);
  CHECK(strcmp(peer, hosts.addr[1]) == 0);
  if (hosts.netns) CHECK(strcmp(peer, "10.211.0.2") == 0);
  return 0;
}

#define OOB_BIG (3u << 20)  /* well past a socketpair's buffer */

/* Side 0 sends a large seeded buffer; side 1 checks it and sends back
 * its length, so both directions are exercised. */
static int oob_send_side(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  unsigned char *buf = malloc(OOB_BIG);
  unsigned long long echoed = 0;
  if (!buf) return 2;
  fill_random(buf, OOB_BIG, 42);
  int rc = oob_send(fd, buf, OOB_BIG) || oob_recv(fd, &echoed, sizeof echoed);
  free(buf);
  return rc ? 3 : echoed == OOB_BIG ? 0 : 4;
}

static int oob_recv_side(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  unsigned char *got = malloc(OOB_BIG), *want = malloc(OOB_BIG);
  unsigned long long len = OOB_BIG;
  int rc = 2;
  if (got && want && oob_recv(fd, got, OOB_BIG) == 0) {
    fill_random(want, OOB_BIG, 42);
    rc = bytes_equal(got, want, OOB_BIG, "oob payload") ? 0 : 3;
  }
  if (rc == 0 && oob_send(fd, &len, sizeof len)) rc = 4;
  free(got);
  free(want);
  return rc;
}

static int test_oob_exchange_moves_exact_bytes(void) {
  twohost_fn fn[2] = {oob_send_side, oob_recv_side};
  CHECK_EQ(twohost_run(&hosts, fn, NULL, 30, NULL), 0);
  return 0;
}

static int side_succeeds(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)fd, (void)arg;
  return 0;
}

static int side_fails(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)fd, (void)arg;
  return 3;
}

static int side_hangs(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)fd, (void)arg;
  sleep(600);  /* far past any timeout a test gives */
  return 0;
}

static int test_failing_side_fails_the_run(void) {
  twohost_fn fn[2] = {side_succeeds, side_fails};
  int status[2];
  CHECK(twohost_run(&hosts, fn, NULL, 20, status) != 0);
  CHECK(WIFEXITED(status[0]) && WEXITSTATUS(status[0]) == 0);
  CHECK(WIFEXITED(status[1]) && WEXITSTATUS(status[1]) == 3);
  twohost_fn ok[2] = {side_succeeds, side_succeeds};
  CHECK_EQ(twohost_run(&hosts, ok, NULL, 20, status), 0);
  return 0;
}

static double seconds_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) + (t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static int test_hanging_side_is_killed_at_timeout(void) {
  twohost_fn fn[2] = {side_succeeds, side_hangs};
  int status[2];
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK(twohost_run(&hosts, fn, NULL, 2, status) != 0);
  double took = seconds_since(&t0);
  CHECK(took >= 1.9 && took < 10.0);
  CHECK(WIFEXITED(status[0]) && WEXITSTATUS(status[0]) == 0);
  CHECK(WIFSIGNALED(status[1]) && WTERMSIG(status[1]) == SIGKILL);
  return 0;
}

/* Is namespace `name` listed by `ip netns list`? -1 when ip cannot run. */
static int netns_listed(const char *name) {
  FILE *p = popen("ip netns list 2>/dev/null || /usr/sbin/ip netns list", "r");
  char line[256];
  int found = 0;
  if (!p) return -1;
  while (fgets(line, sizeof line, p)) {
    line[strcspn(line, " \n")] = '\0';
    if (strcmp(line, name) == 0) found = 1;
  }
  return pclose(p) == 0 ? found : -1;
}

static int test_teardown_leaves_no_namespace(void) {
  twohost th;
  CHECK_EQ(twohost_setup(&th), 0);
  if (!th.netns) {
    twohost_teardown(&th);
    printf("  (loopback mode: no namespace to remove)\n");
    return 0;
  }
  char names[2][64];
  memcpy(names, th.ns, sizeof names);
  CHECK(strcmp(names[0], hosts.ns[0]) != 0);  /* unique per setup */
  CHECK_EQ(netns_listed(names[0]), 1);
  CHECK_EQ(netns_listed(names[1]), 1);
  twohost_teardown(&th);
  CHECK_EQ(netns_listed(names[0]), 0);
  CHECK_EQ(netns_listed(names[1]), 0);
  return 0;
}

/* A side of 3-NIC hosts: every NIC has its address, the peer's are not
 * local, the side's filter and A3 map name its own NICs, counters read. */
static int check_nics_side(const twohost *th, int side, int fd, void *arg) {
  (void)fd, (void)arg;
  char want[64];
  const char *filter = getenv("TCPX_P2P_SOCKET_IFNAME");
  const char *map = getenv("TCPX_P2P_GPU_NICS");
  for (int k = 0; k < th->nnics; k++) {
    unsigned long long rx, tx;
    if (!has_address(th->nic[k][side], th->nic_addr[k][side])) return 10 + k;
    if (has_address(NULL, th->nic_addr[k][1 - side])) return 20 + k;
    if (twohost_if_bytes(th->nic[k][side], &rx, &tx)) return 30 + k;
  }
  snprintf(want, sizeof want, "=nic0%c,nic1%c,nic2%c", 'a' + side, 'a' + side,
           'a' + side);
  if (!filter || strcmp(filter, want)) return 40;
  snprintf(want, sizeof want, "5:nic2%c;6:nic0%c", 'a' + side, 'a' + side);
  if (!map || !strstr(map, want)) return 41; /* GPU 6 wraps to NIC 0 */
  unsigned long long rx, tx;
  return twohost_if_bytes("no-such-if0", &rx, &tx) == 0 ? 42 : 0;
}

static int test_nics_each_have_their_own_subnet(void) {
  twohost th;
  CHECK_EQ(twohost_setup_nics(&th, 3), 0);
  if (!th.netns) {
    CHECK_EQ(th.nnics, 1);
    CHECK(strcmp(th.nic[0][0], "lo") == 0);
    twohost_teardown(&th);
    printf("  (loopback mode: one NIC)\n");
    return 0;
  }
  char names[2][64];
  memcpy(names, th.ns, sizeof names);
  CHECK_EQ(th.nnics, 3);
  CHECK(strcmp(th.nic[2][1], "nic2b") == 0);
  CHECK(strcmp(th.nic_addr[2][0], "10.211.2.1") == 0);
  CHECK(strcmp(th.ifname[1], th.nic[0][1]) == 0);  /* the one-NIC fields */
  CHECK(strcmp(th.addr[1], "10.211.0.2") == 0);    /* are NIC 0's */
  int want_nic[TWOHOST_GPUS] = {0, 0, 1, 1, 2, 2, 0, 0};
  for (int g = 0; g < TWOHOST_GPUS; g++) CHECK_EQ(twohost_gpu_nic(&th, g), want_nic[g]);
  twohost_fn fn[2] = {check_nics_side, check_nics_side};
  int status[2];
  int rc = twohost_run(&th, fn, NULL, 20, status);
  twohost_teardown(&th);
  CHECK_EQ(rc, 0);
  CHECK_EQ(netns_listed(names[0]), 0);
  CHECK_EQ(netns_listed(names[1]), 0);
  return 0;
}

static int test_fill_random_is_seeded_and_compare_finds_mismatch(void) {
  unsigned char a[1003], b[1003], c[1003];
  fill_random(a, sizeof a, 7);
  fill_random(b, sizeof b, 7);
  fill_random(c, sizeof c, 8);
  CHECK_EQ(bytes_equal(a, b, sizeof a, "same seed"), 1);
  CHECK(memcmp(a, c, sizeof a) != 0);
  int zeros = 0;
  for (size_t i = 0; i < sizeof a; i++) zeros += a[i] == 0;
  CHECK(zeros < 20);  /* about 4 expected from random bytes */
  b[1001] ^= 0x10;  /* last partial word is filled too */
  printf("  (a mismatch report is expected next)\n");
  fflush(stdout);
  CHECK_EQ(bytes_equal(a, b, sizeof a, "flipped byte"), 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_sides_run_in_their_own_namespaces),
    CHECK_CASE(test_tcp_from_side1_reaches_side0),
    CHECK_CASE(test_oob_exchange_moves_exact_bytes),
    CHECK_CASE(test_failing_side_fails_the_run),
    CHECK_CASE(test_hanging_side_is_killed_at_timeout),
    CHECK_CASE(test_teardown_leaves_no_namespace),
    CHECK_CASE(test_nics_each_have_their_own_subnet),
    CHECK_CASE(test_fill_random_is_seeded_and_compare_finds_mismatch),
};

int main(int argc, char **argv) {
  if (twohost_setup(&hosts)) return 1;
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  twohost_teardown(&hosts);
  return rc;
}
