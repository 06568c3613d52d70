/* FakeTCPX's parts (tests/plugins/fake_tcpx*.c): the rule checker, and the
 * memory the receive side lands in (GPU memory through CUDA, or host
 * memory in the build without CUDA that CI runs). */
#ifndef FAKE_TCPX_H
#define FAKE_TCPX_H

#include <stddef.h>
#include <stdint.h>

#include "nccl_net_abi.h"

#define FT_SLOTS 16            /* requests per comm; receive slots */
#define FT_MAX_FRAGS 2048      /* fragments one receive may land in */
#define FT_PAGE 4096
#define FT_MAX_RECV (4u << 20) /* TCPX exits the process beyond this */
#define FT_POOL_PAGES 4096     /* each receive comm's bounce pool: 16 MiB */
#define FT_POOL_BYTES ((size_t)FT_POOL_PAGES * FT_PAGE)

/* The layout the engine's unpack reads (NET_ABI facts). */
typedef struct __attribute__((aligned(16))) {
  uint32_t src_off, len;
  uint64_t dst_off;
} ft_load_meta;
typedef struct {
  ft_load_meta mem[FT_SLOTS][FT_MAX_FRAGS];
  uint64_t cnt[FT_SLOTS];
} ft_unpack_meta;
typedef struct {
  void *meta, *bounce;
  uint64_t head;
} ft_target;

/* ---- rules (fake_tcpx_rules.c) ---------------------------------------------- */

void ft_set_logger(ncclDebugLogger_t logger);
/* A warning through the host's logger; returns rc. */
ncclResult_t ft_warn(ncclResult_t rc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A broken TCPX rule: counted, printed as "FakeTCPX: RULE VIOLATION
 * [rule]: ..." on stderr and appended to $FAKE_TCPX_VIOLATIONS (when set),
 * and NCCL_INTERNAL_ERROR returned for the call to fail with. */
ncclResult_t ft_violation(const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends a line to $FAKE_TCPX_USED (when set): the run did load us. */
void ft_note_init(void);

/* The "connect-handle" rule: each listen handle (unique `id`) may start
 * one connection, so a pending connect must be retried with the same
 * buffer, never a fresh copy. Called when a connect starts. */
ncclResult_t ft_connect_start(uint64_t id);

/* ---- memory (fake_tcpx_mem.c) ------------------------------------------------ */

typedef struct ft_mem ft_mem;

/* At init. CUDA build: cuInit, or exit(1) as TCPX does; 0 GPUs is an
 * error. Host build: nothing to check. */
ncclResult_t ft_mem_init(void);
int ft_mem_is_cuda(void);
/* A receive comm's meta, bounce pool and target; fills the caller's
 * device handle (type UNPACK, version 7). */
ncclResult_t ft_mem_open(ft_mem **out, devhandle_t *dh);
ft_unpack_meta *ft_mem_meta(ft_mem *m);   /* as the host writes it */
unsigned char *ft_mem_image(ft_mem *m);   /* the pool, as the host writes it */
/* Make pages [first, last] of the image visible to the device (CUDA: an
 * upload; host: already there). */
ncclResult_t ft_mem_publish(ft_mem *m, uint32_t first, uint32_t last);
void ft_mem_close(ft_mem *m);
/* A send from GPU memory: its bytes, copied to the host (host build: GPU
 * memory is the fake CUDA driver's, host memory already). */
ncclResult_t ft_mem_copy_from_gpu(void *dst, const void *src, size_t n);

#endif
