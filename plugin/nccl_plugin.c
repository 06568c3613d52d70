/* The built-in TCP transport exported as a NCCL net plugin, versions 7 to
 * 11 ("tcpx-p2p-tcp"; NCCL 2.28 takes v11).
 *
 * The plugin ABI has no instance argument, so there is one transport per
 * process: made by the first init, shared by every version's table, and
 * released when the last v11 context is finalized (a v7 ... v10 init has no
 * finalize: it keeps the transport until the library is unloaded). Every
 * vN function is a thin wrapper over net.h; failures are logged through
 * NCCL's logger at WARN before their code is returned. */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "net.h"
#include "tcp.h"

#define PLUGIN_NAME "tcpx-p2p-tcp"
#define PLUGIN_MAX_RECVS 8

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static net_transport *tcp_net;
static int tcp_users;        /* v11 contexts, plus one for v7 ... v10 */
static int legacy_user;      /* a v7 ... v10 init has run */
static ncclDebugLogger_t nccl_log;
static char context_token;   /* what v11 init hands out as its context */
static atomic_int open_comms; /* listen, send and receive comms not closed */

static int logged(int rc, const char *call) {
  if (rc != NET_OK && nccl_log)
    nccl_log(NCCL_LOG_WARN, NCCL_NET, __FILE__, __LINE__, "%s: %s: %s",
             PLUGIN_NAME, call, err_get());
  return rc;
}

static int not_initialised(const char *call) {
  return logged(err_set(NET_EUSAGE, "called before init"), call);
}

#define NET_OR_FAIL(call)                              \
  do {                                                 \
    if (!tcp_net) return not_initialised(call);        \
  } while (0)

/* ---- life cycle ------------------------------------------------------ */

static int create_transport(void) {
  tcp_options opts;
  tcp_options_default(&opts);
  int rc = net_tcp_create(&opts, &tcp_net);
  if (rc != NET_OK) {
    /* No usable device: internal error, as GPUDirect-TCPX reports it
     * (system errors keep their code). */
    tcp_net = NULL;
    return logged(rc == NET_ESYS ? rc : NET_EINTERNAL, "init");
  }
  int ndev = 0;
  rc = net_call(tcp_net, devices, &ndev);
  if (rc == NET_OK && ndev <= 0)
    rc = err_set(NET_EINTERNAL, "no usable network interface (filter "
                 "TCPX_P2P_SOCKET_IFNAME / NCCL_SOCKET_IFNAME: \"%s\")",
                 opts.ifname);
  if (rc != NET_OK) {
    tcp_net->ops->destroy(tcp_net);
    tcp_net = NULL;
    return logged(rc, "init");
  }
  return NET_OK;
}

/* One more user of the transport, making it on first use. Call with
 * state_lock held. */
static int acquire(ncclDebugLogger_t log) {
  if (log) nccl_log = log;
  if (!tcp_net) {
    int rc = create_transport();
    if (rc != NET_OK) return rc;
  }
  tcp_users++;
  return NET_OK;
}

static void release(void) {
  if (tcp_users > 0 && --tcp_users == 0 && tcp_net) {
    tcp_net->ops->destroy(tcp_net);
    tcp_net = NULL;
    legacy_user = 0;
  }
}

static ncclResult_t init_legacy(ncclDebugLogger_t log) {
  pthread_mutex_lock(&state_lock);
  int rc = NET_OK;
  if (!legacy_user && (rc = acquire(log)) == NET_OK) legacy_user = 1;
  pthread_mutex_unlock(&state_lock);
  return rc;
}

static ncclResult_t init_v7(ncclDebugLogger_t log) { return init_legacy(log); }

static ncclResult_t init_v10(ncclDebugLogger_t log,
                             ncclProfilerCallback_t prof) {
  (void)prof;
  return init_legacy(log);
}

static ncclResult_t init_v11(void **ctx, uint64_t comm_id,
                             ncclNetCommConfig_t *config,
                             ncclDebugLogger_t log,
                             ncclProfilerCallback_t prof) {
  (void)comm_id, (void)config, (void)prof;
  pthread_mutex_lock(&state_lock);
  int rc = acquire(log);
  pthread_mutex_unlock(&state_lock);
  if (rc == NET_OK) *ctx = &context_token;
  return rc;
}

static ncclResult_t finalize_v11(void *ctx) {
  (void)ctx;
  pthread_mutex_lock(&state_lock);
  release();
  pthread_mutex_unlock(&state_lock);
  return NCCL_OK;
}

/* Unloading the library (the host's dlclose after its last comm) releases
 * what a v7 ... v10 init made. With comms still open (a process exiting
 * without closing them) other threads may still be inside the transport:
 * leave it to the exit. */
__attribute__((destructor)) static void release_on_unload(void) {
  if (tcp_net && atomic_load(&open_comms) == 0) {
    tcp_net->ops->destroy(tcp_net);
    tcp_net = NULL;
  }
}

/* Count comms a call handed out or closed. */
static int opened(int rc, void **comm) {
  if (rc == NET_OK && *comm) atomic_fetch_add(&open_comms, 1);
  return rc;
}

static int closed(int rc, const void *comm) {
  if (rc == NET_OK && comm) atomic_fetch_sub(&open_comms, 1);
  return rc;
}

/* ---- size conversions ------------------------------------------------ */

static int from_int_size(int size, const char *call, size_t *out) {
  if (size < 0)
    return logged(err_set(NET_EINVAL, "negative size %d", size), call);
  *out = (size_t)size;
  return NET_OK;
}

static int from_int_sizes(int n, const int *sizes, const char *call,
                          size_t *out) {
  if (n < 1 || n > PLUGIN_MAX_RECVS)
    return logged(err_set(NET_EINVAL, "%d buffers (1 to %d supported)", n,
                          PLUGIN_MAX_RECVS), call);
  for (int i = 0; i < n; i++) {
    int rc = from_int_size(sizes[i], call, &out[i]);
    if (rc != NET_OK) return rc;
  }
  return NET_OK;
}

/* ---- properties ------------------------------------------------------ */

static int props(int dev, net_props *p) {
  NET_OR_FAIL("getProperties");
  memset(p, 0, sizeof *p);
  return logged(net_call(tcp_net, get_properties, dev, p), "getProperties");
}

#define FILL_COMMON_PROPS(dst, src)                                       \
  do {                                                                    \
    (dst)->name = (char *)(src)->name;                                    \
    (dst)->pciPath = (char *)(src)->pci_path;                             \
    (dst)->guid = (src)->guid;                                            \
    (dst)->ptrSupport = (src)->ptr_support & ~NCCL_PTR_DMABUF;            \
    (dst)->speed = (src)->speed_mbps;                                     \
    (dst)->port = (src)->port;                                            \
    (dst)->latency = (src)->latency_us;                                   \
    (dst)->maxComms = (src)->max_comms;                                   \
    (dst)->maxRecvs = (src)->max_recvs;                                   \
    (dst)->netDeviceType = (src)->dev_type;                               \
    (dst)->netDeviceVersion = (src)->dev_version;                         \
  } while (0)

static size_t max_bytes(const net_props *p) {
  return p->max_p2p_bytes ? p->max_p2p_bytes : (size_t)INT_MAX;
}

static ncclResult_t props_v7(int dev, ncclNetProperties_v7_t *out) {
  net_props p;
  int rc = props(dev, &p);
  if (rc != NET_OK) return rc;
  memset(out, 0, sizeof *out);
  FILL_COMMON_PROPS(out, &p);
  return NCCL_OK;
}

static ncclResult_t props_v8(int dev, ncclNetProperties_v8_t *out) {
  net_props p;
  int rc = props(dev, &p);
  if (rc != NET_OK) return rc;
  memset(out, 0, sizeof *out);
  FILL_COMMON_PROPS(out, &p);
  out->regIsGlobal = p.reg_is_global;
  return NCCL_OK;
}

static ncclResult_t props_v9(int dev, ncclNetProperties_v9_t *out) {
  net_props p;
  int rc = props(dev, &p);
  if (rc != NET_OK) return rc;
  memset(out, 0, sizeof *out);
  FILL_COMMON_PROPS(out, &p);
  out->regIsGlobal = p.reg_is_global;
  out->forceFlush = p.force_flush;
  out->vProps.ndevs = 1;
  out->vProps.devs[0] = dev;
  out->maxP2pBytes = max_bytes(&p);
  out->maxCollBytes = max_bytes(&p);
  return NCCL_OK;
}

static ncclResult_t props_v11(int dev, ncclNetProperties_v11_t *out) {
  ncclNetProperties_v9_t v9;
  int rc = props_v9(dev, &v9);
  if (rc != NET_OK) return rc;
  memset(out, 0, sizeof *out);
  memcpy(out, &v9, sizeof v9); /* v11 appends to the v9 layout */
  out->maxMultiRequestSize = 1;
  return NCCL_OK;
}

/* ---- calls shared by every version ----------------------------------- */

static ncclResult_t devices(int *ndev) {
  NET_OR_FAIL("devices");
  return logged(net_call(tcp_net, devices, ndev), "devices");
}

static ncclResult_t listen_any(int dev, void *handle, void **listen_comm) {
  NET_OR_FAIL("listen");
  return opened(logged(net_call(tcp_net, listen, dev, handle, listen_comm),
                       "listen"), listen_comm);
}

static ncclResult_t connect_any(int dev, void *handle, void **send_comm,
                                devhandle_t **send_dev) {
  NET_OR_FAIL("connect");
  return opened(logged(net_call(tcp_net, connect, dev, handle, send_comm,
                                send_dev), "connect"), send_comm);
}

static ncclResult_t accept_any(void *listen_comm, void **recv_comm,
                               devhandle_t **recv_dev) {
  NET_OR_FAIL("accept");
  return opened(logged(net_call(tcp_net, accept, listen_comm, recv_comm,
                                recv_dev), "accept"), recv_comm);
}

static ncclResult_t reg_mr(void *comm, void *data, size_t size, int type,
                           void **mhandle) {
  NET_OR_FAIL("regMr");
  return logged(net_call(tcp_net, reg_mr, comm, data, size, type, mhandle),
                "regMr");
}

static ncclResult_t dereg_mr(void *comm, void *mhandle) {
  NET_OR_FAIL("deregMr");
  return logged(net_call(tcp_net, dereg_mr, comm, mhandle), "deregMr");
}

static ncclResult_t isend_any(void *send_comm, void *data, size_t size,
                              int tag, void *mhandle, void **request) {
  NET_OR_FAIL("isend");
  return logged(net_call(tcp_net, isend, send_comm, data, size, tag, mhandle,
                         request), "isend");
}

static ncclResult_t irecv_any(void *recv_comm, int n, void **data,
                              size_t *sizes, int *tags, void **mhandles,
                              void **request) {
  NET_OR_FAIL("irecv");
  return logged(net_call(tcp_net, irecv, recv_comm, n, data, sizes, tags,
                         mhandles, request), "irecv");
}

static ncclResult_t iflush(void *recv_comm, int n, void **data, int *sizes,
                           void **mhandles, void **request) {
  size_t zsizes[PLUGIN_MAX_RECVS];
  NET_OR_FAIL("iflush");
  int rc = from_int_sizes(n, sizes, "iflush", zsizes);
  if (rc != NET_OK) return rc;
  return logged(net_call(tcp_net, iflush, recv_comm, n, data, zsizes,
                         mhandles, request), "iflush");
}

/* test does not say how many sizes the request has: entries the
 * transport leaves at the marker were not written and are not copied. */
static ncclResult_t test(void *request, int *done, int *sizes) {
  size_t zsizes[PLUGIN_MAX_RECVS];
  NET_OR_FAIL("test");
  for (int i = 0; i < PLUGIN_MAX_RECVS; i++) zsizes[i] = SIZE_MAX;
  int rc = net_call(tcp_net, test, request, done, sizes ? zsizes : NULL);
  if (rc != NET_OK) return logged(rc, "test");
  if (!sizes || !*done) return NCCL_OK;
  for (int i = 0; i < PLUGIN_MAX_RECVS; i++)
    if (zsizes[i] != SIZE_MAX)
      sizes[i] = zsizes[i] > INT_MAX ? INT_MAX : (int)zsizes[i];
  return NCCL_OK;
}

static ncclResult_t close_send(void *comm) {
  NET_OR_FAIL("closeSend");
  int rc = logged(net_call(tcp_net, close_send, comm), "closeSend");
  return closed(rc, comm);
}

static ncclResult_t close_recv(void *comm) {
  NET_OR_FAIL("closeRecv");
  int rc = logged(net_call(tcp_net, close_recv, comm), "closeRecv");
  return closed(rc, comm);
}

static ncclResult_t close_listen(void *comm) {
  NET_OR_FAIL("closeListen");
  int rc = logged(net_call(tcp_net, close_listen, comm), "closeListen");
  return closed(rc, comm);
}

/* NCCL calls irecvConsumed only for UNPACK devices; the TCP transport
 * may have nothing to do there. */
static ncclResult_t irecv_consumed(void *recv_comm, int n, void *request) {
  NET_OR_FAIL("irecvConsumed");
  if (!tcp_net->ops->irecv_consumed) return NCCL_OK;
  return logged(net_call(tcp_net, irecv_consumed, recv_comm, n, request),
                "irecvConsumed");
}

/* ---- per-version signatures ------------------------------------------ */

static ncclResult_t reg_mr_v7(void *comm, void *data, int size, int type,
                              void **mhandle) {
  size_t zsize = 0;
  int rc = from_int_size(size, "regMr", &zsize);
  return rc != NET_OK ? rc : reg_mr(comm, data, zsize, type, mhandle);
}

static ncclResult_t isend_v7(void *send_comm, void *data, int size, int tag,
                             void *mhandle, void **request) {
  size_t zsize = 0;
  int rc = from_int_size(size, "isend", &zsize);
  return rc != NET_OK ? rc
                      : isend_any(send_comm, data, zsize, tag, mhandle,
                                  request);
}

static ncclResult_t irecv_v7(void *recv_comm, int n, void **data, int *sizes,
                             int *tags, void **mhandles, void **request) {
  size_t zsizes[PLUGIN_MAX_RECVS];
  int rc = from_int_sizes(n, sizes, "irecv", zsizes);
  return rc != NET_OK ? rc
                      : irecv_any(recv_comm, n, data, zsizes, tags, mhandles,
                                  request);
}

static ncclResult_t connect_v10(int dev, ncclNetCommConfig_t *config,
                                void *handle, void **send_comm,
                                devhandle_t **send_dev) {
  (void)config;
  return connect_any(dev, handle, send_comm, send_dev);
}

static ncclResult_t isend_v10(void *send_comm, void *data, size_t size,
                              int tag, void *mhandle, void *phandle,
                              void **request) {
  (void)phandle;
  return isend_any(send_comm, data, size, tag, mhandle, request);
}

static ncclResult_t irecv_v10(void *recv_comm, int n, void **data,
                              size_t *sizes, int *tags, void **mhandles,
                              void **phandles, void **request) {
  (void)phandles;
  return irecv_any(recv_comm, n, data, sizes, tags, mhandles, request);
}

static ncclResult_t listen_v11(void *ctx, int dev, void *handle,
                               void **listen_comm) {
  (void)ctx;
  return listen_any(dev, handle, listen_comm);
}

static ncclResult_t connect_v11(void *ctx, int dev, void *handle,
                                void **send_comm, devhandle_t **send_dev) {
  (void)ctx;
  return connect_any(dev, handle, send_comm, send_dev);
}

static ncclResult_t set_net_attr(void *ctx, ncclNetAttr_t *attr) {
  (void)ctx, (void)attr;
  return NCCL_OK;
}

/* ---- the exported tables --------------------------------------------- */

#define TAIL_MEMBERS                                                    \
  .iflush = iflush, .test = test, .closeSend = close_send,             \
  .closeRecv = close_recv, .closeListen = close_listen,                \
  .getDeviceMr = NULL, .irecvConsumed = irecv_consumed

const ncclNet_v7_t ncclNetPlugin_v7 = {
    .name = PLUGIN_NAME, .init = init_v7, .devices = devices,
    .getProperties = props_v7, .listen = listen_any, .connect = connect_any,
    .accept = accept_any, .regMr = reg_mr_v7, .regMrDmaBuf = NULL,
    .deregMr = dereg_mr, .isend = isend_v7, .irecv = irecv_v7, TAIL_MEMBERS};

const ncclNet_v8_t ncclNetPlugin_v8 = {
    .name = PLUGIN_NAME, .init = init_v7, .devices = devices,
    .getProperties = props_v8, .listen = listen_any, .connect = connect_any,
    .accept = accept_any, .regMr = reg_mr, .regMrDmaBuf = NULL,
    .deregMr = dereg_mr, .isend = isend_v7, .irecv = irecv_v7, TAIL_MEMBERS};

const ncclNet_v9_t ncclNetPlugin_v9 = {
    .name = PLUGIN_NAME, .init = init_v7, .devices = devices,
    .getProperties = props_v9, .listen = listen_any, .connect = connect_any,
    .accept = accept_any, .regMr = reg_mr, .regMrDmaBuf = NULL,
    .deregMr = dereg_mr, .isend = isend_any, .irecv = irecv_any,
    TAIL_MEMBERS, .makeVDevice = NULL};

const ncclNet_v10_t ncclNetPlugin_v10 = {
    .name = PLUGIN_NAME, .init = init_v10, .devices = devices,
    .getProperties = props_v9, .listen = listen_any, .connect = connect_v10,
    .accept = accept_any, .regMr = reg_mr, .regMrDmaBuf = NULL,
    .deregMr = dereg_mr, .isend = isend_v10, .irecv = irecv_v10,
    TAIL_MEMBERS, .makeVDevice = NULL};

const ncclNet_v11_t ncclNetPlugin_v11 = {
    .name = PLUGIN_NAME, .init = init_v11, .devices = devices,
    .getProperties = props_v11, .listen = listen_v11, .connect = connect_v11,
    .accept = accept_any, .regMr = reg_mr, .regMrDmaBuf = NULL,
    .deregMr = dereg_mr, .isend = isend_v10, .irecv = irecv_v10,
    TAIL_MEMBERS, .makeVDevice = NULL, .finalize = finalize_v11,
    .setNetAttr = set_net_attr};
