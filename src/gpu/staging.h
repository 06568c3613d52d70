/* Pinned host staging for transports that cannot touch GPU memory (no
 * NCCL_PTR_CUDA in ptrSupport): a ring of page-locked host slots per
 * connection direction, filled from or drained to the GPU by asynchronous
 * copies on the ring's own stream. Nothing on the path waits for the GPU:
 * the caller polls gpu_staging_ready between network calls.
 *
 * Send side:  gpu_staging_d2h(slot, gpu src) -> ready -> send the host slot.
 * Recv side:  receive into the host slot -> gpu_staging_h2d(slot, gpu dst)
 *             -> ready -> the data is in GPU memory.
 * Copies on one ring run in the order issued. A ring belongs to the one
 * thread that drives its connection. */
#ifndef TCPX_P2P_GPU_STAGING_H
#define TCPX_P2P_GPU_STAGING_H

#include <stddef.h>

#include "cudadrv.h"

typedef struct gpu_staging gpu_staging;

/* `nslots` page-locked slots of `slot_size` bytes each, usable with GPU
 * `device`. */
int gpu_staging_open(gpu_cuda *c, int device, size_t slot_size, int nslots,
                     gpu_staging **out);
/* Start copying `n` bytes of GPU memory into slot `slot`. */
int gpu_staging_d2h(gpu_staging *s, int slot, const void *dev_src, size_t n);
/* Start copying the first `n` bytes of slot `slot` to GPU memory. */
int gpu_staging_h2d(gpu_staging *s, int slot, void *dev_dst, size_t n);
/* Has the last copy issued on `slot` finished? (1 for an idle slot.) */
int gpu_staging_ready(gpu_staging *s, int slot, int *done);
/* The slot's host memory. */
void *gpu_staging_host(gpu_staging *s, int slot);
size_t gpu_staging_slot_size(const gpu_staging *s);
int gpu_staging_slots(const gpu_staging *s);
/* Waits for copies in flight, then frees everything. */
void gpu_staging_close(gpu_staging *s);

#endif
