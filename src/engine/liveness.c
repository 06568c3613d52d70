/* Connection liveness: is the peer still there?
 *
 * Only the control channel decides. Each side sends a PING whenever it has
 * sent nothing for one ping interval (timeout_ms / 8, at most 1 s), so an
 * alive peer is heard at least that often, also while its data streams
 * wait on a receiver that has not posted yet (a full receive window is
 * normal, not a fault). The peer is lost when nothing has arrived for
 * timeout_ms plus one ping interval: the timeout counts from the first
 * ping that went missing, i.e. from the start of the outage, not from the
 * last byte seen before it. The control socket caps TCP's retransmission
 * back-off at 1 s (where the kernel allows), so after an outage the peer
 * is heard again within about a second of the link coming back.
 *
 * Data streams carry no timeout of their own; the transport reports a
 * stream that fails (reset, closed) through comm_status, and the
 * connection fails at once with the stream and the reason. */
#include <stdio.h>

#include "engine.h"
#include "log.h"

#define PING_MAX_MS 1000

uint64_t liveness_ping_ns(const p2p_endpoint *ep) {
  int ms = ep->opts.timeout_ms / 8;
  if (ms > PING_MAX_MS) ms = PING_MAX_MS;
  if (ms < 1) ms = 1;
  return (uint64_t)ms * 1000000ull;
}

/* Bytes arrived on the control socket: the peer is there. One log line
 * when a silent peer is heard again. */
void liveness_heard(conn *c, uint64_t now) {
  if (c->silent_since_ns) {
    log_msg(LOG_INFO, "connection %llu to %s: peer heard again after %llu ms "
            "of silence", (unsigned long long)c->id, c->peer_ip,
            (unsigned long long)((now - c->last_rx_ns) / 1000000ull));
    c->silent_since_ns = 0;
  }
  c->last_rx_ns = now;
  atomic_store_explicit(&c->stats.last_heard_ns, now, memory_order_relaxed);
}

/* Fail the connection when one of its transport comms failed on its own
 * (a data stream reset while idle or mid-transfer). */
int liveness_check_comms(conn *c) {
  net_transport *t = c->net;
  if (!t->ops->comm_status) return 0;
  for (int li = 0; li < ENGINE_LANES; li++)
    for (int dir = 0; dir < 2; dir++) {
      lane *l = dir ? &c->recv_lanes[li] : &c->send_lanes[li];
      for (int k = 0; k < l->ncomms; k++) {
        int resets = 0, rc;
        if (!l->comm[k] ||
            (rc = t->ops->comm_status(t, l->comm[k], &resets)) == NET_OK)
          continue;
        atomic_fetch_add(&c->stats.stream_resets, resets > 0 ? (uint64_t)resets : 1);
        char why[P2P_ERR_MAX];
        snprintf(why, sizeof why, "data stream lost (%s lane %d comm %d): %s",
                 dir ? "recv" : "send", li, k, err_get());
        /* A reset or close from the other end is the peer's doing (it
         * died or closed), as for a failed transfer (conn_fail_net). */
        conn_fail(c, rc == NET_EREMOTE ? P2P_EPEER : P2P_ETRANSPORT, why);
        return -1;
      }
    }
  return 0;
}

void liveness_check(conn *c) {
  uint64_t now = now_ns(), ping = liveness_ping_ns(c->ep);
  uint64_t timeout = (uint64_t)c->ep->opts.timeout_ms * 1000000ull;
  uint64_t quiet = now - c->last_rx_ns;
  if (quiet > timeout + ping) {
    char why[160];
    snprintf(why, sizeof why, "peer lost: nothing heard for %llu ms (timeout "
             "%d ms after the first missing ping)",
             (unsigned long long)(quiet / 1000000ull), c->ep->opts.timeout_ms);
    atomic_fetch_add(&c->stats.timeouts, 1);
    conn_fail(c, P2P_EPEER, why);
    return;
  }
  if (quiet > 2 * ping && !c->silent_since_ns) {
    c->silent_since_ns = now;
    log_msg(LOG_INFO, "connection %llu to %s: peer silent for %llu ms (lost "
            "after %d ms more)", (unsigned long long)c->id, c->peer_ip,
            (unsigned long long)(quiet / 1000000ull),
            (int)((timeout + ping - quiet) / 1000000ull));
  }
  if (now - c->last_tx_ns > ping && c->out.len == c->out.off) {
    ctrl_msg m = {.type = CTRL_PING};
    if (conn_send_ctrl(c, &m, NULL) == 0) atomic_fetch_add(&c->stats.pings_sent, 1);
  }
}
