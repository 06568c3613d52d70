/* The raw TCP bulk reference of `tcpx-p2p bench` (bench_ref.h): the same
 * bytes, from and into the same buffers, between the same two side
 * processes, through plain blocking TCP sockets and nothing of ours.
 *
 * Why it exists: iperf3 sends and receives one 128 KiB buffer per stream,
 * which stays in the CPU cache, so at 16-256 MiB messages it does less
 * work than the benchmark, whose every byte is read from DRAM by the
 * sender's copy into the socket and written to DRAM by the receiver's
 * copy out of it. This reference does those copies too.
 *
 * One round: the leader sends the message count over the out-of-band
 * socket; each side starts one thread per connection, held at a gate;
 * the follower answers "ready"; the leader starts its clock, says "go"
 * and opens its gate; the follower opens its gate on "go". Each side's
 * CPU clock runs from its gate opening to its last thread joined, and the
 * follower sends its figure back once done: the leader's clock stops
 * there, so the wall time covers both sides from start to finish. */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_ref.h"

#define RAW_IO_TIMEOUT_S 30     /* a blocked send or recv of a lost peer fails */
#define RAW_ACCEPT_WAIT_MS 30000
#define RAW_WARM_S 0.1          /* the warm-up round, at the row's rate */
#define RAW_TARGET_S 1.0        /* the timed round, at the warm-up's rate */
#define RAW_MAX_MSGS 1000000L

struct raw_bulk {
  int peer_fd;
  int n;
  int *fd;                      /* connection k carries slice k */
};

/* Holds a side's threads until its clock has started. */
typedef struct raw_gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int state;                    /* 0: wait, 1: go, -1: give up */
} raw_gate;

/* One connection's thread for one round. */
typedef struct raw_worker {
  raw_gate *gate;
  int fd, sending;
  unsigned char *ptr;
  size_t len;
  long count;
  int err;                      /* 0, an errno, or -1: the peer closed */
  pthread_t tid;
} raw_worker;

/* ---- connections --------------------------------------------------------------- */

/* No Nagle delay on a message's last segment; a peer that vanished fails
 * a blocked call after RAW_IO_TIMEOUT_S instead of hanging the run.
 * Buffer sizes stay the kernel's (autotuned), as iperf3's do. */
static void raw_tune(int fd) {
  int one = 1;
  struct timeval tv = {.tv_sec = RAW_IO_TIMEOUT_S};
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Accept the n connections, each placed by the index it sends first. */
static int raw_accept(raw_bulk *r, int lfd, const char *addr) {
  for (int k = 0; k < r->n; k++) {
    struct pollfd pfd = {lfd, POLLIN, 0};
    uint32_t idx = UINT32_MAX;
    int fd = poll(&pfd, 1, RAW_ACCEPT_WAIT_MS) == 1
                 ? accept4(lfd, NULL, NULL, SOCK_CLOEXEC) : -1;
    if (fd < 0) {
      fprintf(stderr, "bench raw: connection %d of %d never came to %s\n",
              k + 1, r->n, addr);
      return -1;
    }
    raw_tune(fd);
    if (recv(fd, &idx, sizeof idx, MSG_WAITALL) != (ssize_t)sizeof idx ||
        idx >= (uint32_t)r->n || r->fd[idx] >= 0) {
      fprintf(stderr, "bench raw: connection %d of %d named no free slice\n",
              k + 1, r->n);
      close(fd);
      return -1;
    }
    r->fd[idx] = fd;
  }
  return 0;
}

static int raw_listen(raw_bulk *r, const twohost *th) {
  int lfd = bench_tcp_listen(th, r->peer_fd, r->n, "bench raw");
  if (lfd < 0) return -1;
  int rc = raw_accept(r, lfd, th->addr[0]);
  close(lfd);
  return rc;
}

static int raw_dial(raw_bulk *r, const twohost *th) {
  struct sockaddr_in to;
  if (bench_tcp_peer(th, r->peer_fd, &to) != 0) return -1;
  for (int k = 0; k < r->n; k++) {
    uint32_t idx = (uint32_t)k;
    int fd = bench_tcp_connect(&to);
    if (fd < 0 || send(fd, &idx, sizeof idx, MSG_NOSIGNAL) != (ssize_t)sizeof idx) {
      fprintf(stderr, "bench raw: connection %d of %d to %s: %s\n", k + 1,
              r->n, th->addr[0], strerror(errno));
      if (fd >= 0) close(fd);
      return -1;
    }
    raw_tune(fd);
    r->fd[k] = fd;
  }
  return 0;
}

raw_bulk *raw_bulk_open(const twohost *th, int side, int peer_fd, int n) {
  raw_bulk *r = calloc(1, sizeof *r);
  if (r) r->fd = malloc((size_t)(n > 0 ? n : 1) * sizeof *r->fd);
  if (!r || !r->fd || n < 1) {
    fprintf(stderr, "bench raw: cannot hold %d connections\n", n);
    raw_bulk_close(r);
    return NULL;
  }
  r->peer_fd = peer_fd;
  r->n = n;
  for (int k = 0; k < n; k++) r->fd[k] = -1;
  if ((side == 0 ? raw_listen(r, th) : raw_dial(r, th)) == 0) return r;
  raw_bulk_close(r);
  return NULL;
}

void raw_bulk_close(raw_bulk *r) {
  if (!r) return;
  for (int k = 0; r->fd && k < r->n; k++)
    if (r->fd[k] >= 0) close(r->fd[k]);
  free(r->fd);
  free(r);
}

/* ---- threads ------------------------------------------------------------------ */

/* The whole slice in one call: send() blocks until the kernel has taken
 * it all, recv(MSG_WAITALL) until it has all arrived; the loop only
 * resumes after a signal or a receive timeout's partial count. */
static int move_slice(int fd, unsigned char *p, size_t len, int sending) {
  while (len > 0) {
    ssize_t n = sending ? send(fd, p, len, MSG_NOSIGNAL)
                        : recv(fd, p, len, MSG_WAITALL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0 ? -1 : errno;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static void *worker_main(void *arg) {
  raw_worker *w = arg;
  pthread_mutex_lock(&w->gate->mu);
  while (w->gate->state == 0) pthread_cond_wait(&w->gate->cv, &w->gate->mu);
  int go = w->gate->state > 0;
  pthread_mutex_unlock(&w->gate->mu);
  for (long i = 0; go && i < w->count && w->err == 0; i++)
    w->err = move_slice(w->fd, w->ptr, w->len, w->sending);
  return NULL;
}

static void gate_open(raw_gate *g, int state) {
  pthread_mutex_lock(&g->mu);
  g->state = state;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

/* Thread k takes slice k of buf[0..size), the last one the remainder,
 * and waits at the gate. Returns the threads started; fewer than r->n
 * means a failure (the caller gives up and joins them). */
static int workers_start(raw_bulk *r, raw_worker *w, raw_gate *g, int sending,
                         unsigned char *buf, size_t size, long count) {
  size_t each = size / (size_t)r->n;
  for (int k = 0; k < r->n; k++) {
    w[k] = (raw_worker){.gate = g, .fd = r->fd[k], .sending = sending,
                        .ptr = buf + (size_t)k * each, .count = count,
                        .len = k + 1 < r->n ? each : size - (size_t)k * each};
    if (pthread_create(&w[k].tid, NULL, worker_main, &w[k]) != 0) {
      fprintf(stderr, "bench raw: cannot start thread %d of %d\n", k + 1, r->n);
      return k;
    }
  }
  return r->n;
}

/* Join the first `started` threads; -1 after naming the first failure. */
static int workers_join(raw_worker *w, int started) {
  int rc = 0;
  for (int k = 0; k < started; k++) {
    pthread_join(w[k].tid, NULL);
    if (w[k].err == 0 || rc != 0) continue;
    fprintf(stderr, "bench raw: connection %d: %s: %s\n", k + 1,
            w[k].sending ? "send" : "recv",
            w[k].err < 0 ? "peer closed" : strerror(w[k].err));
    rc = -1;
  }
  return rc;
}

/* ---- rounds ------------------------------------------------------------------- */

/* One side's threads for a round of `count` messages: started, then (once
 * `before_go` has done the side's part of the start) released, joined.
 * *cpu_s: this process's CPU seconds from the release to the last join. */
typedef int (*raw_go_fn)(raw_bulk *r, void *arg);

static int raw_round(raw_bulk *r, int sending, unsigned char *buf, size_t size,
                     long count, raw_go_fn before_go, void *arg, double *cpu_s) {
  raw_worker *w = calloc((size_t)r->n, sizeof *w);
  raw_gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  if (!w) {
    fprintf(stderr, "bench raw: out of memory for %d threads\n", r->n);
    return -1;
  }
  int started = workers_start(r, w, &g, sending, buf, size, count);
  int rc = started == r->n && before_go(r, arg) == 0 ? 0 : -1;
  double c0 = bench_cpu_now();
  gate_open(&g, rc == 0 ? 1 : -1);
  if (workers_join(w, started) != 0) rc = -1;
  *cpu_s = bench_cpu_since(c0);
  free(w);
  return rc;
}

/* The leader's start: the count out, "ready" back, the clock, "go". */
typedef struct lead_start {
  long count;
  double t0;
} lead_start;

static int lead_go(raw_bulk *r, void *arg) {
  lead_start *ls = arg;
  int64_t count = ls->count;
  char word = 1;
  if (oob_send(r->peer_fd, &count, sizeof count) != 0 ||
      bench_oob_wait(r->peer_fd, &word, 1) != 0)
    return -1;
  ls->t0 = bench_now();
  return oob_send(r->peer_fd, &word, 1);
}

/* The follower's start: "ready", then wait for "go". */
static int follow_go(raw_bulk *r, void *arg) {
  (void)arg;
  char word = 1;
  if (oob_send(r->peer_fd, &word, 1) != 0 || bench_oob_wait(r->peer_fd, &word, 1) != 0)
    return -1;
  return 0;
}

/* A round as the leader: *secs from before "go" to the follower's CPU
 * figure, *cpu_s both sides' (-1: not known). */
static int lead_round(raw_bulk *r, int sending, unsigned char *buf, size_t size,
                      long count, double *secs, double *cpu_s) {
  lead_start ls = {count, 0};
  double mine, theirs = -1;
  if (raw_round(r, sending, buf, size, count, lead_go, &ls, &mine) != 0 ||
      bench_oob_wait(r->peer_fd, &theirs, sizeof theirs) != 0) {
    fprintf(stderr, "bench raw: round of %ld messages failed\n", count);
    return -1;
  }
  *secs = bench_now() - ls.t0;
  *cpu_s = bench_cpu_both(mine, theirs);
  return 0;
}

static int follow_round(raw_bulk *r, int sending, unsigned char *buf, size_t size) {
  int64_t count;
  double cpu_s;
  if (bench_oob_wait(r->peer_fd, &count, sizeof count) != 0 || count < 1 ||
      raw_round(r, sending, buf, size, (long)count, follow_go, NULL, &cpu_s) != 0 ||
      oob_send(r->peer_fd, &cpu_s, sizeof cpu_s) != 0) {
    fprintf(stderr, "bench raw: round as the follower failed\n");
    return -1;
  }
  return 0;
}

/* The receiver compares what arrived with the pattern and tells the
 * sender: a reference that moved the wrong bytes is a bug, not a figure. */
static int raw_verdict(raw_bulk *r, int sending, const unsigned char *buf,
                       size_t size, uint64_t seed) {
  char ok = 0;
  if (sending) {
    if (bench_oob_wait(r->peer_fd, &ok, 1) != 0) return -1;
    if (!ok) fprintf(stderr, "bench raw: the receiver found the bytes corrupted\n");
  } else {
    ok = (char)bench_check(buf, size, seed, "bench raw: checked buffer");
    if (oob_send(r->peer_fd, &ok, 1) != 0) return -1;
  }
  return ok ? 0 : -1;
}

static long clamp_msgs(double n, long floor) {
  if (!(n < (double)RAW_MAX_MSGS)) return RAW_MAX_MSGS;
  long v = (long)ceil(n);
  return v < floor ? floor : v;
}

int raw_bulk_lead(raw_bulk *r, int sending, unsigned char *buf, size_t size,
                  long row_msgs, double row_secs, uint64_t seed,
                  raw_result *out) {
  *out = (raw_result){.conns = r->n, .cpu_s = -1};
  double warm_secs, secs, cpu_s;
  long warm = clamp_msgs(row_secs > 0 ? RAW_WARM_S * (double)row_msgs / row_secs
                                      : 1, 1);
  if (!sending) memset(buf, BENCH_POISON, size);
  if (lead_round(r, sending, buf, size, warm, &warm_secs, &cpu_s) != 0) return -1;
  long count = clamp_msgs(warm_secs > 0 ? RAW_TARGET_S * (double)warm / warm_secs
                                        : (double)row_msgs, row_msgs);
  if (lead_round(r, sending, buf, size, count, &secs, &cpu_s) != 0 ||
      raw_verdict(r, sending, buf, size, seed) != 0)
    return -1;
  *out = (raw_result){.measured = 1, .conns = r->n, .msgs = count,
                      .bytes = (double)size * (double)count, .cpu_s = cpu_s};
  out->gbps = bench_gbps(out->bytes, secs);
  return 0;
}

int raw_bulk_follow(raw_bulk *r, int sending, unsigned char *buf, size_t size,
                    uint64_t seed) {
  if (!sending) memset(buf, BENCH_POISON, size);
  if (follow_round(r, sending, buf, size) != 0 ||  /* warm-up */
      follow_round(r, sending, buf, size) != 0)    /* timed */
    return -1;
  return raw_verdict(r, sending, buf, size, seed);
}

/* ---- reporting ---------------------------------------------------------------- */

static double raw_cpu_per_gb(const raw_result *r) {
  return r && r->measured ? bench_cpu_per_gb(r->cpu_s, r->bytes) : -1;
}

void bench_json_raw(FILE *out, double gbps, const raw_result *r, int last) {
  double raw = r && r->measured && r->gbps > 0 ? r->gbps : -1;
  bench_json_num(out, "raw_gbps", raw, 0);
  bench_json_num(out, "ratio_raw", raw > 0 && gbps > 0 ? gbps / raw : -1, 0);
  bench_json_num(out, "raw_cpu_s_per_gb", raw_cpu_per_gb(r), last);
}

void bench_raw_cell(char *buf, size_t len, double gbps, const raw_result *r) {
  double cpu = raw_cpu_per_gb(r);
  if (!r || !r->measured || r->gbps <= 0) snprintf(buf, len, "n/a");
  else if (cpu <= 0) snprintf(buf, len, "%.3f %.2fx n/a", r->gbps, gbps / r->gbps);
  else snprintf(buf, len, "%.3f %.2fx %.3g", r->gbps, gbps / r->gbps, cpu);
}
