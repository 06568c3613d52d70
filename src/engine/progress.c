/* Progress threads: each owns a set of connections and is the only thread
 * that touches their control sockets and transport comms. It reads and
 * dispatches control messages, starts submitted ops, pumps the transport,
 * flushes control bytes and watches the peer's liveness. While requests
 * are in flight it polls the transport (yielding, then napping); when idle
 * it sleeps in poll() on the control sockets and its wake eventfd. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine.h"
#include "env.h"
#include "log.h"
#include "sock.h"

#define SPIN_YIELDS 200       /* idle rounds with requests in flight before napping */
#define NAP_US 20
#define IDLE_SPIN_US 100      /* keep polling this long after the last activity */

/* ---- control channel ---------------------------------------------------------- */

int conn_send_ctrl(conn *c, const ctrl_msg *m, const uint64_t *sizes64) {
  size_t len = ctrl_encoded_len(m);
  if (bytebuf_reserve(&c->out, len) != 0) return -1;
  size_t n = ctrl_encode(m, sizes64, c->out.data + c->out.len, len);
  if (n == 0) return err_set(-1, "control: cannot encode message type %d", m->type);
  c->out.len += n;
  return 0;
}

static int ctrl_flush(conn *c) {
  if (c->out.len == c->out.off) return 0;
  size_t off = 0, pending = c->out.len - c->out.off;
  if (sock_send_some(c->fd, c->out.data + c->out.off, pending, &off) != NET_OK) {
    conn_fail(c, P2P_EPEER, err_get());
    return -1;
  }
  bytebuf_consume(&c->out, off);
  if (off) c->last_tx_ns = now_ns();
  return off > 0;
}

/* Read what the socket has and dispatch every complete message. */
static int ctrl_read(conn *c) {
  if (bytebuf_reserve(&c->in, 64 << 10) != 0) {
    conn_fail(c, P2P_ENOMEM, "out of memory");
    return -1;
  }
  size_t room = c->in.cap - c->in.len, got = 0;
  int rc = sock_recv_some(c->fd, c->in.data + c->in.len, room, &got);
  c->in.len += got;
  if (got) c->last_rx_ns = now_ns();
  int handled = 0;
  for (;;) {
    ctrl_msg m;
    long n = ctrl_parse(c->in.data + c->in.off, c->in.len - c->in.off, &m);
    if (n < 0) {
      char why[P2P_ERR_MAX];
      snprintf(why, sizeof why, "malformed control message: %s", err_get());
      conn_fail(c, P2P_EPEER, why);
      return -1;
    }
    if (n == 0) break;
    handled++;
    int hr = xfer_on_ctrl(c, &m);
    bytebuf_consume(&c->in, (size_t)n);
    if (hr != 0 || atomic_load(&c->dead)) return -1;
  }
  if (rc != NET_OK) { /* EOF or socket error, after every whole message */
    char why[P2P_ERR_MAX];
    snprintf(why, sizeof why, "control connection: %s", err_get());
    conn_fail(c, P2P_EPEER, why);
    return -1;
  }
  return handled + (got > 0);
}

/* ---- failure ------------------------------------------------------------------- */

/* Close every transport comm of the connection (set-up failure or fail). */
void conn_close_comms(conn *c) {
  net_transport *t = c->net;
  for (int li = 0; li < ENGINE_LANES; li++) {
    for (int k = 0; k < c->send_lanes[li].ncomms; k++)
      if (c->send_lanes[li].comm[k]) net_call(t, close_send, c->send_lanes[li].comm[k]);
    for (int k = 0; k < c->recv_lanes[li].ncomms; k++)
      if (c->recv_lanes[li].comm[k]) net_call(t, close_recv, c->recv_lanes[li].comm[k]);
    memset(c->send_lanes[li].comm, 0, sizeof c->send_lanes[li].comm);
    memset(c->recv_lanes[li].comm, 0, sizeof c->recv_lanes[li].comm);
  }
}

/* Fail the connection: comms closed first (no transport still writes into
 * a buffer), then every op and every op still queued is failed. */
void conn_fail(conn *c, int code, const char *why) {
  if (atomic_load(&c->dead)) return;
  pthread_mutex_lock(&c->sub_lock);
  snprintf(c->dead_err, sizeof c->dead_err, "connection %llu to %s: %s",
           (unsigned long long)c->id, c->peer_ip, why);
  atomic_store(&c->dead, code);
  op *queued = c->submitted_head;
  c->submitted_head = c->submitted_tail = NULL;
  pthread_mutex_unlock(&c->sub_lock);
  /* An orderly close by either side is news, not a problem. */
  log_msg(code == P2P_ECANCELED || c->peer_closed ? LOG_INFO : LOG_WARN, "%s",
          c->dead_err);
  regions_forget_comms(c->ep, c);
  conn_close_comms(c);
  gpath_close(c); /* waits for copies still writing into GPU buffers */
  xfer_fail_all(c, code, c->dead_err);
  while (queued) {
    op *o = queued;
    queued = o->next;
    op_finish(o, code, c->dead_err);
  }
  if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
  }
}

int conn_fail_net(conn *c, int net_rc) {
  conn_fail(c, net_rc == NET_EREMOTE ? P2P_EPEER : P2P_ETRANSPORT, err_get());
  return -1;
}

/* ---- one connection ----------------------------------------------------------- */

static int take_submissions(conn *c) {
  pthread_mutex_lock(&c->sub_lock);
  op *list = c->submitted_head;
  c->submitted_head = c->submitted_tail = NULL;
  pthread_mutex_unlock(&c->sub_lock);
  int n = 0;
  while (list) {
    op *o = list;
    list = o->next;
    o->next = NULL;
    if (atomic_load(&c->dead)) op_finish(o, atomic_load(&c->dead), c->dead_err);
    else xfer_start(c, o);
    n++;
  }
  return n;
}

static void check_liveness(conn *c) {
  uint64_t now = now_ns(), timeout = (uint64_t)c->ep->opts.timeout_ms * 1000000ull;
  if (now - c->last_rx_ns > timeout) {
    char why[128];
    snprintf(why, sizeof why, "no word from the peer for %d ms",
             c->ep->opts.timeout_ms);
    conn_fail(c, P2P_EPEER, why);
  } else if (now - c->last_tx_ns > timeout / 4 && c->out.len == c->out.off) {
    ctrl_msg ping = {.type = CTRL_PING};
    conn_send_ctrl(c, &ping, NULL);
  }
}

static int conn_progress(conn *c) {
  int abort_code = atomic_load(&c->abort_code);
  if (abort_code) {
    ctrl_msg bye = {.type = CTRL_BYE};
    conn_send_ctrl(c, &bye, NULL);
    ctrl_flush(c);
    conn_fail(c, abort_code, abort_code == P2P_ETIMEDOUT
                                 ? "an operation ran past the op timeout"
                                 : "closed by this side");
    return 1;
  }
  int n = 0, r;
  if ((r = ctrl_read(c)) < 0) return 1;
  n += r;
  n += take_submissions(c);
  if ((r = xfer_pump(c)) < 0) return 1;
  n += r;
  if ((r = ctrl_flush(c)) < 0) return 1;
  n += r;
  if (!atomic_load(&c->dead)) check_liveness(c);
  return n;
}

/* ---- the thread ----------------------------------------------------------------- */

static void adopt_new(progress_thread *pt) {
  pthread_mutex_lock(&pt->lock);
  conn *list = pt->adopt;
  pt->adopt = NULL;
  pthread_mutex_unlock(&pt->lock);
  while (list) {
    conn *c = list;
    list = c->next;
    c->next = pt->conns;
    pt->conns = c;
  }
}

static int has_submissions(progress_thread *pt) {
  int any = 0;
  pthread_mutex_lock(&pt->lock);
  any = pt->adopt != NULL;
  pthread_mutex_unlock(&pt->lock);
  for (conn *c = pt->conns; c && !any; c = c->next) {
    pthread_mutex_lock(&c->sub_lock);
    any = c->submitted_head != NULL || atomic_load(&c->abort_code);
    pthread_mutex_unlock(&c->sub_lock);
  }
  return any;
}

static void sleep_in_poll(progress_thread *pt) {
  struct pollfd pfd[256];
  nfds_t n = 0;
  pfd[n++] = (struct pollfd){pt->wake_fd, POLLIN, 0};
  for (conn *c = pt->conns; c && n < 256; c = c->next)
    if (c->fd >= 0)
      pfd[n++] = (struct pollfd){c->fd, POLLIN | (c->out.len > c->out.off ? POLLOUT : 0), 0};
  int timeout = pt->ep->opts.timeout_ms / 8;
  atomic_store(&pt->sleeping, 1);
  if (!has_submissions(pt)) poll(pfd, n, timeout > 0 ? timeout : 100);
  atomic_store(&pt->sleeping, 0);
  uint64_t v;
  if (read(pt->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN) { /* nothing to drain */ }
}

/* After activity the thread keeps polling (yielding the CPU) for a short
 * while before it sleeps: the next message of an exchange usually comes
 * within a round trip, and a wake-up from poll costs more than that. */
static void *progress_main(void *arg) {
  progress_thread *pt = arg;
  p2p_endpoint *ep = pt->ep;
  int idle = 0;
  uint64_t last_move = 0, linger = (uint64_t)ep->idle_spin_us * 1000;
  while (!atomic_load(&ep->stop)) {
    adopt_new(pt);
    int moved = 0, busy = 0;
    for (conn *c = pt->conns; c; c = c->next) {
      if (atomic_load(&c->dead)) continue;
      moved += conn_progress(c);
      busy |= !atomic_load(&c->dead) && (xfer_busy(c) || c->out.len > c->out.off);
    }
    if (moved) {
      idle = 0;
      last_move = now_ns();
    } else if (busy) {
      if (++idle < ep->spin_yields) sched_yield();
      else if (ep->nap_us > 0) usleep((useconds_t)ep->nap_us);
    } else if (now_ns() - last_move < linger) {
      sched_yield();
    } else {
      idle = 0;
      sleep_in_poll(pt);
    }
  }
  return NULL;
}

int progress_start(p2p_endpoint *ep) {
  ep->spin_yields = env_int("TCPX_P2P_SPIN_YIELDS", SPIN_YIELDS);
  ep->nap_us = env_int("TCPX_P2P_NAP_US", NAP_US);
  ep->idle_spin_us = env_int("TCPX_P2P_IDLE_SPIN_US", IDLE_SPIN_US);
  for (int i = 0; i < ep->nthreads; i++) {
    progress_thread *pt = &ep->threads[i];
    pt->ep = ep;
    pt->index = i;
    pthread_mutex_init(&pt->lock, NULL);
    pt->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (pt->wake_fd < 0) return ep_err(P2P_ESYS, "eventfd: %s", strerror(errno));
  }
  for (int i = 0; i < ep->nthreads; i++) {
    int e = pthread_create(&ep->threads[i].tid, NULL, progress_main, &ep->threads[i]);
    if (e) return ep_err(P2P_ESYS, "progress thread: %s", strerror(e));
    ep->threads[i].started = 1;
  }
  return P2P_OK;
}

/* Stop the threads; their connections are then failed by the caller. */
void progress_stop(p2p_endpoint *ep) {
  atomic_store(&ep->stop, 1);
  for (int i = 0; i < ep->nthreads; i++) {
    progress_thread *pt = &ep->threads[i];
    if (pt->wake_fd >= 0) {
      uint64_t one = 1;
      if (write(pt->wake_fd, &one, sizeof one) < 0) { /* awake anyway */ }
    }
    if (pt->started) pthread_join(pt->tid, NULL);
    pt->started = 0;
    adopt_new(pt);
    for (conn *c = pt->conns; c; c = c->next) {
      if (!atomic_load(&c->dead) && c->fd >= 0) { /* tell the peer, best effort */
        ctrl_msg bye = {.type = CTRL_BYE};
        conn_send_ctrl(c, &bye, NULL);
        ctrl_flush(c);
      }
      conn_fail(c, P2P_ECANCELED, "endpoint destroyed");
    }
    if (pt->wake_fd >= 0) close(pt->wake_fd);
    pt->wake_fd = -1;
    pthread_mutex_destroy(&pt->lock);
  }
}

void progress_adopt(p2p_endpoint *ep, conn *c) {
  progress_thread *pt = &ep->threads[c->thread];
  pthread_mutex_lock(&pt->lock);
  c->next = pt->adopt;
  pt->adopt = c;
  pthread_mutex_unlock(&pt->lock);
  progress_wake(ep, c);
}

void progress_wake(p2p_endpoint *ep, conn *c) {
  progress_thread *pt = &ep->threads[c->thread];
  if (atomic_load(&pt->sleeping)) {
    uint64_t one = 1;
    if (write(pt->wake_fd, &one, sizeof one) < 0) { /* awake anyway */ }
  }
}
