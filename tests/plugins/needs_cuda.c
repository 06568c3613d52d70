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

ncclNet_v7_t ncclNetPlugin_v7 = {
    .name = "fake-needs-cuda", .init = init, .devices = stub_devices,
    .getProperties = stub_props_v7, .listen = stub_listen,
    .connect = stub_connect, .accept = stub_accept,
    .regMr = stub_reg_mr_int, .deregMr = stub_dereg_mr,
    .isend = stub_isend_int, .irecv = stub_irecv_int, .iflush = stub_iflush,
    .test = stub_test, .closeSend = stub_close, .closeRecv = stub_close,
    .closeListen = stub_close};
