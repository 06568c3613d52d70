/* Same-host transfers named after CUDA IPC (UCCL's *_ipc calls).
 *
 * An info blob describes a buffer for another process on this host: for
 * GPU memory a CUDA IPC handle (the peer maps it and copies device to
 * device, no bytes cross a socket); for host memory an ordinary exposure
 * (the peer's write/read goes through the connection's one-sided lane).
 * send_ipc/recv_ipc are built on that: the receiver advertises its buffer
 * to the sender in a message, the sender writes into it and says done. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cudadrv.h"
#include "engine.h"
#include "ipc.h"

#define INFO_MAGIC 0x49585054u /* "TPXI" */
#define INFO_HOST 1
#define INFO_CUDA 2
#define INFO_HDR 16

_Static_assert(INFO_HDR + sizeof(gpu_ipc_blob) <= P2P_IPC_INFO_SIZE, "info fits");
_Static_assert(INFO_HDR + P2P_DESC_SIZE <= P2P_IPC_INFO_SIZE, "info fits");

typedef struct info_fields {
  int kind;
  uint64_t size;
  const uint8_t *payload;
} info_fields;

static void info_encode(int kind, uint64_t size, const void *payload, size_t len,
                        uint8_t out[P2P_IPC_INFO_SIZE]) {
  memset(out, 0, P2P_IPC_INFO_SIZE);
  uint32_t magic = INFO_MAGIC;
  uint16_t version = 1, k = (uint16_t)kind;
  memcpy(out, &magic, 4);
  memcpy(out + 4, &version, 2);
  memcpy(out + 6, &k, 2);
  memcpy(out + 8, &size, 8);
  memcpy(out + INFO_HDR, payload, len);
}

static int info_decode(const uint8_t *in, info_fields *f) {
  uint32_t magic;
  uint16_t version, k;
  memcpy(&magic, in, 4);
  memcpy(&version, in + 4, 2);
  memcpy(&k, in + 6, 2);
  memcpy(&f->size, in + 8, 8);
  if (magic != INFO_MAGIC || version != 1 || (k != INFO_HOST && k != INFO_CUDA))
    return ep_err(P2P_EINVAL, "not a tcpx-p2p IPC info blob (from advertise_ipc)");
  f->kind = k;
  f->payload = in + INFO_HDR;
  return P2P_OK;
}

static int is_device_ptr(const void *p) {
  int kind = GPU_MEM_HOST, dev = -1;
  return gpu_ptr_classify(p, &kind, &dev) == NET_OK && kind == GPU_MEM_DEVICE;
}

/* ---- the endpoint's IPC copy engine -------------------------------------------- */

/* The copy engine of `device` (the GPU of our local buffer). */
static int ipc_cache(p2p_endpoint *ep, int device, gpu_cuda **cuda,
                     gpu_ipc_cache **out) {
  int rc = gpu_cuda_load(cuda);
  if (rc != NET_OK) return ep_err(P2P_ENOTSUP, "%s", err_get());
  if (device < 0 || device >= GPU_MAX_DEVICES) device = ep->opts.gpu_index;
  if (device < 0 || device >= GPU_MAX_DEVICES)
    return ep_err(P2P_ENOTSUP, "CUDA IPC: no GPU for this buffer");
  pthread_mutex_lock(&ep->ipc_lock);
  gpu_ipc_cache **slot = (gpu_ipc_cache **)&ep->ipc_cache[device];
  if (!*slot && gpu_ipc_cache_open(*cuda, device, slot) != NET_OK)
    rc = ep_err(P2P_ENOTSUP, "CUDA IPC on GPU %d: %s", device, err_get());
  *out = *slot;
  pthread_mutex_unlock(&ep->ipc_lock);
  return rc;
}

/* Copy between our `local` buffer and the peer allocation in `blob`. */
static int cuda_copy(p2p_endpoint *ep, void *local, size_t size,
                     const gpu_ipc_blob *blob, int to_peer) {
  gpu_cuda *cuda = NULL;
  gpu_ipc_cache *cache = NULL;
  int kind = GPU_MEM_HOST, device = -1;
  gpu_ptr_classify(local, &kind, &device);
  int rc = ipc_cache(ep, device, &cuda, &cache);
  void *peer = NULL;
  if (rc == P2P_OK && gpu_ipc_map(cache, blob, size, &peer) != NET_OK)
    rc = ep_err(P2P_EREFUSED, "%s", err_get());
  if (rc != P2P_OK || size == 0) return rc;
  uint64_t ticket;
  if (gpu_ipc_copy(cache, to_peer ? peer : local, to_peer ? local : peer, size,
                   &ticket) != NET_OK ||
      gpu_ipc_copy_wait(cache, ticket) != NET_OK)
    return ep_err(P2P_ENOTSUP, "%s", err_get());
  return P2P_OK;
}

void ipc_close(p2p_endpoint *ep) {
  for (int d = 0; d < GPU_MAX_DEVICES; d++)
    if (ep->ipc_cache[d]) gpu_ipc_cache_close(ep->ipc_cache[d]);
  memset(ep->ipc_cache, 0, sizeof ep->ipc_cache);
}

/* ---- host memory through the connection ----------------------------------------- */

/* Run one op on a buffer that needs no registration by the caller. */
static int run_private(p2p_endpoint *ep, uint64_t conn_id, p2p_op_kind kind,
                       void *ptr, size_t size, const uint8_t *desc,
                       size_t *received) {
  uint64_t mr;
  int rc = p2p_reg(ep, ptr, size, &mr);
  if (rc != P2P_OK) return rc;
  p2p_iov v = {mr, ptr, size, desc};
  uint64_t id;
  rc = p2p_post(ep, conn_id, kind, &v, 1, &id);
  if (rc == P2P_OK) rc = p2p_wait(ep, id, -1, received);
  char saved[P2P_ERR_MAX];
  snprintf(saved, sizeof saved, "%s", err_get());
  p2p_dereg(ep, mr);
  err_set(rc, "%s", saved);
  return rc;
}

/* ---- the calls ---------------------------------------------------------------- */

/* *mr_out: the region made for a host buffer (0 for GPU memory). */
static int advertise(p2p_endpoint *ep, uint64_t conn_id, void *ptr, size_t size,
                     uint8_t info[P2P_IPC_INFO_SIZE], uint64_t *mr_out) {
  *mr_out = 0;
  if (!ep || !info || (!ptr && size))
    return ep_err(P2P_EINVAL, "advertise_ipc: NULL argument");
  if (is_device_ptr(ptr)) {
    gpu_cuda *cuda;
    gpu_ipc_blob blob;
    if (gpu_cuda_load(&cuda) != NET_OK || gpu_ipc_export(cuda, ptr, &blob) != NET_OK)
      return ep_err(P2P_ENOTSUP, "advertise_ipc: %s", err_get());
    info_encode(INFO_CUDA, size, &blob, sizeof blob, info);
    return P2P_OK;
  }
  /* Host memory: an exposure of a region of its own. */
  uint8_t desc[P2P_DESC_SIZE];
  int rc = p2p_reg(ep, ptr, size, mr_out);
  if (rc == P2P_OK) rc = p2p_advertise(ep, conn_id, *mr_out, ptr, size, desc);
  if (rc != P2P_OK) return err_wrap(rc, "advertise_ipc");
  info_encode(INFO_HOST, size, desc, sizeof desc, info);
  return P2P_OK;
}

/* The region of a host buffer stays until the endpoint goes: the peer may
 * use the info any number of times (as UCCL's). */
int p2p_advertise_ipc(p2p_endpoint *ep, uint64_t conn_id, void *ptr, size_t size,
                      uint8_t info[P2P_IPC_INFO_SIZE]) {
  uint64_t mr;
  return advertise(ep, conn_id, ptr, size, info, &mr);
}

static int access_ipc(p2p_endpoint *ep, uint64_t conn_id, void *ptr, size_t size,
                      const uint8_t *info, int is_write) {
  info_fields f = {0};
  if (!ep || !info || (!ptr && size)) return ep_err(P2P_EINVAL, "NULL argument");
  int rc = info_decode(info, &f);
  if (rc != P2P_OK) return rc;
  if (size > f.size)
    return ep_err(P2P_EINVAL, "%zu bytes into an advertised buffer of %llu",
                  size, (unsigned long long)f.size);
  if (f.kind == INFO_CUDA) {
    gpu_ipc_blob blob;
    memcpy(&blob, f.payload, sizeof blob);
    return cuda_copy(ep, ptr, size, &blob, is_write);
  }
  return run_private(ep, conn_id, is_write ? P2P_OP_WRITE : P2P_OP_READ, ptr,
                     size, f.payload, NULL);
}

int p2p_write_ipc(p2p_endpoint *ep, uint64_t conn_id, const void *ptr,
                  size_t size, const uint8_t info[P2P_IPC_INFO_SIZE]) {
  int rc = access_ipc(ep, conn_id, (void *)ptr, size, info, 1);
  return rc == P2P_OK ? rc : err_wrap(rc, "write_ipc");
}

int p2p_read_ipc(p2p_endpoint *ep, uint64_t conn_id, void *ptr, size_t size,
                 const uint8_t info[P2P_IPC_INFO_SIZE]) {
  int rc = access_ipc(ep, conn_id, ptr, size, info, 0);
  return rc == P2P_OK ? rc : err_wrap(rc, "read_ipc");
}

/* The sender's "done" message: status and bytes written. */
typedef struct ipc_done {
  int64_t status;
  uint64_t size;
} ipc_done;

int p2p_recv_ipc(p2p_endpoint *ep, uint64_t conn_id, void *ptr, size_t size) {
  uint8_t info[P2P_IPC_INFO_SIZE];
  ipc_done done = {P2P_EPEER, 0};
  uint64_t mr = 0; /* a host buffer's region lives for this call only */
  int rc = advertise(ep, conn_id, ptr, size, info, &mr);
  if (rc == P2P_OK) rc = run_private(ep, conn_id, P2P_OP_SEND, info, sizeof info, NULL, NULL);
  if (rc == P2P_OK) rc = run_private(ep, conn_id, P2P_OP_RECV, &done, sizeof done, NULL, NULL);
  if (mr) {
    char saved[P2P_ERR_MAX];
    snprintf(saved, sizeof saved, "%s", err_get());
    p2p_dereg(ep, mr);
    err_set(rc, "%s", saved);
  }
  if (rc == P2P_OK && done.status != P2P_OK)
    rc = ep_err((int)done.status, "the sender failed to write (%s)",
                p2p_strerror((int)done.status));
  return rc == P2P_OK ? rc : err_wrap(rc, "recv_ipc");
}

int p2p_send_ipc(p2p_endpoint *ep, uint64_t conn_id, const void *ptr, size_t size) {
  uint8_t info[P2P_IPC_INFO_SIZE];
  int rc = run_private(ep, conn_id, P2P_OP_RECV, info, sizeof info, NULL, NULL);
  if (rc != P2P_OK) return err_wrap(rc, "send_ipc");
  ipc_done done = {p2p_write_ipc(ep, conn_id, ptr, size, info), size};
  char saved[P2P_ERR_MAX];
  snprintf(saved, sizeof saved, "%s", err_get());
  rc = run_private(ep, conn_id, P2P_OP_SEND, &done, sizeof done, NULL, NULL);
  if (done.status != P2P_OK) return err_set((int)done.status, "send_ipc: %s", saved);
  return rc == P2P_OK ? rc : err_wrap(rc, "send_ipc");
}

/* ---- asynchronous: the blocking call on a worker thread ------------------------ */

typedef struct ipc_job {
  op *o;
  p2p_ipc_kind kind;
  uint64_t conn_id;
  void *ptr;
  size_t size;
  uint8_t info[P2P_IPC_INFO_SIZE];
} ipc_job;

static void *ipc_worker(void *arg) {
  ipc_job *job = arg;
  p2p_endpoint *ep = job->o->c->ep;
  int rc;
  switch (job->kind) {
  case P2P_IPC_SEND: rc = p2p_send_ipc(ep, job->conn_id, job->ptr, job->size); break;
  case P2P_IPC_RECV: rc = p2p_recv_ipc(ep, job->conn_id, job->ptr, job->size); break;
  case P2P_IPC_WRITE: rc = p2p_write_ipc(ep, job->conn_id, job->ptr, job->size, job->info); break;
  default: rc = p2p_read_ipc(ep, job->conn_id, job->ptr, job->size, job->info); break;
  }
  op_finish(job->o, rc, err_get());
  free(job);
  pthread_mutex_lock(&ep->ipc_lock);
  ep->ipc_workers--;
  pthread_cond_broadcast(&ep->ipc_cond);
  pthread_mutex_unlock(&ep->ipc_lock);
  return NULL;
}

int p2p_post_ipc(p2p_endpoint *ep, uint64_t conn_id, p2p_ipc_kind kind, void *ptr,
                 size_t size, const uint8_t *info, uint64_t *xfer_id) {
  if (!ep || !xfer_id || kind < P2P_IPC_SEND || kind > P2P_IPC_READ)
    return ep_err(P2P_EINVAL, "post_ipc: bad argument");
  if ((kind == P2P_IPC_WRITE || kind == P2P_IPC_READ) && !info)
    return ep_err(P2P_EINVAL, "post_ipc: missing info blob");
  conn *c;
  int found = ep_conn_find(ep, conn_id, &c);
  if (found != P2P_OK) return found;
  ipc_job *job = calloc(1, sizeof *job);
  op *o = NULL;
  int made = job ? op_new(ep, c, P2P_OP_SEND, 0, &o) : ep_err(P2P_ENOMEM, "out of memory");
  ep_conn_put(c); /* the op holds it from here */
  if (made != P2P_OK) {
    free(job);
    return made;
  }
  *job = (ipc_job){.o = o, .kind = kind, .conn_id = conn_id, .ptr = ptr, .size = size};
  if (info) memcpy(job->info, info, P2P_IPC_INFO_SIZE);
  pthread_mutex_lock(&ep->ipc_lock);
  ep->ipc_workers++;
  pthread_mutex_unlock(&ep->ipc_lock);
  pthread_t tid;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int e = pthread_create(&tid, &attr, ipc_worker, job);
  pthread_attr_destroy(&attr);
  if (e) {
    pthread_mutex_lock(&ep->ipc_lock);
    ep->ipc_workers--;
    pthread_mutex_unlock(&ep->ipc_lock);
    free(job);
    op_discard(o);
    return ep_err(P2P_ESYS, "post_ipc: thread: %s", strerror(e));
  }
  *xfer_id = o->id;
  return P2P_OK;
}

/* Destroy: every worker's op fails once the connections are failed. */
void ipc_wait_workers(p2p_endpoint *ep) {
  pthread_mutex_lock(&ep->ipc_lock);
  while (ep->ipc_workers > 0) pthread_cond_wait(&ep->ipc_cond, &ep->ipc_lock);
  pthread_mutex_unlock(&ep->ipc_lock);
}
