/* FakeTCPX: a test-only NCCL net plugin (ncclNetPlugin_v7, "FakeTCPX_v7")
 * that models GPUDirect-TCPX strictly, over one plain TCP socket per comm,
 * so that every suite can prove the engine would drive the real plugin.
 *
 * Every TCPX rule (docs/TCPX.md) is checked; a broken one is a violation
 * (fake_tcpx_rules.c) that fails the call and is recorded for the test
 * run to count. The rules, by the name a violation carries:
 *   dynamic-chunk-size  NCCL_DYNAMIC_CHUNK_SIZE set (> 0) before init
 *   max-16-requests     at most 16 requests per comm (receives count until
 *                       irecvConsumed)
 *   test-order          test only on the oldest request of its comm
 *   test-after-done     no test on a request already reported done
 *   recv-n              irecv and irecvConsumed with n == 1
 *   recv-max-4MiB       receives of at most 4 MiB
 *   recv-max-2048-frags at most 2048 fragments per receive
 *   recv-size           a send no larger than the receive posted for it
 *   irecv-consumed      irecvConsumed for every receive, after done, in order
 *   gpu-regmr-4k        GPU regMr on a 4 KiB-aligned pointer and size
 *   gpu-regmr-pci       GPU regMr only on a device with a PCI path (TCPX
 *                       crashes the process on lo, fails on virtio)
 *   mr-comm             a memory handle used only on the comm it was made on
 *   dereg-in-use        no deregMr while a request uses the handle
 *   no-iflush           iflush is never called
 *   one-accept          one accept per listen comm
 *   accept-devhandle    accept always given a device handle struct
 *   connect-handle      a pending connect retried with the same handle
 *                       buffer; a listen handle starts one connection
 *   close-in-flight     no close with requests in flight
 * Besides: test never writes sizes (it poisons them, so an engine that
 * reads them fails), a comm comes back only on a later connect/accept call,
 * and receives land in shuffled pages of a bounce pool with descriptors in
 * the unpack meta (every receive in the host build; GPU receives in the
 * CUDA build, where host receives land in place as on TCPX).
 *
 * The listen address: $FAKE_TCPX_ADDR, else the IPv4 address of the first
 * interface in $NCCL_GPUDIRECTTCPX_SOCKET_IFNAME or $TCPX_P2P_SOCKET_IFNAME
 * (the test harness sets the latter per namespace), else 127.0.0.1.
 *
 * The device's PCI path: $FAKE_TCPX_PCI_PATH (the GPU runs set one, to
 * model a real NIC), else none, as lo. Pointer types: HOST, and CUDA in
 * the CUDA build, or in the host build with FAKE_TCPX_PTR_CUDA=1 (as TCPX
 * advertises on every device; "GPU" memory is then the fake CUDA driver's,
 * which is host memory). Both are read at init. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fake_tcpx.h"

#define FT_MAGIC 0x5854464bu
enum { FT_FRESH = 0, FT_PENDING = 1, FT_CONNECTED = 2 };

typedef struct { /* the 128-byte handle; connect keeps its progress here */
  uint32_t magic, state;
  uint64_t id;               /* the listen comm's, unique */
  const void *buffer;        /* where the pending connect's handle lives */
  struct sockaddr_in addr;
} ft_handle;
_Static_assert(sizeof(ft_handle) <= NCCL_NET_HANDLE_MAXSIZE, "handle");

typedef struct { int fd, calls, accepted; } ft_listener;

struct ft_comm;
typedef struct ft_mr {
  struct ft_mr *next;        /* in its comm's list */
  struct ft_comm *comm;
  int type;
  char *base;
  size_t size;
  int users;                 /* requests in flight that use it */
} ft_mr;

enum { REQ_FREE = 0, REQ_POSTED, REQ_DONE };
typedef struct {
  struct ft_comm *comm;
  int state;
  uint64_t k;
  ft_mr *mr;
  char *data;
  size_t size;               /* send: bytes; receive: posted size */
  uint64_t msg;              /* the 8-byte header: the sender's size */
  size_t hdr_done, done;     /* progress through header and payload */
  int bounce;                /* receive: lands in the bounce pool */
  unsigned char *copy;       /* send from GPU: host copy */
} ft_req;

typedef struct { /* a receive comm's bounce pool */
  ft_mem *mem;
  int random_frags, host_direct;
  uint64_t rng;
  uint32_t nfree, free_pages[FT_POOL_PAGES];
  uint32_t npages[FT_SLOTS], pages[FT_SLOTS][FT_MAX_FRAGS];
  unsigned char assembly[FT_MAX_RECV];
} ft_pool;

typedef struct ft_comm {
  int fd, is_recv;
  int broken;                /* a test failed: the comm is only closed now */
  uint64_t posted, reported, finished; /* finished: sends done, recvs consumed */
  ft_req req[FT_SLOTS];
  ft_pool *pool;
  ft_mr *mrs;                /* registered, not yet deregistered */
} ft_comm;

static uint64_t next_random(uint64_t *x) {
  *x ^= *x >> 12;
  *x ^= *x << 25;
  *x ^= *x >> 27;
  return *x * 0x2545F4914F6CDD1Dull;
}

static uint64_t fresh_id(void) {
  static uint64_t counter;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^
               (__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) << 48);
  return next_random(&x) | 1;
}

/* ---- init and properties --------------------------------------------------- */

static void first_ifname(char *out, size_t len);
/* The device's name, PCI path and pointer types, fixed at init
 * (properties are asked from any thread). */
static char device_name[IF_NAMESIZE + 1];
static char pci_path[PATH_MAX];
static int ptr_cuda;

static char *device_label(void) { return device_name[0] ? device_name : "lo"; }

static void read_device_knobs(void) {
  const char *path = getenv("FAKE_TCPX_PCI_PATH");
  snprintf(pci_path, sizeof pci_path, "%s", path ? path : "");
  const char *cuda = getenv("FAKE_TCPX_PTR_CUDA");
  ptr_cuda = ft_mem_is_cuda() || (cuda && !strcmp(cuda, "1"));
}

static ncclResult_t ft_init(ncclDebugLogger_t logger) {
  if (!logger) return ft_violation("init-logger", "init given a NULL logger");
  ft_set_logger(logger);
  ft_note_init();
  first_ifname(device_name, sizeof device_name);
  read_device_knobs();
  const char *chunk = getenv("NCCL_DYNAMIC_CHUNK_SIZE");
  if (!chunk || atol(chunk) <= 0)
    return ft_violation("dynamic-chunk-size", "NCCL_DYNAMIC_CHUNK_SIZE is %s at "
                        "init: TCPX then cuts every isend into 0-byte chunks "
                        "and no send ever completes", chunk ? chunk : "unset");
  return ft_mem_init();
}

static ncclResult_t ft_devices(int *n) {
  *n = 1;
  return NCCL_OK;
}

/* The first interface named in a NCCL-style list ("^" exclusions and "="
 * exact markers aside). */
static void first_ifname(char *out, size_t len) {
  const char *list = getenv("NCCL_GPUDIRECTTCPX_SOCKET_IFNAME");
  if (!list || !*list) list = getenv("TCPX_P2P_SOCKET_IFNAME");
  out[0] = '\0';
  if (!list || !*list || *list == '^') return;
  if (*list == '=') list++;
  size_t n = strcspn(list, ",");
  if (n >= len) n = len - 1;
  memcpy(out, list, n);
  out[n] = '\0';
}


static ncclResult_t ft_props(int dev, ncclNetProperties_v7_t *p) {
  if (dev != 0) return ft_warn(NCCL_INVALID_ARGUMENT, "FakeTCPX: no device %d", dev);
  memset(p, 0, sizeof *p);
  p->name = device_label();
  p->pciPath = pci_path[0] ? pci_path : NULL;
  p->ptrSupport = NCCL_PTR_HOST | (ptr_cuda ? NCCL_PTR_CUDA : 0);
  p->speed = 100000;
  p->maxComms = 65536;
  p->maxRecvs = 1;
  p->netDeviceType = NCCL_NET_DEVICE_UNPACK;
  p->netDeviceVersion = NCCL_NET_DEVICE_UNPACK_VERSION;
  return NCCL_OK;
}

/* ---- connection set-up ------------------------------------------------------ */

static ncclResult_t listen_address(struct in_addr *out) {
  const char *addr = getenv("FAKE_TCPX_ADDR");
  if (addr && *addr)
    return inet_pton(AF_INET, addr, out) == 1
               ? NCCL_OK
               : ft_warn(NCCL_INVALID_ARGUMENT, "FakeTCPX: bad FAKE_TCPX_ADDR");
  char name[IF_NAMESIZE + 1];
  first_ifname(name, sizeof name);
  out->s_addr = htonl(INADDR_LOOPBACK);
  struct ifaddrs *all, *ifa;
  if (!name[0] || getifaddrs(&all) != 0) return NCCL_OK;
  for (ifa = all; ifa; ifa = ifa->ifa_next)
    if (ifa->ifa_addr && ifa->ifa_addr->sa_family == AF_INET &&
        !strcmp(ifa->ifa_name, name)) {
      *out = ((struct sockaddr_in *)ifa->ifa_addr)->sin_addr;
      break;
    }
  freeifaddrs(all);
  return ifa ? NCCL_OK : ft_warn(NCCL_SYSTEM_ERROR, "FakeTCPX: no IPv4 "
                                 "address on interface %s", name);
}

static ncclResult_t ft_listen(int dev, void *handle, void **listen_comm) {
  (void)dev;
  ft_handle *h = handle;
  memset(h, 0, NCCL_NET_HANDLE_MAXSIZE);
  h->magic = FT_MAGIC;
  h->id = fresh_id();
  h->addr.sin_family = AF_INET;
  ncclResult_t rc = listen_address(&h->addr.sin_addr);
  if (rc != NCCL_OK) return rc;
  socklen_t len = sizeof h->addr;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&h->addr, len) ||
      listen(fd, 4) || getsockname(fd, (struct sockaddr *)&h->addr, &len)) {
    if (fd >= 0) close(fd);
    return ft_warn(NCCL_SYSTEM_ERROR, "FakeTCPX: listen: %s", strerror(errno));
  }
  ft_listener *l = calloc(1, sizeof *l);
  if (!l) {
    close(fd);
    return NCCL_SYSTEM_ERROR;
  }
  l->fd = fd;
  *listen_comm = l;
  return NCCL_OK;
}

static ft_comm *new_comm(int fd, int is_recv) {
  ft_comm *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  c->is_recv = is_recv;
  for (int i = 0; i < FT_SLOTS; i++) c->req[i].comm = c;
  return c;
}

static ncclResult_t connect_now(ft_handle *h, void **send_comm) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&h->addr, sizeof h->addr)) {
    if (fd >= 0) close(fd);
    return ft_warn(NCCL_SYSTEM_ERROR, "FakeTCPX: connect: %s", strerror(errno));
  }
  ft_comm *c = new_comm(fd, 0);
  if (!c) {
    close(fd);
    return NCCL_SYSTEM_ERROR;
  }
  h->state = FT_CONNECTED;
  *send_comm = c;
  return NCCL_OK;
}

/* As TCPX: the first call only starts (the comm comes on a later call),
 * and the progress lives in the caller's handle buffer, so a retry must
 * pass that same buffer. */
static ncclResult_t ft_connect(int dev, void *handle, void **send_comm,
                               devhandle_t **send_dev) {
  (void)dev, (void)send_dev;
  ft_handle *h = handle;
  *send_comm = NULL;
  if (h->magic != FT_MAGIC) return ft_warn(NCCL_INVALID_ARGUMENT, "FakeTCPX: bad handle");
  switch (h->state) {
  case FT_FRESH: {
    ncclResult_t rc = ft_connect_start(h->id);
    if (rc != NCCL_OK) return rc;
    h->state = FT_PENDING;
    h->buffer = h;
    return NCCL_OK;
  }
  case FT_PENDING:
    if (h->buffer != h)
      return ft_violation("connect-handle", "a pending connect retried with a "
                          "copy of its handle buffer (TCPX keeps its state in "
                          "the original at %p)", h->buffer);
    return connect_now(h, send_comm);
  default:
    return ft_violation("connect-handle", "connect on a handle whose connect "
                        "already finished (a use-after-free in TCPX)");
  }
}

static ncclResult_t ft_close_recv(void *comm);

static ncclResult_t ft_accept(void *listen_comm, void **recv_comm,
                              devhandle_t **recv_dev) {
  ft_listener *l = listen_comm;
  *recv_comm = NULL;
  if (l->accepted)
    return ft_violation("one-accept", "second accept on one listen comm (TCPX "
                        "reads freed memory here)");
  if (!recv_dev || !*recv_dev)
    return ft_violation("accept-devhandle", "accept without a device handle "
                        "struct (TCPX crashes at accept or at later receives)");
  /* FAKE_TCPX_NO_RXDM=1: as TCPX without its receive-datapath manager, the
   * warning comes with one call and the failure with the next. */
  const char *no_rxdm = getenv("FAKE_TCPX_NO_RXDM");
  if (no_rxdm && *no_rxdm == '1' && l->calls++ > 0)
    return NCCL_INTERNAL_ERROR;
  if (no_rxdm && *no_rxdm == '1')
    return ft_warn(NCCL_OK, "update flow steering rule: failed against "
                   "receive-datapath-manager: unix client connect() error: 2: "
                   "No such file or directory");
  if (l->calls++ == 0) return NCCL_OK;
  int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return NCCL_OK;
  if (fd < 0) return ft_warn(NCCL_SYSTEM_ERROR, "FakeTCPX: accept: %s", strerror(errno));
  ft_comm *c = new_comm(fd, 1);
  if (c) c->pool = malloc(sizeof *c->pool);
  if (!c || !c->pool) {
    if (c) free(c);
    close(fd);
    return ft_warn(NCCL_SYSTEM_ERROR, "FakeTCPX: accept: out of memory");
  }
  ft_pool *p = c->pool;
  const char *frags = getenv("FAKE_TCPX_FRAGS"), *landing = getenv("FAKE_TCPX_HOST_LANDING");
  p->random_frags = frags && !strcmp(frags, "random");
  p->host_direct = ft_mem_is_cuda() || (landing && !strcmp(landing, "direct"));
  p->rng = fresh_id();
  p->nfree = FT_POOL_PAGES;
  for (uint32_t i = 0; i < FT_POOL_PAGES; i++) p->free_pages[i] = i;
  memset(p->npages, 0, sizeof p->npages);
  p->mem = NULL;
  if (ft_mem_open(&p->mem, *recv_dev) != NCCL_OK) {
    ft_close_recv(c);
    return NCCL_UNHANDLED_CUDA_ERROR;
  }
  l->accepted = 1;
  *recv_comm = c;
  return NCCL_OK;
}

/* ---- memory registration ------------------------------------------------------ */

static ncclResult_t ft_reg_mr(void *comm, void *data, int size, int type,
                              void **mh) {
  if (type != NCCL_PTR_HOST && (type != NCCL_PTR_CUDA || !ptr_cuda))
    return ft_violation("ptr-type", "regMr of type %d (HOST%s only)", type,
                        ptr_cuda ? " or CUDA" : "");
  if (type == NCCL_PTR_CUDA && !pci_path[0])
    return ft_violation("gpu-regmr-pci", "GPU regMr on %s, which has no PCI "
                        "path: real TCPX crashes here", device_label());
  if (type == NCCL_PTR_CUDA && (((uintptr_t)data | (unsigned)size) & (FT_PAGE - 1)))
    return ft_violation("gpu-regmr-4k", "GPU regMr of %p, %d bytes: pointer and "
                        "size must be 4 KiB multiples", data, size);
  ft_comm *c = comm;
  ft_mr *m = malloc(sizeof *m);
  if (!m) return NCCL_SYSTEM_ERROR;
  *m = (ft_mr){c->mrs, c, type, data, (size_t)size, 0};
  c->mrs = m;
  *mh = m;
  return NCCL_OK;
}

static ncclResult_t ft_dereg_mr(void *comm, void *mh) {
  ft_mr *m = mh;
  if (!m || m->comm != comm)
    return ft_violation("mr-comm", "deregMr of a handle not made on this comm");
  if (m->users && !m->comm->broken)
    return ft_violation("dereg-in-use", "deregMr while %d request(s) use the "
                        "handle", m->users);
  ft_mr **pp = &m->comm->mrs;
  while (*pp != m) pp = &(*pp)->next;
  *pp = m->next;
  free(m);
  return NCCL_OK;
}

/* ---- requests ----------------------------------------------------------------- */

static ncclResult_t take_request(ft_comm *c, ft_mr *m, const char *call,
                                 ft_req **out) {
  if (c->broken)
    return ft_warn(NCCL_SYSTEM_ERROR, "FakeTCPX: %s on a failed comm", call);
  if (!m || m->comm != c)
    return ft_violation("mr-comm", "%s with a memory handle not made on this "
                        "comm", call);
  if (c->posted - c->finished >= FT_SLOTS)
    return ft_violation("max-16-requests", "%s: %d requests already in flight "
                        "on this comm (receives count until irecvConsumed)",
                        call, FT_SLOTS);
  ft_req *r = &c->req[c->posted % FT_SLOTS];
  *r = (ft_req){.comm = c, .state = REQ_POSTED, .k = c->posted++, .mr = m};
  m->users++;
  *out = r;
  return NCCL_OK;
}

static void release(ft_req *r) {
  r->mr->users--;
  free(r->copy);
  r->copy = NULL;
  r->state = REQ_FREE;
  r->comm->finished++;
}

static ncclResult_t ft_isend(void *comm, void *data, int size, int tag,
                             void *mh, void **request) {
  (void)tag;
  ft_comm *c = comm;
  ft_mr *m = mh;
  if (size < 0) return ft_warn(NCCL_INVALID_ARGUMENT, "FakeTCPX: isend of %d bytes", size);
  ft_req *r = NULL;
  ncclResult_t rc = take_request(c, m, "isend", &r);
  if (rc != NCCL_OK) return rc;
  r->data = data;
  r->size = r->msg = (size_t)size;
  if (m->type == NCCL_PTR_CUDA && size > 0) {
    r->copy = malloc((size_t)size);
    rc = r->copy ? ft_mem_copy_from_gpu(r->copy, data, (size_t)size) : NCCL_SYSTEM_ERROR;
    if (rc != NCCL_OK) {
      release(r);
      c->posted--, c->finished--;
      return rc;
    }
    r->data = (char *)r->copy;
  }
  *request = r;
  return NCCL_OK;
}

static ncclResult_t ft_irecv(void *comm, int n, void **data, int *sizes,
                             int *tags, void **mhs, void **request) {
  (void)tags;
  ft_comm *c = comm;
  if (n != 1) return ft_violation("recv-n", "irecv with n = %d (TCPX: only 1)", n);
  if (sizes[0] < 0 || (unsigned)sizes[0] > FT_MAX_RECV)
    return ft_violation("recv-max-4MiB", "irecv of %d bytes (TCPX exits the "
                        "process beyond 4 MiB)", sizes[0]);
  ft_req *r = NULL;
  ncclResult_t rc = take_request(c, mhs[0], "irecv", &r);
  if (rc != NCCL_OK) return rc;
  r->data = data[0];
  r->size = (size_t)sizes[0];
  r->bounce = r->mr->type == NCCL_PTR_CUDA || !c->pool->host_direct;
  *request = r;
  return NCCL_OK;
}

/* ---- progress ------------------------------------------------------------------ */

/* Move bytes until done or the socket would block: 1 done, 0 not yet, -1 error. */
static int pump(int fd, int out, char *buf, size_t len, size_t *done) {
  while (*done < len) {
    ssize_t n = out ? send(fd, buf + *done, len - *done, MSG_DONTWAIT | MSG_NOSIGNAL)
                    : recv(fd, buf + *done, len - *done, MSG_DONTWAIT);
    if (n > 0) {
      *done += (size_t)n;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    return -1; /* error, or the peer closed */
  }
  return 1;
}

static int progress_send(ft_req *r) {
  int s = pump(r->comm->fd, 1, (char *)&r->msg, sizeof r->msg, &r->hdr_done);
  return s == 1 ? pump(r->comm->fd, 1, r->data, r->size, &r->done) : s;
}

static int progress_recv(ft_req *r) {
  ft_comm *c = r->comm;
  int s = pump(c->fd, 0, (char *)&r->msg, sizeof r->msg, &r->hdr_done);
  if (s != 1) return s;
  if (r->msg > r->size) {
    ft_violation("recv-size", "a %llu-byte send for a %zu-byte receive",
                 (unsigned long long)r->msg, r->size);
    return -1;
  }
  char *to = r->bounce ? (char *)c->pool->assembly : r->data;
  return pump(c->fd, 0, to, r->msg, &r->done);
}

/* Cut the received message into fragments (4 KiB at page starts, or with
 * FAKE_TCPX_FRAGS=random 2049..4096 bytes at random page offsets), lay
 * them in random free pages of the pool, and publish the descriptors in
 * shuffled order, then cnt. 0 when the pool has too few free pages now. */
static int land_in_bounce(ft_comm *c, ft_req *r, ncclResult_t *rc) {
  ft_pool *p = c->pool;
  int slot = (int)(r->k % FT_SLOTS);
  ft_load_meta *d = ft_mem_meta(p->mem)->mem[slot];
  uint64_t n = 0;
  for (size_t pos = 0; pos < r->msg; n++) {
    if (n == FT_MAX_FRAGS) {
      *rc = ft_violation("recv-max-2048-frags", "a %llu-byte receive needs more "
                         "than %d fragments (TCPX exits the process)",
                         (unsigned long long)r->msg, FT_MAX_FRAGS);
      return 1;
    }
    uint32_t len = p->random_frags ? 2049 + (uint32_t)(next_random(&p->rng) % 2048)
                                   : FT_PAGE;
    if (len > r->msg - pos) len = (uint32_t)(r->msg - pos);
    d[n] = (ft_load_meta){0, len, pos};
    pos += len;
  }
  if (n > p->nfree) return 0; /* earlier receives still hold their pages */
  uint32_t lo = UINT32_MAX, hi = 0;
  unsigned char *image = ft_mem_image(p->mem);
  for (uint64_t i = 0; i < n; i++) {
    uint32_t pick = (uint32_t)(next_random(&p->rng) % p->nfree);
    uint32_t page = p->free_pages[pick];
    p->free_pages[pick] = p->free_pages[--p->nfree];
    p->pages[slot][i] = page;
    lo = page < lo ? page : lo;
    hi = page > hi ? page : hi;
    uint32_t off = p->random_frags
                       ? (uint32_t)(next_random(&p->rng) % (FT_PAGE - d[i].len + 1)) : 0;
    d[i].src_off = page * FT_PAGE + off;
    memcpy(image + d[i].src_off, p->assembly + d[i].dst_off, d[i].len);
  }
  p->npages[slot] = (uint32_t)n;
  for (uint64_t i = n; i > 1; i--) { /* descriptors in shuffled order */
    uint64_t j = next_random(&p->rng) % i;
    ft_load_meta t = d[i - 1];
    d[i - 1] = d[j];
    d[j] = t;
  }
  *rc = n ? ft_mem_publish(p->mem, lo, hi) : NCCL_OK;
  __atomic_store_n(&ft_mem_meta(p->mem)->cnt[slot], n, __ATOMIC_RELEASE);
  return 1;
}

/* The request's bytes are all here: 1 when it may be reported done. */
static int finish(ft_req *r, ncclResult_t *rc) {
  ft_comm *c = r->comm;
  *rc = NCCL_OK;
  if (!c->is_recv) {
    release(r);
    return 1;
  }
  if (r->bounce && !land_in_bounce(c, r, rc)) return 0;
  if (!r->bounce)
    __atomic_store_n(&ft_mem_meta(c->pool->mem)->cnt[r->k % FT_SLOTS], 0,
                     __ATOMIC_RELEASE);
  r->state = REQ_DONE;
  c->reported++;
  return 1;
}

static ncclResult_t ft_test(void *request, int *done, int *sizes) {
  ft_req *r = request;
  ft_comm *c = r->comm;
  *done = 0;
  if (sizes) *sizes = INT_MIN; /* TCPX never reports sizes: reading one is a bug */
  if (c->broken) return ft_warn(NCCL_SYSTEM_ERROR, "FakeTCPX: test on a failed comm");
  if (r->state == REQ_DONE)
    return ft_violation("test-after-done", "test on receive %llu, already "
                        "reported done (TCPX says not done, forever)",
                        (unsigned long long)r->k);
  uint64_t oldest = c->is_recv ? c->reported : c->finished;
  if (r->state != REQ_POSTED || r->k != oldest)
    return ft_violation("test-order", "test on request %llu, but the oldest "
                        "is %llu", (unsigned long long)r->k,
                        (unsigned long long)oldest);
  int s = c->is_recv ? progress_recv(r) : progress_send(r);
  if (s < 0) {
    c->broken = 1; /* its requests end here: closing it is allowed now */
    return ft_warn(NCCL_REMOTE_ERROR, "FakeTCPX: connection closed or reset "
                   "by the peer");
  }
  ncclResult_t rc = NCCL_OK;
  if (s == 1 && finish(r, &rc) && rc == NCCL_OK) *done = 1;
  return rc;
}

static ncclResult_t ft_irecv_consumed(void *comm, int n, void *request) {
  ft_comm *c = comm;
  ft_req *r = request;
  if (n != 1) return ft_violation("recv-n", "irecvConsumed with n = %d", n);
  if (c->broken) return ft_warn(NCCL_SYSTEM_ERROR, "FakeTCPX: irecvConsumed on a failed comm");
  if (!r || r->comm != c || r->state != REQ_DONE || r->k != c->finished)
    return ft_violation("irecv-consumed", "irecvConsumed out of order or before "
                        "done (request %llu, next to consume %llu)",
                        r ? (unsigned long long)r->k : 0ull,
                        (unsigned long long)c->finished);
  ft_pool *p = c->pool;
  int slot = (int)(r->k % FT_SLOTS);
  for (uint32_t i = 0; i < p->npages[slot]; i++) p->free_pages[p->nfree++] = p->pages[slot][i];
  p->npages[slot] = 0;
  release(r);
  return NCCL_OK;
}

static ncclResult_t ft_iflush(void *comm, int n, void **data, int *sizes,
                              void **mhs, void **request) {
  (void)comm, (void)n, (void)data, (void)sizes, (void)mhs, (void)request;
  return ft_violation("no-iflush", "iflush called (TCPX crashes on it)");
}

static ncclResult_t ft_get_device_mr(void *comm, void *mh, void **dptr) {
  (void)comm, (void)mh, (void)dptr; /* does nothing, like TCPX */
  return NCCL_OK;
}

/* ---- closing ---------------------------------------------------------------------- */

/* Frees everything either way; a comm closed with requests in flight is a
 * violation (TCPX and other plugins crash in their close then), unless a
 * test already failed on it (NCCL closes such comms when it aborts). */
static ncclResult_t close_comm(ft_comm *c) {
  if (!c) return NCCL_OK;
  ncclResult_t rc = NCCL_OK;
  if (c->posted != c->finished && !c->broken)
    rc = ft_violation("close-in-flight", "close%s with %llu request(s) in flight",
                      c->is_recv ? "Recv" : "Send",
                      (unsigned long long)(c->posted - c->finished));
  for (int i = 0; i < FT_SLOTS; i++) free(c->req[i].copy);
  while (c->mrs) { /* handles never deregistered die with their comm */
    ft_mr *m = c->mrs;
    c->mrs = m->next;
    free(m);
  }
  if (c->pool) ft_mem_close(c->pool->mem);
  free(c->pool);
  close(c->fd);
  free(c);
  return rc;
}

static ncclResult_t ft_close_send(void *comm) { return close_comm(comm); }
static ncclResult_t ft_close_recv(void *comm) { return close_comm(comm); }

static ncclResult_t ft_close_listen(void *comm) {
  ft_listener *l = comm;
  close(l->fd);
  free(l);
  return NCCL_OK;
}

ncclNet_v7_t ncclNetPlugin_v7 = {
    .name = "FakeTCPX_v7",
    .init = ft_init,
    .devices = ft_devices,
    .getProperties = ft_props,
    .listen = ft_listen,
    .connect = ft_connect,
    .accept = ft_accept,
    .regMr = ft_reg_mr,
    .regMrDmaBuf = NULL,
    .deregMr = ft_dereg_mr,
    .isend = ft_isend,
    .irecv = ft_irecv,
    .iflush = ft_iflush,
    .test = ft_test,
    .closeSend = ft_close_send,
    .closeRecv = ft_close_recv,
    .closeListen = ft_close_listen,
    .getDeviceMr = ft_get_device_mr,
    .irecvConsumed = ft_irecv_consumed,
};
