/* Faults between two endpoints in two namespaces, with a liveness timeout
 * of EPH_TIMEOUT_MS (2 s):
 * - the peer process is killed (SIGKILL) mid-transfer: pending ops fail
 *   with P2P_EPEER within the timeout, and the endpoint accepts and
 *   connects again with a new peer process;
 * - the link goes down in the peer's namespace mid-transfer: the same on
 *   both sides, and a new connection works once the link is back;
 * - the endpoint is destroyed with async ops in flight and a thread
 *   blocked in p2p_recv (driving the connection itself): it returns at
 *   once, the blocked call returns P2P_ECANCELED, everything is freed
 *   (LeakSanitizer in the ASan build), and the peer's ops fail promptly. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "ep_harness.h"
#include "twohost.h"

static twohost hosts;  /* made once in main for every case */

#define MiB ((size_t)1 << 20)
#define BIG ((size_t)1 << 30)  /* large enough to be caught mid-transfer */
/* A failure must arrive within the timeout, plus this much scheduling
 * slack on a loaded 2-core machine. */
#define SLACK_MS (1500 * EPH_SLOWDOWN)

/* Out-of-band steps of the fault scripts. */
enum { STEP_STOP = 1, STEP_KILL, STEP_DOWN, STEP_DONE };

static void fault_options(p2p_options *o, int gpu) {
  eph_options(o);
  o->gpu_index = gpu;
  o->timeout_ms = EPH_TIMEOUT_MS;
}

/* Wait until conn has received some bytes (a transfer is under way). */
static int wait_bytes_received(p2p_endpoint *ep, uint64_t conn) {
  p2p_conn_stats st = {0};
  double t0 = eph_now_ms();
  while (st.bytes_received == 0) {
    CHECK_EQ(p2p_conn_stats_get(ep, conn, &st), P2P_OK);
    CHECK(eph_now_ms() - t0 < 30000);
    usleep(200);
  }
  return 0;
}

/* Post one op on a buffer of `size` bytes (registered here). */
static int post_op(p2p_endpoint *ep, uint64_t conn, p2p_op_kind kind,
                   uint8_t *buf, size_t size, const uint8_t *desc,
                   uint64_t *mr, uint64_t *id) {
  CHECK_EQ(p2p_reg(ep, buf, size, mr), P2P_OK);
  p2p_iov v = {*mr, buf, size, desc};
  CHECK_EQ(p2p_post(ep, conn, kind, &v, 1, id), P2P_OK);
  return 0;
}

/* Wait for a pending op that must fail with P2P_EPEER no later than the
 * liveness timeout after `since`. */
/* Through a net plugin, a failed connection first gives the requests in
 * flight up to TCPX_P2P_DRAIN_MS (500 ms) to end before its ops fail. */
static int drain_ms(void) {
  const char *plugin = getenv("TCPX_P2P_NET_PLUGIN");
  return plugin && *plugin && strcmp(plugin, "builtin") ? 500 : 0;
}

static int expect_peer_lost(p2p_endpoint *ep, uint64_t id, double since,
                            const char *what) {
  int rc = p2p_wait(ep, id, 3 * EPH_TIMEOUT_MS + 5000, NULL);
  double took = eph_now_ms() - since;
  int limit = EPH_TIMEOUT_MS + SLACK_MS + drain_ms();
  if (rc != P2P_EPEER || took > limit) {
    fprintf(stderr, "  %s: %s after %.0f ms (want P2P_EPEER within %d ms): %s\n",
            what, p2p_strerror(rc), took, limit, p2p_last_error());
    return 1;
  }
  return 0;
}

/* Send / receive one small pattern message. */
static int small_send(p2p_endpoint *ep, uint64_t conn, uint64_t seed) {
  uint8_t buf[5000];
  uint64_t mr;
  pat_fill(buf, sizeof buf, seed);
  CHECK_EQ(p2p_reg(ep, buf, sizeof buf, &mr), P2P_OK);
  CHECK_EQ(p2p_send(ep, conn, mr, buf, sizeof buf), P2P_OK);
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  return 0;
}

static int small_recv(p2p_endpoint *ep, uint64_t conn, uint64_t seed) {
  uint8_t buf[5000];
  uint64_t mr;
  size_t got = 0;
  memset(buf, EPH_POISON, sizeof buf);
  CHECK_EQ(p2p_reg(ep, buf, sizeof buf, &mr), P2P_OK);
  CHECK_EQ(p2p_recv(ep, conn, mr, buf, sizeof buf, &got), P2P_OK);
  CHECK_EQ(got, sizeof buf);
  CHECK(pat_check(buf, sizeof buf, seed, "small message"));
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  return 0;
}

/* ---- peer killed mid-transfer ---- */

/* Worker processes of side 1 (children of its side process, so that a
 * SIGKILL does not end the side itself). */
typedef struct peer_addr {
  char ip[64];
  int port, gpu;
} peer_addr;

/* First worker: connect, advertise a region, send 1 GiB; killed while
 * it does. */
static int doomed_worker(int fd, const peer_addr *pa) {
  p2p_options o;
  fault_options(&o, EPH_GPU1);
  p2p_endpoint *ep;
  uint64_t conn, mr;
  uint8_t desc[P2P_DESC_SIZE], *buf = malloc(BIG);
  CHECK(buf);
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  CHECK_EQ(p2p_connect(ep, pa->ip, pa->gpu, pa->port, &conn), P2P_OK);
  CHECK_EQ(p2p_reg(ep, buf, BIG, &mr), P2P_OK);
  CHECK_EQ(p2p_advertise(ep, conn, mr, buf, 64 * MiB, desc), P2P_OK);
  CHECK_EQ(oob_send(fd, desc, sizeof desc), 0);
  p2p_send(ep, conn, mr, buf, BIG);
  pause();  /* the send only ends with this process */
  return 1;
}

/* Second worker: connect to the survivor and send, then accept its
 * connection and receive. */
static int fresh_worker(int fd, const peer_addr *pa) {
  p2p_options o;
  fault_options(&o, EPH_GPU1);
  p2p_endpoint *ep;
  uint64_t out, in;
  char ip[64];
  int gpu;
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  CHECK_EQ(p2p_connect(ep, pa->ip, pa->gpu, pa->port, &out), P2P_OK);
  CHECK(small_send(ep, out, 11) == 0);
  CHECK_EQ(eph_send_metadata(ep, fd), 0);
  CHECK_EQ(p2p_accept(ep, ip, sizeof ip, &gpu, &in), P2P_OK);
  CHECK_EQ(gpu, EPH_GPU0);
  CHECK(small_recv(ep, in, 12) == 0);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static pid_t spawn_worker(int (*fn)(int, const peer_addr *), int fd,
                          const peer_addr *pa) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    int rc = fn(fd, pa);
    fflush(NULL);
    _exit(rc ? 1 : 0);
  }
  return pid;
}

/* Side 1: run the doomed worker, stop and kill it when told, then run a
 * fresh worker; succeed when that one does. */
static int kill_coordinator(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  peer_addr pa;
  uint64_t step;
  int st;
  CHECK_EQ(eph_recv_metadata(fd, pa.ip, sizeof pa.ip, &pa.port, &pa.gpu), 0);
  pid_t doomed = spawn_worker(doomed_worker, fd, &pa);
  CHECK(doomed > 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);
  CHECK_EQ(step, STEP_STOP);
  CHECK_EQ(kill(doomed, SIGSTOP), 0);
  CHECK_EQ(eph_put_u64(fd, STEP_STOP), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);
  CHECK_EQ(step, STEP_KILL);
  CHECK_EQ(kill(doomed, SIGKILL), 0);
  CHECK_EQ(waitpid(doomed, &st, 0), doomed);
  double when = eph_now_ms();
  CHECK_EQ(oob_send(fd, &when, sizeof when), 0);
  CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  pid_t fresh = spawn_worker(fresh_worker, fd, &pa);
  CHECK(fresh > 0);
  CHECK_EQ(waitpid(fresh, &st, 0), fresh);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  return 0;
}

/* Side 0: a 1 GiB receive caught mid-transfer, a send the peer never
 * receives and a read the stopped peer cannot serve; the peer is killed;
 * all three fail in time; then a new peer process works both ways. */
static int kill_survivor(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  p2p_options o;
  fault_options(&o, EPH_GPU0);
  p2p_endpoint *ep;
  uint64_t conn, mr[3], id[3], step, again;
  uint8_t desc[P2P_DESC_SIZE], *rbuf = malloc(BIG), *sbuf = malloc(64 * MiB);
  uint8_t *dbuf = malloc(64 * MiB);
  int done = 1;
  double killed;
  CHECK(rbuf && sbuf && dbuf);
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  CHECK_EQ(eph_serve(ep, fd, &conn, NULL, 0, NULL), 0);
  CHECK_EQ(oob_recv(fd, desc, sizeof desc), 0);
  CHECK(post_op(ep, conn, P2P_OP_RECV, rbuf, BIG, NULL, &mr[0], &id[0]) == 0);
  CHECK(post_op(ep, conn, P2P_OP_SEND, sbuf, 64 * MiB, NULL, &mr[1], &id[1]) == 0);
  CHECK(wait_bytes_received(ep, conn) == 0);
  CHECK_EQ(eph_put_u64(fd, STEP_STOP), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);
  CHECK(post_op(ep, conn, P2P_OP_READ, dbuf, 64 * MiB, desc, &mr[2], &id[2]) == 0);
  CHECK_EQ(p2p_poll(ep, id[0], &done), P2P_OK);
  CHECK_EQ(done, 0);  /* really mid-transfer */
  CHECK_EQ(eph_put_u64(fd, STEP_KILL), 0);
  CHECK_EQ(oob_recv(fd, &killed, sizeof killed), 0);
  CHECK(expect_peer_lost(ep, id[0], killed, "receive from the killed peer") == 0);
  CHECK(expect_peer_lost(ep, id[1], killed, "send to the killed peer") == 0);
  CHECK(expect_peer_lost(ep, id[2], killed, "read from the killed peer") == 0);
  p2p_iov v = {mr[1], sbuf, 1, NULL};  /* a dead connection takes no op */
  int rc = p2p_post(ep, conn, P2P_OP_SEND, &v, 1, &again);
  CHECK(rc == P2P_EPEER || (rc == P2P_OK && p2p_wait(ep, again, 5000, NULL) == P2P_EPEER));
  for (int k = 0; k < 3; k++) CHECK_EQ(p2p_dereg(ep, mr[k]), P2P_OK);
  /* A new peer process: accept it, then connect to it. */
  uint64_t in, out;
  char ip[64];
  int gpu;
  CHECK_EQ(p2p_accept(ep, ip, sizeof ip, &gpu, &in), P2P_OK);
  CHECK(small_recv(ep, in, 11) == 0);
  CHECK_EQ(eph_recv_metadata(fd, ip, sizeof ip, &o.listen_port, &gpu), 0);
  CHECK_EQ(p2p_connect(ep, ip, gpu, o.listen_port, &out), P2P_OK);
  CHECK(small_send(ep, out, 12) == 0);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  free(rbuf);
  free(sbuf);
  free(dbuf);
  return eph_leak_check();
}

static int test_fault_peer_killed_mid_transfer(void) {
  CHECK_EQ(eph_run(&hosts, kill_survivor, kill_coordinator, NULL, 120), 0);
  return 0;
}

/* ---- link down mid-transfer ---- */

/* Side 1 sends 1 GiB; side 0 receives it and sends 64 MiB side 1 never
 * receives. Mid-transfer, side 1 sets its veth down. Both sides' ops
 * fail within the timeout; with the link back up, a new connection
 * works. */
static int link_side(const twohost *th, int side, int fd, void *arg) {
  (void)arg;
  p2p_options o;
  fault_options(&o, side == 0 ? EPH_GPU0 : EPH_GPU1);
  p2p_endpoint *ep;
  uint64_t conn, mr[2], id[2], step;
  uint8_t *big = malloc(BIG), *small = malloc(64 * MiB);
  double down;
  CHECK(big && small);
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  if (side == 0) {
    CHECK_EQ(eph_serve(ep, fd, &conn, NULL, 0, NULL), 0);
    CHECK(post_op(ep, conn, P2P_OP_RECV, big, BIG, NULL, &mr[0], &id[0]) == 0);
    CHECK(post_op(ep, conn, P2P_OP_SEND, small, 64 * MiB, NULL, &mr[1], &id[1]) == 0);
    CHECK(wait_bytes_received(ep, conn) == 0);
    CHECK_EQ(eph_put_u64(fd, STEP_DOWN), 0);
    CHECK_EQ(oob_recv(fd, &down, sizeof down), 0);
    int done = 1;
    CHECK_EQ(p2p_poll(ep, id[0], &done), P2P_OK);
    CHECK_EQ(done, 0);  /* really mid-transfer */
  } else {
    CHECK_EQ(eph_dial(ep, fd, &conn), 0);
    CHECK(post_op(ep, conn, P2P_OP_SEND, big, BIG, NULL, &mr[0], &id[0]) == 0);
    CHECK_EQ(eph_get_u64(fd, &step), 0);
    CHECK_EQ(step, STEP_DOWN);
    CHECK_EQ(eph_ip((char *[]){"link", "set", "dev", (char *)th->ifname[side],
                               "down", NULL}), 0);
    down = eph_now_ms();
    CHECK_EQ(oob_send(fd, &down, sizeof down), 0);
  }
  CHECK(expect_peer_lost(ep, id[0], down, "1 GiB transfer over a dead link") == 0);
  if (side == 0)
    CHECK(expect_peer_lost(ep, id[1], down, "unmatched send over a dead link") == 0);
  CHECK_EQ(eph_sync(fd), 0);  /* both have seen the failure */
  if (side == 1)
    CHECK_EQ(eph_ip((char *[]){"link", "set", "dev", (char *)th->ifname[side],
                               "up", NULL}), 0);
  CHECK_EQ(eph_sync(fd), 0);
  uint64_t fresh;
  if (side == 0) {
    CHECK_EQ(eph_serve(ep, fd, &fresh, NULL, 0, NULL), 0);
    CHECK(small_recv(ep, fresh, 21) == 0);
  } else {
    CHECK_EQ(eph_dial(ep, fd, &fresh), 0);
    CHECK(small_send(ep, fresh, 21) == 0);
  }
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  free(big);
  free(small);
  return eph_leak_check();
}

static int test_fault_link_down_mid_transfer(void) {
  if (!hosts.netns) {
    printf("  (loopback mode: no link of its own to set down; skipped)\n");
    return 0;
  }
  CHECK_EQ(eph_run(&hosts, link_side, link_side, NULL, 120), 0);
  return 0;
}

/* ---- destroy with ops in flight ---- */

/* A thread blocked in p2p_recv while the endpoint is destroyed. */
typedef struct blocked_recv {
  p2p_endpoint *ep;
  uint64_t conn, mr;
  uint8_t buf[4096];
  int rc;
} blocked_recv;

static void *blocked_recv_main(void *arg) {
  blocked_recv *b = arg;
  size_t got = 0;
  b->rc = p2p_recv(b->ep, b->conn, b->mr, b->buf, sizeof b->buf, &got);
  return NULL;
}

/* Side 0 has a 1 GiB receive under way, a send nobody receives, a write
 * and a read (on two regions side 1 advertised), and a half-open control
 * connection from side 1; destroy returns at once. Side 1's ops then
 * fail promptly (closed connection, not its 10 s default liveness
 * timeout). */
static int destroy_side0(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  p2p_options o;
  eph_options(&o);
  p2p_endpoint *ep;
  uint64_t conn, mr[4], id[4], step;
  uint8_t desc[2][P2P_DESC_SIZE], *rbuf = malloc(BIG), *bufs[3];
  CHECK(rbuf);
  for (int k = 0; k < 3; k++) CHECK((bufs[k] = malloc(16 * MiB)) != NULL);
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  CHECK_EQ(eph_serve(ep, fd, &conn, NULL, 0, NULL), 0);
  CHECK_EQ(oob_recv(fd, desc, sizeof desc), 0);
  CHECK(post_op(ep, conn, P2P_OP_RECV, rbuf, BIG, NULL, &mr[0], &id[0]) == 0);
  CHECK(post_op(ep, conn, P2P_OP_SEND, bufs[0], 16 * MiB, NULL, &mr[1], &id[1]) == 0);
  CHECK(post_op(ep, conn, P2P_OP_WRITE, bufs[1], 16 * MiB, desc[0], &mr[2], &id[2]) == 0);
  CHECK(post_op(ep, conn, P2P_OP_READ, bufs[2], 16 * MiB, desc[1], &mr[3], &id[3]) == 0);
  CHECK(wait_bytes_received(ep, conn) == 0);
  CHECK_EQ(eph_put_u64(fd, STEP_DONE), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* side 1's silent socket is open */
  int done = 1;
  CHECK_EQ(p2p_poll(ep, id[0], &done), P2P_OK);
  CHECK_EQ(done, 0);
  blocked_recv blocked = {.ep = ep, .conn = conn, .rc = 1};
  pthread_t tid;
  CHECK_EQ(p2p_reg(ep, blocked.buf, sizeof blocked.buf, &blocked.mr), P2P_OK);
  CHECK_EQ(pthread_create(&tid, NULL, blocked_recv_main, &blocked), 0);
  usleep(100 * 1000);  /* inside p2p_recv, driving the connection */
  double t0 = eph_now_ms();
  p2p_endpoint_destroy(ep);
  double took = eph_now_ms() - t0;
  pthread_join(tid, NULL);
  double limit = 1000 * EPH_SLOWDOWN + drain_ms();
  if (took > limit) fprintf(stderr, "  destroy took %.0f ms\n", took);
  CHECK(took <= limit);
  CHECK_EQ(blocked.rc, P2P_ECANCELED);
  CHECK_EQ(eph_put_u64(fd, STEP_DONE), 0);
  free(rbuf);
  for (int k = 0; k < 3; k++) free(bufs[k]);
  return eph_leak_check();
}

static int destroy_side1(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  p2p_options o;
  eph_options(&o);
  p2p_endpoint *ep;
  uint64_t conn, mr[3], id, step;
  uint8_t desc[2][P2P_DESC_SIZE], *big = malloc(BIG), *regions[2];
  char ip[64];
  int port, gpu;
  CHECK(big);
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  CHECK_EQ(eph_recv_metadata(fd, ip, sizeof ip, &port, &gpu), 0);
  CHECK_EQ(p2p_connect(ep, ip, gpu, port, &conn), P2P_OK);
  for (int k = 0; k < 2; k++) {
    CHECK((regions[k] = malloc(16 * MiB)) != NULL);
    CHECK_EQ(p2p_reg(ep, regions[k], 16 * MiB, &mr[1 + k]), P2P_OK);
    CHECK_EQ(p2p_advertise(ep, conn, mr[1 + k], regions[k], 16 * MiB, desc[k]),
             P2P_OK);
  }
  CHECK_EQ(oob_send(fd, desc, sizeof desc), 0);
  CHECK(post_op(ep, conn, P2P_OP_SEND, big, BIG, NULL, &mr[0], &id) == 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);
  /* A control connection that never says anything: destroy must not
   * wait for its set-up to time out. */
  int silent = eph_tcp_connect(ip, port);
  CHECK(silent >= 0);
  usleep(100 * 1000);  /* accepted and in its handshake */
  CHECK_EQ(eph_put_u64(fd, STEP_DONE), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* destroyed */
  double t0 = eph_now_ms();
  int rc = p2p_wait(ep, id, 20000 * EPH_SLOWDOWN, NULL);
  double took = eph_now_ms() - t0;
  if (rc != P2P_EPEER || took > 5000 * EPH_SLOWDOWN)
    fprintf(stderr, "  send to the destroyed endpoint: %s after %.0f ms: %s\n",
            p2p_strerror(rc), took, p2p_last_error());
  CHECK_EQ(rc, P2P_EPEER);
  CHECK(took <= 5000 * EPH_SLOWDOWN);
  CHECK(eph_wait_closed(silent, 1000 * EPH_SLOWDOWN));  /* destroy dropped it */
  close(silent);
  for (int k = 0; k < 3; k++) CHECK_EQ(p2p_dereg(ep, mr[k]), P2P_OK);
  p2p_endpoint_destroy(ep);
  free(big);
  for (int k = 0; k < 2; k++) free(regions[k]);
  return eph_leak_check();
}

static int test_fault_destroy_with_async_ops_in_flight(void) {
  CHECK_EQ(eph_run(&hosts, destroy_side0, destroy_side1, NULL, 120), 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_fault_peer_killed_mid_transfer),
    CHECK_CASE(test_fault_link_down_mid_transfer),
    CHECK_CASE(test_fault_destroy_with_async_ops_in_flight),
};

int main(int argc, char **argv) {
  if (twohost_setup(&hosts)) return 1;
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  twohost_teardown(&hosts);
  return rc;
}
