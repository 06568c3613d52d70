/* Built-in TCP transport: instance, devices and connection set-up.
 * The data path (requests, helper threads) is in tcp_io.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "env.h"
#include "sock.h"
#include "tcp_internal.h"

#define TCP_ACCEPT_HELLO_TIMEOUT_NS (10ull * 1000000000ull)
/* A pending connect nobody polled for this long was abandoned (the caller
 * gave up: the ABI has no call to cancel a connect); its sockets are
 * closed when the next connect begins. */
#define TCP_CONNECT_ABANDON_NS (60ull * 1000000000ull)

typedef struct tcp_listen_pending {
  int fd;
  size_t got;
  tcp_hello hello;
  uint64_t since_ns;
} tcp_listen_pending;

typedef struct tcp_listen_comm {
  tcp_instance *inst;
  int dev;
  int fd;
  uint64_t nonce;
  int nstreams;
  tcp_listen_pending pend[TCP_MAX_STREAMS * 4];
  int npend;
} tcp_listen_comm;

struct tcp_pending_connect {
  tcp_pending_connect *next;
  uint64_t id;
  int dev;
  int nstreams;
  int fds[TCP_MAX_STREAMS];
  int connected[TCP_MAX_STREAMS];
  size_t hello_sent[TCP_MAX_STREAMS];
  tcp_hello hello;
  uint64_t polled_ns;   /* last call of connect for it */
};

/* ---- options and instance ------------------------------------------- */

void tcp_options_default(tcp_options *o) {
  memset(o, 0, sizeof *o);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  o->nstreams = env_int_in("TCPX_P2P_TCP_STREAMS", 4, 1, TCP_MAX_STREAMS);
  /* Two threads at least: one core's copies cannot fill a comm's streams
   * (measured: +16-24% for one comm on 2 cores). */
  int threads = cores >= 4 ? (int)(cores / 2) : 2;
  o->nthreads = env_int_in("TCPX_P2P_TCP_THREADS",
                           threads < o->nstreams ? threads : o->nstreams, 1,
                           TCP_MAX_THREADS);
  o->strict = env_int_in("TCPX_P2P_TCP_STRICT", 0, 0, 1);
  o->max_requests = o->strict ? TCP_STRICT_MAX_REQUESTS : TCP_MAX_REQUESTS;
  o->max_recvs = o->strict ? 1 : TCP_MAX_RECVS;
  o->min_split = (size_t)env_int_in("TCPX_P2P_TCP_MIN_SPLIT", 256 << 10, 0,
                                        INT_MAX);
  /* Off by default: a receiver that posts late leaves the sender on a zero
   * window, which TCP_USER_TIMEOUT would count as a dead peer. Liveness is
   * the control channel's job (the engine closes the comms when it fails). */
  o->user_timeout_ms = env_int_in("TCPX_P2P_TCP_TIMEOUT_MS", 0, 0, INT_MAX);
  o->rto_max_ms = env_int_in("TCPX_P2P_TCP_RTO_MAX_MS", 1000, 0, INT_MAX);
  o->spin_us = env_int_in("TCPX_P2P_TCP_SPIN_US", 0, 0, 1000000);
  o->rcvlowat = env_int_in("TCPX_P2P_TCP_RCVLOWAT", 256 << 10, 0, INT_MAX);
  const char *f = getenv("TCPX_P2P_SOCKET_IFNAME");
  if (!f || !*f) f = getenv("NCCL_SOCKET_IFNAME");
  if (f) snprintf(o->ifname, sizeof o->ifname, "%s", f);
}

static int check_options(const tcp_options *o) {
  char why[256];
  if (env_bad(why, sizeof why)) return err_set(NET_EINVAL, "tcp: %s", why);
  if (o->nstreams < 1 || o->nstreams > TCP_MAX_STREAMS)
    return err_set(NET_EINVAL, "tcp: streams per comm must be 1..%d, got %d",
                   TCP_MAX_STREAMS, o->nstreams);
  if (o->nthreads < 1 || o->nthreads > TCP_MAX_THREADS)
    return err_set(NET_EINVAL, "tcp: helper threads must be 1..%d, got %d",
                   TCP_MAX_THREADS, o->nthreads);
  if (o->max_requests < 1 || o->max_requests > TCP_MAX_REQUESTS)
    return err_set(NET_EINVAL, "tcp: max requests must be 1..%d, got %d",
                   TCP_MAX_REQUESTS, o->max_requests);
  if (o->max_recvs < 1 || o->max_recvs > TCP_MAX_RECVS)
    return err_set(NET_EINVAL, "tcp: max recvs must be 1..%d, got %d",
                   TCP_MAX_RECVS, o->max_recvs);
  return NET_OK;
}

static tcp_instance *inst_of(net_transport *t) { return t->impl; }

static int tcp_devices(net_transport *t, int *ndev) {
  *ndev = inst_of(t)->ndevs;
  return NET_OK;
}

static int tcp_get_properties(net_transport *t, int dev, net_props *p) {
  tcp_instance *inst = inst_of(t);
  if (dev < 0 || dev >= inst->ndevs)
    return err_set(NET_EINVAL, "tcp: no device %d (have %d)", dev, inst->ndevs);
  const topo_iface *ifc = &inst->devs[dev];
  memset(p, 0, sizeof *p);
  p->name = ifc->name;
  p->pci_path = ifc->pci_path;
  p->guid = (uint64_t)dev;
  p->ptr_support = NCCL_PTR_HOST;
  p->speed_mbps = ifc->speed_mbps;
  p->latency_us = 0;
  p->port = 0;
  p->max_comms = 65536;
  p->max_recvs = inst->opts.max_recvs;
  p->dev_type = NCCL_NET_DEVICE_HOST;
  p->dev_version = 0;
  p->max_p2p_bytes = inst->opts.strict ? TCP_STRICT_MAX_RECV_BYTES
                                       : (size_t)1 << 40;
  return NET_OK;
}

/* ---- listen / accept ---------------------------------------------------- */

static uint64_t random_u64(void) {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, 0) != sizeof v) v = clock_ns() ^ (uint64_t)getpid() << 32;
  return v;
}

static uint32_t handle_check(const tcp_handle *h) {
  const uint8_t *p = (const uint8_t *)h;
  uint32_t v = 2166136261u;
  for (size_t i = 0; i < offsetof(tcp_handle, check); i++) v = (v ^ p[i]) * 16777619u;
  return v;
}

static int tcp_listen(net_transport *t, int dev, void *handle, void **out) {
  tcp_instance *inst = inst_of(t);
  if (dev < 0 || dev >= inst->ndevs)
    return err_set(NET_EINVAL, "tcp listen: no device %d (have %d)", dev,
                   inst->ndevs);
  tcp_listen_comm *l = calloc(1, sizeof *l);
  if (!l) return err_set(NET_ESYS, "tcp listen: out of memory");
  struct sockaddr_storage addr = inst->devs[dev].addr;
  int rc = sock_listen(&addr, &l->fd);
  if (rc != NET_OK) {
    free(l);
    return err_wrap(rc, "tcp listen on %s", inst->devs[dev].name);
  }
  l->inst = inst;
  l->dev = dev;
  l->nonce = random_u64();
  l->nstreams = inst->opts.nstreams;

  tcp_handle h = {.magic = TCP_HANDLE_MAGIC, .version = TCP_PROTO_VERSION,
                  .nstreams = (uint16_t)l->nstreams,
                  .family = (uint16_t)addr.ss_family,
                  .port = sock_addr_port((struct sockaddr *)&addr),
                  .listen_nonce = l->nonce};
  if (addr.ss_family == AF_INET6)
    memcpy(h.addr, &((struct sockaddr_in6 *)&addr)->sin6_addr, 16);
  else
    memcpy(h.addr, &((struct sockaddr_in *)&addr)->sin_addr, 4);
  h.check = handle_check(&h);
  memset(handle, 0, NET_HANDLE_SIZE);
  memcpy(handle, &h, sizeof h);
  *out = l;
  return NET_OK;
}

static void drop_pending(tcp_listen_comm *l, int i) {
  close(l->pend[i].fd);
  l->pend[i] = l->pend[--l->npend];
}

/* Take every connection waiting in the backlog (room permitting). */
static int accept_new(tcp_listen_comm *l) {
  while (l->npend < (int)(sizeof l->pend / sizeof l->pend[0])) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
          errno == ECONNABORTED)
        return NET_OK;
      return err_sys(NET_ESYS, errno, "tcp accept");
    }
    l->pend[l->npend++] = (tcp_listen_pending){.fd = fd, .since_ns = clock_ns()};
  }
  return NET_OK;
}

/* Read hellos; drop sockets that send garbage, close or stall. */
static void read_hellos(tcp_listen_comm *l) {
  for (int i = l->npend - 1; i >= 0; i--) {
    tcp_listen_pending *p = &l->pend[i];
    if (p->got == sizeof p->hello) continue;
    int rc = sock_recv_some(p->fd, &p->hello, sizeof p->hello, &p->got);
    int bad = rc != NET_OK;
    if (p->got == sizeof p->hello) {
      const tcp_hello *h = &p->hello;
      bad = h->magic != TCP_HELLO_MAGIC || h->version != TCP_PROTO_VERSION ||
            h->listen_nonce != l->nonce || h->nstreams != l->nstreams ||
            h->stream >= h->nstreams;
    } else if (clock_ns() - p->since_ns > TCP_ACCEPT_HELLO_TIMEOUT_NS) {
      bad = 1;
    }
    if (bad) drop_pending(l, i);
  }
}

static int group_complete(tcp_listen_comm *l, uint64_t comm_nonce, int *idx) {
  int found = 0;
  for (int s = 0; s < l->nstreams; s++) idx[s] = -1;
  for (int i = 0; i < l->npend; i++) {
    tcp_listen_pending *p = &l->pend[i];
    if (p->got != sizeof p->hello || p->hello.comm_nonce != comm_nonce)
      continue;
    if (idx[p->hello.stream] < 0) found++;
    idx[p->hello.stream] = i;
  }
  return found == l->nstreams;
}

static tcp_comm *comm_new(tcp_instance *inst, int is_recv, int nstreams,
                          int dev) {
  tcp_comm *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->inst = inst;
  snprintf(c->dev, sizeof c->dev, "%s", inst->devs[dev].name);
  c->is_recv = is_recv;
  c->nstreams = nstreams;
  c->nthreads = inst->opts.nthreads < nstreams ? inst->opts.nthreads : nstreams;
  c->max_requests = inst->opts.max_requests;
  c->max_recvs = inst->opts.max_recvs;
  c->min_split = inst->opts.min_split;
  c->spin_ns = (uint64_t)inst->opts.spin_us * 1000;
  c->strict = inst->opts.strict;
  for (int s = 0; s < TCP_MAX_STREAMS; s++) c->streams[s].fd = -1;
  for (int i = 0; i < TCP_MAX_THREADS; i++) c->threads[i].wake_fd = -1;
  pthread_mutex_init(&c->lock, NULL);
  return c;
}

static int comm_finish(tcp_comm *c, void **out) {
  for (int s = 0; s < c->nstreams; s++) {
    c->streams[s].index = s;
    sock_set_nodelay(c->streams[s].fd);
    sock_set_user_timeout(c->streams[s].fd, c->inst->opts.user_timeout_ms);
    sock_set_rto_max(c->streams[s].fd, c->inst->opts.rto_max_ms);
  }
  struct sockaddr_storage peer;
  socklen_t len = sizeof peer;
  if (getpeername(c->streams[0].fd, (struct sockaddr *)&peer, &len) == 0)
    sock_addr_str((struct sockaddr *)&peer, 1, c->peer, sizeof c->peer);
  int rc = tcp_comm_start(c);
  if (rc != NET_OK) {
    tcp_comm_destroy(c);
    return rc;
  }
  *out = c;
  return NET_OK;
}

static int tcp_accept(net_transport *t, void *listen_comm, void **out,
                      net_dev_handle **dev) {
  (void)t;
  (void)dev; /* host transport: no device handle */
  tcp_listen_comm *l = listen_comm;
  *out = NULL;
  if (!l) return err_set(NET_EINVAL, "tcp accept: NULL listen comm");
  int rc = accept_new(l);
  if (rc != NET_OK) return rc;
  read_hellos(l);
  int idx[TCP_MAX_STREAMS];
  for (int i = 0; i < l->npend; i++) {
    if (l->pend[i].got != sizeof(tcp_hello)) continue;
    if (!group_complete(l, l->pend[i].hello.comm_nonce, idx)) continue;
    tcp_comm *c = comm_new(l->inst, 1, l->nstreams, l->dev);
    if (!c) return err_set(NET_ESYS, "tcp accept: out of memory");
    for (int s = 0; s < l->nstreams; s++) {
      c->streams[s].fd = l->pend[idx[s]].fd;
      l->pend[idx[s]].fd = -1;
    }
    for (int j = l->npend - 1; j >= 0; j--)
      if (l->pend[j].fd < 0) l->pend[j] = l->pend[--l->npend];
    return comm_finish(c, out);
  }
  return NET_OK;
}

static int tcp_close_listen(net_transport *t, void *listen_comm) {
  (void)t;
  tcp_listen_comm *l = listen_comm;
  if (!l) return NET_OK;
  for (int i = 0; i < l->npend; i++) close(l->pend[i].fd);
  close(l->fd);
  free(l);
  return NET_OK;
}

/* ---- connect ------------------------------------------------------------ */

static int handle_peer_addr(const tcp_handle *h, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (h->family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    memcpy(&in->sin_addr, h->addr, 4);
    in->sin_port = htons(h->port);
  } else if (h->family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    memcpy(&in6->sin6_addr, h->addr, 16);
    in6->sin6_port = htons(h->port);
  } else {
    return err_set(NET_EINVAL, "tcp connect: invalid handle (address family %u)",
                   h->family);
  }
  if (h->port == 0)
    return err_set(NET_EINVAL, "tcp connect: invalid handle (port 0)");
  return NET_OK;
}

static void pending_free(tcp_pending_connect *pc) {
  for (int s = 0; s < pc->nstreams; s++)
    if (pc->fds[s] >= 0) close(pc->fds[s]);
  free(pc);
}

/* Close pending connects their caller abandoned (see TCP_CONNECT_ABANDON_NS). */
static void pending_sweep(tcp_instance *inst) {
  tcp_pending_connect *dead = NULL;
  pthread_mutex_lock(&inst->lock);
  /* The clock is read under the lock: read before it, a connect put back
   * meanwhile by another thread would look polled in the future, and the
   * unsigned difference would call it abandoned (seen: 64 connects from 8
   * threads, "unknown connect id"). */
  uint64_t now = clock_ns();
  for (tcp_pending_connect **pp = &inst->pending; *pp;) {
    tcp_pending_connect *pc = *pp;
    if (now > pc->polled_ns && now - pc->polled_ns > TCP_CONNECT_ABANDON_NS) {
      *pp = pc->next;
      pc->next = dead;
      dead = pc;
    } else {
      pp = &pc->next;
    }
  }
  pthread_mutex_unlock(&inst->lock);
  while (dead) {
    tcp_pending_connect *pc = dead;
    dead = pc->next;
    pending_free(pc);
  }
}

static int connect_begin(tcp_instance *inst, int dev, tcp_handle *h) {
  pending_sweep(inst);
  if (h->magic != TCP_HANDLE_MAGIC || h->version != TCP_PROTO_VERSION ||
      h->check != handle_check(h))
    return err_set(NET_EINVAL, "tcp connect: invalid handle (bad magic, "
                   "version or checksum; garbage, truncated, or not made by "
                   "this transport's listen)");
  if (h->nstreams < 1 || h->nstreams > TCP_MAX_STREAMS)
    return err_set(NET_EINVAL, "tcp connect: invalid handle (%u streams)",
                   h->nstreams);
  struct sockaddr_storage dst;
  int rc = handle_peer_addr(h, &dst);
  if (rc != NET_OK) return rc;
  const topo_iface *ifc = &inst->devs[dev];
  if (ifc->family != dst.ss_family)
    return err_set(NET_EINVAL, "tcp connect: device %s is not of the peer's "
                   "address family", ifc->name);
  tcp_pending_connect *pc = calloc(1, sizeof *pc);
  if (!pc) return err_set(NET_ESYS, "tcp connect: out of memory");
  pc->dev = dev;
  pc->nstreams = h->nstreams;
  for (int s = 0; s < pc->nstreams; s++) pc->fds[s] = -1;
  pc->hello = (tcp_hello){.magic = TCP_HELLO_MAGIC, .version = TCP_PROTO_VERSION,
                          .nstreams = h->nstreams,
                          .listen_nonce = h->listen_nonce,
                          .comm_nonce = random_u64()};
  for (int s = 0; s < pc->nstreams; s++) {
    rc = sock_connect_start((const struct sockaddr *)&ifc->addr,
                            (const struct sockaddr *)&dst, &pc->fds[s]);
    if (rc != NET_OK) {
      pending_free(pc);
      return err_wrap(rc, "tcp connect from %s", ifc->name);
    }
  }
  pthread_mutex_lock(&inst->lock);
  pc->id = ++inst->next_connect_id;
  pc->polled_ns = clock_ns();
  pc->next = inst->pending;
  inst->pending = pc;
  pthread_mutex_unlock(&inst->lock);
  h->connect_magic = TCP_CONNECT_MAGIC;
  h->connect_id = pc->id;
  return NET_OK;
}

/* Unlink and return the pending connect `id`, or NULL. */
static tcp_pending_connect *pending_take(tcp_instance *inst, uint64_t id) {
  pthread_mutex_lock(&inst->lock);
  tcp_pending_connect **pp = &inst->pending;
  while (*pp && (*pp)->id != id) pp = &(*pp)->next;
  tcp_pending_connect *pc = *pp;
  if (pc) *pp = pc->next;
  pthread_mutex_unlock(&inst->lock);
  return pc;
}

static void pending_put(tcp_instance *inst, tcp_pending_connect *pc) {
  pthread_mutex_lock(&inst->lock);
  pc->polled_ns = clock_ns();
  pc->next = inst->pending;
  inst->pending = pc;
  pthread_mutex_unlock(&inst->lock);
}

/* Advance every stream: connected? hello sent? Returns 1 when all done. */
static int connect_progress(tcp_pending_connect *pc, int *rc) {
  int ready = 0;
  *rc = NET_OK;
  for (int s = 0; s < pc->nstreams && *rc == NET_OK; s++) {
    if (!pc->connected[s]) *rc = sock_connect_poll(pc->fds[s], &pc->connected[s]);
    if (*rc != NET_OK || !pc->connected[s]) continue;
    tcp_hello hello = pc->hello;
    hello.stream = (uint16_t)s;
    *rc = sock_send_some(pc->fds[s], &hello, sizeof hello, &pc->hello_sent[s]);
    if (pc->hello_sent[s] == sizeof hello) ready++;
  }
  return ready == pc->nstreams;
}

static int tcp_connect(net_transport *t, int dev, void *handle, void **out,
                       net_dev_handle **devh) {
  (void)devh;
  tcp_instance *inst = inst_of(t);
  tcp_handle *h = handle;
  *out = NULL;
  if (dev < 0 || dev >= inst->ndevs)
    return err_set(NET_EINVAL, "tcp connect: no device %d (have %d)", dev,
                   inst->ndevs);
  if (h->connect_magic == TCP_CONNECTED_MAGIC)
    return err_set(NET_EUSAGE, "tcp connect: this handle's connect already "
                   "finished; use a fresh copy of the listener's handle");
  if (h->connect_magic != TCP_CONNECT_MAGIC) return connect_begin(inst, dev, h);

  tcp_pending_connect *pc = pending_take(inst, h->connect_id);
  if (!pc)
    return err_set(NET_EINVAL, "tcp connect: invalid handle (unknown "
                   "connect id %llu)", (unsigned long long)h->connect_id);
  int rc;
  if (!connect_progress(pc, &rc)) {
    if (rc != NET_OK) {
      char to[80];
      struct sockaddr_storage dst;
      handle_peer_addr(h, &dst);
      sock_addr_str((struct sockaddr *)&dst, 1, to, sizeof to);
      h->connect_magic = 0;
      pending_free(pc);
      return err_wrap(rc, "tcp connect to %s", to);
    }
    pending_put(inst, pc);
    return NET_OK;
  }
  h->connect_magic = TCP_CONNECTED_MAGIC;
  tcp_comm *c = comm_new(inst, 0, pc->nstreams, pc->dev);
  if (!c) {
    pending_free(pc);
    return err_set(NET_ESYS, "tcp connect: out of memory");
  }
  for (int s = 0; s < pc->nstreams; s++) {
    c->streams[s].fd = pc->fds[s];
    pc->fds[s] = -1;
  }
  pending_free(pc);
  return comm_finish(c, out);
}

/* ---- registration, flush, close ---------------------------------------- */

static int tcp_reg_mr(net_transport *t, void *comm, void *data, size_t size,
                      int type, void **mh) {
  (void)t;
  (void)comm;
  if (type != NCCL_PTR_HOST)
    return err_set(NET_EINVAL, "tcp regMr: the built-in TCP transport moves "
                   "host memory only (pointer type %d)", type);
  if (!data && size)
    return err_set(NET_EINVAL, "tcp regMr: NULL buffer of %zu bytes", size);
  *mh = (void *)(uintptr_t)1; /* nothing to register: a non-NULL token */
  return NET_OK;
}

static int tcp_dereg_mr(net_transport *t, void *comm, void *mh) {
  (void)t;
  (void)comm;
  (void)mh;
  return NET_OK;
}

static int tcp_iflush(net_transport *t, void *comm, int n, void **data,
                      size_t *sizes, void **mhs, void **request) {
  (void)comm;
  (void)n;
  (void)data;
  (void)sizes;
  (void)mhs;
  if (inst_of(t)->opts.strict)
    return err_set(NET_EUSAGE, "tcp iflush: strict mode (TCPX rules): iflush "
                   "must not be called");
  *request = NULL; /* host memory: already visible */
  return NET_OK;
}

static int tcp_close_comm(net_transport *t, void *comm) {
  (void)t;
  if (comm) tcp_comm_destroy(comm);
  return NET_OK;
}

static void tcp_destroy(net_transport *t) {
  tcp_instance *inst = inst_of(t);
  while (inst->pending) {
    tcp_pending_connect *pc = inst->pending;
    inst->pending = pc->next;
    pending_free(pc);
  }
  topo_free_ifaces(inst->devs, inst->ndevs);
  pthread_mutex_destroy(&inst->lock);
  free(inst);
  free(t);
}

static const net_ops tcp_ops = {
    .devices = tcp_devices,
    .get_properties = tcp_get_properties,
    .listen = tcp_listen,
    .connect = tcp_connect,
    .accept = tcp_accept,
    .reg_mr = tcp_reg_mr,
    .dereg_mr = tcp_dereg_mr,
    .isend = tcp_isend,
    .irecv = tcp_irecv,
    .iflush = tcp_iflush,
    .test = tcp_test,
    .close_send = tcp_close_comm,
    .close_recv = tcp_close_comm,
    .close_listen = tcp_close_listen,
    .irecv_consumed = tcp_irecv_consumed,
    .comm_status = tcp_comm_status,
    .destroy = tcp_destroy,
};

int net_tcp_create(const tcp_options *opts, net_transport **out) {
  tcp_options dflt;
  if (!opts) {
    tcp_options_default(&dflt);
    opts = &dflt;
  }
  int rc = check_options(opts);
  if (rc != NET_OK) return rc;
  topo_iface *ifaces;
  int n;
  rc = topo_find_ifaces(opts->ifname, opts->allow_loopback, 1, &ifaces, &n);
  if (rc != NET_OK) return err_wrap(rc, "tcp transport: device discovery");
  net_transport *t = calloc(1, sizeof *t);
  tcp_instance *inst = calloc(1, sizeof *inst);
  if (!t || !inst) {
    free(t);
    free(inst);
    topo_free_ifaces(ifaces, n);
    return err_set(NET_ESYS, "tcp transport: out of memory");
  }
  inst->opts = *opts;
  inst->devs = ifaces;
  inst->ndevs = n;
  pthread_mutex_init(&inst->lock, NULL);
  t->ops = &tcp_ops;
  snprintf(t->name, sizeof t->name, "tcpx-p2p-tcp");
  t->impl = inst;
  *out = t;
  return NET_OK;
}

int net_tcp_comm_peer(void *comm, char *buf, size_t len) {
  tcp_comm *c = comm;
  if (!c) return err_set(NET_EINVAL, "tcp: NULL comm");
  snprintf(buf, len, "%s", c->peer);
  return NET_OK;
}
