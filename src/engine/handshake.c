/* Connection set-up over the control socket, the same steps on both sides:
 *   1. HELLO both ways (protocol version, GPU, layout, a fresh nonce);
 *   2. AUTH both ways when either side has a token: an HMAC over both
 *      nonces proves the secret without sending it;
 *   3. HANDLES both ways: each side listens once per comm it will receive
 *      on (TCPX accepts once per listen comm) and sends the handles; each
 *      connects to the peer's while accepting its own, all non-blocking;
 *   4. READY both ways once every comm is up.
 * Every step is bounded by the endpoint's connect timeout. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "engine.h"
#include "log.h"
#include "sock.h"
#include "tcp_handle.h"

#define ROLE_CONNECTOR 0
#define ROLE_ACCEPTOR 1

typedef struct hs {
  p2p_endpoint *ep;
  conn *c;
  int role;
  int authed;           /* the peer proved the shared token */
  uint64_t deadline;
  hs_watch *w;          /* acceptor: the early phase's bound, eviction */
  uint64_t early_deadline;
} hs;

/* The acceptor's early phase (HELLO, AUTH, HANDLES from an unknown peer)
 * ends sooner than the set-up: a silent socket holds a set-up slot for
 * lim.hello_ms, not the whole connect timeout. */
static int early(const hs *h) { return h->w && !atomic_load(&h->w->late); }

/* ---- blocking control I/O with a deadline ------------------------------------ */

static int wait_fd(hs *h, short events) {
  for (;;) {
    uint64_t now = now_ns();
    if (atomic_load(&h->ep->stop))
      return ep_err(P2P_ECANCELED, "endpoint is shutting down");
    if (h->w && atomic_load(&h->w->evicted))
      return ep_err(P2P_ELIMIT, "set-up with %s dropped: every set-up slot was "
                    "taken and this one was the oldest still silent", h->c->peer_ip);
    uint64_t limit = early(h) && h->early_deadline < h->deadline ? h->early_deadline
                                                                  : h->deadline;
    if (now >= limit && early(h))
      return ep_err(P2P_ETIMEDOUT, "set-up with %s: the peer sent no HELLO, AUTH "
                    "or HANDLES within %d ms (TCPX_P2P_HELLO_TIMEOUT_MS)",
                    h->c->peer_ip, h->ep->lim.hello_ms);
    if (now >= limit)
      return ep_err(P2P_ETIMEDOUT, "connection set-up with %s timed out",
                    h->c->peer_ip);
    uint64_t left_ms = (limit - now) / 1000000 + 1;
    struct pollfd p = {h->c->fd, events, 0};
    int n = poll(&p, 1, left_ms < 100 ? (int)left_ms : 100);
    if (n > 0) return P2P_OK;
    if (n < 0 && errno != EINTR) return ep_err(P2P_ESYS, "poll: %s", strerror(errno));
  }
}

static int hs_send(hs *h, const ctrl_msg *m) {
  if (conn_send_ctrl(h->c, m, NULL) != 0) return ep_err(P2P_ENOMEM, "%s", err_get());
  bytebuf *out = &h->c->out;
  while (out->off < out->len) {
    int rc = wait_fd(h, POLLOUT);
    if (rc != P2P_OK) return rc;
    size_t done = 0;
    if (sock_send_some(h->c->fd, out->data + out->off, out->len - out->off,
                       &done) != NET_OK)
      return ep_err(P2P_EPEER, "set-up with %s: %s", h->c->peer_ip, err_get());
    bytebuf_consume(out, done);
  }
  return P2P_OK;
}

/* Read the next message, which must be of `type`. *m points into c->in
 * until the caller calls hs_done(). */
static int hs_recv(hs *h, ctrl_type type, ctrl_msg *m, long *used) {
  bytebuf *in = &h->c->in;
  for (;;) {
    long n = ctrl_parse(in->data + in->off, in->len - in->off, m);
    if (n < 0)
      return ep_err(P2P_EPEER, "set-up with %s: %s", h->c->peer_ip, err_get());
    if (n > 0) {
      *used = n;
      if (m->type == CTRL_BYE && type != CTRL_BYE && m->u.bye.reason == P2P_ELIMIT)
        return ep_err(P2P_ELIMIT, "set-up with %s: the peer refused the "
                      "connection: it has too many (its TCPX_P2P_MAX_PENDING "
                      "or TCPX_P2P_MAX_CONNS)", h->c->peer_ip);
      if (m->type == CTRL_BYE && type != CTRL_BYE)
        return ep_err(P2P_EPEER, "set-up with %s: the peer refused the "
                      "connection", h->c->peer_ip);
      if (m->type != type)
        return ep_err(P2P_EPEER, "set-up with %s: expected message %d, got %d",
                      h->c->peer_ip, type, m->type);
      return P2P_OK;
    }
    int rc = wait_fd(h, POLLIN);
    if (rc != P2P_OK) return rc;
    if (bytebuf_reserve(in, 64 << 10) != 0) return ep_err(P2P_ENOMEM, "out of memory");
    size_t got = 0;
    int rr = sock_recv_some(h->c->fd, in->data + in->len, in->cap - in->len, &got);
    in->len += got;
    /* Bytes that came before an EOF are read first (a BYE may be there). */
    if (rr != NET_OK && ctrl_parse(in->data + in->off, in->len - in->off, m) <= 0)
      return ep_err(P2P_EPEER, "set-up with %s: %s (refused by the peer?)",
                    h->c->peer_ip, err_get());
  }
}

static void hs_done(hs *h, long used) { bytebuf_consume(&h->c->in, (size_t)used); }

/* ---- steps ---------------------------------------------------------------------- */

static int exchange_hello(hs *h, ctrl_hello *mine, ctrl_hello *theirs) {
  p2p_endpoint *ep = h->ep;
  *mine = (ctrl_hello){.flags = (uint16_t)((ep->auth_token[0] ? CTRL_HELLO_AUTH : 0) |
                                            (ep->split ? CTRL_HELLO_SPLIT : 0)),
                       .gpu_index = ep->opts.gpu_index,
                       .comms_per_lane = (uint32_t)ep->opts.comms_per_lane,
                       .chunk_size = ep->opts.chunk_size};
  if (auth_random(mine->nonce, sizeof mine->nonce) != 0)
    return ep_err(P2P_ESYS, "%s", err_get());
  ctrl_msg m = {.type = CTRL_HELLO, .u.hello = *mine};
  int rc = hs_send(h, &m);
  long used;
  if (rc == P2P_OK) rc = hs_recv(h, CTRL_HELLO, &m, &used);
  if (rc != P2P_OK) return rc;
  *theirs = m.u.hello;
  hs_done(h, used);
  return P2P_OK;
}

static int exchange_auth(hs *h, const ctrl_hello *mine, const ctrl_hello *theirs) {
  const char *token = h->ep->auth_token;
  if (!((mine->flags | theirs->flags) & CTRL_HELLO_AUTH)) return P2P_OK;
  if (!token[0])
    return ep_err(P2P_EAUTH, "peer %s requires authentication: set "
                  "TCPX_P2P_AUTH_TOKEN (or the auth_token option)", h->c->peer_ip);
  ctrl_msg m = {.type = CTRL_AUTH};
  auth_proof(token, h->role, mine->nonce, theirs->nonce, m.u.auth.mac);
  int rc = hs_send(h, &m);
  long used;
  if (rc == P2P_OK) rc = hs_recv(h, CTRL_AUTH, &m, &used);
  if (rc == P2P_EPEER)
    return ep_err(P2P_EAUTH, "peer %s closed the connection during "
                  "authentication (token mismatch?)", h->c->peer_ip);
  if (rc != P2P_OK) return rc;
  uint8_t want[AUTH_MAC_SIZE];
  auth_proof(token, 1 - h->role, theirs->nonce, mine->nonce, want);
  int ok = auth_equal(want, m.u.auth.mac, AUTH_MAC_SIZE);
  hs_done(h, used);
  if (!ok)
    return ep_err(P2P_EAUTH, "peer %s failed authentication (wrong token)",
                  h->c->peer_ip);
  h->authed = 1;
  return P2P_OK;
}

/* Device for comm j: spread over the connection's devices. */
static int comm_dev(const conn *c, int j) { return c->devs[j % c->ndevs]; }

typedef struct comm_plan {
  int total;                          /* comms per direction: lanes * per lane */
  void *listen[CTRL_MAX_HANDLES];
  uint8_t mine[CTRL_MAX_HANDLES][CTRL_HANDLE_SIZE];
  uint8_t theirs[CTRL_MAX_HANDLES][CTRL_HANDLE_SIZE];
  net_dev_handle devh[CTRL_MAX_HANDLES];
} comm_plan;

static void **slot_send(conn *c, int j) {
  int per = c->send_lanes[0].ncomms;
  return &c->send_lanes[j / per].comm[j % per];
}

static void **slot_recv(conn *c, int j) {
  int per = c->recv_lanes[0].ncomms;
  return &c->recv_lanes[j / per].comm[j % per];
}

/* Is `to` a neighbour on one of the NICs this connection's comms use? (On
 * A3 the data NICs of two hosts share per-NIC subnets, apart from the
 * control network.) */
static int on_a_data_link(const conn *c, const struct sockaddr *to) {
  for (int j = 0; j < c->ndevs; j++) {
    net_props props;
    if (net_call(c->net, get_properties, c->devs[j], &props) == NET_OK &&
        props.name && sock_addr_on_link(props.name, to))
      return 1;
  }
  return 0;
}

/* The peer's handles say where our transport connects: an unproven peer
 * could point it at any host and port. A built-in TCP handle must point at
 * the address our control connection comes from, or at a neighbour on one
 * of our data NICs' subnets, unless the peer proved the shared token. A
 * plugin's handles are opaque: not checked. */
static int check_handle(hs *h, const uint8_t *handle) {
  conn *c = h->c;
  if (c->is_local || h->authed || !net_tcp_is_builtin(c->net)) return P2P_OK;
  struct sockaddr_storage ctl, to;
  socklen_t len = sizeof ctl;
  char ctl_ip[64], to_ip[64];
  if (getpeername(c->fd, (struct sockaddr *)&ctl, &len) != 0)
    return ep_err(P2P_ESYS, "set-up with %s: getpeername: %s", c->peer_ip,
                  strerror(errno));
  if (net_tcp_handle_addr(handle, &to) != NET_OK)
    return ep_err(P2P_EPEER, "set-up with %s: %s", c->peer_ip, err_get());
  sock_addr_str((struct sockaddr *)&ctl, 0, ctl_ip, sizeof ctl_ip);
  sock_addr_str((struct sockaddr *)&to, 0, to_ip, sizeof to_ip);
  if (strcmp(ctl_ip, to_ip) == 0 || on_a_data_link(c, (struct sockaddr *)&to))
    return P2P_OK;
  return ep_err(P2P_EPEER, "set-up with %s: its transport handle points at %s, "
                "neither the address it connects from (%s) nor a neighbour on "
                "our data NICs' subnets; refused (set an auth token on both "
                "sides to let a peer use other addresses)", c->peer_ip, to_ip,
                ctl_ip);
}

/* GPUDirect needs the NIC on the PCI bus: NCCL uses it only where the
 * device has a PCI path, and TCPX's GPU regMr crashes the process on lo
 * (no PCI path) and fails on virtio. So GPU memory goes direct only when
 * every device the `total` comms use has one; else it is staged through
 * host memory. Says why once (per connection) when it is not. */
static int gpu_direct_allowed(const conn *c, int total) {
  int n = total < c->ndevs ? total : c->ndevs; /* comm j uses devs[j % ndevs] */
  for (int j = 0; j < n; j++) {
    net_props props;
    int known = net_call(c->net, get_properties, comm_dev(c, j), &props) == NET_OK;
    if (known && props.pci_path && props.pci_path[0]) continue;
    log_msg(LOG_INFO, "connection with %s: %s device %s has no PCI path: GPU "
            "memory is staged through host memory", c->peer_ip, c->net->name,
            known && props.name ? props.name : "?");
    return 0;
  }
  return 1;
}

static int listen_all(hs *h, comm_plan *p) {
  net_transport *t = h->c->net;
  for (int j = 0; j < p->total; j++)
    if (net_call(t, listen, comm_dev(h->c, j), p->mine[j], &p->listen[j]) != NET_OK)
      return ep_err(P2P_ETRANSPORT, "%s listen: %s", t->name, err_get());
  ctrl_msg m = {.type = CTRL_HANDLES,
                .u.handles = {.count = (uint32_t)p->total, .handles = p->mine[0]}};
  int rc = hs_send(h, &m);
  long used;
  if (rc == P2P_OK) rc = hs_recv(h, CTRL_HANDLES, &m, &used);
  if (rc != P2P_OK) return rc;
  if ((int)m.u.handles.count != p->total) {
    hs_done(h, used);
    return ep_err(P2P_EPEER, "peer %s sent %u handles, expected %d",
                  h->c->peer_ip, m.u.handles.count, p->total);
  }
  memcpy(p->theirs, m.u.handles.handles, (size_t)p->total * CTRL_HANDLE_SIZE);
  hs_done(h, used);
  for (int j = 0; j < p->total; j++)
    if ((rc = check_handle(h, p->theirs[j])) != P2P_OK) return rc;
  if (h->w) atomic_store(&h->w->late, 1);
  return P2P_OK;
}

/* Connect to every peer handle and accept on every listen comm, until all
 * are up. A pending connect is retried with the same handle buffer. */
static int connect_all(hs *h, comm_plan *p) {
  net_transport *t = h->c->net;
  conn *c = h->c;
  for (;;) {
    int up = 0, moved = 0;
    for (int j = 0; j < p->total; j++) {
      void **s = slot_send(c, j), **r = slot_recv(c, j);
      if (!*s) {
        if (net_call(t, connect, comm_dev(h->c, j), p->theirs[j], s, NULL) != NET_OK)
          return ep_err(P2P_ETRANSPORT, "%s connect to %s: %s", t->name,
                        c->peer_ip, err_get());
        moved += *s != NULL;
      }
      if (!*r) {
        net_dev_handle *dh = &p->devh[j];
        if (net_call(t, accept, p->listen[j], r, &dh) != NET_OK)
          return ep_err(P2P_ETRANSPORT, "%s accept from %s: %s", t->name,
                        c->peer_ip, err_get());
        int per = c->recv_lanes[0].ncomms;
        if (*r && gpath_open_unpack(c, &c->recv_lanes[j / per], j % per, dh) != P2P_OK)
          return P2P_ENOTSUP;
        moved += *r != NULL;
      }
      up += (*s != NULL) + (*r != NULL);
    }
    if (up == 2 * p->total) return P2P_OK;
    if (atomic_load(&h->ep->stop)) return ep_err(P2P_ECANCELED, "endpoint is shutting down");
    if (h->w && atomic_load(&h->w->evicted))
      return ep_err(P2P_ELIMIT, "set-up with %s dropped: every set-up slot was "
                    "taken and its comms were not up after %d ms", c->peer_ip,
                    h->ep->lim.hello_ms);
    if (now_ns() >= h->deadline)
      return ep_err(P2P_ETIMEDOUT, "transport comms with %s: %d of %d up after "
                    "the connect timeout", c->peer_ip, up, 2 * p->total);
    if (!moved) usleep(200);
  }
}

static int setup_comms(hs *h, const ctrl_hello *mine, const ctrl_hello *theirs) {
  conn *c = h->c;
  int per = (int)(mine->comms_per_lane < theirs->comms_per_lane
                      ? mine->comms_per_lane : theirs->comms_per_lane);
  for (int li = 0; li < ENGINE_LANES; li++)
    c->send_lanes[li].ncomms = c->recv_lanes[li].ncomms = per;
  comm_plan *p = calloc(1, sizeof *p);
  if (!p) return ep_err(P2P_ENOMEM, "out of memory");
  p->total = per * ENGINE_LANES;
  /* The caller fills the device handle's type and version (ABI rule). */
  net_props props;
  if (net_call(c->net, get_properties, c->devs[0], &props) != NET_OK) {
    free(p);
    return ep_err(P2P_ETRANSPORT, "%s properties: %s", c->net->name, err_get());
  }
  c->ptr_support = props.ptr_support;
  if ((c->ptr_support & NCCL_PTR_CUDA) && !gpu_direct_allowed(c, p->total))
    c->ptr_support &= ~NCCL_PTR_CUDA; /* GPU chunks take the staged path */
  c->force_flush = props.force_flush;
  for (int j = 0; j < p->total; j++)
    p->devh[j] = (net_dev_handle){.netDeviceType = props.dev_type,
                                  .netDeviceVersion = props.dev_version};
  int rc = listen_all(h, p);
  if (rc == P2P_OK) rc = connect_all(h, p);
  for (int j = 0; j < p->total; j++)
    if (p->listen[j]) net_call(h->c->net, close_listen, p->listen[j]);
  free(p);
  return rc;
}

static int exchange_ready(hs *h) {
  ctrl_msg m = {.type = CTRL_READY};
  int rc = hs_send(h, &m);
  long used;
  if (rc == P2P_OK) rc = hs_recv(h, CTRL_READY, &m, &used);
  if (rc == P2P_OK) hs_done(h, used);
  return rc;
}

/* ---- connections ---------------------------------------------------------------- */

static conn *conn_new(p2p_endpoint *ep, int fd, const char *peer_ip,
                      int is_local) {
  conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->ep = ep;
  c->fd = fd;
  c->is_local = is_local;
  c->net = is_local ? ep->local_net : ep->net;
  c->ndevs = is_local ? 1 : ep->ndevs;
  memcpy(c->devs, ep->devs, sizeof c->devs);
  if (is_local) c->devs[0] = 0;
  snprintf(c->peer_ip, sizeof c->peer_ip, "%s", peer_ip);
  pthread_mutex_init(&c->sub_lock, NULL);
  pthread_mutex_init(&c->drive_lock, NULL);
  c->watch_events = -1; /* no progress thread watches it yet */
  atomic_store(&c->refs, 1);
  atomic_fetch_add(&ep->conn_structs, 1);
  c->window = ep->opts.window;
  c->eager_max = ep->opts.eager_max;
  return c;
}

void conn_free(conn *c) {
  if (!c) return;
  atomic_fetch_sub(&c->ep->conn_structs, 1);
  if (c->fd >= 0) close(c->fd);
  bytebuf_free(&c->in);
  bytebuf_free(&c->out);
  free(c->scratch);
  pthread_mutex_destroy(&c->sub_lock);
  pthread_mutex_destroy(&c->drive_lock);
  free(c);
}

/* Tell the peer we give up (BYE), then close our side gracefully and
 * read what it still sends for a moment: closing with unread bytes would
 * reset the connection and lose the BYE (and our HELLO) on its side. */
static void say_refused(conn *c, int rc) {
  ctrl_msg bye = {.type = CTRL_BYE, .u.bye.reason = rc == P2P_ELIMIT ? rc : 0};
  size_t off = 0;
  if (conn_send_ctrl(c, &bye, NULL) == 0)
    sock_send_some(c->fd, c->out.data + c->out.off, c->out.len - c->out.off, &off);
  shutdown(c->fd, SHUT_WR);
  uint64_t until = now_ns() + 100000000ull;
  char sink[4096];
  while (now_ns() < until) {
    struct pollfd p = {c->fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    if (recv(c->fd, sink, sizeof sink, 0) <= 0) break;
  }
}

static int handshake(p2p_endpoint *ep, int fd, const char *peer_ip, int role,
                     int is_local, hs_watch *w, conn **out) {
  *out = NULL;
  if (is_local && !ep->local_net)
    return ep_err(P2P_ENOTSUP, "local connections are not available (no "
                  "loopback transport)");
  conn *c = conn_new(ep, fd, peer_ip, is_local);
  if (!c) return ep_err(P2P_ENOMEM, "out of memory");
  hs h = {.ep = ep, .c = c, .role = role,
          .deadline = now_ns() + (uint64_t)ep->opts.connect_timeout_ms * 1000000ull,
          .w = w, .early_deadline = now_ns() + (uint64_t)ep->lim.hello_ms * 1000000ull};
  ctrl_hello mine, theirs;
  int rc = role == ROLE_ACCEPTOR ? acceptor_room(ep) : P2P_OK;
  if (rc == P2P_OK) rc = exchange_hello(&h, &mine, &theirs);
  if (rc == P2P_OK) rc = exchange_auth(&h, &mine, &theirs);
  if (rc == P2P_OK) {
    c->peer_gpu = theirs.gpu_index;
    c->chunk_size = mine.chunk_size < theirs.chunk_size ? mine.chunk_size
                                                        : theirs.chunk_size;
    c->split = (mine.flags & theirs.flags & CTRL_HELLO_SPLIT) != 0;
  }
  if (rc == P2P_OK) rc = setup_comms(&h, &mine, &theirs);
  if (rc == P2P_OK) rc = exchange_ready(&h);
  if (rc != P2P_OK) {
    char saved[P2P_ERR_MAX];
    snprintf(saved, sizeof saved, "%s", err_get());
    say_refused(c, rc);
    c->fd = -1; /* the caller owns and closes fd on failure */
    gpath_close(c);
    conn_close_comms(c);
    conn_free(c);
    err_set(rc, "%s", saved);
    return rc;
  }
  if (sock_set_nonblock(fd) != NET_OK) { /* polled anyway; best effort */ }
  c->last_rx_ns = c->last_tx_ns = now_ns();
  *out = c;
  return P2P_OK;
}

int handshake_connect(p2p_endpoint *ep, int fd, const char *peer_ip,
                      int is_local, conn **out) {
  return handshake(ep, fd, peer_ip, ROLE_CONNECTOR, is_local, NULL, out);
}

int handshake_accept(p2p_endpoint *ep, int fd, const char *peer_ip,
                     int is_local, hs_watch *w, conn **out) {
  return handshake(ep, fd, peer_ip, ROLE_ACCEPTOR, is_local, w, out);
}
