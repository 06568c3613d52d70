/* A ncclNetPlugin_v7 that calls itself "GPUDirectTCPX_v7" and does nothing
 * else: init succeeds, one device, every other call fails. For `tcpx-p2p
 * doctor` tests of a host where the plugin loads. */
#include "fake_stubs.h"

static ncclResult_t init(ncclDebugLogger_t log) {
  (void)log;
  return NCCL_OK;
}

ncclNet_v7_t ncclNetPlugin_v7 = {.name = "GPUDirectTCPX_v7", .init = init,
                                 FAKE_STUB_MEMBERS_V7};
