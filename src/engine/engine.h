/* Internals of the endpoint: connections, lanes of transport comms,
 * transfers (ops) and their chunks, memory regions and advertised
 * exposures. Shared by the src/engine/ files; not API.
 *
 * Threads: application threads call the API; they create ops and wait on
 * them. Whoever holds a connection's drive_lock "drives" it: reads and
 * writes its control socket, starts its ops and pumps its transport
 * comms. Each connection belongs to one progress thread, which drives it
 * when nobody else does; an API thread that waits for an op drives the
 * connection itself when the lock is free (no hand-over between threads,
 * which costs a wake-up per message). An acceptor thread takes incoming
 * connections through the handshake and queues them for p2p_accept. */
#ifndef TCPX_P2P_ENGINE_H
#define TCPX_P2P_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "ctrl.h"
#include "err.h"
#include "idmap.h"
#include "net.h"
#include "tcpx_p2p.h"
#include "trace.h"

#define ENGINE_LANES 2        /* 0: two-sided, 1: one-sided */
#define LANE_TWO_SIDED 0
#define LANE_ONE_SIDED 1
#define ENGINE_MAX_COMMS 16   /* per lane and direction */
#define ENGINE_MAX_WINDOW 32
#define ENGINE_MAX_THREADS 64
#define ENGINE_TOMBS 64         /* retired connections remembered */
#define GPATH_MAX_SLOTS 64      /* pinned staging slots per direction */
enum { GPATH_HOST = 0, GPATH_DIRECT = 1, GPATH_STAGED = 2 };

/* ---- small growable byte buffer (control I/O) ---------------------------- */
typedef struct bytebuf {
  uint8_t *data;
  size_t len, cap, off;       /* valid bytes are data[off..len) */
} bytebuf;
int bytebuf_reserve(bytebuf *b, size_t more);
int bytebuf_append(bytebuf *b, const void *src, size_t n);
void bytebuf_consume(bytebuf *b, size_t n);
void bytebuf_free(bytebuf *b);

/* ---- memory --------------------------------------------------------------- */
typedef struct mem_region {
  uint64_t id;
  uintptr_t base;
  size_t size;
  int ptr_type;               /* NCCL_PTR_HOST / NCCL_PTR_CUDA */
  int device;                 /* CUDA device of GPU memory, else -1 */
  int refs;                   /* the table's + one per op or serve using it */
  int serving;                /* peer accesses in progress (dereg waits) */
  int revoked;                /* deregistered: no new use */
  struct mr_handle *handles;  /* transport registrations, lazily per comm */
} mem_region;

typedef struct mr_handle {
  struct mr_handle *next;
  net_transport *net;
  void *comm;
  void *mh;
} mr_handle;

typedef struct exposure {
  uint64_t id;
  uint64_t mr_id;
  uintptr_t addr;
  size_t size;
  uint8_t key[CTRL_KEY_SIZE];
} exposure;

/* The 64-byte descriptor of an exposure (advertise -> peer's read/write). */
#define DESC_MAGIC 0x44585054u /* "TPXD" */
typedef struct desc_fields {
  uint64_t exposure_id;
  uint64_t addr;
  uint64_t size;
  uint8_t key[CTRL_KEY_SIZE];
} desc_fields;
void desc_encode(const desc_fields *d, uint8_t out[P2P_DESC_SIZE]);
int desc_decode(const uint8_t in[P2P_DESC_SIZE], desc_fields *d);

/* ---- transfers -------------------------------------------------------------- */
typedef struct op_seg {
  uint8_t *ptr;
  size_t size;                /* send/write/read: bytes; recv: capacity */
  mem_region *mr;             /* NULL for engine-internal buffers */
  desc_fields remote;         /* read/write: the peer's decoded descriptor */
  int answered;               /* read/write: the peer has answered it */
} op_seg;

typedef struct conn conn;

typedef struct op {
  struct op *next;            /* in the connection's queues */
  uint64_t id;
  p2p_op_kind kind;
  conn *c;
  size_t nseg;
  op_seg *segs;
  size_t received;            /* recv: bytes that arrived */
  uint64_t chunks_left;       /* data chunks not yet finished */
  int remote_left;            /* acknowledgements still expected */
  int started;
  int eager;                  /* SEND carried inline */
  size_t eager_bytes;         /* its inline bytes */
  int status;                 /* P2P_OK until something fails */
  atomic_int finished;        /* set under ep->ops_lock; read anywhere */
  int waited;                 /* a p2p_wait/p2p_send holds it */
  pthread_cond_t cond;
  char err[P2P_ERR_MAX];
  uint64_t seq;               /* SEND seq / one-sided request id */
} op;

/* One piece of a transfer, one transport request. */
typedef struct chunk {
  struct chunk *next;
  op *owner;                  /* NULL: a serving chunk (read response, drain) */
  struct serve *serve;        /* serving work this chunk belongs to */
  uint8_t *ptr;
  size_t size;
  mem_region *mr;
  void *request;
  int is_recv;
  int mode;                   /* GPATH_HOST, _DIRECT or _STAGED */
  int slot;                   /* staging slot, or -1 */
  int copying;                /* staged: its copy to the slot (send) or to
                                 the GPU (receive) started */
  uint64_t unpack_k;          /* receive number on an unpack comm */
  uint64_t repeat;            /* a run: chunks this entry stands for, cut
                                 off one at a time when posted (chunks.c) */
  size_t stride;              /* a run: bytes from one of its chunks to the next */
  int drain;                  /* lands in a scratch slot chosen when posted */
  void *flush_req;            /* iflush in progress (forceFlush plugins) */
} chunk;

typedef struct chunk_fifo {
  chunk *head, *tail;
  int count;
} chunk_fifo;

/* A lane in one direction: its comms, and per comm the chunks waiting to
 * be posted and those in flight (tested oldest first). */
typedef struct lane {
  int ncomms;
  void *comm[ENGINE_MAX_COMMS];
  chunk_fifo waiting[ENGINE_MAX_COMMS];
  chunk_fifo inflight[ENGINE_MAX_COMMS];
  chunk_fifo finishing[ENGINE_MAX_COMMS]; /* received, copy to GPU pending */
  struct gpu_unpack *unpack[ENGINE_MAX_COMMS]; /* UNPACK device handle's */
  uint64_t next_chunk;        /* chunk n goes to comm n % ncomms */
  uint64_t drain_next[ENGINE_MAX_COMMS]; /* drain receives posted per comm */
} lane;

/* Work the endpoint does for the peer (serving a read, receiving a write,
 * draining a refused message): finished when its chunks are. */
typedef struct serve {
  struct serve *next;
  ctrl_type reply;            /* CTRL_WRITE_DONE, CTRL_SEND_DONE or 0 */
  uint64_t id;
  int status;
  size_t size;
  uint64_t chunks_left;
  mem_region *mr;             /* region held (inflight) while serving */
} serve;

typedef struct p2p_endpoint p2p_endpoint;

/* Bounds against hostile or broken peers (limits.c reads them from the
 * environment; docs/ARCHITECTURE.md, "Limits against hostile peers"). */
typedef struct ep_limits {
  size_t eager_buf;        /* TCPX_P2P_EAGER_BUF: see EAGER_MAX_PENDING */
  int hello_ms;            /* TCPX_P2P_HELLO_TIMEOUT_MS: a new socket's peer
                              must have sent its HELLO, AUTH and HANDLES */
  int max_handshakes;      /* TCPX_P2P_MAX_HANDSHAKES: set-ups at once */
  int max_pending;         /* TCPX_P2P_MAX_PENDING: accepted, not yet taken */
  int max_conns;           /* TCPX_P2P_MAX_CONNS: live connections */
  size_t max_regions;      /* TCPX_P2P_MAX_REGIONS: registered regions */
  int max_ops;             /* TCPX_P2P_MAX_OPS_PER_CONN: unfinished ops */
} ep_limits;
void limits_load(ep_limits *l);

/* A SEND announced by the peer, waiting for a matching recv. */
typedef struct incoming_send {
  struct incoming_send *next;
  uint64_t seq;
  uint32_t nseg;
  size_t mem;                 /* bytes it holds (counted in incoming_bytes) */
  uint8_t *data;              /* inline bytes (small messages), or NULL */
  uint64_t sizes[];           /* then the inline bytes, if any */
} incoming_send;

/* Small host-memory messages travel inside their SEND; at most this many
 * may wait for the peer's receive at once (the peer buffers them), and at
 * most ep->eager_buf bytes of them (TCPX_P2P_EAGER_BUF): a receiver holding
 * that much for a connection stops reading its control socket until the
 * application receives some (back-pressure on a peer that ignores this). */
#define EAGER_MAX_PENDING 64
#define EAGER_BUF_DEFAULT (64u << 20)

struct conn {
  conn *next;                 /* in its progress thread's list */
  p2p_endpoint *ep;
  uint64_t id;
  int fd;                     /* control socket */
  int is_local;               /* same host: unix socket + loopback transport */
  net_transport *net;         /* ep->net, or ep->local_net for local ones */
  int ndevs;
  int devs[ENGINE_MAX_COMMS]; /* transport devices its comms use */
  char peer_ip[64];
  int peer_gpu;
  size_t chunk_size;
  int split;                  /* small messages cut finer (both sides agreed) */
  int window;
  lane send_lanes[ENGINE_LANES];
  lane recv_lanes[ENGINE_LANES];
  /* Comms whose requests never ended (drain.c): never closed or
   * deregistered, so the plugin never sees them freed under a request. */
  void *abandoned[2 * ENGINE_LANES * ENGINE_MAX_COMMS];
  int nabandoned;
  bytebuf in, out;            /* control bytes */
  /* Submission from API threads (under sub_lock). */
  pthread_mutex_t sub_lock;
  op *submitted_head, *submitted_tail;
  /* Everything below is owned by whoever holds drive_lock. */
  pthread_mutex_t drive_lock;
  int watch_events;           /* what the progress thread's epoll watches on fd */
  op *sends_active;           /* SEND ops waiting for SEND_DONE */
  op *recvs_waiting;          /* RECV ops not matched yet, in order */
  op *recvs_active;           /* matched RECV ops receiving chunks */
  op *remote_ops;             /* WRITE/READ ops waiting on the peer */
  incoming_send *incoming_head, *incoming_tail;
  int nincoming;
  int eager_pending;          /* inline SENDs not yet acknowledged */
  size_t eager_pending_bytes; /* and their bytes */
  size_t incoming_bytes;      /* memory held by incoming_head's list */
  int nserving;               /* writes and drains being received (lim.max_ops
                                 pauses reading) */
  int nreading;               /* reads being served (lim.max_ops refuses more) */
  int read_resumed;           /* reading paused, then room made: parse again */
  size_t eager_max;           /* largest message sent inline */
  serve *serving;
  uint8_t *scratch;           /* drain buffer, chunk_size bytes */
  mem_region scratch_mr;
  int ptr_support;            /* the transport's NCCL_PTR_* bits (CUDA dropped
                                 where a device has no PCI path) */
  int force_flush;            /* the transport asks for iflush after GPU receives */
  struct gpu_staging *stage[2];          /* [0] sends, [1] receives */
  int stage_free[2];
  int stage_stack[2][GPATH_MAX_SLOTS];  /* free slot indices */
  mem_region stage_mr[2][GPATH_MAX_SLOTS];
  uint64_t next_send_seq, next_recv_seq, next_access_id;
  uint64_t last_rx_ns, last_tx_ns;
  uint64_t silent_since_ns;   /* peer silent past two pings (logged once), or 0 */
  atomic_int dead;            /* failed or closed: no new ops */
  int peer_closed;            /* the peer said BYE */
  char dead_err[P2P_ERR_MAX];
  int thread;                 /* index of its progress thread */
  int registered;             /* in ep->conns */
  conn *accept_next;          /* in ep's accepted queue */
  atomic_int abort_code;      /* set by API threads: fail it (close, timeout) */
  atomic_int ops_open;        /* ops made and not finished (lim.max_ops) */
  atomic_int refs;            /* the table's, the accept queue's, one per op
                                 and per ep_conn_get caller: freed at 0 */
  struct {                    /* counters, read by p2p_conn_stats_get */
    atomic_uint_fast64_t bytes_sent, bytes_received, ops_completed, ops_failed;
    atomic_size_t incoming_peak; /* most incoming_bytes ever held (tests) */
    atomic_int serving_peak;     /* most serves at once (tests) */
    atomic_uint_fast64_t ops_timed_out; /* ops that ended with P2P_ETIMEDOUT */
    atomic_uint_fast64_t timeouts;      /* peer lost to the liveness timeout */
    atomic_uint_fast64_t retries;       /* posts the transport said "busy" to */
    atomic_uint_fast64_t stream_resets; /* data streams lost */
    atomic_uint_fast64_t pings_sent, pings_received;
    atomic_uint_fast64_t last_heard_ns; /* last_rx_ns, readable by any thread */
  } stats;
};

typedef struct progress_thread {
  p2p_endpoint *ep;
  pthread_t tid;
  int index;
  int wake_fd;                /* eventfd */
  int epoll_fd;               /* its connections' control sockets + wake_fd */
  atomic_int kicked;          /* woken since it last looked: do not sleep */
  pthread_mutex_t lock;       /* guards `adopt` */
  conn *adopt;                /* new connections to take over */
  conn *conns;                /* owned */
  atomic_int sleeping;
  int started;
} progress_thread;

struct p2p_endpoint {
  p2p_options opts;           /* string members point at the copies below */
  char *auth_token;           /* "" when none */
  char plugin[512];
  char ifname[256];
  net_transport *net;
  int ndevs;
  int devs[ENGINE_MAX_COMMS]; /* transport devices this endpoint uses */
  int listen_fd;
  struct sockaddr_storage listen_addr;
  char local_ip[64];
  atomic_int stop;
  atomic_int api_users;       /* callers inside blocking calls (destroy waits) */
  uint64_t instance_nonce;

  net_transport *local_net;   /* built-in TCP on lo, for connect_local */
  int local_fd;               /* unix socket listener, or -1 */
  char local_path[108];
  unsigned long local_ino;    /* our socket file (remove only if still ours) */

  pthread_t acceptor;
  int acceptor_started;
  int spare_fd;               /* given up to shed a connection at EMFILE */
  int handshakes;             /* handshake threads running (accept_lock) */
  int handshakes_active;      /* of them, not evicted (accept_lock) */
  struct hs_job *hs_jobs;     /* set-ups in progress, oldest first (accept_lock) */
  int npending;               /* connections queued for accept (accept_lock) */
  pthread_mutex_t accept_lock;
  pthread_cond_t accept_cond;
  conn *accepted_head, *accepted_tail;  /* ready for p2p_accept */
  conn *local_head, *local_tail;        /* ready for p2p_accept_local */

  progress_thread threads[ENGINE_MAX_THREADS];
  int nthreads;
  int spin_yields, nap_us;    /* idle with requests in flight: yield, then nap */
  int idle_spin_us;           /* idle without: keep polling this long first */
  int wait_spin_us;           /* a waiting caller polls its socket this long */
  ep_limits lim;
  int split;                  /* offer the finer cut (TCPX_P2P_SPLIT, 0) */
  trace_buf *trace;           /* TCPX_P2P_TRACE step timestamps, or NULL */

  pthread_mutex_t conns_lock;
  idmap conns;                /* id -> conn: live ones, and dead ones until
                                 their progress thread retires them */
  atomic_int conn_structs;    /* conns allocated and not yet freed (tests) */
  struct {                    /* the latest retired connections, so that a
                                 call on one still says why it died */
    uint64_t id;
    int code;
    char why[P2P_ERR_MAX];
    p2p_conn_stats stats;     /* its counters when it was retired */
  } tombs[ENGINE_TOMBS];
  unsigned next_tomb;
  uint64_t next_conn_id;

  pthread_mutex_t regions_lock;
  pthread_cond_t regions_cond; /* inflight counts reaching 0 */
  idmap regions;              /* id -> mem_region */
  idmap exposures;            /* id -> exposure */
  idmap exposure_ranges;      /* hash of (region, addr, size) -> exposure */
  uint64_t next_mr_id, next_exposure_id;

  pthread_mutex_t ipc_lock;   /* the IPC copy engine and async workers */
  pthread_cond_t ipc_cond;
  void *ipc_cache[64];        /* gpu_ipc_cache per GPU, made on first use */
  int ipc_workers;            /* threads running async *_ipc calls */

  pthread_mutex_t ops_lock;
  idmap ops;                  /* unfinished or not yet reported */
  uint64_t next_op_id;
};

/* endpoint.c */
int ep_err(int code, const char *fmt, ...) P2P_PRINTF(2, 3);
/* Blocking calls run between these, so destroy can wake them and wait
 * until none is inside before freeing. enter fails once destroy began. */
int api_enter(p2p_endpoint *ep);
void api_leave(p2p_endpoint *ep);
/* The connection, held (ep_conn_put when done). P2P_ENOTFOUND, or for a
 * recently retired one the code it died with (P2P_EPEER...). */
int ep_conn_find(p2p_endpoint *ep, uint64_t conn_id, conn **out);
conn *ep_conn_get(p2p_endpoint *ep, uint64_t conn_id); /* NULL + error */
void ep_conn_put(conn *c);
void conn_hold(conn *c);
/* A dead connection leaves the table (its progress thread calls this);
 * it is freed once the last holder lets go. */
void ep_conn_retire(p2p_endpoint *ep, conn *c);
/* A retired connection's last counters: 1, or 0 when it is not remembered. */
int ep_conn_tomb_stats(p2p_endpoint *ep, uint64_t conn_id, p2p_conn_stats *out);
/* api.c: the connection's counters now. */
void conn_stats_snapshot(conn *c, p2p_conn_stats *out);
uint64_t now_ns(void);
/* CLOCK_REALTIME now + ms, for pthread_cond_timedwait. */
void deadline_in(struct timespec *ts, int ms);

int ep_register_conn(p2p_endpoint *ep, conn *c);
int ep_live_conns(p2p_endpoint *ep); /* registered and not dead */

/* acceptor.c */
int acceptor_start(p2p_endpoint *ep);
void acceptor_stop(p2p_endpoint *ep); /* joins it and every set-up thread */
/* P2P_OK when one more connection may be set up, else P2P_ELIMIT. */
int acceptor_room(p2p_endpoint *ep);

/* handshake.c: connector and acceptor sides. On success *out is a live
 * connection (comms up), not yet handed to a progress thread. The acceptor
 * passes a watch: its set-up is bounded by lim.hello_ms until the peer's
 * HANDLES are in (then `late` is set), and gives up once `evicted`. */
typedef struct hs_watch {
  atomic_int late;
  atomic_int evicted;
} hs_watch;
int handshake_connect(p2p_endpoint *ep, int fd, const char *peer_ip,
                      int is_local, conn **out);
int handshake_accept(p2p_endpoint *ep, int fd, const char *peer_ip,
                     int is_local, hs_watch *w, conn **out);
void conn_free(conn *c);

/* liveness.c: control-channel pings and the peer-lost timeout (see there
 * for what timeout_ms means). */
uint64_t liveness_ping_ns(const p2p_endpoint *ep);
void liveness_heard(conn *c, uint64_t now); /* control bytes arrived */
void liveness_check(conn *c);               /* ping, or fail a lost peer */
int liveness_check_comms(conn *c);          /* -1: a comm failed (conn failed) */

/* progress.c */
int progress_start(p2p_endpoint *ep);
void progress_stop(p2p_endpoint *ep);
void progress_adopt(p2p_endpoint *ep, conn *c);
void progress_wake(p2p_endpoint *ep, conn *c);
/* An API thread drives a connection itself (see "Threads" above):
 * conn_try_drive takes drive_lock if it is free; conn_start starts an op
 * (after those queued before it); conn_drive_until drives until the op
 * finishes, the connection dies or the deadline (now_ns) passes;
 * conn_end_drive hands the connection back to its progress thread (its
 * socket watched again), woken if there is work to poll for. */
int conn_try_drive(conn *c);
void conn_start(conn *c, op *o);
void conn_drive_until(conn *c, op *o, uint64_t deadline_ns);
void conn_end_drive(conn *c);
int conn_send_ctrl(conn *c, const ctrl_msg *m, const uint64_t *sizes64);
void conn_fail(conn *c, int code, const char *why);
/* Fail it for a failed transport call: a remote error (the peer's sockets
 * reset or closed) is the peer's loss (P2P_EPEER), anything else the
 * transport's (P2P_ETRANSPORT). Returns -1. */
int conn_fail_net(conn *c, int net_rc);

/* drain.c: before a failed connection's comms close, the requests still in
 * flight end (done, failed, or abandoned at a deadline); then every
 * comm not abandoned is closed. */
void conn_drain_comms(conn *c);
void conn_close_comms(conn *c);

/* xfer.c: ops, run by the connection's driver (drive_lock held). */
void xfer_start(conn *c, op *o);              /* a submitted op */
int xfer_on_ctrl(conn *c, const ctrl_msg *m); /* a control message */
int xfer_pump(conn *c);                       /* post and test chunks */
void xfer_fail_all(conn *c, int code, const char *why);
int xfer_busy(const conn *c);                 /* requests in flight? */
/* Messages waiting for a receive hold eager_buf bytes or more, or
 * lim.max_ops peer requests are being served: read no more control
 * messages for now (see EAGER_MAX_PENDING). */
int xfer_read_paused(const conn *c);

/* ops (endpoint.c): creation, completion, lookup. */
int op_new(p2p_endpoint *ep, conn *c, p2p_op_kind kind, size_t nseg, op **out);
void op_finish(op *o, int status, const char *why);
int op_submit(op *o);
void op_discard(op *o);
void op_put_regions(op *o);
void conn_abort(conn *c, int code);

/* chunks.c: cutting transfers into chunks (see there). */
void fifo_push(chunk_fifo *f, chunk *ch);
chunk *fifo_pop(chunk_fifo *f);
/* Chunk length for a range of `size` bytes on a lane of `ncomms` comms:
 * a pure function of what both sides agreed, so both cut alike. */
uint64_t chunk_cut(uint64_t chunk_size, int ncomms, int split, uint64_t size);
/* Queue [ptr, ptr + size) on lane l for owner or sv; *n += its chunks. */
int lane_add(conn *c, lane *l, uint8_t *ptr, size_t size, int is_recv,
             op *owner, serve *sv, mem_region *mr, uint64_t *n);
/* Queue receives that drain `size` bytes of a refused message into scratch;
 * sv->chunks_left += their count. */
int lane_add_drain(conn *c, lane *l, uint64_t size, serve *sv);
/* Make the head of waiting[k] one postable chunk (cut off its run). */
int lane_take(conn *c, lane *l, int k);

/* gpu_path.c: GPU memory per chunk (see there). */
int gpath_chunk_mode(const conn *c, const chunk *ch);
int gpath_stage_ahead(conn *c, chunk *ch);
int gpath_ready_to_post(conn *c, chunk *ch, int *ready);
uint8_t *gpath_post_buffer(conn *c, chunk *ch, mem_region **mr);
int gpath_open_unpack(conn *c, lane *l, int k, const net_dev_handle *dh);
int gpath_posted_recv(conn *c, lane *l, int k, chunk *ch);
int gpath_after_test(conn *c, lane *l, int k, chunk *ch);
int gpath_finished(conn *c, lane *l, int k, chunk *ch, int *done);
void gpath_release(conn *c, chunk *ch);
void gpath_close(conn *c);
/* n bytes between GPU memory on `device` and host memory, to the GPU when
 * to_gpu, waiting for that copy only; -1 with err_get() set. */
int gpath_copy(int device, void *dst, const void *src, size_t n, int to_gpu);

/* ipc.c */
void ipc_wait_workers(p2p_endpoint *ep);
void ipc_close(p2p_endpoint *ep);

/* local.c: the same-host unix socket (connect_local / accept_local). */
int local_open(p2p_endpoint *ep);
void local_close(p2p_endpoint *ep);
int local_dial(int gpu, int *fd_out);
/* P2P_OK when the process at the other end of unix socket fd is ours
 * (same user), else P2P_EAUTH; `who` names the call in the message. */
int local_peer_ok(int fd, const char *who);

/* memcheck.c */
/* 1 when every page of [ptr, ptr + size) is mapped, else 0. */
int mem_mapped(const void *ptr, size_t size);
/* Copy host memory where either side may be unmapped: 0, or -1 (nothing
 * faulted; the copy may be partial). */
int mem_copy(void *dst, const void *src, size_t n);

/* region.c */
/* Look up a region for a local op and take a reference. */
int region_get(p2p_endpoint *ep, uint64_t mr_id, mem_region **out);
void region_put(p2p_endpoint *ep, mem_region *mr);
/* The transport's handle for mr on comm, registering on first use. */
void *region_mh(p2p_endpoint *ep, net_transport *net, mem_region *mr, void *comm);
/* Check a peer's access against our exposures; on success the region is
 * held (a reference, and counted as serving) until region_release. */
int region_acquire(p2p_endpoint *ep, const ctrl_access *a, int is_write,
                   uint8_t **ptr, mem_region **mr);
void region_release(p2p_endpoint *ep, mem_region *mr);
/* Drop transport registrations on c's comms (they are about to close). */
void regions_forget_comms(p2p_endpoint *ep, conn *c);
void regions_free_all(p2p_endpoint *ep);

/* TCPX_P2P_TRACE: a step of an op, or of a chunk (named by its op's seq;
 * serving chunks by UINT64_MAX). The kind letter is upper case when the
 * op's first buffer is GPU memory. */
static inline char trace_kind(const op *o) {
  if (!o) return '-';
  int gpu = o->nseg && o->segs[0].mr && o->segs[0].mr->ptr_type == NCCL_PTR_CUDA;
  return (gpu ? "SRDW" : "srdw")[o->kind]; /* p2p_op_kind order */
}

static inline void trace_op(const conn *c, trace_event ev, const op *o, uint64_t size) {
  trace_mark(c->ep->trace, ev, c->id, trace_kind(o), o->seq, size);
}

static inline void trace_chunk(const conn *c, trace_event ev, const chunk *ch) {
  if (c->ep->trace)
    trace_mark(c->ep->trace, ev, c->id, trace_kind(ch->owner),
               ch->owner ? ch->owner->seq : UINT64_MAX, ch->size);
}

#endif
