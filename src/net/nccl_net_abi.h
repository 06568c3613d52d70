/* The NCCL net plugin ABI, versions 7 to 11, as tcpx-p2p needs it.
 *
 * Written from the facts in docs/NET_ABI.md (checked against NCCL
 * 2.28.9). Only layouts and constants live here; no behaviour. Every struct
 * whose layout matters has its size pinned by a static assertion so a typo
 * cannot silently shift a member. */
#ifndef TCPX_P2P_NCCL_NET_ABI_H
#define TCPX_P2P_NCCL_NET_ABI_H

#include <stddef.h>
#include <stdint.h>

/* ncclResult_t values a plugin returns. */
typedef int ncclResult_t;
enum {
  NCCL_OK = 0,
  NCCL_UNHANDLED_CUDA_ERROR = 1,
  NCCL_SYSTEM_ERROR = 2,
  NCCL_INTERNAL_ERROR = 3,
  NCCL_INVALID_ARGUMENT = 4,
  NCCL_INVALID_USAGE = 5,
  NCCL_REMOTE_ERROR = 6,
};

#define NCCL_NET_HANDLE_MAXSIZE 128
#define NCCL_PTR_HOST 0x1
#define NCCL_PTR_CUDA 0x2
#define NCCL_PTR_DMABUF 0x4
#define NCCL_NET_MAX_REQUESTS 32
#define NCCL_NET_OPTIONAL_RECV_COMPLETION 0x1
#define NCCL_NET_DEVICE_HOST 0
#define NCCL_NET_DEVICE_UNPACK 1
#define NCCL_NET_DEVICE_UNPACK_VERSION 7
#define NCCL_NET_MAX_DEVS_PER_NIC 4

/* Logger levels and subsystem flags. */
enum { NCCL_LOG_NONE = 0, NCCL_LOG_VERSION, NCCL_LOG_WARN, NCCL_LOG_INFO,
       NCCL_LOG_ABORT, NCCL_LOG_TRACE };
#define NCCL_INIT 0x1
#define NCCL_NET 0x10

typedef void (*ncclDebugLogger_t)(int level, unsigned long flags,
                                  const char *file, int line,
                                  const char *fmt, ...);
typedef ncclResult_t (*ncclProfilerCallback_t)(void **eHandle, int type,
                                               void *pHandle, int64_t pluginId,
                                               void *extData);

/* Device handle: allocated by the caller, filled by the plugin. */
typedef struct {
  int netDeviceType;
  int netDeviceVersion;
  void *handle;
  size_t size;
  int needsProxyProgress;
} ncclNetDeviceHandle_t;
_Static_assert(sizeof(ncclNetDeviceHandle_t) == 32, "device handle");

typedef struct {
  int ndevs;
  int devs[NCCL_NET_MAX_DEVS_PER_NIC];
} ncclNetVDeviceProps_t;

typedef struct { int trafficClass; } ncclNetCommConfig_t; /* -1 = unset */

/* Opaque v11 attribute block; we never set attributes. */
typedef struct ncclNetAttr ncclNetAttr_t;

/* ---- properties ---------------------------------------------------- */
typedef struct {
  char *name;
  char *pciPath;
  uint64_t guid;
  int ptrSupport;
  int speed;
  int port;
  float latency;
  int maxComms;
  int maxRecvs;
  int netDeviceType;
  int netDeviceVersion;
} ncclNetProperties_v7_t;
_Static_assert(sizeof(ncclNetProperties_v7_t) == 56, "props v7");

typedef struct {
  char *name;
  char *pciPath;
  uint64_t guid;
  int ptrSupport;
  int regIsGlobal;
  int speed;
  int port;
  float latency;
  int maxComms;
  int maxRecvs;
  int netDeviceType;
  int netDeviceVersion;
} ncclNetProperties_v8_t;
_Static_assert(sizeof(ncclNetProperties_v8_t) == 64, "props v8");

typedef struct {
  char *name;
  char *pciPath;
  uint64_t guid;
  int ptrSupport;
  int regIsGlobal;
  int forceFlush;
  int speed;
  int port;
  float latency;
  int maxComms;
  int maxRecvs;
  int netDeviceType;
  int netDeviceVersion;
  ncclNetVDeviceProps_t vProps;
  size_t maxP2pBytes;
  size_t maxCollBytes;
} ncclNetProperties_v9_t;
_Static_assert(sizeof(ncclNetProperties_v9_t) == 104, "props v9");
_Static_assert(offsetof(ncclNetProperties_v9_t, vProps) == 64, "vProps");
_Static_assert(offsetof(ncclNetProperties_v9_t, maxP2pBytes) == 88, "maxP2p");
typedef ncclNetProperties_v9_t ncclNetProperties_v10_t;

typedef struct {
  char *name;
  char *pciPath;
  uint64_t guid;
  int ptrSupport;
  int regIsGlobal;
  int forceFlush;
  int speed;
  int port;
  float latency;
  int maxComms;
  int maxRecvs;
  int netDeviceType;
  int netDeviceVersion;
  ncclNetVDeviceProps_t vProps;
  size_t maxP2pBytes;
  size_t maxCollBytes;
  int maxMultiRequestSize;
} ncclNetProperties_v11_t;
_Static_assert(sizeof(ncclNetProperties_v11_t) == 112, "props v11");
_Static_assert(offsetof(ncclNetProperties_v11_t, maxMultiRequestSize) == 104,
               "maxMultiRequestSize");

/* ---- function tables ----------------------------------------------- */
#define NCCL_NET_COMMON_TAIL                                                \
  ncclResult_t (*iflush)(void *recvComm, int n, void **data, int *sizes,   \
                         void **mhandles, void **request);                 \
  ncclResult_t (*test)(void *request, int *done, int *sizes);              \
  ncclResult_t (*closeSend)(void *sendComm);                               \
  ncclResult_t (*closeRecv)(void *recvComm);                               \
  ncclResult_t (*closeListen)(void *listenComm);                           \
  ncclResult_t (*getDeviceMr)(void *comm, void *mhandle, void **dptr_mhandle); \
  ncclResult_t (*irecvConsumed)(void *recvComm, int n, void *request);

typedef ncclNetDeviceHandle_t devhandle_t;

typedef struct {
  const char *name;
  ncclResult_t (*init)(ncclDebugLogger_t logFunction);
  ncclResult_t (*devices)(int *ndev);
  ncclResult_t (*getProperties)(int dev, ncclNetProperties_v7_t *props);
  ncclResult_t (*listen)(int dev, void *handle, void **listenComm);
  ncclResult_t (*connect)(int dev, void *handle, void **sendComm,
                          devhandle_t **sendDevComm);
  ncclResult_t (*accept)(void *listenComm, void **recvComm,
                         devhandle_t **recvDevComm);
  ncclResult_t (*regMr)(void *comm, void *data, int size, int type,
                        void **mhandle);
  ncclResult_t (*regMrDmaBuf)(void *comm, void *data, size_t size, int type,
                              uint64_t offset, int fd, void **mhandle);
  ncclResult_t (*deregMr)(void *comm, void *mhandle);
  ncclResult_t (*isend)(void *sendComm, void *data, int size, int tag,
                        void *mhandle, void **request);
  ncclResult_t (*irecv)(void *recvComm, int n, void **data, int *sizes,
                        int *tags, void **mhandles, void **request);
  NCCL_NET_COMMON_TAIL
} ncclNet_v7_t;

typedef struct {
  const char *name;
  ncclResult_t (*init)(ncclDebugLogger_t logFunction);
  ncclResult_t (*devices)(int *ndev);
  ncclResult_t (*getProperties)(int dev, ncclNetProperties_v8_t *props);
  ncclResult_t (*listen)(int dev, void *handle, void **listenComm);
  ncclResult_t (*connect)(int dev, void *handle, void **sendComm,
                          devhandle_t **sendDevComm);
  ncclResult_t (*accept)(void *listenComm, void **recvComm,
                         devhandle_t **recvDevComm);
  ncclResult_t (*regMr)(void *comm, void *data, size_t size, int type,
                        void **mhandle);
  ncclResult_t (*regMrDmaBuf)(void *comm, void *data, size_t size, int type,
                              uint64_t offset, int fd, void **mhandle);
  ncclResult_t (*deregMr)(void *comm, void *mhandle);
  ncclResult_t (*isend)(void *sendComm, void *data, int size, int tag,
                        void *mhandle, void **request);
  ncclResult_t (*irecv)(void *recvComm, int n, void **data, int *sizes,
                        int *tags, void **mhandles, void **request);
  NCCL_NET_COMMON_TAIL
} ncclNet_v8_t;

typedef struct {
  const char *name;
  ncclResult_t (*init)(ncclDebugLogger_t logFunction);
  ncclResult_t (*devices)(int *ndev);
  ncclResult_t (*getProperties)(int dev, ncclNetProperties_v9_t *props);
  ncclResult_t (*listen)(int dev, void *handle, void **listenComm);
  ncclResult_t (*connect)(int dev, void *handle, void **sendComm,
                          devhandle_t **sendDevComm);
  ncclResult_t (*accept)(void *listenComm, void **recvComm,
                         devhandle_t **recvDevComm);
  ncclResult_t (*regMr)(void *comm, void *data, size_t size, int type,
                        void **mhandle);
  ncclResult_t (*regMrDmaBuf)(void *comm, void *data, size_t size, int type,
                              uint64_t offset, int fd, void **mhandle);
  ncclResult_t (*deregMr)(void *comm, void *mhandle);
  ncclResult_t (*isend)(void *sendComm, void *data, size_t size, int tag,
                        void *mhandle, void **request);
  ncclResult_t (*irecv)(void *recvComm, int n, void **data, size_t *sizes,
                        int *tags, void **mhandles, void **request);
  NCCL_NET_COMMON_TAIL
  ncclResult_t (*makeVDevice)(int *d, ncclNetVDeviceProps_t *props);
} ncclNet_v9_t;

typedef struct {
  const char *name;
  ncclResult_t (*init)(ncclDebugLogger_t logFunction,
                       ncclProfilerCallback_t profFunction);
  ncclResult_t (*devices)(int *ndev);
  ncclResult_t (*getProperties)(int dev, ncclNetProperties_v10_t *props);
  ncclResult_t (*listen)(int dev, void *handle, void **listenComm);
  ncclResult_t (*connect)(int dev, ncclNetCommConfig_t *config, void *handle,
                          void **sendComm, devhandle_t **sendDevComm);
  ncclResult_t (*accept)(void *listenComm, void **recvComm,
                         devhandle_t **recvDevComm);
  ncclResult_t (*regMr)(void *comm, void *data, size_t size, int type,
                        void **mhandle);
  ncclResult_t (*regMrDmaBuf)(void *comm, void *data, size_t size, int type,
                              uint64_t offset, int fd, void **mhandle);
  ncclResult_t (*deregMr)(void *comm, void *mhandle);
  ncclResult_t (*isend)(void *sendComm, void *data, size_t size, int tag,
                        void *mhandle, void *phandle, void **request);
  ncclResult_t (*irecv)(void *recvComm, int n, void **data, size_t *sizes,
                        int *tags, void **mhandles, void **phandles,
                        void **request);
  NCCL_NET_COMMON_TAIL
  ncclResult_t (*makeVDevice)(int *d, ncclNetVDeviceProps_t *props);
} ncclNet_v10_t;

typedef struct {
  const char *name;
  ncclResult_t (*init)(void **ctx, uint64_t commId,
                       ncclNetCommConfig_t *config,
                       ncclDebugLogger_t logFunction,
                       ncclProfilerCallback_t profFunction);
  ncclResult_t (*devices)(int *ndev);
  ncclResult_t (*getProperties)(int dev, ncclNetProperties_v11_t *props);
  ncclResult_t (*listen)(void *ctx, int dev, void *handle, void **listenComm);
  ncclResult_t (*connect)(void *ctx, int dev, void *handle, void **sendComm,
                          devhandle_t **sendDevComm);
  ncclResult_t (*accept)(void *listenComm, void **recvComm,
                         devhandle_t **recvDevComm);
  ncclResult_t (*regMr)(void *comm, void *data, size_t size, int type,
                        void **mhandle);
  ncclResult_t (*regMrDmaBuf)(void *comm, void *data, size_t size, int type,
                              uint64_t offset, int fd, void **mhandle);
  ncclResult_t (*deregMr)(void *comm, void *mhandle);
  ncclResult_t (*isend)(void *sendComm, void *data, size_t size, int tag,
                        void *mhandle, void *phandle, void **request);
  ncclResult_t (*irecv)(void *recvComm, int n, void **data, size_t *sizes,
                        int *tags, void **mhandles, void **phandles,
                        void **request);
  NCCL_NET_COMMON_TAIL
  ncclResult_t (*makeVDevice)(int *d, ncclNetVDeviceProps_t *props);
  ncclResult_t (*finalize)(void *ctx);
  ncclResult_t (*setNetAttr)(void *ctx, ncclNetAttr_t *netAttr);
} ncclNet_v11_t;

/* The tables are arrays of pointers after `name`: pin their lengths. */
_Static_assert(sizeof(ncclNet_v7_t) == 19 * sizeof(void *), "v7 table");
_Static_assert(sizeof(ncclNet_v8_t) == 19 * sizeof(void *), "v8 table");
_Static_assert(sizeof(ncclNet_v9_t) == 20 * sizeof(void *), "v9 table");
_Static_assert(sizeof(ncclNet_v10_t) == 20 * sizeof(void *), "v10 table");
_Static_assert(sizeof(ncclNet_v11_t) == 22 * sizeof(void *), "v11 table");

#endif
