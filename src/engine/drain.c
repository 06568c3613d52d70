/* Closing a failed connection's transport comms safely.
 *
 * NCCL never closes a comm, or deregisters a memory handle, while a
 * request on it is in flight, and plugins rely on that: aws-ofi-nccl
 * crashed in closeRecv when a peer froze, and TCPX frees state that a
 * pending request still uses. So when a connection fails (conn_fail) it
 * stops posting, then drains each comm: the requests in flight are tested,
 * oldest first, until each is done or the comm reports an error; copies
 * out of the plugin's bounce pages finish; every receive is consumed
 * (irecvConsumed) in order. Only then are handles deregistered and comms
 * closed.
 *
 * A plugin that never ends a request (a peer frozen with a send in its
 * socket) gets TCPX_P2P_DRAIN_MS (default 500 ms). Its comm is then
 * abandoned: it is never closed, its memory handles are never
 * deregistered and its staging memory is never freed, and a warning says
 * so. Leaking them is the price of not crashing inside the plugin.
 *
 * The built-in TCP transport cancels requests at close by design, so its
 * comms close at once. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "env.h"
#include "log.h"
#include "lsan.h"

#define DRAIN_MS 500

enum { COMM_BUSY = 0, COMM_QUIET, COMM_BROKEN };

static int closes_requests_safely(const net_transport *t) {
  return t->abi_version == 0; /* the built-in TCP transport */
}

/* The head of `f` has ended: a receive is consumed (its data dropped). */
static int drop_head(conn *c, lane *l, int k, chunk_fifo *f) {
  net_transport *t = c->net;
  chunk *ch = f->head;
  if (ch->is_recv && t->ops->irecv_consumed &&
      net_call(t, irecv_consumed, l->comm[k], 1, ch->request) != NET_OK)
    return COMM_BROKEN;
  free(fifo_pop(f));
  return COMM_QUIET;
}

/* Copies out of the comm's receives finish before those are consumed
 * (they read the plugin's pages); then each is consumed, in order. */
static int drain_finishing(conn *c, lane *l, int k) {
  while (l->finishing[k].head) {
    int done = 0;
    if (gpath_finished(c, l, k, l->finishing[k].head, &done) != 0) return COMM_BROKEN;
    if (!done) return COMM_BUSY;
    if (drop_head(c, l, k, &l->finishing[k]) != COMM_QUIET) return COMM_BROKEN;
  }
  return COMM_QUIET;
}

/* One pass over a comm: the oldest requests are tested, in order. */
static int drain_step(conn *c, lane *l, int k) {
  int s = drain_finishing(c, l, k);
  if (s != COMM_QUIET) return s;
  while (l->inflight[k].head) {
    int done = 0;
    if (net_call(c->net, test, l->inflight[k].head->request, &done, NULL) != NET_OK)
      return COMM_BROKEN;
    if (!done) return COMM_BUSY;
    if (drop_head(c, l, k, &l->inflight[k]) != COMM_QUIET) return COMM_BROKEN;
  }
  return COMM_QUIET;
}

static lane *lane_at(conn *c, int i) {
  return i < ENGINE_LANES ? &c->send_lanes[i] : &c->recv_lanes[i - ENGINE_LANES];
}

/* One pass over every comm not yet settled; returns how many are busy. */
static int drain_pass(conn *c, int state[2 * ENGINE_LANES][ENGINE_MAX_COMMS]) {
  int busy = 0;
  for (int i = 0; i < 2 * ENGINE_LANES; i++) {
    lane *l = lane_at(c, i);
    for (int k = 0; k < l->ncomms; k++) {
      if (!l->comm[k] || state[i][k] != COMM_BUSY) continue;
      state[i][k] = drain_step(c, l, k);
      busy += state[i][k] == COMM_BUSY;
    }
  }
  return busy;
}

static void abandon_busy(conn *c, int state[2 * ENGINE_LANES][ENGINE_MAX_COMMS],
                         int ms) {
  for (int i = 0; i < 2 * ENGINE_LANES; i++) {
    lane *l = lane_at(c, i);
    for (int k = 0; k < l->ncomms; k++) {
      if (!l->comm[k] || state[i][k] != COMM_BUSY) continue;
      log_msg(LOG_WARN, "connection %llu to %s: %s comm %d of %s kept %d "
              "request(s) in flight for %d ms after the failure; it is "
              "abandoned (never closed or deregistered) so the plugin does "
              "not free it under them", (unsigned long long)c->id, c->peer_ip,
              i < ENGINE_LANES ? "send" : "receive", k, c->net->name,
              l->inflight[k].count + l->finishing[k].count, ms);
      lsan_leak_on_purpose(l->comm[k]);
      c->abandoned[c->nabandoned++] = l->comm[k];
      l->comm[k] = NULL;
    }
  }
}

void conn_drain_comms(conn *c) {
  if (closes_requests_safely(c->net)) return;
  int state[2 * ENGINE_LANES][ENGINE_MAX_COMMS] = {{COMM_BUSY}};
  int ms = env_int_in("TCPX_P2P_DRAIN_MS", DRAIN_MS, 0, INT_MAX);
  uint64_t deadline = now_ns() + (uint64_t)(ms > 0 ? ms : 0) * 1000000ull;
  const struct timespec nap = {0, 100000};
  while (drain_pass(c, state) > 0 && now_ns() < deadline) nanosleep(&nap, NULL);
  if (drain_pass(c, state) > 0) abandon_busy(c, state, ms);
}

/* Every comm still held (set-up failure, or after the drain). */
void conn_close_comms(conn *c) {
  net_transport *t = c->net;
  for (int i = 0; i < 2 * ENGINE_LANES; i++) {
    lane *l = lane_at(c, i);
    for (int k = 0; k < l->ncomms; k++) {
      if (!l->comm[k]) continue;
      int rc = i < ENGINE_LANES ? net_call(t, close_send, l->comm[k])
                                : net_call(t, close_recv, l->comm[k]);
      if (rc != NET_OK)
        log_msg(LOG_WARN, "connection %llu: closing a comm of %s: %s",
                (unsigned long long)c->id, t->name, err_get());
    }
    memset(l->comm, 0, sizeof l->comm);
  }
}
