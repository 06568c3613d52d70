/* Device unpack for one receive comm of an UNPACK net plugin
 * (GPUDirect-TCPX): after test reports receive k done, launch the kernel
 * that copies its fragments from the plugin's bounce pages into the
 * receive's GPU buffer, on the comm's own stream, and tell when that copy
 * has finished, so the engine may call irecvConsumed and report the data.
 *
 * Life of receive k on a comm (k counts every irecv that returned a
 * request, empty ones included; slot = k % 16):
 *   irecv -> gpu_unpack_post (gives k) -> test done -> gpu_unpack_submit
 *   (or a batch of consecutive ready receives) -> gpu_unpack_done -> the
 *   engine calls irecvConsumed(k) in posting order.
 * Submit reads meta->cnt[slot] on the host (test has just written it) and
 * sizes the launch from it; empty receives cost no launch.
 * At most 16 receives may be posted and not yet known done.
 *
 * A gpu_unpack belongs to the one thread that drives its comm. */
#ifndef TCPX_P2P_GPU_UNPACK_H
#define TCPX_P2P_GPU_UNPACK_H

#include <stddef.h>
#include <stdint.h>

#include "cudadrv.h"
#include "net.h"
#include "unpack_meta.h"

/* ---- receive bookkeeping (no CUDA; unpack_host.c) ---------------------- */

typedef struct gpu_unpack_seq {
  uint64_t posted;     /* receives posted: k of the next one */
  uint64_t submitted;  /* receives whose copy has been launched */
  uint64_t completed;  /* receives whose copy is known finished */
  uint64_t mark[GPU_UNPACK_SLOTS]; /* event e covers receives <= mark[e] */
} gpu_unpack_seq;

static inline int gpu_unpack_slot(uint64_t k) {
  return (int)(k % GPU_UNPACK_SLOTS);
}

void gpu_unpack_seq_init(gpu_unpack_seq *s);
/* Number the next posted receive; NET_EUSAGE when 16 are outstanding. */
int gpu_unpack_seq_post(gpu_unpack_seq *s, uint64_t *k);
/* Check that receives k .. k+n-1 may be launched now: the next ones in
 * order, posted, 1 <= n <= 16. */
int gpu_unpack_seq_check_submit(const gpu_unpack_seq *s, uint64_t k, int n);
/* Record the launch; its completion event goes in slot gpu_unpack_slot(k+n-1). */
void gpu_unpack_seq_submitted(gpu_unpack_seq *s, uint64_t k, int n);
/* The oldest launched receive whose event can tell that everything up to
 * it has finished; 0 when nothing launched is pending. */
int gpu_unpack_seq_next_event(const gpu_unpack_seq *s, uint64_t *k);

/* ---- host reference (no CUDA; unpack_host.c) --------------------------- */

/* The kernel's work done on the CPU, with every descriptor bounds-checked
 * against the bounce buffer and dst sizes: for tests, and the definition
 * of what the kernel must do. `copied` (may be NULL) gets the byte total. */
int gpu_unpack_host(const gpu_unpack_meta *meta, int slot, const void *bounce,
                    size_t bounce_size, void *dst, size_t dst_size,
                    size_t *copied);

/* The inverse, as a TCPX receive lays data out: cut `len` bytes of `data`
 * into fragments, put fragment i in bounce page pages[i], and write the
 * descriptors to meta slot `slot` in shuffled order, then cnt[slot].
 * GPU_SCATTER_PAGES: 4 KiB fragments at page starts (what TCPX does with
 * full pages); GPU_SCATTER_RANDOM: 1..4096-byte fragments at random page
 * offsets (every alignment). For tests and benchmarks. */
enum { GPU_SCATTER_PAGES = 0, GPU_SCATTER_RANDOM = 1 };
int gpu_unpack_scatter(gpu_unpack_meta *meta, int slot, const void *data,
                       size_t len, void *bounce, size_t bounce_size,
                       const uint32_t *pages, size_t npages, int mode,
                       uint64_t seed);
/* pages[i] = a random permutation of 0 .. n-1. */
void gpu_unpack_shuffle_pages(uint32_t *pages, size_t n, uint64_t seed);

/* ---- the kernel image --------------------------------------------------- */

/* The embedded fatbin (sm_80, sm_90, compute_90 PTX); NULL with *size 0
 * when nvcc was not found at build time. */
const unsigned char *gpu_unpack_image(size_t *size);

/* ---- device side (needs CUDA) ------------------------------------------- */

typedef struct gpu_unpack gpu_unpack;

/* Take the device handle accept filled (type UNPACK, version 7; `handle`
 * is a GPU pointer to {meta, bounce_buf, head}): read those 24 bytes, and
 * make the stream, events and kernel on the handle's GPU. Where `handle` is
 * host memory (or `c` is NULL: no CUDA), the copies are done by the CPU
 * (gpu_unpack_host) at submit, for plugins that land in host memory. */
int gpu_unpack_open(gpu_cuda *c, const net_dev_handle *dh, gpu_unpack **out);
/* An irecv returned a request: number it (see the life above). */
int gpu_unpack_post(gpu_unpack *u, uint64_t *k);
/* Receive k is done: copy it to `dst` (its irecv data pointer). */
int gpu_unpack_submit(gpu_unpack *u, uint64_t k, void *dst);
/* Receives k .. k+n-1 (n <= 16) are done: one launch for all. */
int gpu_unpack_submit_batch(gpu_unpack *u, uint64_t k, int n,
                            void *const *dst);
/* Has receive k's copy finished? Copies finish in order. */
int gpu_unpack_done(gpu_unpack *u, uint64_t k, int *done);
/* Waits for launched copies, then frees ours (never the plugin's memory). */
void gpu_unpack_close(gpu_unpack *u);

/* For benchmarks and tests: launch the kernel for `n` slots with no
 * bookkeeping, on the comm's stream. */
int gpu_unpack_launch(gpu_unpack *u, const int *slots, void *const *dst,
                      int n);
gcu_stream gpu_unpack_stream(const gpu_unpack *u);
/* `per_warp` descriptors per warp (1..8; 0 = the default, 1);
 * `device_cnt` makes the kernel read cnt[slot] itself (the default only
 * where meta has no host address). For benchmarks. */
int gpu_unpack_tune(gpu_unpack *u, unsigned per_warp, int device_cnt);
/* 1 when cnt[slot] is read on the host at submit time. */
int gpu_unpack_cnt_on_host(const gpu_unpack *u);
/* The 24 bytes read at open. */
const gpu_unpack_handle *gpu_unpack_target(const gpu_unpack *u);

#endif
