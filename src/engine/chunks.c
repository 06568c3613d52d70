/* Cutting transfers into chunks, queued per comm of a lane.
 *
 * Chunk n of a lane goes to comm n % ncomms (the order is the protocol,
 * see xfer.c). A range of host memory is queued as "runs": per comm, one
 * entry standing for all its full-size chunks of the range (`repeat` of
 * them, `stride` bytes apart) and one for a short last chunk; a chunk is
 * cut off the front of its run only when it is about to be posted. So
 * queueing costs O(comms) whatever the size, which matters when the size
 * comes from a peer (a read of a huge exposure with 4 KiB chunks, a
 * refused write announcing 16 TiB). Chunks of GPU memory carry per-chunk
 * staging state and are queued one by one (their count is bounded by the
 * exposure or the posted buffer).
 *
 * Drain chunks (bytes of a refused message) land in scratch slots, made on
 * first use: `window` slots per comm, taken in turn as drain receives are
 * posted on it, so no two receives in flight write the same bytes. */
#include <stdlib.h>

#include "engine.h"

void fifo_push(chunk_fifo *f, chunk *ch) {
  ch->next = NULL;
  if (f->tail) f->tail->next = ch;
  else f->head = ch;
  f->tail = ch;
  f->count++;
}

chunk *fifo_pop(chunk_fifo *f) {
  chunk *ch = f->head;
  if (!ch) return NULL;
  f->head = ch->next;
  if (!f->head) f->tail = NULL;
  f->count--;
  return ch;
}

static int push(lane *l, int k, const chunk *tmpl, uint8_t *ptr, size_t size,
                uint64_t repeat, size_t stride) {
  chunk *ch = malloc(sizeof *ch);
  if (!ch) return -1;
  *ch = *tmpl;
  ch->ptr = ptr;
  ch->size = size;
  ch->repeat = repeat;
  ch->stride = stride;
  fifo_push(&l->waiting[k], ch);
  return 0;
}

/* Bytes per chunk for a range of `size` bytes. Both sides cut a message
 * alike (the receiver posts exactly the sender's sizes) from what both
 * know: the size, the lane's comms, the agreed chunk size and rule. With
 * the split rule a message shorter than two chunks per comm is cut into
 * two per comm (at least SPLIT_MIN bytes): every comm carries part of it,
 * and a staged chunk's copy overlaps the send of the one before. */
#define SPLIT_MIN ((uint64_t)64 << 10)

uint64_t chunk_cut(uint64_t chunk_size, int ncomms, int split, uint64_t size) {
  uint64_t per = 2 * (uint64_t)ncomms;
  if (!split) return chunk_size;
  uint64_t want = ((size + per - 1) / per + 4095) & ~(uint64_t)4095;
  if (want < SPLIT_MIN) want = SPLIT_MIN;
  return want < chunk_size ? want : chunk_size;
}

static uint64_t cut_size(const conn *c, const lane *l, uint64_t size) {
  return chunk_cut(c->chunk_size, l->ncomms, c->split, size);
}

/* Queue `size` bytes from ptr (NULL for drains) as runs; *n += chunks. */
static int add_runs(conn *c, lane *l, const chunk *tmpl, uint8_t *ptr,
                    uint64_t size, uint64_t *n) {
  uint64_t cs = cut_size(c, l, size), total = (size - 1) / cs + 1;
  uint64_t last = size - (total - 1) * cs, nc = (uint64_t)l->ncomms;
  for (uint64_t j = 0; j < nc && j < total; j++) {
    int k = (int)((l->next_chunk + j) % nc);
    uint64_t count = (total - 1 - j) / nc + 1;
    int short_last = j == (total - 1) % nc && last < cs;
    uint8_t *first = ptr ? ptr + j * cs : NULL;
    uint8_t *end = ptr ? ptr + (total - 1) * cs : NULL;
    if (count > (uint64_t)short_last &&
        push(l, k, tmpl, first, cs, count - (uint64_t)short_last, nc * cs) != 0)
      return -1;
    if (short_last && push(l, k, tmpl, end, (size_t)last, 1, 0) != 0) return -1;
  }
  l->next_chunk += total;
  *n += total;
  return 0;
}

int lane_add(conn *c, lane *l, uint8_t *ptr, size_t size, int is_recv,
             op *owner, serve *sv, mem_region *mr, uint64_t *n) {
  if (size == 0) return 0;
  chunk tmpl = {.owner = owner, .serve = sv, .ptr = ptr, .mr = mr,
                .is_recv = is_recv, .slot = -1};
  tmpl.mode = gpath_chunk_mode(c, &tmpl);
  if (tmpl.mode == GPATH_HOST) return add_runs(c, l, &tmpl, ptr, size, n);
  size_t cs = (size_t)cut_size(c, l, size);
  for (size_t off = 0; off < size; off += cs, ++*n) {
    size_t len = size - off < cs ? size - off : cs;
    if (push(l, (int)(l->next_chunk++ % (uint64_t)l->ncomms), &tmpl, ptr + off,
             len, 0, 0) != 0)
      return -1;
  }
  return 0;
}

static int scratch_ready(conn *c) {
  if (c->scratch) return 0;
  size_t total = (size_t)c->window * (size_t)c->recv_lanes[0].ncomms * ENGINE_LANES *
                 c->chunk_size;
  c->scratch = malloc(total);
  if (!c->scratch) return -1;
  c->scratch_mr = (mem_region){.base = (uintptr_t)c->scratch, .size = total,
                               .ptr_type = NCCL_PTR_HOST, .device = -1};
  return 0;
}

int lane_add_drain(conn *c, lane *l, uint64_t size, serve *sv) {
  if (size == 0) return 0;
  if (scratch_ready(c) != 0) return -1;
  chunk tmpl = {.serve = sv, .mr = &c->scratch_mr, .is_recv = 1, .slot = -1,
                .mode = GPATH_HOST, .drain = 1};
  return add_runs(c, l, &tmpl, NULL, size, &sv->chunks_left);
}

int lane_take(conn *c, lane *l, int k) {
  chunk *ch = l->waiting[k].head;
  if (ch->repeat > 1) {
    chunk *one = malloc(sizeof *one);
    if (!one) return -1;
    *one = *ch;
    ch->repeat--;
    if (ch->ptr) ch->ptr += ch->stride;
    one->next = ch;
    l->waiting[k].head = one;
    l->waiting[k].count++;
    ch = one;
  }
  ch->repeat = 0; /* cut once, even if posting it must wait */
  if (!ch->drain) return 0;
  size_t lane_idx = (size_t)(l - c->recv_lanes);
  size_t slot = ((lane_idx * (size_t)l->ncomms + (size_t)k) * (size_t)c->window) +
                (size_t)(l->drain_next[k]++ % (uint64_t)c->window);
  ch->ptr = c->scratch + slot * c->chunk_size;
  return 0;
}
