/* The acceptor's defences, across two namespaces:
 * - 500 silent sockets at the control listener do not stop a legitimate
 *   client from connecting (the oldest silent set-up is dropped to make
 *   room), and a silent socket is closed after TCPX_P2P_HELLO_TIMEOUT_MS,
 *   not after the whole connect timeout; peers that send their HANDLES
 *   and never connect give way too, once older than that limit;
 * - connections beyond TCPX_P2P_MAX_PENDING (not yet accepted) or
 *   TCPX_P2P_MAX_CONNS (open) are refused with P2P_ELIMIT and a message
 *   naming the variable; room made, connecting works again;
 * - out of file descriptors, an incoming connection is closed at once (a
 *   spare descriptor is given up for it) instead of waiting in the
 *   backlog while the acceptor retries accept; with descriptors back, a
 *   client connects. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "ep_harness.h"
#include "forge.h"
#include "twohost.h"

static twohost hosts;

#define SILENT 500

static int server_endpoint(p2p_endpoint **ep, int fd, int op_timeout_ms) {
  p2p_options o;
  eph_options(&o);
  o.gpu_index = EPH_GPU0;
  o.op_timeout_ms = op_timeout_ms;
  CHECK_EQ(eph_create(&o, ep), P2P_OK);
  CHECK_EQ(eph_send_metadata(*ep, fd), 0);
  return 0;
}

static int client_endpoint(p2p_endpoint **ep) {
  p2p_options o;
  eph_options(&o);
  o.gpu_index = EPH_GPU1;
  CHECK_EQ(eph_create(&o, ep), P2P_OK);
  return 0;
}

/* Accept one connection and receive one pattern message on it. */
static int accept_and_recv(p2p_endpoint *ep, uint64_t seed) {
  char ip[64];
  int gpu;
  uint64_t conn;
  CHECK_EQ(p2p_accept(ep, ip, sizeof ip, &gpu, &conn), P2P_OK);
  CHECK_EQ(eph_recv_pattern(ep, conn, 5000, 5000, seed), 0);
  return 0;
}

static int raise_nofile(rlim_t want) {
  struct rlimit rl;
  CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur >= want) return 0;
  rl.rlim_cur = want;
  if (rl.rlim_max < want) rl.rlim_max = want;
  CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  return 0;
}

/* ---- silent sockets ---- */

static int silent_server(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  setenv("TCPX_P2P_HELLO_TIMEOUT_MS", "1000", 1);
  p2p_endpoint *ep;
  CHECK_EQ(server_endpoint(&ep, fd, 0), 0);
  CHECK_EQ(accept_and_recv(ep, 41), 0);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int silent_client(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  char ip[64];
  int port, gpu;
  static int s[SILENT];
  CHECK_EQ(eph_recv_metadata(fd, ip, sizeof ip, &port, &gpu), 0);
  CHECK_EQ(raise_nofile(SILENT + 256), 0);
  /* One silent socket alone: closed after the HELLO limit (1 s here), far
   * sooner than the 20 s connect timeout. */
  int one = eph_tcp_connect(ip, port);
  CHECK(one >= 0);
  CHECK(eph_wait_closed(one, 10000));
  close(one);
  for (int i = 0; i < SILENT; i++) CHECK((s[i] = eph_tcp_connect(ip, port)) >= 0);
  p2p_endpoint *ep;
  uint64_t conn;
  CHECK_EQ(client_endpoint(&ep), 0);
  CHECK_EQ(p2p_connect(ep, ip, gpu, port, &conn), P2P_OK);
  CHECK_EQ(eph_send_pattern(ep, conn, 5000, 41), 0);
  CHECK_EQ(eph_sync(fd), 0);
  for (int i = 0; i < SILENT; i++) close(s[i]);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int test_silent_sockets_do_not_lock_out_clients(void) {
  CHECK_EQ(eph_run(&hosts, silent_server, silent_client, NULL, 180), 0);
  return 0;
}

/* ---- set-ups stalled after their HANDLES ---- */

#define STALLED 4 /* TCPX_P2P_MAX_HANDSHAKES at the server */

static int stalled_server(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  setenv("TCPX_P2P_MAX_HANDSHAKES", "4", 1);
  setenv("TCPX_P2P_HELLO_TIMEOUT_MS", "500", 1);
  p2p_endpoint *ep;
  CHECK_EQ(server_endpoint(&ep, fd, 0), 0);
  CHECK_EQ(accept_and_recv(ep, 43), 0);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int stalled_client(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  char ip[64];
  int port, gpu;
  static forge f[STALLED];
  CHECK_EQ(eph_recv_metadata(fd, ip, sizeof ip, &port, &gpu), 0);
  for (int i = 0; i < STALLED; i++)
    CHECK_EQ(forge_stall_after_handles(&f[i], ip, port), 0);
  usleep(1000000); /* older than the server's early-phase limit */
  p2p_endpoint *ep;
  uint64_t conn;
  CHECK_EQ(client_endpoint(&ep), 0);
  CHECK_EQ(p2p_connect(ep, ip, gpu, port, &conn), P2P_OK);
  CHECK_EQ(eph_send_pattern(ep, conn, 5000, 43), 0);
  CHECK_EQ(eph_sync(fd), 0);
  for (int i = 0; i < STALLED; i++) forge_close(&f[i]);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

/* Peers that send their HANDLES and never connect hold every set-up slot:
 * the oldest of them, past the early-phase limit, gives way. */
static int test_stalled_setups_give_way(void) {
  CHECK_EQ(eph_run(&hosts, stalled_server, stalled_client, NULL, 120), 0);
  return 0;
}

/* ---- pending and open connections ---- */

enum { CAP_PENDING = 2, CAP_CONNS = 3 };

static int caps_server(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  setenv("TCPX_P2P_MAX_PENDING", "2", 1);
  setenv("TCPX_P2P_MAX_CONNS", "3", 1);
  p2p_endpoint *ep;
  uint64_t step;
  CHECK_EQ(server_endpoint(&ep, fd, 0), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0); /* two wait, a third was refused */
  CHECK_EQ(accept_and_recv(ep, 1), 0);
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0); /* a third is pending: 3 open */
  CHECK_EQ(accept_and_recv(ep, 2), 0);
  CHECK_EQ(accept_and_recv(ep, 3), 0);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int caps_client(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  char ip[64];
  int port, gpu;
  uint64_t c[4], step;
  p2p_endpoint *ep;
  CHECK_EQ(eph_recv_metadata(fd, ip, sizeof ip, &port, &gpu), 0);
  CHECK_EQ(client_endpoint(&ep), 0);
  for (int i = 0; i < CAP_PENDING; i++)
    CHECK_EQ(p2p_connect(ep, ip, gpu, port, &c[i]), P2P_OK);
  CHECK_EQ(p2p_connect(ep, ip, gpu, port, &c[2]), P2P_ELIMIT);
  CHECK_STR_CONTAINS(p2p_last_error(), "TCPX_P2P_MAX_PENDING");
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_send_pattern(ep, c[0], 5000, 1), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0); /* one accepted: room for one */
  CHECK_EQ(p2p_connect(ep, ip, gpu, port, &c[2]), P2P_OK);
  CHECK_EQ(p2p_connect(ep, ip, gpu, port, &c[3]), P2P_ELIMIT);
  CHECK_STR_CONTAINS(p2p_last_error(), "TCPX_P2P_MAX_CONNS");
  CHECK_EQ(eph_put_u64(fd, 2), 0);
  CHECK_EQ(eph_send_pattern(ep, c[1], 5000, 2), 0);
  CHECK_EQ(eph_send_pattern(ep, c[2], 5000, 3), 0);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int test_pending_and_open_connections_are_capped(void) {
  CHECK_EQ(eph_run(&hosts, caps_server, caps_client, NULL, 120), 0);
  return 0;
}

/* ---- out of file descriptors ---- */

static int fill_fds(int *fds, int cap) {
  int n = 0;
  while (n < cap) {
    int f = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (f < 0) break;
    fds[n++] = f;
  }
  return n;
}

static int emfile_server(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  p2p_endpoint *ep;
  static int hog[4096];
  uint64_t step;
  struct rlimit old, low;
  CHECK_EQ(server_endpoint(&ep, fd, 0), 0);
  CHECK_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  low = old;
  low.rlim_cur = 1024;
  CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  int n = fill_fds(hog, 4096);
  CHECK(n > 0 && n < 4096); /* the table is full */
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0); /* the client saw its close */
  for (int i = 0; i < n; i++) close(hog[i]);
  CHECK_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  CHECK_EQ(eph_put_u64(fd, 2), 0);
  CHECK_EQ(accept_and_recv(ep, 7), 0);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int emfile_client(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  char ip[64];
  int port, gpu;
  uint64_t step, conn;
  CHECK_EQ(eph_recv_metadata(fd, ip, sizeof ip, &port, &gpu), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0); /* the server is out of fds */
  int s = eph_tcp_connect(ip, port);
  CHECK(s >= 0);
  CHECK(eph_wait_closed(s, 10000)); /* shed, not left in the backlog */
  close(s);
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0); /* descriptors back */
  p2p_endpoint *ep;
  CHECK_EQ(client_endpoint(&ep), 0);
  CHECK_EQ(p2p_connect(ep, ip, gpu, port, &conn), P2P_OK);
  CHECK_EQ(eph_send_pattern(ep, conn, 5000, 7), 0);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int test_out_of_fds_sheds_connections(void) {
  CHECK_EQ(eph_run(&hosts, emfile_server, emfile_client, NULL, 120), 0);
  return 0;
}

/* ---- closed connections are freed ---- */

#define CYCLES 100

/* Until the endpoint holds at most `most` connection structs (closing
 * finishes on the progress thread); 0 when it does. */
static int wait_structs(p2p_endpoint *ep, int most) {
  for (int i = 0; i < 2000 && atomic_load(&ep->conn_structs) > most; i++)
    usleep(5000);
  int n = atomic_load(&ep->conn_structs);
  pthread_mutex_lock(&ep->conns_lock);
  size_t listed = ep->conns.count;
  pthread_mutex_unlock(&ep->conns_lock);
  printf("  after %d connect/close cycles: %d connection structs, %zu in the "
         "table\n", CYCLES, n, listed);
  CHECK(n <= most);
  CHECK(listed <= (size_t)most);
  return 0;
}

/* Even cycles: the client closes; odd ones: the server does. */
static int cycle_server(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  p2p_endpoint *ep;
  CHECK_EQ(server_endpoint(&ep, fd, 0), 0);
  for (int i = 0; i < CYCLES; i++) {
    char ip[64];
    int gpu;
    uint64_t conn;
    CHECK_EQ(p2p_accept(ep, ip, sizeof ip, &gpu, &conn), P2P_OK);
    if (i % 2) CHECK_EQ(p2p_close(ep, conn), P2P_OK);
    CHECK_EQ(eph_sync(fd), 0);
  }
  CHECK_EQ(wait_structs(ep, 1), 0);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int cycle_client(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  char ip[64];
  int port, gpu;
  p2p_endpoint *ep;
  CHECK_EQ(eph_recv_metadata(fd, ip, sizeof ip, &port, &gpu), 0);
  CHECK_EQ(client_endpoint(&ep), 0);
  for (int i = 0; i < CYCLES; i++) {
    uint64_t conn;
    CHECK_EQ(p2p_connect(ep, ip, gpu, port, &conn), P2P_OK);
    if (i % 2 == 0) CHECK_EQ(p2p_close(ep, conn), P2P_OK);
    CHECK_EQ(eph_sync(fd), 0);
  }
  CHECK_EQ(wait_structs(ep, 1), 0);
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int test_closed_connections_are_freed(void) {
  CHECK_EQ(eph_run(&hosts, cycle_server, cycle_client, NULL, 300), 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_silent_sockets_do_not_lock_out_clients),
    CHECK_CASE(test_stalled_setups_give_way),
    CHECK_CASE(test_pending_and_open_connections_are_capped),
    CHECK_CASE(test_out_of_fds_sheds_connections),
    CHECK_CASE(test_closed_connections_are_freed),
};

int main(int argc, char **argv) {
  if (twohost_setup(&hosts)) return 1;
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  twohost_teardown(&hosts);
  return rc;
}
