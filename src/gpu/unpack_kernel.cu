// The device-unpack kernel: after an UNPACK plugin (GPUDirect-TCPX) reports
// a receive done, its bytes sit in the plugin's GPU bounce pages as
// fragments; meta->mem[slot][0 .. cnt[slot]) says where each one goes. This
// kernel copies them into the receive's buffer, for up to 16 receives of
// one comm per launch (grid.y = receive, grid.x = blocks of 8 warps, each
// for a run of per_block descriptors, loaded into shared memory at once).
//
// One warp copies one fragment (TCPX's are at most a 4 KiB page): a byte
// head up to the destination's 16-byte boundary, then 16-byte stores fed by
// 16-byte, 4-byte or funnel-shifted loads depending on the source's
// alignment, then a byte tail. Correct for any offset and length.
//
// meta lives in pinned host memory mapped into the GPU, written by the
// plugin before test reported done: read it with cache-volatile loads so no
// stale line from an earlier use of the slot is ever seen. The host passes
// each receive's cnt (it reads host memory for free); reading it here
// instead costs one PCIe round trip per block, one block at a time.
#include <stdint.h>

#include "unpack_meta.h"

#define UNROLL 8

// n 16-byte words, both sides 16-byte aligned; 8 loads in flight per lane.
__device__ __forceinline__ void copy_vec16(uint4 *dst, const uint4 *src,
                                           uint32_t n, int lane) {
  uint32_t i = lane;
  for (; i + 32 * (UNROLL - 1) < n; i += 32 * UNROLL) {
    uint4 v[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; u++) v[u] = src[i + 32 * u];
#pragma unroll
    for (int u = 0; u < UNROLL; u++) dst[i + 32 * u] = v[u];
  }
  for (; i < n; i += 32) dst[i] = src[i];
}

// Source 4-byte aligned, destination 16-byte aligned.
__device__ __forceinline__ void copy_vec_words(uint4 *dst,
                                               const uint32_t *src,
                                               uint32_t n, int lane) {
#pragma unroll 4
  for (uint32_t i = lane; i < n; i += 32) {
    const uint32_t *s = src + 4 * i;
    dst[i] = make_uint4(s[0], s[1], s[2], s[3]);
  }
}

// Source at `shift` (1..3) bytes past the 4-byte aligned `src`: read five
// aligned words and funnel-shift four out of them. The fifth word always
// holds a wanted byte, so nothing outside the fragment's words is read.
__device__ __forceinline__ void copy_vec_shift(uint4 *dst,
                                               const uint32_t *src,
                                               uint32_t shift, uint32_t n,
                                               int lane) {
  const uint32_t bits = 8 * shift;
#pragma unroll 4
  for (uint32_t i = lane; i < n; i += 32) {
    const uint32_t *s = src + 4 * i;
    uint32_t w0 = s[0], w1 = s[1], w2 = s[2], w3 = s[3], w4 = s[4];
    dst[i] = make_uint4(__funnelshift_r(w0, w1, bits),
                        __funnelshift_r(w1, w2, bits),
                        __funnelshift_r(w2, w3, bits),
                        __funnelshift_r(w3, w4, bits));
  }
}

// One fragment, by the whole warp.
__device__ __forceinline__ void copy_fragment(char *dst, const char *src,
                                              uint32_t len, int lane) {
  uint32_t head = (uint32_t)(-(uintptr_t)dst) & 15u;
  if (head > len) head = len;
  if ((uint32_t)lane < head) dst[lane] = src[lane];
  dst += head;
  src += head;
  len -= head;
  uint32_t nvec = len >> 4;
  uint32_t mis = (uint32_t)((uintptr_t)src & 15u);
  if (mis == 0)
    copy_vec16((uint4 *)dst, (const uint4 *)src, nvec, lane);
  else if ((mis & 3u) == 0)
    copy_vec_words((uint4 *)dst, (const uint32_t *)src, nvec, lane);
  else
    copy_vec_shift((uint4 *)dst, (const uint32_t *)(src - (mis & 3u)),
                   mis & 3u, nvec, lane);
  uint32_t done = nvec << 4;
  if ((uint32_t)lane < len - done) dst[done + lane] = src[done + lane];
}

__device__ __forceinline__ uint4 load_descriptor(const gpu_unpack_meta *meta,
                                                 uint32_t slot, uint32_t i) {
  return __ldcv((const uint4 *)&meta->mem[slot][i]);
}

// The count of receive `item`: from the host when it read it, else from
// meta (one read per block; the block must agree, hence the barrier).
__device__ __forceinline__ uint32_t fragment_count(const gpu_unpack_meta *meta,
                                                   gpu_unpack_item item) {
  uint32_t n = item.cnt;
  if (n == GPU_UNPACK_CNT_ON_DEVICE) {  // uniform across the block
    __shared__ unsigned long long cnt;
    if (threadIdx.x == 0)
      cnt = __ldcv((const unsigned long long *)&meta->cnt[item.slot]);
    __syncthreads();
    n = cnt < GPU_UNPACK_MAX_FRAGS ? (uint32_t)cnt : GPU_UNPACK_MAX_FRAGS;
  }
  return n < GPU_UNPACK_MAX_FRAGS ? n : GPU_UNPACK_MAX_FRAGS;
}

extern "C" __global__ void __launch_bounds__(GPU_UNPACK_THREADS, 4)
    tcpx_p2p_unpack(gpu_unpack_args a) {
  __shared__ uint4 desc[GPU_UNPACK_MAX_PER_BLOCK];
  const gpu_unpack_item item = a.item[blockIdx.y];
  const gpu_unpack_meta *meta = (const gpu_unpack_meta *)a.meta;
  const uint32_t n = fragment_count(meta, item);
  const uint32_t base = blockIdx.x * a.per_block;
  if (base >= n) return;  // the whole block: nothing of this receive left
  const uint32_t here = min(a.per_block, n - base);

  // This block's descriptors: consecutive 16-byte loads, one per thread,
  // which the GPU merges into a few large PCIe reads.
  if (threadIdx.x < here)
    desc[threadIdx.x] = load_descriptor(meta, item.slot, base + threadIdx.x);
  __syncthreads();

  const int lane = threadIdx.x & 31;
  for (uint32_t i = threadIdx.x / 32; i < here; i += blockDim.x / 32) {
    const uint4 c = desc[i];
    const uint64_t dst_off = (uint64_t)c.z | ((uint64_t)c.w << 32);
    copy_fragment((char *)item.dst + dst_off, (const char *)a.bounce + c.x,
                  c.y, lane);
  }
}
