/* The CUDA-free half of device unpack: receive numbering, the host
 * reference of the kernel's descriptor walk, and its inverse (a TCPX-like
 * fragment layout) for tests and benchmarks. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "unpack.h"

#define NO_MARK UINT64_MAX

/* ---- receive numbering ------------------------------------------------ */

void gpu_unpack_seq_init(gpu_unpack_seq *s) {
  memset(s, 0, sizeof *s);
  for (int e = 0; e < GPU_UNPACK_SLOTS; e++) s->mark[e] = NO_MARK;
}

int gpu_unpack_seq_post(gpu_unpack_seq *s, uint64_t *k) {
  if (s->posted - s->completed >= GPU_UNPACK_SLOTS)
    return err_set(NET_EUSAGE, "unpack: %d receives already wait for their "
                   "copy (receives %" PRIu64 "..%" PRIu64 "); the plugin's "
                   "%d slots are all held", GPU_UNPACK_SLOTS, s->completed,
                   s->posted - 1, GPU_UNPACK_SLOTS);
  *k = s->posted++;
  return NET_OK;
}

int gpu_unpack_seq_check_submit(const gpu_unpack_seq *s, uint64_t k, int n) {
  if (n < 1 || n > GPU_UNPACK_MAX_BATCH)
    return err_set(NET_EINVAL, "unpack: batch of %d receives (1..%d)", n,
                   GPU_UNPACK_MAX_BATCH);
  if (k != s->submitted)
    return err_set(NET_EUSAGE, "unpack: receive %" PRIu64 " submitted out "
                   "of order (next is %" PRIu64 ")", k, s->submitted);
  if (k + (uint64_t)n > s->posted)
    return err_set(NET_EUSAGE, "unpack: receives %" PRIu64 "..%" PRIu64
                   " submitted but only %" PRIu64 " posted", k,
                   k + (uint64_t)n - 1, s->posted);
  return NET_OK;
}

void gpu_unpack_seq_submitted(gpu_unpack_seq *s, uint64_t k, int n) {
  uint64_t last = k + (uint64_t)n - 1;
  s->mark[gpu_unpack_slot(last)] = last;
  s->submitted = last + 1;
}

/* A later launch may have reused an event slot: its mark then names the
 * later receive, whose completion also covers the earlier ones. */
int gpu_unpack_seq_next_event(const gpu_unpack_seq *s, uint64_t *k) {
  for (uint64_t j = s->completed; j < s->submitted; j++) {
    if (s->mark[gpu_unpack_slot(j)] == j) {
      *k = j;
      return 1;
    }
  }
  return 0;
}

/* ---- host reference ---------------------------------------------------- */

static int fits(uint64_t off, uint64_t len, size_t size) {
  return off <= size && len <= size - off;
}

int gpu_unpack_host(const gpu_unpack_meta *meta, int slot, const void *bounce,
                    size_t bounce_size, void *dst, size_t dst_size,
                    size_t *copied) {
  if (slot < 0 || slot >= GPU_UNPACK_SLOTS)
    return err_set(NET_EINVAL, "unpack: slot %d (0..%d)", slot,
                   GPU_UNPACK_SLOTS - 1);
  uint64_t cnt = meta->cnt[slot];
  if (cnt > GPU_UNPACK_MAX_FRAGS)
    return err_set(NET_EINVAL, "unpack: cnt[%d] = %" PRIu64 " exceeds %d "
                   "descriptors", slot, cnt, GPU_UNPACK_MAX_FRAGS);
  size_t total = 0;
  for (uint64_t i = 0; i < cnt; i++) {
    const gpu_load_meta *d = &meta->mem[slot][i];
    if (!fits(d->src_off, d->len, bounce_size) ||
        !fits(d->dst_off, d->len, dst_size))
      return err_set(NET_EINVAL, "unpack: slot %d descriptor %" PRIu64
                     " {src_off %u, len %u, dst_off %" PRIu64 "} outside "
                     "bounce (%zu bytes) or dst (%zu bytes)", slot, i,
                     d->src_off, d->len, d->dst_off, bounce_size, dst_size);
    memcpy((char *)dst + d->dst_off, (const char *)bounce + d->src_off,
           d->len);
    total += d->len;
  }
  if (copied) *copied = total;
  return NET_OK;
}

/* ---- TCPX-like layout --------------------------------------------------- */

static uint64_t next_random(uint64_t *x) {
  *x ^= *x >> 12;
  *x ^= *x << 25;
  *x ^= *x >> 27;
  return *x * 0x2545F4914F6CDD1Dull;
}

static uint64_t seed_state(uint64_t seed) {
  return seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
}

void gpu_unpack_shuffle_pages(uint32_t *pages, size_t n, uint64_t seed) {
  uint64_t x = seed_state(seed);
  for (size_t i = 0; i < n; i++) pages[i] = (uint32_t)i;
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)(next_random(&x) % i);
    uint32_t t = pages[i - 1];
    pages[i - 1] = pages[j];
    pages[j] = t;
  }
}

static void shuffle_descriptors(gpu_load_meta *d, size_t n, uint64_t *x) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)(next_random(x) % i);
    gpu_load_meta t = d[i - 1];
    d[i - 1] = d[j];
    d[j] = t;
  }
}

/* Length and in-page offset of the next fragment. */
static void next_fragment(int mode, size_t left, uint64_t *x, uint32_t *len,
                          uint32_t *off) {
  uint32_t n = GPU_UNPACK_PAGE;
  if (mode == GPU_SCATTER_RANDOM) n = 1 + (uint32_t)(next_random(x) % n);
  if (n > left) n = (uint32_t)left;
  *len = n;
  *off = mode == GPU_SCATTER_RANDOM
             ? (uint32_t)(next_random(x) % (GPU_UNPACK_PAGE - n + 1))
             : 0;
}

int gpu_unpack_scatter(gpu_unpack_meta *meta, int slot, const void *data,
                       size_t len, void *bounce, size_t bounce_size,
                       const uint32_t *pages, size_t npages, int mode,
                       uint64_t seed) {
  if (slot < 0 || slot >= GPU_UNPACK_SLOTS)
    return err_set(NET_EINVAL, "unpack scatter: slot %d", slot);
  gpu_load_meta *desc = meta->mem[slot];
  uint64_t x = seed_state(seed);
  size_t n = 0;
  for (size_t pos = 0; pos < len; n++) {
    if (n == GPU_UNPACK_MAX_FRAGS || n == npages)
      return err_set(NET_EINVAL, "unpack scatter: %zu bytes need more than "
                     "%zu fragments", len, n);
    uint32_t flen, off;
    next_fragment(mode, len - pos, &x, &flen, &off);
    uint64_t src = (uint64_t)pages[n] * GPU_UNPACK_PAGE + off;
    if (!fits(src, flen, bounce_size) || src > UINT32_MAX)
      return err_set(NET_EINVAL, "unpack scatter: page %u outside the "
                     "%zu-byte bounce buffer", pages[n], bounce_size);
    memcpy((char *)bounce + src, (const char *)data + pos, flen);
    desc[n] = (gpu_load_meta){(uint32_t)src, flen, pos};
    pos += flen;
  }
  shuffle_descriptors(desc, n, &x);
  meta->cnt[slot] = n;
  return NET_OK;
}
