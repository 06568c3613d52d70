/* The CUDA driver, loaded at run time (see cudadrv.h). */
#include "cudadrv.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "net.h"

#define CUDA_LIB_DEFAULT "libcuda.so.1"

/* One entry point: the member it fills and the symbol names to try, the
 * versioned name cuda.h maps the call to first. */
typedef struct cuda_sym {
  size_t offset;
  const char *names[2];
} cuda_sym;

#define SYM(member, ...) {offsetof(gpu_cuda, member), {__VA_ARGS__}}

static const cuda_sym cuda_syms[] = {
    SYM(cuInit, "cuInit"),
    SYM(cuDriverGetVersion, "cuDriverGetVersion"),
    SYM(cuGetErrorString, "cuGetErrorString"),
    SYM(cuDeviceGetCount, "cuDeviceGetCount"),
    SYM(cuDeviceGet, "cuDeviceGet"),
    SYM(cuDeviceGetPCIBusId, "cuDeviceGetPCIBusId"),
    SYM(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
    SYM(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
    SYM(cuCtxSetCurrent, "cuCtxSetCurrent"),
    SYM(cuCtxGetCurrent, "cuCtxGetCurrent"),
    SYM(cuCtxSynchronize, "cuCtxSynchronize"),
    SYM(cuPointerGetAttribute, "cuPointerGetAttribute"),
    SYM(cuPointerGetAttributes, "cuPointerGetAttributes"),
    SYM(cuMemAlloc, "cuMemAlloc_v2"),
    SYM(cuMemAllocManaged, "cuMemAllocManaged"),
    SYM(cuMemFree, "cuMemFree_v2"),
    SYM(cuMemGetAddressRange, "cuMemGetAddressRange_v2"),
    SYM(cuMemHostAlloc, "cuMemHostAlloc"),
    SYM(cuMemFreeHost, "cuMemFreeHost"),
    SYM(cuMemHostGetDevicePointer, "cuMemHostGetDevicePointer_v2"),
    SYM(cuMemsetD8, "cuMemsetD8_v2"),
    SYM(cuMemcpyHtoD, "cuMemcpyHtoD_v2"),
    SYM(cuMemcpyDtoH, "cuMemcpyDtoH_v2"),
    SYM(cuMemcpyDtoD, "cuMemcpyDtoD_v2"),
    SYM(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
    SYM(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"),
    SYM(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"),
    SYM(cuStreamCreate, "cuStreamCreate"),
    SYM(cuStreamDestroy, "cuStreamDestroy_v2"),
    SYM(cuStreamSynchronize, "cuStreamSynchronize"),
    SYM(cuEventCreate, "cuEventCreate"),
    SYM(cuEventRecord, "cuEventRecord"),
    SYM(cuEventQuery, "cuEventQuery"),
    SYM(cuEventSynchronize, "cuEventSynchronize"),
    SYM(cuEventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime"),
    SYM(cuEventDestroy, "cuEventDestroy_v2"),
    SYM(cuModuleLoadData, "cuModuleLoadData"),
    SYM(cuModuleUnload, "cuModuleUnload"),
    SYM(cuModuleGetFunction, "cuModuleGetFunction"),
    SYM(cuLaunchKernel, "cuLaunchKernel"),
    SYM(cuIpcGetMemHandle, "cuIpcGetMemHandle"),
    SYM(cuIpcOpenMemHandle, "cuIpcOpenMemHandle_v2"),
    SYM(cuIpcCloseMemHandle, "cuIpcCloseMemHandle"),
};

/* The driver is one per process: so is its table (cudadrv.h says why). */
static gpu_cuda the_driver;
static int load_rc = NET_ECUDA;
static char load_error[P2P_ERR_MAX];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static const char *cuda_lib_name(void) {
  const char *env = getenv("TCPX_P2P_CUDA_LIB");
  return env && *env ? env : CUDA_LIB_DEFAULT;
}

static const char *result_text(gpu_cuda *c, gcu_result r) {
  const char *s = NULL;
  if (c->cuGetErrorString && c->cuGetErrorString(r, &s) == GCU_SUCCESS && s)
    return s;
  return "unknown CUDA error";
}

int gpu_cuda_check(gpu_cuda *c, gcu_result r, const char *fmt, ...) {
  if (r == GCU_SUCCESS) return NET_OK;
  char what[P2P_ERR_MAX / 2];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return err_set(NET_ECUDA, "%s: %s (CUDA error %d)", what, result_text(c, r),
                 r);
}

static int resolve_symbols(gpu_cuda *c, const char *lib) {
  size_t n = sizeof cuda_syms / sizeof cuda_syms[0];
  for (size_t i = 0; i < n; i++) {
    void *sym = NULL;
    for (int j = 0; j < 2 && !sym && cuda_syms[i].names[j]; j++)
      sym = dlsym(c->lib, cuda_syms[i].names[j]);
    if (!sym)
      return err_set(NET_ECUDA, "CUDA: %s lacks %s (driver too old?)", lib,
                     cuda_syms[i].names[0]);
    memcpy((char *)c + cuda_syms[i].offset, &sym, sizeof sym);
  }
  return NET_OK;
}

static int init_driver(gpu_cuda *c) {
  gcu_result r = c->cuInit(0);
  if (r == GCU_ERROR_NO_DEVICE)
    return err_set(NET_ECUDA, "no CUDA: cuInit found no GPU "
                   "(CUDA_ERROR_NO_DEVICE; check CUDA_VISIBLE_DEVICES and "
                   "/dev/nvidia*)");
  if (r != GCU_SUCCESS)
    return gpu_cuda_check(c, r, "no CUDA: cuInit failed");
  int rc = gpu_cuda_check(c, c->cuDeviceGetCount(&c->ndevices),
                          "CUDA: cuDeviceGetCount");
  if (rc != NET_OK) return rc;
  if (c->ndevices <= 0)
    return err_set(NET_ECUDA, "no CUDA: the driver sees 0 GPUs");
  if (c->ndevices > GPU_MAX_DEVICES) c->ndevices = GPU_MAX_DEVICES;
  return gpu_cuda_check(c, c->cuDriverGetVersion(&c->driver_version),
                        "CUDA: cuDriverGetVersion");
}

static uint64_t random_token(void) {
  uint64_t t = 0;
  if (getrandom(&t, sizeof t, 0) == (ssize_t)sizeof t && t) return t;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^
         ((uint64_t)getpid() << 16);
}

static int load_driver(gpu_cuda *c) {
  const char *lib = cuda_lib_name();
  c->lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!c->lib)
    return err_set(NET_ECUDA, "no CUDA: %s not found (NVIDIA driver "
                   "missing): %s", lib, dlerror());
  int rc = resolve_symbols(c, lib);
  if (rc == NET_OK) rc = init_driver(c);
  if (rc != NET_OK) {
    dlclose(c->lib);
    c->lib = NULL;
    return rc;
  }
  pthread_mutex_init(&c->lock, NULL);
  c->process_token = random_token();
  return NET_OK;
}

static void load_driver_once(void) {
  load_rc = load_driver(&the_driver);
  if (load_rc != NET_OK) snprintf(load_error, sizeof load_error, "%s", err_get());
}

int gpu_cuda_load(gpu_cuda **out) {
  pthread_once(&load_once, load_driver_once);
  if (load_rc != NET_OK) {
    *out = NULL;
    return err_set(load_rc, "%s", load_error);
  }
  *out = &the_driver;
  return NET_OK;
}

/* ---- contexts and modules --------------------------------------------- */

static int copy_stream(gpu_cuda *c, int device, gcu_stream *out) {
  int rc = NET_OK;
  pthread_mutex_lock(&c->lock);
  if (!c->copy_stream[device])
    rc = gpu_cuda_check(c, c->cuStreamCreate(&c->copy_stream[device],
                                             GCU_STREAM_NON_BLOCKING),
                        "cuStreamCreate(GPU %d)", device);
  *out = c->copy_stream[device];
  pthread_mutex_unlock(&c->lock);
  return rc;
}

int gpu_copy_sync(gpu_cuda *c, int device, void *dst, const void *src, size_t n,
                  int to_device) {
  gcu_stream s;
  int rc = gpu_cuda_use_device(c, device, NULL);
  if (rc == NET_OK) rc = copy_stream(c, device, &s);
  if (rc != NET_OK || n == 0) return rc;
  gcu_result r = to_device ? c->cuMemcpyHtoDAsync(gpu_dptr(dst), src, n, s)
                           : c->cuMemcpyDtoHAsync(dst, gpu_dptr(src), n, s);
  rc = gpu_cuda_check(c, r, "copy of %zu bytes %s GPU %d", n,
                      to_device ? "to" : "from", device);
  if (rc == NET_OK)
    rc = gpu_cuda_check(c, c->cuStreamSynchronize(s), "cuStreamSynchronize(GPU %d)",
                        device);
  return rc;
}

static int retain_context(gpu_cuda *c, int device, gcu_ctx *ctx) {
  int rc = NET_OK;
  pthread_mutex_lock(&c->lock);
  if (!c->ctx[device]) {
    gcu_device dev;
    rc = gpu_cuda_check(c, c->cuDeviceGet(&dev, device), "cuDeviceGet(%d)",
                        device);
    if (rc == NET_OK)
      rc = gpu_cuda_check(c, c->cuDevicePrimaryCtxRetain(&c->ctx[device], dev),
                          "cuDevicePrimaryCtxRetain(GPU %d)", device);
  }
  *ctx = c->ctx[device];
  pthread_mutex_unlock(&c->lock);
  return rc;
}

int gpu_cuda_use_device(gpu_cuda *c, int device, gcu_ctx *ctx) {
  if (device < 0 || device >= c->ndevices)
    return err_set(NET_EINVAL, "CUDA: GPU %d does not exist (%d visible)",
                   device, c->ndevices);
  gcu_ctx mine;
  int rc = retain_context(c, device, &mine);
  if (rc == NET_OK) rc = gpu_cuda_enter(c, mine);
  if (rc == NET_OK && ctx) *ctx = mine;
  return rc;
}

int gpu_cuda_enter(gpu_cuda *c, gcu_ctx ctx) {
  gcu_ctx cur = NULL;
  if (c->cuCtxGetCurrent(&cur) == GCU_SUCCESS && cur == ctx) return NET_OK;
  return gpu_cuda_check(c, c->cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
}

static gcu_module find_module(gpu_cuda *c, int device, const void *image) {
  for (int i = 0; i < c->nmodules; i++)
    if (c->modules[i].image == image && c->modules[i].device == device)
      return c->modules[i].module;
  return NULL;
}

static int load_module(gpu_cuda *c, int device, const void *image,
                       gcu_module *out) {
  if (c->nmodules == GPU_MAX_MODULES)
    return err_set(NET_EINTERNAL, "CUDA: more than %d modules loaded",
                   GPU_MAX_MODULES);
  int rc = gpu_cuda_check(c, c->cuModuleLoadData(out, image),
                          "cuModuleLoadData(GPU %d)", device);
  if (rc != NET_OK) return rc;
  c->modules[c->nmodules++] = (gpu_module_entry){image, device, *out};
  return NET_OK;
}

int gpu_cuda_function(gpu_cuda *c, int device, const void *image,
                      const char *name, gcu_function *fn) {
  int rc = NET_OK;
  pthread_mutex_lock(&c->lock);
  gcu_module m = find_module(c, device, image);
  if (!m) rc = load_module(c, device, image, &m);
  pthread_mutex_unlock(&c->lock);
  if (rc != NET_OK) return rc;
  return gpu_cuda_check(c, c->cuModuleGetFunction(fn, m, name),
                        "cuModuleGetFunction(%s, GPU %d)", name, device);
}

/* ---- pointer classification ------------------------------------------- */

typedef struct ptr_attrs {
  unsigned int memtype;
  uint64_t managed; /* a boolean; wide so any width the driver writes fits */
  int ordinal;
} ptr_attrs;

static gcu_result query_pointer(gpu_cuda *c, const void *p, ptr_attrs *a) {
  int which[3] = {GCU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                  GCU_POINTER_ATTRIBUTE_IS_MANAGED,
                  GCU_POINTER_ATTRIBUTE_DEVICE_ORDINAL};
  void *data[3] = {&a->memtype, &a->managed, &a->ordinal};
  *a = (ptr_attrs){0, 0, -1};
  return c->cuPointerGetAttributes(3, which, data, gpu_dptr(p));
}

int gpu_ptr_classify(const void *p, int *kind, int *device) {
  *kind = GPU_MEM_HOST;
  *device = -1;
  gpu_cuda *c;
  if (!p || gpu_cuda_load(&c) != NET_OK) return NET_OK; /* no CUDA: host */
  ptr_attrs a;
  gcu_result r = query_pointer(c, p, &a);
  if (r == GCU_ERROR_INVALID_CONTEXT || r == GCU_ERROR_NOT_INITIALIZED) {
    /* A thread that never used CUDA: give it GPU 0's primary context, as
     * the runtime would, and ask again. */
    int rc = gpu_cuda_use_device(c, 0, NULL);
    if (rc != NET_OK) return rc;
    r = query_pointer(c, p, &a);
  }
  int rc = gpu_cuda_check(c, r, "cuPointerGetAttributes(%p)", p);
  if (rc != NET_OK) return rc;
  if (a.managed || a.memtype == GCU_MEMORYTYPE_DEVICE ||
      a.memtype == GCU_MEMORYTYPE_UNIFIED)
    *kind = GPU_MEM_DEVICE;
  else if (a.memtype == GCU_MEMORYTYPE_HOST)
    *kind = GPU_MEM_PINNED;
  if (*kind != GPU_MEM_HOST) *device = a.ordinal;
  return NET_OK;
}
