/* The transfer API: check arguments, build an op, start it on its
 * connection (engine.h: who drives), and wait for it or hand out its id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"

const char *p2p_last_error(void) { return err_get(); }

const char *p2p_strerror(int code) {
  static const char *names[] = {
      "P2P_OK", "P2P_EINVAL", "P2P_ENOMEM", "P2P_ENOTFOUND", "P2P_ETIMEDOUT",
      "P2P_EPEER", "P2P_EREFUSED", "P2P_ETOOBIG", "P2P_EAUTH", "P2P_ECANCELED",
      "P2P_ETRANSPORT", "P2P_ENOTSUP", "P2P_ESYS", "P2P_ELIMIT"};
  if (code > 0 || -code >= (int)(sizeof names / sizeof names[0])) return "P2P_E?";
  return names[-code];
}

/* ---- building ops ------------------------------------------------------------------ */

/* A local segment: [ptr, ptr + size) inside the region. For a receive,
 * size is a capacity: cut to what the region holds from ptr on. */
static int local_seg(p2p_endpoint *ep, p2p_op_kind kind, const p2p_iov *v,
                     op_seg *s) {
  mem_region *mr;
  int rc = region_get(ep, v->mr_id, &mr);
  if (rc != P2P_OK) return rc;
  s->mr = mr;
  uintptr_t p = (uintptr_t)v->ptr, end = mr->base + mr->size;
  if (!v->ptr && v->size)
    return ep_err(P2P_EINVAL, "NULL buffer of %zu bytes", v->size);
  if (v->size && (p < mr->base || p >= end))
    return ep_err(P2P_EINVAL, "buffer %p is outside registered region %llu",
                  v->ptr, (unsigned long long)v->mr_id);
  size_t room = v->size ? end - p : 0;
  if (kind == P2P_OP_RECV) {
    s->size = v->size < room ? v->size : room;
  } else if (v->size > room) {
    return ep_err(P2P_EINVAL, "%zu bytes at %p run past registered region %llu",
                  v->size, v->ptr, (unsigned long long)v->mr_id);
  } else {
    s->size = v->size;
  }
  s->ptr = v->ptr;
  return P2P_OK;
}

static int remote_seg(const p2p_iov *v, op_seg *s) {
  if (!v->desc) return ep_err(P2P_EINVAL, "missing descriptor");
  int rc = desc_decode(v->desc, &s->remote);
  if (rc != P2P_OK) return rc;
  if (v->size > s->remote.size)
    return ep_err(P2P_EINVAL, "%zu bytes, but the advertised region has %llu",
                  v->size, (unsigned long long)s->remote.size);
  return P2P_OK;
}

static int build_op(p2p_endpoint *ep, conn *c, p2p_op_kind kind,
                    const p2p_iov *iov, size_t n, op **out) {
  if (n < 1 || n > CTRL_MAX_SEGS)
    return ep_err(P2P_EINVAL, "%zu buffers (1..%d allowed)", n, CTRL_MAX_SEGS);
  if (!iov) return ep_err(P2P_EINVAL, "NULL buffer list");
  op *o;
  int made = op_new(ep, c, kind, n, &o);
  if (made != P2P_OK) return made;
  for (size_t i = 0; i < n; i++) {
    int rc = local_seg(ep, kind, &iov[i], &o->segs[i]);
    if (rc == P2P_OK && (kind == P2P_OP_READ || kind == P2P_OP_WRITE))
      rc = remote_seg(&iov[i], &o->segs[i]);
    if (rc != P2P_OK) {
      op_discard(o);
      return err_wrap(rc, "buffer %zu", i);
    }
  }
  *out = o;
  return P2P_OK;
}

static const char *kind_name(p2p_op_kind kind) {
  static const char *names[] = {"send", "recv", "read", "write"};
  return names[kind];
}

int p2p_post(p2p_endpoint *ep, uint64_t conn_id, p2p_op_kind kind,
             const p2p_iov *iov, size_t n, uint64_t *xfer_id) {
  if (!ep || !xfer_id) return ep_err(P2P_EINVAL, "post: NULL argument");
  if (kind < P2P_OP_SEND || kind > P2P_OP_WRITE)
    return ep_err(P2P_EINVAL, "post: unknown op kind %d", (int)kind);
  conn *c;
  int found = ep_conn_find(ep, conn_id, &c);
  if (found != P2P_OK) return found;
  op *o = NULL;
  *xfer_id = 0;
  int rc = build_op(ep, c, kind, iov, n, &o);
  ep_conn_put(c); /* the op holds it from here */
  if (rc != P2P_OK) return err_wrap(rc, "%s", kind_name(kind));
  uint64_t id = o->id;
  rc = op_submit(o);
  if (rc != P2P_OK) {
    char why[P2P_ERR_MAX];
    snprintf(why, sizeof why, "%s", o->err);
    op_discard(o);
    return ep_err(rc, "%s: %s", kind_name(kind), why);
  }
  *xfer_id = id; /* o may be reaped by a poller from here on */
  return P2P_OK;
}

/* ---- completion ------------------------------------------------------------------- */

/* Under ops_lock: report a finished op to the caller and forget it. */
static int reap(p2p_endpoint *ep, op *o, size_t *received) {
  int status = o->status;
  if (status != P2P_OK) err_set(status, "%s", o->err);
  if (received) *received = o->kind == P2P_OP_RECV ? o->received : 0;
  idmap_del(&ep->ops, o->id);
  pthread_cond_destroy(&o->cond);
  free(o->segs);
  ep_conn_put(o->c);
  free(o);
  return status;
}

int p2p_poll(p2p_endpoint *ep, uint64_t xfer_id, int *done) {
  if (!ep || !done) return ep_err(P2P_EINVAL, "poll: NULL argument");
  *done = 0;
  pthread_mutex_lock(&ep->ops_lock);
  op *o = idmap_get(&ep->ops, xfer_id);
  int rc = P2P_OK;
  if (!o) rc = ep_err(P2P_ENOTFOUND, "poll: no transfer %llu (finished and "
                      "reported already?)", (unsigned long long)xfer_id);
  else if (o->finished && !o->waited) {
    *done = 1;
    rc = reap(ep, o, NULL);
  }
  pthread_mutex_unlock(&ep->ops_lock);
  return rc;
}

static int wait_op(p2p_endpoint *ep, uint64_t xfer_id, int timeout_ms,
                   size_t *received);

int p2p_wait(p2p_endpoint *ep, uint64_t xfer_id, int timeout_ms, size_t *received) {
  if (!ep) return ep_err(P2P_EINVAL, "wait: NULL endpoint");
  int rc = api_enter(ep);
  if (rc != P2P_OK) return rc;
  rc = wait_op(ep, xfer_id, timeout_ms, received);
  api_leave(ep);
  return rc;
}

/* Wait for the op, driving its connection meanwhile when nobody else does
 * (see engine.h); else sleep on the op, trying again every millisecond. */
static int wait_op(p2p_endpoint *ep, uint64_t xfer_id, int timeout_ms,
                   size_t *received) {
  int limit = timeout_ms < 0 ? ep->opts.op_timeout_ms : timeout_ms;
  uint64_t deadline = limit > 0 ? now_ns() + (uint64_t)limit * 1000000ull : UINT64_MAX;
  pthread_mutex_lock(&ep->ops_lock);
  op *o = idmap_get(&ep->ops, xfer_id);
  if (!o || o->waited) {
    pthread_mutex_unlock(&ep->ops_lock);
    return ep_err(P2P_ENOTFOUND, "wait: no transfer %llu", (unsigned long long)xfer_id);
  }
  o->waited = 1;
  conn *c = o->c;
  while (!o->finished) {
    if (now_ns() >= deadline) {
      if (timeout_ms >= 0) { /* the caller's own limit: still pending */
        o->waited = 0;
        pthread_mutex_unlock(&ep->ops_lock);
        return ep_err(P2P_ETIMEDOUT, "wait: transfer %llu not done after %d ms "
                      "(still in progress)", (unsigned long long)xfer_id, limit);
      }
      /* The op timeout: bytes may still be moving into the buffers; only
       * failing the connection (comms closed) makes it safe to return. */
      deadline = UINT64_MAX;
      conn_abort(c, P2P_ETIMEDOUT);
    }
    pthread_mutex_unlock(&ep->ops_lock);
    int drove = !atomic_load(&ep->stop) && conn_try_drive(c);
    if (drove) {
      conn_drive_until(c, o, deadline);
      conn_end_drive(c);
    }
    pthread_mutex_lock(&ep->ops_lock);
    if (!drove && !o->finished) {
      struct timespec slice;
      deadline_in(&slice, 1);
      pthread_cond_timedwait(&o->cond, &ep->ops_lock, &slice);
    }
  }
  int rc = reap(ep, o, received);
  pthread_mutex_unlock(&ep->ops_lock);
  return rc;
}

static int run(p2p_endpoint *ep, uint64_t conn_id, p2p_op_kind kind,
               const p2p_iov *iov, size_t n, size_t *received) {
  uint64_t id;
  int rc = p2p_post(ep, conn_id, kind, iov, n, &id);
  return rc == P2P_OK ? p2p_wait(ep, id, -1, received) : rc;
}

/* ---- the blocking calls ------------------------------------------------------------- */

int p2p_send(p2p_endpoint *ep, uint64_t conn_id, uint64_t mr_id, const void *ptr,
             size_t size) {
  p2p_iov v = {mr_id, (void *)ptr, size, NULL};
  return run(ep, conn_id, P2P_OP_SEND, &v, 1, NULL);
}

int p2p_recv(p2p_endpoint *ep, uint64_t conn_id, uint64_t mr_id, void *ptr,
             size_t size, size_t *received) {
  p2p_iov v = {mr_id, ptr, size, NULL};
  return run(ep, conn_id, P2P_OP_RECV, &v, 1, received);
}

int p2p_read(p2p_endpoint *ep, uint64_t conn_id, uint64_t mr_id, void *ptr,
             size_t size, const uint8_t desc[P2P_DESC_SIZE]) {
  p2p_iov v = {mr_id, ptr, size, desc};
  return run(ep, conn_id, P2P_OP_READ, &v, 1, NULL);
}

int p2p_write(p2p_endpoint *ep, uint64_t conn_id, uint64_t mr_id, const void *ptr,
              size_t size, const uint8_t desc[P2P_DESC_SIZE]) {
  p2p_iov v = {mr_id, (void *)ptr, size, desc};
  return run(ep, conn_id, P2P_OP_WRITE, &v, 1, NULL);
}

/* Vectored calls: one op with n segments. */
static int run_vec(p2p_endpoint *ep, uint64_t conn_id, p2p_op_kind kind,
                   const uint64_t *mr_ids, void *const *ptrs, const size_t *sizes,
                   const uint8_t *descs, size_t n, size_t *received) {
  if (n < 1 || n > CTRL_MAX_SEGS || !mr_ids || !ptrs || !sizes)
    return ep_err(P2P_EINVAL, "%s: bad buffer list (%zu buffers)", kind_name(kind), n);
  p2p_iov *iov = calloc(n, sizeof *iov);
  if (!iov) return ep_err(P2P_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++)
    iov[i] = (p2p_iov){mr_ids[i], ptrs[i], sizes[i],
                       descs ? descs + i * P2P_DESC_SIZE : NULL};
  int rc = run(ep, conn_id, kind, iov, n, received);
  free(iov);
  return rc;
}

int p2p_sendv(p2p_endpoint *ep, uint64_t conn_id, const uint64_t *mr_ids,
              void *const *ptrs, const size_t *sizes, size_t n) {
  return run_vec(ep, conn_id, P2P_OP_SEND, mr_ids, ptrs, sizes, NULL, n, NULL);
}

int p2p_recvv(p2p_endpoint *ep, uint64_t conn_id, const uint64_t *mr_ids,
              void *const *ptrs, const size_t *sizes, size_t n, size_t *received) {
  return run_vec(ep, conn_id, P2P_OP_RECV, mr_ids, ptrs, sizes, NULL, n, received);
}

int p2p_readv(p2p_endpoint *ep, uint64_t conn_id, const uint64_t *mr_ids,
              void *const *ptrs, const size_t *sizes, const uint8_t *descs, size_t n) {
  if (!descs) return ep_err(P2P_EINVAL, "readv: NULL descriptors");
  return run_vec(ep, conn_id, P2P_OP_READ, mr_ids, ptrs, sizes, descs, n, NULL);
}

int p2p_writev(p2p_endpoint *ep, uint64_t conn_id, const uint64_t *mr_ids,
               void *const *ptrs, const size_t *sizes, const uint8_t *descs, size_t n) {
  if (!descs) return ep_err(P2P_EINVAL, "writev: NULL descriptors");
  return run_vec(ep, conn_id, P2P_OP_WRITE, mr_ids, ptrs, sizes, descs, n, NULL);
}

void conn_stats_snapshot(conn *c, p2p_conn_stats *stats) {
  memset(stats, 0, sizeof *stats);
  stats->bytes_sent = atomic_load(&c->stats.bytes_sent);
  stats->bytes_received = atomic_load(&c->stats.bytes_received);
  stats->ops_completed = atomic_load(&c->stats.ops_completed);
  stats->ops_failed = atomic_load(&c->stats.ops_failed);
  stats->ops_timed_out = atomic_load(&c->stats.ops_timed_out);
  stats->timeouts = atomic_load(&c->stats.timeouts);
  stats->retries = atomic_load(&c->stats.retries);
  stats->stream_resets = atomic_load(&c->stats.stream_resets);
  stats->pings_sent = atomic_load(&c->stats.pings_sent);
  stats->pings_received = atomic_load(&c->stats.pings_received);
  uint64_t heard = atomic_load(&c->stats.last_heard_ns), now = now_ns();
  stats->last_heard_ms = now > heard ? (now - heard) / 1000000ull : 0;
  stats->state = atomic_load(&c->dead);
  snprintf(stats->peer, sizeof stats->peer, "%s", c->peer_ip);
}

/* A connection that died and was retired still answers with its last
 * counters (and state: the code it failed with). */
int p2p_conn_stats_get(p2p_endpoint *ep, uint64_t conn_id, p2p_conn_stats *stats) {
  if (!ep || !stats) return ep_err(P2P_EINVAL, "conn_stats: NULL argument");
  conn *c;
  int found = ep_conn_find(ep, conn_id, &c);
  if (found != P2P_OK)
    return ep_conn_tomb_stats(ep, conn_id, stats) ? P2P_OK : found;
  conn_stats_snapshot(c, stats);
  ep_conn_put(c);
  return P2P_OK;
}
