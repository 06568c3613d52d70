/* The one transport interface the engine drives.
 *
 * It is the NCCL net plugin ABI (nccl_net_abi.h) with three changes that make
 * it usable without global state: every call takes the transport instance,
 * sizes are size_t everywhere, and properties are one version-free struct.
 * plugin.c adapts any loaded ncclNet_v7..v11 to it; tcp.c implements it
 * directly. Semantics are NCCL's (docs/NET_ABI.md): listen/connect/accept never
 * block, connect/accept may return a NULL comm ("call again"), isend/irecv
 * may return a NULL request ("call again"), test is polled.
 *
 * Return codes are ncclResult_t values (NET_OK ...). A failing call leaves
 * its message in err_get(). */
#ifndef TCPX_P2P_NET_H
#define TCPX_P2P_NET_H

#include <stddef.h>
#include <stdint.h>

#include "nccl_net_abi.h"

enum {
  NET_OK = NCCL_OK,
  NET_ECUDA = NCCL_UNHANDLED_CUDA_ERROR,
  NET_ESYS = NCCL_SYSTEM_ERROR,
  NET_EINTERNAL = NCCL_INTERNAL_ERROR,
  NET_EINVAL = NCCL_INVALID_ARGUMENT,
  NET_EUSAGE = NCCL_INVALID_USAGE,
  NET_EREMOTE = NCCL_REMOTE_ERROR,
};

#define NET_HANDLE_SIZE NCCL_NET_HANDLE_MAXSIZE

typedef ncclNetDeviceHandle_t net_dev_handle;

/* Device properties. Strings are owned by the transport and stay valid
 * while it is loaded; pci_path may be NULL (unknown). */
typedef struct net_props {
  const char *name;
  const char *pci_path;
  uint64_t guid;
  int ptr_support;   /* NCCL_PTR_* bits */
  int reg_is_global;
  int force_flush;
  int speed_mbps;    /* 0 = unknown */
  int port;
  float latency_us;
  int max_comms;
  int max_recvs;     /* buffers per grouped irecv */
  int dev_type;      /* NCCL_NET_DEVICE_HOST or _UNPACK */
  int dev_version;
  size_t max_p2p_bytes;
} net_props;

typedef struct net_transport net_transport;

typedef struct net_ops {
  int (*devices)(net_transport *t, int *ndev);
  int (*get_properties)(net_transport *t, int dev, net_props *props);
  int (*listen)(net_transport *t, int dev, void *handle, void **listen_comm);
  int (*connect)(net_transport *t, int dev, void *handle, void **send_comm,
                 net_dev_handle **send_dev);
  int (*accept)(net_transport *t, void *listen_comm, void **recv_comm,
                net_dev_handle **recv_dev);
  int (*reg_mr)(net_transport *t, void *comm, void *data, size_t size,
                int type, void **mhandle);
  int (*dereg_mr)(net_transport *t, void *comm, void *mhandle);
  int (*isend)(net_transport *t, void *send_comm, void *data, size_t size,
               int tag, void *mhandle, void **request);
  int (*irecv)(net_transport *t, void *recv_comm, int n, void **data,
               size_t *sizes, int *tags, void **mhandles, void **request);
  int (*iflush)(net_transport *t, void *recv_comm, int n, void **data,
                size_t *sizes, void **mhandles, void **request);
  /* sizes: n entries, written only when non-NULL and done. */
  int (*test)(net_transport *t, void *request, int *done, size_t *sizes);
  int (*close_send)(net_transport *t, void *send_comm);
  int (*close_recv)(net_transport *t, void *recv_comm);
  int (*close_listen)(net_transport *t, void *listen_comm);
  /* NULL when the transport has no such call. */
  int (*irecv_consumed)(net_transport *t, void *recv_comm, int n,
                        void *request);
  /* NULL when the transport cannot tell: NET_OK while the comm is healthy,
   * else its failure (which stream, why) in err_get(), without a request
   * to test. *stream_resets (may be NULL): data streams it lost so far. */
  int (*comm_status)(net_transport *t, void *comm, int *stream_resets);
  /* Release the instance (and unload the plugin). */
  void (*destroy)(net_transport *t);
} net_ops;

struct net_transport {
  const net_ops *ops;
  char name[64];        /* transport name, e.g. "tcpx-p2p-tcp", "GPUDirectTCPX_v7" */
  char path[512];       /* shared object path; "" for the built-in one */
  int abi_version;      /* ncclNet_vN version in use; 0 for the built-in one */
  void *impl;           /* transport-private state */
};

/* Thin call-through helpers so callers read like the ABI. */
#define net_call(t, op, ...) ((t)->ops->op((t), __VA_ARGS__))

#endif
