/* A fake NCCL net plugin exporting ncclNetPlugin_v7, v9, v10 and v11 (not
 * v8), all driving one tiny in-memory "device". It does not move data: it
 * records what the loader passes (fake_record.h) so tests can check the
 * adapters, and its test() reports exactly the sizes of the last post. */
#include <string.h>

#include "fake_record.h"
#include "nccl_net_abi.h"

fake_record fake_record_data;

typedef struct fake_request {
  int n;
  size_t sizes[8];
} fake_request;

static fake_request send_req, recv_req;
static int comm_token, listen_token, mr_token;
static int contexts[16];

/* ---- shared behaviour ------------------------------------------------ */

static void fill_props_v7(ncclNetProperties_v7_t *p) {
  memset(p, 0, sizeof *p);
  p->name = "fake-nic";
  p->guid = 0x1234;
  p->ptrSupport = NCCL_PTR_HOST;
  p->speed = FAKE_NIC_SPEED;
  p->port = 1;
  p->latency = 2.5f;
  p->maxComms = FAKE_NIC_MAX_COMMS;
  p->maxRecvs = FAKE_NIC_MAX_RECVS;
  p->netDeviceType = NCCL_NET_DEVICE_HOST;
}

static void fill_props_v9(ncclNetProperties_v9_t *p) {
  memset(p, 0, sizeof *p);
  p->name = "fake-nic";
  p->guid = 0x1234;
  p->ptrSupport = NCCL_PTR_HOST;
  p->regIsGlobal = 1;
  p->forceFlush = 1;
  p->speed = FAKE_NIC_SPEED;
  p->port = 1;
  p->latency = 2.5f;
  p->maxComms = FAKE_NIC_MAX_COMMS;
  p->maxRecvs = FAKE_NIC_MAX_RECVS;
  p->netDeviceType = NCCL_NET_DEVICE_HOST;
  p->vProps.ndevs = 1;
  p->maxP2pBytes = FAKE_NIC_MAX_P2P;
  p->maxCollBytes = FAKE_NIC_MAX_P2P;
}

static ncclResult_t devices(int *n) { *n = 1; return NCCL_OK; }

static ncclResult_t listen(int dev, void *handle, void **comm) {
  (void)dev;
  memset(handle, 0x5a, NCCL_NET_HANDLE_MAXSIZE);
  *comm = &listen_token;
  return NCCL_OK;
}

static ncclResult_t connect(int dev, void *handle, void **comm,
                            devhandle_t **dh) {
  (void)dev, (void)handle, (void)dh;
  *comm = &comm_token;
  return NCCL_OK;
}

static ncclResult_t accept(void *l, void **comm, devhandle_t **dh) {
  (void)l, (void)dh;
  *comm = &comm_token;
  return NCCL_OK;
}

static ncclResult_t reg_mr(void *c, void *d, size_t s, int t, void **mh) {
  (void)c, (void)d, (void)s, (void)t;
  *mh = &mr_token;
  return NCCL_OK;
}

static ncclResult_t reg_mr_int(void *c, void *d, int s, int t, void **mh) {
  return reg_mr(c, d, (size_t)s, t, mh);
}

static ncclResult_t dereg_mr(void *c, void *mh) {
  (void)c, (void)mh;
  return NCCL_OK;
}

static ncclResult_t isend(void *c, void *d, size_t s, int tag, void *mh,
                          void **req) {
  (void)c, (void)d, (void)tag, (void)mh;
  fake_record_data.isend_calls++;
  fake_record_data.last_isend_size = s;
  fake_record_data.last_request_was_null = *req == NULL;
  send_req.n = 1;
  send_req.sizes[0] = s;
  *req = &send_req;
  return NCCL_OK;
}

static ncclResult_t irecv(void *c, int n, void **d, size_t *s, int *tags,
                          void **mh, void **req) {
  (void)c, (void)d, (void)tags, (void)mh;
  fake_record_data.irecv_calls++;
  fake_record_data.last_irecv_n = n;
  fake_record_data.last_request_was_null = *req == NULL;
  recv_req.n = n;
  for (int i = 0; i < n && i < 8; i++)
    recv_req.sizes[i] = fake_record_data.last_irecv_sizes[i] = s[i];
  *req = &recv_req;
  return NCCL_OK;
}

static ncclResult_t iflush(void *c, int n, void **d, int *s, void **mh,
                           void **req) {
  (void)c, (void)n, (void)d, (void)s, (void)mh;
  *req = NULL;
  return NCCL_OK;
}

static ncclResult_t test(void *req, int *done, int *sizes) {
  fake_request *r = req;
  *done = 1;
  if (sizes)
    for (int i = 0; i < r->n; i++) sizes[i] = (int)r->sizes[i];
  return NCCL_OK;
}

static ncclResult_t close_comm(void *c) { (void)c; return NCCL_OK; }

/* ---- int-size entry points (v7) -------------------------------------- */

static ncclResult_t isend_int(void *c, void *d, int s, int tag, void *mh,
                              void **req) {
  return isend(c, d, (size_t)s, tag, mh, req);
}

static ncclResult_t irecv_int(void *c, int n, void **d, int *s, int *tags,
                              void **mh, void **req) {
  size_t zs[8];
  for (int i = 0; i < n && i < 8; i++) zs[i] = (size_t)s[i];
  return irecv(c, n, d, zs, tags, mh, req);
}

/* ---- per-version entry points ---------------------------------------- */

static ncclResult_t init_v7(ncclDebugLogger_t log) {
  (void)log;
  fake_record_data.init_calls[7]++;
  return NCCL_OK;
}

static ncclResult_t init_v9(ncclDebugLogger_t log) {
  (void)log;
  fake_record_data.init_calls[9]++;
  return NCCL_OK;
}

static ncclResult_t init_v10(ncclDebugLogger_t log,
                             ncclProfilerCallback_t prof) {
  (void)log;
  fake_record_data.init_calls[10]++;
  fake_record_data.last_init_had_profiler = prof != NULL;
  return NCCL_OK;
}

static ncclResult_t init_v11(void **ctx, uint64_t comm_id,
                             ncclNetCommConfig_t *cfg, ncclDebugLogger_t log,
                             ncclProfilerCallback_t prof) {
  (void)log;
  int n = fake_record_data.init_calls[11]++;
  fake_record_data.last_comm_id = comm_id;
  fake_record_data.last_init_traffic_class = cfg ? cfg->trafficClass : 999;
  fake_record_data.last_init_had_profiler = prof != NULL;
  *ctx = &contexts[n % 16];
  fake_record_data.last_init_ctx = *ctx;
  return NCCL_OK;
}

static ncclResult_t finalize_v11(void *ctx) {
  fake_record_data.finalize_calls++;
  fake_record_data.last_finalize_ctx = ctx;
  return NCCL_OK;
}

static ncclResult_t props_v7(int dev, ncclNetProperties_v7_t *p) {
  (void)dev;
  fill_props_v7(p);
  return NCCL_OK;
}

static ncclResult_t props_v9(int dev, ncclNetProperties_v9_t *p) {
  (void)dev;
  fill_props_v9(p);
  return NCCL_OK;
}

static ncclResult_t props_v11(int dev, ncclNetProperties_v11_t *p) {
  (void)dev;
  memset(p, 0, sizeof *p);
  fill_props_v9((ncclNetProperties_v9_t *)p); /* v11 extends v9 */
  p->maxMultiRequestSize = 3;
  return NCCL_OK;
}

static ncclResult_t connect_v10(int dev, ncclNetCommConfig_t *cfg, void *h,
                                void **comm, devhandle_t **dh) {
  fake_record_data.last_connect_traffic_class = cfg ? cfg->trafficClass : 999;
  return connect(dev, h, comm, dh);
}

static ncclResult_t isend_v10(void *c, void *d, size_t s, int tag, void *mh,
                              void *ph, void **req) {
  fake_record_data.last_isend_phandle_null = ph == NULL;
  return isend(c, d, s, tag, mh, req);
}

static ncclResult_t irecv_v10(void *c, int n, void **d, size_t *s, int *tags,
                              void **mh, void **ph, void **req) {
  int ok = ph != NULL;
  for (int i = 0; ok && i < n; i++) ok = ph[i] == NULL;
  fake_record_data.last_irecv_phandles_ok = ok;
  return irecv(c, n, d, s, tags, mh, req);
}

static ncclResult_t listen_v11(void *ctx, int dev, void *h, void **comm) {
  fake_record_data.last_listen_ctx = ctx;
  return listen(dev, h, comm);
}

static ncclResult_t connect_v11(void *ctx, int dev, void *h, void **comm,
                                devhandle_t **dh) {
  fake_record_data.last_connect_ctx = ctx;
  return connect(dev, h, comm, dh);
}

/* ---- the tables ------------------------------------------------------ */

#define FAKE_TAIL                                                      \
  .iflush = iflush, .test = test, .closeSend = close_comm,            \
  .closeRecv = close_comm, .closeListen = close_comm

ncclNet_v7_t ncclNetPlugin_v7 = {
    .name = "fake-versions", .init = init_v7, .devices = devices,
    .getProperties = props_v7, .listen = listen, .connect = connect,
    .accept = accept, .regMr = reg_mr_int, .deregMr = dereg_mr,
    .isend = isend_int, .irecv = irecv_int, FAKE_TAIL};

ncclNet_v9_t ncclNetPlugin_v9 = {
    .name = "fake-versions", .init = init_v9, .devices = devices,
    .getProperties = props_v9, .listen = listen, .connect = connect,
    .accept = accept, .regMr = reg_mr, .deregMr = dereg_mr, .isend = isend,
    .irecv = irecv, FAKE_TAIL};

ncclNet_v10_t ncclNetPlugin_v10 = {
    .name = "fake-versions", .init = init_v10, .devices = devices,
    .getProperties = props_v9, .listen = listen, .connect = connect_v10,
    .accept = accept, .regMr = reg_mr, .deregMr = dereg_mr,
    .isend = isend_v10, .irecv = irecv_v10, FAKE_TAIL};

ncclNet_v11_t ncclNetPlugin_v11 = {
    .name = "fake-versions", .init = init_v11, .devices = devices,
    .getProperties = props_v11, .listen = listen_v11,
    .connect = connect_v11, .accept = accept, .regMr = reg_mr,
    .deregMr = dereg_mr, .isend = isend_v10, .irecv = irecv_v10, FAKE_TAIL,
    .finalize = finalize_v11};
