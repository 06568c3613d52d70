/* A stand-in for libcuda.so.1 with one "GPU" whose memory is host memory,
 * for running the GPU code paths that need no kernel (staging, the CLI's
 * --gpu benchmark) on machines without a GPU: TCPX_P2P_CUDA_LIB=<this>.
 *
 * Every call is synchronous: copies happen when they are asked for, so
 * streams and events are always complete. Allocations are remembered so
 * cuPointerGetAttributes can say device (cuMemAlloc) or pinned host
 * (cuMemHostAlloc); any other pointer is, as with the real driver, not
 * CUDA memory (success, memory type 0). No kernels, no IPC: those return
 * an error, so a path that needs them fails loudly instead of passing. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cudadrv.h"

#define FAKE_MAX_ALLOCS 4096
#define FAKE_ERROR 999 /* CUDA_ERROR_UNKNOWN: what the fake does not do */

typedef struct fake_alloc {
  uintptr_t base;
  size_t size;
  int memtype; /* GCU_MEMORYTYPE_DEVICE or _HOST */
} fake_alloc;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static fake_alloc allocs[FAKE_MAX_ALLOCS];
static int nallocs;
static struct gcu_ctx_st *const primary = (struct gcu_ctx_st *)&primary;
static _Thread_local gcu_ctx current;

static gcu_result remember(void *p, size_t size, int memtype) {
  pthread_mutex_lock(&lock);
  int ok = nallocs < FAKE_MAX_ALLOCS;
  if (ok) allocs[nallocs++] = (fake_alloc){(uintptr_t)p, size, memtype};
  pthread_mutex_unlock(&lock);
  return ok ? GCU_SUCCESS : FAKE_ERROR;
}

static int forget(uintptr_t base) {
  pthread_mutex_lock(&lock);
  int found = 0;
  for (int i = 0; i < nallocs && !found; i++)
    if (allocs[i].base == base) {
      allocs[i] = allocs[--nallocs];
      found = 1;
    }
  pthread_mutex_unlock(&lock);
  return found;
}

/* The allocation holding p (copied out), or memtype 0. */
static fake_alloc lookup(uintptr_t p) {
  fake_alloc a = {0, 0, 0};
  pthread_mutex_lock(&lock);
  for (int i = 0; i < nallocs; i++)
    if (p >= allocs[i].base && p < allocs[i].base + allocs[i].size) a = allocs[i];
  pthread_mutex_unlock(&lock);
  return a;
}

static gcu_result alloc(void **p, size_t size, int memtype) {
  *p = size ? aligned_alloc(4096, (size + 4095) & ~(size_t)4095) : NULL;
  if (!*p) return 2; /* CUDA_ERROR_OUT_OF_MEMORY */
  return remember(*p, size, memtype);
}

/* ---- driver, devices, contexts ---- */

gcu_result cuInit(unsigned int flags) { (void)flags; return GCU_SUCCESS; }
gcu_result cuDriverGetVersion(int *v) { *v = 13000; return GCU_SUCCESS; }
gcu_result cuGetErrorString(gcu_result e, const char **s) {
  *s = e == FAKE_ERROR ? "not done by the fake CUDA driver" : "fake CUDA error";
  return GCU_SUCCESS;
}
gcu_result cuDeviceGetCount(int *n) { *n = 1; return GCU_SUCCESS; }
gcu_result cuDeviceGet(gcu_device *d, int ordinal) {
  *d = ordinal;
  return ordinal == 0 ? GCU_SUCCESS : GCU_ERROR_INVALID_VALUE;
}
gcu_result cuDeviceGetPCIBusId(char *id, int len, gcu_device d) {
  (void)d; /* a bus id with no sysfs entry: no NIC is nearer than another */
  strncpy(id, "0000:fe:1f.7", (size_t)len);
  return GCU_SUCCESS;
}
gcu_result cuDevicePrimaryCtxRetain(gcu_ctx *c, gcu_device d) {
  (void)d;
  *c = primary;
  return GCU_SUCCESS;
}
gcu_result cuDevicePrimaryCtxRelease_v2(gcu_device d) { (void)d; return GCU_SUCCESS; }
gcu_result cuCtxSetCurrent(gcu_ctx c) { current = c; return GCU_SUCCESS; }
gcu_result cuCtxGetCurrent(gcu_ctx *c) { *c = current; return GCU_SUCCESS; }
gcu_result cuCtxSynchronize(void) { return GCU_SUCCESS; }

/* ---- pointers ---- */

static gcu_result attribute(int which, void *data, fake_alloc a) {
  switch (which) {
    case GCU_POINTER_ATTRIBUTE_MEMORY_TYPE: *(unsigned int *)data = (unsigned)a.memtype; break;
    case GCU_POINTER_ATTRIBUTE_IS_MANAGED: *(uint64_t *)data = 0; break;
    case GCU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: *(int *)data = a.memtype ? 0 : -1; break;
    case GCU_POINTER_ATTRIBUTE_CONTEXT: *(gcu_ctx *)data = a.memtype ? primary : NULL; break;
    case GCU_POINTER_ATTRIBUTE_HOST_POINTER: *(void **)data = NULL; break;
    default: return GCU_ERROR_INVALID_VALUE;
  }
  return GCU_SUCCESS;
}

gcu_result cuPointerGetAttribute(void *data, int which, gcu_dptr p) {
  fake_alloc a = lookup((uintptr_t)p);
  return a.memtype ? attribute(which, data, a) : GCU_ERROR_INVALID_VALUE;
}
gcu_result cuPointerGetAttributes(unsigned int n, int *which, void **data,
                                  gcu_dptr p) {
  fake_alloc a = lookup((uintptr_t)p);
  for (unsigned i = 0; i < n; i++)
    if (attribute(which[i], data[i], a) != GCU_SUCCESS) return GCU_ERROR_INVALID_VALUE;
  return GCU_SUCCESS;
}

/* ---- memory ---- */

gcu_result cuMemAlloc_v2(gcu_dptr *d, size_t size) {
  void *p;
  gcu_result r = alloc(&p, size, GCU_MEMORYTYPE_DEVICE);
  *d = (gcu_dptr)(uintptr_t)p;
  return r;
}
gcu_result cuMemAllocManaged(gcu_dptr *d, size_t size, unsigned int flags) {
  (void)d, (void)size, (void)flags;
  return FAKE_ERROR;
}
gcu_result cuMemFree_v2(gcu_dptr d) {
  if (!forget((uintptr_t)d)) return GCU_ERROR_INVALID_VALUE;
  free((void *)(uintptr_t)d);
  return GCU_SUCCESS;
}
gcu_result cuMemGetAddressRange_v2(gcu_dptr *base, size_t *size, gcu_dptr p) {
  fake_alloc a = lookup((uintptr_t)p);
  if (a.memtype != GCU_MEMORYTYPE_DEVICE) return GCU_ERROR_INVALID_VALUE;
  if (base) *base = a.base;
  if (size) *size = a.size;
  return GCU_SUCCESS;
}
gcu_result cuMemHostAlloc(void **p, size_t size, unsigned int flags) {
  (void)flags;
  return alloc(p, size, GCU_MEMORYTYPE_HOST);
}
gcu_result cuMemFreeHost(void *p) {
  if (!forget((uintptr_t)p)) return GCU_ERROR_INVALID_VALUE;
  free(p);
  return GCU_SUCCESS;
}
gcu_result cuMemHostGetDevicePointer_v2(gcu_dptr *d, void *p, unsigned int flags) {
  (void)flags;
  *d = (gcu_dptr)(uintptr_t)p;
  return lookup((uintptr_t)p).memtype == GCU_MEMORYTYPE_HOST ? GCU_SUCCESS
                                                              : GCU_ERROR_INVALID_VALUE;
}
gcu_result cuMemsetD8_v2(gcu_dptr d, unsigned char v, size_t n) {
  memset((void *)(uintptr_t)d, v, n);
  return GCU_SUCCESS;
}
gcu_result cuMemcpyHtoD_v2(gcu_dptr d, const void *s, size_t n) {
  memcpy((void *)(uintptr_t)d, s, n);
  return GCU_SUCCESS;
}
gcu_result cuMemcpyDtoH_v2(void *d, gcu_dptr s, size_t n) {
  memcpy(d, (const void *)(uintptr_t)s, n);
  return GCU_SUCCESS;
}
gcu_result cuMemcpyDtoD_v2(gcu_dptr d, gcu_dptr s, size_t n) {
  memcpy((void *)(uintptr_t)d, (const void *)(uintptr_t)s, n);
  return GCU_SUCCESS;
}
gcu_result cuMemcpyHtoDAsync_v2(gcu_dptr d, const void *s, size_t n, gcu_stream st) {
  (void)st;
  return cuMemcpyHtoD_v2(d, s, n);
}
gcu_result cuMemcpyDtoHAsync_v2(void *d, gcu_dptr s, size_t n, gcu_stream st) {
  (void)st;
  return cuMemcpyDtoH_v2(d, s, n);
}
gcu_result cuMemcpyDtoDAsync_v2(gcu_dptr d, gcu_dptr s, size_t n, gcu_stream st) {
  (void)st;
  return cuMemcpyDtoD_v2(d, s, n);
}

/* ---- streams and events: everything is already done ---- */

gcu_result cuStreamCreate(gcu_stream *s, unsigned int flags) {
  (void)flags;
  *s = (gcu_stream)malloc(1);
  return *s ? GCU_SUCCESS : 2;
}
gcu_result cuStreamDestroy_v2(gcu_stream s) { free(s); return GCU_SUCCESS; }
gcu_result cuStreamSynchronize(gcu_stream s) { (void)s; return GCU_SUCCESS; }
gcu_result cuEventCreate(gcu_event *e, unsigned int flags) {
  (void)flags;
  *e = (gcu_event)malloc(1);
  return *e ? GCU_SUCCESS : 2;
}
gcu_result cuEventRecord(gcu_event e, gcu_stream s) { (void)e, (void)s; return GCU_SUCCESS; }
gcu_result cuEventQuery(gcu_event e) { (void)e; return GCU_SUCCESS; }
gcu_result cuEventSynchronize(gcu_event e) { (void)e; return GCU_SUCCESS; }
gcu_result cuEventElapsedTime(float *ms, gcu_event a, gcu_event b) {
  (void)a, (void)b;
  *ms = 0;
  return GCU_SUCCESS;
}
gcu_result cuEventDestroy_v2(gcu_event e) { free(e); return GCU_SUCCESS; }

/* ---- what the fake does not do: kernels and IPC ---- */

gcu_result cuModuleLoadData(gcu_module *m, const void *image) {
  (void)m, (void)image;
  return FAKE_ERROR;
}
gcu_result cuModuleUnload(gcu_module m) { (void)m; return FAKE_ERROR; }
gcu_result cuModuleGetFunction(gcu_function *f, gcu_module m, const char *name) {
  (void)f, (void)m, (void)name;
  return FAKE_ERROR;
}
gcu_result cuLaunchKernel(gcu_function f, unsigned int gx, unsigned int gy,
                          unsigned int gz, unsigned int bx, unsigned int by,
                          unsigned int bz, unsigned int shmem, gcu_stream s,
                          void **params, void **extra) {
  (void)f, (void)gx, (void)gy, (void)gz, (void)bx, (void)by, (void)bz;
  (void)shmem, (void)s, (void)params, (void)extra;
  return FAKE_ERROR;
}
gcu_result cuIpcGetMemHandle(gcu_ipc_mem_handle *h, gcu_dptr d) {
  (void)h, (void)d;
  return FAKE_ERROR;
}
gcu_result cuIpcOpenMemHandle_v2(gcu_dptr *d, gcu_ipc_mem_handle h, unsigned int flags) {
  (void)d, (void)h, (void)flags;
  return FAKE_ERROR;
}
gcu_result cuIpcCloseMemHandle(gcu_dptr d) { (void)d; return FAKE_ERROR; }
