/* libFuzzer target: what the built-in TCP transport reads from connections
 * it did not make (src/net/tcp.c accept: the per-stream hello; then
 * src/net/tcp_io.c: message headers and data of an accepted comm).
 *
 * Per input: a fresh listen comm on lo (2 streams per comm); up to four
 * plain loopback connections to it, each sending its chunk of the input
 * and then closing its sending side; accept is called until it stops
 * producing comms; every comm produced gets receives posted and tested
 * until they finish or fail; everything is closed.
 *
 * Input layout:
 *   byte 0   flags: bit 0 = write the listener's real nonce into each
 *            hello (bytes 16..23), so the fuzzer can get past the nonce
 *            check; bits 1-2 = connections - 1; bits 3-5 = buffers per
 *            grouped receive - 1 (capped by the transport); bits 6-7 =
 *            receive buffer size class
 *   then per connection: u16 little-endian length, then that many bytes
 *            (cut short at the end of the input). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "net.h"
#include "sock.h"
#include "tcp.h"
#include "tcp_internal.h"

#define MAX_CONNS 4
#define ACCEPT_ROUNDS 8
#define MAX_COMMS (MAX_CONNS / 2)
#define RECV_ROUNDS 4
/* How long a receive may take once every stream has ended: far more than
 * loopback needs, so that a slow, loaded machine does not fail the run. */
#define TEST_LIMIT_NS (5ull * 1000000000ull)

static net_transport *transport;
static int verbose; /* FUZZ_VERBOSE=1: say what happened to each input */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  setenv("TCPX_P2P_SOCKET_IFNAME", "lo", 1);
  verbose = getenv("FUZZ_VERBOSE") != NULL;
  tcp_options opts;
  tcp_options_default(&opts);
  opts.allow_loopback = 1;
  opts.nstreams = 2;
  opts.nthreads = 1;
  opts.min_split = 64; /* messages above 64 bytes are split over streams */
  if (net_tcp_create(&opts, &transport) != NET_OK) {
    fprintf(stderr, "fuzz_tcp_accept: no loopback transport: %s\n", err_get());
    abort();
  }
  return 0;
}

typedef struct chunk {
  const uint8_t *p;
  size_t len;
} chunk;

/* Split the input after the flags byte into length-prefixed chunks. */
static int split_chunks(const uint8_t *data, size_t size, int want,
                        chunk *out) {
  size_t off = 0;
  int n = 0;
  while (n < want && off < size) {
    size_t len = data[off];
    if (off + 1 < size) len |= (size_t)data[off + 1] << 8;
    off += 2;
    if (off > size) off = size;
    if (len > size - off) len = size - off;
    out[n++] = (chunk){data + off, len};
    off += len;
  }
  return n;
}

/* A plain non-blocking client of the listener; -1 when connect fails. */
static int raw_connect(const tcp_handle *h) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  FUZZ_ASSERT(fd >= 0);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(h->port)};
  memcpy(&to.sin_addr, h->addr, 4);
  FUZZ_ASSERT(to.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
  if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Send what the socket takes (the listener reads nothing before accept),
 * then end the stream. */
static void raw_send(int fd, const uint8_t *p, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = send(fd, p + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w <= 0) break;
    off += (size_t)w;
  }
  shutdown(fd, SHUT_WR);
}

/* Test a receive until it is done or fails; returns test's code. */
static int wait_receive(void *req, int nbuf, size_t cap, int *done) {
  uint64_t until = clock_ns() + TEST_LIMIT_NS;
  *done = 0;
  while (clock_ns() < until) {
    size_t got[TCP_MAX_RECVS];
    int rc = net_call(transport, test, req, done, got);
    if (rc != NET_OK) return rc;
    if (*done) {
      for (int b = 0; b < nbuf; b++) FUZZ_ASSERT(got[b] <= cap);
      return NET_OK;
    }
    usleep(20);
  }
  return NET_OK;
}

/* Post receives on an accepted comm, one after another, each tested until
 * it ends: the data the peer sent either fills them or fails the comm. */
static void exercise_comm(void *comm, uint8_t flags) {
  int nbuf = 1 + ((flags >> 3) & 7);
  net_props props;
  FUZZ_ASSERT(net_call(transport, get_properties, 0, &props) == NET_OK);
  if (nbuf > props.max_recvs) nbuf = props.max_recvs;
  static const size_t caps[4] = {0, 16, 4096, 1 << 20};
  size_t cap = caps[flags >> 6];
  uint8_t *bufs = malloc((size_t)nbuf * (cap ? cap : 1));
  FUZZ_ASSERT(bufs != NULL);
  void *data[TCP_MAX_RECVS];
  size_t sizes[TCP_MAX_RECVS];
  int tags[TCP_MAX_RECVS];
  for (int i = 0; i < nbuf; i++) {
    data[i] = bufs + (size_t)i * cap;
    sizes[i] = cap;
    tags[i] = i;
  }
  for (int round = 0; round < RECV_ROUNDS; round++) {
    void *req = NULL;
    int rc = net_call(transport, irecv, comm, nbuf, data, sizes, tags, NULL, &req);
    if (rc != NET_OK || !req) break;
    int done;
    rc = wait_receive(req, nbuf, cap, &done);
    if (rc != NET_OK) {
      FUZZ_ASSERT(err_get()[0] != '\0');
      if (verbose) fprintf(stderr, "  receive %d failed: %s\n", round, err_get());
      break;
    }
    FUZZ_ASSERT(done); /* every stream has ended: it cannot wait forever */
    if (verbose) fprintf(stderr, "  receive %d done\n", round);
  }
  free(bufs);
}

/* Accept until no more comms come; exercise and close each. */
static void accept_all(void *listen, uint8_t flags) {
  for (int round = 0, comms = 0; round < ACCEPT_ROUNDS; round++) {
    void *comm = NULL;
    int rc = net_call(transport, accept, listen, &comm, NULL);
    FUZZ_ASSERT(rc == NET_OK); /* bad peers are dropped, not errors */
    if (!comm) continue;
    FUZZ_ASSERT(++comms <= MAX_COMMS);
    if (verbose) fprintf(stderr, " comm %d accepted\n", comms);
    exercise_comm(comm, flags);
    net_call(transport, close_recv, comm);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t flags = data[0];
  chunk chunks[MAX_CONNS];
  int n = split_chunks(data + 1, size - 1, 1 + ((flags >> 1) & 3), chunks);

  uint8_t handle[NET_HANDLE_SIZE];
  void *listen = NULL;
  FUZZ_ASSERT(net_call(transport, listen, 0, handle, &listen) == NET_OK);
  tcp_handle h;
  memcpy(&h, handle, sizeof h);

  int fds[MAX_CONNS];
  for (int i = 0; i < n; i++) {
    uint8_t *bytes = malloc(chunks[i].len + 1);
    FUZZ_ASSERT(bytes != NULL);
    memcpy(bytes, chunks[i].p, chunks[i].len);
    size_t at = offsetof(tcp_hello, listen_nonce);
    if ((flags & 1) && chunks[i].len >= at + sizeof h.listen_nonce)
      memcpy(bytes + at, &h.listen_nonce, sizeof h.listen_nonce);
    fds[i] = raw_connect(&h);
    if (fds[i] >= 0) raw_send(fds[i], bytes, chunks[i].len);
    free(bytes);
  }
  accept_all(listen, flags);
  FUZZ_ASSERT(net_call(transport, close_listen, listen) == NET_OK);
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
  return 0;
}
