/* Concurrency on one endpoint, between two namespaces:
 * - 16 application threads share one connection: 8 send self-describing
 *   messages to 8 receiving threads on the peer, 8 write into and read
 *   back from their own advertised regions (blocking and posted ops
 *   mixed); every byte is checked;
 * - 64 connections to one endpoint (4 progress threads) from 8 threads
 *   of one process; each carries a message and its answer.
 * Labelled `threaded`: the TSan build runs it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ep_harness.h"
#include "twohost.h"

static twohost hosts;  /* made once in main for every case */

#define KiB ((size_t)1 << 10)
#define NSENDERS 8
#define NWRITERS 8
#define NRECEIVERS 8
#define ITERS 12
#define MAX_MSG (512 * KiB + 8)
#define REGION MAX_MSG

/* Size of iteration i of thread t: from 8 bytes to MAX_MSG. */
static size_t msg_size(int t, int i) {
  static const size_t shapes[] = {8, 9, 4095, 4096, 65536 + 3, 300 * KiB,
                                  MAX_MSG, 1000};
  return shapes[(t + i) % 8];
}

static uint64_t msg_tag(int t, int i) { return (uint64_t)t << 32 | (uint32_t)i; }

/* ---- 16 threads on one connection ---- */

typedef struct shared {
  p2p_endpoint *ep;
  uint64_t conn;
  uint8_t descs[NWRITERS][P2P_DESC_SIZE];
  atomic_int claimed;               /* receivers: messages taken */
  pthread_mutex_t lock;
  uint8_t seen[NSENDERS][ITERS];    /* receivers: each message once */
} shared;

typedef struct worker {
  shared *sh;
  int t;
  int rc;
} worker;

/* Sender t: ITERS messages, each starting with its tag, then the
 * pattern of that tag; odd iterations posted and polled. */
static int sender(shared *sh, int t) {
  uint8_t *buf = malloc(MAX_MSG);
  uint64_t mr, id;
  CHECK(buf);
  CHECK_EQ(p2p_reg(sh->ep, buf, MAX_MSG, &mr), P2P_OK);
  for (int i = 0; i < ITERS; i++) {
    size_t n = msg_size(t, i);
    uint64_t tag = msg_tag(t, i);
    memcpy(buf, &tag, 8);
    pat_fill(buf + 8, n - 8, tag);
    if (i % 2 == 0) {
      CHECK_EQ(p2p_send(sh->ep, sh->conn, mr, buf, n), P2P_OK);
      continue;
    }
    p2p_iov v = {mr, buf, n, NULL};
    int done = 0;
    CHECK_EQ(p2p_post(sh->ep, sh->conn, P2P_OP_SEND, &v, 1, &id), P2P_OK);
    while (!done) CHECK_EQ(p2p_poll(sh->ep, id, &done), P2P_OK);
  }
  CHECK_EQ(p2p_dereg(sh->ep, mr), P2P_OK);
  free(buf);
  return 0;
}

/* Writer t: write iteration i's pattern to the start of its own remote
 * region, read it back, compare; even iterations blocking, odd posted. */
static int writer(shared *sh, int t) {
  uint8_t *src = malloc(REGION), *dst = gbuf_new(REGION);
  uint64_t smr, dmr, id;
  CHECK(src && dst);
  CHECK_EQ(p2p_reg(sh->ep, src, REGION, &smr), P2P_OK);
  CHECK_EQ(p2p_reg(sh->ep, dst, REGION, &dmr), P2P_OK);
  const uint8_t *desc = sh->descs[t];
  for (int i = 0; i < ITERS; i++) {
    size_t n = msg_size(t, i);
    pat_fill(src, n, msg_tag(NSENDERS + t, i));
    memset(dst, EPH_POISON, n);
    if (i % 2 == 0) {
      CHECK_EQ(p2p_write(sh->ep, sh->conn, smr, src, n, desc), P2P_OK);
      CHECK_EQ(p2p_read(sh->ep, sh->conn, dmr, dst, n, desc), P2P_OK);
    } else {
      p2p_iov w = {smr, src, n, desc}, r = {dmr, dst, n, desc};
      CHECK_EQ(p2p_post(sh->ep, sh->conn, P2P_OP_WRITE, &w, 1, &id), P2P_OK);
      CHECK_EQ(p2p_wait(sh->ep, id, 60000, NULL), P2P_OK);
      CHECK_EQ(p2p_post(sh->ep, sh->conn, P2P_OP_READ, &r, 1, &id), P2P_OK);
      CHECK_EQ(p2p_wait(sh->ep, id, 60000, NULL), P2P_OK);
    }
    CHECK(pat_check(dst, n, msg_tag(NSENDERS + t, i), "read back"));
    CHECK(gbuf_guard_ok(dst, REGION, "guard after the read buffer"));
  }
  CHECK_EQ(p2p_dereg(sh->ep, smr), P2P_OK);
  CHECK_EQ(p2p_dereg(sh->ep, dmr), P2P_OK);
  free(src);
  gbuf_free(dst, REGION);
  return 0;
}

/* Receiver: take messages until all NSENDERS * ITERS are claimed; each
 * must be whole, byte-exact, and new. */
static int receiver(shared *sh, int t) {
  (void)t;
  uint8_t *buf = gbuf_new(MAX_MSG);
  uint64_t mr;
  CHECK(buf);
  CHECK_EQ(p2p_reg(sh->ep, buf, MAX_MSG, &mr), P2P_OK);
  while (atomic_fetch_add(&sh->claimed, 1) < NSENDERS * ITERS) {
    size_t got = 0;
    uint64_t tag;
    CHECK_EQ(p2p_recv(sh->ep, sh->conn, mr, buf, MAX_MSG, &got), P2P_OK);
    CHECK(got >= 8);
    memcpy(&tag, buf, 8);
    int s = (int)(tag >> 32), i = (int)(uint32_t)tag;
    CHECK(s >= 0 && s < NSENDERS && i >= 0 && i < ITERS);
    CHECK_EQ(got, msg_size(s, i));
    CHECK(pat_check(buf + 8, got - 8, tag, "received message"));
    CHECK(gbuf_guard_ok(buf, MAX_MSG, "guard after the receive buffer"));
    pthread_mutex_lock(&sh->lock);
    int dup = sh->seen[s][i]++;
    pthread_mutex_unlock(&sh->lock);
    CHECK_EQ(dup, 0);
  }
  CHECK_EQ(p2p_dereg(sh->ep, mr), P2P_OK);
  gbuf_free(buf, MAX_MSG);
  return 0;
}

static void *side1_thread(void *arg) {
  worker *w = arg;
  w->rc = w->t < NSENDERS ? sender(w->sh, w->t) : writer(w->sh, w->t - NSENDERS);
  return NULL;
}

static void *side0_thread(void *arg) {
  worker *w = arg;
  w->rc = receiver(w->sh, w->t);
  return NULL;
}

/* Start n threads of fn and join them; 0 when every one succeeded. */
static int run_threads(shared *sh, int n, void *(*fn)(void *)) {
  pthread_t tid[NSENDERS + NWRITERS];
  worker w[NSENDERS + NWRITERS];
  for (int t = 0; t < n; t++) {
    w[t] = (worker){sh, t, -1};
    CHECK_EQ(pthread_create(&tid[t], NULL, fn, &w[t]), 0);
  }
  int failed = 0;
  for (int t = 0; t < n; t++) {
    pthread_join(tid[t], NULL);
    if (w[t].rc) {
      fprintf(stderr, "  thread %d failed\n", t);
      failed = 1;
    }
  }
  return failed;
}

/* Side 0: the writers' regions, 8 receiving threads, then the last
 * pattern of every writer must be in its region. */
static int threads_side0(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                         void *arg) {
  (void)side, (void)arg;
  static shared sh;
  uint8_t *regions[NWRITERS];
  uint64_t mrs[NWRITERS], step;
  sh.ep = ep;
  sh.conn = conn;
  pthread_mutex_init(&sh.lock, NULL);
  for (int t = 0; t < NWRITERS; t++) {
    CHECK((regions[t] = gbuf_new(REGION)) != NULL);
    CHECK_EQ(p2p_reg(ep, regions[t], REGION, &mrs[t]), P2P_OK);
    CHECK_EQ(p2p_advertise(ep, conn, mrs[t], regions[t], REGION, sh.descs[t]),
             P2P_OK);
  }
  CHECK_EQ(oob_send(fd, sh.descs, sizeof sh.descs), 0);
  CHECK_EQ(run_threads(&sh, NRECEIVERS, side0_thread), 0);
  for (int s = 0; s < NSENDERS; s++)
    for (int i = 0; i < ITERS; i++) CHECK_EQ(sh.seen[s][i], 1);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* the writers are done */
  for (int t = 0; t < NWRITERS; t++) {
    /* dereg first: it orders this thread after the progress thread that
     * served the writes (nothing else does inside this process, and
     * ThreadSanitizer does not see the order through the peer). */
    CHECK_EQ(p2p_dereg(ep, mrs[t]), P2P_OK);
    size_t n = msg_size(t, ITERS - 1);
    CHECK(pat_check(regions[t], n, msg_tag(NSENDERS + t, ITERS - 1),
                    "writer's region"));
    CHECK(gbuf_guard_ok(regions[t], REGION, "guard after a writer's region"));
    gbuf_free(regions[t], REGION);
  }
  pthread_mutex_destroy(&sh.lock);
  return 0;
}

static int threads_side1(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                         void *arg) {
  (void)side, (void)arg;
  static shared sh;
  sh.ep = ep;
  sh.conn = conn;
  CHECK_EQ(oob_recv(fd, sh.descs, sizeof sh.descs), 0);
  CHECK_EQ(run_threads(&sh, NSENDERS + NWRITERS, side1_thread), 0);
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  return 0;
}

static int test_stress_16_threads_one_connection(void) {
  CHECK_EQ(eph_pair_run(&hosts, threads_side0, threads_side1, NULL, 300), 0);
  return 0;
}

/* ---- 64 connections to one endpoint ---- */

#define NCONNS 64
#define NDIALERS 8

typedef struct dialer {
  p2p_endpoint *ep;
  char ip[64];
  int port, gpu, first;
  uint64_t conns[NCONNS / NDIALERS];
  int rc;
} dialer;

/* Message k on connection k: its index, then the pattern of k. */
static size_t conn_msg_size(int k) { return 16 + 97 * (size_t)k; }

static int dial_some(dialer *d) {
  for (int j = 0; j < NCONNS / NDIALERS; j++)
    CHECK_EQ(p2p_connect(d->ep, d->ip, d->gpu, d->port, &d->conns[j]), P2P_OK);
  return 0;
}

static void *dialer_main(void *arg) {
  dialer *d = arg;
  d->rc = dial_some(d);
  return NULL;
}

/* Post the message and the receive of its answer (pattern k + 1000) on
 * each of a dialer's connections, then wait for all: nothing depends on
 * the order in which the peer serves the connections. */
static int talk_some(dialer *d) {
  enum { PER = NCONNS / NDIALERS, CAP = 16 + 97 * NCONNS };
  uint8_t (*out)[CAP] = malloc(PER * sizeof *out), (*in)[CAP] = malloc(PER * sizeof *in);
  uint64_t omr[PER], imr[PER], sid[PER], rid[PER];
  CHECK(out && in);
  for (int j = 0; j < PER; j++) {
    uint64_t k = (uint64_t)(d->first + j);
    size_t n = conn_msg_size((int)k);
    memcpy(out[j], &k, 8);
    pat_fill(out[j] + 8, n - 8, k);
    memset(in[j], EPH_POISON, CAP);
    CHECK_EQ(p2p_reg(d->ep, out[j], n, &omr[j]), P2P_OK);
    CHECK_EQ(p2p_reg(d->ep, in[j], CAP, &imr[j]), P2P_OK);
    p2p_iov v = {omr[j], out[j], n, NULL}, r = {imr[j], in[j], CAP, NULL};
    CHECK_EQ(p2p_post(d->ep, d->conns[j], P2P_OP_SEND, &v, 1, &sid[j]), P2P_OK);
    CHECK_EQ(p2p_post(d->ep, d->conns[j], P2P_OP_RECV, &r, 1, &rid[j]), P2P_OK);
  }
  for (int j = 0; j < PER; j++) {
    int k = d->first + j;
    size_t got = 0;
    CHECK_EQ(p2p_wait(d->ep, sid[j], 60000, NULL), P2P_OK);
    CHECK_EQ(p2p_wait(d->ep, rid[j], 60000, &got), P2P_OK);
    CHECK_EQ(got, conn_msg_size(k));
    CHECK(pat_check(in[j], got, (uint64_t)k + 1000, "answer"));
    CHECK(all_bytes(in[j] + got, CAP - got, EPH_POISON, "after the answer"));
    CHECK_EQ(p2p_dereg(d->ep, omr[j]), P2P_OK);
    CHECK_EQ(p2p_dereg(d->ep, imr[j]), P2P_OK);
  }
  free(out);
  free(in);
  return 0;
}

static void *talker_main(void *arg) {
  dialer *d = arg;
  d->rc = talk_some(d);
  return NULL;
}

static int run_dialers(dialer *d, void *(*fn)(void *)) {
  pthread_t tid[NDIALERS];
  for (int t = 0; t < NDIALERS; t++)
    CHECK_EQ(pthread_create(&tid[t], NULL, fn, &d[t]), 0);
  int failed = 0;
  for (int t = 0; t < NDIALERS; t++) {
    pthread_join(tid[t], NULL);
    failed |= d[t].rc != 0;
  }
  return failed;
}

static int many_client(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  static dialer d[NDIALERS];
  p2p_options o;
  eph_options(&o);
  o.gpu_index = EPH_GPU1;
  p2p_endpoint *ep;
  char ip[64];
  int port, gpu;
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  CHECK_EQ(eph_recv_metadata(fd, ip, sizeof ip, &port, &gpu), 0);
  for (int t = 0; t < NDIALERS; t++) {
    d[t] = (dialer){.ep = ep, .port = port, .gpu = gpu, .first = -1};
    snprintf(d[t].ip, sizeof d[t].ip, "%s", ip);
  }
  CHECK_EQ(run_dialers(d, dialer_main), 0);
  for (int t = 0; t < NDIALERS; t++) d[t].first = t * (NCONNS / NDIALERS);
  CHECK_EQ(run_dialers(d, talker_main), 0);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

/* Side 0: accept all 64, post a receive on each, then check each message
 * and answer it with pattern k + 1000 of the same size. */
static int many_server(const twohost *th, int side, int fd, void *arg) {
  (void)side, (void)arg;
  enum { CAP = 16 + 97 * NCONNS };
  p2p_options o;
  eph_options(&o);
  o.gpu_index = EPH_GPU0;
  o.num_threads = 4;
  p2p_endpoint *ep;
  uint64_t conns[NCONNS], rid[NCONNS], sid[NCONNS], mr;
  uint8_t seen[NCONNS] = {0}, (*buf)[CAP] = malloc(NCONNS * sizeof *buf);
  CHECK(buf);
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  CHECK_EQ(eph_send_metadata(ep, fd), 0);
  for (int i = 0; i < NCONNS; i++) {
    char ip[64];
    int gpu;
    CHECK_EQ(p2p_accept(ep, ip, sizeof ip, &gpu, &conns[i]), P2P_OK);
    CHECK(strcmp(ip, th->addr[1]) == 0);
    CHECK_EQ(gpu, EPH_GPU1);
    for (int j = 0; j < i; j++) CHECK(conns[j] != conns[i]);
  }
  CHECK_EQ(p2p_reg(ep, buf, NCONNS * sizeof *buf, &mr), P2P_OK);
  for (int i = 0; i < NCONNS; i++) {
    p2p_iov v = {mr, buf[i], CAP, NULL};
    CHECK_EQ(p2p_post(ep, conns[i], P2P_OP_RECV, &v, 1, &rid[i]), P2P_OK);
  }
  for (int i = 0; i < NCONNS; i++) {
    size_t got = 0;
    uint64_t k;
    CHECK_EQ(p2p_wait(ep, rid[i], 60000, &got), P2P_OK);
    memcpy(&k, buf[i], 8);
    CHECK(k < NCONNS);
    CHECK_EQ(got, conn_msg_size((int)k));
    CHECK(pat_check(buf[i] + 8, got - 8, k, "message on one of 64 connections"));
    CHECK_EQ(seen[k]++, 0);
    pat_fill(buf[i], got, k + 1000);
    p2p_iov v = {mr, buf[i], got, NULL};
    CHECK_EQ(p2p_post(ep, conns[i], P2P_OP_SEND, &v, 1, &sid[i]), P2P_OK);
  }
  for (int i = 0; i < NCONNS; i++)
    CHECK_EQ(p2p_wait(ep, sid[i], 60000, NULL), P2P_OK);
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  free(buf);
  return eph_leak_check();
}

static int test_stress_64_connections_to_one_endpoint(void) {
  CHECK_EQ(eph_run(&hosts, many_server, many_client, NULL, 300), 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_stress_16_threads_one_connection),
    CHECK_CASE(test_stress_64_connections_to_one_endpoint),
};

int main(int argc, char **argv) {
  if (twohost_setup(&hosts)) return 1;
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  twohost_teardown(&hosts);
  return rc;
}
