/* One-sided transfers between two endpoints in two network namespaces:
 * write and read (blocking and posted) at sizes from 0 B to 256 MiB,
 * writev/readv with 32 blocks, several descriptors of one region; every
 * byte checked, destinations poisoned, guard bytes after them. The owner
 * serves reads promptly while idle, also right after a call of its own
 * that finished without waiting. Refusals: test_endpoint_refusal.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ep_harness.h"
#include "twohost.h"

static twohost hosts;  /* made once in main for every case */

#define MiB ((size_t)1 << 20)

static const size_t sweep[] = {0, 1, 4095, 4096, MiB + 7, 64 * MiB, 256 * MiB};
#define NSWEEP (sizeof sweep / sizeof sweep[0])

#define NVEC 32

static size_t vec_size(int k) {
  static const size_t shapes[] = {0, 1, 4095, 4096, 65537, 3, MiB + 7, 777};
  return shapes[k % 8];
}

/* ---- write / read ---- */

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
          CHECK(eph_onesided_initiator(ep, conn, fd, sweep[i], seed, seed + 1,
                                       async) == 0);
        else
          CHECK(eph_onesided_target(ep, conn, fd, sweep[i], seed, seed + 1) == 0);
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

/* ---- served while the owner idles ---- */

/* The owner's last call is a receive whose message had already arrived,
 * so it finishes inside the post, with no wait: its connection must still
 * be watched by the progress thread, which serves the peer's read while
 * the owner makes no call at all (it sleeps up to timeout / 8 = 1.25 s
 * otherwise). */
#define IDLE_READ_SIZE 256
#define IDLE_READ_LIMIT_MS (100.0 * EPH_SLOWDOWN)

static int idle_owner(p2p_endpoint *ep, uint64_t conn, int fd) {
  uint8_t *region = gbuf_new(IDLE_READ_SIZE), desc[P2P_DESC_SIZE];
  uint64_t mr, step;
  CHECK(region);
  pat_fill(region, IDLE_READ_SIZE, 611);
  CHECK_EQ(p2p_reg(ep, region, IDLE_READ_SIZE, &mr), P2P_OK);
  CHECK_EQ(p2p_advertise(ep, conn, mr, region, IDLE_READ_SIZE, desc), P2P_OK);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* the peer's send is posted */
  usleep(100 * 1000);                   /* and has arrived */
  CHECK(eph_recv_pattern(ep, conn, 100, 100, 610) == 0);
  CHECK_EQ(oob_send(fd, desc, sizeof desc), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* idle until the peer has read */
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  gbuf_free(region, IDLE_READ_SIZE);
  return 0;
}

static int idle_reader(p2p_endpoint *ep, uint64_t conn, int fd) {
  uint8_t *src = malloc(100), *dst = gbuf_new(IDLE_READ_SIZE), desc[P2P_DESC_SIZE];
  uint64_t smr, dmr, id;
  CHECK(src && dst);
  pat_fill(src, 100, 610);
  CHECK_EQ(p2p_reg(ep, src, 100, &smr), P2P_OK);
  CHECK_EQ(p2p_reg(ep, dst, IDLE_READ_SIZE, &dmr), P2P_OK);
  p2p_iov v = {smr, src, 100, NULL};
  CHECK_EQ(p2p_post(ep, conn, P2P_OP_SEND, &v, 1, &id), P2P_OK);
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(p2p_wait(ep, id, -1, NULL), P2P_OK);
  CHECK_EQ(oob_recv(fd, desc, sizeof desc), 0);
  double t0 = eph_now_ms();
  CHECK_EQ(p2p_read(ep, conn, dmr, dst, IDLE_READ_SIZE, desc), P2P_OK);
  double took = eph_now_ms() - t0;
  if (took > IDLE_READ_LIMIT_MS)
    fprintf(stderr, "  read from an idle owner took %.1f ms (limit %.0f)\n",
            took, IDLE_READ_LIMIT_MS);
  CHECK(took <= IDLE_READ_LIMIT_MS);
  CHECK(pat_check(dst, IDLE_READ_SIZE, 611, "read from an idle owner"));
  CHECK(gbuf_guard_ok(dst, IDLE_READ_SIZE, "guard"));
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(p2p_dereg(ep, smr), P2P_OK);
  CHECK_EQ(p2p_dereg(ep, dmr), P2P_OK);
  free(src);
  gbuf_free(dst, IDLE_READ_SIZE);
  return 0;
}

static int idle_body(p2p_endpoint *ep, uint64_t conn, int fd, int side, void *arg) {
  (void)arg;
  return side == 0 ? idle_owner(ep, conn, fd) : idle_reader(ep, conn, fd);
}

static int test_ops_read_served_while_owner_idles(void) {
  CHECK_EQ(eph_pair_run(&hosts, idle_body, idle_body, NULL, 60), 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_ops_write_read_sizes),
    CHECK_CASE(test_ops_writev_readv_32_blocks),
    CHECK_CASE(test_ops_several_advertises_of_one_region),
    CHECK_CASE(test_ops_read_served_while_owner_idles),
};

int main(int argc, char **argv) {
  if (twohost_setup(&hosts)) return 1;
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  twohost_teardown(&hosts);
  return rc;
}
