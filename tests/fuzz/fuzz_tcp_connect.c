/* libFuzzer target: the built-in TCP transport's connect (src/net/tcp.c)
 * given a 128-byte handle from the peer, i.e. from the network.
 *
 * Input: bytes 0..127 are the handle (zero-padded when shorter); byte 128,
 * when present, is the device number (as a signed byte). A connect that
 * starts is driven to its end, so nothing stays pending between inputs.
 *
 * Loopback only: the transport has only `lo` (TCPX_P2P_SOCKET_IFNAME=lo),
 * and inputs whose handle names a non-loopback address are skipped before
 * connect sees them, whether or not their checksum would pass. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "net.h"
#include "sock.h"
#include "tcp.h"
#include "tcp_internal.h"

/* How long a pending connect is retried: loopback connects finish or
 * fail at once; this only bounds one stuck behind a full backlog. */
#define CONNECT_LIMIT_NS (5ull * 1000000000ull)

static net_transport *transport;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  setenv("TCPX_P2P_SOCKET_IFNAME", "lo", 1);
  tcp_options opts;
  tcp_options_default(&opts);
  opts.allow_loopback = 1;
  opts.nthreads = 1;
  if (net_tcp_create(&opts, &transport) != NET_OK) {
    fprintf(stderr, "fuzz_tcp_connect: no loopback transport: %s\n", err_get());
    abort();
  }
  return 0;
}

static int is_loopback(const tcp_handle *h) {
  static const uint8_t v6_loopback[16] = {[15] = 1};
  if (h->family == AF_INET) return h->addr[0] == 127;
  if (h->family == AF_INET6) return memcmp(h->addr, v6_loopback, 16) == 0;
  return 1; /* any other family is refused before a socket is made */
}

/* Call connect again with the same handle (NCCL semantics) until it
 * gives a comm or fails. */
static void drive_pending(int dev, uint8_t *handle) {
  uint64_t until = clock_ns() + CONNECT_LIMIT_NS;
  while (clock_ns() < until) {
    void *comm = NULL;
    int rc = net_call(transport, connect, dev, handle, &comm, NULL);
    if (rc != NET_OK) {
      FUZZ_ASSERT(err_get()[0] != '\0');
      return;
    }
    if (comm) {
      /* Something listens on that loopback port: close at once. */
      net_call(transport, close_send, comm);
      return;
    }
    usleep(50);
  }
  /* Not a crash: the transport keeps it pending until it is destroyed. */
  fprintf(stderr, "fuzz_tcp_connect: connect still pending after 5 s\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t handle[NET_HANDLE_SIZE] = {0};
  memcpy(handle, data, size < sizeof handle ? size : sizeof handle);
  int dev = size > NET_HANDLE_SIZE ? (int8_t)data[NET_HANDLE_SIZE] : 0;
  tcp_handle h;
  memcpy(&h, handle, sizeof h);
  if (!is_loopback(&h)) return -1; /* never leave this host */

  void *comm = NULL;
  err_clear();
  int rc = net_call(transport, connect, dev, handle, &comm, NULL);
  if (rc != NET_OK) {
    FUZZ_ASSERT(comm == NULL);
    FUZZ_ASSERT(err_get()[0] != '\0');
    return 0;
  }
  if (comm) {
    net_call(transport, close_send, comm);
    return 0;
  }
  drive_pending(dev, handle);
  return 0;
}
