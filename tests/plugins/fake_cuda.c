/* A stand-in libcuda.so.1 for the loader's CUDA check. cuInit returns
 * $FAKE_CUDA_INIT_RESULT (default 100, CUDA_ERROR_NO_DEVICE) and
 * cuDeviceGetCount reports $FAKE_CUDA_DEVICES (default 0). */
#include <stdlib.h>

static int env_int(const char *name, int fallback) {
  const char *s = getenv(name);
  return s && *s ? atoi(s) : fallback;
}

int cuInit(unsigned int flags) {
  (void)flags;
  return env_int("FAKE_CUDA_INIT_RESULT", 100);
}

int cuDeviceGetCount(int *count) {
  *count = env_int("FAKE_CUDA_DEVICES", 0);
  return 0;
}
