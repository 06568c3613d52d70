/* A ncclNetPlugin_v7 that links libcuda.so.1 and, like GPUDirect-TCPX,
 * exits the process from its init when cuInit fails. The loader must never
 * call this init unless CUDA works. */
#include <stdio.h>
#include <stdlib.h>

#include "fake_stubs.h"

int cuInit(unsigned int flags);

int fake_init_calls; /* read by the test */

static ncclResult_t init(ncclDebugLogger_t log) {
  (void)log;
  fake_init_calls++;
  if (cuInit(0) != 0) {
    fprintf(stderr, "fake-needs-cuda: cuInit failed in init: exiting the "
                    "process, like GPUDirect-TCPX\n");
    exit(1);
  }
  return NCCL_OK;
}

ncclNet_v7_t ncclNetPlugin_v7 = {.name = "fake-needs-cuda", .init = init,
                                 FAKE_STUB_MEMBERS_V7};
