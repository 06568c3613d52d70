/* Endpoint test helpers: see ep_harness.h. */
#include "ep_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define EPH_HAVE_LSAN 1
#endif

/* ---- endpoints and pairing ---- */

void eph_options(p2p_options *o) {
  p2p_options_init(o);
  /* The built-in TCP transport, unless a run names a plugin (the strict
   * TCPX model: tests/strict.cmake). */
  const char *plugin = getenv("TCPX_P2P_NET_PLUGIN");
  o->plugin = plugin && *plugin ? plugin : "builtin";
  o->auth_token = NULL;
  o->connect_timeout_ms = 20000;
}

int eph_create(const p2p_options *o, p2p_endpoint **ep) {
  p2p_options dflt;
  if (!o) {
    eph_options(&dflt);
    o = &dflt;
  }
  int rc = p2p_endpoint_create(o, ep);
  if (rc != P2P_OK)
    fprintf(stderr, "  p2p_endpoint_create: %s: %s\n", p2p_strerror(rc),
            p2p_last_error());
  return rc;
}

int eph_send_metadata(p2p_endpoint *ep, int fd) {
  uint8_t md[P2P_METADATA_MAX];
  size_t len = sizeof md;
  int rc = p2p_get_metadata(ep, md, &len);
  if (rc != P2P_OK) {
    fprintf(stderr, "  p2p_get_metadata: %s\n", p2p_last_error());
    return rc;
  }
  uint64_t n = len;
  if (oob_send(fd, &n, sizeof n) || oob_send(fd, md, len)) return -1;
  return 0;
}

int eph_recv_metadata(int fd, char *ip, size_t ip_len, int *port, int *gpu) {
  uint8_t md[P2P_METADATA_MAX];
  uint64_t n = 0;
  if (oob_recv(fd, &n, sizeof n) || n > sizeof md || oob_recv(fd, md, n))
    return -1;
  int rc = p2p_parse_metadata(md, n, ip, ip_len, port, gpu);
  if (rc != P2P_OK)
    fprintf(stderr, "  p2p_parse_metadata: %s\n", p2p_last_error());
  return rc;
}

int eph_serve(p2p_endpoint *ep, int fd, uint64_t *conn, char *peer_ip,
              size_t ip_len, int *peer_gpu) {
  char ip[64];
  int gpu;
  if (eph_send_metadata(ep, fd)) return -1;
  int rc = p2p_accept(ep, ip, sizeof ip, &gpu, conn);
  if (rc != P2P_OK) {
    fprintf(stderr, "  p2p_accept: %s: %s\n", p2p_strerror(rc), p2p_last_error());
    return rc;
  }
  if (peer_ip) snprintf(peer_ip, ip_len, "%s", ip);
  if (peer_gpu) *peer_gpu = gpu;
  return 0;
}

int eph_dial(p2p_endpoint *ep, int fd, uint64_t *conn) {
  char ip[64];
  int port, gpu;
  if (eph_recv_metadata(fd, ip, sizeof ip, &port, &gpu)) return -1;
  int rc = p2p_connect(ep, ip, gpu, port, conn);
  if (rc != P2P_OK)
    fprintf(stderr, "  p2p_connect %s:%d: %s: %s\n", ip, port, p2p_strerror(rc),
            p2p_last_error());
  return rc;
}

/* ---- out-of-band values ---- */

int eph_put_u64(int fd, uint64_t v) { return oob_send(fd, &v, sizeof v); }

int eph_get_u64(int fd, uint64_t *v) { return oob_recv(fd, v, sizeof *v); }

int eph_sync(int fd) {
  uint8_t b = 1;
  return oob_send(fd, &b, 1) || oob_recv(fd, &b, 1) ? -1 : 0;
}

/* ---- patterns ---- */

/* splitmix64: a good 64-bit mix of (seed, word index). */
static uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

static uint64_t pat_word(uint64_t seed, uint64_t word) {
  return mix64(word ^ mix64(seed));
}

/* Byte `pos` of pattern `seed` (used at unaligned ends). */
static uint8_t pat_byte(uint64_t seed, uint64_t pos) {
  return (uint8_t)(pat_word(seed, pos / 8) >> (8 * (pos % 8)));
}

void pat_fill(void *buf, size_t len, uint64_t seed) {
  uint8_t *p = buf;
  uint64_t s = mix64(seed);
  size_t words = len / 8;
  for (size_t w = 0; w < words; w++) {
    uint64_t v = mix64((uint64_t)w ^ s);
    memcpy(p + 8 * w, &v, 8);
  }
  for (size_t i = words * 8; i < len; i++) p[i] = pat_byte(seed, i);
}

int pat_check(const void *buf, size_t len, uint64_t seed, const char *what) {
  const uint8_t *p = buf;
  uint64_t s = mix64(seed);
  size_t words = len / 8, bad = (size_t)-1;
  for (size_t w = 0; w < words && bad == (size_t)-1; w++) {
    uint64_t v = mix64((uint64_t)w ^ s), got;
    memcpy(&got, p + 8 * w, 8);
    if (got != v)
      for (size_t i = 8 * w; i < 8 * w + 8; i++)
        if (p[i] != pat_byte(seed, i)) {
          bad = i;
          break;
        }
  }
  for (size_t i = words * 8; i < len && bad == (size_t)-1; i++)
    if (p[i] != pat_byte(seed, i)) bad = i;
  if (bad == (size_t)-1) return 1;
  fprintf(stderr, "  %s: pattern %llu mismatch at byte %zu of %zu: 0x%02x, "
          "want 0x%02x\n", what ? what : "pat_check", (unsigned long long)seed,
          bad, len, p[bad], pat_byte(seed, bad));
  return 0;
}

int all_bytes(const void *buf, size_t len, uint8_t b, const char *what) {
  const uint8_t *p = buf;
  for (size_t i = 0; i < len; i++)
    if (p[i] != b) {
      fprintf(stderr, "  %s: byte %zu of %zu is 0x%02x, want 0x%02x\n",
              what ? what : "all_bytes", i, len, p[i], b);
      return 0;
    }
  return 1;
}

/* ---- guarded buffers ---- */

uint8_t *gbuf_new(size_t size) {
  uint8_t *p = malloc(size + EPH_GUARD);
  if (!p) {
    fprintf(stderr, "  gbuf_new: out of memory (%zu bytes)\n", size);
    return NULL;
  }
  memset(p, EPH_POISON, size);
  memset(p + size, EPH_GUARD_BYTE, EPH_GUARD);
  return p;
}

int gbuf_guard_ok(const uint8_t *buf, size_t size, const char *what) {
  return all_bytes(buf + size, EPH_GUARD, EPH_GUARD_BYTE, what);
}

void gbuf_free(uint8_t *buf, size_t size) {
  (void)size;
  free(buf);
}

/* ---- misc ---- */

double eph_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int eph_leak_check(void) {
#ifdef EPH_HAVE_LSAN
  return __lsan_do_recoverable_leak_check() ? 1 : 0;
#else
  return 0;
#endif
}

int eph_run(const twohost *th, twohost_fn side0, twohost_fn side1, void *arg,
            int timeout_s) {
  twohost_fn fn[2] = {side0, side1};
  return twohost_run(th, fn, arg, timeout_s, NULL);
}

typedef struct pair_spec {
  eph_body body[2];
  const p2p_options *opts[2];
  void *arg;
} pair_spec;

static int pair_side(const twohost *th, int side, int fd, void *arg) {
  (void)th;
  const pair_spec *spec = arg;
  /* EPH_SIDE0_ENV / EPH_SIDE1_ENV ("VAR=VALUE"): a setting for one side's
   * process only, for what p2p_options does not carry. */
  const char *only = getenv(side ? "EPH_SIDE1_ENV" : "EPH_SIDE0_ENV");
  if (only && *only) putenv(strdup(only));
  p2p_options o;
  eph_options(&o);
  o.gpu_index = side == 0 ? EPH_GPU0 : EPH_GPU1;
  if (spec->opts[side]) o = *spec->opts[side];
  p2p_endpoint *ep;
  uint64_t conn = 0;
  if (eph_create(&o, &ep)) return 2;
  int rc = side == 0 ? eph_serve(ep, fd, &conn, NULL, 0, NULL)
                     : eph_dial(ep, fd, &conn);
  if (rc) return 3;
  rc = spec->body[side](ep, conn, fd, side, spec->arg);
  if (rc) return rc;
  if (eph_sync(fd)) return 4;  /* the peer is done with the connection */
  p2p_endpoint_destroy(ep);
  return eph_leak_check() ? 5 : 0;
}

int eph_pair_run(const twohost *th, eph_body body0, eph_body body1, void *arg,
                 int timeout_s) {
  return eph_pair_run_opts(th, NULL, NULL, body0, body1, arg, timeout_s);
}

int eph_pair_run_opts(const twohost *th, const p2p_options *opts0,
                      const p2p_options *opts1, eph_body body0, eph_body body1,
                      void *arg, int timeout_s) {
  pair_spec spec = {{body0, body1}, {opts0, opts1}, arg};
  return eph_run(th, pair_side, pair_side, &spec, timeout_s);
}

int eph_tcp_connect(const char *ip, int port) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    fprintf(stderr, "  eph_tcp_connect %s:%d: %s\n", ip, port, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

int eph_wait_closed(int fd, int limit_ms) {
  double deadline = eph_now_ms() + limit_ms;
  char buf[4096];
  for (;;) {
    double left = deadline - eph_now_ms();
    if (left <= 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, (int)left + 1);
    if (n < 0 && errno != EINTR) return 0;
    if (n <= 0) continue;
    ssize_t got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) return 1;
  }
}

static int find_ip_tool(char *out, size_t cap) {
  static const char *dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    snprintf(out, cap, "%s/ip", dirs[i]);
    if (access(out, X_OK) == 0) return 0;
  }
  return -1;
}

int eph_ip(char *const args[]) {
  char path[64];
  char *argv[16] = {(char *)"ip"};
  int n = 1;
  for (; args[n - 1] && n < 15; n++) argv[n] = args[n - 1];
  argv[n] = NULL;
  if (find_ip_tool(path, sizeof path)) {
    fprintf(stderr, "  eph_ip: no `ip` tool\n");
    return -1;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execv(path, argv);
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
  fprintf(stderr, "  eph_ip: `ip %s ...` failed (status 0x%x)\n", argv[1], st);
  return -1;
}

/* ---- two-sided and one-sided transfers with checks ---- */

/* Register a pattern-filled buffer of `size` bytes and send it. */
int eph_send_pattern(p2p_endpoint *ep, uint64_t conn, size_t size,
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
int eph_recv_pattern(p2p_endpoint *ep, uint64_t conn, size_t size,
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

/* Target: advertise a poisoned buffer of `size`, let the peer write
 * pattern wseed and check it, then refill it with rseed for the peer to
 * read back. */
int eph_onesided_target(p2p_endpoint *ep, uint64_t conn, int fd, size_t size,
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
int eph_access(p2p_endpoint *ep, uint64_t conn, p2p_op_kind kind, uint64_t mr,
               uint8_t *ptr, size_t size, const uint8_t *desc, int async) {
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

int eph_onesided_initiator(p2p_endpoint *ep, uint64_t conn, int fd,
                           size_t size, uint64_t wseed, uint64_t rseed,
                           int async) {
  uint8_t desc[P2P_DESC_SIZE], *src = malloc(size ? size : 1);
  uint8_t *dst = gbuf_new(size);
  uint64_t smr, dmr, step;
  CHECK(src && dst);
  CHECK_EQ(oob_recv(fd, desc, sizeof desc), 0);
  pat_fill(src, size, wseed);
  CHECK_EQ(p2p_reg(ep, src, size ? size : 1, &smr), P2P_OK);
  CHECK_EQ(eph_access(ep, conn, P2P_OP_WRITE, smr, src, size, desc, async),
           P2P_OK);
  CHECK_EQ(eph_put_u64(fd, 1), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);  /* refilled */
  CHECK_EQ(p2p_reg(ep, dst, size ? size : 1, &dmr), P2P_OK);
  CHECK_EQ(eph_access(ep, conn, P2P_OP_READ, dmr, dst, size, desc, async),
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
