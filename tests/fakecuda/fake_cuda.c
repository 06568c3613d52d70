/* A stand-in for libcuda.so.1 with one "GPU" whose memory is host memory,
 * for running the GPU code paths that need no kernel (staging, the CLI's
 * --gpu benchmark) on machines without a GPU: TCPX_P2P_CUDA_LIB=<this>.
 *
 * Every call is synchronous: copies happen when they are asked for, so
 * streams and events are always complete. Allocations are remembered so
 * cuPointerGetAttributes can say device (cuMemAlloc) or pinned host
 * (cuMemHostAlloc); any other pointer is, as with the real driver, not
 * CUDA memory (success, memory type 0). No kernels: those return an
 * error, so a path that needs them fails loudly instead of passing.
 *
 * CUDA IPC across processes: each device allocation is a memfd mapped
 * MAP_SHARED, and its IPC handle names the owner's pid and fd, so another
 * process of the same user maps the same pages through /proc/<pid>/fd/<fd>
 * and its writes land in the owner's buffer. As with the real driver, a
 * process cannot open its own handle, and only an allocation's base has
 * one. FAKE_CUDA_IPC_BROKEN=1 maps a fresh zeroed buffer instead, so a
 * test can prove its byte check catches bytes that never crossed. */
/* memfd_create: _GNU_SOURCE comes from the build (CMakeLists.txt) */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cudadrv.h"

#define FAKE_MAX_ALLOCS 4096
#define FAKE_ERROR 999 /* CUDA_ERROR_UNKNOWN: what the fake does not do */

#define FAKE_IPC_MAGIC 0x4b414646u /* "FFAK" */

typedef enum { ALLOC_OWN, ALLOC_IPC_MAPPED } alloc_origin;

typedef struct fake_alloc {
  uintptr_t base;
  size_t size;
  int memtype; /* GCU_MEMORYTYPE_DEVICE or _HOST */
  int fd;      /* device memory: the memfd behind it (own), else -1 */
  alloc_origin origin; /* IPC_MAPPED: a peer's, from cuIpcOpenMemHandle */
  uint64_t serial;     /* own device memory: a handle per allocation */
} fake_alloc;

/* What cuIpcGetMemHandle puts in the 64-byte handle. */
typedef struct fake_ipc_handle {
  uint32_t magic;
  int32_t pid;
  int32_t fd;
  uint32_t reserved;
  uint64_t size;
  uint64_t serial; /* fds are reused: the cache keys on the whole handle */
} fake_ipc_handle;
_Static_assert(sizeof(fake_ipc_handle) <= sizeof(gcu_ipc_mem_handle),
               "the fake handle fits CUDA's");

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static fake_alloc allocs[FAKE_MAX_ALLOCS];
static int nallocs;
static struct gcu_ctx_st *const primary = (struct gcu_ctx_st *)&primary;
static _Thread_local gcu_ctx current;

static uint64_t next_serial = 1;

static gcu_result remember(fake_alloc a) {
  pthread_mutex_lock(&lock);
  int ok = nallocs < FAKE_MAX_ALLOCS;
  if (ok) {
    a.serial = next_serial++;
    allocs[nallocs++] = a;
  }
  pthread_mutex_unlock(&lock);
  return ok ? GCU_SUCCESS : FAKE_ERROR;
}

/* Remove the allocation at `base` of this memory type and origin; 1 and
 * *out when there was one. */
static int forget(uintptr_t base, int memtype, alloc_origin origin,
                  fake_alloc *out) {
  pthread_mutex_lock(&lock);
  int found = 0;
  for (int i = 0; i < nallocs && !found; i++)
    if (allocs[i].base == base && allocs[i].memtype == memtype &&
        allocs[i].origin == origin) {
      *out = allocs[i];
      allocs[i] = allocs[--nallocs];
      found = 1;
    }
  pthread_mutex_unlock(&lock);
  return found;
}

/* The allocation holding p (copied out), or memtype 0. */
static fake_alloc lookup(uintptr_t p) {
  fake_alloc a = {.fd = -1};
  pthread_mutex_lock(&lock);
  for (int i = 0; i < nallocs; i++)
    if (p >= allocs[i].base && p < allocs[i].base + allocs[i].size) a = allocs[i];
  pthread_mutex_unlock(&lock);
  return a;
}

#define FAKE_OOM 2 /* CUDA_ERROR_OUT_OF_MEMORY */

static size_t page_round(size_t size) { return (size + 4095) & ~(size_t)4095; }

static gcu_result host_alloc(void **p, size_t size) {
  *p = size ? aligned_alloc(4096, page_round(size)) : NULL;
  if (!*p) return FAKE_OOM;
  gcu_result r = remember((fake_alloc){(uintptr_t)*p, size,
                                       GCU_MEMORYTYPE_HOST, -1, ALLOC_OWN, 0});
  if (r != GCU_SUCCESS) free(*p);
  return r;
}

/* Device pages mapped at m: this process's own (fd: the memfd behind
 * them) or a peer's (fd -1). */
static void unmap_device(void *m, size_t size, int fd) {
  munmap(m, page_round(size));
  if (fd >= 0) close(fd);
}

/* Remember them; given back when they cannot be. */
static gcu_result remember_device(void *m, size_t size, int fd, alloc_origin origin) {
  gcu_result r = remember((fake_alloc){(uintptr_t)m, size, GCU_MEMORYTYPE_DEVICE,
                                       fd, origin, 0});
  if (r != GCU_SUCCESS) unmap_device(m, size, fd);
  return r;
}

/* Forget and unmap the device pages at d of this origin. */
static gcu_result release_device(gcu_dptr d, alloc_origin origin) {
  fake_alloc a;
  if (!forget((uintptr_t)d, GCU_MEMORYTYPE_DEVICE, origin, &a))
    return GCU_ERROR_INVALID_VALUE;
  unmap_device((void *)a.base, a.size, a.fd);
  return GCU_SUCCESS;
}

/* Device memory another process can map (see the top of the file). */
static gcu_result device_alloc(void **p, size_t size) {
  *p = NULL;
  if (!size) return FAKE_OOM;
  int fd = memfd_create("fake-cuda", MFD_CLOEXEC);
  if (fd < 0) return FAKE_OOM;
  void *m = MAP_FAILED;
  if (ftruncate(fd, (off_t)page_round(size)) == 0)
    m = mmap(NULL, page_round(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) {
    close(fd);
    return FAKE_OOM;
  }
  gcu_result r = remember_device(m, size, fd, ALLOC_OWN);
  if (r == GCU_SUCCESS) *p = m;
  return r;
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
  gcu_result r = device_alloc(&p, size);
  *d = (gcu_dptr)(uintptr_t)p;
  return r;
}
gcu_result cuMemAllocManaged(gcu_dptr *d, size_t size, unsigned int flags) {
  (void)d, (void)size, (void)flags;
  return FAKE_ERROR;
}
/* Only this process's own allocations: a peer's mapping is given back
 * with cuIpcCloseMemHandle, as with the real driver. */
gcu_result cuMemFree_v2(gcu_dptr d) { return release_device(d, ALLOC_OWN); }
gcu_result cuMemGetAddressRange_v2(gcu_dptr *base, size_t *size, gcu_dptr p) {
  fake_alloc a = lookup((uintptr_t)p);
  if (a.memtype != GCU_MEMORYTYPE_DEVICE) return GCU_ERROR_INVALID_VALUE;
  if (base) *base = a.base;
  if (size) *size = a.size;
  return GCU_SUCCESS;
}
gcu_result cuMemHostAlloc(void **p, size_t size, unsigned int flags) {
  (void)flags;
  return host_alloc(p, size);
}
gcu_result cuMemFreeHost(void *p) {
  fake_alloc a;
  if (!forget((uintptr_t)p, GCU_MEMORYTYPE_HOST, ALLOC_OWN, &a))
    return GCU_ERROR_INVALID_VALUE;
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

/* ---- what the fake does not do: kernels ---- */

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

/* ---- IPC: memfds shared through /proc (see the top of the file) ---- */

gcu_result cuIpcGetMemHandle(gcu_ipc_mem_handle *h, gcu_dptr d) {
  fake_alloc a = lookup((uintptr_t)d);
  if (a.memtype != GCU_MEMORYTYPE_DEVICE || a.origin != ALLOC_OWN ||
      a.base != (uintptr_t)d)
    return GCU_ERROR_INVALID_VALUE; /* not the base of our own allocation */
  fake_ipc_handle f = {FAKE_IPC_MAGIC, (int32_t)getpid(), a.fd, 0, a.size,
                       a.serial};
  memset(h, 0, sizeof *h);
  memcpy(h, &f, sizeof f);
  return GCU_SUCCESS;
}

/* The owner's pages, or with FAKE_CUDA_IPC_BROKEN=1 fresh zeroed ones. */
static void *map_peer(const fake_ipc_handle *f) {
  const char *broken = getenv("FAKE_CUDA_IPC_BROKEN");
  if (broken && !strcmp(broken, "1"))
    return mmap(NULL, page_round(f->size), PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)f->pid, (int)f->fd);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return MAP_FAILED;
  struct stat st;
  void *m = MAP_FAILED;
  if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= f->size)
    m = mmap(NULL, page_round(f->size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd); /* the mapping keeps the pages */
  return m;
}

gcu_result cuIpcOpenMemHandle_v2(gcu_dptr *d, gcu_ipc_mem_handle h,
                                 unsigned int flags) {
  (void)flags;
  fake_ipc_handle f;
  memcpy(&f, &h, sizeof f);
  *d = 0;
  if (f.magic != FAKE_IPC_MAGIC || f.size == 0) return GCU_ERROR_INVALID_VALUE;
  if (f.pid == (int32_t)getpid()) return GCU_ERROR_INVALID_CONTEXT;
  void *m = map_peer(&f);
  if (m == MAP_FAILED) return GCU_ERROR_INVALID_VALUE;
  gcu_result r = remember_device(m, f.size, -1, ALLOC_IPC_MAPPED);
  if (r == GCU_SUCCESS) *d = (gcu_dptr)(uintptr_t)m;
  return r;
}

gcu_result cuIpcCloseMemHandle(gcu_dptr d) {
  return release_device(d, ALLOC_IPC_MAPPED);
}
