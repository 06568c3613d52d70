/* The endpoint API between two endpoints in two network namespaces: every
 * operation, byte-exact at sizes from 0 B to 1 GiB, with poisoned
 * destinations and guard bytes after them.
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

#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

/* Sizes of the two-sided and one-sided size sweeps. */
static const size_t sweep[] = {0, 1, 4095, 4096, MiB + 7, 64 * MiB, 256 * MiB};
#define NSWEEP (sizeof sweep / sizeof sweep[0])

/* ---- two-sided helpers ---- */

/* Register a pattern-filled buffer of `size` bytes and send it. */
static int send_pattern(p2p_endpoint *ep, uint64_t conn, size_t size,
                        uint64_t seed) {
  uint8_t *src = malloc(size ? size : 1);
  uint64_t mr;
  CHECK(src);
  pat_fill(src, size, seed);
  CHECK_EQ(p2p_reg(ep, src, size ? size : 1, &mr), P2P_OK);
  CHECK_EQ(p2p_send(ep, conn, mr, src, size), P2P_OK);
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  free(src);
  return 0;
}

/* Receive into a poisoned buffer posted with capacity `cap` and expect
 * exactly `size` pattern bytes, poison up to cap, the guard intact. */
static int recv_pattern(p2p_endpoint *ep, uint64_t conn, size_t size,
                        size_t cap, uint64_t seed) {
  uint8_t *dst = gbuf_new(cap);
  uint64_t mr;
  size_t got = (size_t)-1;
  CHECK(dst);
  CHECK_EQ(p2p_reg(ep, dst, cap ? cap : 1, &mr), P2P_OK);
  CHECK_EQ(p2p_recv(ep, conn, mr, dst, cap, &got), P2P_OK);
  CHECK_EQ(got, size);
  CHECK(pat_check(dst, size, seed, "received bytes"));
  CHECK(all_bytes(dst + size, cap - size, EPH_POISON, "beyond the message"));
  CHECK(gbuf_guard_ok(dst, cap, "guard after the receive buffer"));
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  gbuf_free(dst, cap);
  return 0;
}

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
  return recv_pattern(ep, conn, 33, 33, 77);
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
        CHECK(send_pattern(ep, conn, sweep[i], seed) == 0);
      else
        CHECK(recv_pattern(ep, conn, sweep[i], sweep[i], seed) == 0);
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
    if (side == 1) CHECK(send_pattern(ep, conn, sizes[i], 40 + i) == 0);
    else CHECK(recv_pattern(ep, conn, sizes[i], sizes[i] + 4 * MiB + 3, 40 + i) == 0);
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
    CHECK(send_pattern(ep, conn, 4096, 61) == 0);
  } else {
    CHECK(recv_expect_toobig(ep, conn, 4096) == 0);
    CHECK(recv_expect_toobig(ep, conn, 2 * MiB) == 0);
    CHECK(recv_pattern(ep, conn, 4096, 4096, 61) == 0);
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
    CHECK(send_pattern(ep, conn, 3000, 71) == 0);
    CHECK(send_pattern(ep, conn, 4096, 72) == 0);
    CHECK(send_expect_toobig(ep, conn, 6000) == 0);
    CHECK(send_pattern(ep, conn, 10, 73) == 0);
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

/* ---- one-sided: write / read ---- */

/* Target: advertise a poisoned buffer of `size`, let the peer write
 * pattern wseed and check it, then refill it with rseed for the peer to
 * read back. */
static int onesided_target(p2p_endpoint *ep, uint64_t conn, int fd, size_t size,
                           uint64_t wseed, uint64_t rseed) {
  uint8_t *buf = gbuf_new(size), desc[P2P_DESC_SIZE];
  uint64_t mr, step;
  CHECK(buf);
  CHECK_EQ(p2p_reg(ep, buf, size ? size : 1, &mr), P2P_OK);
  CHECK_EQ(p2p_advertise(ep, conn, mr, buf, size, desc), P2P_OK);
  CHECK_EQ(oob_send(fd, desc, sizeof desc), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* written */
  CHECK(pat_check(buf, size, wseed, "written bytes at the target"));
  CHECK(gbuf_guard_ok(buf, size, "guard after the write target"));
  pat_fill(buf, size, rseed);
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* read */
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  gbuf_free(buf, size);
  return 0;
}

/* Run one read or write, blocking or through p2p_post (then polled). */
static int access_once(p2p_endpoint *ep, uint64_t conn, p2p_op_kind kind,
                       uint64_t mr, uint8_t *ptr, size_t size,
                       const uint8_t *desc, int async) {
  if (!async)
    return kind == P2P_OP_WRITE ? p2p_write(ep, conn, mr, ptr, size, desc)
                                : p2p_read(ep, conn, mr, ptr, size, desc);
  p2p_iov v = {mr, ptr, size, desc};
  uint64_t id;
  int rc = p2p_post(ep, conn, kind, &v, 1, &id);
  if (rc != P2P_OK) return rc;
  int done = 0;
  double t0 = eph_now_ms();
  while (!done && rc == P2P_OK && eph_now_ms() - t0 < 120000)
    rc = p2p_poll(ep, id, &done);
  return rc == P2P_OK && !done ? P2P_ETIMEDOUT : rc;
}

static int onesided_initiator(p2p_endpoint *ep, uint64_t conn, int fd,
                              size_t size, uint64_t wseed, uint64_t rseed,
                              int async) {
  uint8_t desc[P2P_DESC_SIZE], *src = malloc(size ? size : 1);
  uint8_t *dst = gbuf_new(size);
  uint64_t smr, dmr, step;
  CHECK(src && dst);
  CHECK_EQ(oob_recv(fd, desc, sizeof desc), 0);
  pat_fill(src, size, wseed);
  CHECK_EQ(p2p_reg(ep, src, size ? size : 1, &smr), P2P_OK);
  CHECK_EQ(access_once(ep, conn, P2P_OP_WRITE, smr, src, size, desc, async),
           P2P_OK);
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* refilled */
  CHECK_EQ(p2p_reg(ep, dst, size ? size : 1, &dmr), P2P_OK);
  CHECK_EQ(access_once(ep, conn, P2P_OP_READ, dmr, dst, size, desc, async),
           P2P_OK);
  CHECK(pat_check(dst, size, rseed, "read bytes"));
  CHECK(gbuf_guard_ok(dst, size, "guard after the read buffer"));
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(p2p_dereg(ep, smr), P2P_OK);
  CHECK_EQ(p2p_dereg(ep, dmr), P2P_OK);
  free(src);
  gbuf_free(dst, size);
  return 0;
}

/* Every sweep size, side 1 initiating then side 0; blocking calls at
 * even sizes, async ones at odd sizes (and both at the small ones). */
static int sweep_onesided_body(p2p_endpoint *ep, uint64_t conn, int fd,
                               int side, void *arg) {
  (void)arg;
  for (size_t i = 0; i < NSWEEP; i++)
    for (int init = 1; init >= 0; init--)
      for (int async = 0; async < 2; async++) {
        if (sweep[i] >= MiB && async != (int)(i % 2)) continue;
        uint64_t seed = 10000 * (uint64_t)(init + 1) + 100 * i + 10 * async;
        if (side == init)
          CHECK(onesided_initiator(ep, conn, fd, sweep[i], seed, seed + 1,
                                   async) == 0);
        else
          CHECK(onesided_target(ep, conn, fd, sweep[i], seed, seed + 1) == 0);
      }
  return 0;
}

static int test_ops_write_read_sizes(void) {
  CHECK_EQ(eph_pair_run(&hosts, sweep_onesided_body, sweep_onesided_body, NULL,
                        300), 0);
  return 0;
}

/* ---- vectored and async one-sided ---- */

/* Target of writev/readv: 32 regions, one descriptor each. */
static int vec_target(p2p_endpoint *ep, uint64_t conn, int fd, uint64_t seed) {
  void *ptrs[NVEC];
  size_t regsz[NVEC];
  uint64_t ids[NVEC], step;
  static uint8_t descs[NVEC * P2P_DESC_SIZE];
  for (int k = 0; k < NVEC; k++) {
    regsz[k] = vec_size(k) ? vec_size(k) : 1;
    ptrs[k] = gbuf_new(vec_size(k));
    CHECK(ptrs[k]);
  }
  CHECK_EQ(p2p_regv(ep, ptrs, regsz, NVEC, ids), P2P_OK);
  for (int k = 0; k < NVEC; k++)
    CHECK_EQ(p2p_advertise(ep, conn, ids[k], ptrs[k], vec_size(k),
                           descs + k * P2P_DESC_SIZE), P2P_OK);
  CHECK_EQ(oob_send(fd, descs, sizeof descs), 0);
  for (int round = 0; round < 2; round++) {  /* writev, then async */
    CHECK_EQ(eph_get_u64(fd, &step), 0);
    for (int k = 0; k < NVEC; k++) {
      uint64_t s = seed + 100 * (uint64_t)round + (uint64_t)k;
      CHECK(pat_check(ptrs[k], vec_size(k), s, "writev block at the target"));
      CHECK(gbuf_guard_ok(ptrs[k], vec_size(k), "guard after a writev block"));
      pat_fill(ptrs[k], vec_size(k), s + 50);  /* for the read back */
    }
    CHECK_EQ(eph_put_u64(fd, 1), 0);
    CHECK_EQ(eph_get_u64(fd, &step), 0);
  }
  for (int k = 0; k < NVEC; k++) {
    CHECK_EQ(p2p_dereg(ep, ids[k]), P2P_OK);
    gbuf_free(ptrs[k], vec_size(k));
  }
  return 0;
}

/* One writev + readv round, blocking (round 0) or posted as one op with
 * 32 iovs and waited for (round 1). */
static int vec_round(p2p_endpoint *ep, uint64_t conn, int fd, uint64_t seed,
                     int round, uint64_t *ids, void **src, void **dst,
                     const uint8_t *descs) {
  size_t sizes[NVEC];
  uint64_t step, *dids = ids + NVEC;
  p2p_iov iov[NVEC];
  for (int k = 0; k < NVEC; k++) {
    sizes[k] = vec_size(k);
    pat_fill(src[k], sizes[k], seed + 100 * (uint64_t)round + (uint64_t)k);
    memset(dst[k], EPH_POISON, sizes[k]);
  }
  uint64_t id;
  if (round == 0) {
    CHECK_EQ(p2p_writev(ep, conn, ids, src, sizes, descs, NVEC), P2P_OK);
  } else {
    for (int k = 0; k < NVEC; k++)
      iov[k] = (p2p_iov){ids[k], src[k], sizes[k], descs + k * P2P_DESC_SIZE};
    CHECK_EQ(p2p_post(ep, conn, P2P_OP_WRITE, iov, NVEC, &id), P2P_OK);
    CHECK_EQ(p2p_wait(ep, id, 60000, NULL), P2P_OK);
  }
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);
  if (round == 0) {
    CHECK_EQ(p2p_readv(ep, conn, dids, dst, sizes, descs, NVEC), P2P_OK);
  } else {
    for (int k = 0; k < NVEC; k++)
      iov[k] = (p2p_iov){dids[k], dst[k], sizes[k], descs + k * P2P_DESC_SIZE};
    CHECK_EQ(p2p_post(ep, conn, P2P_OP_READ, iov, NVEC, &id), P2P_OK);
    CHECK_EQ(p2p_wait(ep, id, 60000, NULL), P2P_OK);
  }
  for (int k = 0; k < NVEC; k++) {
    uint64_t s = seed + 100 * (uint64_t)round + (uint64_t)k + 50;
    CHECK(pat_check(dst[k], sizes[k], s, "readv block"));
    CHECK(gbuf_guard_ok(dst[k], sizes[k], "guard after a readv block"));
  }
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  return 0;
}

static int vec_initiator(p2p_endpoint *ep, uint64_t conn, int fd, uint64_t seed) {
  void *src[NVEC], *dst[NVEC];
  size_t regsz[NVEC];
  uint64_t ids[2 * NVEC];
  static uint8_t descs[NVEC * P2P_DESC_SIZE];
  CHECK_EQ(oob_recv(fd, descs, sizeof descs), 0);
  for (int k = 0; k < NVEC; k++) {
    regsz[k] = vec_size(k) ? vec_size(k) : 1;
    src[k] = malloc(regsz[k]);
    dst[k] = gbuf_new(vec_size(k));
    CHECK(src[k] && dst[k]);
  }
  CHECK_EQ(p2p_regv(ep, src, regsz, NVEC, ids), P2P_OK);
  CHECK_EQ(p2p_regv(ep, dst, regsz, NVEC, ids + NVEC), P2P_OK);
  for (int round = 0; round < 2; round++)
    CHECK(vec_round(ep, conn, fd, seed, round, ids, src, dst, descs) == 0);
  for (int k = 0; k < NVEC; k++) {
    CHECK_EQ(p2p_dereg(ep, ids[k]), P2P_OK);
    CHECK_EQ(p2p_dereg(ep, ids[NVEC + k]), P2P_OK);
    free(src[k]);
    gbuf_free(dst[k], vec_size(k));
  }
  return 0;
}

static int vec_onesided_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                             void *arg) {
  (void)arg;
  return side == 1 ? vec_initiator(ep, conn, fd, 800)
                   : vec_target(ep, conn, fd, 800);
}

static int test_ops_writev_readv_32_blocks(void) {
  CHECK_EQ(eph_pair_run(&hosts, vec_onesided_body, vec_onesided_body, NULL, 120),
           0);
  return 0;
}

/* ---- several advertises of one region ---- */

#define NADV 4
static const size_t adv_off[NADV] = {0, 4196, 65536, 512 * 1024};
static const size_t adv_len[NADV] = {4096, 5000, 1, 256 * 1024};

/* Side 0 advertises four ranges of one region and the whole of it; side
 * 1 writes each range through its own descriptor and reads the whole. */
static int advertise_target(p2p_endpoint *ep, uint64_t conn, int fd) {
  uint8_t *buf = gbuf_new(MiB), descs[NADV + 1][P2P_DESC_SIZE], tmp[P2P_DESC_SIZE];
  uint64_t mr, step;
  CHECK(buf);
  CHECK_EQ(p2p_reg(ep, buf, MiB, &mr), P2P_OK);
  for (int k = 0; k < NADV; k++)
    CHECK_EQ(p2p_advertise(ep, conn, mr, buf + adv_off[k], adv_len[k], descs[k]),
             P2P_OK);
  CHECK_EQ(p2p_advertise(ep, conn, mr, buf, MiB, descs[NADV]), P2P_OK);
  for (int k = 0; k < NADV; k++)  /* each descriptor is its own */
    CHECK(memcmp(descs[k], descs[NADV], P2P_DESC_SIZE) != 0);
  CHECK_EQ(p2p_advertise(ep, conn, mr, buf + 1, MiB, tmp), P2P_EINVAL);
  CHECK_EQ(p2p_advertise(ep, conn, mr, buf + MiB + 1, 0, tmp), P2P_EINVAL);
  CHECK_EQ(p2p_advertise(ep, conn, mr + 100, buf, 1, tmp), P2P_ENOTFOUND);
  CHECK_EQ(oob_send(fd, descs, sizeof descs), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);
  size_t at = 0;
  for (int k = 0; k < NADV; k++) {
    CHECK(all_bytes(buf + at, adv_off[k] - at, EPH_POISON, "between ranges"));
    CHECK(pat_check(buf + adv_off[k], adv_len[k], 900 + (uint64_t)k, "range"));
    at = adv_off[k] + adv_len[k];
  }
  CHECK(all_bytes(buf + at, MiB - at, EPH_POISON, "after the last range"));
  CHECK(gbuf_guard_ok(buf, MiB, "guard"));
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  gbuf_free(buf, MiB);
  return 0;
}

static int advertise_initiator(p2p_endpoint *ep, uint64_t conn, int fd) {
  uint8_t descs[NADV + 1][P2P_DESC_SIZE];
  uint8_t *src = malloc(MiB), *dst = gbuf_new(MiB), *want = malloc(MiB);
  uint64_t smr, dmr, step;
  CHECK(src && dst && want);
  CHECK_EQ(oob_recv(fd, descs, sizeof descs), 0);
  CHECK_EQ(p2p_reg(ep, src, MiB, &smr), P2P_OK);
  CHECK_EQ(p2p_reg(ep, dst, MiB, &dmr), P2P_OK);
  memset(want, EPH_POISON, MiB);
  for (int k = 0; k < NADV; k++) {
    pat_fill(src + adv_off[k], adv_len[k], 900 + (uint64_t)k);
    pat_fill(want + adv_off[k], adv_len[k], 900 + (uint64_t)k);
    CHECK_EQ(p2p_write(ep, conn, smr, src + adv_off[k], adv_len[k], descs[k]),
             P2P_OK);
  }
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);
  CHECK_EQ(p2p_read(ep, conn, dmr, dst, MiB, descs[NADV]), P2P_OK);
  CHECK(bytes_equal(dst, want, MiB, "whole region read back"));
  CHECK(gbuf_guard_ok(dst, MiB, "guard"));
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(p2p_dereg(ep, smr), P2P_OK);
  CHECK_EQ(p2p_dereg(ep, dmr), P2P_OK);
  free(src);
  free(want);
  gbuf_free(dst, MiB);
  return 0;
}

static int advertise_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                          void *arg) {
  (void)arg;
  return side == 1 ? advertise_initiator(ep, conn, fd)
                   : advertise_target(ep, conn, fd);
}

static int test_ops_several_advertises_of_one_region(void) {
  CHECK_EQ(eph_pair_run(&hosts, advertise_body, advertise_body, NULL, 60), 0);
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
    CHECK_CASE(test_ops_write_read_sizes),
    CHECK_CASE(test_ops_writev_readv_32_blocks),
    CHECK_CASE(test_ops_several_advertises_of_one_region),
    CHECK_CASE(test_big_1gib_each_way),
};

int main(int argc, char **argv) {
  if (twohost_setup(&hosts)) return 1;
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  twohost_teardown(&hosts);
  return rc;
}
