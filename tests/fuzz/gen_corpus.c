/* Writes the seed corpora of the fuzz targets: a few valid inputs each,
 * made with the project's own encoders so they stay in step with them.
 *   fuzz_gen_corpus DIR   writes DIR/<target>/<name> (DIR: tests/fuzz/corpus)
 * The TCP seeds hold a real handle of a loopback listener that is closed
 * again, so connecting to it is refused. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctrl.h"
#include "net.h"
#include "tcp.h"
#include "tcp_internal.h"

static const char *root;

static int write_seed(const char *target, const char *name, const void *p,
                      size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", root, target);
  if (mkdir(path, 0755) != 0 && errno != EEXIST) {
    perror(path);
    return -1;
  }
  snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
    perror(path);
    return -1;
  }
  return 0;
}

/* ---- fuzz_ctrl ------------------------------------------------------------ */

static uint8_t handle_bytes[3 * CTRL_HANDLE_SIZE];
static uint64_t sizes[100];

static ctrl_msg ctrl_sample(ctrl_type type) {
  ctrl_msg m;
  memset(&m, 0, sizeof m);
  m.type = type;
  switch (type) {
  case CTRL_HELLO:
    m.u.hello = (ctrl_hello){.flags = 1, .gpu_index = 2, .comms_per_lane = 4,
                             .chunk_size = 1 << 20};
    memset(m.u.hello.nonce, 0x5a, CTRL_NONCE_SIZE);
    break;
  case CTRL_AUTH: memset(m.u.auth.mac, 0x3c, CTRL_MAC_SIZE); break;
  case CTRL_HANDLES:
    m.u.handles.count = 3;
    m.u.handles.handles = handle_bytes;
    break;
  case CTRL_SEND:
    m.u.send.seq = 7;
    m.u.send.nseg = 3;
    break;
  case CTRL_SEND_DONE:
  case CTRL_WRITE_DONE:
  case CTRL_READ_DONE:
    m.u.status = (ctrl_status){.id = 7, .status = -6, .size = 4096};
    break;
  case CTRL_WRITE:
  case CTRL_READ:
    m.u.access = (ctrl_access){.id = 9, .region = 3, .offset = 64, .size = 4096};
    memset(m.u.access.key, 0x77, CTRL_KEY_SIZE);
    break;
  case CTRL_READ_DATA: m.u.read_data = (ctrl_read_data){.id = 9, .size = 4096}; break;
  case CTRL_BYE: m.u.bye.reason = -13; break; /* P2P_ELIMIT: a refused set-up */
  case CTRL_READY:
  case CTRL_PING: break;
  }
  return m;
}

static int ctrl_seeds(void) {
  static uint8_t all[1 << 16];
  size_t all_len = 0;
  for (size_t i = 0; i < sizeof handle_bytes; i++) handle_bytes[i] = (uint8_t)i;
  for (size_t i = 0; i < 100; i++) sizes[i] = (i + 1) << 12;
  for (int t = CTRL_HELLO; t <= CTRL_TYPE_MAX; t++) {
    ctrl_msg m = ctrl_sample((ctrl_type)t);
    uint8_t buf[1024];
    size_t len = ctrl_encode(&m, sizes, buf, sizeof buf);
    char name[32];
    snprintf(name, sizeof name, "type%02d", t);
    if (!len || write_seed("fuzz_ctrl", name, buf, len)) return -1;
    memcpy(all + all_len, buf, len);
    all_len += len;
  }
  if (write_seed("fuzz_ctrl", "all_types", all, all_len)) return -1;
  ctrl_msg m = ctrl_sample(CTRL_SEND);
  m.u.send.nseg = 100;
  uint8_t buf[1024];
  size_t len = ctrl_encode(&m, sizes, buf, sizeof buf);
  return len ? write_seed("fuzz_ctrl", "send_100_segments", buf, len) : -1;
}

/* ---- fuzz_metadata (byte 0: IP buffer capacity) --------------------------- */

static int metadata_seed(const char *name, uint8_t ip_cap, int family,
                         const char *ip, uint16_t port, int32_t gpu) {
  uint8_t buf[1 + 22];
  size_t alen = family == AF_INET6 ? 16 : 4;
  buf[0] = ip_cap;
  if (inet_pton(family, ip, buf + 1) != 1) return -1;
  uint16_t port_be = htons(port);
  memcpy(buf + 1 + alen, &port_be, 2);
  memcpy(buf + 1 + alen + 2, &gpu, 4);
  return write_seed("fuzz_metadata", name, buf, 1 + alen + 6);
}

static int metadata_seeds(void) {
  return metadata_seed("v4", 46, AF_INET, "127.0.0.1", 5000, 0) ||
         metadata_seed("v4_port_65535_gpu7", 46, AF_INET, "10.1.2.3", 65535, 7) ||
         metadata_seed("v6", 46, AF_INET6, "::1", 6000, 3) ||
         metadata_seed("v6_small_ip_buffer", 8, AF_INET6, "fe80::1", 1, -1);
}

/* ---- fuzz_tcp_connect and fuzz_tcp_accept --------------------------------- */

/* A real handle of a loopback listener (closed again at once). */
static int lo_handle(net_transport *t, uint8_t out[NET_HANDLE_SIZE]) {
  void *listen = NULL;
  if (net_call(t, listen, 0, out, &listen) != NET_OK) return -1;
  net_call(t, close_listen, listen);
  return 0;
}

/* The handle's checksum, as listen computes it: FNV-1a over the bytes
 * before `check` (so that edited seeds still pass it). */
static void handle_resign(tcp_handle *h) {
  const uint8_t *p = (const uint8_t *)h;
  uint32_t v = 2166136261u;
  for (size_t i = 0; i < offsetof(tcp_handle, check); i++) v = (v ^ p[i]) * 16777619u;
  h->check = v;
}

/* A valid handle with one field changed and the checksum made right. */
static int edited_seed(const tcp_handle *base, const char *name,
                       void (*edit)(tcp_handle *)) {
  uint8_t buf[NET_HANDLE_SIZE] = {0};
  tcp_handle h = *base;
  edit(&h);
  handle_resign(&h);
  memcpy(buf, &h, sizeof h);
  return write_seed("fuzz_tcp_connect", name, buf, sizeof buf);
}

static void edit_v6_loopback(tcp_handle *h) {
  h->family = AF_INET6;
  memset(h->addr, 0, 16);
  h->addr[15] = 1;
}
static void edit_port_zero(tcp_handle *h) { h->port = 0; }
static void edit_no_streams(tcp_handle *h) { h->nstreams = 0; }
static void edit_too_many_streams(tcp_handle *h) { h->nstreams = TCP_MAX_STREAMS + 1; }
static void edit_bad_family(tcp_handle *h) { h->family = 0xffff; }
static void edit_one_stream(tcp_handle *h) { h->nstreams = 1; }

static int connect_seeds(net_transport *t) {
  uint8_t h[NET_HANDLE_SIZE + 1];
  if (lo_handle(t, h)) return -1;
  if (write_seed("fuzz_tcp_connect", "refused_port", h, NET_HANDLE_SIZE)) return -1;
  h[NET_HANDLE_SIZE] = 1; /* device 1: none */
  if (write_seed("fuzz_tcp_connect", "no_such_device", h, sizeof h)) return -1;
  tcp_handle th;
  memcpy(&th, h, sizeof th);
  th.connect_magic = TCP_CONNECT_MAGIC;
  th.connect_id = 1;
  memcpy(h, &th, sizeof th);
  if (write_seed("fuzz_tcp_connect", "pending_id", h, NET_HANDLE_SIZE)) return -1;
  th.connect_magic = TCP_CONNECTED_MAGIC;
  memcpy(h, &th, sizeof th);
  if (write_seed("fuzz_tcp_connect", "finished", h, NET_HANDLE_SIZE)) return -1;
  th.connect_magic = 0;
  th.connect_id = 0;
  const tcp_handle base = th;
  th.check ^= 1;
  memcpy(h, &th, sizeof th);
  if (write_seed("fuzz_tcp_connect", "bad_checksum", h, NET_HANDLE_SIZE)) return -1;
  return edited_seed(&base, "v6_loopback", edit_v6_loopback) ||
         edited_seed(&base, "port_zero", edit_port_zero) ||
         edited_seed(&base, "no_streams", edit_no_streams) ||
         edited_seed(&base, "too_many_streams", edit_too_many_streams) ||
         edited_seed(&base, "bad_family", edit_bad_family) ||
         edited_seed(&base, "one_stream", edit_one_stream);
}

/* One stream's bytes for the accept target: hello, then the headers and
 * parts of `nmsg` messages of `size` bytes (those of stream `s`, split as
 * the transport splits them with the target's options: 2 streams,
 * min_split 64). */
static size_t accept_stream(uint8_t *out, int s, uint64_t comm_nonce,
                            size_t size, int nmsg) {
  static tcp_comm layout; /* only nstreams and min_split are read */
  layout.nstreams = 2;
  layout.min_split = 64;
  tcp_hello hello = {.magic = TCP_HELLO_MAGIC, .version = TCP_PROTO_VERSION,
                     .nstreams = 2, .stream = (uint16_t)s,
                     .comm_nonce = comm_nonce}; /* nonce: the target fills it */
  size_t len = 0;
  memcpy(out, &hello, sizeof hello);
  len += sizeof hello;
  for (int k = 0; k < nmsg; k++) {
    tcp_msg_hdr hdr = {.seq = (uint32_t)k, .tag = k, .size = size};
    memcpy(out + len, &hdr, sizeof hdr);
    len += sizeof hdr;
    size_t off, part;
    tcp_part_range(&layout, (uint64_t)k, size, s, &off, &part);
    memset(out + len, 0x40 + k, part);
    len += part;
  }
  return len;
}

/* flags byte, then u16-length-prefixed chunks, one per connection. */
static int accept_seed(const char *name, uint8_t flags, int nconn,
                       uint64_t nonce, size_t size, int nmsg) {
  static uint8_t buf[1 << 16];
  size_t len = 0;
  buf[len++] = flags;
  for (int s = 0; s < nconn; s++) {
    uint8_t stream[8192];
    size_t n = accept_stream(stream, s % 2, nonce + (uint64_t)(s / 2), size, nmsg);
    buf[len++] = (uint8_t)n;
    buf[len++] = (uint8_t)(n >> 8);
    memcpy(buf + len, stream, n);
    len += n;
  }
  return write_seed("fuzz_tcp_accept", name, buf, len);
}

static int accept_seeds(void) {
  /* bit 0 nonce spliced in; bits 1-2 connections - 1; bits 6-7 size class
   * (2: 4096-byte receives). */
  return accept_seed("one_comm_one_msg", 1 | 1 << 1 | 2 << 6, 2, 11, 100, 1) ||
         accept_seed("one_comm_three_msgs", 1 | 1 << 1 | 2 << 6, 2, 12, 50, 3) ||
         accept_seed("two_comms", 1 | 3 << 1 | 2 << 6, 4, 13, 10, 1) ||
         accept_seed("too_big_for_receive", 1 | 1 << 1 | 1 << 6, 2, 14, 100, 1) ||
         accept_seed("grouped_receive", 1 | 1 << 1 | 2 << 3 | 2 << 6, 2, 15, 30, 3) ||
         accept_seed("half_a_comm", 1, 1, 16, 10, 1) ||
         accept_seed("wrong_nonce", 1 << 1 | 2 << 6, 2, 17, 10, 1);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR (e.g. tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  root = argv[1];
  if (mkdir(root, 0755) != 0 && errno != EEXIST) {
    perror(root);
    return 1;
  }
  setenv("TCPX_P2P_SOCKET_IFNAME", "lo", 1);
  tcp_options opts;
  tcp_options_default(&opts);
  opts.allow_loopback = 1;
  net_transport *t = NULL;
  if (net_tcp_create(&opts, &t) != NET_OK) {
    fprintf(stderr, "loopback transport: %s\n", err_get());
    return 1;
  }
  int rc = ctrl_seeds() || metadata_seeds() || connect_seeds(t) || accept_seeds();
  t->ops->destroy(t);
  if (rc) fprintf(stderr, "writing seeds failed\n");
  return rc ? 1 : 0;
}
