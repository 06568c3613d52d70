/* One-sided refusals between two endpoints in two namespaces: a read or
 * write with a wrong key, beyond the advertised bounds, to an unknown or
 * deregistered exposure is refused (P2P_EREFUSED by the target, or
 * P2P_EINVAL where the initiator can tell by itself), the target's memory
 * and the initiator's destination stay untouched, and the connection keeps
 * working afterwards. Forged descriptors (engine.h's desc_encode) make the
 * target, not the initiator, check the bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine.h"
#include "ep_harness.h"
#include "twohost.h"

static twohost hosts;  /* made once in main for every case */

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define REGION (16 * KiB)
#define EXPOSED_OFF (4 * KiB)   /* advertised range inside the region */
#define EXPOSED_LEN (4 * KiB)

/* A copy of desc with its advertised size changed (a forged descriptor). */
static int forge_size(const uint8_t *desc, uint64_t size, uint8_t *out) {
  desc_fields f;
  CHECK_EQ(desc_decode(desc, &f), P2P_OK);
  f.size = size;
  desc_encode(&f, out);
  return 0;
}

static int forge_exposure(const uint8_t *desc, uint64_t delta, uint8_t *out) {
  desc_fields f;
  CHECK_EQ(desc_decode(desc, &f), P2P_OK);
  f.exposure_id += delta;
  desc_encode(&f, out);
  return 0;
}

/* Write and read through `desc` with `size` bytes; both must fail with
 * `want`; the read's destination stays poisoned. */
static int both_refused(p2p_endpoint *ep, uint64_t conn, uint64_t smr,
                        uint8_t *src, uint64_t dmr, uint8_t *dst, size_t size,
                        const uint8_t *desc, int want, const char *what) {
  memset(dst, EPH_POISON, size);
  int w = p2p_write(ep, conn, smr, src, size, desc);
  int r = p2p_read(ep, conn, dmr, dst, size, desc);
  if (w != want || r != want) {
    fprintf(stderr, "  %s: write %s, read %s, want %s (%s)\n", what,
            p2p_strerror(w), p2p_strerror(r), p2p_strerror(want),
            p2p_last_error());
    return 1;
  }
  CHECK(all_bytes(dst, size, EPH_POISON, what));
  return 0;
}

/* ---- key, bounds, unknown exposure ---- */

static int refusal_target(p2p_endpoint *ep, uint64_t conn, int fd) {
  uint8_t *buf = gbuf_new(REGION), desc[P2P_DESC_SIZE];
  uint64_t mr, step;
  CHECK(buf);
  pat_fill(buf, REGION, 1);
  CHECK_EQ(p2p_reg(ep, buf, REGION, &mr), P2P_OK);
  CHECK_EQ(p2p_advertise(ep, conn, mr, buf + EXPOSED_OFF, EXPOSED_LEN, desc),
           P2P_OK);
  CHECK_EQ(oob_send(fd, desc, sizeof desc), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* every refusal done */
  CHECK(pat_check(buf, REGION, 1, "target region after refused accesses"));
  CHECK(gbuf_guard_ok(buf, REGION, "guard after the target region"));
  /* A second descriptor of the same range, for the read back. (Taking
   * the region lock here also orders these reads before the serving
   * thread's writes for ThreadSanitizer.) */
  CHECK_EQ(p2p_advertise(ep, conn, mr, buf + EXPOSED_OFF, EXPOSED_LEN, desc),
           P2P_OK);
  CHECK_EQ(oob_send(fd, desc, sizeof desc), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* the valid write */
  /* dereg before looking: it orders this thread after the progress thread
   * that served the write (ThreadSanitizer cannot see the order through
   * the peer and the out-of-band socket). */
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  CHECK(pat_check(buf, EXPOSED_OFF, 1, "before the exposed range"));
  CHECK(pat_check(buf + EXPOSED_OFF, EXPOSED_LEN, 2, "valid write after refusals"));
  uint8_t *want = malloc(REGION);
  CHECK(want);
  pat_fill(want, REGION, 1);
  CHECK(bytes_equal(buf + EXPOSED_OFF + EXPOSED_LEN, want + EXPOSED_OFF + EXPOSED_LEN,
                    REGION - EXPOSED_OFF - EXPOSED_LEN, "after the exposed range"));
  free(want);
  gbuf_free(buf, REGION);
  return 0;
}

static int refusal_initiator(p2p_endpoint *ep, uint64_t conn, int fd) {
  size_t big = 8 * MiB;  /* several chunks: the target drains them all */
  uint8_t desc[P2P_DESC_SIZE], bad[P2P_DESC_SIZE];
  uint8_t *src = malloc(big), *dst = gbuf_new(big);
  uint64_t smr, dmr, id;
  CHECK(src && dst);
  pat_fill(src, big, 99);
  CHECK_EQ(p2p_reg(ep, src, big, &smr), P2P_OK);
  CHECK_EQ(p2p_reg(ep, dst, big, &dmr), P2P_OK);
  CHECK_EQ(oob_recv(fd, desc, sizeof desc), 0);

  memcpy(bad, desc, sizeof bad);
  bad[32] ^= 0x01;  /* one bit of the key */
  CHECK(both_refused(ep, conn, smr, src, dmr, dst, EXPOSED_LEN, bad,
                     P2P_EREFUSED, "wrong key") == 0);
  CHECK(forge_exposure(desc, 1000, bad) == 0);
  CHECK(both_refused(ep, conn, smr, src, dmr, dst, 16, bad, P2P_EREFUSED,
                     "unknown exposure") == 0);
  /* Larger than advertised: the initiator can tell from the descriptor. */
  CHECK(both_refused(ep, conn, smr, src, dmr, dst, EXPOSED_LEN + 1, desc,
                     P2P_EINVAL, "size beyond the descriptor") == 0);
  /* A forged larger size: now the target must check its own bounds. */
  CHECK(forge_size(desc, big, bad) == 0);
  CHECK(both_refused(ep, conn, smr, src, dmr, dst, EXPOSED_LEN + 1, bad,
                     P2P_EREFUSED, "forged size, one byte over") == 0);
  CHECK(both_refused(ep, conn, smr, src, dmr, dst, big, bad, P2P_EREFUSED,
                     "forged size, 8 MiB") == 0);
  memcpy(bad, desc, sizeof bad);
  bad[0] ^= 0xff;  /* not a descriptor at all */
  CHECK(both_refused(ep, conn, smr, src, dmr, dst, 16, bad, P2P_EINVAL,
                     "bad magic") == 0);
  /* Posted and waited for: the same refusal. */
  memcpy(bad, desc, sizeof bad);
  bad[47] ^= 0x80;
  p2p_iov v = {smr, src, EXPOSED_LEN, bad};
  CHECK_EQ(p2p_post(ep, conn, P2P_OP_WRITE, &v, 1, &id), P2P_OK);
  CHECK_EQ(p2p_wait(ep, id, 30000, NULL), P2P_EREFUSED);
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  uint8_t second[P2P_DESC_SIZE];
  CHECK_EQ(oob_recv(fd, second, sizeof second), 0);

  /* The connection and the first descriptor still work. */
  pat_fill(src, EXPOSED_LEN, 2);
  CHECK_EQ(p2p_write(ep, conn, smr, src, EXPOSED_LEN, desc), P2P_OK);
  memset(dst, EPH_POISON, EXPOSED_LEN);
  CHECK_EQ(p2p_read(ep, conn, dmr, dst, EXPOSED_LEN, second), P2P_OK);
  CHECK(pat_check(dst, EXPOSED_LEN, 2, "read after refusals"));
  CHECK(gbuf_guard_ok(dst, big, "guard after the read buffer"));
  p2p_conn_stats st;
  CHECK_EQ(p2p_conn_stats_get(ep, conn, &st), P2P_OK);
  CHECK(st.ops_failed >= 9);
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(p2p_dereg(ep, smr), P2P_OK);
  CHECK_EQ(p2p_dereg(ep, dmr), P2P_OK);
  free(src);
  gbuf_free(dst, big);
  return 0;
}

static int refusal_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                        void *arg) {
  (void)arg;
  return side == 0 ? refusal_target(ep, conn, fd)
                   : refusal_initiator(ep, conn, fd);
}

static int test_refused_wrong_key_bounds_unknown(void) {
  CHECK_EQ(eph_pair_run(&hosts, refusal_body, refusal_body, NULL, 120), 0);
  return 0;
}

/* ---- after dereg ---- */

#define NDESC 3

/* Three descriptors of one region (and one of another region that stays):
 * dereg revokes all three at once; the other keeps working. */
static int dereg_target(p2p_endpoint *ep, uint64_t conn, int fd) {
  uint8_t *buf = gbuf_new(REGION), *keep = gbuf_new(REGION);
  uint8_t descs[NDESC + 1][P2P_DESC_SIZE];
  uint64_t mr, keep_mr, step;
  CHECK(buf && keep);
  pat_fill(buf, REGION, 5);
  pat_fill(keep, REGION, 6);
  CHECK_EQ(p2p_reg(ep, buf, REGION, &mr), P2P_OK);
  CHECK_EQ(p2p_reg(ep, keep, REGION, &keep_mr), P2P_OK);
  for (int k = 0; k < NDESC; k++)
    CHECK_EQ(p2p_advertise(ep, conn, mr, buf + k * 4 * KiB, 4 * KiB, descs[k]),
             P2P_OK);
  CHECK_EQ(p2p_advertise(ep, conn, keep_mr, keep, REGION, descs[NDESC]), P2P_OK);
  CHECK_EQ(oob_send(fd, descs, sizeof descs), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* the peer read them all */
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* refused, then wrote `keep` */
  CHECK_EQ(p2p_dereg(ep, keep_mr), P2P_OK);  /* orders us after the write */
  CHECK(pat_check(buf, REGION, 5, "deregistered region"));
  CHECK(gbuf_guard_ok(buf, REGION, "guard after the deregistered region"));
  CHECK(pat_check(keep, REGION, 7, "region that stayed registered"));
  gbuf_free(buf, REGION);
  gbuf_free(keep, REGION);
  return 0;
}

static int dereg_initiator(p2p_endpoint *ep, uint64_t conn, int fd) {
  uint8_t descs[NDESC + 1][P2P_DESC_SIZE];
  uint8_t *src = malloc(REGION), *dst = gbuf_new(REGION);
  uint64_t smr, dmr, step;
  CHECK(src && dst);
  CHECK_EQ(p2p_reg(ep, src, REGION, &smr), P2P_OK);
  CHECK_EQ(p2p_reg(ep, dst, REGION, &dmr), P2P_OK);
  CHECK_EQ(oob_recv(fd, descs, sizeof descs), 0);
  uint8_t *want = malloc(REGION);
  CHECK(want);
  pat_fill(want, REGION, 5);
  for (int k = 0; k < NDESC; k++) {  /* valid before the dereg */
    CHECK_EQ(p2p_read(ep, conn, dmr, dst, 4 * KiB, descs[k]), P2P_OK);
    CHECK(bytes_equal(dst, want + k * 4 * KiB, 4 * KiB, "read before dereg"));
  }
  free(want);
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* deregistered */
  pat_fill(src, REGION, 8);
  for (int k = 0; k < NDESC; k++)
    CHECK(both_refused(ep, conn, smr, src, dmr, dst, 4 * KiB, descs[k],
                       P2P_EREFUSED, "after dereg") == 0);
  pat_fill(src, REGION, 7);
  CHECK_EQ(p2p_write(ep, conn, smr, src, REGION, descs[NDESC]), P2P_OK);
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(p2p_dereg(ep, smr), P2P_OK);
  CHECK_EQ(p2p_dereg(ep, dmr), P2P_OK);
  free(src);
  gbuf_free(dst, REGION);
  return 0;
}

static int dereg_body(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                      void *arg) {
  (void)arg;
  return side == 0 ? dereg_target(ep, conn, fd) : dereg_initiator(ep, conn, fd);
}

static int test_refused_after_dereg(void) {
  CHECK_EQ(eph_pair_run(&hosts, dereg_body, dereg_body, NULL, 60), 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_refused_wrong_key_bounds_unknown),
    CHECK_CASE(test_refused_after_dereg),
};

int main(int argc, char **argv) {
  if (twohost_setup(&hosts)) return 1;
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  twohost_teardown(&hosts);
  return rc;
}
