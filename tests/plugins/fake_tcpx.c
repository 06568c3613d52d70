/* FakeTCPX: a test-only NCCL net plugin (ncclNetPlugin_v7,
 * "FakeTCPX_v7") that behaves like GPUDirect-TCPX's receive side, over one
 * plain TCP socket per comm on loopback (or $FAKE_TCPX_ADDR), so that the
 * engine's device-unpack path can run on any GPU box.
 *
 * What it copies from TCPX (NET_ABI.md): links libcuda.so.1 and exits the
 * process from init when cuInit fails; ptrSupport HOST|CUDA, maxRecvs 1,
 * UNPACK device handle v7; 16 requests per comm (the 17th is an error),
 * receive slots held until irecvConsumed; test only on the oldest request,
 * never writes sizes, done only once; one accept per listen comm; a GPU
 * regMr needs a 4 KiB-aligned pointer; iflush is an error. A GPU receive
 * lands in the plugin's bounce buffer as fragments in shuffled pages
 * (4 KiB at page starts, or with FAKE_TCPX_FRAGS=random 2049..4096 bytes at
 * random page offsets), and test writes the descriptors and cnt[slot]
 * before it says done. Sends from GPU memory are copied to the host with
 * cuMemcpyDtoH (it is a test plugin). */
#include <arpa/inet.h>
#include <cuda.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nccl_net_abi.h"

#define FT_SLOTS 16
#define FT_MAX_FRAGS 2048
#define FT_PAGE 4096
#define FT_MAX_MSG (4u << 20)
#define FT_REGION_PAGES 2048 /* each slot's own 8 MiB of the bounce buffer */
#define FT_REGION_BYTES ((size_t)FT_REGION_PAGES * FT_PAGE)
#define FT_MAGIC 0x5854464bu

typedef struct __attribute__((aligned(16))) {
  uint32_t src_off, len;
  uint64_t dst_off;
} ft_load_meta;
typedef struct {
  ft_load_meta mem[FT_SLOTS][FT_MAX_FRAGS];
  uint64_t cnt[FT_SLOTS];
} ft_unpack_meta;
typedef struct {
  void *meta, *bounce;
  uint64_t head;
} ft_target;

typedef struct { /* the 128-byte handle; connect keeps its progress here */
  uint32_t magic, pending;
  struct sockaddr_in addr;
} ft_handle;

typedef struct { int fd, calls, accepted; } ft_listener;
typedef struct { int type; char *base; size_t size; } ft_mr;

struct ft_comm;
typedef struct {
  struct ft_comm *comm;
  int used, reported, cuda;
  uint64_t k;
  char *data;
  size_t size;            /* send: bytes; receive: posted size */
  uint64_t msg;           /* the 8-byte header: the sender's size */
  size_t hdr_done, done;  /* progress through header and payload */
  unsigned char *copy;    /* send from GPU: host copy */
} ft_req;

typedef struct ft_comm {
  int fd, is_recv;
  uint64_t posted, finished, reported;
  ft_req req[FT_SLOTS];
  CUcontext ctx;
  int retained;
  /* receive side with a device handle */
  int gpu_ready, random_frags;
  uint64_t rng;
  ft_unpack_meta *meta;
  CUdeviceptr bounce, target;
  unsigned char *image, *assembly;
  uint32_t pages[FT_REGION_PAGES];
} ft_comm;

static ncclDebugLogger_t ft_logger;

static ncclResult_t warn(ncclResult_t rc, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (ft_logger) ft_logger(NCCL_LOG_WARN, NCCL_NET, __FILE__, __LINE__, "%s", msg);
  return rc;
}

static uint64_t next_random(uint64_t *x) {
  *x ^= *x >> 12;
  *x ^= *x << 25;
  *x ^= *x >> 27;
  return *x * 0x2545F4914F6CDD1Dull;
}

/* ---- CUDA context --------------------------------------------------------- */

/* The caller's current context, else GPU 0's primary one (as TCPX uses the
 * current device). */
static ncclResult_t pick_context(ft_comm *c) {
  if (cuCtxGetCurrent(&c->ctx) == CUDA_SUCCESS && c->ctx) return NCCL_OK;
  CUdevice dev;
  if (cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
      cuDevicePrimaryCtxRetain(&c->ctx, dev) != CUDA_SUCCESS)
    return warn(NCCL_UNHANDLED_CUDA_ERROR, "FakeTCPX: no CUDA context");
  c->retained = 1;
  return NCCL_OK;
}

static int enter(ft_comm *c) { return cuCtxPushCurrent(c->ctx) == CUDA_SUCCESS; }
static void leave(void) {
  CUcontext popped;
  cuCtxPopCurrent(&popped);
}

/* ---- init and properties --------------------------------------------------- */

static ncclResult_t ft_init(ncclDebugLogger_t logger) {
  if (!logger) return NCCL_INTERNAL_ERROR;
  ft_logger = logger;
  int n = 0;
  if (cuInit(0) != CUDA_SUCCESS) {
    fprintf(stderr, "FakeTCPX: cuInit failed; exiting like GPUDirect-TCPX\n");
    exit(1);
  }
  if (cuDeviceGetCount(&n) != CUDA_SUCCESS || n == 0)
    return warn(NCCL_INTERNAL_ERROR, "FakeTCPX: no cuDevices found");
  return NCCL_OK;
}

static ncclResult_t ft_devices(int *n) {
  *n = 1;
  return NCCL_OK;
}

static ncclResult_t ft_props(int dev, ncclNetProperties_v7_t *p) {
  if (dev != 0) return warn(NCCL_INVALID_ARGUMENT, "FakeTCPX: no device %d", dev);
  memset(p, 0, sizeof *p);
  p->name = "lo";
  p->ptrSupport = NCCL_PTR_HOST | NCCL_PTR_CUDA;
  p->speed = 100000;
  p->maxComms = 65536;
  p->maxRecvs = 1;
  p->netDeviceType = NCCL_NET_DEVICE_UNPACK;
  p->netDeviceVersion = NCCL_NET_DEVICE_UNPACK_VERSION;
  return NCCL_OK;
}

/* ---- connection set-up ------------------------------------------------------ */

static ncclResult_t ft_listen(int dev, void *handle, void **listen_comm) {
  (void)dev;
  const char *addr = getenv("FAKE_TCPX_ADDR");
  ft_handle *h = handle;
  memset(h, 0, NCCL_NET_HANDLE_MAXSIZE);
  h->magic = FT_MAGIC;
  h->addr.sin_family = AF_INET;
  if (inet_pton(AF_INET, addr && *addr ? addr : "127.0.0.1", &h->addr.sin_addr) != 1)
    return warn(NCCL_INVALID_ARGUMENT, "FakeTCPX: bad FAKE_TCPX_ADDR");
  socklen_t len = sizeof h->addr;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&h->addr, len) ||
      listen(fd, 4) || getsockname(fd, (struct sockaddr *)&h->addr, &len)) {
    if (fd >= 0) close(fd);
    return warn(NCCL_SYSTEM_ERROR, "FakeTCPX: listen: %s", strerror(errno));
  }
  ft_listener *l = calloc(1, sizeof *l);
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

/* The first call only marks the handle pending ("call again"), as TCPX's
 * connect keeps its state in the caller's handle buffer. */
static ncclResult_t ft_connect(int dev, void *handle, void **send_comm,
                               devhandle_t **send_dev) {
  (void)dev, (void)send_dev;
  ft_handle *h = handle;
  *send_comm = NULL;
  if (h->magic != FT_MAGIC) return warn(NCCL_INVALID_ARGUMENT, "FakeTCPX: bad handle");
  if (!h->pending) {
    h->pending = 1;
    return NCCL_OK;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&h->addr, sizeof h->addr)) {
    if (fd >= 0) close(fd);
    return warn(NCCL_SYSTEM_ERROR, "FakeTCPX: connect: %s", strerror(errno));
  }
  ft_comm *c = new_comm(fd, 0);
  if (!c || pick_context(c) != NCCL_OK) {
    close(fd);
    free(c);
    return NCCL_SYSTEM_ERROR;
  }
  h->pending = 0;
  *send_comm = c;
  return NCCL_OK;
}

/* The receive side's GPU state and the caller's device handle. */
static ncclResult_t setup_unpack(ft_comm *c, devhandle_t *dh) {
  const char *frags = getenv("FAKE_TCPX_FRAGS");
  c->random_frags = frags && !strcmp(frags, "random");
  c->rng = 0x1234567ull ^ (uint64_t)time(NULL);
  CUdeviceptr meta_dev;
  ft_target t;
  c->image = malloc(FT_REGION_BYTES);
  c->assembly = malloc(FT_MAX_MSG);
  if (!c->image || !c->assembly || pick_context(c) != NCCL_OK || !enter(c))
    return warn(NCCL_SYSTEM_ERROR, "FakeTCPX: accept: no memory or context");
  CUresult r = cuMemHostAlloc((void **)&c->meta, sizeof *c->meta,
                              CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE);
  if (r == CUDA_SUCCESS) {
    memset(c->meta, 0, sizeof *c->meta);
    r = cuMemHostGetDevicePointer(&meta_dev, c->meta, 0);
  }
  if (r == CUDA_SUCCESS) r = cuMemAlloc(&c->bounce, FT_SLOTS * FT_REGION_BYTES);
  if (r == CUDA_SUCCESS) r = cuMemAlloc(&c->target, sizeof t);
  t = (ft_target){(void *)(uintptr_t)meta_dev, (void *)(uintptr_t)c->bounce,
                  UINT64_MAX};
  if (r == CUDA_SUCCESS) r = cuMemcpyHtoD(c->target, &t, sizeof t);
  if (r == CUDA_SUCCESS) r = cuCtxSynchronize();
  leave();
  if (r != CUDA_SUCCESS)
    return warn(NCCL_UNHANDLED_CUDA_ERROR, "FakeTCPX: accept: CUDA error %d", r);
  *dh = (devhandle_t){NCCL_NET_DEVICE_UNPACK, NCCL_NET_DEVICE_UNPACK_VERSION,
                      (void *)(uintptr_t)c->target, sizeof t, 1};
  c->gpu_ready = 1;
  return NCCL_OK;
}

static ncclResult_t ft_close_recv(void *comm);

/* Like TCPX: the comm comes back only on a later call; one accept per
 * listen comm; `&p` with p == NULL is refused (TCPX crashes on it). */
static ncclResult_t ft_accept(void *listen_comm, void **recv_comm,
                              devhandle_t **recv_dev) {
  ft_listener *l = listen_comm;
  *recv_comm = NULL;
  if (l->accepted)
    return warn(NCCL_INTERNAL_ERROR, "FakeTCPX: second accept on one listen "
                "comm (TCPX reads freed memory here)");
  if (recv_dev && !*recv_dev)
    return warn(NCCL_INVALID_ARGUMENT, "FakeTCPX: accept given a NULL device "
                "handle struct (TCPX crashes on it)");
  if (l->calls++ == 0) return NCCL_OK;
  int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return NCCL_OK;
  if (fd < 0) return warn(NCCL_SYSTEM_ERROR, "FakeTCPX: accept: %s", strerror(errno));
  ft_comm *c = new_comm(fd, 1);
  if (!c) return NCCL_SYSTEM_ERROR;
  if (recv_dev && setup_unpack(c, *recv_dev) != NCCL_OK) {
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
  (void)comm;
  if (type == NCCL_PTR_CUDA && ((uintptr_t)data & (FT_PAGE - 1)))
    return warn(NCCL_INTERNAL_ERROR, "FakeTCPX: regMr: GPU buffer %p is not "
                "4 KiB aligned", data);
  ft_mr *m = malloc(sizeof *m);
  if (!m) return NCCL_SYSTEM_ERROR;
  *m = (ft_mr){type, data, (size_t)size};
  *mh = m;
  return NCCL_OK;
}

static ncclResult_t ft_dereg_mr(void *comm, void *mh) {
  (void)comm;
  free(mh);
  return NCCL_OK;
}

/* ---- requests ----------------------------------------------------------------- */

/* A free request, or the 17th-request error. */
static ncclResult_t take_request(ft_comm *c, const char *call, ft_req **out) {
  if (c->posted - c->finished >= FT_SLOTS)
    return warn(NCCL_INTERNAL_ERROR, "FakeTCPX: %s: %d requests already in "
                "flight on this comm", call, FT_SLOTS);
  ft_req *r = &c->req[c->posted % FT_SLOTS];
  *r = (ft_req){.comm = c, .used = 1, .k = c->posted++};
  *out = r;
  return NCCL_OK;
}

static ncclResult_t ft_isend(void *comm, void *data, int size, int tag,
                             void *mh, void **request) {
  (void)tag;
  ft_comm *c = comm;
  ft_mr *m = mh;
  if (!m || size < 0 || (unsigned)size > FT_MAX_MSG)
    return warn(NCCL_INVALID_ARGUMENT, "FakeTCPX: isend of %d bytes (mh %p)",
                size, mh);
  ft_req *r;
  ncclResult_t rc = take_request(c, "isend", &r);
  if (rc != NCCL_OK) return rc;
  r->data = data;
  r->size = (size_t)size;
  r->msg = (uint64_t)size;
  if (m->type == NCCL_PTR_CUDA && size > 0) {
    r->copy = malloc((size_t)size);
    CUresult e = CUDA_ERROR_OUT_OF_MEMORY;
    if (r->copy && enter(c)) {
      e = cuMemcpyDtoH(r->copy, (CUdeviceptr)(uintptr_t)data, (size_t)size);
      leave();
    }
    if (e != CUDA_SUCCESS) {
      free(r->copy);
      r->used = 0;
      c->posted--;
      return warn(NCCL_UNHANDLED_CUDA_ERROR, "FakeTCPX: isend: CUDA error %d", e);
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
  if (n != 1) return warn(NCCL_INTERNAL_ERROR, "FakeTCPX: irecv: n = %d (only 1)", n);
  ft_mr *m = mhs[0];
  if (!m || sizes[0] < 0 || (unsigned)sizes[0] > FT_MAX_MSG)
    return warn(NCCL_INTERNAL_ERROR, "FakeTCPX: irecv of %d bytes (TCPX exits "
                "beyond 4 MiB)", sizes[0]);
  int cuda = m->type == NCCL_PTR_CUDA;
  if (cuda && !c->gpu_ready)
    return warn(NCCL_INTERNAL_ERROR, "FakeTCPX: GPU irecv on a comm accepted "
                "without a device handle (TCPX crashes here)");
  ft_req *r;
  ncclResult_t rc = take_request(c, "irecv", &r);
  if (rc != NCCL_OK) return rc;
  r->data = data[0];
  r->size = (size_t)sizes[0];
  r->cuda = cuda;
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
    warn(NCCL_INTERNAL_ERROR, "FakeTCPX: %llu-byte message for a %zu-byte "
         "receive", (unsigned long long)r->msg, r->size);
    return -1;
  }
  char *to = r->cuda ? (char *)c->assembly : r->data;
  return pump(c->fd, 0, to, r->msg, &r->done);
}

/* Cut the message into fragments in shuffled pages of its slot's bounce
 * region, upload the region, then publish descriptors (shuffled) and cnt. */
static ncclResult_t land_in_bounce(ft_comm *c, ft_req *r) {
  int slot = (int)(r->k % FT_SLOTS);
  ft_load_meta *d = c->meta->mem[slot];
  for (uint32_t i = 0; i < FT_REGION_PAGES; i++) c->pages[i] = i;
  uint64_t n = 0;
  for (size_t pos = 0; pos < r->msg; n++) {
    uint32_t pick = n + (uint32_t)(next_random(&c->rng) % (FT_REGION_PAGES - n));
    uint32_t page = c->pages[pick];
    c->pages[pick] = c->pages[n];
    uint32_t len = c->random_frags ? 2049 + (uint32_t)(next_random(&c->rng) % 2048)
                                   : FT_PAGE;
    if (len > r->msg - pos) len = (uint32_t)(r->msg - pos);
    uint32_t off = c->random_frags
                       ? (uint32_t)(next_random(&c->rng) % (FT_PAGE - len + 1)) : 0;
    memcpy(c->image + (size_t)page * FT_PAGE + off, c->assembly + pos, len);
    d[n] = (ft_load_meta){(uint32_t)(slot * FT_REGION_BYTES) + page * FT_PAGE + off,
                          len, pos};
    pos += len;
  }
  for (uint64_t i = n; i > 1; i--) { /* descriptors in shuffled order */
    uint64_t j = next_random(&c->rng) % i;
    ft_load_meta t = d[i - 1];
    d[i - 1] = d[j];
    d[j] = t;
  }
  CUresult e = CUDA_SUCCESS;
  if (n > 0 && enter(c)) {
    e = cuMemcpyHtoD(c->bounce + (size_t)slot * FT_REGION_BYTES, c->image,
                     FT_REGION_BYTES);
    /* From pageable memory the copy may return before its DMA lands; the
     * NIC's would have landed before test says done. */
    if (e == CUDA_SUCCESS) e = cuCtxSynchronize();
    leave();
  }
  if (e != CUDA_SUCCESS)
    return warn(NCCL_UNHANDLED_CUDA_ERROR, "FakeTCPX: bounce upload: CUDA error %d", e);
  __atomic_store_n(&c->meta->cnt[slot], n, __ATOMIC_RELEASE);
  return NCCL_OK;
}

static ncclResult_t finish(ft_req *r) {
  ft_comm *c = r->comm;
  r->reported = 1;
  if (!c->is_recv) {
    free(r->copy);
    r->copy = NULL;
    r->used = 0;
    c->finished++;
    return NCCL_OK;
  }
  c->reported++;
  if (r->cuda) return land_in_bounce(c, r);
  if (c->gpu_ready) __atomic_store_n(&c->meta->cnt[r->k % FT_SLOTS], 0, __ATOMIC_RELEASE);
  return NCCL_OK;
}

/* Only the oldest request may be tested; sizes are never written. */
static ncclResult_t ft_test(void *request, int *done, int *sizes) {
  (void)sizes;
  ft_req *r = request;
  ft_comm *c = r->comm;
  *done = 0;
  if (r->reported) return NCCL_OK; /* done once, then 0 */
  uint64_t oldest = c->is_recv ? c->reported : c->finished;
  if (!r->used || r->k != oldest)
    return warn(NCCL_INTERNAL_ERROR, "FakeTCPX: test on request %llu, but "
                "the oldest is %llu", (unsigned long long)r->k,
                (unsigned long long)oldest);
  int s = c->is_recv ? progress_recv(r) : progress_send(r);
  if (s < 0) return warn(NCCL_SYSTEM_ERROR, "FakeTCPX: connection lost or refused");
  if (s == 0) return NCCL_OK;
  ncclResult_t rc = finish(r);
  if (rc == NCCL_OK) *done = 1;
  return rc;
}

static ncclResult_t ft_irecv_consumed(void *comm, int n, void *request) {
  ft_comm *c = comm;
  ft_req *r = request;
  if (n != 1) return warn(NCCL_INTERNAL_ERROR, "FakeTCPX: irecvConsumed n = %d", n);
  if (!r || r->comm != c || !r->used || r->k != c->finished || !r->reported)
    return warn(NCCL_INTERNAL_ERROR, "FakeTCPX: irecvConsumed out of order or "
                "before done (request %llu, next to consume %llu)",
                r ? (unsigned long long)r->k : 0ull,
                (unsigned long long)c->finished);
  r->used = 0;
  c->finished++;
  return NCCL_OK;
}

static ncclResult_t ft_iflush(void *comm, int n, void **data, int *sizes,
                              void **mhs, void **request) {
  (void)comm, (void)n, (void)data, (void)sizes, (void)mhs, (void)request;
  return warn(NCCL_INTERNAL_ERROR, "FakeTCPX: iflush must not be called (TCPX "
              "crashes on it)");
}

static ncclResult_t ft_get_device_mr(void *comm, void *mh, void **dptr) {
  (void)comm, (void)mh, (void)dptr; /* does nothing, like TCPX */
  return NCCL_OK;
}

/* ---- closing ---------------------------------------------------------------------- */

static void free_gpu_state(ft_comm *c) {
  if (c->ctx && enter(c)) {
    if (c->meta) cuMemFreeHost(c->meta);
    if (c->bounce) cuMemFree(c->bounce);
    if (c->target) cuMemFree(c->target);
    leave();
  }
  if (c->retained) {
    CUdevice dev;
    if (cuDeviceGet(&dev, 0) == CUDA_SUCCESS) cuDevicePrimaryCtxRelease(dev);
  }
}

static ncclResult_t close_comm(ft_comm *c) {
  if (!c) return NCCL_OK;
  for (int i = 0; i < FT_SLOTS; i++) free(c->req[i].copy);
  free_gpu_state(c);
  free(c->image);
  free(c->assembly);
  close(c->fd);
  free(c);
  return NCCL_OK;
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
