/* Private structures of the built-in TCP transport, shared by tcp.c
 * (instance, devices, connection set-up) and tcp_io.c (data path). */
#ifndef TCPX_P2P_TCP_INTERNAL_H
#define TCPX_P2P_TCP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <net/if.h>
#include <stdint.h>

#include "err.h"
#include "tcp.h"
#include "topo.h"

#define TCP_MAX_STREAMS 64
#define TCP_MAX_THREADS 16
#define TCP_MAX_RECVS 8
#define TCP_MAX_REQUESTS 32
/* Messages in flight per comm: every request may carry TCP_MAX_RECVS. */
#define TCP_RING (TCP_MAX_REQUESTS * TCP_MAX_RECVS)

#define TCP_HANDLE_MAGIC 0x54505848u  /* "TPXH" */
#define TCP_HELLO_MAGIC 0x54505831u   /* "TPX1" */
#define TCP_CONNECT_MAGIC 0x54505843u /* "TPXC": connect in progress */
#define TCP_CONNECTED_MAGIC 0x54505844u /* "TPXD": connect finished */
#define TCP_PROTO_VERSION 1

/* The 128-byte handle: what listen writes and connect reads. connect keeps
 * its progress in the same buffer (NCCL semantics: retried with the same
 * handle), as an id into the instance's pending table, never a pointer. */
typedef struct tcp_handle {
  uint32_t magic;
  uint16_t version;
  uint16_t nstreams;
  uint16_t family;
  uint16_t port;        /* host order */
  uint8_t addr[16];
  uint64_t listen_nonce;
  uint32_t check;       /* FNV-1a of the bytes above: catches garbage and
                           truncated handles before any connect is tried */
  uint32_t connect_magic;
  uint64_t connect_id;
} tcp_handle;
_Static_assert(sizeof(tcp_handle) <= NET_HANDLE_SIZE, "handle fits");

/* First bytes on every stream, connector to acceptor. */
typedef struct tcp_hello {
  uint32_t magic;
  uint16_t version;
  uint16_t nstreams;
  uint16_t stream;
  uint16_t pad[3];
  uint64_t listen_nonce;
  uint64_t comm_nonce;
} tcp_hello;

/* Per-stream, per-message header (little-endian host order: both ends are
 * this transport on x86-64/aarch64 Linux). */
typedef struct tcp_msg_hdr {
  uint32_t seq;  /* low 32 bits of the message number, a framing check */
  int32_t tag;
  uint64_t size; /* whole message size */
} tcp_msg_hdr;

typedef struct tcp_pending_connect tcp_pending_connect;

typedef struct tcp_instance {
  tcp_options opts;
  topo_iface *devs;     /* the devices: real interfaces */
  int ndevs;
  pthread_mutex_t lock; /* pending connects, nonce source */
  tcp_pending_connect *pending;
  uint64_t next_connect_id;
} tcp_instance;

typedef struct tcp_comm tcp_comm;

typedef struct tcp_req {
  tcp_comm *comm;
  int used;
  int is_recv;
  int n;
  uint64_t order;               /* posting order, for strict test checks */
  char *data[TCP_MAX_RECVS];
  size_t cap[TCP_MAX_RECVS];
  int tags[TCP_MAX_RECVS];
  size_t sizes[TCP_MAX_RECVS];
  int claimed[TCP_MAX_RECVS];   /* grouped recv: buffer taken by a message */
  atomic_int msgs_left;
  int tested_done;              /* strict recv: waiting for irecv_consumed */
} tcp_req;

/* One message of the comm's stream of messages, in posting order. */
typedef struct tcp_slot {
  tcp_req *req;
  int sub;              /* buffer index inside req; -1 until known (recv) */
  int tag;
  size_t size;          /* send: known at post; recv: from the header */
  atomic_int size_known;
  atomic_int parts_left;
} tcp_slot;

typedef struct tcp_stream {
  int fd;
  int index;
  uint64_t cursor;      /* message number this stream works on */
  int in_body;          /* 0: header phase, 1: body phase */
  size_t done;          /* bytes done in the current phase */
  tcp_msg_hdr hdr;
  char *part;
  size_t part_len;
  int lowat;            /* SO_RCVLOWAT now set on fd */
} tcp_stream;

typedef struct tcp_thread {
  tcp_comm *comm;
  pthread_t tid;
  int wake_fd;          /* eventfd: new work or stop */
  atomic_int sleeping;
  int tid_valid;
  int first_stream;     /* streams first, first + nthreads, ... */
} tcp_thread;

struct tcp_comm {
  tcp_instance *inst;
  int is_recv;
  int nstreams;
  int nthreads;
  int max_requests;
  int max_recvs;
  size_t min_split;
  uint64_t spin_ns;     /* helper threads poll this long before sleeping */
  int strict;
  char peer[80];        /* peer address as seen on stream 0 */
  char dev[IF_NAMESIZE]; /* the local device (interface) it runs over, so a
                            failure names the NIC: with several NICs, the
                            one to check */
  tcp_stream streams[TCP_MAX_STREAMS];
  tcp_thread threads[TCP_MAX_THREADS];
  pthread_mutex_t lock; /* API side: requests, ring tail; grouped-recv claims */
  tcp_req reqs[TCP_MAX_REQUESTS];
  uint64_t next_order;
  tcp_slot ring[TCP_RING];
  atomic_uint_fast64_t tail; /* next message number to post */
  uint64_t head;        /* oldest message whose slot may still be in use */
  atomic_int stop;
  atomic_int failed;
  atomic_int stream_resets; /* streams lost (one fails the comm) */
  char err[P2P_ERR_MAX]; /* first failure, set once under lock */
};

/* tcp_io.c: data path. */
int tcp_comm_start(tcp_comm *c);          /* spawn helper threads */
void tcp_comm_destroy(tcp_comm *c);       /* stop threads, close, free */
int tcp_isend(net_transport *t, void *comm, void *data, size_t size, int tag,
              void *mh, void **request);
int tcp_irecv(net_transport *t, void *comm, int n, void **data, size_t *sizes,
              int *tags, void **mhs, void **request);
int tcp_test(net_transport *t, void *request, int *done, size_t *sizes);
int tcp_irecv_consumed(net_transport *t, void *comm, int n, void *request);
int tcp_comm_status(net_transport *t, void *comm, int *stream_resets);

/* Which bytes of a message of `size` stream `s` carries. */
void tcp_part_range(const tcp_comm *c, uint64_t seq, size_t size, int s,
                    size_t *off, size_t *len);

#endif
