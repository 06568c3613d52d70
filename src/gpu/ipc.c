/* CUDA IPC handles, their cache, and device-to-device copies (see ipc.h). */
#include "ipc.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "net.h"

#define IPC_EVENTS 32

typedef struct ipc_entry {
  gcu_ipc_mem_handle handle; /* the key: a new allocation gets a new handle */
  gcu_dptr mapped;           /* where it is mapped in this process */
} ipc_entry;

/* Shared by every thread of the endpoint that copies on this GPU
 * (write_ipc from several threads, post_ipc's workers): `lock` keeps a
 * copy, its event and its ticket together, and the entries intact. */
struct gpu_ipc_cache {
  gpu_cuda *cuda;
  gcu_ctx ctx;
  int device;
  gcu_stream stream;
  gcu_event ev[IPC_EVENTS]; /* copy t records ev[t % IPC_EVENTS] */
  pthread_mutex_t lock;     /* guards what follows */
  uint64_t issued, finished;
  ipc_entry *entries;
  size_t n, cap;
};

/* ---- export ------------------------------------------------------------- */

int gpu_ipc_export(gpu_cuda *c, const void *ptr, gpu_ipc_blob *out) {
  int kind, device;
  int rc = gpu_ptr_classify(ptr, &kind, &device);
  if (rc != NET_OK) return rc;
  if (kind != GPU_MEM_DEVICE)
    return err_set(NET_EINVAL, "ipc: %p is not GPU memory", ptr);
  gcu_dptr base;
  size_t size;
  rc = gpu_cuda_use_device(c, device, NULL);
  if (rc == NET_OK)
    rc = gpu_cuda_check(c, c->cuMemGetAddressRange(&base, &size, gpu_dptr(ptr)),
                        "ipc: cuMemGetAddressRange(%p)", ptr);
  if (rc != NET_OK) return rc;
  memset(out, 0, sizeof *out);
  rc = gpu_cuda_check(c, c->cuIpcGetMemHandle(&out->handle, base),
                      "ipc: cuIpcGetMemHandle(%p; GPU memory from cuMemAlloc "
                      "or cudaMalloc only, not VMM or managed)", ptr);
  if (rc != NET_OK) return rc;
  out->magic = GPU_IPC_MAGIC;
  out->version = GPU_IPC_VERSION;
  out->device = device;
  out->pid = (uint32_t)getpid();
  out->process_token = c->process_token;
  out->base = base;
  out->alloc_size = size;
  out->offset = gpu_dptr(ptr) - base;
  return NET_OK;
}

/* ---- cache ---------------------------------------------------------------- */

static int make_stream_and_events(gpu_ipc_cache *k) {
  gpu_cuda *c = k->cuda;
  int rc = gpu_cuda_check(c, c->cuStreamCreate(&k->stream,
                                               GCU_STREAM_NON_BLOCKING),
                          "ipc: cuStreamCreate(GPU %d)", k->device);
  for (int e = 0; rc == NET_OK && e < IPC_EVENTS; e++)
    rc = gpu_cuda_check(c, c->cuEventCreate(&k->ev[e],
                                            GCU_EVENT_DISABLE_TIMING),
                        "ipc: cuEventCreate(GPU %d)", k->device);
  return rc;
}

int gpu_ipc_cache_open(gpu_cuda *c, int device, gpu_ipc_cache **out) {
  *out = NULL;
  gpu_ipc_cache *k = calloc(1, sizeof *k);
  if (!k) return err_set(NET_ESYS, "ipc: out of memory");
  k->cuda = c;
  k->device = device;
  pthread_mutex_init(&k->lock, NULL);
  int rc = gpu_cuda_use_device(c, device, &k->ctx);
  if (rc == NET_OK) rc = make_stream_and_events(k);
  if (rc != NET_OK) {
    gpu_ipc_cache_close(k);
    return rc;
  }
  *out = k;
  return NET_OK;
}

void gpu_ipc_cache_close(gpu_ipc_cache *k) {
  if (!k) return;
  gpu_cuda *c = k->cuda;
  if (k->ctx && gpu_cuda_enter(c, k->ctx) == NET_OK) {
    if (k->stream) c->cuStreamSynchronize(k->stream);
    for (size_t i = 0; i < k->n; i++) c->cuIpcCloseMemHandle(k->entries[i].mapped);
    for (int e = 0; e < IPC_EVENTS; e++)
      if (k->ev[e]) c->cuEventDestroy(k->ev[e]);
    if (k->stream) c->cuStreamDestroy(k->stream);
  }
  pthread_mutex_destroy(&k->lock);
  free(k->entries);
  free(k);
}

static int check_blob(const gpu_ipc_blob *b, size_t len) {
  if (b->magic != GPU_IPC_MAGIC || b->version != GPU_IPC_VERSION)
    return err_set(NET_EINVAL, "ipc: not a tcpx-p2p IPC blob (magic %#x, "
                   "version %u)", b->magic, b->version);
  if (b->offset > b->alloc_size || len > b->alloc_size - b->offset)
    return err_set(NET_EINVAL, "ipc: %zu bytes at offset %" PRIu64 " exceed "
                   "the peer's %" PRIu64 "-byte allocation", len, b->offset,
                   b->alloc_size);
  return NET_OK;
}

static ipc_entry *find_entry(gpu_ipc_cache *k, const gcu_ipc_mem_handle *h) {
  for (size_t i = 0; i < k->n; i++)
    if (!memcmp(&k->entries[i].handle, h, sizeof *h)) return &k->entries[i];
  return NULL;
}

static int add_entry(gpu_ipc_cache *k, const gpu_ipc_blob *b,
                     gcu_dptr *mapped) {
  if (k->n == k->cap) {
    size_t cap = k->cap ? 2 * k->cap : 8;
    ipc_entry *e = realloc(k->entries, cap * sizeof *e);
    if (!e) return err_set(NET_ESYS, "ipc: out of memory");
    k->entries = e;
    k->cap = cap;
  }
  gpu_cuda *c = k->cuda;
  int rc = gpu_cuda_check(c, c->cuIpcOpenMemHandle(
                                 mapped, b->handle,
                                 GCU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS),
                          "ipc: cuIpcOpenMemHandle(pid %u's GPU %d memory, "
                          "on GPU %d)", b->pid, b->device, k->device);
  if (rc != NET_OK) return rc;
  k->entries[k->n++] = (ipc_entry){b->handle, *mapped};
  return NET_OK;
}

int gpu_ipc_map(gpu_ipc_cache *k, const gpu_ipc_blob *b, size_t len,
                void **ptr) {
  *ptr = NULL;
  int rc = check_blob(b, len);
  if (rc != NET_OK) return rc;
  if (b->pid == (uint32_t)getpid() && b->process_token == k->cuda->process_token) {
    *ptr = gpu_vptr(b->base + b->offset); /* our own memory */
    return NET_OK;
  }
  gcu_dptr mapped = 0;
  pthread_mutex_lock(&k->lock); /* held while mapping: opened only once */
  ipc_entry *e = find_entry(k, &b->handle);
  if (e) {
    mapped = e->mapped;
  } else {
    rc = gpu_cuda_enter(k->cuda, k->ctx);
    if (rc == NET_OK) rc = add_entry(k, b, &mapped);
  }
  pthread_mutex_unlock(&k->lock);
  if (rc != NET_OK) return rc;
  *ptr = gpu_vptr(mapped + b->offset);
  return NET_OK;
}

/* ---- copies -------------------------------------------------------------- */

/* Under the lock: the event a ticket names is the one recorded right
 * after its copy, and tickets follow the stream's order. */
int gpu_ipc_copy(gpu_ipc_cache *k, void *dst, const void *src, size_t n,
                 uint64_t *ticket) {
  gpu_cuda *c = k->cuda;
  int rc = gpu_cuda_enter(c, k->ctx);
  pthread_mutex_lock(&k->lock);
  if (rc == NET_OK)
    rc = gpu_cuda_check(c, c->cuMemcpyDtoDAsync(gpu_dptr(dst), gpu_dptr(src),
                                                n, k->stream),
                        "ipc: copy %zu bytes GPU %p -> %p", n, src, dst);
  if (rc == NET_OK)
    rc = gpu_cuda_check(c, c->cuEventRecord(k->ev[k->issued % IPC_EVENTS],
                                            k->stream),
                        "ipc: cuEventRecord");
  if (rc == NET_OK) *ticket = k->issued++;
  pthread_mutex_unlock(&k->lock);
  return rc;
}

/* Where `ticket` stands: NET_EINVAL if never issued, else *done when it
 * is known to have finished. */
static int ticket_state(gpu_ipc_cache *k, uint64_t ticket, int *done) {
  pthread_mutex_lock(&k->lock);
  uint64_t issued = k->issued;
  *done = ticket < k->finished;
  pthread_mutex_unlock(&k->lock);
  if (ticket >= issued)
    return err_set(NET_EINVAL, "ipc: copy %" PRIu64 " was never issued",
                   ticket);
  return NET_OK;
}

/* Copies finish in stream order: `ticket` done means all before it are. */
static void mark_finished(gpu_ipc_cache *k, uint64_t ticket) {
  pthread_mutex_lock(&k->lock);
  if (ticket >= k->finished) k->finished = ticket + 1;
  pthread_mutex_unlock(&k->lock);
}

/* An event re-recorded by a later copy fires later: waiting on it is
 * conservative, never wrong, since the stream runs copies in order. */
int gpu_ipc_copy_done(gpu_ipc_cache *k, uint64_t ticket, int *done) {
  int rc = ticket_state(k, ticket, done);
  if (rc != NET_OK || *done) return rc;
  gpu_cuda *c = k->cuda;
  rc = gpu_cuda_enter(c, k->ctx);
  if (rc != NET_OK) return rc;
  gcu_result r = c->cuEventQuery(k->ev[ticket % IPC_EVENTS]);
  if (r == GCU_ERROR_NOT_READY) return NET_OK;
  rc = gpu_cuda_check(c, r, "ipc: copy %" PRIu64, ticket);
  if (rc != NET_OK) return rc;
  mark_finished(k, ticket);
  *done = 1;
  return NET_OK;
}

/* One driver call that returns when the copy has finished, where polling
 * cuEventQuery re-enters the driver (and its locks) thousands of times
 * for one large copy, against every other CUDA call of the process. The
 * driver spins or yields as the context's scheduling flags say, so a
 * waiter is as prompt as the poll was. */
int gpu_ipc_copy_wait(gpu_ipc_cache *k, uint64_t ticket) {
  int done, rc = ticket_state(k, ticket, &done);
  if (rc != NET_OK || done) return rc;
  gpu_cuda *c = k->cuda;
  rc = gpu_cuda_enter(c, k->ctx);
  if (rc == NET_OK)
    rc = gpu_cuda_check(c, c->cuEventSynchronize(k->ev[ticket % IPC_EVENTS]),
                        "ipc: copy %" PRIu64, ticket);
  if (rc == NET_OK) mark_finished(k, ticket);
  return rc;
}
