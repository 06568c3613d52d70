/* tcpx-p2p bench p2p --gpu --local: the same-host path. Two processes of
 * this host, each with a GPU buffer (GPU 0 and GPU 1 where there are two,
 * else both on GPU 0), connected by connect_local/accept_local (the unix
 * socket of the server's GPU index), move GPU memory by CUDA IPC: write
 * (write_ipc into the server's advertised buffer), read (read_ipc from
 * it) and send (send_ipc, the server in recv_ipc).
 *
 * Side 0, the server, owns one buffer per op (a fresh allocation, so the
 * first call of each op maps its handle); side 1, the client, drives,
 * times and reports. Per op and size the client times the first call
 * apart (first_us: the first of an op maps the peer's allocation), then
 * `iters` calls, each timed, in LOCAL_ROUNDS blocks that alternate with
 * blocks of the reference: cuMemcpyDtoDAsync + cuStreamSynchronize of the
 * same size between its own buffer and a buffer of its own on the
 * server's GPU (the same GPUs, the same direction), on a non-blocking
 * stream like the library's, so drift (clocks, other work) hits both
 * alike. Then one checked transfer: the destination poisoned
 * (cuMemsetD8), the bytes compared with the pattern after. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_p2p.h"
#include "tcpx_p2p.h"
#include "tools.h"

#define LOCAL_ROUNDS 5 /* IPC and reference blocks alternate this often */

typedef struct local_side {
  const p2p_plan *plan;
  int peer_fd;
  p2p_endpoint *ep;
  uint64_t conn;
  bench_gpu *gpu;              /* client: its buffer and the reference */
  bench_gpu *owned[OP_COUNT];  /* server: one buffer per op */
  int device, peer_device;
  double *ipc_us, *ref_us;     /* client: per timed call */
} local_side;

/* One row's figures (client). */
typedef struct local_row {
  long iters;
  double first_us;
  double ipc_s, ref_s;         /* seconds in the IPC and reference blocks */
} local_row;

static int fail(const char *side, const char *what) {
  fprintf(stderr, "bench p2p --local: %s: %s: %s\n", side, what, p2p_last_error());
  return -1;
}

static int oob_fail(const char *side, const char *what) {
  fprintf(stderr, "bench p2p --local: %s: out-of-band %s failed\n", side, what);
  return -1;
}

static size_t largest(const p2p_plan *plan) {
  return bench_largest(plan->sizes, plan->nsizes);
}

static long most_iters(const p2p_plan *plan) {
  long most = 0;
  for (int o = 0; o < plan->nops; o++)
    for (int i = 0; i < plan->nsizes; i++) {
      long n = p2p_plan_iters(plan, plan->ops[o], plan->sizes[i]);
      if (n > most) most = n;
    }
  return most;
}

/* ---- the timed calls (client) ---------------------------------------------- */

/* One blocking IPC call of `op` at `size` from or into the client's buffer. */
static int ipc_call(local_side *s, bench_op op, size_t size, const uint8_t *info) {
  void *buf = bench_gpu_ptr(s->gpu);
  switch (op) {
    case OP_WRITE: return p2p_write_ipc(s->ep, s->conn, buf, size, info);
    case OP_READ: return p2p_read_ipc(s->ep, s->conn, buf, size, info);
    default: return p2p_send_ipc(s->ep, s->conn, buf, size);
  }
}

/* One timed call: the IPC call, or (ref) the reference copy in the op's
 * direction (read: from the server's GPU). */
static int one_call(local_side *s, bench_op op, size_t size, const uint8_t *info,
                    int ref) {
  if (ref) return bench_gpu_ref_copy(s->gpu, size, op != OP_READ);
  return ipc_call(s, op, size, info) == P2P_OK ? 0 : fail("client", op_names[op]);
}

/* n calls, each timed into lat[]; seconds for the block, -1 on failure. */
static double timed_block(local_side *s, bench_op op, size_t size,
                          const uint8_t *info, int ref, long n, double *lat) {
  double start = bench_now();
  for (long i = 0; i < n; i++) {
    double t0 = bench_now();
    if (one_call(s, op, size, info, ref) != 0) return -1;
    lat[i] = (bench_now() - t0) * 1e6;
  }
  return bench_now() - start;
}

/* The first call apart, then the rounds: iters split over LOCAL_ROUNDS
 * blocks of IPC calls, each followed by as many reference copies. */
static int timed_rounds(local_side *s, bench_op op, size_t size,
                        const uint8_t *info, local_row *row) {
  double t0 = bench_now();
  if (one_call(s, op, size, info, 0) != 0) return -1;
  row->first_us = (bench_now() - t0) * 1e6;
  if (one_call(s, op, size, info, 1) != 0) return -1; /* warm */
  row->ipc_s = row->ref_s = 0;
  for (long done = 0, r = 0; r < LOCAL_ROUNDS; r++) {
    long n = (row->iters - done) / (LOCAL_ROUNDS - r);
    double ipc = timed_block(s, op, size, info, 0, n, s->ipc_us + done);
    double ref = ipc < 0 ? -1 : timed_block(s, op, size, info, 1, n, s->ref_us + done);
    if (ref < 0) return -1;
    row->ipc_s += ipc;
    row->ref_s += ref;
    done += n;
  }
  return 0;
}

/* ---- the checked transfer ------------------------------------------------ */

static int peer_verdict(local_side *s, const char *what) {
  char ok = 0;
  if (bench_oob_wait(s->peer_fd, &ok, 1) != 0) return oob_fail("client", what);
  if (!ok)
    fprintf(stderr, "bench p2p --local: the server found the checked %s "
            "corrupted\n", what);
  return ok ? 0 : -1;
}

/* write, send: the server poisons its buffer, the client moves the
 * pattern into it, the server checks. read: the client poisons its own
 * buffer, reads, checks, and tells the server. */
static int client_checked(local_side *s, bench_op op, size_t size,
                          const uint8_t *info) {
  char word = 1;
  const char *what = op_names[op];
  if (op == OP_READ) {
    if (bench_gpu_poison(s->gpu, size) != 0) return -1;
    if (ipc_call(s, op, size, info) != P2P_OK) return fail("client", "checked read");
    char ok = (char)bench_gpu_check(s->gpu, size, P2P_SEED,
                                    "bench p2p --local: checked read");
    if (oob_send(s->peer_fd, &ok, 1) != 0) return oob_fail("client", "verdict");
    return ok ? 0 : -1;
  }
  if (op == OP_WRITE && oob_send(s->peer_fd, &word, 1) != 0)
    return oob_fail("client", "check");
  if (bench_oob_wait(s->peer_fd, &word, 1) != 0) return oob_fail("client", "poisoned");
  if (ipc_call(s, op, size, info) != P2P_OK) return fail("client", "checked transfer");
  if (op == OP_WRITE && oob_send(s->peer_fd, &word, 1) != 0)
    return oob_fail("client", "written");
  return peer_verdict(s, what);
}

/* ---- reporting (client) -------------------------------------------------- */

static void report(const local_side *s, bench_op op, size_t size,
                   const local_row *row, int first_maps) {
  bench_stats ipc, ref;
  double bytes = (double)size * (double)row->iters;
  double gbps = bench_gbps(bytes, row->ipc_s), ref_gbps = bench_gbps(bytes, row->ref_s);
  double ratio = ref_gbps > 0 ? gbps / ref_gbps : -1;
  bench_stats_of(s->ipc_us, (size_t)row->iters, &ipc);
  bench_stats_of(s->ref_us, (size_t)row->iters, &ref);
  char sz[32];
  bench_size_str(size, sz, sizeof sz);
  if (s->plan->json) {
    printf("{\"op\":\"%s\",\"size\":%zu,\"blocks\":1,\"iters\":%ld,\"rounds\":%d,"
           "\"async\":0,\"mode\":\"local\",\"path\":\"ipc\",\"mem\":\"gpu\","
           "\"gpu\":%d,\"peer_gpu\":%d,\"check\":\"ok\",", op_names[op], size,
           row->iters, LOCAL_ROUNDS, s->device, s->peer_device);
    bench_json_num(stdout, "gbps", gbps, 0);
    bench_json_num(stdout, "p50_us", ipc.p50, 0);
    bench_json_num(stdout, "p99_us", ipc.p99, 0);
    bench_json_num(stdout, "first_us", row->first_us, 0);
    int peer = bench_gpu_ref_peer_access(s->gpu);
    printf("\"first_maps\":%s,\"ref\":\"dtod\",\"ref_peer_access\":%s,",
           first_maps ? "true" : "false", peer < 0 ? "null" : peer ? "true" : "false");
    bench_json_num(stdout, "ref_gbps", ref_gbps, 0);
    bench_json_num(stdout, "ref_p50_us", ref.p50, 0);
    bench_json_num(stdout, "ref_p99_us", ref.p99, 0);
    bench_json_num(stdout, "ratio", ratio, 1);
  } else {
    printf("%-8s %6s %6ld %8.3f %9.1f %9.1f %10.1f%s %8.3f %9.1f %9.1f %7.3f\n",
           op_names[op], sz, row->iters, gbps, ipc.p50, ipc.p99, row->first_us,
           first_maps ? "*" : " ", ref_gbps, ref.p50, ref.p99, ratio);
  }
  fflush(stdout);
}

static void print_header(const local_side *s) {
  FILE *info = s->plan->json ? stderr : stdout;
  fprintf(info, "bench p2p --local: client GPU %d -> server GPU %d over "
          "connect_local, CUDA IPC; reference: cuMemcpyDtoDAsync + "
          "cuStreamSynchronize between the client's buffer and one of its own "
          "on GPU %d (non-blocking stream), in %d rounds alternating with the "
          "IPC calls; first call timed apart (* = it mapped the peer's "
          "allocation)%s\n", s->device, s->peer_device, s->peer_device,
          LOCAL_ROUNDS, bench_gpu_ref_peer_access(s->gpu) == 0
          ? "; the driver offers no peer access between the two GPUs: the "
            "reference copy is staged, the IPC one may not be" : "");
  if (!s->plan->json)
    fprintf(info, "%-8s %6s %6s %8s %9s %9s %11s %8s %9s %9s %7s\n", "op",
            "size", "iters", "GB/s", "p50 us", "p99 us", "first us",
            "ref GB/s", "ref p50", "ref p99", "ratio");
  fflush(info);
}

/* ---- steps ----------------------------------------------------------------- */

static int client_step(local_side *s, bench_op op, size_t size, int first_maps) {
  uint8_t info[P2P_IPC_INFO_SIZE] = {0};
  local_row row = {.iters = p2p_plan_iters(s->plan, op, size)};
  if (op != OP_SEND && bench_oob_wait(s->peer_fd, info, sizeof info) != 0)
    return oob_fail("client", "IPC info");
  if (timed_rounds(s, op, size, info, &row) != 0 ||
      client_checked(s, op, size, info) != 0)
    return -1;
  report(s, op, size, &row, first_maps);
  return 0;
}

static int server_recvs(local_side *s, bench_gpu *g, size_t size, long n) {
  for (long i = 0; i < n; i++)
    if (p2p_recv_ipc(s->ep, s->conn, bench_gpu_ptr(g), size) != P2P_OK)
      return fail("server", "recv_ipc");
  return 0;
}

/* The server's half of a step: its buffer for the op advertised (write,
 * read), the client's sends received (the first, the timed ones), then
 * the checked transfer. */
static int server_step(local_side *s, bench_op op, size_t size) {
  bench_gpu *g = s->owned[op];
  long iters = p2p_plan_iters(s->plan, op, size);
  char word = 1;
  if (op != OP_SEND) { /* one-sided: the client needs the buffer's info */
    uint8_t info[P2P_IPC_INFO_SIZE];
    if (p2p_advertise_ipc(s->ep, s->conn, bench_gpu_ptr(g), size, info) != P2P_OK)
      return fail("server", "advertise_ipc");
    if (oob_send(s->peer_fd, info, sizeof info) != 0) return oob_fail("server", "info");
  }
  if (op == OP_READ) {
    if (bench_oob_wait(s->peer_fd, &word, 1) != 0) return oob_fail("server", "verdict");
    return word ? 0 : -1;
  }
  if (op == OP_WRITE) {
    if (bench_oob_wait(s->peer_fd, &word, 1) != 0)
      return oob_fail("server", "write check");
  } else if (server_recvs(s, g, size, 1 + iters) != 0) {
    return -1;
  }
  if (bench_gpu_poison(g, size) != 0) return -1;
  if (oob_send(s->peer_fd, &word, 1) != 0) return oob_fail("server", "poisoned");
  if (op == OP_SEND ? server_recvs(s, g, size, 1) != 0
                    : bench_oob_wait(s->peer_fd, &word, 1) != 0)
    return op == OP_SEND ? -1 : oob_fail("server", "written");
  char ok = (char)bench_gpu_check(g, size, P2P_SEED, op == OP_SEND
                                  ? "bench p2p --local: checked send"
                                  : "bench p2p --local: checked write");
  if (oob_send(s->peer_fd, &ok, 1) != 0) return oob_fail("server", "verdict");
  return ok ? 0 : -1;
}

/* ---- set-up ---------------------------------------------------------------- */

/* A GPU buffer of the largest size, pattern-filled, on GPU side % count. */
static int open_buffer(int side, size_t max, bench_gpu **g) {
  if (bench_gpu_open(side, max, g) != 0 || bench_gpu_fill(*g, max, P2P_SEED) != 0)
    return -1;
  return 0;
}

static int make_endpoint(local_side *s, const char *who) {
  p2p_options opts;
  p2p_options_init(&opts);
  opts.gpu_index = s->device;
  opts.plugin = "builtin"; /* the remote transport is not used here */
  if (p2p_endpoint_create(&opts, &s->ep) != P2P_OK) return fail(who, "endpoint");
  return 0;
}

/* With one GPU both endpoints have index 0 and the newer one's unix socket
 * replaces the older's: the client makes its endpoint first, so the
 * socket that connect_local finds is the server's. */
static int client_open(local_side *s, int side) {
  size_t max = largest(s->plan);
  long most = most_iters(s->plan);
  s->ipc_us = calloc((size_t)most, sizeof *s->ipc_us);
  s->ref_us = calloc((size_t)most, sizeof *s->ref_us);
  if (!s->ipc_us || !s->ref_us) return fprintf(stderr, "out of memory\n"), -1;
  if (open_buffer(side, max, &s->gpu) != 0) return -1;
  s->device = bench_gpu_device(s->gpu);
  if (make_endpoint(s, "client") != 0) return -1;
  int32_t dev = s->device;
  if (oob_send(s->peer_fd, &dev, sizeof dev) != 0 ||
      bench_oob_wait(s->peer_fd, &dev, sizeof dev) != 0)
    return oob_fail("client", "GPU index");
  s->peer_device = dev;
  if (p2p_connect_local(s->ep, s->peer_device, &s->conn) != P2P_OK)
    return fail("client", "connect_local");
  return bench_gpu_ref_open(s->gpu, s->peer_device);
}

static int server_open(local_side *s, int side) {
  size_t max = largest(s->plan);
  for (int o = 0; o < s->plan->nops; o++)
    if (open_buffer(side, max, &s->owned[s->plan->ops[o]]) != 0) return -1;
  s->device = bench_gpu_device(s->owned[s->plan->ops[0]]);
  int32_t dev;
  if (bench_oob_wait(s->peer_fd, &dev, sizeof dev) != 0)
    return oob_fail("server", "GPU index");
  s->peer_device = dev;
  if (make_endpoint(s, "server") != 0) return -1;
  dev = s->device;
  if (oob_send(s->peer_fd, &dev, sizeof dev) != 0) return oob_fail("server", "GPU index");
  int gpu;
  if (p2p_accept_local(s->ep, &gpu, &s->conn) != P2P_OK)
    return fail("server", "accept_local");
  return 0;
}

static void close_side(local_side *s) {
  p2p_endpoint_destroy(s->ep); /* first: it holds mappings of our buffers */
  bench_gpu_close(s->gpu);
  for (int o = 0; o < OP_COUNT; o++) bench_gpu_close(s->owned[o]);
  free(s->ipc_us);
  free(s->ref_us);
}

/* The end in turn: the client's endpoint goes first and says goodbye on
 * the connection, then the server's, which has heard it; ending both at
 * once, one may still be sending when the other has closed (a warning). */
static int client_leave(local_side *s) {
  char bye = 1;
  if (oob_send(s->peer_fd, &bye, 1) != 0) return oob_fail("client", "bye");
  p2p_endpoint_destroy(s->ep);
  s->ep = NULL;
  return oob_send(s->peer_fd, &bye, 1) != 0 ? oob_fail("client", "gone") : 0;
}

static int server_leave(local_side *s) {
  char bye;
  if (bench_oob_wait(s->peer_fd, &bye, 1) != 0 ||
      bench_oob_wait(s->peer_fd, &bye, 1) != 0)
    return oob_fail("server", "bye");
  return 0;
}

int bench_p2p_local_side(const twohost *th, int side, int peer_fd, void *arg) {
  (void)th;
  const p2p_plan *plan = arg;
  bench_side_start(side, plan->cpus_apart);
  local_side s = {.plan = plan, .peer_fd = peer_fd};
  int is_client = side == 1;
  int rc = is_client ? client_open(&s, side) : server_open(&s, side);
  if (rc == 0 && is_client) print_header(&s);
  for (int o = 0; o < plan->nops && rc == 0; o++)
    for (int i = 0; i < plan->nsizes && rc == 0; i++)
      rc = is_client ? client_step(&s, plan->ops[o], plan->sizes[i], i == 0)
                     : server_step(&s, plan->ops[o], plan->sizes[i]);
  if (rc == 0) rc = is_client ? client_leave(&s) : server_leave(&s);
  close_side(&s);
  return rc;
}
