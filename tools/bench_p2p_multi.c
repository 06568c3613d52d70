/* tcpx-p2p bench p2p --endpoints N: N endpoint pairs at once, as the 8
 * GPUs of two A3 hosts would run them. Endpoint k of each side has GPU
 * index k, so it uses its GPU's NICs (in A3-shaped namespaces: GPUs 2k and
 * 2k+1 on NIC k; twohost_setup_nics). Per op and size every client thread
 * (one per endpoint) does a warm-up transfer, then all do `iters` timed
 * ones at once; then one checked transfer each, all at once, into poisoned
 * destinations. Reported: the total GB/s (all bytes over the wall time of
 * the timed phase), each endpoint's GB/s, per-transfer latency over all
 * endpoints, the bytes each of the client's NICs moved, and the ratio to
 * the reference measured in the same run (N iperf3 processes x 1 stream,
 * pair k over endpoint k's NIC; bench_p2p_main.c), and the CPU time both
 * side processes spent in the timed phase per GB next to the reference's:
 * the timed phase starts and ends at a barrier, and the server sends its
 * share to the client. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_p2p.h"
#include "tcpx_p2p.h"

typedef struct multi_side multi_side;

/* One endpoint of a side, and its thread's work for the current step. */
typedef struct multi_ep {
  multi_side *side;
  int gpu;
  p2p_endpoint *ep;
  uint64_t conn;
  unsigned char *buf;        /* the largest size */
  uint64_t mr;
  uint8_t desc[P2P_DESC_SIZE]; /* the peer's region (client) */
  double *lat_us;            /* per timed transfer */
  long count;                /* this run of the thread: transfers */
  int timed;                 /*   each timed into lat_us */
  double secs;               /*   their wall time */
  int rc;
  pthread_t tid;
} multi_ep;

struct multi_side {
  const p2p_plan *plan;
  const twohost *th;
  int peer_fd, is_client, n;
  bench_op op;               /* the current step */
  size_t size;
  multi_ep ep[BENCH_MAX_ENDPOINTS];
};

static int fail(const multi_side *s, int gpu, const char *what) {
  fprintf(stderr, "bench p2p: %s endpoint %d: %s: %s\n",
          s->is_client ? "client" : "server", gpu, what, p2p_last_error());
  return -1;
}

static int oob_fail(const multi_side *s, const char *what) {
  fprintf(stderr, "bench p2p: %s: out-of-band %s failed\n",
          s->is_client ? "client" : "server", what);
  return -1;
}

static long iters_for(const p2p_plan *plan, size_t size) {
  if (plan->iters > 0) return plan->iters;
  long n = (long)(P2P_BUDGET_BYTES / size);
  return n < P2P_MIN_ITERS ? P2P_MIN_ITERS : n > P2P_MAX_ITERS ? P2P_MAX_ITERS : n;
}

static uint64_t seed_of(const multi_ep *e) { return P2P_SEED + (uint64_t)e->gpu; }

/* Both sides at the same point: one byte each way. */
static int barrier(multi_side *s) {
  char b = 1;
  if (oob_send(s->peer_fd, &b, 1) != 0 || bench_oob_wait(s->peer_fd, &b, 1) != 0)
    return oob_fail(s, "barrier");
  return 0;
}

/* ---- the threads ------------------------------------------------------------ */

/* One transfer of the step's op and size on endpoint e. */
static int one_transfer(multi_ep *e) {
  multi_side *s = e->side;
  size_t got = 0;
  if (!s->is_client) { /* the server only receives sends */
    int rc = p2p_recv(e->ep, e->conn, e->mr, e->buf, s->size, &got);
    if (rc == P2P_OK && got != s->size) {
      fprintf(stderr, "bench p2p: endpoint %d received %zu bytes, expected "
              "%zu\n", e->gpu, got, s->size);
      return P2P_EPEER;
    }
    return rc;
  }
  switch (s->op) {
    case OP_SEND: return p2p_send(e->ep, e->conn, e->mr, e->buf, s->size);
    case OP_WRITE: return p2p_write(e->ep, e->conn, e->mr, e->buf, s->size, e->desc);
    default: return p2p_read(e->ep, e->conn, e->mr, e->buf, s->size, e->desc);
  }
}

static void *ep_thread(void *arg) {
  multi_ep *e = arg;
  double start = bench_now();
  e->rc = 0;
  for (long i = 0; i < e->count && e->rc == 0; i++) {
    double t0 = bench_now();
    if (one_transfer(e) != P2P_OK) e->rc = fail(e->side, e->gpu, op_names[e->side->op]);
    else if (e->timed) e->lat_us[i] = (bench_now() - t0) * 1e6;
  }
  if (e->timed) e->secs = bench_now() - start; /* not the checked one's */
  return NULL;
}

/* `count` transfers on every endpoint at once; *wall (may be NULL): from
 * the first thread's start to the last one's end. */
static int run_all(multi_side *s, long count, int timed, double *wall) {
  int started = 0, rc = 0;
  double t0 = bench_now();
  for (; started < s->n; started++) {
    multi_ep *e = &s->ep[started];
    e->count = count;
    e->timed = timed;
    if (pthread_create(&e->tid, NULL, ep_thread, e) != 0) {
      fprintf(stderr, "bench p2p: cannot start a thread per endpoint\n");
      rc = -1;
      break;
    }
  }
  for (int i = 0; i < started; i++) {
    pthread_join(s->ep[i].tid, NULL);
    if (s->ep[i].rc != 0) rc = -1;
  }
  if (wall) *wall = bench_now() - t0;
  return rc;
}

/* ---- checks ----------------------------------------------------------------------- */

static void poison_all(multi_side *s) {
  for (int i = 0; i < s->n; i++) memset(s->ep[i].buf, BENCH_POISON, s->size);
}

/* 1 when every endpoint's buffer holds its pattern. */
static int check_all(multi_side *s, const char *what) {
  int ok = 1;
  for (int i = 0; i < s->n; i++) {
    char label[96];
    snprintf(label, sizeof label, "bench p2p: endpoint %d: checked %s",
             s->ep[i].gpu, what);
    ok &= bench_check(s->ep[i].buf, s->size, seed_of(&s->ep[i]), label);
  }
  return ok;
}

/* The checked transfer of a step, both sides: destinations poisoned, one
 * transfer per endpoint at once, every destination compared. */
static int checked_step(multi_side *s) {
  char ok = 1, msg = 1;
  if (s->op == OP_READ) {        /* the client's own buffers receive */
    if (!s->is_client) return bench_oob_wait(s->peer_fd, &ok, 1) || !ok ? -1 : 0;
    poison_all(s);
    if (run_all(s, 1, 0, NULL) != 0) return -1;
    ok = (char)check_all(s, "read");
    return oob_send(s->peer_fd, &ok, 1) != 0 || !ok ? -1 : 0;
  }
  if (!s->is_client) {           /* send, write: the server's buffers */
    poison_all(s);
    if (oob_send(s->peer_fd, &msg, 1) != 0) return oob_fail(s, "poisoned");
    if (s->op == OP_SEND && run_all(s, 1, 0, NULL) != 0) return -1;
    if (s->op == OP_WRITE && bench_oob_wait(s->peer_fd, &msg, 1) != 0)
      return oob_fail(s, "written");
    ok = (char)check_all(s, op_names[s->op]);
    return oob_send(s->peer_fd, &ok, 1) != 0 || !ok ? -1 : 0;
  }
  if (bench_oob_wait(s->peer_fd, &msg, 1) != 0) return oob_fail(s, "poisoned");
  if (run_all(s, 1, 0, NULL) != 0) return -1;
  if (s->op == OP_WRITE && oob_send(s->peer_fd, &msg, 1) != 0)
    return oob_fail(s, "written");
  if (bench_oob_wait(s->peer_fd, &ok, 1) != 0) return oob_fail(s, "verdict");
  if (!ok) fprintf(stderr, "bench p2p: the server found a checked %s corrupted\n",
                   op_names[s->op]);
  return ok ? 0 : -1;
}

/* ---- per-NIC bytes (client) --------------------------------------------------- */

/* Bytes each NIC of the client moved in the data's direction: sent for
 * send and write, received for read. */
static void nic_bytes(const multi_side *s, unsigned long long out[TWOHOST_MAX_NICS]) {
  for (int k = 0; k < s->th->nnics; k++) {
    unsigned long long rx = 0, tx = 0;
    twohost_if_bytes(s->th->nic[k][1], &rx, &tx);
    out[k] = s->op == OP_READ ? rx : tx;
  }
}

/* ---- reporting (client) ------------------------------------------------------- */

static void report(const multi_side *s, long iters, double wall, double cpu_s,
                   const unsigned long long *before,
                   const unsigned long long *after) {
  const p2p_plan *plan = s->plan;
  size_t nlat = (size_t)iters * (size_t)s->n;
  double *lat = malloc(nlat * sizeof *lat);
  bench_stats st = {0};
  if (lat) {
    for (int i = 0; i < s->n; i++)
      memcpy(lat + (size_t)i * (size_t)iters, s->ep[i].lat_us,
             (size_t)iters * sizeof *lat);
    bench_stats_of(lat, nlat, &st);
    free(lat);
  }
  double gbps = bench_gbps((double)s->size * (double)nlat, wall);
  const iperf3_result *r = s->op == OP_READ ? &plan->ref_nics_rev : &plan->ref_nics_fwd;
  double ref = iperf3_gbps(r);
  double ratio = ref > 0 ? gbps / ref : -1;
  double cpu = bench_cpu_per_gb(cpu_s, (double)s->size * (double)nlat);
  double ref_cpu = iperf3_cpu_s_per_gb(r);
  const twohost *th = s->th;
  if (plan->json) {
    printf("{\"op\":\"%s\",\"size\":%zu,\"endpoints\":%d,\"nics\":%d,"
           "\"iters\":%ld,\"async\":0,\"streams\":%d,\"mode\":\"%s\","
           "\"check\":\"ok\",", op_names[s->op], s->size, s->n, th->nnics,
           iters, plan->comms_per_lane * plan->tcp_streams, plan->mode);
    bench_json_num(stdout, "gbps", gbps, 0);
    printf("\"ep_gbps\":[");
    for (int i = 0; i < s->n; i++)
      printf("%s%.6g", i ? "," : "",
             bench_gbps((double)s->size * (double)iters, s->ep[i].secs));
    printf("],\"nic_bytes\":{");
    for (int k = 0; k < th->nnics; k++)
      printf("%s\"%s\":%llu", k ? "," : "", th->nic[k][1], after[k] - before[k]);
    printf("},");
    bench_json_num(stdout, "p50_us", st.p50, 0);
    bench_json_num(stdout, "p99_us", st.p99, 0);
    bench_json_num(stdout, "ref_gbps", ref, 0);
    bench_json_num(stdout, "ratio", ratio, 0);
    bench_json_num(stdout, "ref_procs_gbps", -1, 0); /* the reference is */
    bench_json_num(stdout, "ratio_procs", -1, 0);    /* already N procs  */
    bench_json_raw(stdout, gbps, NULL, 0);           /* not run here */
    bench_json_cpu(stdout, cpu, ref_cpu, 1);
  } else {
    char sz[32], refs[40] = "n/a", rs[16] = "null", cpu_cell[48];
    bench_size_str(s->size, sz, sizeof sz);
    if (ref > 0) {
      snprintf(refs, sizeof refs, "iperf3 %.3f GB/s", ref);
      snprintf(rs, sizeof rs, "%.3f", ratio);
    }
    bench_cpu_cell(cpu_cell, sizeof cpu_cell, cpu, ref_cpu);
    printf("%-6s %6s %4d %6ld %8.3f %9.1f %9.1f  %-18s %-6s  %s\n",
           op_names[s->op], sz, s->n, iters, gbps, st.p50, st.p99, refs, rs,
           cpu_cell);
    printf("       per endpoint GB/s:");
    for (int i = 0; i < s->n; i++)
      printf(" %d:%.3f", s->ep[i].gpu,
             bench_gbps((double)s->size * (double)iters, s->ep[i].secs));
    printf("\n       per NIC bytes:");
    for (int k = 0; k < th->nnics; k++)
      printf(" %s:%llu", th->nic[k][1], after[k] - before[k]);
    printf("\n");
  }
  fflush(stdout);
}

/* ---- steps ------------------------------------------------------------------------ */

/* write/read: the server advertises each endpoint's buffer, the client
 * gets the descriptors. */
static int exchange_descs(multi_side *s) {
  for (int i = 0; i < s->n; i++) {
    multi_ep *e = &s->ep[i];
    if (s->is_client) {
      if (bench_oob_wait(s->peer_fd, e->desc, P2P_DESC_SIZE) != 0)
        return oob_fail(s, "descriptors");
      continue;
    }
    uint8_t desc[P2P_DESC_SIZE];
    if (p2p_advertise(e->ep, e->conn, e->mr, e->buf, s->size, desc) != P2P_OK)
      return fail(s, e->gpu, "advertise");
    if (oob_send(s->peer_fd, desc, sizeof desc) != 0) return oob_fail(s, "descriptors");
  }
  return 0;
}

/* The CPU seconds the server's process spent in the timed phase, to the
 * client, which adds its own: *cpu_s is both sides' (-1: not known). */
static int exchange_cpu(multi_side *s, double *cpu_s) {
  double theirs;
  if (!s->is_client)
    return oob_send(s->peer_fd, cpu_s, sizeof *cpu_s) != 0 ? oob_fail(s, "CPU time") : 0;
  if (bench_oob_wait(s->peer_fd, &theirs, sizeof theirs) != 0)
    return oob_fail(s, "CPU time");
  *cpu_s = bench_cpu_both(*cpu_s, theirs);
  return 0;
}

/* Warm-up, then the timed phase between two barriers, then the checked
 * transfers. The server receives sends (and serves writes and reads from
 * its progress threads) while its CPU clock runs from barrier to
 * barrier. */
static int step(multi_side *s, bench_op op, size_t size) {
  long iters = iters_for(s->plan, size);
  unsigned long long before[TWOHOST_MAX_NICS] = {0}, after[TWOHOST_MAX_NICS] = {0};
  double wall = 0;
  int recv = !s->is_client && op == OP_SEND, moves = s->is_client || recv;
  s->op = op;
  s->size = size;
  if (op == OP_READ && !s->is_client) /* a read's source: the pattern again */
    for (int i = 0; i < s->n; i++) bench_fill(s->ep[i].buf, size, seed_of(&s->ep[i]));
  if ((op == OP_WRITE || op == OP_READ) && exchange_descs(s) != 0) return -1;
  if (barrier(s) != 0) return -1;
  if (moves && run_all(s, 1, 0, NULL) != 0) return -1; /* warm-up */
  if (barrier(s) != 0) return -1;
  if (s->is_client) nic_bytes(s, before);
  double c0 = bench_cpu_now();
  if (moves && run_all(s, iters, s->is_client, s->is_client ? &wall : NULL) != 0)
    return -1;
  double cpu_s = bench_cpu_since(c0); /* the client's: its timed transfers */
  if (s->is_client) nic_bytes(s, after);
  if (barrier(s) != 0) return -1;
  if (!s->is_client) cpu_s = bench_cpu_since(c0); /* until the client is done */
  if (exchange_cpu(s, &cpu_s) != 0 || checked_step(s) != 0) return -1;
  if (s->is_client) report(s, iters, wall, cpu_s, before, after);
  return 0;
}

/* ---- set-up ----------------------------------------------------------------------- */

static int open_ep(multi_side *s, int i, size_t max, long iters) {
  multi_ep *e = &s->ep[i];
  p2p_options opts;
  p2p_options_init(&opts);
  opts.plugin = s->plan->plugin;
  opts.no_local = 1; /* both sides would claim the same same-host sockets */
  opts.gpu_index = e->gpu = i;
  e->side = s;
  e->buf = aligned_alloc(4096, (max + 4095) & ~(size_t)4095);
  e->lat_us = calloc((size_t)iters, sizeof *e->lat_us);
  if (!e->buf || !e->lat_us) {
    fprintf(stderr, "bench p2p: out of memory for %d x %zu-byte buffers\n",
            s->n, max);
    return -1;
  }
  bench_fill(e->buf, max, seed_of(e));
  if (p2p_endpoint_create(&opts, &e->ep) != P2P_OK) return fail(s, i, "endpoint");
  if (p2p_reg(e->ep, e->buf, max, &e->mr) != P2P_OK) return fail(s, i, "register");
  return 0;
}

/* Server: every endpoint's metadata, then accept each. Client: connect
 * endpoint k to the server's endpoint k. */
static int connect_all(multi_side *s) {
  char ip[64];
  int gpu, port;
  for (int i = 0; i < s->n; i++) {
    multi_ep *e = &s->ep[i];
    uint8_t md[P2P_METADATA_MAX];
    size_t len = sizeof md;
    uint32_t n;
    if (!s->is_client) {
      if (p2p_get_metadata(e->ep, md, &len) != P2P_OK) return fail(s, i, "metadata");
      n = (uint32_t)len;
      if (oob_send(s->peer_fd, &n, sizeof n) != 0 || oob_send(s->peer_fd, md, len) != 0)
        return oob_fail(s, "metadata");
    } else {
      if (oob_recv(s->peer_fd, &n, sizeof n) != 0 || n > sizeof md ||
          oob_recv(s->peer_fd, md, n) != 0)
        return oob_fail(s, "metadata");
      if (p2p_parse_metadata(md, n, ip, sizeof ip, &port, &gpu) != P2P_OK)
        return fail(s, i, "metadata");
      if (p2p_connect(e->ep, ip, gpu, port, &e->conn) != P2P_OK)
        return fail(s, i, "connect");
    }
  }
  for (int i = 0; i < s->n && !s->is_client; i++)
    if (p2p_accept(s->ep[i].ep, ip, sizeof ip, &gpu, &s->ep[i].conn) != P2P_OK)
      return fail(s, i, "accept");
  return 0;
}

static int open_side(multi_side *s, const p2p_plan *plan, const twohost *th,
                     int peer_fd, int is_client) {
  memset(s, 0, sizeof *s);
  s->plan = plan;
  s->th = th;
  s->peer_fd = peer_fd;
  s->is_client = is_client;
  s->n = plan->endpoints;
  size_t max = bench_largest(plan->sizes, plan->nsizes);
  long most = 0;
  for (int i = 0; i < plan->nsizes; i++)
    if (iters_for(plan, plan->sizes[i]) > most) most = iters_for(plan, plan->sizes[i]);
  for (int i = 0; i < s->n; i++)
    if (open_ep(s, i, max, most) != 0) return -1;
  return connect_all(s);
}

static void close_side(multi_side *s) {
  for (int i = 0; i < s->n; i++) {
    p2p_endpoint_destroy(s->ep[i].ep);
    free(s->ep[i].buf);
    free(s->ep[i].lat_us);
  }
}

static void print_layout(const multi_side *s) {
  const p2p_plan *plan = s->plan;
  FILE *info = plan->json ? stderr : stdout;
  fprintf(info, "endpoints: %d per side, GPU indexes 0..%d; each: comms_per_lane "
          "%d x %d TCP streams per lane and direction\n", s->n, s->n - 1,
          plan->comms_per_lane, plan->tcp_streams);
  for (int i = 0; i < s->n; i++)
    fprintf(info, "  endpoint %d: GPU %d -> %s (%s) <-> %s (%s)\n", i, i,
            s->th->nic[twohost_gpu_nic(s->th, i)][1],
            s->th->nic_addr[twohost_gpu_nic(s->th, i)][1],
            s->th->nic[twohost_gpu_nic(s->th, i)][0],
            s->th->nic_addr[twohost_gpu_nic(s->th, i)][0]);
  if (!plan->json)
    fprintf(info, "%-6s %6s %4s %6s %8s %9s %9s  %-18s %-6s  %s\n", "op", "size",
            "eps", "iters", "GB/s", "p50 us", "p99 us", "reference", "ratio",
            BENCH_CPU_HEADER);
  fflush(info);
}

int bench_p2p_multi_side(const twohost *th, int side, int peer_fd, void *arg) {
  const p2p_plan *plan = arg;
  bench_side_start(side, plan->cpus_apart);
  multi_side *s = calloc(1, sizeof *s);
  if (!s) return -1;
  int rc = open_side(s, plan, th, peer_fd, side == 1);
  if (rc == 0 && side == 1) print_layout(s);
  for (int o = 0; o < plan->nops && rc == 0; o++)
    for (int i = 0; i < plan->nsizes && rc == 0; i++)
      if (plan->ops[o] != OP_PINGPONG) rc = step(s, plan->ops[o], plan->sizes[i]);
  if (rc == 0) rc = barrier(s);
  close_side(s);
  free(s);
  return rc;
}
