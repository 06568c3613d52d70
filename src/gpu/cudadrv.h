/* The CUDA driver API, loaded at run time.
 *
 * tcpx-p2p never links libcuda: it dlopen()s libcuda.so.1 the first time a
 * GPU pointer is seen or a GPU feature is asked for, so the library runs on
 * hosts without the NVIDIA driver. The types and constants below are the
 * few the project needs, declared here in our own names (gcu_*) and checked
 * against the real <cuda.h> at build time where it exists (cudadrv_abi_check.c).
 *
 * The loaded driver is one process-wide object (it is the driver): the
 * table of entry points, the primary contexts retained per device and the
 * modules loaded into them. Functions return NET_OK or a NET_* code with
 * err_get() naming the CUDA call and the driver's own error text. */
#ifndef TCPX_P2P_GPU_CUDADRV_H
#define TCPX_P2P_GPU_CUDADRV_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ---- driver types and constants (values from cuda.h) ------------------ */
typedef int gcu_result;
typedef int gcu_device;
typedef unsigned long long gcu_dptr;
typedef struct gcu_ctx_st *gcu_ctx;
typedef struct gcu_stream_st *gcu_stream;
typedef struct gcu_event_st *gcu_event;
typedef struct gcu_module_st *gcu_module;
typedef struct gcu_func_st *gcu_function;

#define GCU_IPC_HANDLE_SIZE 64
typedef struct { char reserved[GCU_IPC_HANDLE_SIZE]; } gcu_ipc_mem_handle;

enum {
  GCU_SUCCESS = 0,
  GCU_ERROR_INVALID_VALUE = 1,
  GCU_ERROR_NOT_INITIALIZED = 3,
  GCU_ERROR_NO_DEVICE = 100,
  GCU_ERROR_INVALID_CONTEXT = 201,
  GCU_ERROR_NOT_READY = 600,
};

enum { /* CUpointer_attribute */
  GCU_POINTER_ATTRIBUTE_CONTEXT = 1,
  GCU_POINTER_ATTRIBUTE_MEMORY_TYPE = 2,
  GCU_POINTER_ATTRIBUTE_HOST_POINTER = 4,
  GCU_POINTER_ATTRIBUTE_IS_MANAGED = 8,
  GCU_POINTER_ATTRIBUTE_DEVICE_ORDINAL = 9,
};

enum { /* CUmemorytype */
  GCU_MEMORYTYPE_HOST = 1,
  GCU_MEMORYTYPE_DEVICE = 2,
  GCU_MEMORYTYPE_ARRAY = 3,
  GCU_MEMORYTYPE_UNIFIED = 4,
};

#define GCU_MEMHOSTALLOC_PORTABLE 0x1
#define GCU_MEMHOSTALLOC_DEVICEMAP 0x2
#define GCU_STREAM_NON_BLOCKING 0x1
#define GCU_EVENT_DEFAULT 0x0
#define GCU_EVENT_DISABLE_TIMING 0x2
#define GCU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS 0x1
#define GCU_MEM_ATTACH_GLOBAL 0x1

#define GPU_MAX_DEVICES 64
#define GPU_MAX_MODULES 16

/* Where a pointer lives. */
enum {
  GPU_MEM_HOST = 0,   /* pageable host memory (or anything CUDA does not know) */
  GPU_MEM_PINNED = 1, /* page-locked host memory (cuMemHostAlloc, registered) */
  GPU_MEM_DEVICE = 2, /* GPU memory: cuMemAlloc, VMM, managed */
};

typedef struct gpu_module_entry {
  const void *image;  /* the embedded image it was loaded from */
  int device;
  gcu_module module;
} gpu_module_entry;

/* The loaded driver: entry points (named as in cuda.h, resolved to the
 * versioned symbols the header maps them to) and per-device state. */
typedef struct gpu_cuda {
  void *lib;                       /* dlopen handle of libcuda.so.1 */
  int driver_version;              /* e.g. 13000 */
  int ndevices;
  uint64_t process_token;          /* random per process, for IPC blobs */
  pthread_mutex_t lock;            /* guards ctx[] and modules[] */
  gcu_ctx ctx[GPU_MAX_DEVICES];    /* retained primary contexts (NULL = not yet) */
  gcu_stream copy_stream[GPU_MAX_DEVICES]; /* gpu_copy_sync's, made on first use */
  gpu_module_entry modules[GPU_MAX_MODULES];
  int nmodules;

  gcu_result (*cuInit)(unsigned int flags);
  gcu_result (*cuDriverGetVersion)(int *version);
  gcu_result (*cuGetErrorString)(gcu_result error, const char **str);
  gcu_result (*cuDeviceGetCount)(int *count);
  gcu_result (*cuDeviceGet)(gcu_device *dev, int ordinal);
  gcu_result (*cuDeviceGetPCIBusId)(char *bus_id, int len, gcu_device dev);
  gcu_result (*cuDevicePrimaryCtxRetain)(gcu_ctx *ctx, gcu_device dev);
  gcu_result (*cuDevicePrimaryCtxRelease)(gcu_device dev);
  gcu_result (*cuCtxSetCurrent)(gcu_ctx ctx);
  gcu_result (*cuCtxGetCurrent)(gcu_ctx *ctx);
  gcu_result (*cuCtxSynchronize)(void);
  gcu_result (*cuPointerGetAttribute)(void *data, int attribute, gcu_dptr ptr);
  gcu_result (*cuPointerGetAttributes)(unsigned int n, int *attributes,
                                       void **data, gcu_dptr ptr);
  gcu_result (*cuMemAlloc)(gcu_dptr *dptr, size_t size);
  gcu_result (*cuMemAllocManaged)(gcu_dptr *dptr, size_t size,
                                  unsigned int flags);
  gcu_result (*cuMemFree)(gcu_dptr dptr);
  gcu_result (*cuMemGetAddressRange)(gcu_dptr *base, size_t *size,
                                     gcu_dptr dptr);
  gcu_result (*cuMemHostAlloc)(void **pp, size_t size, unsigned int flags);
  gcu_result (*cuMemFreeHost)(void *p);
  gcu_result (*cuMemHostGetDevicePointer)(gcu_dptr *dptr, void *p,
                                          unsigned int flags);
  gcu_result (*cuMemsetD8)(gcu_dptr dst, unsigned char value, size_t n);
  gcu_result (*cuMemcpyHtoD)(gcu_dptr dst, const void *src, size_t n);
  gcu_result (*cuMemcpyDtoH)(void *dst, gcu_dptr src, size_t n);
  gcu_result (*cuMemcpyDtoD)(gcu_dptr dst, gcu_dptr src, size_t n);
  gcu_result (*cuMemcpyHtoDAsync)(gcu_dptr dst, const void *src, size_t n,
                                  gcu_stream s);
  gcu_result (*cuMemcpyDtoHAsync)(void *dst, gcu_dptr src, size_t n,
                                  gcu_stream s);
  gcu_result (*cuMemcpyDtoDAsync)(gcu_dptr dst, gcu_dptr src, size_t n,
                                  gcu_stream s);
  gcu_result (*cuStreamCreate)(gcu_stream *s, unsigned int flags);
  gcu_result (*cuStreamDestroy)(gcu_stream s);
  gcu_result (*cuStreamSynchronize)(gcu_stream s);
  gcu_result (*cuEventCreate)(gcu_event *e, unsigned int flags);
  gcu_result (*cuEventRecord)(gcu_event e, gcu_stream s);
  gcu_result (*cuEventQuery)(gcu_event e);
  gcu_result (*cuEventSynchronize)(gcu_event e);
  gcu_result (*cuEventElapsedTime)(float *ms, gcu_event start, gcu_event end);
  gcu_result (*cuEventDestroy)(gcu_event e);
  gcu_result (*cuModuleLoadData)(gcu_module *m, const void *image);
  gcu_result (*cuModuleUnload)(gcu_module m);
  gcu_result (*cuModuleGetFunction)(gcu_function *f, gcu_module m,
                                    const char *name);
  gcu_result (*cuLaunchKernel)(gcu_function f, unsigned int gx,
                               unsigned int gy, unsigned int gz,
                               unsigned int bx, unsigned int by,
                               unsigned int bz, unsigned int shared_bytes,
                               gcu_stream s, void **params, void **extra);
  gcu_result (*cuIpcGetMemHandle)(gcu_ipc_mem_handle *h, gcu_dptr dptr);
  gcu_result (*cuIpcOpenMemHandle)(gcu_dptr *dptr, gcu_ipc_mem_handle h,
                                   unsigned int flags);
  gcu_result (*cuIpcCloseMemHandle)(gcu_dptr dptr);
} gpu_cuda;

/* Load libcuda.so.1 (or $TCPX_P2P_CUDA_LIB), resolve every entry point and
 * call cuInit, once per process; later calls return the same object or
 * the same error. Without the driver: NET_ECUDA and "no CUDA:
 * libcuda.so.1 not found (NVIDIA driver missing): <dlerror>". */
int gpu_cuda_load(gpu_cuda **out);

/* Where `p` lives, and on which device (-1 for pageable host memory).
 * Never fails for want of CUDA: without the driver every pointer is
 * GPU_MEM_HOST. Returns NET_OK, or NET_ECUDA if the driver refuses. */
int gpu_ptr_classify(const void *p, int *kind, int *device);

/* Retain `device`'s primary context (once; it is kept for the process) and
 * make it current on the calling thread. `ctx` may be NULL. */
int gpu_cuda_use_device(gpu_cuda *c, int device, gcu_ctx *ctx);

/* Make `ctx` current on the calling thread (cheap when it already is). */
int gpu_cuda_enter(gpu_cuda *c, gcu_ctx ctx);
/* Copy n bytes between host memory (any kind) and GPU memory on `device`
 * and wait for that copy only: it runs on a non-blocking stream of its own,
 * so it neither waits for nor holds up the application's kernels (as
 * cuCtxSynchronize would). For the small messages that travel inline. */
int gpu_copy_sync(gpu_cuda *c, int device, void *dst, const void *src, size_t n,
                  int to_device);

/* Load `image` (cubin, PTX or fatbin) into `device`'s primary context once
 * and look `name` up in it. The calling thread must have entered that
 * device's context. */
int gpu_cuda_function(gpu_cuda *c, int device, const void *image,
                      const char *name, gcu_function *fn);

/* Turn a failed driver call into NET_ECUDA with "<what>: <driver text>
 * (CUDA error N)". Returns NET_OK when `r` is GCU_SUCCESS. */
int gpu_cuda_check(gpu_cuda *c, gcu_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline gcu_dptr gpu_dptr(const void *p) {
  return (gcu_dptr)(uintptr_t)p;
}
static inline void *gpu_vptr(gcu_dptr p) { return (void *)(uintptr_t)p; }

#endif
