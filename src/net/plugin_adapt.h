/* Private to the plugin loader: a loaded ncclNet_vN table and the
 * per-version adapters that make it a net.h transport.
 *
 * plugin.c finds and initialises the table; plugin_adapt.c converts every
 * call (int <-> size_t sizes, vN properties -> net_props, the extra
 * arguments of v10 and v11). */
#ifndef TCPX_P2P_PLUGIN_ADAPT_H
#define TCPX_P2P_PLUGIN_ADAPT_H

#include "net.h"

/* The most buffers one grouped irecv may carry through the adapters. */
#define PLUGIN_MAX_RECVS 8

typedef union plugin_table {
  const void *any;
  const ncclNet_v7_t *v7;
  const ncclNet_v8_t *v8;
  const ncclNet_v9_t *v9;
  const ncclNet_v10_t *v10;
  const ncclNet_v11_t *v11;
} plugin_table;

typedef ncclResult_t (*plugin_isend_int_fn)(void *, void *, int, int, void *,
                                            void **);
typedef ncclResult_t (*plugin_irecv_int_fn)(void *, int, void **, int *,
                                            int *, void **, void **);

/* The table's members, typed. Members whose signature changed between
 * versions have one field per signature; only the one of the loaded
 * version is set. */
typedef struct plugin_calls {
  /* Same signature in v7 ... v11. */
  ncclResult_t (*devices)(int *ndev);
  ncclResult_t (*accept)(void *listen_comm, void **recv_comm,
                         devhandle_t **recv_dev);
  ncclResult_t (*deregMr)(void *comm, void *mhandle);
  ncclResult_t (*iflush)(void *recv_comm, int n, void **data, int *sizes,
                         void **mhandles, void **request);
  ncclResult_t (*test)(void *request, int *done, int *sizes);
  ncclResult_t (*closeSend)(void *comm);
  ncclResult_t (*closeRecv)(void *comm);
  ncclResult_t (*closeListen)(void *comm);
  ncclResult_t (*irecvConsumed)(void *recv_comm, int n, void *request);
  /* getProperties: v7, v8, v9 and v10, v11. */
  ncclResult_t (*props_v7)(int dev, ncclNetProperties_v7_t *p);
  ncclResult_t (*props_v8)(int dev, ncclNetProperties_v8_t *p);
  ncclResult_t (*props_v9)(int dev, ncclNetProperties_v9_t *p);
  ncclResult_t (*props_v11)(int dev, ncclNetProperties_v11_t *p);
  /* listen: v7 ... v10; v11 takes the init context first. */
  ncclResult_t (*listen)(int dev, void *handle, void **listen_comm);
  ncclResult_t (*listen_ctx)(void *ctx, int dev, void *handle,
                             void **listen_comm);
  /* connect: v7 ... v9; v10 with a config; v11 with the init context. */
  ncclResult_t (*connect)(int dev, void *handle, void **send_comm,
                          devhandle_t **send_dev);
  ncclResult_t (*connect_cfg)(int dev, ncclNetCommConfig_t *cfg,
                              void *handle, void **send_comm,
                              devhandle_t **send_dev);
  ncclResult_t (*connect_ctx)(void *ctx, int dev, void *handle,
                              void **send_comm, devhandle_t **send_dev);
  /* regMr: int size in v7, size_t from v8. */
  ncclResult_t (*regMr_int)(void *comm, void *data, int size, int type,
                            void **mhandle);
  ncclResult_t (*regMr)(void *comm, void *data, size_t size, int type,
                        void **mhandle);
  /* isend/irecv: int sizes in v7, v8; size_t in v9; with profiler handles
   * in v10, v11. */
  plugin_isend_int_fn isend_int;
  plugin_irecv_int_fn irecv_int;
  ncclResult_t (*isend)(void *send_comm, void *data, size_t size, int tag,
                        void *mhandle, void **request);
  ncclResult_t (*irecv)(void *recv_comm, int n, void **data, size_t *sizes,
                        int *tags, void **mhandles, void **request);
  ncclResult_t (*isend_ph)(void *send_comm, void *data, size_t size, int tag,
                           void *mhandle, void *phandle, void **request);
  ncclResult_t (*irecv_ph)(void *recv_comm, int n, void **data,
                           size_t *sizes, int *tags, void **mhandles,
                           void **phandles, void **request);
} plugin_calls;

struct plugin_lib; /* plugin.c's registry entry for one dlopen handle */

/* One loaded instance: what net_transport.impl points to. */
typedef struct plugin_inst {
  net_ops ops;               /* the version's adapter; irecv_consumed NULL
                                when the plugin has none */
  plugin_calls calls;
  plugin_table table;
  int version;
  void *ctx;                 /* v11: the context init returned */
  ncclNetCommConfig_t config; /* trafficClass -1: v10 connect, v11 init */
  struct plugin_lib *lib;
} plugin_inst;

/* The plugin's `name` member (may be NULL). */
const char *plugin_table_name(int version, plugin_table table);

/* The first member tcpx-p2p needs that the table leaves NULL, or NULL. */
const char *plugin_missing_member(int version, plugin_table table);

/* Fill p->calls and p->ops for p->version from p->table. */
void plugin_bind(plugin_inst *p);

/* Call the table's init the way its version wants (v10+: a profiler
 * callback; v11: context, commId, config). Returns the plugin's code. */
int plugin_call_init(plugin_inst *p, ncclDebugLogger_t logger);

/* v11: finalize the context init returned (no-op otherwise). */
void plugin_call_finalize(plugin_inst *p);

/* "internal error" for 3, and so on (ncclResult_t names). */
const char *plugin_result_text(int rc);

/* Turn a plugin's failing code into an error message naming the call,
 * with the warning the plugin logged since `warn_seq`, if any. */
int plugin_result(net_transport *t, const char *call, unsigned warn_seq,
                  int rc);

/* From plugin.c: the plugin logger's warning counter and last warning. */
unsigned plugin_warn_seq(void);
int plugin_warning_since(unsigned seq, char *buf, size_t len);
/* The last warning any plugin logged, at any time: 1, or 0 when none. */
int plugin_last_warning(char *buf, size_t len);

/* From plugin.c: every adapter's destroy. */
void plugin_destroy(net_transport *t);

#endif
