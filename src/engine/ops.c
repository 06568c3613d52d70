/* The life of an op: made by an API call, started on its connection by
 * whoever drives it, finished there (or at once when the connection is
 * dead), reported to whoever waits or polls, then forgotten. */
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"

int op_new(p2p_endpoint *ep, conn *c, p2p_op_kind kind, size_t nseg, op **out) {
  *out = NULL;
  /* Unfinished ops per connection are capped: each holds memory, and a
   * peer that never answers would otherwise let them pile up. */
  if (atomic_fetch_add(&c->ops_open, 1) >= ep->lim.max_ops) {
    atomic_fetch_sub(&c->ops_open, 1);
    return ep_err(P2P_ELIMIT, "%d transfers unfinished on connection %llu "
                  "already (TCPX_P2P_MAX_OPS_PER_CONN)", ep->lim.max_ops,
                  (unsigned long long)c->id);
  }
  op *o = calloc(1, sizeof *o);
  op_seg *segs = calloc(nseg ? nseg : 1, sizeof *segs);
  if (!o || !segs) {
    free(o);
    free(segs);
    atomic_fetch_sub(&c->ops_open, 1);
    return ep_err(P2P_ENOMEM, "out of memory");
  }
  o->segs = segs;
  o->nseg = nseg;
  o->kind = kind;
  o->c = c;
  conn_hold(c); /* until the op is forgotten */
  pthread_cond_init(&o->cond, NULL);
  pthread_mutex_lock(&ep->ops_lock);
  o->id = ++ep->next_op_id;
  int rc = idmap_put(&ep->ops, o->id, o);
  pthread_mutex_unlock(&ep->ops_lock);
  if (rc != 0) {
    pthread_cond_destroy(&o->cond);
    free(segs);
    free(o);
    ep_conn_put(c);
    atomic_fetch_sub(&c->ops_open, 1);
    return ep_err(P2P_ENOMEM, "out of memory");
  }
  *out = o;
  return P2P_OK;
}

/* Release an op that was never submitted (argument errors). */
void op_discard(op *o) {
  p2p_endpoint *ep = o->c->ep;
  if (!atomic_load(&o->finished)) atomic_fetch_sub(&o->c->ops_open, 1);
  op_put_regions(o);
  pthread_mutex_lock(&ep->ops_lock);
  idmap_del(&ep->ops, o->id);
  pthread_mutex_unlock(&ep->ops_lock);
  pthread_cond_destroy(&o->cond);
  free(o->segs);
  ep_conn_put(o->c);
  free(o);
}

void op_put_regions(op *o) {
  for (size_t i = 0; i < o->nseg; i++)
    if (o->segs[i].mr) {
      region_put(o->c->ep, o->segs[i].mr);
      o->segs[i].mr = NULL;
    }
}

void op_finish(op *o, int status, const char *why) {
  p2p_endpoint *ep = o->c->ep;
  op_put_regions(o);
  pthread_mutex_lock(&ep->ops_lock);
  o->status = status;
  if (status != P2P_OK && why && why != o->err)
    snprintf(o->err, sizeof o->err, "%s", why);
  o->finished = 1;
  atomic_fetch_sub(&o->c->ops_open, 1);
  atomic_fetch_add(status == P2P_OK ? &o->c->stats.ops_completed
                                    : &o->c->stats.ops_failed, 1);
  if (status == P2P_ETIMEDOUT) atomic_fetch_add(&o->c->stats.ops_timed_out, 1);
  pthread_cond_broadcast(&o->cond);
  pthread_mutex_unlock(&ep->ops_lock);
}

/* Start the op on this thread when nobody drives its connection (no
 * hand-over); else queue it for the driver and wake the progress thread. */
int op_submit(op *o) {
  conn *c = o->c;
  int dead;
  if (conn_try_drive(c)) {
    dead = atomic_load(&c->dead);
    if (!dead) conn_start(c, o);
    conn_end_drive(c);
  } else {
    pthread_mutex_lock(&c->sub_lock);
    dead = atomic_load(&c->dead);
    if (!dead) {
      o->next = NULL;
      if (c->submitted_tail) c->submitted_tail->next = o;
      else c->submitted_head = o;
      c->submitted_tail = o;
    }
    pthread_mutex_unlock(&c->sub_lock);
    if (!dead) progress_wake(c->ep, c);
  }
  if (dead) op_finish(o, dead, c->dead_err);
  return dead ? dead : P2P_OK;
}
