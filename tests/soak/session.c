/* One soak session: both ends of a connection draw the same seeded plan of
 * operations (kind, sizes, who is active, blocking or async) and run their
 * halves of each: send/recv, sendv/recvv, write and read (the target
 * advertises and passes its descriptor in a two-sided message, the
 * initiator says "done" the same way). Every payload is a seeded pattern
 * checked byte for byte, into poisoned buffers with guards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ep_harness.h"
#include "soak.h"

enum { K_SEND, K_SENDV, K_WRITE, K_READ, K_KINDS };
#define MAX_SEGS 4

typedef struct plan {
  int kind;
  int hub_active;   /* the hub sends / initiates */
  int async;        /* p2p_post + p2p_wait instead of the blocking call */
  size_t n;
  size_t size[MAX_SEGS];
  size_t extra;     /* a receive's capacity beyond the message */
  uint64_t seed;
} plan;

typedef struct sess {
  p2p_endpoint *ep;
  uint64_t conn;
  soak_shared *sh;
  uint8_t ctl[P2P_DESC_SIZE];
  uint64_t ctl_mr;
} sess;

void soak_options(p2p_options *o, int gpu) {
  eph_options(o);
  o->gpu_index = gpu;
  o->op_timeout_ms = SOAK_OP_TIMEOUT_MS;
}

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* 0 B (1 in 16) or log-uniform up to just under 64 MiB. */
static size_t rnd_size(uint64_t *s) {
  if (rnd(s) % 16 == 0) return 0;
  size_t base = (size_t)1 << (rnd(s) % 26);
  return base + rnd(s) % base;
}

static void draw(uint64_t *s, plan *p) {
  memset(p, 0, sizeof *p);
  p->kind = (int)(rnd(s) % K_KINDS);
  p->hub_active = (int)(rnd(s) & 1);
  p->async = (int)(rnd(s) & 1);
  p->n = p->kind == K_SENDV ? 1 + rnd(s) % MAX_SEGS : 1;
  for (size_t i = 0; i < p->n; i++)
    p->size[i] = p->n > 1 ? rnd_size(s) / 4 : rnd_size(s);
  if (p->kind >= K_WRITE && p->size[0] == 0) p->size[0] = 1;
  p->extra = rnd(s) % 2 ? rnd(s) % 4096 : 0;
  p->seed = rnd(s);
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A failed call: counted unless the soak is stopping (peers leave then). */
static int failed(sess *s, const char *what, int rc) {
  if (!atomic_load(&s->sh->stop)) {
    atomic_fetch_add(&s->sh->errors, 1);
    fprintf(stderr, "soak: %s: %s: %s\n", what, p2p_strerror(rc), p2p_last_error());
  }
  return -1;
}

static int corrupt(sess *s) {
  atomic_fetch_add(&s->sh->corruptions, 1);
  return -1;
}

/* The blocking call for an op. */
static int run_blocking(sess *s, p2p_op_kind k, p2p_iov *v, size_t n, size_t *got) {
  uint64_t mr[MAX_SEGS];
  void *ptr[MAX_SEGS];
  size_t size[MAX_SEGS];
  for (size_t i = 0; i < n; i++) {
    mr[i] = v[i].mr_id;
    ptr[i] = v[i].ptr;
    size[i] = v[i].size;
  }
  switch (k) {
  case P2P_OP_SEND:
    return n == 1 ? p2p_send(s->ep, s->conn, mr[0], ptr[0], size[0])
                  : p2p_sendv(s->ep, s->conn, mr, ptr, size, n);
  case P2P_OP_RECV:
    return n == 1 ? p2p_recv(s->ep, s->conn, mr[0], ptr[0], size[0], got)
                  : p2p_recvv(s->ep, s->conn, mr, ptr, size, n, got);
  case P2P_OP_WRITE:
    return p2p_write(s->ep, s->conn, mr[0], ptr[0], size[0], v[0].desc);
  default:
    return p2p_read(s->ep, s->conn, mr[0], ptr[0], size[0], v[0].desc);
  }
}

/* One op: the blocking call, or posted and waited for (the endpoint's op
 * timeout bounds both). */
static int run_iov(sess *s, int async, p2p_op_kind k, p2p_iov *v, size_t n,
                   size_t *got) {
  if (!async) return run_blocking(s, k, v, n, got);
  uint64_t id;
  int rc = p2p_post(s->ep, s->conn, k, v, n, &id);
  if (rc == P2P_OK) rc = p2p_wait(s->ep, id, -1, got);
  return rc;
}

/* Two-sided small control message (descriptor or "done"). */
static int ctl_send(sess *s, size_t len) {
  int rc = p2p_send(s->ep, s->conn, s->ctl_mr, s->ctl, len);
  return rc == P2P_OK ? 0 : failed(s, "control send", rc);
}

static int ctl_recv(sess *s, size_t len) {
  size_t got = 0;
  int rc = p2p_recv(s->ep, s->conn, s->ctl_mr, s->ctl, sizeof s->ctl, &got);
  if (rc != P2P_OK) return failed(s, "control recv", rc);
  return got == len ? 0 : corrupt(s);
}

typedef struct bufs {
  uint8_t *b[MAX_SEGS];
  uint64_t mr[MAX_SEGS];
  size_t cap[MAX_SEGS];
  size_t n;
} bufs;

/* Poisoned, guarded buffers of cap[i] (pattern-filled when fill). */
static int bufs_make(sess *s, bufs *B, const plan *p, size_t extra, int fill) {
  memset(B, 0, sizeof *B);
  B->n = p->n;
  for (size_t i = 0; i < p->n; i++) {
    B->cap[i] = p->size[i] + extra;
    B->b[i] = gbuf_new(B->cap[i]);
    if (!B->b[i]) return failed(s, "out of memory", P2P_ENOMEM);
    if (fill) pat_fill(B->b[i], p->size[i], p->seed + i);
    int rc = p2p_reg(s->ep, B->b[i], B->cap[i] ? B->cap[i] : 1, &B->mr[i]);
    if (rc != P2P_OK) return failed(s, "reg", rc);
  }
  return 0;
}

static void bufs_free(sess *s, bufs *B) {
  for (size_t i = 0; i < B->n; i++) {
    if (B->mr[i]) p2p_dereg(s->ep, B->mr[i]);
    if (B->b[i]) gbuf_free(B->b[i], B->cap[i]);
  }
}

/* Pattern in [0, size), poison up to the capacity, the guard intact. */
static int bufs_check(sess *s, const bufs *B, const plan *p) {
  for (size_t i = 0; i < B->n; i++)
    if (!pat_check(B->b[i], p->size[i], p->seed + i, "soak payload") ||
        !all_bytes(B->b[i] + p->size[i], B->cap[i] - p->size[i], EPH_POISON,
                   "soak beyond payload") ||
        !gbuf_guard_ok(B->b[i], B->cap[i], "soak guard"))
      return corrupt(s);
  return 0;
}

static int two_sided(sess *s, const plan *p, int active) {
  bufs B;
  int r = bufs_make(s, &B, p, active ? 0 : p->extra, active);
  p2p_iov v[MAX_SEGS];
  for (size_t i = 0; i < B.n; i++) v[i] = (p2p_iov){B.mr[i], B.b[i], B.cap[i], NULL};
  size_t got = 0, want = 0;
  for (size_t i = 0; i < p->n; i++) want += p->size[i];
  if (r == 0) {
    int rc = run_iov(s, p->async, active ? P2P_OP_SEND : P2P_OP_RECV, v, B.n, &got);
    if (rc != P2P_OK) r = failed(s, active ? "send" : "recv", rc);
    else if (!active && (got != want || bufs_check(s, &B, p) != 0)) r = corrupt(s);
  }
  bufs_free(s, &B);
  return r;
}

/* The target of a write or read: advertise, hand over the descriptor,
 * wait for "done", check what was written. */
static int target(sess *s, const plan *p) {
  bufs B;
  int r = bufs_make(s, &B, p, 0, p->kind == K_READ);
  if (r == 0) {
    int rc = p2p_advertise(s->ep, s->conn, B.mr[0], B.b[0], p->size[0], s->ctl);
    r = rc == P2P_OK ? ctl_send(s, P2P_DESC_SIZE) : failed(s, "advertise", rc);
  }
  if (r == 0) r = ctl_recv(s, 8);
  if (r == 0 && p->kind == K_WRITE) r = bufs_check(s, &B, p);
  bufs_free(s, &B);
  return r;
}

static int initiator(sess *s, const plan *p) {
  if (ctl_recv(s, P2P_DESC_SIZE) != 0) return -1;
  uint8_t desc[P2P_DESC_SIZE];
  memcpy(desc, s->ctl, sizeof desc);
  bufs B;
  int r = bufs_make(s, &B, p, 0, p->kind == K_WRITE);
  if (r == 0) {
    p2p_iov v = {B.mr[0], B.b[0], B.cap[0], desc};
    int rc = run_iov(s, p->async, p->kind == K_WRITE ? P2P_OP_WRITE : P2P_OP_READ,
                     &v, 1, NULL);
    if (rc != P2P_OK) r = failed(s, p->kind == K_WRITE ? "write" : "read", rc);
    else if (p->kind == K_READ) r = bufs_check(s, &B, p);
  }
  bufs_free(s, &B);
  return r == 0 ? ctl_send(s, 8) : r;
}

static int run_plan(sess *s, const plan *p, int hub) {
  int active = p->hub_active == hub;
  if (p->kind == K_SEND || p->kind == K_SENDV) return two_sided(s, p, active);
  return active ? initiator(s, p) : target(s, p);
}

static void note_time(sess *s, uint64_t ms) {
  if (ms > 2ull * SOAK_OP_TIMEOUT_MS) atomic_fetch_add(&s->sh->hangs, 1);
  unsigned long long m = atomic_load(&s->sh->max_op_ms);
  while (ms > m && !atomic_compare_exchange_weak(&s->sh->max_op_ms, &m, ms)) {}
}

uint64_t soak_session(p2p_endpoint *ep, uint64_t conn, int hub, uint64_t seed,
                      soak_shared *sh) {
  sess s = {.ep = ep, .conn = conn, .sh = sh};
  uint64_t rng = seed | 1, done = 0;
  if (p2p_reg(ep, s.ctl, sizeof s.ctl, &s.ctl_mr) != P2P_OK) {
    failed(&s, "reg", P2P_EINVAL);
    return 0;
  }
  while (!atomic_load(&sh->stop)) {
    plan p;
    draw(&rng, &p);
    uint64_t t0 = now_ms();
    int r = run_plan(&s, &p, hub);
    note_time(&s, now_ms() - t0);
    if (r != 0) break;
    done++;
    if (hub) {
      size_t total = 0;
      for (size_t i = 0; i < p.n; i++) total += p.size[i];
      atomic_fetch_add(&sh->ops, 1);
      atomic_fetch_add(&sh->bytes, total);
    }
  }
  p2p_dereg(ep, s.ctl_mr);
  return done;
}
