/* Device unpack on the GPU: the comm's stream, events and kernel launches
 * (see unpack.h). */
#include "unpack.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* Linked in by gpu.cmake when it builds the kernel; weak, so a build
 * without the fragment still links and reports the kernel missing. */
extern const unsigned char gpu_unpack_fatbin[] __attribute__((weak));
extern const size_t gpu_unpack_fatbin_size __attribute__((weak));

struct gpu_unpack {
  gpu_cuda *cuda;
  gcu_ctx ctx;
  int device;
  gcu_stream stream;
  gcu_event ev[GPU_UNPACK_SLOTS];
  gcu_function fn;
  unsigned per_warp;         /* descriptors per warp; 0 = the default */
  int device_cnt;            /* the kernel reads cnt (no host view of meta) */
  gpu_unpack_handle target;  /* host copy of what the device handle points at */
  const volatile gpu_unpack_meta *meta_host; /* meta as the host sees it */
  int on_host;               /* the handle is host memory: copies on the CPU */
  gpu_unpack_seq seq;
};

/* A receive is at most 4 MiB (TCPX's bound): the CPU copy refuses
 * descriptors beyond it. src_off is 32 bits, so the pool is below 4 GiB. */
#define HOST_DST_LIMIT ((size_t)4 << 20)
#define HOST_BOUNCE_LIMIT ((size_t)UINT32_MAX + GPU_UNPACK_PAGE)

const unsigned char *gpu_unpack_image(size_t *size) {
  if (!gpu_unpack_fatbin || !&gpu_unpack_fatbin_size ||
      gpu_unpack_fatbin_size == 0) {
    *size = 0;
    return NULL;
  }
  *size = gpu_unpack_fatbin_size;
  return gpu_unpack_fatbin;
}

/* ---- open ---------------------------------------------------------------- */

static int check_handle(const net_dev_handle *dh) {
  if (!dh)
    return err_set(NET_EINVAL, "unpack: no device handle (accept must be "
                   "given one for an UNPACK plugin)");
  if (dh->netDeviceType != NCCL_NET_DEVICE_UNPACK ||
      dh->netDeviceVersion != GPU_UNPACK_DEV_VERSION)
    return err_set(NET_EINVAL, "unpack: device handle type %d version %d "
                   "(want UNPACK %d, version %d)", dh->netDeviceType,
                   dh->netDeviceVersion, NCCL_NET_DEVICE_UNPACK,
                   GPU_UNPACK_DEV_VERSION);
  if (!dh->handle || dh->size < GPU_UNPACK_HANDLE_SIZE)
    return err_set(NET_EINVAL, "unpack: device handle not filled by the "
                   "plugin (handle %p, size %zu; want %d bytes)", dh->handle,
                   dh->size, GPU_UNPACK_HANDLE_SIZE);
  return NET_OK;
}

/* The handle's GPU decides where we run. */
static int handle_device(const net_dev_handle *dh, int *device) {
  int kind, rc = gpu_ptr_classify(dh->handle, &kind, device);
  if (rc != NET_OK) return err_wrap(rc, "unpack: device handle");
  if (kind != GPU_MEM_DEVICE || *device < 0)
    return err_set(NET_EINVAL, "unpack: device handle %p is not GPU memory",
                   dh->handle);
  return NET_OK;
}

static int read_target(gpu_unpack *u, const net_dev_handle *dh) {
  gpu_cuda *c = u->cuda;
  int rc = gpu_cuda_check(c, c->cuMemcpyDtoH(&u->target, gpu_dptr(dh->handle),
                                             sizeof u->target),
                          "unpack: reading the device handle %p", dh->handle);
  if (rc != NET_OK) return rc;
  if (!u->target.meta || !u->target.bounce_buf)
    return err_set(NET_EINVAL, "unpack: device handle holds meta %p, "
                   "bounce_buf %p", (void *)u->target.meta,
                   u->target.bounce_buf);
  return NET_OK;
}

/* meta is pinned host memory: find the host's address for it, so cnt is
 * read on the host. Where CUDA cannot say, the kernel reads it. */
static void find_meta_on_host(gpu_unpack *u) {
  void *host = NULL;
  gcu_result r = u->cuda->cuPointerGetAttribute(
      &host, GCU_POINTER_ATTRIBUTE_HOST_POINTER, gpu_dptr(u->target.meta));
  u->meta_host = r == GCU_SUCCESS ? host : NULL;
  u->device_cnt = u->meta_host == NULL;
}

static int make_stream_and_events(gpu_unpack *u) {
  gpu_cuda *c = u->cuda;
  int rc = gpu_cuda_check(c, c->cuStreamCreate(&u->stream,
                                               GCU_STREAM_NON_BLOCKING),
                          "unpack: cuStreamCreate(GPU %d)", u->device);
  for (int e = 0; rc == NET_OK && e < GPU_UNPACK_SLOTS; e++)
    rc = gpu_cuda_check(c, c->cuEventCreate(&u->ev[e],
                                            GCU_EVENT_DISABLE_TIMING),
                        "unpack: cuEventCreate(GPU %d)", u->device);
  return rc;
}

static int find_kernel(gpu_unpack *u) {
  size_t size;
  const unsigned char *image = gpu_unpack_image(&size);
  if (!image)
    return err_set(NET_EINTERNAL, "unpack kernel not built (nvcc was not "
                   "found when tcpx-p2p was built): GPU receives from an "
                   "UNPACK plugin need it; rebuild with the CUDA toolkit");
  return gpu_cuda_function(u->cuda, u->device, image, GPU_UNPACK_KERNEL,
                           &u->fn);
}

static int open_on_device(gpu_unpack *u, const net_dev_handle *dh) {
  int rc = handle_device(dh, &u->device);
  if (rc == NET_OK) rc = gpu_cuda_use_device(u->cuda, u->device, &u->ctx);
  if (rc == NET_OK) rc = read_target(u, dh);
  if (rc == NET_OK) find_meta_on_host(u);
  if (rc == NET_OK) rc = find_kernel(u);
  if (rc == NET_OK) rc = make_stream_and_events(u);
  return rc;
}

/* A handle in host memory (a plugin that lands receives in host bounce
 * pages, or any UNPACK plugin where CUDA is absent): the same walk, done by
 * the CPU when test says done. */
static int handle_in_host_memory(gpu_cuda *c, const net_dev_handle *dh) {
  int kind, device;
  return !c || (gpu_ptr_classify(dh->handle, &kind, &device) == NET_OK &&
                kind != GPU_MEM_DEVICE);
}

static int open_on_host(gpu_unpack *u, const net_dev_handle *dh) {
  memcpy(&u->target, dh->handle, sizeof u->target);
  if (!u->target.meta || !u->target.bounce_buf)
    return err_set(NET_EINVAL, "unpack: device handle holds meta %p, "
                   "bounce_buf %p", (void *)u->target.meta,
                   u->target.bounce_buf);
  u->meta_host = u->target.meta;
  u->on_host = 1;
  return NET_OK;
}

int gpu_unpack_open(gpu_cuda *c, const net_dev_handle *dh, gpu_unpack **out) {
  *out = NULL;
  int rc = check_handle(dh);
  if (rc != NET_OK) return rc;
  gpu_unpack *u = calloc(1, sizeof *u);
  if (!u) return err_set(NET_ESYS, "unpack: out of memory");
  u->cuda = c;
  gpu_unpack_seq_init(&u->seq);
  rc = handle_in_host_memory(c, dh) ? open_on_host(u, dh) : open_on_device(u, dh);
  if (rc != NET_OK) {
    gpu_unpack_close(u);
    return rc;
  }
  *out = u;
  return NET_OK;
}

void gpu_unpack_close(gpu_unpack *u) {
  if (!u) return;
  gpu_cuda *c = u->cuda;
  if (!u->on_host && u->ctx && gpu_cuda_enter(c, u->ctx) == NET_OK) {
    if (u->stream) c->cuStreamSynchronize(u->stream);
    for (int e = 0; e < GPU_UNPACK_SLOTS; e++)
      if (u->ev[e]) c->cuEventDestroy(u->ev[e]);
    if (u->stream) c->cuStreamDestroy(u->stream);
  }
  free(u);
}

/* ---- launches ------------------------------------------------------------- */

/* One descriptor per warp: the fastest on an H100 for 16 x 4 MiB (1303
 * GB/s; 2, 4, 8 per warp gave 1294, 1232, 1217) and for single receives. */
static uint32_t per_warp(const gpu_unpack *u, int n) {
  (void)n;
  return u->per_warp ? u->per_warp : 1;
}

/* Fill the launch's items; `*most` = the largest fragment count, or
 * GPU_UNPACK_MAX_FRAGS when the kernel reads the counts itself. */
static void fill_items(gpu_unpack *u, gpu_unpack_args *a, const int *slots,
                       void *const *dst, int n, uint32_t *most) {
  memset(a, 0, sizeof *a);
  a->meta = (uint64_t)(uintptr_t)u->target.meta;
  a->bounce = (uint64_t)(uintptr_t)u->target.bounce_buf;
  a->n = (uint32_t)n;
  a->per_block = GPU_UNPACK_WARPS * per_warp(u, n);
  *most = u->device_cnt ? GPU_UNPACK_MAX_FRAGS : 0;
  for (int i = 0; i < n; i++) {
    uint32_t cnt = GPU_UNPACK_CNT_ON_DEVICE;
    if (!u->device_cnt) {
      uint64_t c = u->meta_host->cnt[slots[i]];
      cnt = c < GPU_UNPACK_MAX_FRAGS ? (uint32_t)c : GPU_UNPACK_MAX_FRAGS;
      if (cnt > *most) *most = cnt;
    }
    a->item[i] = (gpu_unpack_item){(uint64_t)(uintptr_t)dst[i],
                                   (uint32_t)slots[i], cnt};
  }
}

static int copy_on_host(gpu_unpack *u, const int *slots, void *const *dst,
                        int n) {
  for (int i = 0; i < n; i++) {
    int rc = gpu_unpack_host((const gpu_unpack_meta *)u->meta_host, slots[i],
                             u->target.bounce_buf, HOST_BOUNCE_LIMIT, dst[i],
                             HOST_DST_LIMIT, NULL);
    if (rc != NET_OK) return rc;
  }
  return NET_OK;
}

int gpu_unpack_launch(gpu_unpack *u, const int *slots, void *const *dst,
                      int n) {
  if (n < 1 || n > GPU_UNPACK_MAX_BATCH)
    return err_set(NET_EINVAL, "unpack: launch of %d receives (1..%d)", n,
                   GPU_UNPACK_MAX_BATCH);
  if (u->on_host) return copy_on_host(u, slots, dst, n);
  gpu_unpack_args a;
  uint32_t most;
  fill_items(u, &a, slots, dst, n, &most);
  if (most == 0) return NET_OK; /* only empty receives */
  unsigned blocks = (most + a.per_block - 1) / a.per_block;
  int rc = gpu_cuda_enter(u->cuda, u->ctx);
  if (rc != NET_OK) return rc;
  void *params[] = {&a};
  return gpu_cuda_check(u->cuda,
                        u->cuda->cuLaunchKernel(u->fn, blocks, (unsigned)n, 1,
                                                GPU_UNPACK_THREADS, 1, 1, 0,
                                                u->stream, params, NULL),
                        "unpack: cuLaunchKernel(%d receives, GPU %d)", n,
                        u->device);
}

int gpu_unpack_post(gpu_unpack *u, uint64_t *k) {
  return gpu_unpack_seq_post(&u->seq, k);
}

int gpu_unpack_submit(gpu_unpack *u, uint64_t k, void *dst) {
  return gpu_unpack_submit_batch(u, k, 1, &dst);
}

int gpu_unpack_submit_batch(gpu_unpack *u, uint64_t k, int n,
                            void *const *dst) {
  int rc = gpu_unpack_seq_check_submit(&u->seq, k, n);
  if (rc != NET_OK) return rc;
  int slots[GPU_UNPACK_MAX_BATCH];
  for (int i = 0; i < n; i++) slots[i] = gpu_unpack_slot(k + (uint64_t)i);
  rc = gpu_unpack_launch(u, slots, dst, n);
  if (rc != NET_OK) return rc;
  uint64_t last = k + (uint64_t)n - 1;
  if (u->on_host) { /* copied already */
    gpu_unpack_seq_submitted(&u->seq, k, n);
    u->seq.completed = last + 1;
    return NET_OK;
  }
  rc = gpu_cuda_check(u->cuda, u->cuda->cuEventRecord(
                                   u->ev[gpu_unpack_slot(last)], u->stream),
                      "unpack: cuEventRecord(receive %" PRIu64 ")", last);
  if (rc != NET_OK) return rc;
  gpu_unpack_seq_submitted(&u->seq, k, n);
  return NET_OK;
}

/* Advance `completed` over every launch whose event has fired. */
static int poll_events(gpu_unpack *u) {
  uint64_t j;
  while (gpu_unpack_seq_next_event(&u->seq, &j)) {
    gcu_result r = u->cuda->cuEventQuery(u->ev[gpu_unpack_slot(j)]);
    if (r == GCU_ERROR_NOT_READY) return NET_OK;
    int rc = gpu_cuda_check(u->cuda, r, "unpack: copy of receive %" PRIu64
                            " on GPU %d", j, u->device);
    if (rc != NET_OK) return rc;
    u->seq.completed = j + 1;
  }
  return NET_OK;
}

int gpu_unpack_done(gpu_unpack *u, uint64_t k, int *done) {
  *done = 0;
  if (k >= u->seq.submitted)
    return err_set(NET_EUSAGE, "unpack: receive %" PRIu64 " asked about "
                   "before it was submitted (%" PRIu64 " submitted)", k,
                   u->seq.submitted);
  if (k >= u->seq.completed && !u->on_host) {
    int rc = gpu_cuda_enter(u->cuda, u->ctx);
    if (rc == NET_OK) rc = poll_events(u);
    if (rc != NET_OK) return rc;
  }
  *done = k < u->seq.completed;
  return NET_OK;
}

gcu_stream gpu_unpack_stream(const gpu_unpack *u) { return u->stream; }

int gpu_unpack_tune(gpu_unpack *u, unsigned per_warp, int device_cnt) {
  if (per_warp > GPU_UNPACK_MAX_PER_WARP)
    return err_set(NET_EINVAL, "unpack: %u descriptors per warp (0..%d)",
                   per_warp, GPU_UNPACK_MAX_PER_WARP);
  if (!device_cnt && !u->meta_host)
    return err_set(NET_EINVAL, "unpack: meta %p has no host address: the "
                   "kernel must read cnt", (void *)u->target.meta);
  u->per_warp = per_warp;
  u->device_cnt = device_cnt;
  return NET_OK;
}

int gpu_unpack_cnt_on_host(const gpu_unpack *u) { return !u->device_cnt; }

const gpu_unpack_handle *gpu_unpack_target(const gpu_unpack *u) {
  return &u->target;
}
