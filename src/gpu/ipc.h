/* CUDA IPC: share a GPU buffer with another process on the same host
 * (connect_local / send_ipc). The owner exports a blob for any pointer
 * inside a cuMemAlloc'ed allocation; the peer maps it once per allocation
 * (the cache) and copies device to device, asynchronously, on its own
 * stream. A blob made and opened by the same process maps to the original
 * pointer (CUDA refuses to open its own handles). */
#ifndef TCPX_P2P_GPU_IPC_H
#define TCPX_P2P_GPU_IPC_H

#include <stddef.h>
#include <stdint.h>

#include "cudadrv.h"

#define GPU_IPC_MAGIC 0x43504947u /* "GIPC" */
#define GPU_IPC_VERSION 1

/* Plain bytes, sent as is between processes on one host (little-endian). */
typedef struct gpu_ipc_blob {
  uint32_t magic;
  uint16_t version;
  uint16_t reserved;
  int32_t device;          /* exporter's GPU ordinal */
  uint32_t pid;            /* exporter's process */
  uint64_t process_token;  /* exporter's random token (pids repeat) */
  uint64_t base;           /* exporter's address of the allocation */
  uint64_t alloc_size;     /* bytes in the allocation */
  uint64_t offset;         /* the exported pointer, from the base */
  gcu_ipc_mem_handle handle;
} gpu_ipc_blob;
_Static_assert(sizeof(gpu_ipc_blob) == 112, "gpu_ipc_blob layout");

/* Describe `ptr` (GPU memory from cuMemAlloc/cudaMalloc; not VMM or
 * managed) for another process. */
int gpu_ipc_export(gpu_cuda *c, const void *ptr, gpu_ipc_blob *out);

typedef struct gpu_ipc_cache gpu_ipc_cache;

/* A cache of opened peer allocations and a copy stream, on GPU `device`. */
int gpu_ipc_cache_open(gpu_cuda *c, int device, gpu_ipc_cache **out);
/* Map `len` bytes at the blob's pointer into this process; checks the
 * range against the exported allocation. Opened once per allocation. */
int gpu_ipc_map(gpu_ipc_cache *cache, const gpu_ipc_blob *blob, size_t len,
                void **ptr);
/* Start a device-to-device copy on the cache's stream; `ticket` names it. */
int gpu_ipc_copy(gpu_ipc_cache *cache, void *dst, const void *src, size_t n,
                 uint64_t *ticket);
/* Has copy `ticket` finished? Copies finish in order. */
int gpu_ipc_copy_done(gpu_ipc_cache *cache, uint64_t ticket, int *done);
/* Block until copy `ticket` has finished (the driver waits, no polling). */
int gpu_ipc_copy_wait(gpu_ipc_cache *cache, uint64_t ticket);
/* Waits for copies, closes every opened handle, frees the cache. */
void gpu_ipc_cache_close(gpu_ipc_cache *cache);

#endif
