/* The endpoint API between two endpoints in two network namespaces:
 * metadata, connect/accept, registration, two-sided transfers (blocking,
 * vectored, posted), sides with different settings, close; byte-exact at
 * sizes from 0 B to 1 GiB, with poisoned destinations and guard bytes
 * after them. One-sided transfers: test_endpoint_onesided.c.
 *
 * Case names start with a group so ctest can run groups apart:
 * "ops_" (every operation, sizes up to 256 MiB) and "big_" (1 GiB). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ep_harness.h"
#include "twohost.h"

static twohost hosts;  /* made once in main for every case */

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

/* Sizes of the two-sided size sweep (test_endpoint_onesided.c has its own). */
static const size_t sweep[] = {0, 1, 4095, 4096, MiB + 7, 64 * MiB, 256 * MiB};
#define NSWEEP (sizeof sweep / sizeof sweep[0])

/* ---- metadata, connect/accept, registration ---- */

static int metadata_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                         void *arg) {
  (void)conn, (void)fd, (void)arg;
  uint8_t md[P2P_METADATA_MAX];
  size_t len = sizeof md;
  char ip[64], local[64];
  int port = 0, gpu = -1;
  CHECK_EQ(p2p_get_metadata(ep, md, &len), P2P_OK);
  CHECK_EQ(len, 10);  /* IPv4 */
  CHECK_EQ(p2p_parse_metadata(md, len, ip, sizeof ip, &port, &gpu), P2P_OK);
  CHECK_EQ(p2p_local_ip(ep, local, sizeof local), P2P_OK);
  CHECK(strcmp(ip, local) == 0);
  CHECK(strcmp(ip, hosts.addr[side]) == 0);
  CHECK(port > 0 && port < 65536);
  CHECK_EQ(gpu, side == 0 ? EPH_GPU0 : EPH_GPU1);
  size_t small = 9;
  CHECK_EQ(p2p_get_metadata(ep, md, &small), P2P_EINVAL);
  CHECK_EQ(p2p_parse_metadata(md, 9, ip, sizeof ip, &port, &gpu), P2P_EINVAL);
  CHECK_EQ(p2p_parse_metadata(md, 10, ip, 4, &port, &gpu), P2P_EINVAL);
  return 0;
}

/* Static parsing of both layouts; no endpoint needed. */
static int test_ops_parse_metadata_layouts(void) {
  uint8_t v4[10] = {10, 211, 0, 2, 0x1f, 0x90, 7, 0, 0, 0};
  uint8_t v6[22] = {0};
  char ip[64];
  int port, gpu;
  CHECK_EQ(p2p_parse_metadata(v4, 10, ip, sizeof ip, &port, &gpu), P2P_OK);
  CHECK(strcmp(ip, "10.211.0.2") == 0);
  CHECK_EQ(port, 8080);
  CHECK_EQ(gpu, 7);
  v6[15] = 1;  /* ::1 */
  v6[16] = 0xff, v6[17] = 0xff;
  int32_t g = -2;
  memcpy(v6 + 18, &g, 4);
  CHECK_EQ(p2p_parse_metadata(v6, 22, ip, sizeof ip, &port, &gpu), P2P_OK);
  CHECK(strcmp(ip, "::1") == 0);
  CHECK_EQ(port, 65535);
  CHECK_EQ(gpu, -2);
  CHECK_EQ(p2p_parse_metadata(v6, 16, ip, sizeof ip, &port, &gpu), P2P_EINVAL);
  return 0;
}

static int test_ops_metadata_round_trip(void) {
  CHECK_EQ(eph_pair_run(&hosts, metadata_body, metadata_body, NULL, 60), 0);
  return 0;
}

static int accept_reports_side(const twohost *th, int side, int fd, void *arg) {
  (void)arg;
  p2p_options o;
  eph_options(&o);
  o.gpu_index = EPH_GPU0;
  p2p_endpoint *ep;
  uint64_t conn = 0;
  char ip[64];
  int gpu = -1;
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  CHECK_EQ(eph_serve(ep, fd, &conn, ip, sizeof ip, &gpu), 0);
  CHECK(conn != 0);
  CHECK(strcmp(ip, th->addr[1 - side]) == 0);
  if (th->netns) CHECK(strcmp(ip, "10.211.0.2") == 0);
  CHECK_EQ(gpu, EPH_GPU1);
  p2p_conn_stats st;
  CHECK_EQ(p2p_conn_stats_get(ep, conn, &st), P2P_OK);
  CHECK_EQ(p2p_conn_stats_get(ep, conn + 1000, &st), P2P_ENOTFOUND);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int connect_reports_side(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  p2p_options o;
  eph_options(&o);
  o.gpu_index = EPH_GPU1;
  p2p_endpoint *ep;
  uint64_t conn = 0, bad;
  char ip[64];
  int port, gpu;
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  CHECK_EQ(eph_recv_metadata(fd, ip, sizeof ip, &port, &gpu), 0);
  CHECK_EQ(gpu, EPH_GPU0);
  CHECK_EQ(p2p_connect(ep, ip, gpu, port, &conn), P2P_OK);
  CHECK(conn != 0);
  /* Nothing listens on port 1: refused at once, not a hang. */
  double t0 = eph_now_ms();
  int rc = p2p_connect(ep, ip, gpu, 1, &bad);
  CHECK(rc == P2P_EPEER || rc == P2P_ETIMEDOUT);
  CHECK(eph_now_ms() - t0 < 5000);
  CHECK_EQ(p2p_connect(ep, "not-an-ip", gpu, port, &bad), P2P_EINVAL);
  CHECK_EQ(p2p_connect(ep, ip, gpu, 0, &bad), P2P_EINVAL);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int test_ops_accept_reports_peer_address_and_gpu(void) {
  CHECK_EQ(eph_run(&hosts, accept_reports_side, connect_reports_side, NULL, 60),
           0);
  return 0;
}

static int registration_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                             void *arg) {
  (void)fd, (void)side, (void)arg;
  static uint8_t bufs[4][8192];
  void *ptrs[4] = {bufs[0], bufs[1], bufs[2], bufs[3]};
  size_t sizes[4] = {8192, 1, 4096, 100};
  uint64_t ids[4] = {0}, one = 0;
  CHECK_EQ(p2p_reg(ep, bufs[0], sizeof bufs[0], &one), P2P_OK);
  CHECK(one != 0);
  CHECK_EQ(p2p_regv(ep, ptrs, sizes, 4, ids), P2P_OK);
  for (int i = 0; i < 4; i++) {
    CHECK(ids[i] != 0 && ids[i] != one);
    for (int j = 0; j < i; j++) CHECK(ids[i] != ids[j]);
  }
  /* A buffer must lie inside its region; nothing is sent for these. */
  CHECK_EQ(p2p_send(ep, conn, ids[1], bufs[1], 2), P2P_EINVAL);
  CHECK_EQ(p2p_send(ep, conn, ids[1], bufs[2], 1), P2P_EINVAL);
  CHECK_EQ(p2p_send(ep, conn, ids[3], bufs[3] + 50, 51), P2P_EINVAL);
  for (int i = 0; i < 4; i++) CHECK_EQ(p2p_dereg(ep, ids[i]), P2P_OK);
  CHECK_EQ(p2p_dereg(ep, ids[2]), P2P_ENOTFOUND);
  CHECK_EQ(p2p_send(ep, conn, ids[0], bufs[0], 16), P2P_ENOTFOUND);
  CHECK_EQ(p2p_send(ep, conn + 99, one, bufs[0], 1), P2P_ENOTFOUND);
  /* The one message the peer expects, from the region still registered. */
  pat_fill(bufs[0] + 100, 33, 77);
  CHECK_EQ(p2p_send(ep, conn, one, bufs[0] + 100, 33), P2P_OK);
  CHECK_EQ(p2p_dereg(ep, one), P2P_OK);
  CHECK_EQ(p2p_dereg(ep, one), P2P_ENOTFOUND);
  return 0;
}

static int registration_peer(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                             void *arg) {
  (void)fd, (void)side, (void)arg;
  return eph_recv_pattern(ep, conn, 33, 33, 77);
}

static int test_ops_reg_regv_dereg(void) {
  CHECK_EQ(eph_pair_run(&hosts, registration_body, registration_peer, NULL, 60),
           0);
  return 0;
}

/* ---- send / recv ---- */

/* Every sweep size, side 1 -> side 0, then side 0 -> side 1. */
static int sweep_send_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                           void *arg) {
  (void)fd, (void)arg;
  for (size_t i = 0; i < NSWEEP; i++)
    for (int sender = 1; sender >= 0; sender--) {
      uint64_t seed = 1000 * (uint64_t)(sender + 1) + i;
      if (side == sender)
        CHECK(eph_send_pattern(ep, conn, sweep[i], seed) == 0);
      else
        CHECK(eph_recv_pattern(ep, conn, sweep[i], sweep[i], seed) == 0);
    }
  return 0;
}

static int test_ops_send_recv_sizes(void) {
  CHECK_EQ(eph_pair_run(&hosts, sweep_send_body, sweep_send_body, NULL, 300), 0);
  return 0;
}

/* A receive posted larger than the message reports the real size. */
static int larger_recv_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                            void *arg) {
  (void)fd, (void)arg;
  static const size_t sizes[] = {0, 1, 4095, 3 * MiB + 5};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    if (side == 1) CHECK(eph_send_pattern(ep, conn, sizes[i], 40 + i) == 0);
    else CHECK(eph_recv_pattern(ep, conn, sizes[i], sizes[i] + 4 * MiB + 3, 40 + i) == 0);
  }
  return 0;
}

static int test_ops_recv_larger_than_send_reports_real_size(void) {
  CHECK_EQ(eph_pair_run(&hosts, larger_recv_body, larger_recv_body, NULL, 60), 0);
  return 0;
}

/* Send `size` bytes and expect P2P_ETOOBIG from the send. */
static int send_expect_toobig(p2p_endpoint *ep, uint64_t conn, size_t size) {
  uint8_t *src = malloc(size);
  uint64_t mr;
  CHECK(src);
  pat_fill(src, size, 9);
  CHECK_EQ(p2p_reg(ep, src, size, &mr), P2P_OK);
  CHECK_EQ(p2p_send(ep, conn, mr, src, size), P2P_ETOOBIG);
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  free(src);
  return 0;
}

/* Post `cap` bytes inside a poisoned buffer of 2 * cap and expect
 * P2P_ETOOBIG with not one byte written, not even the first cap. */
static int recv_expect_toobig(p2p_endpoint *ep, uint64_t conn, size_t cap) {
  uint8_t *dst = gbuf_new(2 * cap);
  uint64_t mr;
  size_t got = 12345;
  CHECK(dst);
  CHECK_EQ(p2p_reg(ep, dst, 2 * cap, &mr), P2P_OK);
  CHECK_EQ(p2p_recv(ep, conn, mr, dst, cap, &got), P2P_ETOOBIG);
  CHECK(all_bytes(dst, 2 * cap, EPH_POISON, "refused receive buffer"));
  CHECK(gbuf_guard_ok(dst, 2 * cap, "guard after the refused receive"));
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  gbuf_free(dst, 2 * cap);
  return 0;
}

/* Larger than the posted receive: one chunk, and several chunks. Then the
 * connection still carries a message that fits. */
static int toobig_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                       void *arg) {
  (void)fd, (void)arg;
  if (side == 1) {
    CHECK(send_expect_toobig(ep, conn, 4097) == 0);
    CHECK(send_expect_toobig(ep, conn, 5 * MiB + 1) == 0);
    CHECK(eph_send_pattern(ep, conn, 4096, 61) == 0);
  } else {
    CHECK(recv_expect_toobig(ep, conn, 4096) == 0);
    CHECK(recv_expect_toobig(ep, conn, 2 * MiB) == 0);
    CHECK(eph_recv_pattern(ep, conn, 4096, 4096, 61) == 0);
  }
  return 0;
}

static int test_ops_send_larger_than_recv_fails_on_both_sides(void) {
  CHECK_EQ(eph_pair_run(&hosts, toobig_body, toobig_body, NULL, 60), 0);
  return 0;
}

/* A receive whose capacity runs past its registered region: a message
 * that fits the region lands; a larger one is refused, and nothing past
 * the region is written. */
static int small_region_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                             void *arg) {
  (void)fd, (void)arg;
  if (side == 1) {
    CHECK(eph_send_pattern(ep, conn, 3000, 71) == 0);
    CHECK(eph_send_pattern(ep, conn, 4096, 72) == 0);
    CHECK(send_expect_toobig(ep, conn, 6000) == 0);
    CHECK(eph_send_pattern(ep, conn, 10, 73) == 0);
    return 0;
  }
  uint8_t *dst = gbuf_new(2 * MiB);
  uint64_t mr;
  size_t got = 0;
  CHECK(dst);
  CHECK_EQ(p2p_reg(ep, dst, 4096, &mr), P2P_OK);
  CHECK_EQ(p2p_recv(ep, conn, mr, dst, 2 * MiB, &got), P2P_OK);
  CHECK_EQ(got, 3000);
  CHECK(pat_check(dst, 3000, 71, "message smaller than the region"));
  CHECK(all_bytes(dst + 3000, 2 * MiB - 3000, EPH_POISON, "after the message"));
  CHECK_EQ(p2p_recv(ep, conn, mr, dst, 2 * MiB, &got), P2P_OK);
  CHECK_EQ(got, 4096);
  CHECK(pat_check(dst, 4096, 72, "message filling the region"));
  memset(dst, EPH_POISON, 4096);
  CHECK(p2p_recv(ep, conn, mr, dst, 2 * MiB, &got) == P2P_ETOOBIG);
  CHECK(all_bytes(dst, 2 * MiB, EPH_POISON, "larger than the region"));
  CHECK_EQ(p2p_recv(ep, conn, mr, dst, 2 * MiB, &got), P2P_OK);
  CHECK_EQ(got, 10);
  CHECK(pat_check(dst, 10, 73, "message after the refusal"));
  CHECK(gbuf_guard_ok(dst, 2 * MiB, "guard"));
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  gbuf_free(dst, 2 * MiB);
  return 0;
}

static int test_ops_recv_region_smaller_than_capacity(void) {
  CHECK_EQ(eph_pair_run(&hosts, small_region_body, small_region_body, NULL, 60),
           0);
  return 0;
}

/* ---- vectored send / recv ---- */

#define NVEC 32

static size_t vec_size(int k) {
  static const size_t shapes[] = {0, 1, 4095, 4096, 65537, 3, MiB + 7, 777};
  return shapes[k % 8];
}

static int sendv_blocks(p2p_endpoint *ep, uint64_t conn, uint64_t seed) {
  void *ptrs[NVEC];
  size_t sizes[NVEC], regsz[NVEC];
  uint64_t ids[NVEC];
  for (int k = 0; k < NVEC; k++) {
    sizes[k] = vec_size(k);
    regsz[k] = sizes[k] ? sizes[k] : 1;
    ptrs[k] = malloc(regsz[k]);
    CHECK(ptrs[k]);
    pat_fill(ptrs[k], sizes[k], seed + (uint64_t)k);
  }
  CHECK_EQ(p2p_regv(ep, ptrs, regsz, NVEC, ids), P2P_OK);
  CHECK_EQ(p2p_sendv(ep, conn, ids, ptrs, sizes, NVEC), P2P_OK);
  for (int k = 0; k < NVEC; k++) {
    CHECK_EQ(p2p_dereg(ep, ids[k]), P2P_OK);
    free(ptrs[k]);
  }
  return 0;
}

/* Receive 32 blocks, each posted `extra` bytes larger than its message. */
static int recvv_blocks(p2p_endpoint *ep, uint64_t conn, uint64_t seed,
                        size_t extra) {
  void *ptrs[NVEC];
  size_t caps[NVEC], total = 0, got = 0;
  uint64_t ids[NVEC];
  for (int k = 0; k < NVEC; k++) {
    caps[k] = vec_size(k) + extra;
    total += vec_size(k);
    ptrs[k] = gbuf_new(caps[k]);
    CHECK(ptrs[k]);
  }
  size_t regsz[NVEC];
  for (int k = 0; k < NVEC; k++) regsz[k] = caps[k] ? caps[k] : 1;
  CHECK_EQ(p2p_regv(ep, ptrs, regsz, NVEC, ids), P2P_OK);
  CHECK_EQ(p2p_recvv(ep, conn, ids, ptrs, caps, NVEC, &got), P2P_OK);
  CHECK_EQ(got, total);
  for (int k = 0; k < NVEC; k++) {
    uint8_t *b = ptrs[k];
    size_t n = vec_size(k);
    CHECK(pat_check(b, n, seed + (uint64_t)k, "recvv block"));
    CHECK(all_bytes(b + n, caps[k] - n, EPH_POISON, "after a recvv block"));
    CHECK(gbuf_guard_ok(b, caps[k], "guard after a recvv block"));
    CHECK_EQ(p2p_dereg(ep, ids[k]), P2P_OK);
    gbuf_free(b, caps[k]);
  }
  return 0;
}

static int vector_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                       void *arg) {
  (void)fd, (void)arg;
  if (side == 1) {
    CHECK(sendv_blocks(ep, conn, 300) == 0);
    CHECK(sendv_blocks(ep, conn, 400) == 0);
    CHECK(recvv_blocks(ep, conn, 500, 0) == 0);
  } else {
    CHECK(recvv_blocks(ep, conn, 300, 0) == 0);
    CHECK(recvv_blocks(ep, conn, 400, 100) == 0);
    CHECK(sendv_blocks(ep, conn, 500) == 0);
  }
  return 0;
}

static int test_ops_sendv_recvv_32_blocks(void) {
  CHECK_EQ(eph_pair_run(&hosts, vector_body, vector_body, NULL, 120), 0);
  return 0;
}

/* ---- asynchronous send / recv ---- */

#define NASYNC 8
static const size_t async_sizes[NASYNC] = {0, 1, 4095, 4096, MiB + 7, 7,
                                           3 * MiB, 64 * MiB};

/* Wait for a transfer by polling; 0 when it finished with P2P_OK. */
static int poll_until_done(p2p_endpoint *ep, uint64_t id) {
  double t0 = eph_now_ms();
  int done = 0;
  while (!done) {
    CHECK_EQ(p2p_poll(ep, id, &done), P2P_OK);
    CHECK(eph_now_ms() - t0 < 60000);
  }
  int again = 0;
  CHECK_EQ(p2p_poll(ep, id, &again), P2P_ENOTFOUND);  /* reported once */
  return 0;
}

/* Post every send at once; the peer posts its receives only afterwards. */
static int async_sender(p2p_endpoint *ep, uint64_t conn, int fd, uint64_t seed) {
  uint8_t *src[NASYNC];
  uint64_t mr[NASYNC], id[NASYNC];
  for (int k = 0; k < NASYNC; k++) {
    src[k] = malloc(async_sizes[k] + 1);
    CHECK(src[k]);
    pat_fill(src[k], async_sizes[k], seed + (uint64_t)k);
    CHECK_EQ(p2p_reg(ep, src[k], async_sizes[k] + 1, &mr[k]), P2P_OK);
    p2p_iov v = {mr[k], src[k], async_sizes[k], NULL};
    CHECK_EQ(p2p_post(ep, conn, P2P_OP_SEND, &v, 1, &id[k]), P2P_OK);
    CHECK(id[k] != 0);
  }
  CHECK_EQ(eph_sync(fd), 0);
  for (int k = 0; k < NASYNC; k++) {
    if (k % 2) CHECK(poll_until_done(ep, id[k]) == 0);
    else CHECK_EQ(p2p_wait(ep, id[k], -1, NULL), P2P_OK);
    CHECK_EQ(p2p_wait(ep, id[k], -1, NULL), P2P_ENOTFOUND);
    CHECK_EQ(p2p_dereg(ep, mr[k]), P2P_OK);
    free(src[k]);
  }
  return 0;
}

/* Post every receive (each 4097 bytes larger than its message), then
 * wait for them: receive k gets message k. */
static int async_receiver(p2p_endpoint *ep, uint64_t conn, int fd,
                          uint64_t seed) {
  uint8_t *dst[NASYNC];
  uint64_t mr[NASYNC], id[NASYNC];
  CHECK_EQ(eph_sync(fd), 0);
  for (int k = 0; k < NASYNC; k++) {
    size_t cap = async_sizes[k] + 4097;
    dst[k] = gbuf_new(cap);
    CHECK(dst[k]);
    CHECK_EQ(p2p_reg(ep, dst[k], cap, &mr[k]), P2P_OK);
    p2p_iov v = {mr[k], dst[k], cap, NULL};
    CHECK_EQ(p2p_post(ep, conn, P2P_OP_RECV, &v, 1, &id[k]), P2P_OK);
  }
  for (int k = NASYNC - 1; k >= 0; k--) {  /* any wait order works */
    size_t got = 0, cap = async_sizes[k] + 4097;
    CHECK_EQ(p2p_wait(ep, id[k], 60000, &got), P2P_OK);
    CHECK_EQ(got, async_sizes[k]);
    CHECK(pat_check(dst[k], got, seed + (uint64_t)k, "async receive"));
    CHECK(all_bytes(dst[k] + got, cap - got, EPH_POISON, "after async receive"));
    CHECK(gbuf_guard_ok(dst[k], cap, "guard after async receive"));
    CHECK_EQ(p2p_dereg(ep, mr[k]), P2P_OK);
    gbuf_free(dst[k], cap);
  }
  return 0;
}

static int async_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                      void *arg) {
  (void)arg;
  uint64_t id;
  p2p_iov none = {0, NULL, 0, NULL};
  CHECK_EQ(p2p_post(ep, conn, P2P_OP_SEND, &none, 0, &id), P2P_EINVAL);
  CHECK_EQ(p2p_post(ep, conn, (p2p_op_kind)17, &none, 1, &id), P2P_EINVAL);
  CHECK_EQ(p2p_poll(ep, 987654, &(int){0}), P2P_ENOTFOUND);
  if (side == 1) {
    CHECK(async_sender(ep, conn, fd, 600) == 0);
    CHECK(async_receiver(ep, conn, fd, 700) == 0);
  } else {
    CHECK(async_receiver(ep, conn, fd, 600) == 0);
    CHECK(async_sender(ep, conn, fd, 700) == 0);
  }
  return 0;
}

static int test_ops_send_recv_async(void) {
  CHECK_EQ(eph_pair_run(&hosts, async_body, async_body, NULL, 180), 0);
  return 0;
}

/* p2p_wait with its own timeout gives P2P_ETIMEDOUT and leaves the
 * transfer pending: it completes once the peer sends. */
static int wait_timeout_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                             void *arg) {
  (void)arg;
  if (side == 1) {
    CHECK_EQ(eph_sync(fd), 0);
    return eph_send_pattern(ep, conn, 5000, 91);
  }
  uint8_t *dst = gbuf_new(8192);
  uint64_t mr, id;
  size_t got = 0;
  int done = 1;
  CHECK(dst);
  CHECK_EQ(p2p_reg(ep, dst, 8192, &mr), P2P_OK);
  p2p_iov v = {mr, dst, 8192, NULL};
  CHECK_EQ(p2p_post(ep, conn, P2P_OP_RECV, &v, 1, &id), P2P_OK);
  double t0 = eph_now_ms();
  CHECK_EQ(p2p_wait(ep, id, 200, NULL), P2P_ETIMEDOUT);
  CHECK(eph_now_ms() - t0 >= 190);
  CHECK_EQ(p2p_poll(ep, id, &done), P2P_OK);
  CHECK_EQ(done, 0);
  CHECK_EQ(eph_sync(fd), 0);  /* now the peer sends */
  CHECK_EQ(p2p_wait(ep, id, 30000, &got), P2P_OK);
  CHECK_EQ(got, 5000);
  CHECK(pat_check(dst, 5000, 91, "receive after a timed-out wait"));
  CHECK(all_bytes(dst + 5000, 8192 - 5000, EPH_POISON, "after the message"));
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  gbuf_free(dst, 8192);
  return 0;
}

static int test_ops_wait_timeout_keeps_transfer(void) {
  CHECK_EQ(eph_pair_run(&hosts, wait_timeout_body, wait_timeout_body, NULL, 60),
           0);
  return 0;
}

/* ---- sides with different settings ---- */

/* Each way: a message of 64 MiB + 7 and a write and read of 8 MiB + 3
 * (with the one-sided helpers). */
static int mismatch_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                         void *arg) {
  (void)arg;
  for (int sender = 1; sender >= 0; sender--) {
    uint64_t seed = 4000 + (uint64_t)sender;
    if (side == sender)
      CHECK(eph_send_pattern(ep, conn, 64 * MiB + 7, seed) == 0);
    else
      CHECK(eph_recv_pattern(ep, conn, 64 * MiB + 7, 64 * MiB + 7, seed) == 0);
    if (side == sender)
      CHECK(eph_onesided_initiator(ep, conn, fd, 8 * MiB + 3, seed + 10, seed + 20,
                               sender) == 0);
    else
      CHECK(eph_onesided_target(ep, conn, fd, 8 * MiB + 3, seed + 10, seed + 20) == 0);
  }
  return 0;
}

/* Chunk size, comms per lane, window and progress threads differ between
 * the sides: the connection settles on what both can do. */
static int test_ops_sides_with_different_settings(void) {
  p2p_options o[2];
  for (int side = 0; side < 2; side++) {
    eph_options(&o[side]);
    o[side].gpu_index = side == 0 ? EPH_GPU0 : EPH_GPU1;
  }
  o[0].chunk_size = 64 << 10;
  o[0].comms_per_lane = 1;
  o[0].window = 2;
  o[1].chunk_size = 4 << 20;
  o[1].comms_per_lane = 3;
  o[1].window = 16;
  o[1].num_threads = 3;
  CHECK_EQ(eph_pair_run_opts(&hosts, &o[0], &o[1], mismatch_body, mismatch_body,
                             NULL, 180), 0);
  CHECK_EQ(eph_pair_run_opts(&hosts, &o[1], &o[0], mismatch_body, mismatch_body,
                             NULL, 180), 0);
  return 0;
}

/* The split rule (chunks.c) is in force only when both sides offer it
 * (TCPX_P2P_SPLIT): a side without it must not make the two cut a message
 * differently, which would post receives of the wrong sizes. Sizes on
 * both sides of every cut boundary, each way, two-sided and one-sided. */
static int split_body(p2p_endpoint *ep, uint64_t conn, int fd, int side, void *arg) {
  (void)arg;
  static const size_t sizes[] = {64 * KiB + 1, 256 * KiB, 300 * KiB + 7, MiB,
                                 MiB + 5, 3 * MiB + 1, 4 * MiB + 4097};
  for (int sender = 1; sender >= 0; sender--)
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      uint64_t seed = 5000 + 16 * (uint64_t)sender + i;
      if (side == sender) {
        CHECK(eph_send_pattern(ep, conn, sizes[i], seed) == 0);
        CHECK(eph_onesided_initiator(ep, conn, fd, sizes[i], seed + 100, seed + 200,
                                     sender) == 0);
      } else {
        CHECK(eph_recv_pattern(ep, conn, sizes[i], sizes[i], seed) == 0);
        CHECK(eph_onesided_target(ep, conn, fd, sizes[i], seed + 100, seed + 200) == 0);
      }
    }
  return 0;
}

static int test_ops_split_rule_agreed(void) {
  static const char *const sides[][2] = {
      {"TCPX_P2P_SPLIT=1", "TCPX_P2P_SPLIT=1"}, {"TCPX_P2P_SPLIT=0", "TCPX_P2P_SPLIT=1"},
      {"TCPX_P2P_SPLIT=1", "TCPX_P2P_SPLIT=0"}, {"TCPX_P2P_SPLIT=0", "TCPX_P2P_SPLIT=0"}};
  for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++) {
    setenv("EPH_SIDE0_ENV", sides[i][0], 1);
    setenv("EPH_SIDE1_ENV", sides[i][1], 1);
    int rc = eph_pair_run(&hosts, split_body, split_body, NULL, 180);
    unsetenv("EPH_SIDE0_ENV");
    unsetenv("EPH_SIDE1_ENV");
    CHECK_EQ(rc, 0);
  }
  return 0;
}

/* ---- closing a connection ---- */

/* Side 0 closes the connection under a pending receive: that receive
 * fails with P2P_ECANCELED, the closed connection takes no new op, and
 * side 1's pending receive fails with P2P_EPEER at once; then side 1
 * connects again and the new connection works. */
static int close_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                      void *arg) {
  (void)arg;
  static uint8_t buf[4096];
  uint64_t mr, id, fresh;
  CHECK_EQ(p2p_reg(ep, buf, sizeof buf, &mr), P2P_OK);
  p2p_iov v = {mr, buf, sizeof buf, NULL};
  CHECK_EQ(p2p_post(ep, conn, P2P_OP_RECV, &v, 1, &id), P2P_OK);
  CHECK_EQ(eph_sync(fd), 0);  /* both receives are pending */
  if (side == 0) {
    CHECK_EQ(p2p_close(ep, conn), P2P_OK);
    CHECK_EQ(p2p_wait(ep, id, 10000, NULL), P2P_ECANCELED);
    CHECK(p2p_send(ep, conn, mr, buf, 1) != P2P_OK);
    CHECK_EQ(eph_serve(ep, fd, &fresh, NULL, 0, NULL), 0);
    CHECK(eph_recv_pattern(ep, fresh, 100, 100, 81) == 0);
  } else {
    double t0 = eph_now_ms();
    CHECK_EQ(p2p_wait(ep, id, 10000, NULL), P2P_EPEER);
    CHECK(eph_now_ms() - t0 < 1000 * EPH_SLOWDOWN);  /* not a liveness timeout */
    CHECK_EQ(eph_dial(ep, fd, &fresh), 0);
    CHECK(eph_send_pattern(ep, fresh, 100, 81) == 0);
  }
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  return 0;
}

static int test_ops_close_cancels_pending_transfers(void) {
  CHECK_EQ(eph_pair_run(&hosts, close_body, close_body, NULL, 60), 0);
  return 0;
}

/* ---- 1 GiB: one transfer each way ---- */

/* Side 1 sends 1 GiB to side 0; side 0 writes 1 GiB into side 1's
 * advertised buffer. */
static int big_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                    void *arg) {
  (void)arg;
  uint8_t *buf = gbuf_new(GiB), desc[P2P_DESC_SIZE];
  uint64_t mr, step;
  size_t got = 0;
  CHECK(buf);
  CHECK_EQ(p2p_reg(ep, buf, GiB, &mr), P2P_OK);
  if (side == 1) {
    pat_fill(buf, GiB, 31);
    CHECK_EQ(p2p_send(ep, conn, mr, buf, GiB), P2P_OK);
    memset(buf, EPH_POISON, GiB);
    CHECK_EQ(p2p_advertise(ep, conn, mr, buf, GiB, desc), P2P_OK);
    CHECK_EQ(oob_send(fd, desc, sizeof desc), 0);
    CHECK_EQ(eph_get_u64(fd, &step), 0);
    CHECK(pat_check(buf, GiB, 32, "1 GiB written"));
  } else {
    CHECK_EQ(p2p_recv(ep, conn, mr, buf, GiB, &got), P2P_OK);
    CHECK_EQ(got, GiB);
    CHECK(pat_check(buf, GiB, 31, "1 GiB received"));
    pat_fill(buf, GiB, 32);
    CHECK_EQ(oob_recv(fd, desc, sizeof desc), 0);
    CHECK_EQ(p2p_write(ep, conn, mr, buf, GiB, desc), P2P_OK);
    CHECK_EQ(eph_put_u64(fd, 1), 0);
  }
  CHECK(gbuf_guard_ok(buf, GiB, "guard after 1 GiB"));
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  gbuf_free(buf, GiB);
  return 0;
}

static int test_big_1gib_each_way(void) {
  CHECK_EQ(eph_pair_run(&hosts, big_body, big_body, NULL, 600), 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_ops_parse_metadata_layouts),
    CHECK_CASE(test_ops_metadata_round_trip),
    CHECK_CASE(test_ops_accept_reports_peer_address_and_gpu),
    CHECK_CASE(test_ops_reg_regv_dereg),
    CHECK_CASE(test_ops_send_recv_sizes),
    CHECK_CASE(test_ops_recv_larger_than_send_reports_real_size),
    CHECK_CASE(test_ops_send_larger_than_recv_fails_on_both_sides),
    CHECK_CASE(test_ops_recv_region_smaller_than_capacity),
    CHECK_CASE(test_ops_sendv_recvv_32_blocks),
    CHECK_CASE(test_ops_send_recv_async),
    CHECK_CASE(test_ops_wait_timeout_keeps_transfer),
    CHECK_CASE(test_ops_sides_with_different_settings),
    CHECK_CASE(test_ops_split_rule_agreed),
    CHECK_CASE(test_ops_close_cancels_pending_transfers),
    CHECK_CASE(test_big_1gib_each_way),
};

int main(int argc, char **argv) {
  if (twohost_setup(&hosts)) return 1;
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  twohost_teardown(&hosts);
  return rc;
}
