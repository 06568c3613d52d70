/* A stand-in libcuda.so.1 for `tcpx-p2p doctor` tests: enough of the
 * driver for the engine's run-time loader to load it and list GPUs.
 * $FAKE_DRIVER_BUS_IDS is a comma list of PCI bus ids, one GPU each
 * (default: none, so cuInit reports no device). Every other entry point
 * the loader resolves exists but reports CUDA_ERROR_NOT_SUPPORTED; the
 * doctor never calls them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOT_SUPPORTED 801

static const char *bus_ids(void) {
  const char *s = getenv("FAKE_DRIVER_BUS_IDS");
  return s ? s : "";
}

static int count_gpus(void) {
  const char *s = bus_ids();
  if (!*s) return 0;
  int n = 1;
  for (; *s; s++) n += *s == ',';
  return n;
}

int cuInit(unsigned int flags) {
  (void)flags;
  return count_gpus() ? 0 : 100; /* CUDA_ERROR_NO_DEVICE */
}

int cuDriverGetVersion(int *v) {
  *v = 13000;
  return 0;
}

int cuGetErrorString(int error, const char **str) {
  (void)error;
  *str = "fake driver: not supported";
  return 0;
}

int cuDeviceGetCount(int *n) {
  *n = count_gpus();
  return 0;
}

int cuDeviceGet(int *dev, int ordinal) {
  if (ordinal < 0 || ordinal >= count_gpus()) return 101; /* invalid device */
  *dev = ordinal;
  return 0;
}

/* The dev-th entry of the list. */
int cuDeviceGetPCIBusId(char *buf, int len, int dev) {
  const char *s = bus_ids();
  for (int i = 0; i < dev && s; i++) {
    s = strchr(s, ',');
    if (s) s++;
  }
  if (!s || len <= 0) return 101;
  snprintf(buf, (size_t)len, "%.*s", (int)strcspn(s, ","), s);
  return 0;
}

/* Resolved by the loader, never called by the doctor. */
#define UNSUPPORTED(name) \
  int name(void);         \
  int name(void) { return NOT_SUPPORTED; }
UNSUPPORTED(cuDevicePrimaryCtxRetain)
UNSUPPORTED(cuDevicePrimaryCtxRelease_v2)
UNSUPPORTED(cuCtxSetCurrent)
UNSUPPORTED(cuCtxGetCurrent)
UNSUPPORTED(cuCtxSynchronize)
UNSUPPORTED(cuPointerGetAttribute)
UNSUPPORTED(cuPointerGetAttributes)
UNSUPPORTED(cuMemAlloc_v2)
UNSUPPORTED(cuMemAllocManaged)
UNSUPPORTED(cuMemFree_v2)
UNSUPPORTED(cuMemGetAddressRange_v2)
UNSUPPORTED(cuMemHostAlloc)
UNSUPPORTED(cuMemFreeHost)
UNSUPPORTED(cuMemHostGetDevicePointer_v2)
UNSUPPORTED(cuMemsetD8_v2)
UNSUPPORTED(cuMemcpyHtoD_v2)
UNSUPPORTED(cuMemcpyDtoH_v2)
UNSUPPORTED(cuMemcpyDtoD_v2)
UNSUPPORTED(cuMemcpyHtoDAsync_v2)
UNSUPPORTED(cuMemcpyDtoHAsync_v2)
UNSUPPORTED(cuMemcpyDtoDAsync_v2)
UNSUPPORTED(cuStreamCreate)
UNSUPPORTED(cuStreamDestroy_v2)
UNSUPPORTED(cuStreamSynchronize)
UNSUPPORTED(cuEventCreate)
UNSUPPORTED(cuEventRecord)
UNSUPPORTED(cuEventQuery)
UNSUPPORTED(cuEventSynchronize)
UNSUPPORTED(cuEventElapsedTime_v2)
UNSUPPORTED(cuEventDestroy_v2)
UNSUPPORTED(cuModuleLoadData)
UNSUPPORTED(cuModuleUnload)
UNSUPPORTED(cuModuleGetFunction)
UNSUPPORTED(cuLaunchKernel)
UNSUPPORTED(cuIpcGetMemHandle)
UNSUPPORTED(cuIpcOpenMemHandle_v2)
UNSUPPORTED(cuIpcCloseMemHandle)
