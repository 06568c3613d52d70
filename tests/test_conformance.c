/* Conformance of a transport to the net.h contract (NCCL net semantics),
 * between two hosts (network namespaces; loopback where they cannot be
 * made). Runs against the built-in TCP transport directly, or against a
 * plugin loaded through the loader at a forced ABI version:
 *
 *   test_conformance [--plugin PATH --version N] [case-filter]
 *
 * Side 0 listens and receives, side 1 connects and sends. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "net.h"
#include "plugin.h"
#include "sock.h"
#include "tcp.h"
#include "twohost.h"

static const char *plugin_path;  /* NULL: the built-in transport */
static int plugin_version;
static twohost hosts;

#define SIDE_TIMEOUT_S 120
#define WAIT_NS (30ull * 1000000000ull)

/* ---- helpers used inside a side ------------------------------------- */

static net_transport *open_transport(void) {
  net_transport *t = NULL;
  int rc = plugin_path ? net_plugin_load(plugin_path, plugin_version, &t)
                       : net_tcp_create(NULL, &t);
  if (rc != NET_OK) {
    fprintf(stderr, "  cannot open transport: %s\n", err_get());
    return NULL;
  }
  return t;
}

#define SIDE_CHECK(cond)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "  side FAIL %s:%d: %s (last error: %s)\n", __FILE__, \
              __LINE__, #cond, err_get());                                 \
      return 1;                                                            \
    }                                                                      \
  } while (0)

static int accept_one(net_transport *t, int peer_fd, void **rcomm) {
  char handle[NET_HANDLE_SIZE];
  void *lcomm = NULL;
  if (net_call(t, listen, 0, handle, &lcomm) != NET_OK) return -1;
  if (oob_send(peer_fd, handle, sizeof handle) != 0) return -1;
  net_dev_handle dh = {0}, *dhp = &dh;
  uint64_t start = clock_ns();
  *rcomm = NULL;
  while (!*rcomm && clock_ns() - start < WAIT_NS) {
    if (net_call(t, accept, lcomm, rcomm, &dhp) != NET_OK) break;
    if (!*rcomm) usleep(100);
  }
  net_call(t, close_listen, lcomm);
  return *rcomm ? 0 : -1;
}

static int connect_one(net_transport *t, int peer_fd, void **scomm) {
  char handle[NET_HANDLE_SIZE];
  if (oob_recv(peer_fd, handle, sizeof handle) != 0) return -1;
  uint64_t start = clock_ns();
  *scomm = NULL;
  while (!*scomm && clock_ns() - start < WAIT_NS) {
    if (net_call(t, connect, 0, handle, scomm, NULL) != NET_OK) return -1;
    if (!*scomm) usleep(100);
  }
  return *scomm ? 0 : -1;
}

/* Test until done; returns the test() error code (or -1 on timeout). */
static int wait_req(net_transport *t, void *req, size_t *sizes, uint64_t ns) {
  uint64_t start = clock_ns();
  int done = 0;
  while (clock_ns() - start < ns) {
    int rc = net_call(t, test, req, &done, sizes);
    if (rc != NET_OK) return rc;
    if (done) return NET_OK;
  }
  err_set(-1, "timed out waiting for a request");
  return -1;
}

static int post_send(net_transport *t, void *comm, void *buf, size_t n,
                     int tag, void **req) {
  void *mh = NULL;
  if (net_call(t, reg_mr, comm, buf, n, NCCL_PTR_HOST, &mh) != NET_OK) return -1;
  uint64_t start = clock_ns();
  *req = NULL;
  while (!*req && clock_ns() - start < WAIT_NS)
    if (net_call(t, isend, comm, buf, n, tag, mh, req) != NET_OK) return -1;
  return *req ? 0 : -1;
}

static int post_recv(net_transport *t, void *comm, void *buf, size_t cap,
                     void **req) {
  void *mh = NULL;
  if (net_call(t, reg_mr, comm, buf, cap, NCCL_PTR_HOST, &mh) != NET_OK) return -1;
  int tag = 0;
  uint64_t start = clock_ns();
  *req = NULL;
  while (!*req && clock_ns() - start < WAIT_NS)
    if (net_call(t, irecv, comm, 1, &buf, &cap, &tag, &mh, req) != NET_OK)
      return -1;
  return *req ? 0 : -1;
}

static int run_sides(twohost_fn recv_side, twohost_fn send_side, void *arg,
                     int status[2]) {
  twohost_fn fns[2] = {recv_side, send_side};
  return twohost_run(&hosts, fns, arg, SIDE_TIMEOUT_S, status);
}

/* ---- sizes: random data, poisoned destination, byte-exact ----------- */

static const size_t sizes_to_check[] = {0, 1, 4095, 4096, (1u << 20) + 7,
                                        256u << 20};
#define NSIZES (sizeof sizes_to_check / sizeof sizes_to_check[0])
#define GUARD 64

static int sizes_recv(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  net_transport *t = open_transport();
  void *comm;
  SIDE_CHECK(t && accept_one(t, fd, &comm) == 0);
  if (!plugin_path) { /* the built-in transport tells the peer address */
    char peer[80];
    net_tcp_comm_peer(comm, peer, sizeof peer);
    fprintf(stderr, "  recv side: peer is %s\n", peer);
    if (th->netns) SIDE_CHECK(strncmp(peer, th->addr[1], strlen(th->addr[1])) == 0);
  }
  for (size_t i = 0; i < NSIZES; i++) {
    size_t n = sizes_to_check[i];
    unsigned char *buf = malloc(n + GUARD), *want = malloc(n + 1);
    SIDE_CHECK(buf && want);
    memset(buf, 0xA5, n + GUARD);
    fill_random(want, n, 1000 + i);
    void *req;
    size_t got = (size_t)-1;
    SIDE_CHECK(post_recv(t, comm, buf, n, &req) == 0);
    SIDE_CHECK(wait_req(t, req, &got, WAIT_NS) == NET_OK);
    SIDE_CHECK(got == n);
    SIDE_CHECK(bytes_equal(buf, want, n, "received data"));
    for (int g = 0; g < GUARD; g++) SIDE_CHECK(buf[n + g] == 0xA5);
    free(buf);
    free(want);
  }
  net_call(t, close_recv, comm);
  t->ops->destroy(t);
  return 0;
}

static int sizes_send(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  net_transport *t = open_transport();
  void *comm;
  SIDE_CHECK(t && connect_one(t, fd, &comm) == 0);
  for (size_t i = 0; i < NSIZES; i++) {
    size_t n = sizes_to_check[i];
    unsigned char *buf = malloc(n + 1);
    SIDE_CHECK(buf);
    fill_random(buf, n, 1000 + i);
    void *req;
    SIDE_CHECK(post_send(t, comm, buf, n, 0, &req) == 0);
    SIDE_CHECK(wait_req(t, req, NULL, WAIT_NS) == NET_OK);
    free(buf);
  }
  char ack;
  oob_recv(fd, &ack, 1); /* the receiver checked everything: safe to close */
  net_call(t, close_send, comm);
  t->ops->destroy(t);
  return 0;
}

static int sizes_recv_ack(const twohost *th, int side, int fd, void *arg) {
  int rc = sizes_recv(th, side, fd, arg);
  oob_send(fd, "k", 1);
  return rc;
}

static int test_sizes_byte_exact(void) {
  CHECK(run_sides(sizes_recv_ack, sizes_send, NULL, NULL) == 0);
  return 0;
}

/* ---- grouped receive with tags -------------------------------------- */

#define NGROUP 4

static int tags_recv(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  net_transport *t = open_transport();
  void *comm;
  SIDE_CHECK(t && accept_one(t, fd, &comm) == 0);
  net_props props;
  SIDE_CHECK(net_call(t, get_properties, 0, &props) == NET_OK);
  if (props.max_recvs < NGROUP) {
    fprintf(stderr, "  maxRecvs %d < %d: grouped receive not offered\n",
            props.max_recvs, NGROUP);
    oob_send(fd, "n", 1);
    return 0;
  }
  oob_send(fd, "y", 1);
  static unsigned char bufs[NGROUP][8192];
  void *data[NGROUP], *mhs[NGROUP] = {0}, *req = NULL;
  size_t caps[NGROUP], got[NGROUP];
  int tags[NGROUP];
  for (int i = 0; i < NGROUP; i++) {
    memset(bufs[i], 0xA5, sizeof bufs[i]);
    data[i] = bufs[i];
    caps[i] = sizeof bufs[i];
    tags[i] = 10 + i;
  }
  while (!req)
    SIDE_CHECK(net_call(t, irecv, comm, NGROUP, data, caps, tags, mhs, &req) == NET_OK);
  SIDE_CHECK(wait_req(t, req, got, WAIT_NS) == NET_OK);
  for (int i = 0; i < NGROUP; i++) {
    unsigned char want[8192];
    size_t n = 1000 + (size_t)tags[i];  /* the sender's size for that tag */
    fill_random(want, n, (unsigned long long)tags[i]);
    SIDE_CHECK(got[i] == n);
    SIDE_CHECK(bytes_equal(bufs[i], want, n, "tagged buffer"));
    SIDE_CHECK(bufs[i][n] == 0xA5);
  }
  oob_send(fd, "k", 1);
  net_call(t, close_recv, comm);
  t->ops->destroy(t);
  return 0;
}

static int tags_send(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  net_transport *t = open_transport();
  void *comm;
  char offered;
  SIDE_CHECK(t && connect_one(t, fd, &comm) == 0);
  SIDE_CHECK(oob_recv(fd, &offered, 1) == 0);
  if (offered == 'y') {
    static const int order[NGROUP] = {12, 10, 13, 11}; /* not the posted order */
    static unsigned char bufs[NGROUP][8192];
    void *reqs[NGROUP];
    for (int i = 0; i < NGROUP; i++) {
      size_t n = 1000 + (size_t)order[i];
      fill_random(bufs[i], n, (unsigned long long)order[i]);
      SIDE_CHECK(post_send(t, comm, bufs[i], n, order[i], &reqs[i]) == 0);
    }
    for (int i = 0; i < NGROUP; i++)
      SIDE_CHECK(wait_req(t, reqs[i], NULL, WAIT_NS) == NET_OK);
    char ack;
    oob_recv(fd, &ack, 1);
  }
  net_call(t, close_send, comm);
  t->ops->destroy(t);
  return 0;
}

static int test_grouped_irecv_matches_tags(void) {
  CHECK(run_sides(tags_recv, tags_send, NULL, NULL) == 0);
  return 0;
}

/* ---- request limits ------------------------------------------------- */

/* Post until the transport says "busy"; every post is 4 KiB. */
static int fill_requests(net_transport *t, void *comm, int is_recv,
                         void **reqs, int max, int *posted) {
  static unsigned char buf[NCCL_NET_MAX_REQUESTS + 1][4096];
  *posted = 0;
  for (int i = 0; i <= max; i++) {
    void *data = buf[i], *mh = NULL, *req = NULL;
    size_t size = sizeof buf[i];
    int tag = 0;
    int rc = is_recv ? net_call(t, irecv, comm, 1, &data, &size, &tag, &mh, &req)
                     : net_call(t, isend, comm, data, size, 0, mh, &req);
    if (rc != NET_OK) return rc;
    if (!req) break;
    reqs[(*posted)++] = req;
  }
  return NET_OK;
}

static int limit_side(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)arg;
  int is_recv = side == 0;
  net_transport *t = open_transport();
  void *comm;
  SIDE_CHECK(t);
  SIDE_CHECK((is_recv ? accept_one(t, fd, &comm) : connect_one(t, fd, &comm)) == 0);
  net_props props;
  SIDE_CHECK(net_call(t, get_properties, 0, &props) == NET_OK);
  int max = NCCL_NET_MAX_REQUESTS; /* what a comm must accept */
  void *reqs[NCCL_NET_MAX_REQUESTS + 1];
  int posted;
  SIDE_CHECK(fill_requests(t, comm, is_recv, reqs, max, &posted) == NET_OK);
  fprintf(stderr, "  %s side: %d requests accepted before NULL\n",
          is_recv ? "recv" : "send", posted);
  SIDE_CHECK(posted == max); /* the 33rd came back NULL ("busy") */
  for (int i = 0; i < posted; i++) {
    size_t got = 0;
    SIDE_CHECK(wait_req(t, reqs[i], is_recv ? &got : NULL, WAIT_NS) == NET_OK);
    if (is_recv) SIDE_CHECK(got == 4096);
  }
  /* After completion the slots are free again. */
  SIDE_CHECK(fill_requests(t, comm, is_recv, reqs, 1, &posted) == NET_OK);
  SIDE_CHECK(posted == 2);
  for (int i = 0; i < posted; i++)
    SIDE_CHECK(wait_req(t, reqs[i], NULL, WAIT_NS) == NET_OK);
  char ack = 'k';
  SIDE_CHECK(is_recv ? oob_send(fd, &ack, 1) == 0 : oob_recv(fd, &ack, 1) == 0);
  is_recv ? net_call(t, close_recv, comm) : net_call(t, close_send, comm);
  t->ops->destroy(t);
  return 0;
}

static int test_max_requests_then_null(void) {
  CHECK(run_sides(limit_side, limit_side, NULL, NULL) == 0);
  return 0;
}

/* ---- short receive, and a send larger than the receive -------------- */

static int short_recv(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  net_transport *t = open_transport();
  void *comm, *req;
  SIDE_CHECK(t && accept_one(t, fd, &comm) == 0);
  size_t cap = 1 << 20, got = 0;
  unsigned char *buf = malloc(cap), want[1000];
  memset(buf, 0xA5, cap);
  fill_random(want, sizeof want, 7);
  SIDE_CHECK(post_recv(t, comm, buf, cap, &req) == 0);
  SIDE_CHECK(wait_req(t, req, &got, WAIT_NS) == NET_OK);
  SIDE_CHECK(got == sizeof want);                 /* the real size */
  SIDE_CHECK(bytes_equal(buf, want, sizeof want, "short receive"));
  for (size_t i = sizeof want; i < cap; i++) SIDE_CHECK(buf[i] == 0xA5);
  /* Now a 64 KiB send into a 1000-byte receive: an error, not a truncation. */
  memset(buf, 0xA5, cap);
  SIDE_CHECK(post_recv(t, comm, buf, 1000, &req) == 0);
  int rc = wait_req(t, req, &got, WAIT_NS);
  fprintf(stderr, "  oversized send -> rc %d: %s\n", rc, err_get());
  SIDE_CHECK(rc != NET_OK && rc != -1);
  for (size_t i = 1000; i < cap; i++) SIDE_CHECK(buf[i] == 0xA5);
  oob_send(fd, "k", 1);
  free(buf);
  net_call(t, close_recv, comm);
  t->ops->destroy(t);
  return 0;
}

static int short_send(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  net_transport *t = open_transport();
  void *comm, *req;
  SIDE_CHECK(t && connect_one(t, fd, &comm) == 0);
  unsigned char small[1000];
  static unsigned char big[64 << 10];
  fill_random(small, sizeof small, 7);
  SIDE_CHECK(post_send(t, comm, small, sizeof small, 0, &req) == 0);
  SIDE_CHECK(wait_req(t, req, NULL, WAIT_NS) == NET_OK);
  SIDE_CHECK(post_send(t, comm, big, sizeof big, 0, &req) == 0);
  wait_req(t, req, NULL, WAIT_NS); /* may fail once the receiver gives up */
  char ack;
  oob_recv(fd, &ack, 1);
  net_call(t, close_send, comm);
  t->ops->destroy(t);
  return 0;
}

static int test_short_receive_reports_size(void) {
  CHECK(run_sides(short_recv, short_send, NULL, NULL) == 0);
  return 0;
}

/* ---- close with requests in flight ---------------------------------- */

static int close_busy_side(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)arg;
  int is_recv = side == 0;
  net_transport *t = open_transport();
  void *comm;
  SIDE_CHECK(t);
  SIDE_CHECK((is_recv ? accept_one(t, fd, &comm) : connect_one(t, fd, &comm)) == 0);
  size_t n = 32u << 20;
  unsigned char *buf = calloc(4, n);
  void *reqs[4];
  for (int i = 0; i < 4; i++) {
    SIDE_CHECK(is_recv ? post_recv(t, comm, buf + i * n, n, &reqs[i]) == 0
                       : post_send(t, comm, buf + i * n, n, 0, &reqs[i]) == 0);
  }
  /* Both sides have posted before either closes (a send posted after the
   * peer closed may rightly fail); 128 MiB cannot all be in flight yet. */
  char mark = 'p', peer;
  SIDE_CHECK(oob_send(fd, &mark, 1) == 0 && oob_recv(fd, &peer, 1) == 0);
  usleep(20000);
  uint64_t start = clock_ns();
  SIDE_CHECK((is_recv ? net_call(t, close_recv, comm)
                      : net_call(t, close_send, comm)) == NET_OK);
  SIDE_CHECK(clock_ns() - start < 5000000000ull); /* no hang */
  free(buf);
  t->ops->destroy(t);
  return 0;
}

static int test_close_with_requests_in_flight(void) {
  CHECK(run_sides(close_busy_side, close_busy_side, NULL, NULL) == 0);
  return 0;
}

/* ---- peer killed mid-transfer --------------------------------------- */

/* The side that survives: keeps transferring 256 MiB messages until one
 * fails; must see the error within the bound. */
static int survivor(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)arg;
  int is_recv = side == 0;
  net_transport *t = open_transport();
  void *comm, *req;
  SIDE_CHECK(t);
  SIDE_CHECK((is_recv ? accept_one(t, fd, &comm) : connect_one(t, fd, &comm)) == 0);
  size_t n = 256u << 20;
  unsigned char *buf = calloc(1, n);
  SIDE_CHECK(buf);
  oob_send(fd, "g", 1); /* go: the victim dies some time after this */
  int rc = NET_OK;
  uint64_t start = clock_ns();
  for (int i = 0; i < 64 && rc == NET_OK; i++) {
    if ((is_recv ? post_recv(t, comm, buf, n, &req)
                 : post_send(t, comm, buf, n, 0, &req)) != 0)
      rc = NET_EREMOTE;
    else
      rc = wait_req(t, req, NULL, 20ull * 1000000000ull);
  }
  double secs = (double)(clock_ns() - start) / 1e9;
  fprintf(stderr, "  %s side saw rc %d after %.2f s: %s\n",
          is_recv ? "recv" : "send", rc, secs, err_get());
  SIDE_CHECK(rc != NET_OK && rc != -1); /* an error, not a timeout */
  is_recv ? net_call(t, close_recv, comm) : net_call(t, close_send, comm);
  free(buf);
  t->ops->destroy(t);
  return 0;
}

static int victim(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)arg;
  int is_recv = side == 0;
  net_transport *t = open_transport();
  void *comm, *req;
  SIDE_CHECK(t);
  SIDE_CHECK((is_recv ? accept_one(t, fd, &comm) : connect_one(t, fd, &comm)) == 0);
  size_t n = 256u << 20;
  unsigned char *buf = calloc(1, n);
  char go;
  oob_recv(fd, &go, 1);
  SIDE_CHECK(is_recv ? post_recv(t, comm, buf, n, &req) == 0
                     : post_send(t, comm, buf, n, 0, &req) == 0);
  usleep(50000); /* mid-transfer */
  raise(SIGKILL);
  return 1;
}

static int test_peer_killed_recv_side_errors(void) {
  int status[2];
  run_sides(survivor, victim, NULL, status);
  CHECK(WIFEXITED(status[0]) && WEXITSTATUS(status[0]) == 0);
  CHECK(WIFSIGNALED(status[1]) && WTERMSIG(status[1]) == SIGKILL);
  return 0;
}

static int test_peer_killed_send_side_errors(void) {
  int status[2];
  run_sides(victim, survivor, NULL, status);
  CHECK(WIFSIGNALED(status[0]) && WTERMSIG(status[0]) == SIGKILL);
  CHECK(WIFEXITED(status[1]) && WEXITSTATUS(status[1]) == 0);
  return 0;
}

/* ---- bad handles ---------------------------------------------------- */

static int bad_handles_side(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)fd, (void)arg;
  net_transport *t = open_transport();
  CHECK(t);
  char real[NET_HANDLE_SIZE], bad[NET_HANDLE_SIZE];
  void *lcomm, *scomm = NULL;
  CHECK(net_call(t, listen, 0, real, &lcomm) == NET_OK);
  fill_random(bad, sizeof bad, 99);
  CHECK(net_call(t, connect, 0, bad, &scomm, NULL) != NET_OK);
  CHECK(scomm == NULL);
  fprintf(stderr, "  garbage handle: %s\n", err_get());
  for (size_t keep = 0; keep <= 40; keep += 4) { /* 44+ keeps the checksum */
    memcpy(bad, real, sizeof bad);
    memset(bad + keep, 0, sizeof bad - keep);
    CHECK(net_call(t, connect, 0, bad, &scomm, NULL) != NET_OK);
    CHECK(scomm == NULL);
  }
  fprintf(stderr, "  truncated handle: %s\n", err_get());
  net_call(t, close_listen, lcomm);
  t->ops->destroy(t);
  return 0;
}

static int idle_side(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)fd, (void)arg;
  return 0;
}

static int test_garbage_and_truncated_handles(void) {
  CHECK(run_sides(bad_handles_side, idle_side, NULL, NULL) == 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_sizes_byte_exact),
    CHECK_CASE(test_grouped_irecv_matches_tags),
    CHECK_CASE(test_max_requests_then_null),
    CHECK_CASE(test_short_receive_reports_size),
    CHECK_CASE(test_close_with_requests_in_flight),
    CHECK_CASE(test_peer_killed_recv_side_errors),
    CHECK_CASE(test_peer_killed_send_side_errors),
    CHECK_CASE(test_garbage_and_truncated_handles),
};

int main(int argc, char **argv) {
  int i = 1;
  for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    if (!strcmp(argv[i], "--plugin")) plugin_path = argv[i + 1];
    else if (!strcmp(argv[i], "--version")) plugin_version = atoi(argv[i + 1]);
  }
  if (twohost_setup(&hosts) != 0) return 1;
  printf("transport: %s", plugin_path ? plugin_path : "built-in tcp");
  if (plugin_path) printf(" (ABI v%d)", plugin_version);
  printf(", hosts: %s\n", hosts.netns ? "network namespaces" : "loopback");
  argv[i - 1] = argv[0];
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc - i + 1,
                     argv + i - 1);
  twohost_teardown(&hosts);
  return rc;
}
