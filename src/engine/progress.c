/* Driving connections: reading and dispatching control messages, starting
 * submitted ops, pumping the transport, flushing control bytes, watching
 * the peer's liveness (liveness.c). Whoever holds a connection's drive_lock does it: an
 * API thread waiting for one of its ops, or else the connection's progress
 * thread. While requests are in flight the driver polls the transport
 * (yielding, then napping); when idle a progress thread sleeps in
 * epoll_wait on its control sockets and its wake eventfd, and a waiting
 * API thread in poll() on its one control socket. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine.h"
#include "env.h"
#include "log.h"
#include "sock.h"

#define SPIN_YIELDS 200       /* idle rounds with requests in flight before napping */
#define NAP_US 20
#define IDLE_SPIN_US 100      /* keep polling this long after the last activity */
#define WAIT_SPIN_US 50      /* a waiting caller polls its socket this long first */
#define WAIT_SLICE_MS 10      /* then sleeps in poll() this long at most per round */

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
  /* Too many messages wait for a receive: leave the peer's bytes in the
   * socket (TCP makes it wait) until the application takes some. */
  c->read_resumed = 0;
  int paused = xfer_read_paused(c);
  int rc = paused ? NET_OK
                  : sock_recv_some(c->fd, c->in.data + c->in.len, room, &got);
  c->in.len += got;
  if (got || paused) liveness_heard(c, now_ns()); /* paused: we are not listening */
  int handled = 0;
  while (!xfer_read_paused(c)) {
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
    if (m.type == CTRL_PING) atomic_fetch_add(&c->stats.pings_received, 1);
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

static void watch_forget(conn *c);

/* ---- failure ------------------------------------------------------------------- */

/* Fail the connection: comms drained and closed first (no transport still
 * writes into a buffer), then every op and every op still queued is
 * failed. */
void conn_fail(conn *c, int code, const char *why) {
  if (atomic_load(&c->dead)) return;
  pthread_mutex_lock(&c->sub_lock);
  snprintf(c->dead_err, sizeof c->dead_err, "connection %llu to %s: %s",
           (unsigned long long)c->id, c->peer_ip, why);
  atomic_store(&c->dead, code);
  op *queued = c->submitted_head;
  c->submitted_head = c->submitted_tail = NULL;
  pthread_mutex_unlock(&c->sub_lock);
  /* An orderly close by either side is news, not a problem; so is the
   * best-effort goodbye of an endpoint being destroyed finding the peer
   * gone (both ends closing at once: "Broken pipe"). */
  int orderly = code == P2P_ECANCELED || c->peer_closed || atomic_load(&c->ep->stop);
  log_msg(orderly ? LOG_INFO : LOG_WARN, "%s", c->dead_err);
  conn_drain_comms(c);
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
    watch_forget(c);
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
  if (liveness_check_comms(c) < 0) return 1;
  n += take_submissions(c);
  if ((r = xfer_pump(c)) < 0) return 1;
  n += r;
  if ((r = ctrl_flush(c)) < 0) return 1;
  n += r;
  if (!atomic_load(&c->dead)) liveness_check(c);
  return n;
}

/* ---- who watches the control socket --------------------------------------------- */

/* Set what the progress thread's epoll watches on c->fd (drive_lock held):
 * nothing while an API thread drives it, so that the thread is not woken
 * for bytes the caller reads itself. */
static void watch_set(conn *c, int events) {
  if (c->fd < 0 || c->watch_events < 0 || c->watch_events == events) return;
  struct epoll_event ev = {.events = (uint32_t)events, .data.ptr = c};
  if (epoll_ctl(c->ep->threads[c->thread].epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
    c->watch_events = events;
}

static int watch_wanted(const conn *c) {
  return (xfer_read_paused(c) ? 0 : (int)EPOLLIN) |
         (c->out.len > c->out.off ? (int)EPOLLOUT : 0);
}

static void watch_forget(conn *c) {
  if (c->fd >= 0 && c->watch_events >= 0)
    epoll_ctl(c->ep->threads[c->thread].epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
  c->watch_events = -1;
}

/* ---- driving from an API thread ---------------------------------------------------- */

int conn_try_drive(conn *c) { return pthread_mutex_trylock(&c->drive_lock) == 0; }

void conn_start(conn *c, op *o) {
  take_submissions(c); /* ops queued before this one start first */
  xfer_start(c, o);
  if (!atomic_load(&c->dead) && xfer_pump(c) >= 0) ctrl_flush(c);
}

/* The progress thread must poll for this connection when transport
 * requests are in flight or an API thread asked for something. */
static int needs_thread(conn *c) {
  if (atomic_load(&c->dead)) return 0;
  if (xfer_busy(c) || atomic_load(&c->abort_code)) return 1;
  if (c->read_resumed) return 1; /* buffered messages to parse again */
  pthread_mutex_lock(&c->sub_lock);
  int queued = c->submitted_head != NULL;
  pthread_mutex_unlock(&c->sub_lock);
  return queued;
}

void conn_end_drive(conn *c) {
  int kick = needs_thread(c);
  if (!atomic_load(&c->dead)) watch_set(c, watch_wanted(c));
  pthread_mutex_unlock(&c->drive_lock);
  if (kick) progress_wake(c->ep, c);
}

/* Sleep until the control socket has bytes (or room for pending ones). */
static void wait_socket(conn *c, uint64_t left_ns) {
  uint64_t slice = (uint64_t)WAIT_SLICE_MS * 1000000ull;
  int ms = left_ns < slice ? (int)((left_ns + 999999) / 1000000) : WAIT_SLICE_MS;
  short in = xfer_read_paused(c) ? 0 : POLLIN;
  struct pollfd p = {c->fd, (short)(in | (c->out.len > c->out.off ? POLLOUT : 0)), 0};
  poll(&p, 1, ms);
}

/* Nothing moved while transport requests are in flight: yield for a while
 * (they finish within microseconds), then nap. Reset *rounds on progress. */
static void busy_backoff(const p2p_endpoint *ep, int *rounds) {
  if (++*rounds < ep->spin_yields) sched_yield();
  else if (ep->nap_us > 0) usleep((useconds_t)ep->nap_us);
}

void conn_drive_until(conn *c, op *o, uint64_t deadline_ns) {
  p2p_endpoint *ep = c->ep;
  watch_set(c, 0);
  uint64_t last_move = now_ns();
  int yields = 0;
  while (!atomic_load(&o->finished) && !atomic_load(&c->dead) &&
         !atomic_load(&ep->stop)) {
    int moved = conn_progress(c);
    uint64_t now = now_ns();
    if (atomic_load(&o->finished) || atomic_load(&c->dead) || now >= deadline_ns) break;
    if (moved) {
      last_move = now;
      yields = 0;
    } else if (xfer_busy(c)) {
      busy_backoff(ep, &yields);
    } else if (now - last_move < (uint64_t)ep->wait_spin_us * 1000) {
      sched_yield();
    } else {
      wait_socket(c, deadline_ns - now);
    }
  }
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

static void sleep_in_epoll(progress_thread *pt) {
  atomic_store(&pt->sleeping, 1);
  for (conn *c = pt->conns; c; c = c->next)
    if (!atomic_load(&c->dead) && conn_try_drive(c)) {
      if (!atomic_load(&c->dead)) watch_set(c, watch_wanted(c));
      pthread_mutex_unlock(&c->drive_lock);
    }
  /* Wake for the next ping (and to notice a failed data stream). */
  int timeout = (int)(liveness_ping_ns(pt->ep) / 1000000ull);
  struct epoll_event ev[64];
  if (!atomic_exchange(&pt->kicked, 0))
    epoll_wait(pt->epoll_fd, ev, 64, timeout > 0 ? timeout : 100);
  atomic_store(&pt->sleeping, 0);
  uint64_t v;
  if (read(pt->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN) { /* nothing to drain */ }
}

/* Dead connections leave the thread's list and the endpoint's table (so
 * closed connections do not pile up); the memory goes with the last
 * reference (ops not yet reported, callers inside an API call). The
 * drive lock is taken once, so that whoever failed it has finished. */
static void retire_dead(progress_thread *pt) {
  for (conn **pp = &pt->conns; *pp;) {
    conn *c = *pp;
    if (!atomic_load(&c->dead)) {
      pp = &c->next;
      continue;
    }
    pthread_mutex_lock(&c->drive_lock);
    pthread_mutex_unlock(&c->drive_lock);
    *pp = c->next;
    ep_conn_retire(pt->ep, c);
  }
}

/* After activity the thread keeps polling (yielding the CPU) for a short
 * while before it sleeps: the next message of an exchange usually comes
 * within a round trip, and a wake-up from epoll costs more than that.
 * Connections an API thread drives are skipped; it wakes us when it
 * leaves work behind. */
static void *progress_main(void *arg) {
  progress_thread *pt = arg;
  p2p_endpoint *ep = pt->ep;
  int idle = 0;
  uint64_t last_move = 0, linger = (uint64_t)ep->idle_spin_us * 1000;
  while (!atomic_load(&ep->stop)) {
    adopt_new(pt);
    int moved = 0, busy = 0;
    for (conn *c = pt->conns; c; c = c->next) {
      if (atomic_load(&c->dead) || !conn_try_drive(c)) continue;
      if (!atomic_load(&c->dead)) {
        moved += conn_progress(c);
        busy |= !atomic_load(&c->dead) && (xfer_busy(c) || c->out.len > c->out.off);
      }
      pthread_mutex_unlock(&c->drive_lock);
    }
    retire_dead(pt);
    if (moved) {
      idle = 0;
      last_move = now_ns();
    } else if (busy) {
      busy_backoff(ep, &idle);
    } else if (now_ns() - last_move < linger) {
      sched_yield();
    } else {
      idle = 0;
      sleep_in_epoll(pt);
    }
  }
  return NULL;
}

int progress_start(p2p_endpoint *ep) {
  ep->spin_yields = env_int("TCPX_P2P_SPIN_YIELDS", SPIN_YIELDS);
  ep->nap_us = env_int("TCPX_P2P_NAP_US", NAP_US);
  ep->idle_spin_us = env_int("TCPX_P2P_IDLE_SPIN_US", IDLE_SPIN_US);
  ep->wait_spin_us = env_int("TCPX_P2P_WAIT_SPIN_US", WAIT_SPIN_US);
  for (int i = 0; i < ep->nthreads; i++) {
    progress_thread *pt = &ep->threads[i];
    pt->ep = ep;
    pt->index = i;
    pthread_mutex_init(&pt->lock, NULL);
    pt->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pt->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (pt->wake_fd < 0 || pt->epoll_fd < 0)
      return ep_err(P2P_ESYS, "progress thread: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(pt->epoll_fd, EPOLL_CTL_ADD, pt->wake_fd, &ev) != 0)
      return ep_err(P2P_ESYS, "epoll_ctl: %s", strerror(errno));
  }
  for (int i = 0; i < ep->nthreads; i++) {
    int e = pthread_create(&ep->threads[i].tid, NULL, progress_main, &ep->threads[i]);
    if (e) return ep_err(P2P_ESYS, "progress thread: %s", strerror(e));
    ep->threads[i].started = 1;
  }
  return P2P_OK;
}

/* Stop the threads, then fail their connections: the drive lock waits for
 * API threads still driving one (they leave within a poll slice). */
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
      pthread_mutex_lock(&c->drive_lock);
      if (!atomic_load(&c->dead) && c->fd >= 0) { /* tell the peer, best effort */
        ctrl_msg bye = {.type = CTRL_BYE};
        conn_send_ctrl(c, &bye, NULL);
        ctrl_flush(c);
      }
      conn_fail(c, P2P_ECANCELED, "endpoint destroyed");
      pthread_mutex_unlock(&c->drive_lock);
    }
    if (pt->wake_fd >= 0) close(pt->wake_fd);
    if (pt->epoll_fd >= 0) close(pt->epoll_fd);
    pt->wake_fd = pt->epoll_fd = -1;
    pthread_mutex_destroy(&pt->lock);
  }
}

/* Hand a new connection to its progress thread, its socket watched. */
void progress_adopt(p2p_endpoint *ep, conn *c) {
  progress_thread *pt = &ep->threads[c->thread];
  atomic_store(&c->stats.last_heard_ns, c->last_rx_ns);
  pthread_mutex_lock(&c->drive_lock);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  c->watch_events = epoll_ctl(pt->epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) == 0 ? (int)EPOLLIN : -1;
  pthread_mutex_unlock(&c->drive_lock);
  pthread_mutex_lock(&pt->lock);
  c->next = pt->adopt;
  pt->adopt = c;
  pthread_mutex_unlock(&pt->lock);
  progress_wake(ep, c);
}

void progress_wake(p2p_endpoint *ep, conn *c) {
  progress_thread *pt = &ep->threads[c->thread];
  atomic_store(&pt->kicked, 1);
  if (atomic_load(&pt->sleeping)) {
    uint64_t one = 1;
    if (write(pt->wake_fd, &one, sizeof one) < 0) { /* awake anyway */ }
  }
}
