/* Members for the small fake plugins whose calls after init do not matter
 * (the loader refuses the plugin before, or the test only loads it):
 * devices reports one, every other call fails with "internal error". Only
 * for tests/plugins. */
#ifndef TCPX_P2P_FAKE_STUBS_H
#define TCPX_P2P_FAKE_STUBS_H

#include "nccl_net_abi.h"

static inline ncclResult_t stub_devices(int *n) { *n = 1; return NCCL_OK; }
static inline ncclResult_t stub_props_v7(int d, ncclNetProperties_v7_t *p) {
  (void)d, (void)p; return NCCL_INTERNAL_ERROR; }
static inline ncclResult_t stub_props_v8(int d, ncclNetProperties_v8_t *p) {
  (void)d, (void)p; return NCCL_INTERNAL_ERROR; }
static inline ncclResult_t stub_listen(int d, void *h, void **c) {
  (void)d, (void)h, (void)c; return NCCL_INTERNAL_ERROR; }
static inline ncclResult_t stub_connect(int d, void *h, void **c,
                                        devhandle_t **dh) {
  (void)d, (void)h, (void)c, (void)dh; return NCCL_INTERNAL_ERROR; }
static inline ncclResult_t stub_accept(void *l, void **c, devhandle_t **dh) {
  (void)l, (void)c, (void)dh; return NCCL_INTERNAL_ERROR; }
static inline ncclResult_t stub_reg_mr_int(void *c, void *d, int s, int t,
                                           void **m) {
  (void)c, (void)d, (void)s, (void)t, (void)m; return NCCL_INTERNAL_ERROR; }
static inline ncclResult_t stub_reg_mr(void *c, void *d, size_t s, int t,
                                       void **m) {
  (void)c, (void)d, (void)s, (void)t, (void)m; return NCCL_INTERNAL_ERROR; }
static inline ncclResult_t stub_dereg_mr(void *c, void *m) {
  (void)c, (void)m; return NCCL_INTERNAL_ERROR; }
static inline ncclResult_t stub_isend_int(void *c, void *d, int s, int t,
                                          void *m, void **r) {
  (void)c, (void)d, (void)s, (void)t, (void)m, (void)r;
  return NCCL_INTERNAL_ERROR; }
static inline ncclResult_t stub_irecv_int(void *c, int n, void **d, int *s,
                                          int *t, void **m, void **r) {
  (void)c, (void)n, (void)d, (void)s, (void)t, (void)m, (void)r;
  return NCCL_INTERNAL_ERROR; }
static inline ncclResult_t stub_iflush(void *c, int n, void **d, int *s,
                                       void **m, void **r) {
  (void)c, (void)n, (void)d, (void)s, (void)m, (void)r;
  return NCCL_INTERNAL_ERROR; }
static inline ncclResult_t stub_test(void *r, int *done, int *s) {
  (void)r, (void)done, (void)s; return NCCL_INTERNAL_ERROR; }
static inline ncclResult_t stub_close(void *c) {
  (void)c; return NCCL_INTERNAL_ERROR; }

/* Every ncclNet_v7_t member after .name and .init, as stubs: a fake that
 * only differs in its name and init writes
 *   ncclNet_v7_t ncclNetPlugin_v7 = {.name = "...", .init = init,
 *                                    FAKE_STUB_MEMBERS_V7};
 * so the table itself is written once, here. */
#define FAKE_STUB_MEMBERS_V7                                               \
  .devices = stub_devices, .getProperties = stub_props_v7,                 \
  .listen = stub_listen, .connect = stub_connect, .accept = stub_accept,   \
  .regMr = stub_reg_mr_int, .deregMr = stub_dereg_mr,                      \
  .isend = stub_isend_int, .irecv = stub_irecv_int, .iflush = stub_iflush, \
  .test = stub_test, .closeSend = stub_close, .closeRecv = stub_close,     \
  .closeListen = stub_close

#endif
