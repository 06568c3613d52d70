/* tcpx-p2p: peer-to-peer GPU and host memory transfers over GPUDirect-TCPX
 * or plain TCP.
 *
 * An endpoint listens at once and is reachable through its metadata (IP,
 * port, GPU index). Connections carry two-sided send/recv (ordered per
 * connection) and one-sided read/write into regions the peer advertised;
 * every transfer is cut into chunks striped over several transport comms.
 *
 * Conventions
 * - Every call returns P2P_OK (0) or a negative P2P_E* code, and leaves a
 *   readable message for the calling thread in p2p_last_error().
 * - Ids (connections, memory regions, transfers) are never 0.
 * - Blocking calls wait at most the endpoint's op timeout (0 = as long as
 *   the peer is alive); a dead peer fails them within the liveness timeout.
 * - All calls are thread-safe. */
#ifndef TCPX_P2P_H
#define TCPX_P2P_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------ */
enum {
  P2P_OK = 0,
  P2P_EINVAL = -1,     /* bad argument */
  P2P_ENOMEM = -2,     /* out of memory */
  P2P_ENOTFOUND = -3,  /* unknown connection, region or transfer id */
  P2P_ETIMEDOUT = -4,  /* op timeout or connection set-up timeout */
  P2P_EPEER = -5,      /* peer lost, closed, or sent something invalid */
  P2P_EREFUSED = -6,   /* peer refused a one-sided op (key, bounds, dereg) */
  P2P_ETOOBIG = -7,    /* message larger than the posted receive */
  P2P_EAUTH = -8,      /* authentication failed */
  P2P_ECANCELED = -9,  /* endpoint destroyed or connection closed */
  P2P_ETRANSPORT = -10,/* the transport (plugin) failed */
  P2P_ENOTSUP = -11,   /* not supported here (e.g. GPU memory without CUDA) */
  P2P_ESYS = -12,      /* system call failed */
  P2P_ELIMIT = -13,    /* a resource limit was reached */
};

/* This thread's message for the last failure. Never NULL. */
const char *p2p_last_error(void);
/* Short name of a code: "P2P_EPEER". */
const char *p2p_strerror(int code);

/* ---- version -------------------------------------------------------------- */
/* The library's version, "MAJOR.MINOR.PATCH" (e.g. "0.3.0"); the same
 * string as `tcpx-p2p --version` and Python's tcpx_p2p.__version__. Peers
 * of different versions interoperate while their control protocol (a
 * separate number, checked at connection set-up) matches. Never NULL. */
const char *p2p_version(void);

/* ---- endpoint ------------------------------------------------------------ */
typedef struct p2p_endpoint p2p_endpoint;

typedef struct p2p_options {
  int gpu_index;          /* local GPU; any value works for host memory */
  int num_threads;        /* progress threads (>= 1) */
  const char *plugin;     /* NCCL net plugin path or name; NULL = the
                             selection order of docs/ARCHITECTURE.md;
                             "builtin" = TCP */
  const char *ifname;     /* NIC filter (NCCL_SOCKET_IFNAME syntax); NULL =
                             UCCL_SOCKET_IFNAME, NCCL_SOCKET_IFNAME, all */
  size_t chunk_size;      /* bytes per transport request (<= 4 MiB on TCPX) */
  int window;             /* requests in flight per comm (<= 16 on TCPX) */
  int comms_per_lane;     /* transport comms per lane and direction */
  int timeout_ms;         /* liveness (30000): the peer is lost when nothing
                             arrives on the control channel for this long,
                             counted from the first missing ping (pings
                             every min(timeout/8, 1 s)) */
  int connect_timeout_ms; /* connection set-up (TCPX comms take seconds) */
  int op_timeout_ms;      /* blocking-call limit; 0 = while the peer lives */
  int listen_port;        /* 0: P2P_DEFAULT_PORT + gpu_index when free,
                             else any free port */
  int no_local;           /* 1: no same-host (connect_local) listener */
  size_t eager_max;       /* messages (host or GPU memory) up to this size
                             travel inside their control message
                             (<= 64 KiB; 0 = never) */
  const char *auth_token; /* shared secret; NULL = $TCPX_P2P_AUTH_TOKEN */
} p2p_options;

/* Defaults, overridden by TCPX_P2P_* environment variables. */
void p2p_options_init(p2p_options *opts);

int p2p_endpoint_create(const p2p_options *opts, p2p_endpoint **out);
/* Fails every pending transfer with P2P_ECANCELED, wakes callers blocked
 * in accept/connect/wait (they return P2P_ECANCELED) and waits for them to
 * leave, closes connections, frees everything. No call may start once
 * destroy has begun. NULL is accepted. */
void p2p_endpoint_destroy(p2p_endpoint *ep);

/* p2p_connect with port < 0 tries P2P_DEFAULT_PORT + remote GPU index
 * (UCCL's remote_port=-1), where an endpoint listens when it can. */
#define P2P_DEFAULT_PORT 19000

/* The IP an endpoint would advertise (the interface chosen by
 * TCPX_P2P_SOCKET_IFNAME / UCCL_SOCKET_IFNAME / NCCL_SOCKET_IFNAME or
 * `ifname`), without making one. */
int p2p_oob_ip(const char *ifname, char *ip, size_t ip_len);

/* Metadata: IPv4 (4 bytes) or IPv6 (16), port (2, network order), GPU
 * index (4, host order): 10 or 22 bytes. *len in: capacity; out: length. */
#define P2P_METADATA_MAX 22
int p2p_get_metadata(p2p_endpoint *ep, uint8_t *buf, size_t *len);
int p2p_parse_metadata(const uint8_t *buf, size_t len, char *ip,
                       size_t ip_len, int *port, int *gpu_index);
/* The address the endpoint's listener uses. */
int p2p_local_ip(p2p_endpoint *ep, char *ip, size_t ip_len);

/* ---- connections -------------------------------------------------------- */
/* P2P_ELIMIT: the peer has too many connections (TCPX_P2P_MAX_PENDING,
 * TCPX_P2P_MAX_CONNS there). */
int p2p_connect(p2p_endpoint *ep, const char *ip, int remote_gpu, int port,
                uint64_t *conn_id);
/* Waits for the next incoming connection; reports the peer's IP as seen on
 * the accepted socket and its GPU index. */
int p2p_accept(p2p_endpoint *ep, char *ip, size_t ip_len, int *remote_gpu,
               uint64_t *conn_id);
/* Same host: a unix socket to the endpoint of GPU remote_gpu (the newest
 * one, if several) of the same user (others are refused: P2P_EAUTH).
 * Completes without the peer calling accept_local. */
int p2p_connect_local(p2p_endpoint *ep, int remote_gpu, uint64_t *conn_id);
int p2p_accept_local(p2p_endpoint *ep, int *remote_gpu, uint64_t *conn_id);
/* Close one connection; its pending transfers fail with P2P_ECANCELED. */
int p2p_close(p2p_endpoint *ep, uint64_t conn_id);

/* ---- memory registration --------------------------------------------- */
/* Registration never pins or touches host memory (applications register
 * per message size and free without deregistering). Host ranges must be
 * mapped (P2P_EINVAL otherwise); at most TCPX_P2P_MAX_REGIONS at once. */
int p2p_reg(p2p_endpoint *ep, void *ptr, size_t size, uint64_t *mr_id);
int p2p_regv(p2p_endpoint *ep, void *const *ptrs, const size_t *sizes,
             size_t n, uint64_t *mr_ids);
/* Revokes every descriptor advertised from the region at once. */
int p2p_dereg(p2p_endpoint *ep, uint64_t mr_id);

/* ---- two-sided ------------------------------------------------------------ */
/* send returns when the receiver has the data. recv's size is a capacity;
 * *received (may be NULL) gets the real size. A send larger than the
 * posted receive fails on both sides (P2P_ETOOBIG), never truncates. */
int p2p_send(p2p_endpoint *ep, uint64_t conn_id, uint64_t mr_id,
             const void *ptr, size_t size);
int p2p_recv(p2p_endpoint *ep, uint64_t conn_id, uint64_t mr_id, void *ptr,
             size_t size, size_t *received);
/* Vectored: segment i of the send lands in segment i of the recv. */
int p2p_sendv(p2p_endpoint *ep, uint64_t conn_id, const uint64_t *mr_ids,
              void *const *ptrs, const size_t *sizes, size_t n);
int p2p_recvv(p2p_endpoint *ep, uint64_t conn_id, const uint64_t *mr_ids,
              void *const *ptrs, const size_t *sizes, size_t n,
              size_t *received);

/* ---- one-sided --------------------------------------------------------- */
#define P2P_DESC_SIZE 64
/* Describe [ptr, ptr + size) of a registered region for the peer's
 * read/write: address, size and an unguessable key. Served by this
 * endpoint's progress threads with no call of the application. */
int p2p_advertise(p2p_endpoint *ep, uint64_t conn_id, uint64_t mr_id,
                  void *ptr, size_t size, uint8_t desc[P2P_DESC_SIZE]);
/* Read `size` bytes from the start of the remote region into ptr; write
 * `size` bytes from ptr to it. The owner checks key, bounds, liveness. */
int p2p_read(p2p_endpoint *ep, uint64_t conn_id, uint64_t mr_id, void *ptr,
             size_t size, const uint8_t desc[P2P_DESC_SIZE]);
int p2p_write(p2p_endpoint *ep, uint64_t conn_id, uint64_t mr_id,
              const void *ptr, size_t size, const uint8_t desc[P2P_DESC_SIZE]);
/* descs: n * P2P_DESC_SIZE bytes. */
int p2p_readv(p2p_endpoint *ep, uint64_t conn_id, const uint64_t *mr_ids,
              void *const *ptrs, const size_t *sizes, const uint8_t *descs,
              size_t n);
int p2p_writev(p2p_endpoint *ep, uint64_t conn_id, const uint64_t *mr_ids,
               void *const *ptrs, const size_t *sizes, const uint8_t *descs,
               size_t n);

/* ---- asynchronous ------------------------------------------------------- */
/* Each *_async call starts the transfer and returns its id at once; the
 * buffers must stay valid until it is done. */
typedef enum p2p_op_kind {
  P2P_OP_SEND, P2P_OP_RECV, P2P_OP_READ, P2P_OP_WRITE
} p2p_op_kind;

typedef struct p2p_iov {
  uint64_t mr_id;
  void *ptr;
  size_t size;
  const uint8_t *desc;    /* read/write: the peer's descriptor */
} p2p_iov;

int p2p_post(p2p_endpoint *ep, uint64_t conn_id, p2p_op_kind kind,
             const p2p_iov *iov, size_t n, uint64_t *xfer_id);
/* *done = 1 once finished; returns the transfer's error if it failed.
 * A finished transfer is forgotten after the first poll that reports it
 * (done or failed); polling it again gives P2P_ENOTFOUND. */
int p2p_poll(p2p_endpoint *ep, uint64_t xfer_id, int *done);
/* Block until done, then as p2p_poll; *received (may be NULL) gets a
 * recv's total size. timeout_ms >= 0: after that long P2P_ETIMEDOUT with
 * the transfer still pending (wait or poll again); 0 waits for ever.
 * timeout_ms < 0: the endpoint's op timeout, past which the connection is
 * failed (only that makes it safe to give the buffers back). */
int p2p_wait(p2p_endpoint *ep, uint64_t xfer_id, int timeout_ms,
             size_t *received);

/* ---- same host (UCCL's *_ipc) ------------------------------------------- */
/* On a connection from connect_local/accept_local (any connection works).
 * GPU buffers move by CUDA IPC (the peer maps the buffer and copies device
 * to device); host buffers through the connection. */
#define P2P_IPC_INFO_SIZE 128
typedef enum p2p_ipc_kind {
  P2P_IPC_SEND, P2P_IPC_RECV, P2P_IPC_WRITE, P2P_IPC_READ
} p2p_ipc_kind;

/* Describe [ptr, ptr + size) for the peer's write_ipc/read_ipc. */
int p2p_advertise_ipc(p2p_endpoint *ep, uint64_t conn_id, void *ptr,
                      size_t size, uint8_t info[P2P_IPC_INFO_SIZE]);
int p2p_write_ipc(p2p_endpoint *ep, uint64_t conn_id, const void *ptr,
                  size_t size, const uint8_t info[P2P_IPC_INFO_SIZE]);
int p2p_read_ipc(p2p_endpoint *ep, uint64_t conn_id, void *ptr, size_t size,
                 const uint8_t info[P2P_IPC_INFO_SIZE]);
/* Two-sided: the receiver lends its buffer, the sender writes into it.
 * No registration needed. */
int p2p_send_ipc(p2p_endpoint *ep, uint64_t conn_id, const void *ptr,
                 size_t size);
int p2p_recv_ipc(p2p_endpoint *ep, uint64_t conn_id, void *ptr, size_t size);
/* Asynchronous form of the four (info: write/read only); poll or wait on
 * the id as for p2p_post. */
int p2p_post_ipc(p2p_endpoint *ep, uint64_t conn_id, p2p_ipc_kind kind,
                 void *ptr, size_t size, const uint8_t *info, uint64_t *xfer_id);

/* ---- counters ---------------------------------------------------------- */
/* Per-connection counters since it was made; they stay readable after the
 * connection failed (state says why not P2P_OK), for the 64 connections
 * that failed last. */
typedef struct p2p_conn_stats {
  uint64_t bytes_sent, bytes_received; /* payload bytes moved by transfers */
  uint64_t ops_completed, ops_failed;  /* this side's ops, by outcome */
  uint64_t ops_timed_out;   /* ops that ended with P2P_ETIMEDOUT */
  uint64_t timeouts;        /* peer declared lost by the liveness timeout */
  uint64_t retries;         /* transport said "busy, call again" to a post */
  uint64_t stream_resets;   /* data streams lost (reset or closed) */
  uint64_t pings_sent, pings_received; /* control-channel liveness pings */
  uint64_t last_heard_ms;   /* since the peer's last control bytes */
  int state;                /* P2P_OK while up; else the code it failed with */
  char peer[64];            /* the peer's IP address */
} p2p_conn_stats;
int p2p_conn_stats_get(p2p_endpoint *ep, uint64_t conn_id,
                       p2p_conn_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
