/* FakeTCPX's receive memory: per receive comm the unpack meta, a 16 MiB
 * bounce pool and the 24-byte target the device handle points at.
 * Built twice (tests/gpu.cmake, tests/strict.cmake):
 * - FT_CUDA: as TCPX, GPU memory through libcuda (bounce and target in GPU
 *   memory, meta pinned and mapped); init exits the process when cuInit
 *   fails, as TCPX does.
 * - host: everything in host memory, no libcuda. The engine then unpacks
 *   on the CPU; CI runs every suite through this build. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_tcpx.h"
#ifdef FT_CUDA
#include <cuda.h>
#endif

struct ft_mem {
  ft_unpack_meta *meta;      /* host view */
  unsigned char *image;      /* the pool as the host writes it */
#ifdef FT_CUDA
  CUcontext ctx;
  CUdeviceptr bounce, target;
#else
  ft_target target;
#endif
};

#ifdef FT_CUDA

static CUcontext primary; /* GPU 0's, retained once (a test plugin) */

ncclResult_t ft_mem_init(void) {
  int n = 0;
  if (cuInit(0) != CUDA_SUCCESS) {
    fprintf(stderr, "FakeTCPX: cuInit failed; exiting like GPUDirect-TCPX\n");
    exit(1);
  }
  if (cuDeviceGetCount(&n) != CUDA_SUCCESS || n == 0)
    return ft_warn(NCCL_INTERNAL_ERROR, "FakeTCPX: no cuDevices found");
  CUdevice dev;
  if (cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
      cuDevicePrimaryCtxRetain(&primary, dev) != CUDA_SUCCESS)
    return ft_warn(NCCL_UNHANDLED_CUDA_ERROR, "FakeTCPX: no CUDA context");
  return NCCL_OK;
}

int ft_mem_is_cuda(void) { return 1; }

static int enter(void) { return cuCtxPushCurrent(primary) == CUDA_SUCCESS; }
static void leave(void) {
  CUcontext popped;
  cuCtxPopCurrent(&popped);
}

static CUresult alloc_all(ft_mem *m) {
  CUdeviceptr meta_dev;
  CUresult r = cuMemHostAlloc((void **)&m->meta, sizeof *m->meta,
                              CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_PORTABLE);
  if (r != CUDA_SUCCESS) return r;
  memset(m->meta, 0, sizeof *m->meta);
  if ((r = cuMemHostGetDevicePointer(&meta_dev, m->meta, 0)) != CUDA_SUCCESS ||
      (r = cuMemAlloc(&m->bounce, FT_POOL_BYTES)) != CUDA_SUCCESS ||
      (r = cuMemAlloc(&m->target, sizeof(ft_target))) != CUDA_SUCCESS)
    return r;
  ft_target t = {(void *)(uintptr_t)meta_dev, (void *)(uintptr_t)m->bounce,
                 UINT64_MAX};
  if ((r = cuMemcpyHtoD(m->target, &t, sizeof t)) != CUDA_SUCCESS) return r;
  return cuCtxSynchronize();
}

ncclResult_t ft_mem_open(ft_mem **out, devhandle_t *dh) {
  ft_mem *m = calloc(1, sizeof *m);
  if (!m || !(m->image = malloc(FT_POOL_BYTES))) {
    free(m);
    return ft_warn(NCCL_SYSTEM_ERROR, "FakeTCPX: accept: out of memory");
  }
  CUresult r = CUDA_ERROR_INVALID_CONTEXT;
  if (enter()) {
    r = alloc_all(m);
    leave();
  }
  if (r != CUDA_SUCCESS) {
    ft_mem_close(m);
    return ft_warn(NCCL_UNHANDLED_CUDA_ERROR, "FakeTCPX: accept: CUDA error %d", r);
  }
  *dh = (devhandle_t){NCCL_NET_DEVICE_UNPACK, NCCL_NET_DEVICE_UNPACK_VERSION,
                      (void *)(uintptr_t)m->target, sizeof(ft_target), 1};
  *out = m;
  return NCCL_OK;
}

ncclResult_t ft_mem_publish(ft_mem *m, uint32_t first, uint32_t last) {
  size_t off = (size_t)first * FT_PAGE, len = (size_t)(last - first + 1) * FT_PAGE;
  CUresult r = CUDA_ERROR_INVALID_CONTEXT;
  if (enter()) {
    r = cuMemcpyHtoD(m->bounce + off, m->image + off, len);
    /* From pageable memory the copy may return before its DMA lands; the
     * NIC's would have landed before test says done. */
    if (r == CUDA_SUCCESS) r = cuCtxSynchronize();
    leave();
  }
  if (r != CUDA_SUCCESS)
    return ft_warn(NCCL_UNHANDLED_CUDA_ERROR, "FakeTCPX: bounce upload: CUDA error %d", r);
  return NCCL_OK;
}

void ft_mem_close(ft_mem *m) {
  if (!m) return;
  if (enter()) {
    if (m->meta) cuMemFreeHost(m->meta);
    if (m->bounce) cuMemFree(m->bounce);
    if (m->target) cuMemFree(m->target);
    leave();
  }
  free(m->image);
  free(m);
}

ncclResult_t ft_mem_copy_from_gpu(void *dst, const void *src, size_t n) {
  CUresult r = CUDA_ERROR_INVALID_CONTEXT;
  if (enter()) {
    r = cuMemcpyDtoH(dst, (CUdeviceptr)(uintptr_t)src, n);
    leave();
  }
  return r == CUDA_SUCCESS ? NCCL_OK
                           : ft_warn(NCCL_UNHANDLED_CUDA_ERROR, "FakeTCPX: isend: "
                                     "CUDA error %d", r);
}

#else /* host memory */

ncclResult_t ft_mem_init(void) { return NCCL_OK; }
int ft_mem_is_cuda(void) { return 0; }

ncclResult_t ft_mem_open(ft_mem **out, devhandle_t *dh) {
  ft_mem *m = calloc(1, sizeof *m);
  if (m) {
    m->meta = aligned_alloc(64, sizeof *m->meta);
    m->image = aligned_alloc(FT_PAGE, FT_POOL_BYTES);
  }
  if (!m || !m->meta || !m->image) {
    ft_mem_close(m);
    return ft_warn(NCCL_SYSTEM_ERROR, "FakeTCPX: accept: out of memory");
  }
  memset(m->meta, 0, sizeof *m->meta);
  m->target = (ft_target){m->meta, m->image, UINT64_MAX};
  *dh = (devhandle_t){NCCL_NET_DEVICE_UNPACK, NCCL_NET_DEVICE_UNPACK_VERSION,
                      &m->target, sizeof m->target, 1};
  *out = m;
  return NCCL_OK;
}

ncclResult_t ft_mem_publish(ft_mem *m, uint32_t first, uint32_t last) {
  (void)m, (void)first, (void)last; /* the image is the bounce pool */
  return NCCL_OK;
}

void ft_mem_close(ft_mem *m) {
  if (!m) return;
  free(m->meta);
  free(m->image);
  free(m);
}

/* Reached only with FAKE_TCPX_PTR_CUDA=1 (regMr refuses type CUDA here
 * otherwise), where GPU memory is the fake CUDA driver's: host memory. */
ncclResult_t ft_mem_copy_from_gpu(void *dst, const void *src, size_t n) {
  memcpy(dst, src, n);
  return NCCL_OK;
}

#endif

ft_unpack_meta *ft_mem_meta(ft_mem *m) { return m->meta; }
unsigned char *ft_mem_image(ft_mem *m) { return m->image; }
