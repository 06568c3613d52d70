/* The device-unpack layouts of an UNPACK (GPUDirect-TCPX) net plugin, as
 * docs/NET_ABI.md gives them. Shared by the C host code and the CUDA kernel, so
 * plain C types only.
 *
 * accept fills the caller's device handle; its `handle` is a GPU pointer to
 * a gpu_unpack_handle. After test reports receive k done, meta->cnt[k % 16]
 * descriptors in meta->mem[k % 16] say: copy `len` bytes from
 * `bounce_buf + src_off` to `dst + dst_off` (dst = the irecv data pointer). */
#ifndef TCPX_P2P_GPU_UNPACK_META_H
#define TCPX_P2P_GPU_UNPACK_META_H

#include <stddef.h>
#include <stdint.h>

#define GPU_UNPACK_SLOTS 16          /* slot of receive k = k % 16 */
#define GPU_UNPACK_MAX_FRAGS 2048    /* descriptors per slot */
#define GPU_UNPACK_PAGE 4096
#define GPU_UNPACK_HANDLE_SIZE 24    /* the device handle's `size` */
#define GPU_UNPACK_DEV_VERSION 7

typedef struct __attribute__((aligned(16))) gpu_load_meta {
  uint32_t src_off; /* from bounce_buf */
  uint32_t len;
  uint64_t dst_off; /* from the receive's data pointer */
} gpu_load_meta;

typedef struct gpu_unpack_meta {
  gpu_load_meta mem[GPU_UNPACK_SLOTS][GPU_UNPACK_MAX_FRAGS];
  uint64_t cnt[GPU_UNPACK_SLOTS];
} gpu_unpack_meta;

/* What the device handle points at (24 bytes of GPU memory). */
typedef struct gpu_unpack_handle {
  gpu_unpack_meta *meta; /* pinned host memory mapped into the GPU */
  void *bounce_buf;      /* GPU memory owned by the plugin */
  uint64_t head;         /* NCCL's own counter; we keep ours */
} gpu_unpack_handle;

#ifdef __cplusplus
#define GPU_UNPACK_ASSERT static_assert
#else
#define GPU_UNPACK_ASSERT _Static_assert
#endif
GPU_UNPACK_ASSERT(sizeof(gpu_load_meta) == 16, "loadMeta is 16 bytes");
GPU_UNPACK_ASSERT(sizeof(gpu_unpack_meta) == 524416, "netUnpackMeta size");
GPU_UNPACK_ASSERT(offsetof(gpu_unpack_meta, cnt) == 524288, "cnt offset");
GPU_UNPACK_ASSERT(sizeof(gpu_unpack_handle) == GPU_UNPACK_HANDLE_SIZE,
                  "device handle target");

/* Up to 16 receives of one comm in one kernel launch. Passed by value as
 * the kernel's only parameter. */
#define GPU_UNPACK_MAX_BATCH 16

/* cnt: meta->cnt[slot] as the host read it after test said done, or
 * GPU_UNPACK_CNT_ON_DEVICE to have every block read it over PCIe (slow:
 * concurrent reads of one host address are served one at a time). */
#define GPU_UNPACK_CNT_ON_DEVICE 0xffffffffu

typedef struct gpu_unpack_item {
  uint64_t dst;  /* device address of the receive's data pointer */
  uint32_t slot;
  uint32_t cnt;
} gpu_unpack_item;

typedef struct gpu_unpack_args {
  uint64_t meta;       /* device address of the gpu_unpack_meta */
  uint64_t bounce;     /* device address of the bounce buffer */
  uint32_t n;          /* items in use */
  uint32_t per_block;  /* descriptors per block: blockIdx.x * per_block .. */
  gpu_unpack_item item[GPU_UNPACK_MAX_BATCH];
} gpu_unpack_args;

#define GPU_UNPACK_KERNEL "tcpx_p2p_unpack"
/* A block of 8 warps loads per_block descriptors with one coalesced read
 * (not one PCIe round trip per warp), then each warp copies every 8th. */
#define GPU_UNPACK_THREADS 256
#define GPU_UNPACK_WARPS (GPU_UNPACK_THREADS / 32)
#define GPU_UNPACK_MAX_PER_WARP 8
#define GPU_UNPACK_MAX_PER_BLOCK (GPU_UNPACK_WARPS * GPU_UNPACK_MAX_PER_WARP)

#endif
