/* tcpx-p2p send / recv: a checked transfer between two processes (two
 * hosts, or one), through the endpoint API of include/tcpx_p2p.h: the same
 * path applications take, which keeps every rule of the transport under it
 * (TCPX's 4 MiB receives, irecvConsumed, sizes it never reports).
 *
 *   tcpx-p2p recv --handle-file F [--size BYTES] [--iters N] ...
 *   tcpx-p2p send --handle-file F [--size BYTES] [--iters N] ...
 *
 * Rendezvous: the receiver's endpoint listens and writes its metadata (IP,
 * port, GPU index, as hex) to F; the sender reads F and connects. The two
 * then agree on size and count (xfer_hello), and for each message:
 *
 *   sender:   make this message's pattern, say "ready"; wait for "go",
 *             start its clock, send; stop it when the send completes (the
 *             receiver has the data).
 *   receiver: poison its buffer, post the receive; on "ready" start its
 *             clock and send "go"; stop it when the whole message has
 *             arrived; wait for the sender's next "ready" (its clock has
 *             stopped); only then check every byte.
 *
 * So both clocks time the same thing: one message on the wire, plus one
 * small control message each (the receiver's "go", the sender's
 * completion). Pattern generation and checks are never timed. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_ref.h"
#include "env.h"
#include "tcpx_p2p.h"
#include "tools.h"

#define XFER_DEFAULT_SIZE ((size_t)256 << 20)
#define XFER_MAX_SIZE ((size_t)64 << 30)
#define XFER_DEFAULT_ITERS 8
#define XFER_MAX_ITERS 1000000
#define XFER_DEFAULT_TIMEOUT_S 60
#define XFER_SEED 0x786665ull     /* message i carries pattern XFER_SEED + i */
#define XFER_MAGIC 0x74787031u    /* "txp1": the hello's first word */
#define XFER_TIMED "timed per message: from the receiver's go message to " \
                   "the whole message received (recv) or its send " \
                   "completed (send); pattern fill and byte checks excluded"

typedef struct xfer_args {
  const char *cmd;          /* "send" or "recv" */
  const char *handle_file;
  const char *plugin;
  size_t size;
  long iters;
  int timeout_s;            /* rendezvous, connection, each message */
} xfer_args;

/* What each side believes the transfer is: they must agree. */
typedef struct xfer_hello {
  uint32_t magic, pad;
  uint64_t size, iters;
} xfer_hello;

/* One side's endpoint, connection and buffer. */
typedef struct xfer_side {
  const xfer_args *a;
  p2p_endpoint *ep;
  uint64_t conn, mr, ctl_mr;
  unsigned char *buf;
  uint64_t ctl[4];          /* hello and go messages */
  char peer[64];
  double busy_s;
  int wrote_handle;         /* recv: remove the file when done */
} xfer_side;

/* ---- arguments ------------------------------------------------------------ */

static int usage(const char *cmd, FILE *out) {
  fprintf(out,
          "usage: tcpx-p2p %s --handle-file F [--size BYTES] [--iters N]\n"
          "                     [--timeout S] [--plugin PATH]\n"
          "  A checked transfer between `tcpx-p2p recv` and `tcpx-p2p send`\n"
          "  (two hosts, or two processes on one) through the endpoint API.\n"
          "  recv listens and writes its address to F; send reads F (waiting\n"
          "  for it), connects and sends N messages of BYTES each, pseudo-\n"
          "  random data that recv checks byte for byte in a poisoned buffer.\n"
          "  Both must be given the same --size and --iters.\n"
          "  --size: bytes, with K, M or G for KiB, MiB, GiB (default 256M;\n"
          "          0..64G)   --iters: messages (default %d)\n"
          "  --timeout: seconds to wait for the peer, the connection and each\n"
          "          message (default %d)\n"
          "  --plugin: NCCL net plugin path, or `builtin` (default:\n"
          "          $TCPX_P2P_NET_PLUGIN, else the usual selection)\n"
          "  The interface is chosen by TCPX_P2P_SOCKET_IFNAME (e.g. lo).\n",
          cmd, XFER_DEFAULT_ITERS, XFER_DEFAULT_TIMEOUT_S);
  return out == stdout ? TOOL_OK : TOOL_USAGE;
}

/* One argument at argv[*i] (and its value). 0, or -1 after the message. */
static int parse_one(xfer_args *a, int argc, char **argv, int *i) {
  const char *flag = argv[*i], *v;
  if (strcmp(flag, "--handle-file") && strcmp(flag, "--plugin") &&
      strcmp(flag, "--size") && strcmp(flag, "--iters") &&
      strcmp(flag, "--timeout"))
    return arg_unknown(a->cmd, flag), -1;
  if (!(v = arg_value(a->cmd, argc, argv, i))) return -1;
  if (!strcmp(flag, "--handle-file")) a->handle_file = v;
  else if (!strcmp(flag, "--plugin")) a->plugin = v;
  else if (!strcmp(flag, "--size"))
    return arg_size(a->cmd, flag, v, 0, XFER_MAX_SIZE, &a->size);
  else if (!strcmp(flag, "--iters"))
    return arg_long(a->cmd, flag, v, 1, XFER_MAX_ITERS, &a->iters);
  else
    return arg_int(a->cmd, flag, v, 1, 24 * 3600, &a->timeout_s);
  return 0;
}

static int parse_args(const char *cmd, int argc, char **argv, xfer_args *a) {
  *a = (xfer_args){.cmd = cmd, .size = XFER_DEFAULT_SIZE,
                   .iters = XFER_DEFAULT_ITERS,
                   .timeout_s = XFER_DEFAULT_TIMEOUT_S};
  for (int i = 1; i < argc; i++)
    if (parse_one(a, argc, argv, &i) != 0) return -1;
  if (!a->handle_file)
    return arg_error(cmd, "--handle-file is required (the file recv writes "
                     "its address to and send reads it from)"), -1;
  return 0;
}

static int wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
  return 0;
}

/* ---- failures and the endpoint ------------------------------------------------ */

static int fail(const xfer_side *s, const char *what) {
  fprintf(stderr, "tcpx-p2p %s: %s: %s\n", s->a->cmd, what, p2p_last_error());
  return TOOL_FAILED;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int open_endpoint(xfer_side *s) {
  p2p_options o;
  p2p_options_init(&o);
  if (s->a->plugin) o.plugin = s->a->plugin;
  o.op_timeout_ms = s->a->timeout_s * 1000;
  if (o.connect_timeout_ms > o.op_timeout_ms) o.connect_timeout_ms = o.op_timeout_ms;
  int rc = p2p_endpoint_create(&o, &s->ep);
  if (rc == P2P_OK) return TOOL_OK;
  fail(s, "setting up");
  /* Bad settings (a TCPX_P2P_* variable) are a usage error too. */
  char why[256];
  return rc == P2P_EINVAL || env_bad(why, sizeof why) ? TOOL_USAGE : TOOL_FAILED;
}

/* The data buffer (at least one byte, so a 0-byte transfer has a real
 * pointer) and the small control buffer, both registered. */
static int register_buffers(xfer_side *s) {
  size_t len = s->a->size ? s->a->size : 1;
  s->buf = malloc(len);
  if (!s->buf) {
    fprintf(stderr, "tcpx-p2p %s: no memory for %zu bytes\n", s->a->cmd, len);
    return TOOL_FAILED;
  }
  if (p2p_reg(s->ep, s->buf, len, &s->mr) != P2P_OK ||
      p2p_reg(s->ep, s->ctl, sizeof s->ctl, &s->ctl_mr) != P2P_OK)
    return fail(s, "register");
  return TOOL_OK;
}

static void close_side(xfer_side *s) {
  if (s->ep && s->mr) p2p_dereg(s->ep, s->mr);
  if (s->ep && s->ctl_mr) p2p_dereg(s->ep, s->ctl_mr);
  p2p_endpoint_destroy(s->ep);
  free(s->buf);
}

/* ---- rendezvous: the handle file ----------------------------------------------- */

/* Hex to a temporary name, then rename: the sender never reads half. */
static int write_handle(const xfer_side *s, const uint8_t *md, size_t n) {
  char tmp[4096];
  const char *path = s->a->handle_file;
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) goto sys_fail;
  for (size_t i = 0; i < n; i++) fprintf(f, "%02x", md[i]);
  fputc('\n', f);
  if (fclose(f) != 0 || rename(tmp, path) != 0) goto sys_fail;
  return TOOL_OK;
sys_fail:
  fprintf(stderr, "tcpx-p2p %s: write %s: %s\n", s->a->cmd, f ? path : tmp,
          strerror(errno));
  return TOOL_FAILED;
}

/* Wait for the file (saying so once), then parse its hex. */
static int read_handle(const xfer_side *s, uint8_t *md, size_t *n) {
  const char *path = s->a->handle_file;
  double deadline = now_s() + s->a->timeout_s;
  FILE *f;
  for (int said = 0; !(f = fopen(path, "r")); said = 1) {
    if (errno != ENOENT || now_s() > deadline) {
      fprintf(stderr, "tcpx-p2p send: %s: %s%s\n", path, strerror(errno),
              errno == ENOENT ? " (no `tcpx-p2p recv` wrote it in time)" : "");
      return TOOL_FAILED;
    }
    if (!said)
      fprintf(stderr, "send: waiting up to %d s for %s (written by "
              "`tcpx-p2p recv` once it listens)\n", s->a->timeout_s, path);
    usleep(10000);
  }
  unsigned b;
  *n = 0;
  while (*n < P2P_METADATA_MAX && fscanf(f, "%2x", &b) == 1) md[(*n)++] = (uint8_t)b;
  fclose(f);
  return TOOL_OK;
}

/* ---- agreeing on the transfer ------------------------------------------------------ */

static int hello_check(const xfer_side *s, const xfer_hello *peer) {
  if (peer->magic != XFER_MAGIC) {
    fprintf(stderr, "tcpx-p2p %s: the peer is not a tcpx-p2p send/recv of "
            "this version\n", s->a->cmd);
    return TOOL_FAILED;
  }
  if (peer->size != s->a->size || peer->iters != (uint64_t)s->a->iters) {
    fprintf(stderr, "tcpx-p2p %s: the peer was given --size %llu --iters "
            "%llu, this side --size %zu --iters %ld: give both the same\n",
            s->a->cmd, (unsigned long long)peer->size,
            (unsigned long long)peer->iters, s->a->size, s->a->iters);
    return TOOL_FAILED;
  }
  return TOOL_OK;
}

/* The receiver speaks first, then the sender answers: each checks the
 * other's, so both stop with the same message on a mismatch. */
static int exchange_hello(xfer_side *s, int is_recv) {
  xfer_hello mine = {XFER_MAGIC, 0, s->a->size, (uint64_t)s->a->iters}, theirs;
  size_t got = 0;
  memset(&theirs, 0, sizeof theirs);
  for (int step = 0; step < 2; step++) {
    int rc;
    if ((step == 0) == is_recv) {
      memcpy(s->ctl, &mine, sizeof mine);
      rc = p2p_send(s->ep, s->conn, s->ctl_mr, s->ctl, sizeof mine);
    } else {
      rc = p2p_recv(s->ep, s->conn, s->ctl_mr, s->ctl, sizeof theirs, &got);
      memcpy(&theirs, s->ctl, sizeof theirs);
    }
    if (rc != P2P_OK) return fail(s, "agreeing on size and count");
  }
  return got == sizeof theirs ? hello_check(s, &theirs)
                              : hello_check(s, &(xfer_hello){0});
}

/* The receiver tells the sender how many messages differed, so both exit
 * with the verdict (and the sender never closes before the last check). */
static int verdict(xfer_side *s, int is_recv, int *bad) {
  size_t got = 0;
  if (is_recv) {
    s->ctl[0] = (uint64_t)*bad;
    if (p2p_send(s->ep, s->conn, s->ctl_mr, s->ctl, sizeof s->ctl[0]) != P2P_OK)
      return fail(s, "sending the verdict");
    return TOOL_OK;
  }
  if (p2p_recv(s->ep, s->conn, s->ctl_mr, s->ctl, sizeof s->ctl, &got) != P2P_OK)
    return fail(s, "waiting for the receiver's verdict");
  if (got != sizeof s->ctl[0] || s->ctl[0] > (uint64_t)s->a->iters) {
    fprintf(stderr, "tcpx-p2p send: the receiver's verdict is malformed\n");
    return TOOL_FAILED;
  }
  *bad = (int)s->ctl[0];
  return TOOL_OK;
}

/* ---- reporting ------------------------------------------------------------------ */

static void report_message(const xfer_side *s, long i, double secs, int ok) {
  printf("%s: message %ld/%ld: %zu bytes in %.6f s = %.3f GB/s%s\n", s->a->cmd,
         i + 1, s->a->iters, s->a->size, secs,
         bench_gbps((double)s->a->size, secs), ok ? "" : ", DATA DIFFERS");
  fflush(stdout);
}

static void report_total(const xfer_side *s) {
  double bytes = (double)s->a->size * (double)s->a->iters;
  printf("%s: %.0f bytes in %.3f s = %.2f GB/s, peer %s\n", s->a->cmd, bytes,
         s->busy_s, bench_gbps(bytes, s->busy_s), s->peer);
  printf("%s: %s\n", s->a->cmd, XFER_TIMED);
}

/* ---- recv ---------------------------------------------------------------------- */

static int recv_listen(xfer_side *s) {
  uint8_t md[P2P_METADATA_MAX];
  size_t n = sizeof md;
  char ip[64];
  int port, gpu, remote_gpu;
  if (p2p_get_metadata(s->ep, md, &n) != P2P_OK ||
      p2p_parse_metadata(md, n, ip, sizeof ip, &port, &gpu) != P2P_OK)
    return fail(s, "metadata");
  if (write_handle(s, md, n) != TOOL_OK) return TOOL_FAILED;
  s->wrote_handle = 1;
  fprintf(stderr, "recv: listening on %s port %d (address in %s); waiting up "
          "to %d s for `tcpx-p2p send`\n", ip, port, s->a->handle_file,
          s->a->timeout_s);
  if (p2p_accept(s->ep, s->peer, sizeof s->peer, &remote_gpu, &s->conn) != P2P_OK)
    return fail(s, "waiting for the sender");
  printf("recv: accepted a connection from %s\n", s->peer);
  fflush(stdout);
  return TOOL_OK;
}

/* A small control message: `what` and its index (the peer checks both). */
static int ctl_send(xfer_side *s, uint64_t index, const char *what) {
  s->ctl[0] = index;
  if (p2p_send(s->ep, s->conn, s->ctl_mr, s->ctl, sizeof s->ctl[0]) == P2P_OK)
    return TOOL_OK;
  return fail(s, what);
}

static int ctl_recv(xfer_side *s, uint64_t index, const char *what) {
  size_t got = 0;
  if (p2p_recv(s->ep, s->conn, s->ctl_mr, s->ctl, sizeof s->ctl, &got) != P2P_OK)
    return fail(s, what);
  if (got == sizeof s->ctl[0] && s->ctl[0] == index) return TOOL_OK;
  fprintf(stderr, "tcpx-p2p %s: %s: malformed control message (%zu bytes)\n",
          s->a->cmd, what, got);
  return TOOL_FAILED;
}

/* One message: poison, post, go, wait. The check waits for the sender's
 * next "ready" (its clock has stopped and the next pattern is made), so
 * neither side's work runs inside the other's timed region. */
static int recv_message(xfer_side *s, long i, int *ok) {
  size_t got = 0, size = s->a->size;
  uint64_t xfer;
  memset(s->buf, BENCH_POISON, size);
  p2p_iov iov = {s->mr, s->buf, size, NULL};
  if (p2p_post(s->ep, s->conn, P2P_OP_RECV, &iov, 1, &xfer) != P2P_OK)
    return fail(s, "posting the receive");
  double t0 = now_s();
  if (ctl_send(s, (uint64_t)i, "sending go") != TOOL_OK) return TOOL_FAILED;
  if (p2p_wait(s->ep, xfer, -1, &got) != P2P_OK) return fail(s, "receiving");
  double secs = now_s() - t0;
  s->busy_s += secs;
  if (ctl_recv(s, (uint64_t)i + 1, "waiting for ready") != TOOL_OK)
    return TOOL_FAILED;
  char what[64];
  snprintf(what, sizeof what, "recv: message %ld", i + 1);
  *ok = got == size && bench_check(s->buf, size, XFER_SEED + (uint64_t)i, what);
  if (got != size)
    fprintf(stderr, "recv: message %ld: %zu bytes arrived, %zu expected\n",
            i + 1, got, size);
  report_message(s, i, secs, *ok);
  return TOOL_OK;
}

int cmd_recv(int argc, char **argv) {
  xfer_args a;
  if (wants_help(argc, argv)) return usage("recv", stdout);
  if (parse_args("recv", argc, argv, &a) != 0) return TOOL_USAGE;
  xfer_side s = {.a = &a};
  int rc = open_endpoint(&s), bad = 0;
  if (rc == TOOL_OK) rc = register_buffers(&s);
  if (rc == TOOL_OK) rc = recv_listen(&s);
  if (rc == TOOL_OK) rc = exchange_hello(&s, 1);
  if (rc == TOOL_OK) rc = ctl_recv(&s, 0, "waiting for ready");
  for (long i = 0; i < a.iters && rc == TOOL_OK; i++) {
    int ok = 0;
    rc = recv_message(&s, i, &ok);
    bad += !ok;
  }
  if (rc == TOOL_OK) rc = verdict(&s, 1, &bad);
  if (rc == TOOL_OK) {
    report_total(&s);
    if (bad)
      printf("recv: %d of %ld messages DIFFER from what was sent\n", bad, a.iters);
    else
      printf("recv: all %ld messages byte-exact\n", a.iters);
    rc = bad ? TOOL_FAILED : TOOL_OK;
  }
  if (s.wrote_handle) unlink(a.handle_file); /* no later sender finds it */
  close_side(&s);
  return rc;
}

/* ---- send ---------------------------------------------------------------------- */

static int send_connect(xfer_side *s) {
  uint8_t md[P2P_METADATA_MAX];
  size_t n = 0;
  int port, gpu;
  if (read_handle(s, md, &n) != TOOL_OK) return TOOL_FAILED;
  if (p2p_parse_metadata(md, n, s->peer, sizeof s->peer, &port, &gpu) != P2P_OK)
    return fail(s, s->a->handle_file);
  fprintf(stderr, "send: connecting to %s port %d (up to %d s)\n", s->peer,
          port, s->a->timeout_s);
  if (p2p_connect(s->ep, s->peer, gpu, port, &s->conn) != P2P_OK)
    return fail(s, "connect");
  printf("send: connected to %s\n", s->peer);
  fflush(stdout);
  return TOOL_OK;
}

/* Message 0's pattern, then "ready 0". */
static int send_first_ready(xfer_side *s) {
  bench_fill(s->buf, s->a->size, XFER_SEED);
  return ctl_send(s, 0, "sending ready");
}

/* Wait for go, send (timed), then make the next pattern and say "ready"
 * (after the last message that only says the clock has stopped). */
static int send_message(xfer_side *s, long i) {
  if (ctl_recv(s, (uint64_t)i, "waiting for go") != TOOL_OK) return TOOL_FAILED;
  double t0 = now_s();
  if (p2p_send(s->ep, s->conn, s->mr, s->buf, s->a->size) != P2P_OK)
    return fail(s, "sending");
  double secs = now_s() - t0;
  s->busy_s += secs;
  if (i + 1 < s->a->iters)
    bench_fill(s->buf, s->a->size, XFER_SEED + (uint64_t)i + 1);
  if (ctl_send(s, (uint64_t)i + 1, "sending ready") != TOOL_OK) return TOOL_FAILED;
  report_message(s, i, secs, 1);
  return TOOL_OK;
}

int cmd_send(int argc, char **argv) {
  xfer_args a;
  if (wants_help(argc, argv)) return usage("send", stdout);
  if (parse_args("send", argc, argv, &a) != 0) return TOOL_USAGE;
  xfer_side s = {.a = &a};
  int rc = open_endpoint(&s);
  if (rc == TOOL_OK) rc = send_connect(&s);
  if (rc == TOOL_OK) rc = register_buffers(&s);
  if (rc == TOOL_OK) rc = exchange_hello(&s, 0);
  if (rc == TOOL_OK) rc = send_first_ready(&s);
  for (long i = 0; i < a.iters && rc == TOOL_OK; i++) rc = send_message(&s, i);
  int bad = 0;
  if (rc == TOOL_OK) rc = verdict(&s, 0, &bad);
  if (rc == TOOL_OK) {
    report_total(&s);
    if (bad)
      printf("send: the receiver found %d of %ld messages DIFFERENT\n", bad,
             a.iters);
    else
      printf("send: the receiver found all %ld messages byte-exact\n", a.iters);
    rc = bad ? TOOL_FAILED : TOOL_OK;
  }
  close_side(&s);
  return rc;
}
