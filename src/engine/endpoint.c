/* The endpoint: options, transport, control listener and acceptor,
 * connections by id, and the life cycle of ops. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "affinity.h"
#include "auth.h"
#include "cudadrv.h"
#include "engine.h"
#include "env.h"
#include "log.h"
#include "plugin.h"
#include "sock.h"
#include "topo.h"

/* ---- small helpers ----------------------------------------------------------- */

int ep_err(int code, const char *fmt, ...) {
  char msg[P2P_ERR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return err_set(code, "%s", msg);
}

uint64_t now_ns(void) { return clock_ns(); }

void deadline_in(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

int api_enter(p2p_endpoint *ep) {
  atomic_fetch_add(&ep->api_users, 1);
  if (!atomic_load(&ep->stop)) return P2P_OK;
  atomic_fetch_sub(&ep->api_users, 1);
  return ep_err(P2P_ECANCELED, "the endpoint is being destroyed");
}

void api_leave(p2p_endpoint *ep) { atomic_fetch_sub(&ep->api_users, 1); }

/* ---- options ---------------------------------------------------------------- */

void p2p_options_init(p2p_options *o) {
  memset(o, 0, sizeof *o);
  o->gpu_index = 0;
  o->num_threads = env_int_in("TCPX_P2P_NUM_THREADS", 1, 1, ENGINE_MAX_THREADS);
  o->chunk_size = (size_t)env_int_in("TCPX_P2P_CHUNK_SIZE", 1 << 20, 4096,
                                     4 << 20);
  o->window = env_int_in("TCPX_P2P_WINDOW", 8, 1, 16);
  o->comms_per_lane = env_int_in("TCPX_P2P_COMMS_PER_LANE", 2, 1,
                                 ENGINE_MAX_COMMS);
  o->timeout_ms = env_int_in("TCPX_P2P_TIMEOUT_MS", 30000, 100, INT_MAX); /* see liveness.c */
  o->connect_timeout_ms = env_int_in("TCPX_P2P_CONNECT_TIMEOUT_MS", 30000,
                                     100, INT_MAX);
  o->op_timeout_ms = env_int_in("TCPX_P2P_OP_TIMEOUT_MS", 0, 0, INT_MAX);
  o->listen_port = env_int_in("TCPX_P2P_LISTEN_PORT", 0, 0, 65535);
  o->eager_max = (size_t)env_int_in("TCPX_P2P_EAGER_MAX", 64 << 10, 0,
                                    CTRL_MAX_INLINE);
}

static const char *iface_filter(const p2p_options *o) {
  static const char *vars[] = {"TCPX_P2P_SOCKET_IFNAME", "UCCL_SOCKET_IFNAME",
                               "NCCL_SOCKET_IFNAME"};
  if (o->ifname && *o->ifname) return o->ifname;
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *v = getenv(vars[i]);
    if (v && *v) return v;
  }
  return NULL;
}

static int check_options(p2p_options *o) {
  char why[256];
  if (env_bad(why, sizeof why)) return ep_err(P2P_EINVAL, "%s", why);
  if (o->num_threads < 1 || o->num_threads > ENGINE_MAX_THREADS)
    return ep_err(P2P_EINVAL, "num_threads must be 1..%d, got %d",
                  ENGINE_MAX_THREADS, o->num_threads);
  if (o->chunk_size < 4096 || o->chunk_size > (4u << 20))
    return ep_err(P2P_EINVAL, "chunk size must be 4 KiB..4 MiB (TCPX's bound), "
                  "got %zu", o->chunk_size);
  if (o->window < 1 || o->window > 16)
    return ep_err(P2P_EINVAL, "window must be 1..16 (TCPX allows 16 requests "
                  "per comm), got %d", o->window);
  if (o->comms_per_lane < 1 || o->comms_per_lane > ENGINE_MAX_COMMS)
    return ep_err(P2P_EINVAL, "comms per lane must be 1..%d, got %d",
                  ENGINE_MAX_COMMS, o->comms_per_lane);
  if (o->timeout_ms < 100 || o->connect_timeout_ms < 100)
    return ep_err(P2P_EINVAL, "timeouts must be at least 100 ms");
  if (o->eager_max > CTRL_MAX_INLINE)
    return ep_err(P2P_EINVAL, "eager_max must be at most %u, got %zu",
                  CTRL_MAX_INLINE, o->eager_max);
  if (o->listen_port < 0 || o->listen_port > 65535)
    return ep_err(P2P_EINVAL, "listen port %d out of range", o->listen_port);
  return P2P_OK;
}

/* ---- transport and listener ------------------------------------------------------ */

/* The devices nearest the endpoint's GPU (TCPX_P2P_GPU_NICS, else sysfs
 * PCI distance); every device when there is no GPU to be near. */
static int pick_devices(p2p_endpoint *ep, int n) {
  net_props *props = calloc((size_t)n, sizeof *props);
  if (!props) return ep_err(P2P_ENOMEM, "out of memory");
  int rc = NET_OK;
  for (int i = 0; i < n && rc == NET_OK; i++)
    rc = net_call(ep->net, get_properties, i, &props[i]);
  gpu_cuda *cuda = NULL;
  int found = 0;
  ep->ndevs = 0;
  if (rc == NET_OK && gpu_cuda_load(&cuda) == NET_OK &&
      ep->opts.gpu_index >= 0 && ep->opts.gpu_index < cuda->ndevices)
    rc = gpu_nics_for_gpu(cuda, ep->opts.gpu_index, props, n, ep->devs,
                          ENGINE_MAX_COMMS, &ep->ndevs);
  else if (rc == NET_OK && getenv(GPU_NICS_ENV))
    rc = gpu_affinity_from_spec(getenv(GPU_NICS_ENV), ep->opts.gpu_index, props,
                                n, ep->devs, ENGINE_MAX_COMMS, &ep->ndevs, &found);
  free(props);
  if (rc != NET_OK) return ep_err(P2P_ETRANSPORT, "devices: %s", err_get());
  if (ep->ndevs == 0) { /* no GPU, no spec for it: all of them */
    ep->ndevs = n < ENGINE_MAX_COMMS ? n : ENGINE_MAX_COMMS;
    for (int i = 0; i < ep->ndevs; i++) ep->devs[i] = i;
  }
  return P2P_OK;
}

static int open_transport(p2p_endpoint *ep) {
  tcp_options tcp;
  tcp_options_default(&tcp);
  const char *filter = iface_filter(&ep->opts);
  if (filter) snprintf(tcp.ifname, sizeof tcp.ifname, "%s", filter);
  if (net_open(ep->opts.plugin, 0, &tcp, &ep->net) != NET_OK)
    return ep_err(P2P_ETRANSPORT, "transport: %s", err_get());
  int n = 0;
  if (net_call(ep->net, devices, &n) != NET_OK || n < 1)
    return ep_err(P2P_ETRANSPORT, "transport %s has no devices%s%s", ep->net->name,
                  n < 1 ? "" : ": ", n < 1 ? "" : err_get());
  return pick_devices(ep, n);
}

/* The control interface's address (port 0). */
static int control_addr(const char *filter, struct sockaddr_storage *addr,
                        char *ip, size_t ip_len) {
  topo_iface *ifs;
  int n;
  if (topo_find_ifaces(filter, 0, 1, &ifs, &n) != NET_OK)
    return ep_err(P2P_ESYS, "control interface: %s", err_get());
  *addr = ifs[0].addr;
  snprintf(ip, ip_len, "%s", ifs[0].addr_str);
  topo_free_ifaces(ifs, n);
  return P2P_OK;
}

int p2p_oob_ip(const char *ifname, char *ip, size_t ip_len) {
  p2p_options o = {.ifname = ifname};
  struct sockaddr_storage addr;
  if (!ip) return ep_err(P2P_EINVAL, "oob_ip: NULL buffer");
  return control_addr(iface_filter(&o), &addr, ip, ip_len);
}

static int bind_listener(struct sockaddr *sa, int port, int *fd_out) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0) return -1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sock_addr_set_port(sa, (uint16_t)port);
  socklen_t len = sock_addr_len(sa);
  if (bind(fd, sa, len) < 0 || listen(fd, 128) < 0 || getsockname(fd, sa, &len) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  *fd_out = fd;
  return 0;
}

/* The listener takes the asked port; with none asked, the GPU's default
 * port when free (so connect with port -1 finds it), else any port. */
static int open_listener(p2p_endpoint *ep) {
  int rc = control_addr(iface_filter(&ep->opts), &ep->listen_addr, ep->local_ip,
                        sizeof ep->local_ip);
  if (rc != P2P_OK) return rc;
  struct sockaddr *sa = (struct sockaddr *)&ep->listen_addr;
  int port = ep->opts.listen_port;
  int dflt = P2P_DEFAULT_PORT + ep->opts.gpu_index;
  if (port == 0 && dflt > 0 && dflt < 65536 && bind_listener(sa, dflt, &ep->listen_fd) == 0)
    return P2P_OK;
  if (bind_listener(sa, port, &ep->listen_fd) != 0)
    return ep_err(P2P_ESYS, "control listener on %s port %d: %s", ep->local_ip,
                  port, strerror(errno));
  return P2P_OK;
}

/* ---- same-host connections (connect_local) ------------------------------------ */

/* Many comms per connection, each with several sockets: lift the soft fd
 * limit to the hard one (applications rarely do). */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* ---- connections ----------------------------------------------------------------- */

int ep_register_conn(p2p_endpoint *ep, conn *c) {
  pthread_mutex_lock(&ep->conns_lock);
  c->id = ++ep->next_conn_id;
  c->thread = (int)(c->id % (uint64_t)ep->nthreads);
  int rc = idmap_put(&ep->conns, c->id, c);
  pthread_mutex_unlock(&ep->conns_lock);
  if (rc != 0) return ep_err(P2P_ENOMEM, "out of memory");
  c->registered = 1;
  log_msg(LOG_INFO, "connection %llu with %s (GPU %d) is up",
          (unsigned long long)c->id, c->peer_ip, c->peer_gpu);
  progress_adopt(ep, c);
  return P2P_OK;
}

int ep_live_conns(p2p_endpoint *ep) {
  int n = 0;
  pthread_mutex_lock(&ep->conns_lock);
  for (size_t i = 0; i < ep->conns.cap; i++)
    if (idmap_live(&ep->conns, i))
      n += !atomic_load(&((conn *)ep->conns.slots[i].value)->dead);
  pthread_mutex_unlock(&ep->conns_lock);
  return n;
}

void conn_hold(conn *c) { atomic_fetch_add(&c->refs, 1); }

void ep_conn_put(conn *c) {
  if (c && atomic_fetch_sub(&c->refs, 1) == 1) conn_free(c);
}

void ep_conn_retire(p2p_endpoint *ep, conn *c) {
  pthread_mutex_lock(&ep->conns_lock);
  int listed = idmap_get(&ep->conns, c->id) == c;
  if (listed) {
    idmap_del(&ep->conns, c->id);
    unsigned t = ep->next_tomb++ % ENGINE_TOMBS;
    ep->tombs[t].id = c->id;
    ep->tombs[t].code = atomic_load(&c->dead);
    snprintf(ep->tombs[t].why, sizeof ep->tombs[t].why, "%s", c->dead_err);
    conn_stats_snapshot(c, &ep->tombs[t].stats);
  }
  pthread_mutex_unlock(&ep->conns_lock);
  if (listed) ep_conn_put(c);
}

int ep_conn_tomb_stats(p2p_endpoint *ep, uint64_t conn_id, p2p_conn_stats *out) {
  int found = 0;
  pthread_mutex_lock(&ep->conns_lock);
  for (int t = 0; !found && conn_id && t < ENGINE_TOMBS; t++)
    if (ep->tombs[t].id == conn_id) {
      *out = ep->tombs[t].stats;
      found = 1;
    }
  pthread_mutex_unlock(&ep->conns_lock);
  return found;
}

int ep_conn_find(p2p_endpoint *ep, uint64_t conn_id, conn **out) {
  pthread_mutex_lock(&ep->conns_lock);
  conn *c = idmap_get(&ep->conns, conn_id);
  int code = P2P_ENOTFOUND;
  char why[P2P_ERR_MAX] = "";
  if (c) conn_hold(c);
  for (int t = 0; !c && conn_id && t < ENGINE_TOMBS; t++)
    if (ep->tombs[t].id == conn_id) {
      code = ep->tombs[t].code;
      snprintf(why, sizeof why, "%s", ep->tombs[t].why);
    }
  pthread_mutex_unlock(&ep->conns_lock);
  *out = c;
  if (c) return P2P_OK;
  if (why[0]) return ep_err(code, "%s", why);
  return ep_err(P2P_ENOTFOUND, "no connection %llu", (unsigned long long)conn_id);
}

conn *ep_conn_get(p2p_endpoint *ep, uint64_t conn_id) {
  conn *c;
  ep_conn_find(ep, conn_id, &c);
  return c;
}

/* ---- create / destroy -------------------------------------------------------- */

static void ep_init_locks(p2p_endpoint *ep) {
  pthread_mutex_init(&ep->accept_lock, NULL);
  pthread_cond_init(&ep->accept_cond, NULL);
  pthread_mutex_init(&ep->conns_lock, NULL);
  pthread_mutex_init(&ep->regions_lock, NULL);
  pthread_cond_init(&ep->regions_cond, NULL);
  pthread_mutex_init(&ep->ops_lock, NULL);
  pthread_mutex_init(&ep->ipc_lock, NULL);
  pthread_cond_init(&ep->ipc_cond, NULL);
}

/* Keep copies of the caller's strings: opts points into the endpoint. */
static int keep_strings(p2p_endpoint *ep, const p2p_options *opts) {
  const char *token = opts->auth_token ? opts->auth_token
                                       : getenv("TCPX_P2P_AUTH_TOKEN");
  ep->auth_token = strdup(token ? token : ""); /* any length: never cut */
  ep->opts.auth_token = NULL; /* only in ep->auth_token */
  snprintf(ep->plugin, sizeof ep->plugin, "%s", opts->plugin ? opts->plugin : "");
  ep->opts.plugin = opts->plugin ? ep->plugin : NULL;
  snprintf(ep->ifname, sizeof ep->ifname, "%s", opts->ifname ? opts->ifname : "");
  ep->opts.ifname = opts->ifname ? ep->ifname : NULL;
  if ((opts->plugin && strlen(opts->plugin) >= sizeof ep->plugin) ||
      (opts->ifname && strlen(opts->ifname) >= sizeof ep->ifname))
    return ep_err(P2P_EINVAL, "plugin path or interface filter too long");
  return ep->auth_token ? P2P_OK : ep_err(P2P_ENOMEM, "out of memory");
}

static int ep_start(p2p_endpoint *ep) {
  int rc = check_options(&ep->opts);
  if (rc != P2P_OK) return rc;
  raise_fd_limit();
  if (auth_random(&ep->instance_nonce, sizeof ep->instance_nonce) != 0)
    return ep_err(P2P_ESYS, "%s", err_get());
  if ((rc = open_transport(ep)) != P2P_OK) return rc;
  if ((rc = open_listener(ep)) != P2P_OK) return rc;
  if (!ep->opts.no_local && local_open(ep) != P2P_OK) /* remote ones still work */
    log_msg(LOG_WARN, "connect_local/accept_local unavailable: %s", err_get());
  ep->nthreads = ep->opts.num_threads;
  if ((rc = progress_start(ep)) != P2P_OK) return rc;
  if ((rc = acceptor_start(ep)) != P2P_OK) return rc;
  log_msg(LOG_INFO, "endpoint on %s port %u (GPU %d), transport %s, %d device(s)",
          ep->local_ip, sock_addr_port((struct sockaddr *)&ep->listen_addr),
          ep->opts.gpu_index, ep->net->name, ep->ndevs);
  return P2P_OK;
}

int p2p_endpoint_create(const p2p_options *opts, p2p_endpoint **out) {
  *out = NULL;
  p2p_endpoint *ep = calloc(1, sizeof *ep);
  if (!ep) return ep_err(P2P_ENOMEM, "out of memory");
  p2p_options dflt;
  if (!opts) {
    p2p_options_init(&dflt);
    opts = &dflt;
  }
  ep->opts = *opts;
  int kept = keep_strings(ep, opts);
  ep->listen_fd = -1;
  ep->local_fd = -1;
  ep->spare_fd = -1;
  for (int i = 0; i < ENGINE_MAX_THREADS; i++)
    ep->threads[i].wake_fd = ep->threads[i].epoll_fd = -1;
  ep_init_locks(ep);
  limits_load(&ep->lim);
  /* Off by default: on the 2-core VM it cost host messages of 256 KiB-1 MiB
   * 30-55% (per-request overhead beats the extra streams); it exists for
   * the staged GPU path, where it lets copies overlap sends. */
  ep->split = env_int_in("TCPX_P2P_SPLIT", 0, 0, 1);
  ep->trace = trace_open((uint64_t)(uintptr_t)ep);
  int rc = kept == P2P_OK ? ep_start(ep) : kept;
  if (rc != P2P_OK) {
    char saved[P2P_ERR_MAX];
    snprintf(saved, sizeof saved, "%s", err_get());
    p2p_endpoint_destroy(ep);
    return err_set(rc, "endpoint: %s", saved);
  }
  *out = ep;
  err_clear(); /* probes (e.g. "no CUDA") are not failures */
  return P2P_OK;
}

static void free_ops(p2p_endpoint *ep) {
  for (size_t i = 0; i < ep->ops.cap; i++)
    if (idmap_live(&ep->ops, i)) {
      op *o = ep->ops.slots[i].value;
      pthread_cond_destroy(&o->cond);
      free(o->segs);
      ep_conn_put(o->c);
      free(o);
    }
  idmap_free(&ep->ops);
}

/* After free_ops (ops hold connections): drop the accept queues' and the
 * table's references; every connection reaches 0. */
static void free_conns(p2p_endpoint *ep) {
  conn *queues[2] = {ep->accepted_head, ep->local_head};
  for (int q = 0; q < 2; q++)
    for (conn *c = queues[q], *next; c; c = next) {
      next = c->accept_next;
      ep_conn_put(c);
    }
  for (size_t i = 0; i < ep->conns.cap; i++)
    if (idmap_live(&ep->conns, i)) ep_conn_put(ep->conns.slots[i].value);
  idmap_free(&ep->conns);
}

void p2p_endpoint_destroy(p2p_endpoint *ep) {
  if (!ep) return;
  atomic_store(&ep->stop, 1);
  acceptor_stop(ep);
  progress_stop(ep);  /* fails every op with P2P_ECANCELED */
  ipc_wait_workers(ep);
  ipc_close(ep);
  /* Callers blocked in accept/wait/connect have been woken: let them out. */
  pthread_mutex_lock(&ep->accept_lock);
  pthread_cond_broadcast(&ep->accept_cond);
  pthread_mutex_unlock(&ep->accept_lock);
  while (atomic_load(&ep->api_users) > 0) usleep(1000);
  if (ep->listen_fd >= 0) close(ep->listen_fd);
  local_close(ep);
  free_ops(ep);
  free_conns(ep);
  regions_free_all(ep);
  if (ep->net) ep->net->ops->destroy(ep->net);
  if (ep->local_net) ep->local_net->ops->destroy(ep->local_net);
  pthread_mutex_destroy(&ep->accept_lock);
  pthread_cond_destroy(&ep->accept_cond);
  pthread_mutex_destroy(&ep->conns_lock);
  pthread_mutex_destroy(&ep->regions_lock);
  pthread_cond_destroy(&ep->regions_cond);
  pthread_mutex_destroy(&ep->ops_lock);
  pthread_mutex_destroy(&ep->ipc_lock);
  pthread_cond_destroy(&ep->ipc_cond);
  trace_close(ep->trace);
  if (ep->auth_token) { /* the secret does not linger in freed memory */
    memset(ep->auth_token, 0, strlen(ep->auth_token));
    free(ep->auth_token);
  }
  free(ep);
}

/* ---- metadata --------------------------------------------------------------------- */

int p2p_get_metadata(p2p_endpoint *ep, uint8_t *buf, size_t *len) {
  if (!ep || !buf || !len) return ep_err(P2P_EINVAL, "get_metadata: NULL argument");
  const struct sockaddr *sa = (const struct sockaddr *)&ep->listen_addr;
  size_t iplen = sa->sa_family == AF_INET6 ? 16 : 4;
  if (*len < iplen + 6)
    return ep_err(P2P_EINVAL, "get_metadata: buffer of %zu bytes, need %zu", *len,
                  iplen + 6);
  if (iplen == 16) memcpy(buf, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
  else memcpy(buf, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  uint16_t port = htons(sock_addr_port(sa));
  int32_t gpu = ep->opts.gpu_index;
  memcpy(buf + iplen, &port, 2);
  memcpy(buf + iplen + 2, &gpu, 4);
  *len = iplen + 6;
  return P2P_OK;
}

int p2p_parse_metadata(const uint8_t *buf, size_t len, char *ip, size_t ip_len,
                       int *port, int *gpu_index) {
  if (!buf || !ip || !port || !gpu_index)
    return ep_err(P2P_EINVAL, "parse_metadata: NULL argument");
  if (len != 10 && len != 22)
    return ep_err(P2P_EINVAL, "parse_metadata: %zu bytes (want 10 for IPv4 or "
                  "22 for IPv6)", len);
  size_t iplen = len - 6;
  char text[INET6_ADDRSTRLEN];
  if (!inet_ntop(iplen == 4 ? AF_INET : AF_INET6, buf, text, sizeof text))
    return ep_err(P2P_EINVAL, "parse_metadata: bad address");
  if (strlen(text) >= ip_len)
    return ep_err(P2P_EINVAL, "parse_metadata: address buffer too small");
  memcpy(ip, text, strlen(text) + 1);
  uint16_t p;
  int32_t g;
  memcpy(&p, buf + iplen, 2);
  memcpy(&g, buf + iplen + 2, 4);
  *port = ntohs(p);
  *gpu_index = g;
  return P2P_OK;
}

int p2p_local_ip(p2p_endpoint *ep, char *ip, size_t ip_len) {
  if (!ep || !ip || strlen(ep->local_ip) >= ip_len)
    return ep_err(P2P_EINVAL, "local_ip: bad argument");
  memcpy(ip, ep->local_ip, strlen(ep->local_ip) + 1);
  return P2P_OK;
}

/* ---- connect / accept / close ------------------------------------------------ */

static int dial(p2p_endpoint *ep, const char *ip, int port, int *fd_out) {
  struct sockaddr_storage dst = {0};
  if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&dst)->sin_addr) == 1)
    dst.ss_family = AF_INET;
  else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&dst)->sin6_addr) == 1)
    dst.ss_family = AF_INET6;
  else
    return ep_err(P2P_EINVAL, "connect: '%s' is not an IP address", ip);
  sock_addr_set_port((struct sockaddr *)&dst, (uint16_t)port);
  int fd;
  if (sock_connect_start(NULL, (struct sockaddr *)&dst, &fd) != NET_OK)
    return ep_err(P2P_EPEER, "%s", err_get());
  uint64_t deadline = now_ns() + (uint64_t)ep->opts.connect_timeout_ms * 1000000ull;
  for (int done = 0; !done;) {
    struct pollfd p = {fd, POLLOUT, 0};
    poll(&p, 1, 100);
    if (sock_connect_poll(fd, &done) != NET_OK) {
      close(fd);
      return ep_err(P2P_EPEER, "connect to %s port %d: %s", ip, port, err_get());
    }
    if (!done && (now_ns() > deadline || atomic_load(&ep->stop))) {
      close(fd);
      return ep_err(P2P_ETIMEDOUT, "connect to %s port %d: no answer", ip, port);
    }
  }
  sock_set_nodelay(fd);
  sock_set_timeouts(fd, ep->opts.timeout_ms);
  *fd_out = fd;
  return P2P_OK;
}

static int connect_remote(p2p_endpoint *ep, const char *ip, int remote_gpu,
                          int port, uint64_t *conn_id);

int p2p_connect(p2p_endpoint *ep, const char *ip, int remote_gpu, int port,
                uint64_t *conn_id) {
  if (!ep) return ep_err(P2P_EINVAL, "connect: NULL endpoint");
  int rc = api_enter(ep);
  if (rc != P2P_OK) return rc;
  rc = connect_remote(ep, ip, remote_gpu, port, conn_id);
  api_leave(ep);
  return rc;
}

static int connect_remote(p2p_endpoint *ep, const char *ip, int remote_gpu,
                          int port, uint64_t *conn_id) {
  if (!ep || !ip || !conn_id) return ep_err(P2P_EINVAL, "connect: NULL argument");
  if (port < 0) port = P2P_DEFAULT_PORT + remote_gpu; /* UCCL's remote_port=-1 */
  if (port < 1 || port > 65535)
    return ep_err(P2P_EINVAL, "connect: port %d out of range", port);
  int fd = -1, rc = dial(ep, ip, port, &fd);
  if (rc != P2P_OK) return rc;
  conn *c;
  if ((rc = handshake_connect(ep, fd, ip, 0, &c)) != P2P_OK) {
    close(fd);
    return rc;
  }
  if (c->peer_gpu != remote_gpu)
    log_msg(LOG_INFO, "connect to %s: asked for GPU %d, the endpoint there has "
            "GPU %d", ip, remote_gpu, c->peer_gpu);
  if ((rc = ep_register_conn(ep, c)) != P2P_OK) {
    conn_free(c);
    return rc;
  }
  *conn_id = c->id;
  return P2P_OK;
}

/* Wait for the next connection on one of the accepted queues. */
static int take_accepted(p2p_endpoint *ep, int local, conn **out) {
  conn **head = local ? &ep->local_head : &ep->accepted_head;
  conn **tail = local ? &ep->local_tail : &ep->accepted_tail;
  int limit = ep->opts.op_timeout_ms;
  struct timespec until;
  deadline_in(&until, limit);
  pthread_mutex_lock(&ep->accept_lock);
  int rc = 0;
  while (!*head && !atomic_load(&ep->stop) && rc == 0)
    rc = limit > 0 ? pthread_cond_timedwait(&ep->accept_cond, &ep->accept_lock, &until)
                   : pthread_cond_wait(&ep->accept_cond, &ep->accept_lock);
  conn *c = *head;
  if (c) {
    *head = c->accept_next;
    if (!*head) *tail = NULL;
    ep->npending--;
  }
  pthread_mutex_unlock(&ep->accept_lock);
  *out = c;
  if (!c)
    return atomic_load(&ep->stop)
               ? ep_err(P2P_ECANCELED, "accept: endpoint destroyed")
               : ep_err(P2P_ETIMEDOUT, "accept: no connection within %d ms", limit);
  return P2P_OK;
}

int p2p_accept(p2p_endpoint *ep, char *ip, size_t ip_len, int *remote_gpu,
               uint64_t *conn_id) {
  if (!ep || !ip || !remote_gpu || !conn_id)
    return ep_err(P2P_EINVAL, "accept: NULL argument");
  conn *c;
  int rc = api_enter(ep);
  if (rc == P2P_OK) {
    rc = take_accepted(ep, 0, &c);
    api_leave(ep);
  }
  if (rc != P2P_OK) return rc;
  snprintf(ip, ip_len, "%s", c->peer_ip);
  *remote_gpu = c->peer_gpu;
  *conn_id = c->id;
  ep_conn_put(c); /* the queue's reference */
  return P2P_OK;
}

int p2p_accept_local(p2p_endpoint *ep, int *remote_gpu, uint64_t *conn_id) {
  if (!ep || !remote_gpu || !conn_id)
    return ep_err(P2P_EINVAL, "accept_local: NULL argument");
  conn *c;
  int rc = api_enter(ep);
  if (rc == P2P_OK) {
    rc = take_accepted(ep, 1, &c);
    api_leave(ep);
  }
  if (rc != P2P_OK) return rc;
  *remote_gpu = c->peer_gpu;
  *conn_id = c->id;
  ep_conn_put(c); /* the queue's reference */
  return P2P_OK;
}

static int connect_local(p2p_endpoint *ep, int remote_gpu, uint64_t *conn_id);

int p2p_connect_local(p2p_endpoint *ep, int remote_gpu, uint64_t *conn_id) {
  if (!ep || !conn_id) return ep_err(P2P_EINVAL, "connect_local: NULL argument");
  int rc = api_enter(ep);
  if (rc != P2P_OK) return rc;
  rc = connect_local(ep, remote_gpu, conn_id);
  api_leave(ep);
  return rc;
}

static int connect_local(p2p_endpoint *ep, int remote_gpu, uint64_t *conn_id) {
  int fd;
  int rc = local_dial(remote_gpu, &fd);
  if (rc != P2P_OK) return rc;
  sock_set_nonblock(fd);
  conn *c;
  rc = handshake_connect(ep, fd, "local", 1, &c);
  if (rc != P2P_OK) {
    close(fd);
    return rc;
  }
  if ((rc = ep_register_conn(ep, c)) != P2P_OK) {
    conn_free(c);
    return rc;
  }
  *conn_id = c->id;
  return P2P_OK;
}

int p2p_close(p2p_endpoint *ep, uint64_t conn_id) {
  if (!ep) return ep_err(P2P_EINVAL, "close: NULL endpoint");
  conn *c;
  int rc = ep_conn_find(ep, conn_id, &c);
  if (rc != P2P_OK) return rc == P2P_ENOTFOUND ? rc : P2P_OK; /* closed already */
  conn_abort(c, P2P_ECANCELED);
  ep_conn_put(c);
  return P2P_OK;
}

/* Ask the connection's driver to fail it (only the driver may touch the
 * comms); a waiting caller or the progress thread sees it at once. */
void conn_abort(conn *c, int code) {
  int expected = 0;
  atomic_compare_exchange_strong(&c->abort_code, &expected, code);
  progress_wake(c->ep, c);
}

