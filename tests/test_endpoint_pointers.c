/* Pointers and counts an application or a peer gets wrong, across two
 * namespaces:
 * - a zero-byte send and receive with NULL pointers (memcpy(dst, NULL, 0)
 *   was reached: undefined behaviour, fatal under the sanitizers);
 * - reg refuses ranges that are not mapped (before: accepted, and a small
 *   send from one crashed the caller);
 * - a peer reading or writing an advertised region whose memory the owner
 *   made inaccessible without deregistering is refused, and the owner
 *   lives on (before: the owner crashed copying the bytes);
 * - TCPX_P2P_MAX_REGIONS and TCPX_P2P_MAX_OPS_PER_CONN: P2P_ELIMIT with a
 *   message naming the variable, and room again once some are released. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "ep_harness.h"
#include "twohost.h"

static twohost hosts;

/* ---- zero bytes, NULL pointers ---- */

static int zero_recv(p2p_endpoint *ep, uint64_t conn, int fd, int side, void *arg) {
  (void)fd, (void)side, (void)arg;
  uint64_t mr;
  size_t got = 99;
  CHECK_EQ(p2p_reg(ep, NULL, 0, &mr), P2P_OK);
  CHECK_EQ(p2p_recv(ep, conn, mr, NULL, 0, &got), P2P_OK);
  CHECK_EQ(got, 0);
  return 0;
}

static int zero_send(p2p_endpoint *ep, uint64_t conn, int fd, int side, void *arg) {
  (void)fd, (void)side, (void)arg;
  uint64_t mr;
  CHECK_EQ(p2p_reg(ep, NULL, 0, &mr), P2P_OK);
  CHECK_EQ(p2p_send(ep, conn, mr, NULL, 0), P2P_OK);
  return 0;
}

static int test_zero_byte_send_recv_with_null_pointers(void) {
  CHECK_EQ(eph_pair_run(&hosts, zero_recv, zero_send, NULL, 60), 0);
  return 0;
}

/* ---- reg of unmapped memory ---- */

static int reg_body(p2p_endpoint *ep, uint64_t conn, int fd, int side, void *arg) {
  (void)conn, (void)fd, (void)arg;
  if (side == 0) return 0;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uint8_t *p = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED);
  CHECK_EQ(munmap(p + page, page), 0); /* a hole in the middle */
  uint64_t mr;
  CHECK_EQ(p2p_reg(ep, p, 3 * page, &mr), P2P_EINVAL);
  CHECK_STR_CONTAINS(p2p_last_error(), "not mapped");
  CHECK_EQ(p2p_reg(ep, p + 2 * page - 1, 2, &mr), P2P_EINVAL);
  CHECK_EQ(p2p_reg(ep, (void *)(uintptr_t)0x1000, 100, &mr), P2P_EINVAL);
  CHECK_EQ(p2p_reg(ep, p + 10, page - 10, &mr), P2P_OK); /* mapped: fine */
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  munmap(p, page);
  munmap(p + 2 * page, page);
  return 0;
}

static int test_reg_refuses_unmapped_memory(void) {
  CHECK_EQ(eph_pair_run(&hosts, reg_body, reg_body, NULL, 60), 0);
  return 0;
}

/* ---- a peer's access to memory unmapped since it was advertised ---- */

#define GONE_SIZE (64u << 10)

static int gone_owner(p2p_endpoint *ep, uint64_t conn, int fd, int side, void *arg) {
  (void)side, (void)arg;
  uint8_t *p = mmap(NULL, GONE_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(p != MAP_FAILED);
  pat_fill(p, GONE_SIZE, 5);
  uint64_t mr;
  uint8_t desc[P2P_DESC_SIZE];
  CHECK_EQ(p2p_reg(ep, p, GONE_SIZE, &mr), P2P_OK);
  CHECK_EQ(p2p_advertise(ep, conn, mr, p, GONE_SIZE, desc), P2P_OK);
  /* The application's bug: the memory is gone (made unreadable rather
   * than unmapped, so that no other mapping can take its place) while
   * still registered and advertised. */
  CHECK_EQ(mprotect(p, GONE_SIZE, PROT_NONE), 0);
  CHECK_EQ(oob_send(fd, desc, sizeof desc), 0);
  /* Still alive: the connection carries a message afterwards. */
  CHECK_EQ(eph_recv_pattern(ep, conn, 3000, 3000, 6), 0);
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  munmap(p, GONE_SIZE);
  return 0;
}

static int gone_reader(p2p_endpoint *ep, uint64_t conn, int fd, int side, void *arg) {
  (void)side, (void)arg;
  uint8_t desc[P2P_DESC_SIZE];
  CHECK_EQ(oob_recv(fd, desc, sizeof desc), 0);
  uint8_t *buf = gbuf_new(GONE_SIZE);
  uint64_t mr;
  CHECK(buf);
  CHECK_EQ(p2p_reg(ep, buf, GONE_SIZE, &mr), P2P_OK);
  CHECK_EQ(p2p_read(ep, conn, mr, buf, 4096, desc), P2P_EREFUSED);
  CHECK(all_bytes(buf, GONE_SIZE, EPH_POISON, "read destination"));
  CHECK_EQ(p2p_write(ep, conn, mr, buf, 100, desc), P2P_EREFUSED);
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK);
  gbuf_free(buf, GONE_SIZE);
  CHECK_EQ(eph_send_pattern(ep, conn, 3000, 6), 0);
  return 0;
}

static int test_peer_access_to_unmapped_exposure_is_refused(void) {
  CHECK_EQ(eph_pair_run(&hosts, gone_owner, gone_reader, NULL, 60), 0);
  return 0;
}

/* ---- caps on regions and unfinished ops ---- */

static int caps_side(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)arg;
  setenv("TCPX_P2P_MAX_REGIONS", "3", 1);
  setenv("TCPX_P2P_MAX_OPS_PER_CONN", "2", 1);
  p2p_options o;
  eph_options(&o);
  o.gpu_index = side ? EPH_GPU1 : EPH_GPU0;
  p2p_endpoint *ep;
  uint64_t conn, mr[4], x[3];
  static uint8_t buf[4][256];
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  CHECK_EQ(side ? eph_dial(ep, fd, &conn) : eph_serve(ep, fd, &conn, NULL, 0, NULL), 0);
  for (int i = 0; i < 3; i++) CHECK_EQ(p2p_reg(ep, buf[i], 256, &mr[i]), P2P_OK);
  CHECK_EQ(p2p_reg(ep, buf[3], 256, &mr[3]), P2P_ELIMIT);
  CHECK_STR_CONTAINS(p2p_last_error(), "TCPX_P2P_MAX_REGIONS");
  CHECK_EQ(p2p_dereg(ep, mr[2]), P2P_OK);
  CHECK_EQ(p2p_reg(ep, buf[3], 256, &mr[3]), P2P_OK);
  if (side == 0) { /* two receives wait; a third is one too many */
    p2p_iov v[2] = {{.mr_id = mr[0], .ptr = buf[0], .size = 256},
                    {.mr_id = mr[1], .ptr = buf[1], .size = 256}};
    CHECK_EQ(p2p_post(ep, conn, P2P_OP_RECV, &v[0], 1, &x[0]), P2P_OK);
    CHECK_EQ(p2p_post(ep, conn, P2P_OP_RECV, &v[1], 1, &x[1]), P2P_OK);
    CHECK_EQ(p2p_post(ep, conn, P2P_OP_RECV, &v[1], 1, &x[2]), P2P_ELIMIT);
    CHECK_STR_CONTAINS(p2p_last_error(), "TCPX_P2P_MAX_OPS_PER_CONN");
    CHECK_EQ(eph_sync(fd), 0);
    size_t got;
    CHECK_EQ(p2p_wait(ep, x[0], 20000, &got), P2P_OK);
    CHECK_EQ(p2p_wait(ep, x[1], 20000, &got), P2P_OK);
    CHECK_EQ(p2p_dereg(ep, mr[0]), P2P_OK); /* the pattern's buffer needs one */
    CHECK_EQ(eph_recv_pattern(ep, conn, 100, 100, 9), 0); /* room again */
  } else {
    CHECK_EQ(eph_sync(fd), 0);
    CHECK_EQ(p2p_send(ep, conn, mr[0], buf[0], 10), P2P_OK);
    CHECK_EQ(p2p_send(ep, conn, mr[1], buf[1], 10), P2P_OK);
    CHECK_EQ(p2p_dereg(ep, mr[0]), P2P_OK);
    CHECK_EQ(eph_send_pattern(ep, conn, 100, 9), 0);
  }
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int test_region_and_op_caps(void) {
  CHECK_EQ(eph_run(&hosts, caps_side, caps_side, NULL, 60), 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_zero_byte_send_recv_with_null_pointers),
    CHECK_CASE(test_reg_refuses_unmapped_memory),
    CHECK_CASE(test_peer_access_to_unmapped_exposure_is_refused),
    CHECK_CASE(test_region_and_op_caps),
};

int main(int argc, char **argv) {
  if (twohost_setup(&hosts)) return 1;
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  twohost_teardown(&hosts);
  return rc;
}
