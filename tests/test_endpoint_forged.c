/* A forging peer (tests/support/forge.c) against an endpoint, across two
 * namespaces: the peer completes a real set-up, then sends what no honest
 * endpoint would.
 * - a WRITE with a wrong key announcing 1 TiB: refused, drained, and the
 *   endpoint queues a bounded number of receives for it (before: one
 *   chunk struct per MiB announced, allocated at once); a refused write's
 *   bytes are still drained and answered;
 * - a READ of a 64 MiB exposure with the peer's chunk size at 4 KiB: the
 *   owner queues a bounded number of sends (before: 16384 chunk structs);
 * - 50 READs sent at once: the owner serves at most
 *   TCPX_P2P_MAX_OPS_PER_CONN of them at a time and refuses the rest with
 *   P2P_ELIMIT; every read served brings its bytes;
 * - 50 WRITEs sent at once: the owner receives at most that many at a
 *   time (it stops reading the peer's messages meanwhile; the peer
 *   waits), and every write lands;
 * - a flood of inline SENDs nobody receives: the endpoint holds at most
 *   TCPX_P2P_EAGER_BUF bytes of them, stops reading (the peer waits), and
 *   every message arrives intact once the application receives;
 * - transport handles pointing at another host/port (here: a listener on
 *   the endpoint's own loopback): refused, nothing connects there. */
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "ep_harness.h"
#include "forge.h"
#include "twohost.h"

static twohost hosts;

/* Server side of every case: an endpoint that accepts the forger. */
static int accept_forger(p2p_endpoint **ep, int fd, uint64_t *cid) {
  p2p_options o;
  eph_options(&o);
  o.gpu_index = EPH_GPU0;
  CHECK_EQ(eph_create(&o, ep), P2P_OK);
  CHECK_EQ(eph_serve(*ep, fd, cid, NULL, 0, NULL), 0);
  return 0;
}

static int forger_dial(forge *f, int fd, forge_handles_fn rewrite) {
  char ip[64];
  int port, gpu;
  CHECK_EQ(eph_recv_metadata(fd, ip, sizeof ip, &port, &gpu), 0);
  CHECK_EQ(forge_connect(f, ip, port, rewrite), 0);
  return 0;
}

/* Receives queued on the connection's one-sided receive lane (drive lock
 * held, so the driver is not changing them). */
static int queued_receives(conn *c, int *waiting) {
  lane *l = &c->recv_lanes[LANE_ONE_SIDED];
  pthread_mutex_lock(&c->drive_lock);
  int n = 0;
  for (int k = 0; k < l->ncomms; k++)
    n += l->waiting[k].count + l->inflight[k].count + l->finishing[k].count;
  int busy = c->serving != NULL;
  pthread_mutex_unlock(&c->drive_lock);
  *waiting = n;
  return busy;
}

/* ---- a WRITE with a wrong key and a huge size ---- */

#define SMALL_WRITE ((5u << 19) + 3) /* 2.5 MiB + 3: a short last chunk */

static int huge_write_target(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  p2p_endpoint *ep;
  uint64_t cid, step;
  CHECK_EQ(accept_forger(&ep, fd, &cid), 0);
  conn *c = ep_conn_get(ep, cid);
  CHECK(c);
  CHECK_EQ(eph_get_u64(fd, &step), 0); /* the 1 TiB WRITE is sent */
  int queued = 0, tries = 0;
  while (!queued_receives(c, &queued) && tries++ < 2000) usleep(5000);
  CHECK(tries < 2000); /* the endpoint took the WRITE */
  printf("  receives queued for a refused 1 TiB write: %d\n", queued);
  CHECK(queued >= 1);
  /* A window of posted receives per comm and the rest in two entries. */
  CHECK(queued <= (c->window + 2) * c->recv_lanes[LANE_ONE_SIDED].ncomms);
  ep_conn_put(c);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int send_access(forge *f, uint64_t id, uint64_t size) {
  ctrl_msg m = {.type = CTRL_WRITE,
                .u.access = {.id = id, .region = 12345, .size = size}};
  fill_random(m.u.access.key, CTRL_KEY_SIZE, id);
  return forge_send(f, &m, NULL);
}

static int huge_write_forger(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  forge f;
  CHECK_EQ(forger_dial(&f, fd, NULL), 0);
  /* A refused write's bytes are drained and the refusal answered. */
  uint8_t *data = malloc(SMALL_WRITE);
  CHECK(data);
  fill_random(data, SMALL_WRITE, 3);
  CHECK_EQ(send_access(&f, 1, SMALL_WRITE), 0);
  for (size_t off = 0; off < SMALL_WRITE; off += 1 << 20) {
    size_t n = SMALL_WRITE - off < (1u << 20) ? SMALL_WRITE - off : 1u << 20;
    CHECK_EQ(forge_send_data(&f, LANE_ONE_SIDED, data + off, n, 10000), 0);
  }
  ctrl_msg m;
  CHECK_EQ(forge_recv(&f, &m, 10000), 0);
  CHECK_EQ(m.type, CTRL_WRITE_DONE);
  CHECK_EQ(m.u.status.id, 1);
  CHECK_EQ(m.u.status.status, P2P_EREFUSED);
  free(data);
  CHECK_EQ(send_access(&f, 2, 1ull << 40), 0);
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_sync(fd), 0);
  forge_close(&f);
  return eph_leak_check();
}

static int test_forged_huge_write_queues_bounded_receives(void) {
  CHECK_EQ(eph_run(&hosts, huge_write_target, huge_write_forger, NULL, 120), 0);
  return 0;
}

/* ---- a READ of a large exposure in 4 KiB chunks ---- */

#define BIG_READ (64u << 20)

static int queued_sends(conn *c) {
  lane *l = &c->send_lanes[LANE_ONE_SIDED];
  pthread_mutex_lock(&c->drive_lock);
  int n = 0;
  for (int k = 0; k < l->ncomms; k++) n += l->waiting[k].count + l->inflight[k].count;
  pthread_mutex_unlock(&c->drive_lock);
  return n;
}

static int big_read_owner(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  p2p_endpoint *ep;
  uint64_t cid, mr, step;
  uint8_t desc[P2P_DESC_SIZE], *buf = malloc(BIG_READ);
  CHECK(buf);
  memset(buf, 1, BIG_READ);
  CHECK_EQ(accept_forger(&ep, fd, &cid), 0);
  conn *c = ep_conn_get(ep, cid);
  CHECK(c);
  CHECK_EQ(c->chunk_size, 4096); /* the forger's choice */
  CHECK_EQ(p2p_reg(ep, buf, BIG_READ, &mr), P2P_OK);
  CHECK_EQ(p2p_advertise(ep, cid, mr, buf, BIG_READ, desc), P2P_OK);
  CHECK_EQ(oob_send(fd, desc, sizeof desc), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0); /* the READ is sent */
  int queued = 0, tries = 0;
  while ((queued = queued_sends(c)) == 0 && tries++ < 2000) usleep(5000);
  printf("  sends queued to serve a %u-byte read in 4 KiB chunks: %d\n",
         BIG_READ, queued);
  CHECK(queued >= 1);
  CHECK(queued <= (c->window + 2) * c->send_lanes[LANE_ONE_SIDED].ncomms);
  ep_conn_put(c);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep); /* the read is cut short with the connection */
  free(buf);
  return eph_leak_check();
}

static int big_read_forger(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  forge f;
  uint8_t desc[P2P_DESC_SIZE];
  desc_fields d;
  forge_chunk_size = 4096;
  CHECK_EQ(forger_dial(&f, fd, NULL), 0);
  CHECK_EQ(oob_recv(fd, desc, sizeof desc), 0);
  CHECK_EQ(desc_decode(desc, &d), P2P_OK);
  ctrl_msg m = {.type = CTRL_READ,
                .u.access = {.id = 1, .region = d.exposure_id, .size = BIG_READ}};
  memcpy(m.u.access.key, d.key, CTRL_KEY_SIZE);
  CHECK_EQ(forge_send(&f, &m, NULL), 0);
  CHECK_EQ(forge_recv(&f, &m, 10000), 0);
  CHECK_EQ(m.type, CTRL_READ_DATA); /* accepted: the bytes follow */
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_sync(fd), 0);
  forge_close(&f);
  return eph_leak_check();
}

static int test_forged_read_in_tiny_chunks_queues_bounded_sends(void) {
  CHECK_EQ(eph_run(&hosts, big_read_owner, big_read_forger, NULL, 120), 0);
  return 0;
}

/* ---- many READs at once ---- */

#define MANY_READS 50
#define READ_SIZE (128u << 10) /* over the inline limit: data on the lane */
#define SERVE_CAP 4            /* TCPX_P2P_MAX_OPS_PER_CONN at the owner */

static int many_reads_owner(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  setenv("TCPX_P2P_MAX_OPS_PER_CONN", "4", 1);
  p2p_endpoint *ep;
  uint64_t cid, mr;
  uint8_t desc[P2P_DESC_SIZE], *buf = malloc(READ_SIZE);
  CHECK(buf);
  pat_fill(buf, READ_SIZE, 8);
  CHECK_EQ(accept_forger(&ep, fd, &cid), 0);
  conn *c = ep_conn_get(ep, cid);
  CHECK(c);
  CHECK_EQ(p2p_reg(ep, buf, READ_SIZE, &mr), P2P_OK);
  CHECK_EQ(p2p_advertise(ep, cid, mr, buf, READ_SIZE, desc), P2P_OK);
  CHECK_EQ(oob_send(fd, desc, sizeof desc), 0);
  int tries = 0;
  while (atomic_load(&c->stats.serving_peak) < SERVE_CAP && tries++ < 2000) usleep(5000);
  usleep(300000); /* the requests press on; the bound must hold */
  int peak = atomic_load(&c->stats.serving_peak);
  printf("  most of %d reads served at once: %d\n", MANY_READS, peak);
  CHECK_EQ(peak, SERVE_CAP);
  CHECK_EQ(eph_sync(fd), 0); /* the forger got every read's bytes */
  ep_conn_put(c);
  p2p_endpoint_destroy(ep);
  free(buf);
  return eph_leak_check();
}

static int many_reads_forger(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  forge f;
  uint8_t desc[P2P_DESC_SIZE], *got = malloc(READ_SIZE);
  desc_fields d;
  CHECK(got);
  CHECK_EQ(forger_dial(&f, fd, NULL), 0);
  CHECK_EQ(oob_recv(fd, desc, sizeof desc), 0);
  CHECK_EQ(desc_decode(desc, &d), P2P_OK);
  for (int i = 0; i < MANY_READS; i++) {
    ctrl_msg m = {.type = CTRL_READ,
                  .u.access = {.id = (uint64_t)i, .region = d.exposure_id,
                               .size = READ_SIZE}};
    memcpy(m.u.access.key, d.key, CTRL_KEY_SIZE);
    CHECK_EQ(forge_send(&f, &m, NULL), 0);
  }
  int served = 0, refused = 0;
  while (served + refused < MANY_READS) { /* each answered: bytes or P2P_ELIMIT */
    ctrl_msg m;
    CHECK_EQ(forge_recv(&f, &m, 20000), 0);
    if (m.type == CTRL_PING) continue;
    if (m.type == CTRL_READ_DONE) {
      CHECK_EQ(m.u.status.status, P2P_ELIMIT);
      refused++;
      continue;
    }
    CHECK_EQ(m.type, CTRL_READ_DATA);
    memset(got, 0, READ_SIZE);
    CHECK_EQ(forge_recv_data(&f, LANE_ONE_SIDED, got, READ_SIZE, 20000), 0);
    CHECK(pat_check(got, READ_SIZE, 8, "a read's bytes"));
    served++;
  }
  printf("  reads served: %d, refused (P2P_ELIMIT): %d\n", served, refused);
  CHECK(served >= SERVE_CAP);
  CHECK_EQ(eph_sync(fd), 0);
  forge_close(&f);
  free(got);
  return eph_leak_check();
}

static int test_forged_read_flood_is_served_a_few_at_a_time(void) {
  CHECK_EQ(eph_run(&hosts, many_reads_owner, many_reads_forger, NULL, 120), 0);
  return 0;
}

/* ---- many WRITEs at once ---- */

static int many_writes_owner(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  setenv("TCPX_P2P_MAX_OPS_PER_CONN", "4", 1);
  p2p_endpoint *ep;
  uint64_t cid, mr;
  size_t total = (size_t)MANY_READS * READ_SIZE; /* a slice per write */
  uint8_t desc[P2P_DESC_SIZE], *buf = gbuf_new(total);
  CHECK(buf);
  CHECK_EQ(accept_forger(&ep, fd, &cid), 0);
  conn *c = ep_conn_get(ep, cid);
  CHECK(c);
  CHECK_EQ(p2p_reg(ep, buf, total, &mr), P2P_OK);
  CHECK_EQ(p2p_advertise(ep, cid, mr, buf, total, desc), P2P_OK);
  CHECK_EQ(oob_send(fd, desc, sizeof desc), 0);
  CHECK_EQ(eph_sync(fd), 0); /* every write answered */
  int peak = atomic_load(&c->stats.serving_peak);
  printf("  most of %d writes received at once: %d\n", MANY_READS, peak);
  CHECK(peak <= SERVE_CAP);
  CHECK_EQ(p2p_dereg(ep, mr), P2P_OK); /* orders us after the serving thread */
  for (int i = 0; i < MANY_READS; i++)
    CHECK(pat_check(buf + (size_t)i * READ_SIZE, READ_SIZE, 60 + (uint64_t)i,
                    "a write's bytes"));
  CHECK(gbuf_guard_ok(buf, total, "guard after the exposure"));
  ep_conn_put(c);
  p2p_endpoint_destroy(ep);
  gbuf_free(buf, total);
  return eph_leak_check();
}

static int many_writes_forger(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  forge f;
  uint8_t desc[P2P_DESC_SIZE], *data = malloc(READ_SIZE);
  desc_fields d;
  CHECK(data);
  CHECK_EQ(forger_dial(&f, fd, NULL), 0);
  CHECK_EQ(oob_recv(fd, desc, sizeof desc), 0);
  CHECK_EQ(desc_decode(desc, &d), P2P_OK);
  for (int i = 0; i < MANY_READS; i++) { /* each WRITE, then its bytes */
    ctrl_msg m = {.type = CTRL_WRITE,
                  .u.access = {.id = (uint64_t)i, .region = d.exposure_id,
                               .offset = (uint64_t)i * READ_SIZE, .size = READ_SIZE}};
    memcpy(m.u.access.key, d.key, CTRL_KEY_SIZE);
    pat_fill(data, READ_SIZE, 60 + (uint64_t)i);
    CHECK_EQ(forge_send(&f, &m, NULL), 0);
    CHECK_EQ(forge_send_data(&f, LANE_ONE_SIDED, data, READ_SIZE, 20000), 0);
  }
  for (int done = 0; done < MANY_READS;) {
    ctrl_msg m;
    CHECK_EQ(forge_recv(&f, &m, 20000), 0);
    if (m.type == CTRL_PING) continue;
    CHECK_EQ(m.type, CTRL_WRITE_DONE);
    CHECK_EQ(m.u.status.status, P2P_OK);
    CHECK_EQ(m.u.status.id, (uint64_t)done++);
  }
  CHECK_EQ(eph_sync(fd), 0);
  forge_close(&f);
  free(data);
  return eph_leak_check();
}

static int test_forged_write_flood_is_received_a_few_at_a_time(void) {
  CHECK_EQ(eph_run(&hosts, many_writes_owner, many_writes_forger, NULL, 120), 0);
  return 0;
}

/* ---- a flood of inline SENDs ---- */

#define FLOOD_MSGS 400
#define FLOOD_SIZE (64u << 10)
#define FLOOD_BUF (1u << 20) /* TCPX_P2P_EAGER_BUF on the receiving side */

static int flood_receiver(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  setenv("TCPX_P2P_EAGER_BUF", "1048576", 1);
  p2p_endpoint *ep;
  uint64_t cid;
  CHECK_EQ(accept_forger(&ep, fd, &cid), 0);
  conn *c = ep_conn_get(ep, cid);
  CHECK(c);
  int tries = 0;
  while (atomic_load(&c->stats.incoming_peak) < FLOOD_BUF && tries++ < 2000)
    usleep(5000);
  CHECK(tries < 2000);
  usleep(300000); /* let the flood press on; the bound must hold */
  size_t peak = atomic_load(&c->stats.incoming_peak);
  printf("  most bytes held for %d unreceived %u-byte messages: %zu\n",
         FLOOD_MSGS, FLOOD_SIZE, peak);
  CHECK(peak < FLOOD_BUF + FLOOD_SIZE + 4096);
  for (int i = 0; i < FLOOD_MSGS; i++)
    CHECK_EQ(eph_recv_pattern(ep, cid, FLOOD_SIZE, FLOOD_SIZE, 1000 + (uint64_t)i), 0);
  ep_conn_put(c);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static void *flood_sends(void *arg) {
  forge *f = arg;
  static uint8_t data[FLOOD_SIZE];
  uint64_t size = FLOOD_SIZE;
  for (int i = 0; i < FLOOD_MSGS; i++) {
    pat_fill(data, sizeof data, 1000 + (uint64_t)i);
    ctrl_msg m = {.type = CTRL_SEND,
                  .u.send = {.seq = (uint64_t)i, .nseg = 1, .data = data,
                             .data_len = FLOOD_SIZE}};
    if (forge_send(f, &m, &size) != 0) return (void *)1;
  }
  return NULL;
}

static int flood_forger(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  forge f;
  CHECK_EQ(forger_dial(&f, fd, NULL), 0);
  pthread_t sender;
  CHECK_EQ(pthread_create(&sender, NULL, flood_sends, &f), 0);
  int done = 0;
  while (done < FLOOD_MSGS) {
    ctrl_msg m;
    CHECK_EQ(forge_recv(&f, &m, 60000), 0);
    if (m.type == CTRL_PING) continue;
    CHECK_EQ(m.type, CTRL_SEND_DONE);
    CHECK_EQ(m.u.status.status, P2P_OK);
    CHECK_EQ(m.u.status.id, (uint64_t)done);
    done++;
  }
  void *failed;
  pthread_join(sender, &failed);
  CHECK(failed == NULL);
  CHECK_EQ(eph_sync(fd), 0);
  forge_close(&f);
  return eph_leak_check();
}

static int test_forged_eager_flood_is_held_back(void) {
  CHECK_EQ(eph_run(&hosts, flood_receiver, flood_forger, NULL, 180), 0);
  return 0;
}

/* ---- handles pointing elsewhere ---- */

static int victim_port;  /* the target's loopback listener, told over oob */

static void point_at_victim(uint8_t handles[FORGE_COMMS][CTRL_HANDLE_SIZE]) {
  for (int j = 0; j < FORGE_COMMS; j++)
    forge_point_handle(handles[j], "127.0.0.1", victim_port);
}

static int handles_target(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  int victim = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  CHECK(victim >= 0);
  CHECK_EQ(bind(victim, (struct sockaddr *)&sa, sizeof sa), 0);
  CHECK_EQ(listen(victim, 16), 0);
  CHECK_EQ(getsockname(victim, (struct sockaddr *)&sa, &len), 0);
  p2p_options o;
  eph_options(&o);
  o.gpu_index = EPH_GPU0;
  o.op_timeout_ms = 500;
  p2p_endpoint *ep;
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  CHECK_EQ(eph_send_metadata(ep, fd), 0);
  CHECK_EQ(eph_put_u64(fd, ntohs(sa.sin_port)), 0);
  CHECK_EQ(eph_sync(fd), 0); /* the forger saw the endpoint hang up */
  struct pollfd p = {victim, POLLIN, 0};
  CHECK_EQ(poll(&p, 1, 1000), 0); /* nobody connected to the victim */
  char ip[64];
  int gpu;
  uint64_t cid;
  CHECK_EQ(p2p_accept(ep, ip, sizeof ip, &gpu, &cid), P2P_ETIMEDOUT);
  close(victim);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int handles_forger(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  char ip[64];
  int port, gpu;
  uint64_t vport;
  forge f;
  CHECK_EQ(eph_recv_metadata(fd, ip, sizeof ip, &port, &gpu), 0);
  CHECK_EQ(eph_get_u64(fd, &vport), 0);
  victim_port = (int)vport;
  CHECK_EQ(forge_connect(&f, ip, port, point_at_victim), 0);
  forge_close(&f);
  CHECK_EQ(eph_sync(fd), 0);
  return eph_leak_check();
}

static int test_forged_handles_elsewhere_are_refused(void) {
  CHECK_EQ(eph_run(&hosts, handles_target, handles_forger, NULL, 120), 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_forged_huge_write_queues_bounded_receives),
    CHECK_CASE(test_forged_read_in_tiny_chunks_queues_bounded_sends),
    CHECK_CASE(test_forged_read_flood_is_served_a_few_at_a_time),
    CHECK_CASE(test_forged_write_flood_is_received_a_few_at_a_time),
    CHECK_CASE(test_forged_eager_flood_is_held_back),
    CHECK_CASE(test_forged_handles_elsewhere_are_refused),
};

int main(int argc, char **argv) {
  if (twohost_setup(&hosts)) return 1;
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  twohost_teardown(&hosts);
  return rc;
}
