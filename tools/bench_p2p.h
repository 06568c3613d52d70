/* `tcpx-p2p bench p2p`: what its two files share. bench_p2p.c runs the
 * two sides (server and client); bench_p2p_main.c reads the command line,
 * measures the iperf3 references and starts the sides. */
#ifndef TCPX_P2P_BENCH_P2P_H
#define TCPX_P2P_BENCH_P2P_H

#include "bench_ref.h"

#define P2P_SEED 0x703270ull             /* data pattern */
#define P2P_BUDGET_BYTES (512ull << 20)  /* default: bytes per op and size */
#define P2P_MIN_ITERS 5
#define P2P_MAX_ITERS 2000
#define PINGPONG_MAX (64u << 10)         /* ping-pong at sizes up to this */
#define PINGPONG_WARMUP 20
#define P2P_DEPTH 8                      /* --async: transfers in flight */
#define P2P_RUN_TIMEOUT_S 3600
#define P2P_MAX_BLOCKS 65536             /* buffers per call the API takes */
#define PINGPONG_BLOCK 50                /* raw and endpoint round trips alternate */
#define BENCH_MAX_ENDPOINTS TWOHOST_GPUS /* --endpoints: one per GPU of a host */
#define BENCH_NICS 4                     /* --endpoints > 1: A3's data NICs */

typedef enum { OP_SEND, OP_WRITE, OP_READ, OP_PINGPONG, OP_COUNT } bench_op;
extern const char *const op_names[OP_COUNT]; /* "send", ... */

typedef struct p2p_plan {
  size_t sizes[BENCH_MAX_SIZES];
  int nsizes;
  bench_op ops[OP_COUNT];
  int nops;
  int async;
  int depth;
  int kv_blocks;
  long iters;                /* 0 = by byte budget */
  int ref_seconds;           /* iperf3 -t; 0 = no bandwidth reference */
  int ref_per_size;          /* references right before each op and size */
  int ref_procs;             /* also N iperf3 processes x 1 stream */
  int ref_raw;               /* raw TCP bulk reference (bench_raw.c) on
                                host rows of RAW_MIN_SIZE and more */
  int json;
  int cpus_apart;            /* each side on its own half of the CPUs */
  int endpoints;             /* endpoint pairs at once (bench_p2p_multi.c) */
  int gpu;                   /* --gpu: GPU buffers (bench_p2p_gpu.c) */
  int local;                 /* --local: same host, CUDA IPC (bench_p2p_local.c) */
  const char *plugin;
  const char *mode;
  int comms_per_lane, tcp_streams;
  iperf3_result ref_fwd;     /* side 1 -> side 0: send, write */
  iperf3_result ref_rev;     /* side 0 -> side 1: read */
  iperf3_result procs_fwd;   /* the same as N processes x -P 1 */
  iperf3_result procs_rev;
  iperf3_result ref_nics_fwd; /* --endpoints: N processes x 1 stream, */
  iperf3_result ref_nics_rev; /*   pair k over endpoint k's NIC */
} p2p_plan;

/* Timed iterations of `op` at `size`: --iters, else the byte budget. */
long p2p_plan_iters(const p2p_plan *plan, bench_op op, size_t size);
/* 1 when the plan runs `op`. */
int p2p_plan_has_op(const p2p_plan *plan, bench_op op);

/* The two sides, for twohost_run (arg: the plan). */
int bench_p2p_server(const twohost *th, int side, int peer_fd, void *arg);
int bench_p2p_client(const twohost *th, int side, int peer_fd, void *arg);

/* Either side of --endpoints N > 1 (bench_p2p_multi.c; arg: the plan):
 * side 0 serves, side 1 drives and reports. */
int bench_p2p_multi_side(const twohost *th, int side, int peer_fd, void *arg);

/* --gpu (bench_p2p_gpu.c): one side's GPU buffer of `size` bytes with a
 * pinned host shadow, on GPU side % (number of GPUs). */
typedef struct bench_gpu bench_gpu;
/* 0 when CUDA loads and has a device (need_ipc: and can export GPU memory
 * by CUDA IPC); else -1 and the reason. Asked in a child process: the
 * parent must not initialise CUDA before forking. */
int bench_gpu_probe(char *why, size_t len, int need_ipc);
int bench_gpu_open(int side, size_t size, bench_gpu **out); /* -1: message */
int bench_gpu_device(const bench_gpu *g);
void *bench_gpu_ptr(const bench_gpu *g);
int bench_gpu_fill(bench_gpu *g, size_t len, uint64_t seed);
int bench_gpu_poison(bench_gpu *g, size_t len);
/* 1 when the first len bytes hold the pattern (copied back to check). */
int bench_gpu_check(bench_gpu *g, size_t len, uint64_t seed, const char *what);
/* Pinned host <-> device copy rates at `len` bytes per copy (-1: failed). */
void bench_gpu_copy_rates(bench_gpu *g, size_t len, double *h2d, double *d2h);
/* --local's reference: a buffer of this process's own on ref_device and
 * a non-blocking stream; each copy of len bytes between the side's buffer
 * and it (to_ref: from the side's buffer) is waited for on its stream. */
int bench_gpu_count(const bench_gpu *g); /* devices CUDA sees */
int bench_gpu_ref_open(bench_gpu *g, int ref_device);
int bench_gpu_ref_copy(bench_gpu *g, size_t len, int to_ref);
/* Peer access from this side's GPU to the reference's: 1 enabled (as the
 * IPC path has it), 0 not offered by the driver, -1 the same GPU. */
int bench_gpu_ref_peer_access(const bench_gpu *g);
void bench_gpu_close(bench_gpu *g);

/* --gpu --local (bench_p2p_local.c): both sides on this host, connected
 * by connect_local/accept_local, moving GPU buffers by CUDA IPC; side 0
 * owns the advertised buffer and receives, side 1 drives and reports
 * (arg: the plan). */
int bench_p2p_local_side(const twohost *th, int side, int peer_fd, void *arg);

/* iperf3 -P N and, unless --ref-procs 0, N processes x -P 1, in one
 * direction (reverse: server -> client), when --ref-seconds > 0. */
void bench_p2p_measure_direction(const twohost *th, const p2p_plan *plan,
                                 int reverse, iperf3_result *ref,
                                 iperf3_result *procs);

#endif
