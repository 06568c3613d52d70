/* A3-shaped hosts on one machine: two namespaces joined by 4 veth "NICs"
 * (twohost_setup_nics), GPUs 2k and 2k+1 mapped to NIC k. Host memory
 * only (an endpoint's GPU index picks its NICs; no GPU is touched).
 *
 * - one endpoint's data goes over the NICs of its GPU and no others
 *   (per-interface byte counters of the sending side's namespace);
 * - eight endpoints per host, one per GPU index, all moving data both
 *   ways at once, byte-exact;
 * - one NIC going down fails only the connections that use it, with an
 *   error naming the interface; the others complete byte-exact.
 *
 * Skips (77) where namespaces cannot be made: loopback has one "NIC". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "ep_harness.h"
#include "twohost.h"

#define NICS 4
#define SKIP 77
#define STRIPE_SIZE ((size_t)64 << 20)  /* one endpoint, one transfer */
#define EACH_SIZE ((size_t)4 << 20)     /* per endpoint and direction */
#define DOWN_NIC 3                      /* GPUs 6 and 7 use it */
#define SEED_OF(side, gpu) (0xA3000ull + (uint64_t)(side) * 100 + (uint64_t)(gpu))

static twohost hosts;  /* made once in main for every case */

/* ---- endpoints of one side ---- */

typedef struct side_eps {
  int n;
  int gpu[TWOHOST_GPUS];
  p2p_endpoint *ep[TWOHOST_GPUS];
  uint64_t conn[TWOHOST_GPUS];
} side_eps;

/* Endpoints for GPU indexes 0..n-1 (or the single `gpu` when n == 1),
 * side 1 connecting each to side 0's endpoint of the same GPU index. */
static int eps_open(side_eps *s, int n, int first_gpu, int comms_per_lane,
                    int side, int fd) {
  memset(s, 0, sizeof *s);
  s->n = n;
  for (int i = 0; i < n; i++) {
    p2p_options o;
    eph_options(&o);
    o.gpu_index = s->gpu[i] = first_gpu + i;
    o.no_local = 1; /* both sides share /tmp: no same-host listeners */
    o.comms_per_lane = comms_per_lane;
    CHECK_EQ(eph_create(&o, &s->ep[i]), P2P_OK);
  }
  for (int i = 0; i < n; i++) {
    if (side == 0) {
      int gpu = -1;
      CHECK_EQ(eph_serve(s->ep[i], fd, &s->conn[i], NULL, 0, &gpu), 0);
      CHECK_EQ(gpu, s->gpu[i]);
    } else {
      CHECK_EQ(eph_dial(s->ep[i], fd, &s->conn[i]), 0);
    }
  }
  return 0;
}

static void eps_close(side_eps *s) {
  for (int i = 0; i < s->n; i++) p2p_endpoint_destroy(s->ep[i]);
}

/* tx bytes of each NIC of this side (the calling thread's namespace). */
static int nic_tx(int side, unsigned long long tx[NICS]) {
  for (int k = 0; k < NICS; k++) {
    unsigned long long rx;
    CHECK_EQ(twohost_if_bytes(hosts.nic[k][side], &rx, &tx[k]), 0);
  }
  return 0;
}

/* ---- one endpoint: its GPU's NICs carry its data, no others do ---- */

typedef struct stripe_case {
  int gpu;
  int use[NICS];  /* 1: the endpoint's NICs */
  const char *map[2]; /* TCPX_P2P_GPU_NICS per side; NULL: the A3 map */
} stripe_case;

/* Side 1 sends STRIPE_SIZE bytes to side 0 and counts its NICs' tx bytes
 * around the send: each NIC of the GPU carries at least 0.4 of its even
 * share, every other NIC less than 1/16 of the data (control messages,
 * ACKs, neighbour discovery). */
static int stripe_side(const twohost *th, int side, int fd, void *arg) {
  (void)th;
  const stripe_case *c = arg;
  if (c->map[side]) setenv("TCPX_P2P_GPU_NICS", c->map[side], 1);
  side_eps s;
  uint64_t mr;
  uint8_t *buf = gbuf_new(STRIPE_SIZE);
  CHECK(buf);
  CHECK_EQ(eps_open(&s, 1, c->gpu, 2, side, fd), 0);
  CHECK_EQ(p2p_reg(s.ep[0], buf, STRIPE_SIZE, &mr), P2P_OK);
  if (side == 0) {
    size_t got = 0;
    CHECK_EQ(p2p_recv(s.ep[0], s.conn[0], mr, buf, STRIPE_SIZE, &got), P2P_OK);
    CHECK_EQ(got, STRIPE_SIZE);
    CHECK(pat_check(buf, STRIPE_SIZE, SEED_OF(1, c->gpu), "striped recv"));
  } else {
    unsigned long long before[NICS], after[NICS];
    int nuse = 0;
    pat_fill(buf, STRIPE_SIZE, SEED_OF(1, c->gpu));
    CHECK_EQ(nic_tx(side, before), 0);
    CHECK_EQ(p2p_send(s.ep[0], s.conn[0], mr, buf, STRIPE_SIZE), P2P_OK);
    CHECK_EQ(nic_tx(side, after), 0);
    for (int k = 0; k < NICS; k++) nuse += c->use[k];
    for (int k = 0; k < NICS; k++) {
      unsigned long long sent = after[k] - before[k];
      fprintf(stderr, "  GPU %d: %s sent %llu bytes (%s)\n", c->gpu,
              hosts.nic[k][side], sent, c->use[k] ? "its NIC" : "not its NIC");
      if (c->use[k]) CHECK(sent >= STRIPE_SIZE / (size_t)nuse * 4 / 10);
      else CHECK(sent < STRIPE_SIZE / 16);
    }
  }
  CHECK_EQ(eph_sync(fd), 0);
  eps_close(&s);
  gbuf_free(buf, STRIPE_SIZE);
  return eph_leak_check();
}

static int test_a3_gpu_sends_over_its_own_nic_only(void) {
  stripe_case c = {.gpu = 5, .use = {0, 0, 1, 0}}; /* GPU 5 -> NIC 2 */
  CHECK_EQ(twohost_gpu_nic(&hosts, 5), 2);
  return eph_run(&hosts, stripe_side, stripe_side, &c, 120);
}

static int test_endpoint_stripes_over_two_nics_of_its_gpu(void) {
  char map[2][64];
  for (int side = 0; side < 2; side++)
    snprintf(map[side], sizeof map[side], "0:%s,%s;1:%s", hosts.nic[1][side],
             hosts.nic[3][side], hosts.nic[0][side]);
  stripe_case c = {.gpu = 0, .use = {0, 1, 0, 1}, .map = {map[0], map[1]}};
  return eph_run(&hosts, stripe_side, stripe_side, &c, 120);
}

/* ---- eight endpoints per host at once ---- */

typedef struct xfers {
  uint8_t *src[TWOHOST_GPUS], *dst[TWOHOST_GPUS];
  uint64_t smr[TWOHOST_GPUS], dmr[TWOHOST_GPUS];
  uint64_t sid[TWOHOST_GPUS], rid[TWOHOST_GPUS];
} xfers;

/* Post, on every endpoint, a receive into a poisoned buffer and (when
 * `send`) a send of this side's pattern for that GPU. */
static int post_all(side_eps *s, xfers *x, int side, int send) {
  for (int i = 0; i < s->n; i++) {
    x->src[i] = malloc(EACH_SIZE);
    x->dst[i] = gbuf_new(EACH_SIZE);
    CHECK(x->src[i] && x->dst[i]);
    pat_fill(x->src[i], EACH_SIZE, SEED_OF(side, s->gpu[i]));
    CHECK_EQ(p2p_reg(s->ep[i], x->src[i], EACH_SIZE, &x->smr[i]), P2P_OK);
    CHECK_EQ(p2p_reg(s->ep[i], x->dst[i], EACH_SIZE, &x->dmr[i]), P2P_OK);
    p2p_iov r = {x->dmr[i], x->dst[i], EACH_SIZE, NULL};
    p2p_iov w = {x->smr[i], x->src[i], EACH_SIZE, NULL};
    CHECK_EQ(p2p_post(s->ep[i], s->conn[i], P2P_OP_RECV, &r, 1, &x->rid[i]), P2P_OK);
    if (send)
      CHECK_EQ(p2p_post(s->ep[i], s->conn[i], P2P_OP_SEND, &w, 1, &x->sid[i]),
               P2P_OK);
  }
  return 0;
}

/* The received pattern of the other side for endpoint i, guard intact. */
static int recv_ok(const side_eps *s, const xfers *x, int i, int side, size_t got) {
  char what[64];
  snprintf(what, sizeof what, "GPU %d recv", s->gpu[i]);
  CHECK_EQ(got, EACH_SIZE);
  CHECK(pat_check(x->dst[i], EACH_SIZE, SEED_OF(1 - side, s->gpu[i]), what));
  CHECK(gbuf_guard_ok(x->dst[i], EACH_SIZE, what));
  return 0;
}

static void free_all(side_eps *s, xfers *x) {
  for (int i = 0; i < s->n; i++) {
    free(x->src[i]);
    gbuf_free(x->dst[i], EACH_SIZE);
  }
}

static int eight_side(const twohost *th, int side, int fd, void *arg) {
  (void)th;
  (void)arg;
  side_eps s;
  xfers x;
  unsigned long long before[NICS], after[NICS];
  memset(&x, 0, sizeof x);
  CHECK_EQ(eps_open(&s, TWOHOST_GPUS, 0, 1, side, fd), 0);
  CHECK_EQ(eph_sync(fd), 0);
  CHECK_EQ(nic_tx(side, before), 0);
  CHECK_EQ(post_all(&s, &x, side, 1), 0);  /* 16 transfers per side at once */
  for (int i = 0; i < s.n; i++) {
    size_t got = 0;
    CHECK_EQ(p2p_wait(s.ep[i], x.sid[i], 0, NULL), P2P_OK);
    CHECK_EQ(p2p_wait(s.ep[i], x.rid[i], 0, &got), P2P_OK);
    CHECK_EQ(recv_ok(&s, &x, i, side, got), 0);
  }
  CHECK_EQ(nic_tx(side, after), 0);
  for (int k = 0; k < NICS; k++) /* two GPUs' sends on each NIC */
    CHECK(after[k] - before[k] >= 2 * EACH_SIZE);
  CHECK_EQ(eph_sync(fd), 0);
  eps_close(&s);
  free_all(&s, &x);
  return eph_leak_check();
}

static int test_eight_endpoints_per_host_at_once(void) {
  return eph_run(&hosts, eight_side, eight_side, NULL, 240);
}

/* ---- a NIC going down ---- */

/* What each side saw on the endpoints of the NIC that went down. */
typedef struct down_report {
  int failed[2][TWOHOST_GPUS];       /* the transfer failed */
  int named_nic[2][TWOHOST_GPUS];    /* its error names the side's NIC */
} down_report;

/* Side 1 takes NIC DOWN_NIC down once every connection is up, then every
 * endpoint of side 1 sends to side 0. The endpoints of the other NICs
 * complete byte-exact; those of the downed NIC fail on both sides (the
 * checks on `failed` and `named_nic` are the parent's). */
static int nic_down_side(const twohost *th, int side, int fd, void *arg) {
  down_report *rep = arg;
  side_eps s;
  xfers x;
  memset(&x, 0, sizeof x);
  /* Dead streams found fast; a healthy stream stalled that long (a slow
   * sanitizer build on a loaded machine) would be failed too, so more
   * time where the build is slower. */
  char ms[16];
  snprintf(ms, sizeof ms, "%d", 2000 * EPH_SLOWDOWN);
  setenv("TCPX_P2P_TCP_TIMEOUT_MS", ms, 1);
  CHECK_EQ(eps_open(&s, TWOHOST_GPUS, 0, 1, side, fd), 0);
  if (side == 1)
    CHECK_EQ(eph_ip((char *[]){"link", "set", (char *)th->nic[DOWN_NIC][1],
                               "down", NULL}), 0);
  CHECK_EQ(eph_sync(fd), 0);
  CHECK_EQ(post_all(&s, &x, side, side == 1), 0);
  for (int i = 0; i < s.n; i++) {
    const char *nic = th->nic[twohost_gpu_nic(th, s.gpu[i])][side];
    size_t got = 0;
    uint64_t id = side == 1 ? x.sid[i] : x.rid[i];
    int rc = p2p_wait(s.ep[i], id, 0, &got);
    fprintf(stderr, "  side %d GPU %d (%s): %s%s%s\n", side, s.gpu[i], nic,
            p2p_strerror(rc), rc ? ": " : "", rc ? p2p_last_error() : "");
    rep->failed[side][i] = rc != P2P_OK;
    rep->named_nic[side][i] = rc != P2P_OK && strstr(p2p_last_error(), nic);
    if (rc == P2P_OK && side == 0) CHECK_EQ(recv_ok(&s, &x, i, side, got), 0);
  }
  /* Side 1's own receives were never matched: destroy fails them. */
  eps_close(&s);
  free_all(&s, &x);
  return eph_leak_check();
}

static int test_nic_down_fails_only_its_connections(void) {
  down_report *rep = mmap(NULL, sizeof *rep, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(rep != MAP_FAILED);
  memset(rep, 0, sizeof *rep);
  int rc = eph_run(&hosts, nic_down_side, nic_down_side, rep, 240);
  down_report got = *rep;
  munmap(rep, sizeof *rep);
  CHECK_EQ(rc, 0);
  for (int g = 0; g < TWOHOST_GPUS; g++) {
    int down = twohost_gpu_nic(&hosts, g) == DOWN_NIC;
    CHECK_EQ(got.failed[0][g], down);
    CHECK_EQ(got.failed[1][g], down);
    /* The side whose transport found the dead streams names its NIC; the
     * other may only learn that the peer closed the connection. */
    if (down) CHECK(got.named_nic[0][g] || got.named_nic[1][g]);
  }
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_a3_gpu_sends_over_its_own_nic_only),
    CHECK_CASE(test_endpoint_stripes_over_two_nics_of_its_gpu),
    CHECK_CASE(test_eight_endpoints_per_host_at_once),
    CHECK_CASE(test_nic_down_fails_only_its_connections),
};

int main(int argc, char **argv) {
  if (twohost_setup_nics(&hosts, NICS)) return 1;
  if (!hosts.netns) {
    printf("skip: A3-shaped hosts need network namespaces (4 veth NICs)\n");
    twohost_teardown(&hosts);
    return SKIP;
  }
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  twohost_teardown(&hosts);
  return rc;
}
