/* A ncclNetPlugin_v7 that calls itself "GPUDirectTCPX_v7" and does nothing
 * else: init succeeds, one device, every other call fails. For `tcpx-p2p
 * doctor` tests of a host where the plugin loads. */
#include "fake_stubs.h"

static ncclResult_t init(ncclDebugLogger_t log) {
  (void)log;
  return NCCL_OK;
}

ncclNet_v7_t ncclNetPlugin_v7 = {
    .name = "GPUDirectTCPX_v7", .init = init, .devices = stub_devices,
    .getProperties = stub_props_v7, .listen = stub_listen,
    .connect = stub_connect, .accept = stub_accept,
    .regMr = stub_reg_mr_int, .deregMr = stub_dereg_mr,
    .isend = stub_isend_int, .irecv = stub_irecv_int, .iflush = stub_iflush,
    .test = stub_test, .closeSend = stub_close, .closeRecv = stub_close,
    .closeListen = stub_close};
