/* A ncclNetPlugin_v7 whose init logs (INFO, then WARN) and fails with
 * internal error, the way GPUDirect-TCPX fails when no interface matches. */
#include "fake_stubs.h"

static ncclResult_t init(ncclDebugLogger_t log) {
  log(NCCL_LOG_INFO, NCCL_INIT, __FILE__, __LINE__,
      "fake-init-fails: looking for interfaces matching %s", "FAKE_IFNAME");
  log(NCCL_LOG_WARN, NCCL_INIT | NCCL_NET, __FILE__, __LINE__,
      "fake-init-fails: no interface found matching %s\n", "FAKE_IFNAME");
  return NCCL_INTERNAL_ERROR;
}

ncclNet_v7_t ncclNetPlugin_v7 = {.name = "fake-init-fails", .init = init,
                                 FAKE_STUB_MEMBERS_V7};
