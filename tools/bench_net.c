/* tcpx-p2p bench net: host-to-host throughput through the transport layer
 * (net.h: listen/connect/accept, isend/irecv/test) between the two hosts,
 * next to iperf3 with as many parallel streams as one transport comm has:
 * one iperf3 -P N (single-threaded in 3.12, so one core per end), and N
 * iperf3 processes of one stream each running at once (as many cores as
 * streams, like our transport's threads).
 *
 * Side 0 receives and times, side 1 sends. For each size the receiver
 * runs rounds, each announced over the out-of-band socket with its message
 * count: a warm-up (also the calibration of --seconds), the timed round,
 * and one checked message (receive buffer poisoned first, then compared
 * with the pattern byte for byte; not timed). Both sides keep up to
 * NET_WINDOW requests in flight and test them oldest first. After each
 * round the sender answers with the CPU time its process spent on it, so
 * the receiver reports both sides' CPU per GB next to iperf3's. At sizes
 * of 1 MiB and more a last round (NET_RAW_ROUND) runs the raw TCP bulk
 * reference on the same two buffers (bench_raw.c).
 *
 * --pingpong measures round trips instead: each side has a comm each way,
 * side 1 sends and waits for the echo, in blocks that alternate with a raw
 * TCP ping-pong between the same two processes (the reference). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_ref.h"
#include "env.h"
#include "err.h"
#include "net.h"
#include "plugin.h"
#include "tools.h"

#define NET_WINDOW 8                   /* requests in flight per comm */
#define NET_SEED 0x6e6574ull           /* data pattern */
#define NET_BUDGET_BYTES (1ull << 30)  /* default: bytes per size */
#define NET_MIN_MSGS 8
#define NET_MAX_MSGS 20000
#define NET_WARMUP_BYTES (32ull << 20)
#define NET_CONNECT_TIMEOUT_S 30.0
#define NET_RUN_TIMEOUT_S 1800
#define NET_PP_ITERS 2000              /* --pingpong: round trips per size */
#define NET_PP_WARMUP 20
#define NET_PP_BLOCK 50                /* raw and transport blocks alternate */
#define NET_RAW_ROUND UINT64_MAX       /* a round "count": the raw reference */

typedef struct net_plan {
  size_t sizes[BENCH_MAX_SIZES];
  int nsizes;
  int streams;          /* built-in transport's streams per comm */
  long iters;           /* messages per size; 0 = by byte budget */
  double seconds;       /* > 0: calibrate the count to this long */
  int ref_seconds;      /* iperf3 -t; 0 = no reference */
  int ref_per_size;     /* iperf3 again right before each size */
  int ref_procs;        /* also N iperf3 processes x 1 stream */
  int ref_raw;          /* raw TCP bulk reference (bench_raw.c) at sizes
                           of RAW_MIN_SIZE and more */
  int pingpong;         /* round trips instead of throughput */
  int json;
  int cpus_apart;       /* each side on its own half of the CPUs */
  const char *plugin;
  const char *mode;
  const twohost *th;    /* for iperf3 runs from the receiver */
  iperf3_result ref;    /* the once-per-run measurements: -P N, */
  iperf3_result procs;  /* N processes x -P 1 */
} net_plan;

/* One end of the benchmark's comm. */
typedef struct net_end {
  net_transport *t;
  void *comm;
  void *mh;
  int is_recv;
  unsigned char *buf;
  size_t piece_max;     /* largest request the transport takes */
} net_end;

static int fail(const char *side, const char *what) {
  fprintf(stderr, "bench net: %s: %s: %s\n", side, what, err_get());
  return 1;
}

/* ---- the pipelined data path ------------------------------------------------ */

static int post_piece(net_end *e, size_t off, size_t len, void **req) {
  void *data = e->buf + off;
  int tag = 0;
  if (e->is_recv)
    return net_call(e->t, irecv, e->comm, 1, &data, &len, &tag, &e->mh, req);
  return net_call(e->t, isend, e->comm, data, len, 0, e->mh, req);
}

/* Test the oldest request; *done = 1 when it finished (receive size checked
 * where the transport reports sizes, slot released where it must be). */
static int test_piece(net_end *e, void *req, size_t len, int *done) {
  size_t got = (size_t)-1;
  int rc = net_call(e->t, test, req, done, e->is_recv ? &got : NULL);
  if (rc != NET_OK || !*done || !e->is_recv) return rc;
  if (got != (size_t)-1 && got != len)
    return err_set(NET_EINTERNAL, "received %zu bytes, expected %zu", got, len);
  if (e->t->ops->irecv_consumed)
    return net_call(e->t, irecv_consumed, e->comm, 1, req);
  return NET_OK;
}

/* Move `count` messages of `size` bytes, each cut into requests of at most
 * piece_max bytes, keeping up to NET_WINDOW requests in flight. */
static int pipe_run(net_end *e, size_t size, uint64_t count) {
  uint64_t per = (size + e->piece_max - 1) / e->piece_max;
  uint64_t total = count * per, posted = 0, finished = 0;
  void *reqs[NET_WINDOW];
  size_t lens[NET_WINDOW];
  int idle = 0;
  while (finished < total) {
    int moved = 0;
    if (posted < total && posted - finished < NET_WINDOW) {
      size_t off = (size_t)(posted % per) * e->piece_max;
      size_t len = size - off < e->piece_max ? size - off : e->piece_max;
      void *req = NULL;
      if (post_piece(e, off, len, &req) != NET_OK) return -1;
      if (req) {
        reqs[posted % NET_WINDOW] = req;
        lens[posted++ % NET_WINDOW] = len;
        moved = 1;
      }
    }
    if (finished < posted) {
      int done = 0;
      int slot = (int)(finished % NET_WINDOW);
      if (test_piece(e, reqs[slot], lens[slot], &done) != NET_OK) return -1;
      finished += (uint64_t)done;
      moved |= done;
    }
    if (moved) idle = 0;
    else bench_idle(&idle);
  }
  return 0;
}

/* ---- setting up the comm -------------------------------------------------------- */

static int open_end(const net_plan *plan, int is_recv, net_end *e) {
  memset(e, 0, sizeof *e);
  e->is_recv = is_recv;
  if (net_open(plan->plugin, 0, NULL, &e->t) != NET_OK) return -1;
  net_props props;
  if (net_call(e->t, get_properties, 0, &props) != NET_OK) return -1;
  e->piece_max = props.max_p2p_bytes ? props.max_p2p_bytes : (size_t)1 << 40;
  return 0;
}

static int accept_comm(net_end *e, void *lcomm) {
  net_dev_handle dh = {0}, *dhp = &dh;
  double start = bench_now();
  int idle = 0;
  while (!e->comm) {
    if (net_call(e->t, accept, lcomm, &e->comm, &dhp) != NET_OK) return -1;
    if (!e->comm && bench_now() - start > NET_CONNECT_TIMEOUT_S)
      return err_set(-1, "no connection within %.0f s", NET_CONNECT_TIMEOUT_S);
    if (!e->comm) bench_idle(&idle);
  }
  return 0;
}

static int connect_comm(net_end *e, unsigned char *handle) {
  double start = bench_now();
  int idle = 0;
  while (!e->comm) {
    if (net_call(e->t, connect, 0, handle, &e->comm, NULL) != NET_OK) return -1;
    if (!e->comm && bench_now() - start > NET_CONNECT_TIMEOUT_S)
      return err_set(-1, "not connected within %.0f s", NET_CONNECT_TIMEOUT_S);
    if (!e->comm) bench_idle(&idle);
  }
  return 0;
}

static size_t largest(const net_plan *plan) {
  return bench_largest(plan->sizes, plan->nsizes);
}

static int alloc_buffer(net_end *e, size_t size) {
  e->buf = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);
  if (!e->buf) return err_set(-1, "out of memory for %zu bytes", size);
  if (net_call(e->t, reg_mr, e->comm, e->buf, size, NCCL_PTR_HOST, &e->mh) != NET_OK)
    return -1;
  return 0;
}

static void close_end(net_end *e) {
  if (e->mh) net_call(e->t, dereg_mr, e->comm, e->mh);
  if (e->comm)
    e->is_recv ? net_call(e->t, close_recv, e->comm)
               : net_call(e->t, close_send, e->comm);
  if (e->t) e->t->ops->destroy(e->t);
  free(e->buf);
}

/* ---- receiver: rounds, timing, report -------------------------------------------- */

/* Announce a round of `count` messages and receive them: the seconds it
 * took, and the CPU seconds both processes spent on it (the sender's
 * comes back over the out-of-band socket once the clock has stopped). */
static int recv_round(net_end *e, int peer_fd, size_t size, uint64_t count,
                      double *secs, double *cpu_s) {
  double t0 = bench_now(), c0 = bench_cpu_now(), theirs;
  if (oob_send(peer_fd, &count, sizeof count) != 0) return -1;
  if (pipe_run(e, size, count) != 0) return -1;
  *secs = bench_now() - t0;
  double mine = bench_cpu_since(c0);
  if (bench_oob_wait(peer_fd, &theirs, sizeof theirs) != 0) return -1;
  *cpu_s = bench_cpu_both(mine, theirs);
  return 0;
}

static uint64_t timed_count(const net_plan *plan, size_t size, uint64_t warm,
                            double warm_secs) {
  double n;
  if (plan->iters > 0) return (uint64_t)plan->iters;
  if (plan->seconds > 0)
    n = plan->seconds * (double)warm / (warm_secs > 1e-6 ? warm_secs : 1e-6);
  else
    n = (double)NET_BUDGET_BYTES / (double)size;
  if (n < NET_MIN_MSGS) n = NET_MIN_MSGS;
  if (plan->seconds <= 0 && n > NET_MAX_MSGS) n = NET_MAX_MSGS;
  return (uint64_t)n;
}

/* "%11.3f  %6.3f" of a reference and its ratio, or n/a and null. */
static void ref_cells(char *buf, size_t len, double ref, double ratio) {
  if (ref > 0) snprintf(buf, len, "%11.3f  %6.3f", ref, ratio);
  else snprintf(buf, len, "%11s  %6s", "n/a", "null");
}

static void report(const net_plan *plan, const iperf3_result *r,
                   const iperf3_result *procs, const raw_result *raw,
                   size_t size, uint64_t count, double gbps, double cpu_s) {
  double ref = iperf3_gbps(r), ref2 = iperf3_gbps(procs);
  double ratio = ref > 0 ? gbps / ref : -1;
  double ratio2 = ref2 > 0 ? gbps / ref2 : -1;
  double cpu = bench_cpu_per_gb(cpu_s, (double)size * (double)count);
  double ref_cpu = iperf3_cpu_ref(procs, r);
  char s[32], cells[64], cells2[64], cpu_cell[48], raw_cell[48];
  bench_size_str(size, s, sizeof s);
  if (plan->json) {
    printf("{\"op\":\"net\",\"size\":%zu,\"streams\":%d,\"msgs\":%llu,"
           "\"mode\":\"%s\",\"check\":\"ok\",", size, plan->streams,
           (unsigned long long)count,
           plan->mode);
    bench_json_num(stdout, "gbps", gbps, 0);
    bench_json_num(stdout, "ref_gbps", ref, 0);
    bench_json_num(stdout, "ratio", ratio, 0);
    bench_json_num(stdout, "ref_procs_gbps", ref2, 0);
    bench_json_num(stdout, "ratio_procs", ratio2, 0);
    bench_json_raw(stdout, gbps, raw, 0);
    bench_json_cpu(stdout, cpu, ref_cpu, 1);
  } else {
    ref_cells(cells, sizeof cells, ref, ratio);
    ref_cells(cells2, sizeof cells2, ref2, ratio2);
    bench_cpu_cell(cpu_cell, sizeof cpu_cell, cpu, ref_cpu);
    bench_raw_cell(raw_cell, sizeof raw_cell, gbps, raw);
    printf("%8s  %8.3f  %s  %s  %-20s  %-19s  %7llu  ok\n", s, gbps, cells,
           cells2, raw_cell, cpu_cell, (unsigned long long)count);
  }
  fflush(stdout);
}

/* Both references, as the plan asks; the reason on stderr for one that
 * failed. */
static void measure_references(const net_plan *plan, iperf3_result *ref,
                               iperf3_result *procs) {
  iperf3_measure_pair(plan->th, plan->streams, plan->ref_seconds, 0,
                      plan->ref_procs, ref, procs);
  if (!ref->available) fprintf(stderr, "bench net: reference: %s\n", ref->why);
  if (plan->ref_procs && !procs->available)
    fprintf(stderr, "bench net: reference 2: %s\n", procs->why);
}

/* The raw bulk reference runs where a size is RAW_MIN_SIZE or more, over
 * as many connections as the comm has streams; the sides open them only
 * when some size needs them. */
static int plan_has_raw(const net_plan *plan) {
  return plan->ref_raw && !plan->pingpong && largest(plan) >= RAW_MIN_SIZE;
}

/* raw_bulk_open where the plan needs it: 0, or -1 after its message. */
static int open_raw(const net_plan *plan, const twohost *th, int side,
                    int peer_fd, raw_bulk **rb) {
  if (!plan_has_raw(plan)) return 0;
  *rb = raw_bulk_open(th, side, peer_fd, plan->streams);
  return *rb ? 0 : -1;
}

/* Right after the size's checked message, into the same receive buffer:
 * the sender follows the announced NET_RAW_ROUND (send_size). */
static int recv_raw(raw_bulk *rb, net_end *e, int peer_fd, size_t size,
                    uint64_t count, double secs, raw_result *out) {
  uint64_t word = NET_RAW_ROUND;
  *out = (raw_result){0};
  if (!rb || size < RAW_MIN_SIZE) return 0;
  if (oob_send(peer_fd, &word, sizeof word) != 0 ||
      raw_bulk_lead(rb, 0, e->buf, size, (long)count, secs, NET_SEED, out) != 0)
    return err_set(-1, "the raw TCP reference at %zu bytes failed", size);
  return 0;
}

static int recv_size(const net_plan *plan, net_end *e, raw_bulk *rb,
                     int peer_fd, size_t size) {
  iperf3_result ref = plan->ref, procs = plan->procs;
  /* The sender idles meanwhile, waiting for the first round. */
  if (plan->ref_per_size && plan->ref_seconds > 0)
    measure_references(plan, &ref, &procs);
  uint64_t warm = NET_WARMUP_BYTES / size, stop = 0, one = 1;
  warm = warm < 2 ? 2 : warm > 256 ? 256 : warm;
  double warm_secs, secs, cpu_s, unused;
  if (recv_round(e, peer_fd, size, warm, &warm_secs, &unused) != 0) return -1;
  uint64_t count = timed_count(plan, size, warm, warm_secs);
  if (recv_round(e, peer_fd, size, count, &secs, &cpu_s) != 0) return -1;
  memset(e->buf, BENCH_POISON, size);
  if (recv_round(e, peer_fd, size, one, &unused, &unused) != 0) return -1;
  if (!bench_check(e->buf, size, NET_SEED, "bench net: checked message"))
    return err_set(-1, "the checked message of %zu bytes arrived corrupted", size);
  raw_result raw;
  if (recv_raw(rb, e, peer_fd, size, count, secs, &raw) != 0) return -1;
  if (oob_send(peer_fd, &stop, sizeof stop) != 0) return -1;
  report(plan, &ref, &procs, &raw, size, count,
         bench_gbps((double)size * (double)count, secs), cpu_s);
  return 0;
}

static void print_transport(const net_plan *plan, const net_end *e) {
  FILE *info = plan->json ? stderr : stdout;
  if (e->t->abi_version == 0)
    fprintf(info, "transport: %s (built-in), %d TCP streams per comm, 1 comm, "
            "%d requests in flight, receiver times\n", e->t->name,
            plan->streams, NET_WINDOW);
  else
    fprintf(info, "transport: %s (%s, ncclNet v%d), 1 comm, %d requests in "
            "flight, receiver times\n", e->t->name, e->t->path,
            e->t->abi_version, NET_WINDOW);
  if (!plan->json)
    fprintf(info, "%8s  %8s  %11s  %6s  %11s  %6s  %-20s  %-19s  %7s  %s\n",
            "size", "GB/s", "iperf3 GB/s", "ratio", "procs GB/s", "ratio2",
            BENCH_RAW_HEADER, BENCH_CPU_HEADER, "msgs", "check");
  fflush(info);
}

static int receiver(const twohost *th, int side, int peer_fd, void *arg) {
  const net_plan *plan = arg;
  bench_side_start(side, plan->cpus_apart);
  raw_bulk *rb = NULL;
  net_end e;
  unsigned char handle[NET_HANDLE_SIZE];
  void *lcomm = NULL;
  int rc = -1;
  if (open_end(plan, 1, &e) != 0) return fail("receiver", "transport");
  if (net_call(e.t, listen, 0, handle, &lcomm) != NET_OK) fail("receiver", "listen");
  else if (oob_send(peer_fd, handle, sizeof handle) != 0) fail("receiver", "handle");
  else if (accept_comm(&e, lcomm) != 0) fail("receiver", "accept");
  else if (alloc_buffer(&e, largest(plan)) != 0) fail("receiver", "buffer");
  else if (open_raw(plan, th, side, peer_fd, &rb) == 0) rc = 0;
  if (lcomm) net_call(e.t, close_listen, lcomm);
  if (rc == 0) print_transport(plan, &e);
  for (int i = 0; i < plan->nsizes && rc == 0; i++)
    if (recv_size(plan, &e, rb, peer_fd, plan->sizes[i]) != 0)
      rc = fail("receiver", "transfer");
  raw_bulk_close(rb);
  close_end(&e);
  return rc;
}

/* ---- sender: follows the receiver's rounds ----------------------------------------- */

/* Each round, then the CPU seconds this process spent on it (from the
 * count's arrival to the last send done) back to the receiver; or the
 * raw reference's round, from the same buffer. */
static int send_size(net_end *e, raw_bulk *rb, int peer_fd, size_t size) {
  for (;;) {
    uint64_t count;
    if (bench_oob_wait(peer_fd, &count, sizeof count) != 0) return -1;
    if (count == 0) return 0;
    if (count == NET_RAW_ROUND) {
      if (!rb || raw_bulk_follow(rb, 1, e->buf, size, NET_SEED) != 0)
        return err_set(-1, "the raw TCP reference at %zu bytes failed", size);
      continue;
    }
    double c0 = bench_cpu_now();
    if (pipe_run(e, size, count) != 0) return -1;
    double cpu_s = bench_cpu_since(c0);
    if (oob_send(peer_fd, &cpu_s, sizeof cpu_s) != 0) return -1;
  }
}

static int sender(const twohost *th, int side, int peer_fd, void *arg) {
  const net_plan *plan = arg;
  bench_side_start(side, plan->cpus_apart);
  raw_bulk *rb = NULL;
  net_end e;
  unsigned char handle[NET_HANDLE_SIZE];
  int rc = -1;
  if (open_end(plan, 0, &e) != 0) return fail("sender", "transport");
  if (oob_recv(peer_fd, handle, sizeof handle) != 0) fail("sender", "handle");
  else if (connect_comm(&e, handle) != 0) fail("sender", "connect");
  else if (alloc_buffer(&e, largest(plan)) != 0) fail("sender", "buffer");
  else if (open_raw(plan, th, side, peer_fd, &rb) == 0) rc = 0;
  if (rc == 0) bench_fill(e.buf, largest(plan), NET_SEED);
  for (int i = 0; i < plan->nsizes && rc == 0; i++)
    if (send_size(&e, rb, peer_fd, plan->sizes[i]) != 0) rc = fail("sender", "transfer");
  raw_bulk_close(rb);
  close_end(&e);
  return rc;
}

/* ---- --pingpong: round trips through the transport --------------------------------- */

/* A comm each way on one transport instance, one buffer, and the raw
 * reference socket. */
typedef struct net_pp {
  net_end tx, rx;       /* tx.t owns the transport; rx.t is the same */
  void *lcomm;
  int raw_fd;
  double *lat_us, *raw_us;
} net_pp;

/* Connect to the peer's listener while accepting the peer on ours. */
static int pp_connect_both(net_pp *p, unsigned char *theirs) {
  net_dev_handle dh = {0}, *dhp = &dh;
  double start = bench_now();
  int idle = 0;
  while (!p->tx.comm || !p->rx.comm) {
    if (!p->tx.comm &&
        net_call(p->tx.t, connect, 0, theirs, &p->tx.comm, NULL) != NET_OK)
      return -1;
    if (!p->rx.comm &&
        net_call(p->tx.t, accept, p->lcomm, &p->rx.comm, &dhp) != NET_OK)
      return -1;
    if (bench_now() - start > NET_CONNECT_TIMEOUT_S)
      return err_set(-1, "comms not up within %.0f s", NET_CONNECT_TIMEOUT_S);
    bench_idle(&idle);
  }
  return 0;
}

static int pp_open(const net_plan *plan, const twohost *th, int side,
                   int peer_fd, net_pp *p) {
  memset(p, 0, sizeof *p);
  p->raw_fd = -1;
  unsigned char mine[NET_HANDLE_SIZE], theirs[NET_HANDLE_SIZE];
  size_t max = largest(plan);
  if (open_end(plan, 0, &p->tx) != 0) return fail("pingpong", "transport");
  p->rx = p->tx;
  p->rx.is_recv = 1;
  if (net_call(p->tx.t, listen, 0, mine, &p->lcomm) != NET_OK)
    return fail("pingpong", "listen");
  if (oob_send(peer_fd, mine, sizeof mine) != 0 ||
      oob_recv(peer_fd, theirs, sizeof theirs) != 0 ||
      pp_connect_both(p, theirs) != 0)
    return fail("pingpong", "connect");
  p->tx.buf = p->rx.buf = aligned_alloc(4096, (max + 4095) & ~(size_t)4095);
  p->lat_us = calloc((size_t)plan->iters, sizeof *p->lat_us);
  p->raw_us = calloc((size_t)plan->iters, sizeof *p->raw_us);
  if (!p->tx.buf || !p->lat_us || !p->raw_us)
    return err_set(-1, "out of memory"), fail("pingpong", "buffers");
  bench_fill(p->tx.buf, max, NET_SEED);
  if (net_call(p->tx.t, reg_mr, p->tx.comm, p->tx.buf, max, NCCL_PTR_HOST,
               &p->tx.mh) != NET_OK ||
      net_call(p->tx.t, reg_mr, p->rx.comm, p->rx.buf, max, NCCL_PTR_HOST,
               &p->rx.mh) != NET_OK)
    return fail("pingpong", "register");
  p->raw_fd = side == 0 ? pingpong_listen(th, peer_fd) : pingpong_dial(th, peer_fd);
  return p->raw_fd < 0 ? -1 : 0;
}

static void pp_close(net_pp *p) {
  net_transport *t = p->tx.t;
  if (!t) return;
  if (p->tx.mh) net_call(t, dereg_mr, p->tx.comm, p->tx.mh);
  if (p->rx.mh) net_call(t, dereg_mr, p->rx.comm, p->rx.mh);
  if (p->tx.comm) net_call(t, close_send, p->tx.comm);
  if (p->rx.comm) net_call(t, close_recv, p->rx.comm);
  if (p->lcomm) net_call(t, close_listen, p->lcomm);
  t->ops->destroy(t);
  if (p->raw_fd >= 0) close(p->raw_fd);
  free(p->tx.buf);
  free(p->lat_us);
  free(p->raw_us);
}

/* One round trip: the initiator sends then receives the echo. */
static int pp_round(net_pp *p, size_t size, int initiator) {
  net_end *first = initiator ? &p->tx : &p->rx;
  net_end *second = initiator ? &p->rx : &p->tx;
  if (pipe_run(first, size, 1) != 0 || pipe_run(second, size, 1) != 0)
    return fail("pingpong", "round trip");
  return 0;
}

/* The initiator's checked round trip: the echo lands in a poisoned buffer
 * (the send is done, so the buffer is free again). */
static int pp_checked_round(net_pp *p, size_t size, int initiator) {
  if (!initiator) return pp_round(p, size, 0);
  if (pipe_run(&p->tx, size, 1) != 0) return fail("pingpong", "checked send");
  memset(p->rx.buf, BENCH_POISON, size);
  if (pipe_run(&p->rx, size, 1) != 0) return fail("pingpong", "checked echo");
  return bench_check(p->rx.buf, size, NET_SEED, "bench net: checked echo") ? 0 : -1;
}

/* Blocks of raw round trips alternate with blocks through the transport,
 * so both see the same machine. Only the initiator times. */
static int pp_size(const net_plan *plan, net_pp *p, size_t size, int initiator) {
  for (long i = -NET_PP_WARMUP; i < plan->iters; i += NET_PP_BLOCK) {
    long n = i < 0 ? -i : plan->iters - i < NET_PP_BLOCK ? plan->iters - i
                                                         : NET_PP_BLOCK;
    for (long j = 0; j < n; j++) {
      double t0 = bench_now();
      if (pingpong_round(p->raw_fd, p->tx.buf, size, initiator) != 0) return -1;
      if (i >= 0) p->raw_us[i + j] = (bench_now() - t0) * 1e6;
    }
    for (long j = 0; j < n; j++) {
      double t0 = bench_now();
      if (pp_round(p, size, initiator) != 0) return -1;
      if (i >= 0) p->lat_us[i + j] = (bench_now() - t0) * 1e6;
    }
    if (i < 0) i = -NET_PP_BLOCK; /* the warm-up was one block */
  }
  return pp_checked_round(p, size, initiator);
}

static void pp_report(const net_plan *plan, const net_pp *p, size_t size) {
  bench_stats st, raw;
  size_t n = (size_t)plan->iters;
  bench_stats_of(p->lat_us, n, &st);
  bench_stats_of(p->raw_us, n, &raw);
  double ratio = raw.p50 > 0 ? st.p50 / raw.p50 : -1;
  char s[32];
  bench_size_str(size, s, sizeof s);
  if (plan->json) {
    printf("{\"op\":\"net-pingpong\",\"size\":%zu,\"streams\":%d,\"iters\":%ld,"
           "\"mode\":\"%s\",\"check\":\"ok\",\"gbps\":null,", size,
           plan->streams, plan->iters,
           plan->mode);
    bench_json_num(stdout, "p50_us", st.p50, 0);
    bench_json_num(stdout, "p99_us", st.p99, 0);
    bench_json_num(stdout, "ref_p50_us", raw.p50, 0);
    bench_json_num(stdout, "ref_p99_us", raw.p99, 0);
    bench_json_num(stdout, "ratio", ratio, 1);
  } else {
    printf("%8s  %9.1f  %9.1f  %10.1f  %10.1f  %6.2f  %6ld  ok\n", s, st.p50,
           st.p99, raw.p50, raw.p99, ratio, plan->iters);
  }
  fflush(stdout);
}

/* Both sides: side 1 initiates, times and reports; side 0 echoes. */
static int pp_side(const twohost *th, int side, int peer_fd, void *arg) {
  const net_plan *plan = arg;
  bench_side_start(side, plan->cpus_apart);
  net_pp p;
  int rc = pp_open(plan, th, side, peer_fd, &p);
  if (rc == 0 && side == 1) {
    FILE *info = plan->json ? stderr : stdout;
    fprintf(info, "transport: %s, %d TCP streams per comm (built-in), a comm "
            "each way; raw TCP ping-pong between the same two processes in "
            "blocks of %d round trips alternating with the transport's\n",
            p.tx.t->name, plan->streams, NET_PP_BLOCK);
    if (!plan->json)
      fprintf(info, "%8s  %9s  %9s  %10s  %10s  %6s  %6s  %s\n", "size",
              "p50 us", "p99 us", "raw p50 us", "raw p99 us", "ratio", "iters",
              "check");
    fflush(info);
  }
  for (int i = 0; i < plan->nsizes && rc == 0; i++) {
    rc = pp_size(plan, &p, plan->sizes[i], side == 1);
    if (rc == 0 && side == 1) pp_report(plan, &p, plan->sizes[i]);
  }
  pp_close(&p);
  return rc;
}

/* ---- command line ------------------------------------------------------------------- */

static int usage(FILE *out) {
  fprintf(out,
          "usage: tcpx-p2p bench net [--sizes 4K,64K,1M,16M,64M,256M] [--streams N]\n"
          "                          [--iters N | --seconds S] [--ref-seconds S]\n"
          "                          [--ref-per-size] [--ref-procs 1|0] [--ref-raw 1|0]\n"
          "                          [--pingpong] [--json] [--loopback] [--plugin P]\n"
          "                          [--cpus apart|free]\n"
          "  Throughput of one transport comm between two hosts (network\n"
          "  namespaces over veth as root, else loopback), %d requests in flight,\n"
          "  next to iperf3 -P N (N = streams per comm, default\n"
          "  TCPX_P2P_TCP_STREAMS or 4) run once, or right before each size with\n"
          "  --ref-per-size, for --ref-seconds (default 3; 0 = no reference);\n"
          "  and next to N iperf3 processes of 1 stream each at once, each pair\n"
          "  on its own CPUs (reference 2, ratio2; --ref-procs 0 skips it).\n"
          "  Default count per size: 1 GiB worth, %d..%d messages. Each row\n"
          "  also gives both sides' CPU seconds per GB next to the iperf3\n"
          "  reference's (N processes where measured) and their ratio.\n"
          "  Reference 3 (raw_gbps, ratio_raw, raw_cpu_s_per_gb; text column\n"
          "  'raw GB/s ratio CPU'), measured by the two sides right after each\n"
          "  size: N plain TCP connections between them, a thread per\n"
          "  connection, moving the size's own buffers (DRAM, not iperf3's\n"
          "  cached 128 KiB) with blocking send()/recv(). --ref-raw 1 (default):\n"
          "  sizes of 1M and more, none below; 0: none.\n"
          "  --pingpong: round trips through the transport instead (sizes\n"
          "  default 256,4K,64K; --iters default %d), next to a raw TCP\n"
          "  ping-pong between the same processes; ratio = p50 / raw p50.\n"
          "  --cpus apart (default): each side and its threads on its own half\n"
          "  of the CPUs, like two hosts; free: where the scheduler puts them.\n",
          NET_WINDOW, NET_MIN_MSGS, NET_MAX_MSGS, NET_PP_ITERS);
  return out == stdout ? TOOL_OK : TOOL_USAGE;
}

#define NET_CMD "bench net"

/* A flag with a value at argv[*i]; 0, 1 when `flag` is not one, or -1
 * after the message. */
static int parse_valued(int argc, char **argv, int *i, net_plan *p,
                        int *sizes_given) {
  static const char *const valued[] = {"--sizes", "--streams", "--iters",
      "--seconds", "--ref-seconds", "--ref-procs", "--plugin", "--cpus",
      "--ref-raw", NULL};
  const char *flag = argv[*i], *v;
  int k = 0;
  while (valued[k] && strcmp(valued[k], flag) != 0) k++;
  if (!valued[k]) return 1;
  if (!(v = arg_value(NET_CMD, argc, argv, i))) return -1;
  switch (k) {
    case 0: *sizes_given = 1;
      return (p->nsizes = bench_parse_sizes(NET_CMD, v, p->sizes,
                                            BENCH_MAX_SIZES)) < 0 ? -1 : 0;
    case 1: return arg_int(NET_CMD, flag, v, 1, 64, &p->streams);
    case 2: return arg_long(NET_CMD, flag, v, 1, 100000000, &p->iters);
    case 3: return arg_double(NET_CMD, flag, v, 0.001, 86400, &p->seconds);
    case 4: return arg_int(NET_CMD, flag, v, 0, 3600, &p->ref_seconds);
    case 5: return arg_int(NET_CMD, flag, v, 0, 1, &p->ref_procs);
    case 6: p->plugin = v; return 0;
    case 7: return bench_parse_cpus(NET_CMD, v, &p->cpus_apart);
    default: return arg_int(NET_CMD, flag, v, 0, 1, &p->ref_raw);
  }
}

static int parse_args(int argc, char **argv, net_plan *p, int *loopback) {
  int sizes_given = 0;
  p->ref_seconds = 3;
  p->ref_procs = 1;
  p->ref_raw = 1;
  p->cpus_apart = 1;
  if (env_int_get("TCPX_P2P_TCP_STREAMS", 4, 1, 64, &p->streams) != 0)
    return arg_error(NET_CMD, "%s", err_get()), -1;
  for (int i = 1; i < argc; i++) {
    int rc;
    if (!strcmp(argv[i], "--json")) p->json = 1;
    else if (!strcmp(argv[i], "--loopback")) *loopback = 1;
    else if (!strcmp(argv[i], "--ref-per-size")) p->ref_per_size = 1;
    else if (!strcmp(argv[i], "--pingpong")) p->pingpong = 1;
    else if ((rc = parse_valued(argc, argv, &i, p, &sizes_given)) != 0)
      return rc < 0 ? -1 : (arg_unknown(NET_CMD, argv[i]), -1);
  }
  if (p->iters > 0 && p->seconds > 0)
    return arg_error(NET_CMD, "--iters and --seconds: give one or the other"), -1;
  if (!sizes_given)
    p->nsizes = bench_parse_sizes(NET_CMD, p->pingpong ? "256,4K,64K"
                                                       : "4K,64K,1M,16M,64M,256M",
                                  p->sizes, BENCH_MAX_SIZES);
  if (p->pingpong && p->iters == 0) p->iters = NET_PP_ITERS;
  return 0;
}

static void print_reference(const net_plan *plan) {
  FILE *info = plan->json ? stderr : stdout;
  char cpu[48];
  iperf3_cpu_words(&plan->ref, cpu, sizeof cpu);
  if (plan->ref_seconds == 0)
    fprintf(info, "reference: none (--ref-seconds 0): ratio null\n");
  else if (plan->ref_per_size)
    fprintf(info, "reference: iperf3 -P %d, %d s after 1 s omitted, ends on "
            "two CPUs, measured right before each size between the same "
            "hosts\n", plan->streams, plan->ref_seconds);
  else if (plan->ref.available)
    fprintf(info, "reference: iperf3 -P %d, %d s after 1 s omitted, ends on "
            "CPUs %d and %d, measured once per run between the same hosts: "
            "%.3f GB/s%s\n", plan->ref.streams, plan->ref.seconds,
            plan->ref.cpu[0], plan->ref.cpu[1], plan->ref.gbps, cpu);
  else
    fprintf(info, "reference: unavailable (%s): ratio null\n", plan->ref.why);
  fflush(info);
}

static void print_reference2(const net_plan *plan) {
  FILE *info = plan->json ? stderr : stdout;
  char where[160], cpu[48];
  iperf3_placement(&plan->procs, where, sizeof where);
  iperf3_cpu_words(&plan->procs, cpu, sizeof cpu);
  if (plan->ref_seconds == 0 || !plan->ref_procs)
    fprintf(info, "reference 2: none (%s): ratio2 null\n",
            plan->ref_seconds == 0 ? "--ref-seconds 0" : "--ref-procs 0");
  else if (plan->ref_per_size)
    fprintf(info, "reference 2: %d iperf3 processes x 1 stream at once, %d s "
            "after 1 s omitted, summed, measured right before each size "
            "between the same hosts\n", plan->streams, plan->ref_seconds);
  else if (plan->procs.available)
    fprintf(info, "reference 2: %d iperf3 processes x 1 stream at once, %d s "
            "after 1 s omitted, %s, summed, measured once per run between "
            "the same hosts: %.3f GB/s%s\n", plan->procs.procs,
            plan->procs.seconds, where, plan->procs.gbps, cpu);
  else
    fprintf(info, "reference 2: unavailable (%s): ratio2 null\n",
            plan->procs.why);
  fflush(info);
}

static void print_reference3(const net_plan *plan) {
  FILE *info = plan->json ? stderr : stdout;
  char min[16];
  bench_size_str(RAW_MIN_SIZE, min, sizeof min);
  if (!plan->ref_raw)
    fprintf(info, "reference 3: none (--ref-raw 0): raw_gbps null\n");
  else
    fprintf(info, "reference 3: raw TCP, %d plain connections between the two "
            "side processes, a thread per connection on each side's CPUs, "
            "each moving its slice of the size's own buffers with one "
            "blocking send()/recv() per message, right after each size of "
            "%s and more (about 1 s, at least the size's messages)\n",
            plan->streams, min);
  fflush(info);
}

int bench_net_main(int argc, char **argv) {
  net_plan plan = {0};
  int loopback = 0;
  bench_cpus_init();
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout);
  if (parse_args(argc, argv, &plan, &loopback) != 0) return TOOL_USAGE;
  char streams[16];
  snprintf(streams, sizeof streams, "%d", plan.streams);
  setenv("TCPX_P2P_TCP_STREAMS", streams, 1); /* the built-in reads it */
  twohost th;
  bench_catch_interrupt();
  if (bench_hosts_setup(&th, loopback, &plan.mode) != 0) return TOOL_FAILED;
  FILE *info = plan.json ? stderr : stdout;
  fprintf(info, "bench net: side 1 %s (%s) -> side 0 %s (%s), %s\n",
          th.addr[1], th.ifname[1], th.addr[0], th.ifname[0],
          th.netns ? "network namespaces over veth" : "loopback");
  bench_print_cpus(info, plan.cpus_apart);
  plan.th = &th;
  if (plan.ref_seconds > 0 && !plan.ref_per_size && !plan.pingpong &&
      !bench_interrupted())
    iperf3_measure_pair(&th, plan.streams, plan.ref_seconds, 0, plan.ref_procs,
                        &plan.ref, &plan.procs);
  if (!plan.pingpong && !bench_interrupted()) {
    print_reference(&plan);
    print_reference2(&plan);
    print_reference3(&plan);
  }
  twohost_fn fn[2] = {receiver, sender};
  if (plan.pingpong) fn[0] = fn[1] = pp_side;
  int rc = bench_interrupted() ? -1
                               : twohost_run(&th, fn, &plan, NET_RUN_TIMEOUT_S, NULL);
  twohost_teardown(&th);
  if (bench_interrupted()) return bench_interrupt_exit("bench net");
  return rc == 0 ? TOOL_OK : TOOL_FAILED;
}
