/* tcpx-p2p send / recv: a real transfer through the transport layer between
 * two hosts. The receiver listens and writes its 128-byte handle (hex) to a
 * file; the sender reads it, connects and sends; both check and report.
 *
 *   tcpx-p2p recv --handle-file F [--size BYTES] [--iters N] [--plugin P]
 *   tcpx-p2p send --handle-file F [--size BYTES] [--iters N] [--plugin P]
 *
 * The data is pseudo-random (made once, before timing starts), the receive
 * buffer is poisoned before each receive and checked byte for byte. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "net.h"
#include "plugin.h"
#include "prng.h"
#include "sock.h"
#include "tools.h"

#define XFER_TIMEOUT_NS (60ull * 1000000000ull)

typedef struct xfer_args {
  const char *handle_file;
  const char *plugin;
  size_t size;
  int iters;
} xfer_args;

static int parse_args(int argc, char **argv, xfer_args *a) {
  *a = (xfer_args){.size = 256u << 20, .iters = 8};
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(argv[i], "--handle-file") && v) a->handle_file = argv[++i];
    else if (!strcmp(argv[i], "--plugin") && v) a->plugin = argv[++i];
    else if (!strcmp(argv[i], "--size") && v) a->size = strtoull(argv[++i], NULL, 0);
    else if (!strcmp(argv[i], "--iters") && v) a->iters = atoi(argv[++i]);
    else return -1;
  }
  return a->handle_file && a->iters > 0 ? 0 : -1;
}

static int wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
  return 0;
}

static int usage(const char *cmd) {
  fprintf(stderr, "usage: tcpx-p2p %s --handle-file F [--size BYTES] "
          "[--iters N] [--plugin PATH]\n", cmd);
  return TOOL_USAGE;
}

static int fail(const char *cmd, const char *what) {
  fprintf(stderr, "tcpx-p2p %s: %s: %s\n", cmd, what, err_get());
  return TOOL_FAILED;
}

/* Write the handle as hex to a temporary name, then rename: the sender
 * never reads half a handle. */
static int write_handle(const char *path, const unsigned char *h) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return err_sys(-1, errno, "open %s", tmp);
  for (int i = 0; i < NET_HANDLE_SIZE; i++) fprintf(f, "%02x", h[i]);
  fputc('\n', f);
  if (fclose(f) != 0 || rename(tmp, path) != 0)
    return err_sys(-1, errno, "write %s", path);
  return 0;
}

static int read_handle(const char *path, unsigned char *h) {
  uint64_t start = clock_ns();
  FILE *f;
  while (!(f = fopen(path, "r"))) {
    if (clock_ns() - start > XFER_TIMEOUT_NS)
      return err_sys(-1, errno, "no handle file %s after 60 s", path);
    usleep(10000);
  }
  int ok = 1;
  for (int i = 0; i < NET_HANDLE_SIZE && ok; i++) {
    unsigned int b;
    ok = fscanf(f, "%2x", &b) == 1;
    h[i] = (unsigned char)b;
  }
  fclose(f);
  return ok ? 0 : err_set(-1, "handle file %s is not 128 hex bytes", path);
}

static int wait_done(net_transport *t, void *req, size_t *size) {
  uint64_t start = clock_ns();
  int done = 0;
  while (!done) {
    int rc = net_call(t, test, req, &done, size);
    if (rc != NET_OK) return rc;
    if (clock_ns() - start > XFER_TIMEOUT_NS)
      return err_set(-1, "transfer did not finish within 60 s");
  }
  return 0;
}

static void report(const char *cmd, const char *peer, size_t bytes,
                   uint64_t ns) {
  double secs = (double)ns / 1e9;
  printf("%s: %zu bytes in %.3f s = %.2f GB/s, peer %s\n", cmd, bytes, secs,
         (double)bytes / secs / 1e9, peer);
}

static void peer_of(net_transport *t, void *comm, char *buf, size_t len) {
  if (t->abi_version == 0) /* built-in: it knows its socket's peer */
    net_tcp_comm_peer(comm, buf, len);
  else
    snprintf(buf, len, "(not reported by plugin %s)", t->name);
}

int cmd_recv(int argc, char **argv) {
  xfer_args a;
  if (wants_help(argc, argv)) return usage("recv"), TOOL_OK;
  if (parse_args(argc, argv, &a) != 0) return usage("recv");
  net_transport *t;
  if (net_open(a.plugin, 0, NULL, &t) != NET_OK) return fail("recv", "transport");
  unsigned char handle[NET_HANDLE_SIZE];
  void *lcomm = NULL, *comm = NULL;
  net_dev_handle dh = {0}, *dhp = &dh;
  if (net_call(t, listen, 0, handle, &lcomm) != NET_OK) return fail("recv", "listen");
  if (write_handle(a.handle_file, handle) != 0) return fail("recv", "handle");
  uint64_t start = clock_ns();
  while (!comm) {
    if (net_call(t, accept, lcomm, &comm, &dhp) != NET_OK) return fail("recv", "accept");
    if (!comm && clock_ns() - start > XFER_TIMEOUT_NS) {
      err_set(-1, "no sender within 60 s");
      return fail("recv", "accept");
    }
    if (!comm) usleep(1000);
  }
  net_call(t, close_listen, lcomm);
  char peer[128];
  peer_of(t, comm, peer, sizeof peer);
  printf("recv: accepted a connection from %s\n", peer);

  unsigned char *buf = malloc(a.size + 1), *want = malloc(a.size + 1);
  if (!buf || !want) return err_set(-1, "out of memory"), fail("recv", "buffers");
  prng_fill(want, a.size, 1);
  uint64_t busy_ns = 0;
  int rc = TOOL_OK;
  for (int i = 0; i < a.iters && rc == TOOL_OK; i++) {
    memset(buf, 0xA5, a.size);
    void *data = buf, *mh = NULL, *req = NULL;
    size_t cap = a.size, got = 0;
    int tag = 0;
    net_call(t, reg_mr, comm, buf, a.size, NCCL_PTR_HOST, &mh);
    uint64_t t0 = clock_ns();
    while (!req)
      if (net_call(t, irecv, comm, 1, &data, &cap, &tag, &mh, &req) != NET_OK)
        return fail("recv", "irecv");
    if (wait_done(t, req, &got) != 0) return fail("recv", "receive");
    busy_ns += clock_ns() - t0;
    net_call(t, dereg_mr, comm, mh);
    if (got != a.size || memcmp(buf, want, a.size) != 0) {
      fprintf(stderr, "recv: message %d: %zu bytes, data %s\n", i, got,
              memcmp(buf, want, a.size) ? "DIFFERS" : "equal");
      rc = TOOL_FAILED;
    }
  }
  if (rc == TOOL_OK) {
    report("recv", peer, a.size * (size_t)a.iters, busy_ns);
    printf("recv: all %d messages byte-exact\n", a.iters);
  }
  free(buf);
  free(want);
  net_call(t, close_recv, comm);
  t->ops->destroy(t);
  return rc;
}

int cmd_send(int argc, char **argv) {
  xfer_args a;
  if (wants_help(argc, argv)) return usage("send"), TOOL_OK;
  if (parse_args(argc, argv, &a) != 0) return usage("send");
  net_transport *t;
  if (net_open(a.plugin, 0, NULL, &t) != NET_OK) return fail("send", "transport");
  unsigned char handle[NET_HANDLE_SIZE];
  if (read_handle(a.handle_file, handle) != 0) return fail("send", "handle");
  void *comm = NULL;
  uint64_t start = clock_ns();
  while (!comm) {
    if (net_call(t, connect, 0, handle, &comm, NULL) != NET_OK)
      return fail("send", "connect");
    if (!comm && clock_ns() - start > XFER_TIMEOUT_NS) {
      err_set(-1, "not connected within 60 s");
      return fail("send", "connect");
    }
  }
  char peer[128];
  peer_of(t, comm, peer, sizeof peer);
  printf("send: connected to %s\n", peer);
  unsigned char *buf = malloc(a.size + 1);
  if (!buf) return err_set(-1, "out of memory"), fail("send", "buffer");
  prng_fill(buf, a.size, 1);
  uint64_t busy_ns = 0;
  for (int i = 0; i < a.iters; i++) {
    void *mh = NULL, *req = NULL;
    net_call(t, reg_mr, comm, buf, a.size, NCCL_PTR_HOST, &mh);
    uint64_t t0 = clock_ns();
    while (!req)
      if (net_call(t, isend, comm, buf, a.size, 0, mh, &req) != NET_OK)
        return fail("send", "isend");
    if (wait_done(t, req, NULL) != 0) return fail("send", "send");
    busy_ns += clock_ns() - t0;
    net_call(t, dereg_mr, comm, mh);
  }
  report("send", peer, a.size * (size_t)a.iters, busy_ns);
  free(buf);
  net_call(t, close_send, comm);
  t->ops->destroy(t);
  return TOOL_OK;
}
