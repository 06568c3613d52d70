/* Per-version adapters from a loaded ncclNet_v7 ... v11 table to net.h.
 *
 * Each adapter converts only what its version differs in: int sizes
 * (v7, v8; sizes above INT_MAX are refused, never truncated), the layout of
 * the properties, and the extra arguments of v10 (connect config, profiler
 * handles) and v11 (init context). Everything else is shared. */
#include "plugin_adapt.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "err.h"

static plugin_inst *inst(net_transport *t) { return t->impl; }

const char *plugin_result_text(int rc) {
  static const char *const text[] = {
      "success",        "unhandled CUDA error", "system error",
      "internal error", "invalid argument",     "invalid usage",
      "remote error",   "in progress"};
  return rc >= 0 && rc < (int)(sizeof text / sizeof text[0]) ? text[rc]
                                                             : "unknown error";
}

/* GPUDirect-TCPX fails accept and connect when its receive-datapath
 * manager is missing, often a call after the warning that says so. */
static void rxdm_hint(const char *warning, char *hint, size_t len) {
  hint[0] = '\0';
  if (!strstr(warning, "receive-datapath-manager")) return;
  const char *prefix = getenv("NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX");
  snprintf(hint, len, "; RxDM not reachable under UNIX_CLIENT_PREFIX %s: "
           "start the receive-datapath manager or set "
           "NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX to its socket directory "
           "(`tcpx-p2p doctor` checks)",
           prefix && *prefix ? prefix : "(unset: /tmp)");
}

int plugin_result(net_transport *t, const char *call, unsigned warn_seq,
                  int rc) {
  if (rc == NCCL_OK) return NET_OK;
  char warning[256], hint[256];
  const char *said = "plugin said";
  int have = plugin_warning_since(warn_seq, warning, sizeof warning);
  if (!have && (have = plugin_last_warning(warning, sizeof warning)))
    said = "the plugin's last warning";
  if (!have)
    return err_set(rc, "net plugin %s: %s failed with error %d (%s)", t->name,
                   call, rc, plugin_result_text(rc));
  rxdm_hint(warning, hint, sizeof hint);
  return err_set(rc, "net plugin %s: %s failed with error %d (%s); %s: %s%s",
                 t->name, call, rc, plugin_result_text(rc), said, warning, hint);
}

/* ---- sizes ----------------------------------------------------------- */

static int to_int_size(net_transport *t, const char *call, size_t size,
                       int *out) {
  if (size > INT_MAX)
    return err_set(NET_EINVAL, "net plugin %s: %s of %zu bytes: ncclNet_v%d "
                   "takes int sizes (at most INT_MAX)", t->name, call, size,
                   t->abi_version);
  *out = (int)size;
  return NET_OK;
}

static int to_int_sizes(net_transport *t, const char *call, int n,
                        const size_t *sizes, int *out) {
  for (int i = 0; i < n; i++) {
    int rc = to_int_size(t, call, sizes[i], &out[i]);
    if (rc != NET_OK) return rc;
  }
  return NET_OK;
}

static int check_recv_count(net_transport *t, const char *call, int n) {
  if (n < 1 || n > PLUGIN_MAX_RECVS)
    return err_set(NET_EINVAL, "net plugin %s: %s of %d buffers (1 to %d "
                   "supported)", t->name, call, n, PLUGIN_MAX_RECVS);
  return NET_OK;
}

/* ---- properties ------------------------------------------------------ */

#define COPY_COMMON_PROPS(dst, src)            \
  do {                                         \
    (dst)->name = (src)->name;                 \
    (dst)->pci_path = (src)->pciPath;          \
    (dst)->guid = (src)->guid;                 \
    (dst)->ptr_support = (src)->ptrSupport;    \
    (dst)->speed_mbps = (src)->speed;          \
    (dst)->port = (src)->port;                 \
    (dst)->latency_us = (src)->latency;        \
    (dst)->max_comms = (src)->maxComms;        \
    (dst)->max_recvs = (src)->maxRecvs;        \
    (dst)->dev_type = (src)->netDeviceType;    \
    (dst)->dev_version = (src)->netDeviceVersion; \
  } while (0)

static int props_v7(net_transport *t, int dev, net_props *out) {
  ncclNetProperties_v7_t p;
  memset(&p, 0, sizeof p);
  unsigned seq = plugin_warn_seq();
  int rc = plugin_result(t, "getProperties", seq,
                         inst(t)->calls.props_v7(dev, &p));
  if (rc != NET_OK) return rc;
  memset(out, 0, sizeof *out);
  COPY_COMMON_PROPS(out, &p);
  out->max_p2p_bytes = INT_MAX; /* int sizes */
  return NET_OK;
}

static int props_v8(net_transport *t, int dev, net_props *out) {
  ncclNetProperties_v8_t p;
  memset(&p, 0, sizeof p);
  unsigned seq = plugin_warn_seq();
  int rc = plugin_result(t, "getProperties", seq,
                         inst(t)->calls.props_v8(dev, &p));
  if (rc != NET_OK) return rc;
  memset(out, 0, sizeof *out);
  COPY_COMMON_PROPS(out, &p);
  out->reg_is_global = p.regIsGlobal;
  out->max_p2p_bytes = INT_MAX; /* isend still takes an int size */
  return NET_OK;
}

static int props_v9(net_transport *t, int dev, net_props *out) {
  ncclNetProperties_v9_t p;
  memset(&p, 0, sizeof p);
  unsigned seq = plugin_warn_seq();
  int rc = plugin_result(t, "getProperties", seq,
                         inst(t)->calls.props_v9(dev, &p));
  if (rc != NET_OK) return rc;
  memset(out, 0, sizeof *out);
  COPY_COMMON_PROPS(out, &p);
  out->reg_is_global = p.regIsGlobal;
  out->force_flush = p.forceFlush;
  out->max_p2p_bytes = p.maxP2pBytes;
  return NET_OK;
}

static int props_v11(net_transport *t, int dev, net_props *out) {
  ncclNetProperties_v11_t p;
  memset(&p, 0, sizeof p);
  unsigned seq = plugin_warn_seq();
  int rc = plugin_result(t, "getProperties", seq,
                         inst(t)->calls.props_v11(dev, &p));
  if (rc != NET_OK) return rc;
  memset(out, 0, sizeof *out);
  COPY_COMMON_PROPS(out, &p);
  out->reg_is_global = p.regIsGlobal;
  out->force_flush = p.forceFlush;
  out->max_p2p_bytes = p.maxP2pBytes;
  return NET_OK;
}

/* ---- calls with the same signature in every version ----------------- */

static int a_devices(net_transport *t, int *ndev) {
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "devices", seq, inst(t)->calls.devices(ndev));
}

static int a_accept(net_transport *t, void *listen_comm, void **recv_comm,
                    net_dev_handle **recv_dev) {
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "accept", seq,
                       inst(t)->calls.accept(listen_comm, recv_comm,
                                             recv_dev));
}

static int a_dereg_mr(net_transport *t, void *comm, void *mhandle) {
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "deregMr", seq,
                       inst(t)->calls.deregMr(comm, mhandle));
}

static int a_iflush(net_transport *t, void *recv_comm, int n, void **data,
                    size_t *sizes, void **mhandles, void **request) {
  int isizes[PLUGIN_MAX_RECVS];
  int rc = check_recv_count(t, "iflush", n);
  if (rc == NET_OK) rc = to_int_sizes(t, "iflush", n, sizes, isizes);
  if (rc != NET_OK) return rc;
  if (!inst(t)->calls.iflush)
    return err_set(NET_EUSAGE, "net plugin %s: has no iflush", t->name);
  unsigned seq = plugin_warn_seq();
  *request = NULL;
  return plugin_result(t, "iflush", seq,
                       inst(t)->calls.iflush(recv_comm, n, data, isizes,
                                             mhandles, request));
}

/* test does not say how many sizes the request has: entries the plugin
 * leaves at the marker were not written and are not copied back. */
#define SIZE_UNWRITTEN INT_MIN

static int a_test(net_transport *t, void *request, int *done, size_t *sizes) {
  int isizes[PLUGIN_MAX_RECVS];
  for (int i = 0; i < PLUGIN_MAX_RECVS; i++) isizes[i] = SIZE_UNWRITTEN;
  unsigned seq = plugin_warn_seq();
  int rc = plugin_result(t, "test", seq,
                         inst(t)->calls.test(request, done,
                                             sizes ? isizes : NULL));
  if (rc != NET_OK || !sizes || !*done) return rc;
  for (int i = 0; i < PLUGIN_MAX_RECVS; i++)
    if (isizes[i] != SIZE_UNWRITTEN && isizes[i] >= 0)
      sizes[i] = (size_t)isizes[i];
  return NET_OK;
}

static int a_close_send(net_transport *t, void *comm) {
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "closeSend", seq, inst(t)->calls.closeSend(comm));
}

static int a_close_recv(net_transport *t, void *comm) {
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "closeRecv", seq, inst(t)->calls.closeRecv(comm));
}

static int a_close_listen(net_transport *t, void *comm) {
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "closeListen", seq,
                       inst(t)->calls.closeListen(comm));
}

static int a_irecv_consumed(net_transport *t, void *recv_comm, int n,
                            void *request) {
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "irecvConsumed", seq,
                       inst(t)->calls.irecvConsumed(recv_comm, n, request));
}

/* ---- listen and connect ---------------------------------------------- */

static int listen_plain(net_transport *t, int dev, void *handle,
                        void **listen_comm) {
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "listen", seq,
                       inst(t)->calls.listen(dev, handle, listen_comm));
}

static int listen_ctx(net_transport *t, int dev, void *handle,
                      void **listen_comm) {
  plugin_inst *p = inst(t);
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "listen", seq,
                       p->calls.listen_ctx(p->ctx, dev, handle, listen_comm));
}

static int connect_plain(net_transport *t, int dev, void *handle,
                         void **send_comm, net_dev_handle **send_dev) {
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "connect", seq,
                       inst(t)->calls.connect(dev, handle, send_comm,
                                              send_dev));
}

static int connect_cfg(net_transport *t, int dev, void *handle,
                       void **send_comm, net_dev_handle **send_dev) {
  plugin_inst *p = inst(t);
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "connect", seq,
                       p->calls.connect_cfg(dev, &p->config, handle,
                                            send_comm, send_dev));
}

static int connect_ctx(net_transport *t, int dev, void *handle,
                       void **send_comm, net_dev_handle **send_dev) {
  plugin_inst *p = inst(t);
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "connect", seq,
                       p->calls.connect_ctx(p->ctx, dev, handle, send_comm,
                                            send_dev));
}

/* ---- memory registration --------------------------------------------- */

static int reg_mr_int(net_transport *t, void *comm, void *data, size_t size,
                      int type, void **mhandle) {
  int isize = 0;
  int rc = to_int_size(t, "regMr", size, &isize);
  if (rc != NET_OK) return rc;
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "regMr", seq,
                       inst(t)->calls.regMr_int(comm, data, isize, type,
                                                mhandle));
}

static int reg_mr(net_transport *t, void *comm, void *data, size_t size,
                  int type, void **mhandle) {
  unsigned seq = plugin_warn_seq();
  return plugin_result(t, "regMr", seq,
                       inst(t)->calls.regMr(comm, data, size, type, mhandle));
}

/* ---- isend and irecv ------------------------------------------------- */
/* *request is cleared first: from v9 a non-NULL value asks for optional
 * receive completion, which tcpx-p2p never means. */

static int isend_int(net_transport *t, void *send_comm, void *data,
                     size_t size, int tag, void *mhandle, void **request) {
  int isize = 0;
  int rc = to_int_size(t, "isend", size, &isize);
  if (rc != NET_OK) return rc;
  unsigned seq = plugin_warn_seq();
  *request = NULL;
  return plugin_result(t, "isend", seq,
                       inst(t)->calls.isend_int(send_comm, data, isize, tag,
                                                mhandle, request));
}

static int isend_sz(net_transport *t, void *send_comm, void *data,
                    size_t size, int tag, void *mhandle, void **request) {
  unsigned seq = plugin_warn_seq();
  *request = NULL;
  return plugin_result(t, "isend", seq,
                       inst(t)->calls.isend(send_comm, data, size, tag,
                                            mhandle, request));
}

static int isend_ph(net_transport *t, void *send_comm, void *data,
                    size_t size, int tag, void *mhandle, void **request) {
  unsigned seq = plugin_warn_seq();
  *request = NULL;
  return plugin_result(t, "isend", seq,
                       inst(t)->calls.isend_ph(send_comm, data, size, tag,
                                               mhandle, NULL, request));
}

static int irecv_int(net_transport *t, void *recv_comm, int n, void **data,
                     size_t *sizes, int *tags, void **mhandles,
                     void **request) {
  int isizes[PLUGIN_MAX_RECVS];
  int rc = check_recv_count(t, "irecv", n);
  if (rc == NET_OK) rc = to_int_sizes(t, "irecv", n, sizes, isizes);
  if (rc != NET_OK) return rc;
  unsigned seq = plugin_warn_seq();
  *request = NULL;
  return plugin_result(t, "irecv", seq,
                       inst(t)->calls.irecv_int(recv_comm, n, data, isizes,
                                                tags, mhandles, request));
}

static int irecv_sz(net_transport *t, void *recv_comm, int n, void **data,
                    size_t *sizes, int *tags, void **mhandles,
                    void **request) {
  int rc = check_recv_count(t, "irecv", n);
  if (rc != NET_OK) return rc;
  unsigned seq = plugin_warn_seq();
  *request = NULL;
  return plugin_result(t, "irecv", seq,
                       inst(t)->calls.irecv(recv_comm, n, data, sizes, tags,
                                            mhandles, request));
}

/* v10+ hosts pass a real array of profiler handles; some plugins index it
 * without checking. */
static int irecv_ph(net_transport *t, void *recv_comm, int n, void **data,
                    size_t *sizes, int *tags, void **mhandles,
                    void **request) {
  void *phandles[PLUGIN_MAX_RECVS] = {0};
  int rc = check_recv_count(t, "irecv", n);
  if (rc != NET_OK) return rc;
  unsigned seq = plugin_warn_seq();
  *request = NULL;
  return plugin_result(t, "irecv", seq,
                       inst(t)->calls.irecv_ph(recv_comm, n, data, sizes,
                                               tags, mhandles, phandles,
                                               request));
}

/* ---- one adapter per version ----------------------------------------- */

#define SHARED_OPS                                                       \
  .devices = a_devices, .accept = a_accept, .dereg_mr = a_dereg_mr,     \
  .iflush = a_iflush, .test = a_test, .close_send = a_close_send,       \
  .close_recv = a_close_recv, .close_listen = a_close_listen,           \
  .irecv_consumed = a_irecv_consumed, .destroy = plugin_destroy

static const net_ops ops_v7 = {
    SHARED_OPS, .get_properties = props_v7, .listen = listen_plain,
    .connect = connect_plain, .reg_mr = reg_mr_int, .isend = isend_int,
    .irecv = irecv_int};
static const net_ops ops_v8 = {
    SHARED_OPS, .get_properties = props_v8, .listen = listen_plain,
    .connect = connect_plain, .reg_mr = reg_mr, .isend = isend_int,
    .irecv = irecv_int};
static const net_ops ops_v9 = {
    SHARED_OPS, .get_properties = props_v9, .listen = listen_plain,
    .connect = connect_plain, .reg_mr = reg_mr, .isend = isend_sz,
    .irecv = irecv_sz};
static const net_ops ops_v10 = {
    SHARED_OPS, .get_properties = props_v9, .listen = listen_plain,
    .connect = connect_cfg, .reg_mr = reg_mr, .isend = isend_ph,
    .irecv = irecv_ph};
static const net_ops ops_v11 = {
    SHARED_OPS, .get_properties = props_v11, .listen = listen_ctx,
    .connect = connect_ctx, .reg_mr = reg_mr, .isend = isend_ph,
    .irecv = irecv_ph};

/* Member names are the same in every version's table. */
#define BIND_SHARED(c, tb)                                                  \
  do {                                                                      \
    (c)->devices = (tb)->devices; (c)->accept = (tb)->accept;               \
    (c)->deregMr = (tb)->deregMr; (c)->iflush = (tb)->iflush;               \
    (c)->test = (tb)->test; (c)->closeSend = (tb)->closeSend;               \
    (c)->closeRecv = (tb)->closeRecv; (c)->closeListen = (tb)->closeListen; \
    (c)->irecvConsumed = (tb)->irecvConsumed;                               \
  } while (0)

#define FIRST_NULL_MEMBER(tb)                                             \
  (!(tb)->init ? "init" : !(tb)->devices ? "devices"                      \
   : !(tb)->getProperties ? "getProperties" : !(tb)->listen ? "listen"    \
   : !(tb)->connect ? "connect" : !(tb)->accept ? "accept"                \
   : !(tb)->regMr ? "regMr" : !(tb)->deregMr ? "deregMr"                  \
   : !(tb)->isend ? "isend" : !(tb)->irecv ? "irecv"                      \
   : !(tb)->test ? "test" : !(tb)->closeSend ? "closeSend"                \
   : !(tb)->closeRecv ? "closeRecv"                                       \
   : !(tb)->closeListen ? "closeListen" : NULL)

const char *plugin_missing_member(int version, plugin_table tb) {
  switch (version) {
  case 7: return FIRST_NULL_MEMBER(tb.v7);
  case 8: return FIRST_NULL_MEMBER(tb.v8);
  case 9: return FIRST_NULL_MEMBER(tb.v9);
  case 10: return FIRST_NULL_MEMBER(tb.v10);
  case 11: return FIRST_NULL_MEMBER(tb.v11);
  }
  return "(unsupported version)";
}

const char *plugin_table_name(int version, plugin_table tb) {
  switch (version) {
  case 7: return tb.v7->name;
  case 8: return tb.v8->name;
  case 9: return tb.v9->name;
  case 10: return tb.v10->name;
  case 11: return tb.v11->name;
  }
  return NULL;
}

static void bind_v7(plugin_calls *c, const ncclNet_v7_t *tb, net_ops *ops) {
  BIND_SHARED(c, tb);
  c->props_v7 = tb->getProperties;
  c->listen = tb->listen;
  c->connect = tb->connect;
  c->regMr_int = tb->regMr;
  c->isend_int = tb->isend;
  c->irecv_int = tb->irecv;
  *ops = ops_v7;
}

static void bind_v8(plugin_calls *c, const ncclNet_v8_t *tb, net_ops *ops) {
  BIND_SHARED(c, tb);
  c->props_v8 = tb->getProperties;
  c->listen = tb->listen;
  c->connect = tb->connect;
  c->regMr = tb->regMr;
  c->isend_int = tb->isend;
  c->irecv_int = tb->irecv;
  *ops = ops_v8;
}

static void bind_v9(plugin_calls *c, const ncclNet_v9_t *tb, net_ops *ops) {
  BIND_SHARED(c, tb);
  c->props_v9 = tb->getProperties;
  c->listen = tb->listen;
  c->connect = tb->connect;
  c->regMr = tb->regMr;
  c->isend = tb->isend;
  c->irecv = tb->irecv;
  *ops = ops_v9;
}

static void bind_v10(plugin_calls *c, const ncclNet_v10_t *tb, net_ops *ops) {
  BIND_SHARED(c, tb);
  c->props_v9 = tb->getProperties;
  c->listen = tb->listen;
  c->connect_cfg = tb->connect;
  c->regMr = tb->regMr;
  c->isend_ph = tb->isend;
  c->irecv_ph = tb->irecv;
  *ops = ops_v10;
}

static void bind_v11(plugin_calls *c, const ncclNet_v11_t *tb, net_ops *ops) {
  BIND_SHARED(c, tb);
  c->props_v11 = tb->getProperties;
  c->listen_ctx = tb->listen;
  c->connect_ctx = tb->connect;
  c->regMr = tb->regMr;
  c->isend_ph = tb->isend;
  c->irecv_ph = tb->irecv;
  *ops = ops_v11;
}

void plugin_bind(plugin_inst *p) {
  memset(&p->calls, 0, sizeof p->calls);
  switch (p->version) {
  case 7: bind_v7(&p->calls, p->table.v7, &p->ops); break;
  case 8: bind_v8(&p->calls, p->table.v8, &p->ops); break;
  case 9: bind_v9(&p->calls, p->table.v9, &p->ops); break;
  case 10: bind_v10(&p->calls, p->table.v10, &p->ops); break;
  case 11: bind_v11(&p->calls, p->table.v11, &p->ops); break;
  }
  if (!p->calls.irecvConsumed) p->ops.irecv_consumed = NULL;
  p->config.trafficClass = -1;
}

/* ---- init and finalize ----------------------------------------------- */

/* v10+ hosts must pass a profiler callback; this one records nothing. */
static ncclResult_t no_profiler(void **event, int type, void *phandle,
                                int64_t plugin_id, void *ext) {
  (void)type, (void)phandle, (void)plugin_id, (void)ext;
  if (event) *event = NULL;
  return NCCL_OK;
}

/* A random commId, so that contexts of one plugin never share an id. */
static uint64_t random_comm_id(void) {
  uint64_t id = 0;
  if (getrandom(&id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id) id = 0;
  return id;
}

int plugin_call_init(plugin_inst *p, ncclDebugLogger_t logger) {
  switch (p->version) {
  case 7: return p->table.v7->init(logger);
  case 8: return p->table.v8->init(logger);
  case 9: return p->table.v9->init(logger);
  case 10: return p->table.v10->init(logger, no_profiler);
  case 11:
    return p->table.v11->init(&p->ctx, random_comm_id(), &p->config, logger,
                              no_profiler);
  }
  return NCCL_INTERNAL_ERROR;
}

/* Called once per successful v11 init; the context may legitimately be
 * NULL, the plugin decides what it means. */
void plugin_call_finalize(plugin_inst *p) {
  if (p->version == 11 && p->table.v11->finalize)
    p->table.v11->finalize(p->ctx);
  p->ctx = NULL;
}
