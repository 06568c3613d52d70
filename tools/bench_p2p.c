/* tcpx-p2p bench p2p: the endpoint API between two hosts, in the shape of
 * UCCL's benchmark_uccl.py (one warm-up, then timed iterations per size),
 * next to the raw references measured in the same run between the same
 * hosts: iperf3 with as many streams as an op's data crosses (bandwidth;
 * once as iperf3 -P N, single-threaded in 3.12, and once as N iperf3
 * processes of one stream each at once, which may use N cores), a raw TCP
 * bulk transfer of the same buffers over N plain connections, run by the
 * two sides right after each bandwidth row of 1 MiB and more (bench_raw.c:
 * iperf3's buffers stay in cache, ours do not), and a raw TCP ping-pong
 * (round-trip latency at small sizes).
 *
 * Side 0 is the server (accepts; receives, or owns the advertised region),
 * side 1 the client (connects; sends, writes, reads; times and reports).
 * Per op and size: a warm-up transfer, `iters` timed ones (sync: each call
 * timed; --async: a window of p2p_post + p2p_poll, each transfer timed
 * from post to the poll that saw it done), then one checked transfer (the
 * destination poisoned first, compared with the pattern after; not timed).
 * The two sides keep in step over the out-of-band socket, which also
 * brackets the timed transfers so that the server can send back the CPU
 * time its process spent on them (client_timed, server_timed). The command line
 * and the once-per-run references are in bench_p2p_main.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_p2p.h"
#include "tcpx_p2p.h"
#include "tools.h"

const char *const op_names[OP_COUNT] = {"send", "write", "read", "pingpong"};

/* One side's endpoint, connection, buffers and the current block layout. */
typedef struct p2p_side {
  const p2p_plan *plan;
  const twohost *th;
  int peer_fd;
  int raw_fd;                /* raw TCP ping-pong socket, or -1 */
  p2p_endpoint *ep;
  uint64_t conn;
  unsigned char *buf;        /* the largest size; pattern-filled */
  uint64_t mr;
  unsigned char *echo;       /* ping-pong replies land here (client) */
  uint64_t echo_mr;
  size_t nblocks;            /* the current layout: */
  p2p_iov *iov;              /*   for p2p_post, kv_blocks entries */
  uint64_t *mrs;             /*   and the same for the vectored calls */
  void **ptrs;
  size_t *lens;
  uint8_t *descs;            /* the peer's descriptors (client) */
  double *lat_us;            /* per timed transfer (client) */
  double *raw_us;            /* per raw round trip (client) */
  iperf3_result ref_now;     /* --ref-per-size: this step's references */
  iperf3_result procs_now;
  raw_bulk *raw;             /* the raw bulk reference's connections, or NULL */
  raw_result raw_now;        /* this step's raw bulk reference */
  double cpu_s;              /* both sides' CPU seconds in the timed
                                transfers of this step; -1: not known */
  /* --gpu: buf/mr point at the host or the GPU buffer for the pass */
  bench_gpu *gpu;
  int on_gpu;
  unsigned char *host_buf, *gpu_buf;
  uint64_t host_mr, gpu_mr;
  double host_gbps;          /* the host pass of this op and size */
} p2p_side;

static int fail(const char *side, const char *what) {
  fprintf(stderr, "bench p2p: %s: %s: %s\n", side, what, p2p_last_error());
  return -1;
}

static int oob_fail(const char *side, const char *what) {
  fprintf(stderr, "bench p2p: %s: out-of-band %s failed\n", side, what);
  return -1;
}

static long iters_for(const p2p_plan *plan, bench_op op, size_t size) {
  if (plan->iters > 0) return plan->iters;
  if (op == OP_PINGPONG) return P2P_MAX_ITERS;
  long n = (long)(P2P_BUDGET_BYTES / size);
  return n < P2P_MIN_ITERS ? P2P_MIN_ITERS : n > P2P_MAX_ITERS ? P2P_MAX_ITERS : n;
}

long p2p_plan_iters(const p2p_plan *plan, bench_op op, size_t size) {
  return iters_for(plan, op, size);
}

int p2p_plan_has_op(const p2p_plan *plan, bench_op op) {
  for (int i = 0; i < plan->nops; i++)
    if (plan->ops[i] == op) return 1;
  return 0;
}

static size_t largest(const p2p_plan *plan) {
  return bench_largest(plan->sizes, plan->nsizes);
}

/* The raw bulk reference runs on rows of host buffers (not --gpu; one
 * endpoint pair: --endpoints has its own sides) of a bandwidth op and
 * RAW_MIN_SIZE or more, over as many connections as the op's data
 * crosses streams. The side processes open them only when a row needs
 * them. */
static int plan_has_raw(const p2p_plan *plan) {
  int bandwidth = 0;
  for (int o = 0; o < plan->nops; o++) bandwidth |= plan->ops[o] != OP_PINGPONG;
  return plan->ref_raw && !plan->gpu && bandwidth && largest(plan) >= RAW_MIN_SIZE;
}

static int step_has_raw(const p2p_side *s, bench_op op, size_t size) {
  return s->raw && op != OP_PINGPONG && size >= RAW_MIN_SIZE;
}

static int raw_conns(const p2p_plan *plan) {
  return plan->comms_per_lane * plan->tcp_streams;
}

/* ---- the buffer: host, or with --gpu the GPU's for the GPU pass ---------- */

static void use_memory(p2p_side *s, int on_gpu) {
  s->on_gpu = on_gpu;
  s->buf = on_gpu ? s->gpu_buf : s->host_buf;
  s->mr = on_gpu ? s->gpu_mr : s->host_mr;
}

static void buf_poison(p2p_side *s, size_t size) {
  if (s->on_gpu) bench_gpu_poison(s->gpu, size);
  else memset(s->buf, BENCH_POISON, size);
}

static int buf_check(p2p_side *s, size_t size, const char *what) {
  return s->on_gpu ? bench_gpu_check(s->gpu, size, P2P_SEED, what)
                   : bench_check(s->buf, size, P2P_SEED, what);
}

/* ---- transfers ------------------------------------------------------------------- */

/* Cut [buf, buf + size) into n blocks (the last takes the remainder). */
static void set_blocks(p2p_side *s, size_t size, size_t n) {
  if (n > size) n = size;
  s->nblocks = n;
  size_t each = size / n;
  for (size_t i = 0; i < n; i++) {
    s->mrs[i] = s->mr;
    s->ptrs[i] = s->buf + i * each;
    s->lens[i] = i + 1 < n ? each : size - i * each;
    s->iov[i] = (p2p_iov){s->mr, s->ptrs[i], s->lens[i],
                          s->descs ? s->descs + i * P2P_DESC_SIZE : NULL};
  }
}

/* One blocking transfer of the current blocks. */
static int transfer_sync(p2p_side *s, p2p_op_kind kind) {
  p2p_endpoint *ep = s->ep;
  const p2p_iov *v = s->iov;
  size_t n = s->nblocks, got = 0, want = 0;
  int rc = P2P_EINVAL;
  switch (kind) {
    case P2P_OP_SEND:
      return n == 1 ? p2p_send(ep, s->conn, v->mr_id, v->ptr, v->size)
                    : p2p_sendv(ep, s->conn, s->mrs, s->ptrs, s->lens, n);
    case P2P_OP_WRITE:
      return n == 1 ? p2p_write(ep, s->conn, v->mr_id, v->ptr, v->size, v->desc)
                    : p2p_writev(ep, s->conn, s->mrs, s->ptrs, s->lens, s->descs, n);
    case P2P_OP_READ:
      return n == 1 ? p2p_read(ep, s->conn, v->mr_id, v->ptr, v->size, v->desc)
                    : p2p_readv(ep, s->conn, s->mrs, s->ptrs, s->lens, s->descs, n);
    case P2P_OP_RECV:
      rc = n == 1 ? p2p_recv(ep, s->conn, v->mr_id, v->ptr, v->size, &got)
                  : p2p_recvv(ep, s->conn, s->mrs, s->ptrs, s->lens, n, &got);
      break;
  }
  for (size_t i = 0; i < n; i++) want += s->lens[i];
  if (rc == P2P_OK && got != want) {
    fprintf(stderr, "bench p2p: received %zu bytes, expected %zu\n", got, want);
    return P2P_EPEER;
  }
  return rc;
}

typedef struct window_slot {
  uint64_t id;
  double t0;
  int busy;
} window_slot;

/* `count` transfers with up to plan->depth in flight; every slot polled
 * each round, so one finishing early is timed when it finishes. */
static int transfer_window(p2p_side *s, p2p_op_kind kind, long count, double *lat) {
  window_slot slot[P2P_DEPTH] = {{0}};
  long posted = 0, finished = 0;
  int idle = 0, depth = s->plan->depth;
  while (finished < count) {
    int moved = 0;
    for (int k = 0; k < depth; k++) {
      if (!slot[k].busy && posted < count) {
        if (p2p_post(s->ep, s->conn, kind, s->iov, s->nblocks, &slot[k].id))
          return -1;
        slot[k] = (window_slot){slot[k].id, bench_now(), 1};
        posted++;
        moved = 1;
        continue;
      }
      int done = 0;
      if (!slot[k].busy) continue;
      if (p2p_poll(s->ep, slot[k].id, &done) != P2P_OK) return -1;
      if (!done) continue;
      if (lat) lat[finished] = (bench_now() - slot[k].t0) * 1e6;
      slot[k].busy = 0;
      finished++;
      moved = 1;
    }
    if (moved) idle = 0;
    else bench_idle(&idle);
  }
  return 0;
}

/* `count` transfers, each timed into lat[] (may be NULL); total seconds. */
static int transfers(p2p_side *s, p2p_op_kind kind, long count, double *lat,
                     double *secs) {
  double start = bench_now();
  if (s->plan->async) {
    if (transfer_window(s, kind, count, lat) != 0) return -1;
  } else {
    for (long i = 0; i < count; i++) {
      double t0 = bench_now();
      if (transfer_sync(s, kind) != P2P_OK) return -1;
      if (lat) lat[i] = (bench_now() - t0) * 1e6;
    }
  }
  if (secs) *secs = bench_now() - start;
  return 0;
}

/* ---- reporting (client) ------------------------------------------------------------ */

/* --gpu: the GPU row's references, measured in the same run: the same op
 * and size through the same endpoint with host buffers, and this side's
 * pinned H2D and D2H copy rates at the size (what staging is bound by). */
static void report_gpu_json(const p2p_side *s, size_t size, double gbps) {
  double h2d, d2h;
  bench_gpu_copy_rates(s->gpu, size, &h2d, &d2h);
  printf("\"mem\":\"gpu\",");
  bench_json_num(stdout, "host_gbps", s->host_gbps, 0);
  bench_json_num(stdout, "ratio_host", s->host_gbps > 0 ? gbps / s->host_gbps : -1, 0);
  bench_json_num(stdout, "h2d_gbps", h2d, 0);
  bench_json_num(stdout, "d2h_gbps", d2h, 0);
}

static void report_gpu_text(const p2p_side *s, size_t size, double gbps) {
  double h2d, d2h;
  bench_gpu_copy_rates(s->gpu, size, &h2d, &d2h);
  printf("         GPU %d buffers; host->host through the same endpoint %.3f "
         "GB/s (ratio %.3f); pinned H2D %.3f GB/s, D2H %.3f GB/s\n",
         bench_gpu_device(s->gpu), s->host_gbps,
         s->host_gbps > 0 ? gbps / s->host_gbps : 0, h2d, d2h);
}

static void report_bandwidth(p2p_side *s, bench_op op, size_t size,
                             long iters, double secs) {
  const p2p_plan *plan = s->plan;
  bench_stats st;
  bench_stats_of(s->lat_us, (size_t)iters, &st);
  double gbps = bench_gbps((double)size * (double)iters, secs);
  double cpu = bench_cpu_per_gb(s->cpu_s, (double)size * (double)iters);
  const iperf3_result *ref = op == OP_READ ? &plan->ref_rev : &plan->ref_fwd;
  const iperf3_result *procs = op == OP_READ ? &plan->procs_rev : &plan->procs_fwd;
  if (plan->ref_per_size) {
    ref = &s->ref_now;
    procs = &s->procs_now;
  }
  if (s->gpu && !s->on_gpu) { /* --gpu: the host pass is the reference */
    s->host_gbps = gbps;
    return;
  }
  double ref_gbps = iperf3_gbps(ref);
  double ratio = ref_gbps > 0 ? gbps / ref_gbps : -1;
  double procs_gbps = iperf3_gbps(procs);
  double ratio2 = procs_gbps > 0 ? gbps / procs_gbps : -1;
  double ref_cpu = iperf3_cpu_ref(procs, ref);
  char sz[32];
  bench_size_str(size, sz, sizeof sz);
  if (plan->json) {
    printf("{\"op\":\"%s\",\"size\":%zu,\"blocks\":%zu,\"iters\":%ld,"
           "\"async\":%d,\"streams\":%d,\"mode\":\"%s\",\"check\":\"ok\",",
           op_names[op], size,
           s->nblocks, iters, plan->async, plan->comms_per_lane * plan->tcp_streams,
           plan->mode);
    bench_json_num(stdout, "gbps", gbps, 0);
    bench_json_num(stdout, "p50_us", st.p50, 0);
    bench_json_num(stdout, "p99_us", st.p99, 0);
    bench_json_num(stdout, "ref_gbps", ref_gbps, 0);
    bench_json_num(stdout, "ratio", ratio, 0);
    bench_json_num(stdout, "ref_procs_gbps", procs_gbps, 0);
    if (s->gpu) report_gpu_json(s, size, gbps);
    bench_json_num(stdout, "ratio_procs", ratio2, 0);
    bench_json_raw(stdout, gbps, &s->raw_now, 0);
    bench_json_cpu(stdout, cpu, ref_cpu, 1);
  } else {
    char refs[40] = "n/a", rs[16] = "null", refs2[40] = "n/a", rs2[16] = "null";
    char cpu_cell[48], raw_cell[48];
    bench_cpu_cell(cpu_cell, sizeof cpu_cell, cpu, ref_cpu);
    bench_raw_cell(raw_cell, sizeof raw_cell, gbps, &s->raw_now);
    if (ref_gbps > 0) {
      snprintf(refs, sizeof refs, "iperf3 %.3f GB/s", ref_gbps);
      snprintf(rs, sizeof rs, "%.3f", ratio);
    }
    if (procs_gbps > 0) {
      snprintf(refs2, sizeof refs2, "procs %.3f GB/s", procs_gbps);
      snprintf(rs2, sizeof rs2, "%.3f", ratio2);
    }
    printf("%-8s %6s %6zu %6ld %8.3f %9.1f %9.1f  %-18s %-6s  %-18s %-6s  %-20s  "
           "%s\n", op_names[op], sz, s->nblocks, iters, gbps, st.p50, st.p99,
           refs, rs, refs2, rs2, raw_cell, cpu_cell);
    if (s->gpu) report_gpu_text(s, size, gbps);
  }
  fflush(stdout);
}

static void report_pingpong(const p2p_side *s, size_t size, long iters) {
  const p2p_plan *plan = s->plan;
  bench_stats st, raw;
  bench_stats_of(s->lat_us, (size_t)iters, &st);
  bench_stats_of(s->raw_us, (size_t)iters, &raw);
  double ref50 = raw.n ? raw.p50 : -1, ref99 = raw.n ? raw.p99 : -1;
  double ratio = ref50 > 0 ? st.p50 / ref50 : -1;
  char sz[32];
  bench_size_str(size, sz, sizeof sz);
  if (plan->json) {
    printf("{\"op\":\"pingpong\",\"size\":%zu,\"blocks\":1,\"iters\":%ld,"
           "\"async\":0,\"mode\":\"%s\",\"check\":\"ok\",\"gbps\":null,", size,
           iters, plan->mode);
    bench_json_num(stdout, "p50_us", st.p50, 0);
    bench_json_num(stdout, "p99_us", st.p99, 0);
    bench_json_num(stdout, "ref_p50_us", ref50, 0);
    bench_json_num(stdout, "ref_p99_us", ref99, 0);
    bench_json_num(stdout, "ratio", ratio, 1);
  } else {
    char refs[40] = "n/a", rs[40] = "null";
    if (ref50 > 0) {
      snprintf(refs, sizeof refs, "raw rtt %.1f us", ref50);
      snprintf(rs, sizeof rs, "%.2f (x raw)", ratio);
    }
    printf("%-8s %6s %6d %6ld %8s %9.1f %9.1f  %-18s %s\n", "pingpong", sz, 1,
           iters, "-", st.p50, st.p99, refs, rs);
  }
  fflush(stdout);
}

/* ---- client steps ------------------------------------------------------------------ */

/* The peer's verdict on a checked transfer. */
static int peer_verdict(p2p_side *s, const char *what) {
  char ok = 0;
  if (bench_oob_wait(s->peer_fd, &ok, 1) != 0) return oob_fail("client", what);
  if (!ok) fprintf(stderr, "bench p2p: the server found the checked %s corrupted\n", what);
  return ok ? 0 : -1;
}

/* The timed transfers of a bandwidth step. Over the out-of-band socket
 * the client says "start" and waits for the answer, then "done" once the
 * clock has stopped; the server (server_timed) reads its process's CPU
 * clock at the two words and sends back the difference. s->cpu_s: both
 * sides' CPU seconds, -1 when not known. */
static int client_timed(p2p_side *s, p2p_op_kind kind, long iters,
                        double *secs, const char *what) {
  char word = 1;
  double theirs;
  if (oob_send(s->peer_fd, &word, 1) != 0 || bench_oob_wait(s->peer_fd, &word, 1) != 0)
    return oob_fail("client", "start of the timed transfers");
  double c0 = bench_cpu_now();
  if (transfers(s, kind, iters, s->lat_us, secs) != 0) return fail("client", what);
  double mine = bench_cpu_since(c0);
  if (oob_send(s->peer_fd, &word, 1) != 0 ||
      bench_oob_wait(s->peer_fd, &theirs, sizeof theirs) != 0)
    return oob_fail("client", "end of the timed transfers");
  s->cpu_s = bench_cpu_both(mine, theirs);
  return 0;
}

static int client_send(p2p_side *s, long iters, double *secs) {
  char ready;
  if (transfers(s, P2P_OP_SEND, 1, NULL, NULL) != 0) return fail("client", "send");
  if (client_timed(s, P2P_OP_SEND, iters, secs, "send") != 0) return -1;
  if (bench_oob_wait(s->peer_fd, &ready, 1) != 0) return oob_fail("client", "ready");
  if (transfers(s, P2P_OP_SEND, 1, NULL, NULL) != 0) return fail("client", "checked send");
  return peer_verdict(s, "send");
}

static int client_write(p2p_side *s, long iters, double *secs) {
  char msg = 1;
  if (transfers(s, P2P_OP_WRITE, 1, NULL, NULL) != 0) return fail("client", "write");
  if (client_timed(s, P2P_OP_WRITE, iters, secs, "write") != 0) return -1;
  if (oob_send(s->peer_fd, &msg, 1) != 0 ||       /* poison, please */
      bench_oob_wait(s->peer_fd, &msg, 1) != 0)   /* poisoned */
    return oob_fail("client", "write check");
  if (transfers(s, P2P_OP_WRITE, 1, NULL, NULL) != 0) return fail("client", "checked write");
  if (oob_send(s->peer_fd, &msg, 1) != 0) return oob_fail("client", "written");
  return peer_verdict(s, "write");
}

static int client_read(p2p_side *s, size_t size, long iters, double *secs) {
  if (transfers(s, P2P_OP_READ, 1, NULL, NULL) != 0) return fail("client", "read");
  if (client_timed(s, P2P_OP_READ, iters, secs, "read") != 0) return -1;
  buf_poison(s, size);
  if (transfers(s, P2P_OP_READ, 1, NULL, NULL) != 0) return fail("client", "checked read");
  char ok = (char)buf_check(s, size, "bench p2p: checked read");
  if (oob_send(s->peer_fd, &ok, 1) != 0) return oob_fail("client", "read done");
  return ok ? 0 : -1;
}

/* One endpoint round trip: send from buf, the echo comes back into echo. */
static int endpoint_round(p2p_side *s, size_t size) {
  size_t got = 0;
  if (p2p_send(s->ep, s->conn, s->mr, s->buf, size) != P2P_OK ||
      p2p_recv(s->ep, s->conn, s->echo_mr, s->echo, size, &got) != P2P_OK)
    return fail("client", "ping-pong");
  if (got == size) return 0;
  fprintf(stderr, "bench p2p: echo of %zu bytes came back as %zu\n", size, got);
  return -1;
}

/* Blocks of raw round trips alternate with blocks of endpoint ones, so the
 * two see the same machine; a checked endpoint round trip ends it. */
static int client_pingpong(p2p_side *s, size_t size, long iters) {
  for (long i = -PINGPONG_WARMUP; i < iters; i += PINGPONG_BLOCK) {
    long n = i < 0 ? -i : iters - i < PINGPONG_BLOCK ? iters - i : PINGPONG_BLOCK;
    for (long j = 0; j < n; j++) {
      double t0 = bench_now();
      if (pingpong_round(s->raw_fd, s->echo, size, 1) != 0) return -1;
      if (i >= 0) s->raw_us[i + j] = (bench_now() - t0) * 1e6;
    }
    for (long j = 0; j < n; j++) {
      double t0 = bench_now();
      if (endpoint_round(s, size) != 0) return -1;
      if (i >= 0) s->lat_us[i + j] = (bench_now() - t0) * 1e6;
    }
    if (i < 0) i = -PINGPONG_BLOCK; /* the warm-up was one block */
  }
  memset(s->echo, BENCH_POISON, size);
  if (endpoint_round(s, size) != 0) return -1;
  return bench_check(s->echo, size, P2P_SEED, "bench p2p: checked echo") ? 0 : -1;
}

/* --ref-per-size: the server measures the references of a bandwidth step
 * right before it, and hands them to the client that reports them. */
static int step_has_own_refs(const p2p_plan *plan, bench_op op) {
  return plan->ref_per_size && plan->ref_seconds > 0 && op != OP_PINGPONG;
}

static int client_step(p2p_side *s, bench_op op, int size_idx) {
  size_t size = s->plan->sizes[size_idx];
  long iters = iters_for(s->plan, op, size);
  double secs = 0;
  int rc;
  if (step_has_own_refs(s->plan, op) &&
      (bench_oob_wait(s->peer_fd, &s->ref_now, sizeof s->ref_now) != 0 ||
       oob_recv(s->peer_fd, &s->procs_now, sizeof s->procs_now) != 0))
    return oob_fail("client", "references");
  set_blocks(s, size, op == OP_PINGPONG ? 1 : (size_t)s->plan->kv_blocks);
  if ((op == OP_WRITE || op == OP_READ) &&
      bench_oob_wait(s->peer_fd, s->descs, s->nblocks * P2P_DESC_SIZE) != 0)
    return oob_fail("client", "descriptors");
  switch (op) {
    case OP_SEND: rc = client_send(s, iters, &secs); break;
    case OP_WRITE: rc = client_write(s, iters, &secs); break;
    case OP_READ: rc = client_read(s, size, iters, &secs); break;
    default: rc = client_pingpong(s, size, iters); break;
  }
  if (rc != 0) return rc;
  /* Right after the op's own transfers, on the same buffers: the data
   * flows as the op's does (read: server to client). */
  s->raw_now = (raw_result){0};
  if (step_has_raw(s, op, size) &&
      raw_bulk_lead(s->raw, op != OP_READ, s->host_buf, size, iters, secs,
                    P2P_SEED, &s->raw_now) != 0)
    return -1;
  if (op == OP_PINGPONG) report_pingpong(s, size, iters);
  else report_bandwidth(s, op, size, iters, secs);
  return 0;
}

/* ---- server steps ------------------------------------------------------------------ */

/* The server's half of client_timed: its process's CPU time from the
 * client's "start" to its "done", sent back. In between it receives
 * `recv_iters` sends; one-sided ops it serves from its progress thread,
 * which this clock counts like every thread of the process. */
static int server_timed(p2p_side *s, long recv_iters) {
  char word;
  if (bench_oob_wait(s->peer_fd, &word, 1) != 0)
    return oob_fail("server", "start of the timed transfers");
  double c0 = bench_cpu_now();
  if (oob_send(s->peer_fd, &word, 1) != 0)
    return oob_fail("server", "start of the timed transfers");
  if (recv_iters > 0 && transfers(s, P2P_OP_RECV, recv_iters, NULL, NULL) != 0)
    return fail("server", "recv");
  if (bench_oob_wait(s->peer_fd, &word, 1) != 0)
    return oob_fail("server", "end of the timed transfers");
  double cpu_s = bench_cpu_since(c0);
  if (oob_send(s->peer_fd, &cpu_s, sizeof cpu_s) != 0)
    return oob_fail("server", "CPU time");
  return 0;
}

static int server_recv(p2p_side *s, size_t size, long iters) {
  char ready = 1;
  if (transfers(s, P2P_OP_RECV, 1, NULL, NULL) != 0) return fail("server", "recv");
  if (server_timed(s, iters) != 0) return -1;
  buf_poison(s, size);
  if (oob_send(s->peer_fd, &ready, 1) != 0) return oob_fail("server", "ready");
  if (transfers(s, P2P_OP_RECV, 1, NULL, NULL) != 0) return fail("server", "checked recv");
  char ok = (char)buf_check(s, size, "bench p2p: checked send");
  if (oob_send(s->peer_fd, &ok, 1) != 0) return oob_fail("server", "verdict");
  return ok ? 0 : -1;
}

/* Advertise every block; the client gets the descriptors. */
static int server_advertise(p2p_side *s) {
  uint8_t *descs = malloc(s->nblocks * P2P_DESC_SIZE);
  if (!descs) return fail("server", "descriptors");
  int rc = 0;
  for (size_t i = 0; i < s->nblocks && rc == 0; i++)
    if (p2p_advertise(s->ep, s->conn, s->mr, s->iov[i].ptr, s->iov[i].size,
                      descs + i * P2P_DESC_SIZE) != P2P_OK)
      rc = fail("server", "advertise");
  if (rc == 0 && oob_send(s->peer_fd, descs, s->nblocks * P2P_DESC_SIZE) != 0)
    rc = oob_fail("server", "descriptors");
  free(descs);
  return rc;
}

/* The client's timed writes (server_timed); then on its word poison the
 * region, and check its checked write. */
static int server_written(p2p_side *s, size_t size) {
  char msg;
  if (server_timed(s, 0) != 0) return -1;
  if (bench_oob_wait(s->peer_fd, &msg, 1) != 0) return oob_fail("server", "write check");
  buf_poison(s, size);
  if (oob_send(s->peer_fd, &msg, 1) != 0 || bench_oob_wait(s->peer_fd, &msg, 1) != 0)
    return oob_fail("server", "written");
  char ok = (char)buf_check(s, size, "bench p2p: checked write");
  if (oob_send(s->peer_fd, &ok, 1) != 0) return oob_fail("server", "verdict");
  return ok ? 0 : -1;
}

/* Reads are served by the progress thread; the client checks them. */
static int server_read(p2p_side *s) {
  char ok;
  if (server_timed(s, 0) != 0) return -1;
  if (bench_oob_wait(s->peer_fd, &ok, 1) != 0) return oob_fail("server", "read done");
  return ok ? 0 : -1;
}

static int endpoint_echo(p2p_side *s, size_t size) {
  size_t got = 0;
  if (p2p_recv(s->ep, s->conn, s->mr, s->buf, size, &got) != P2P_OK ||
      p2p_send(s->ep, s->conn, s->mr, s->buf, got) != P2P_OK)
    return fail("server", "ping-pong");
  return 0;
}

/* The client's rounds, block by block (see client_pingpong). */
static int server_echo(p2p_side *s, size_t size, long iters) {
  for (long i = -PINGPONG_WARMUP; i < iters; i += PINGPONG_BLOCK) {
    long n = i < 0 ? -i : iters - i < PINGPONG_BLOCK ? iters - i : PINGPONG_BLOCK;
    for (long j = 0; j < n; j++)
      if (pingpong_round(s->raw_fd, s->buf, size, 0) != 0) return -1;
    for (long j = 0; j < n; j++)
      if (endpoint_echo(s, size) != 0) return -1;
    if (i < 0) i = -PINGPONG_BLOCK;
  }
  return endpoint_echo(s, size); /* the checked round trip */
}

static int server_step(p2p_side *s, bench_op op, size_t size) {
  long iters = iters_for(s->plan, op, size);
  int rc;
  if (step_has_own_refs(s->plan, op)) {
    iperf3_result ref = {0}, procs = {0};
    bench_p2p_measure_direction(s->th, s->plan, op == OP_READ, &ref, &procs);
    if (oob_send(s->peer_fd, &ref, sizeof ref) != 0 ||
        oob_send(s->peer_fd, &procs, sizeof procs) != 0)
      return oob_fail("server", "references");
  }
  set_blocks(s, size, op == OP_PINGPONG ? 1 : (size_t)s->plan->kv_blocks);
  if ((op == OP_WRITE || op == OP_READ) && server_advertise(s) != 0) return -1;
  switch (op) {
    case OP_SEND: rc = server_recv(s, size, iters); break;
    case OP_WRITE: rc = server_written(s, size); break;
    case OP_READ: rc = server_read(s); break;
    default: rc = server_echo(s, size, iters); break;
  }
  if (rc == 0 && step_has_raw(s, op, size))
    rc = raw_bulk_follow(s->raw, op == OP_READ, s->host_buf, size, P2P_SEED);
  return rc;
}

/* ---- endpoint set-up ----------------------------------------------------------------- */

/* --gpu: the side's GPU buffer, pattern-filled; the endpoint takes that
 * GPU's index (its NICs). */
static int open_gpu(p2p_side *s, int side, size_t max, p2p_options *opts) {
  if (bench_gpu_open(side, max, &s->gpu) != 0 ||
      bench_gpu_fill(s->gpu, max, P2P_SEED) != 0)
    return -1;
  s->gpu_buf = bench_gpu_ptr(s->gpu);
  opts->gpu_index = bench_gpu_device(s->gpu);
  return 0;
}

static int open_side(const p2p_plan *plan, const twohost *th, int peer_fd,
                     int is_client, p2p_side *s) {
  memset(s, 0, sizeof *s);
  s->plan = plan;
  s->th = th;
  s->peer_fd = peer_fd;
  s->raw_fd = -1;
  p2p_options opts;
  p2p_options_init(&opts);
  opts.plugin = plan->plugin;
  opts.no_local = 1; /* both sides would claim GPU 0's same-host socket */
  size_t max = largest(plan);
  long most = 0;
  for (int o = 0; o < plan->nops; o++)
    for (int i = 0; i < plan->nsizes; i++)
      if (iters_for(plan, plan->ops[o], plan->sizes[i]) > most)
        most = iters_for(plan, plan->ops[o], plan->sizes[i]);
  s->buf = s->host_buf = aligned_alloc(4096, (max + 4095) & ~(size_t)4095);
  s->echo = aligned_alloc(4096, PINGPONG_MAX);
  size_t nb = (size_t)plan->kv_blocks;
  s->iov = calloc(nb, sizeof *s->iov);
  s->mrs = calloc(nb, sizeof *s->mrs);
  s->ptrs = calloc(nb, sizeof *s->ptrs);
  s->lens = calloc(nb, sizeof *s->lens);
  s->lat_us = calloc((size_t)most, sizeof *s->lat_us);
  s->raw_us = calloc((size_t)most, sizeof *s->raw_us);
  if (is_client) s->descs = calloc((size_t)plan->kv_blocks, P2P_DESC_SIZE);
  if (!s->buf || !s->echo || !s->iov || !s->mrs || !s->ptrs || !s->lens ||
      !s->lat_us || !s->raw_us || (is_client && !s->descs)) {
    fprintf(stderr, "bench p2p: out of memory for %zu-byte buffers\n", max);
    return -1;
  }
  bench_fill(s->buf, max, P2P_SEED);
  if (plan->gpu && open_gpu(s, is_client, max, &opts) != 0) return -1;
  if (p2p_endpoint_create(&opts, &s->ep) != P2P_OK) return fail("side", "endpoint");
  if (p2p_reg(s->ep, s->buf, max, &s->mr) != P2P_OK ||
      p2p_reg(s->ep, s->echo, PINGPONG_MAX, &s->echo_mr) != P2P_OK)
    return fail("side", "register");
  s->host_mr = s->mr;
  if (s->gpu && p2p_reg(s->ep, s->gpu_buf, max, &s->gpu_mr) != P2P_OK)
    return fail("side", "register the GPU buffer");
  return 0;
}

static void close_side(p2p_side *s) {
  p2p_endpoint_destroy(s->ep);
  if (s->raw_fd >= 0) close(s->raw_fd);
  raw_bulk_close(s->raw);
  free(s->raw_us);
  free(s->host_buf);
  bench_gpu_close(s->gpu);
  free(s->echo);
  free(s->iov);
  free(s->mrs);
  free(s->ptrs);
  free(s->lens);
  free(s->descs);
  free(s->lat_us);
}

static int server_connect(p2p_side *s) {
  uint8_t md[P2P_METADATA_MAX];
  size_t len = sizeof md;
  char ip[64];
  int gpu;
  if (p2p_get_metadata(s->ep, md, &len) != P2P_OK) return fail("server", "metadata");
  uint32_t n = (uint32_t)len;
  if (oob_send(s->peer_fd, &n, sizeof n) != 0 || oob_send(s->peer_fd, md, len) != 0)
    return oob_fail("server", "metadata");
  if (p2p_accept(s->ep, ip, sizeof ip, &gpu, &s->conn) != P2P_OK)
    return fail("server", "accept");
  if (p2p_plan_has_op(s->plan, OP_PINGPONG) &&
      (s->raw_fd = pingpong_listen(s->th, s->peer_fd)) < 0)
    return -1;
  if (plan_has_raw(s->plan) &&
      !(s->raw = raw_bulk_open(s->th, 0, s->peer_fd, raw_conns(s->plan))))
    return -1;
  return 0;
}

static int client_connect(p2p_side *s) {
  uint8_t md[P2P_METADATA_MAX];
  uint32_t n;
  char ip[64];
  int port, gpu;
  if (oob_recv(s->peer_fd, &n, sizeof n) != 0 || n > sizeof md ||
      oob_recv(s->peer_fd, md, n) != 0)
    return oob_fail("client", "metadata");
  if (p2p_parse_metadata(md, n, ip, sizeof ip, &port, &gpu) != P2P_OK)
    return fail("client", "metadata");
  if (p2p_connect(s->ep, ip, gpu, port, &s->conn) != P2P_OK)
    return fail("client", "connect");
  if (p2p_plan_has_op(s->plan, OP_PINGPONG) &&
      (s->raw_fd = pingpong_dial(s->th, s->peer_fd)) < 0)
    return -1;
  if (plan_has_raw(s->plan) &&
      !(s->raw = raw_bulk_open(s->th, 1, s->peer_fd, raw_conns(s->plan))))
    return -1;
  return 0;
}

static void print_layout(const p2p_plan *plan, int bulk) {
  FILE *info = plan->json ? stderr : stdout;
  int c = plan->comms_per_lane, t = plan->tcp_streams;
  int raw = p2p_plan_has_op(plan, OP_PINGPONG);
  char extra[64] = "";
  if (bulk) snprintf(extra, sizeof extra, " + %d raw bulk", bulk);
  fprintf(info, "endpoint: comms_per_lane %d x %d TCP streams = %d streams carry "
          "an op's data (send: lane 0; write, read: lane 1), as the engine "
          "opens them; the client process holds %d TCP sockets (with the "
          "built-in transport: 2 lanes x 2 directions x %d = %d data, + "
          "control and listener%s%s = %d)\n",
          c, t, c * t, bench_tcp_sockets(), c * t, 4 * c * t,
          raw ? " and raw ping-pong" : "", extra, 4 * c * t + 2 + raw + bulk);
  if (!plan->json)
    fprintf(info, "%-8s %6s %6s %6s %8s %9s %9s  %-18s %-6s  %-18s %-6s  %-20s  %s\n",
            "op", "size", "blocks", "iters", "GB/s", "p50 us", "p99 us",
            "reference", "ratio", "reference 2", "ratio2", BENCH_RAW_HEADER,
            BENCH_CPU_HEADER);
  fflush(info);
}

/* One op and size; with --gpu twice: host buffers first (the reference
 * through the same endpoint), then GPU buffers (the reported row). */
static int server_steps(p2p_side *s, bench_op op, size_t size) {
  int rc = server_step(s, op, size);
  if (rc == 0 && s->gpu) {
    use_memory(s, 1);
    rc = server_step(s, op, size);
    use_memory(s, 0);
  }
  return rc;
}

static int client_steps(p2p_side *s, bench_op op, int size_idx) {
  int rc = client_step(s, op, size_idx);
  if (rc == 0 && s->gpu) {
    use_memory(s, 1);
    rc = client_step(s, op, size_idx);
    use_memory(s, 0);
  }
  return rc;
}

int bench_p2p_server(const twohost *th, int side, int peer_fd, void *arg) {
  const p2p_plan *plan = arg;
  bench_side_start(side, plan->cpus_apart);
  p2p_side s;
  int rc = open_side(plan, th, peer_fd, 0, &s);
  if (rc == 0) rc = server_connect(&s);
  for (int o = 0; o < plan->nops && rc == 0; o++)
    for (int i = 0; i < plan->nsizes && rc == 0; i++)
      if (plan->ops[o] != OP_PINGPONG || plan->sizes[i] <= PINGPONG_MAX)
        rc = server_steps(&s, plan->ops[o], plan->sizes[i]);
  char bye;
  if (rc == 0 && bench_oob_wait(peer_fd, &bye, 1) != 0) rc = oob_fail("server", "bye");
  close_side(&s);
  return rc;
}

int bench_p2p_client(const twohost *th, int side, int peer_fd, void *arg) {
  const p2p_plan *plan = arg;
  bench_side_start(side, plan->cpus_apart);
  p2p_side s;
  int rc = open_side(plan, th, peer_fd, 1, &s);
  if (rc == 0) rc = client_connect(&s);
  if (rc == 0) print_layout(plan, s.raw ? raw_conns(plan) : 0);
  for (int o = 0; o < plan->nops && rc == 0; o++)
    for (int i = 0; i < plan->nsizes && rc == 0; i++)
      if (plan->ops[o] != OP_PINGPONG || plan->sizes[i] <= PINGPONG_MAX)
        rc = client_steps(&s, plan->ops[o], i);
  char bye = 1;
  if (rc == 0 && oob_send(peer_fd, &bye, 1) != 0) rc = oob_fail("client", "bye");
  close_side(&s);
  return rc;
}

/* ---- references (also run by the server with --ref-per-size) ---------------- */

void bench_p2p_measure_direction(const twohost *th, const p2p_plan *plan,
                                 int reverse, iperf3_result *ref,
                                 iperf3_result *procs) {
  if (plan->ref_seconds > 0)
    iperf3_measure_pair(th, plan->comms_per_lane * plan->tcp_streams,
                        plan->ref_seconds, reverse, plan->ref_procs, ref, procs);
}
