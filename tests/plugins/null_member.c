/* A ncclNetPlugin_v8 table whose test member is NULL: the loader must
 * refuse it and name the member. */
#include "fake_stubs.h"

static ncclResult_t init(ncclDebugLogger_t log) { (void)log; return NCCL_OK; }

ncclNet_v8_t ncclNetPlugin_v8 = {
    .name = "fake-null-member", .init = init, .devices = stub_devices,
    .getProperties = stub_props_v8, .listen = stub_listen,
    .connect = stub_connect, .accept = stub_accept, .regMr = stub_reg_mr,
    .deregMr = stub_dereg_mr, .isend = stub_isend_int,
    .irecv = stub_irecv_int, .iflush = stub_iflush, .test = NULL,
    .closeSend = stub_close, .closeRecv = stub_close,
    .closeListen = stub_close};
