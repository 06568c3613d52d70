/* GPU memory on the transfer path, per chunk:
 * - direct: the transport takes GPU pointers (NCCL_PTR_CUDA, e.g. TCPX),
 *   on a connection whose devices all have a PCI path (handshake.c).
 *   Receives on a comm with an UNPACK device handle land in the plugin's
 *   bounce pages; once test says done, our kernel copies them out, and
 *   only then is the receive consumed (irecvConsumed, in posting order).
 * - staged: the transport moves host memory only (or its NIC has no PCI
 *   path: TCPX's GPU regMr would crash there). A send chunk is copied
 *   to a pinned slot (async, ahead of its turn) and sent from there; a
 *   receive lands in a slot and is copied to the GPU before it counts.
 * Host chunks pass through untouched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "log.h"
#include "lsan.h"
#include "staging.h"
#include "unpack.h"

static int gpu_fail(conn *c, const char *what) {
  char why[P2P_ERR_MAX];
  snprintf(why, sizeof why, "GPU path: %s: %s", what, err_get());
  conn_fail(c, P2P_ENOTSUP, why);
  return -1;
}

int gpath_chunk_mode(const conn *c, const chunk *ch) {
  if (!ch->mr || ch->mr->ptr_type != NCCL_PTR_CUDA) return GPATH_HOST;
  return c->ptr_support & NCCL_PTR_CUDA ? GPATH_DIRECT : GPATH_STAGED;
}

/* ---- staging slots ------------------------------------------------------------- */

static int staging_ring(conn *c, int dir, int device, gpu_staging **out) {
  if (!c->stage[dir]) {
    gpu_cuda *cuda;
    /* In flight plus staged ahead, on every comm of both lanes. */
    int nslots = 2 * c->window * c->send_lanes[0].ncomms * ENGINE_LANES;
    if (nslots > GPATH_MAX_SLOTS) nslots = GPATH_MAX_SLOTS;
    if (gpu_cuda_load(&cuda) != NET_OK ||
        gpu_staging_open(cuda, device, c->chunk_size, nslots, &c->stage[dir]) != NET_OK)
      return gpu_fail(c, "pinned staging ring");
    c->stage_free[dir] = 0;
    for (int i = 0; i < nslots; i++) c->stage_stack[dir][c->stage_free[dir]++] = i;
    for (int i = 0; i < nslots; i++)
      c->stage_mr[dir][i] = (mem_region){
          .base = (uintptr_t)gpu_staging_host(c->stage[dir], i),
          .size = c->chunk_size, .ptr_type = NCCL_PTR_HOST};
  }
  *out = c->stage[dir];
  return 0;
}

/* Give the chunk a slot; 0 with ch->slot < 0 when none is free now. */
static int take_slot(conn *c, chunk *ch) {
  int dir = ch->is_recv;
  gpu_staging *s;
  if (ch->slot >= 0) return 0;
  if (staging_ring(c, dir, ch->mr->device, &s) != 0) return -1;
  if (c->stage_free[dir] > 0) ch->slot = c->stage_stack[dir][--c->stage_free[dir]];
  return 0;
}

void gpath_release(conn *c, chunk *ch) {
  if (ch->slot < 0) return;
  c->stage_stack[ch->is_recv][c->stage_free[ch->is_recv]++] = ch->slot;
  ch->slot = -1;
}

/* ---- before posting ---------------------------------------------------------------- */

/* Staged sends start their device-to-host copy early (called for the
 * chunks that will be posted next), so it overlaps the sends ahead. */
int gpath_stage_ahead(conn *c, chunk *ch) {
  if (ch->is_recv || ch->mode != GPATH_STAGED || ch->copying || ch->slot >= 0)
    return 0;
  if (take_slot(c, ch) != 0) return -1;
  if (ch->slot < 0) return 0;
  if (gpu_staging_d2h(c->stage[0], ch->slot, ch->ptr, ch->size) != NET_OK)
    return gpu_fail(c, "device-to-host copy");
  ch->copying = 1;
  trace_chunk(c, TR_STAGE, ch);
  return 0;
}

/* Can the chunk be posted now? Staged receives need a slot, staged sends
 * their copy finished. */
int gpath_ready_to_post(conn *c, chunk *ch, int *ready) {
  *ready = 1;
  if (ch->mode != GPATH_STAGED) return 0;
  if (ch->is_recv) {
    if (take_slot(c, ch) != 0) return -1;
    *ready = ch->slot >= 0;
    return 0;
  }
  if (gpath_stage_ahead(c, ch) != 0) return -1;
  if (!ch->copying) {
    *ready = 0;
    return 0;
  }
  if (gpu_staging_ready(c->stage[0], ch->slot, ready) != NET_OK)
    return gpu_fail(c, "device-to-host copy");
  if (*ready) trace_chunk(c, TR_STAGED, ch);
  return 0;
}

/* The buffer and region the transport sees for the chunk. */
uint8_t *gpath_post_buffer(conn *c, chunk *ch, mem_region **mr) {
  if (ch->slot >= 0) {
    *mr = &c->stage_mr[ch->is_recv][ch->slot];
    return gpu_staging_host(c->stage[ch->is_recv], ch->slot);
  }
  *mr = ch->mr;
  return ch->ptr;
}

/* ---- after the transport ------------------------------------------------------------ */

int gpath_open_unpack(conn *c, lane *l, int k, const net_dev_handle *dh) {
  if (dh->netDeviceType != NCCL_NET_DEVICE_UNPACK || !dh->handle) return 0;
  if (dh->netDeviceVersion != NCCL_NET_DEVICE_UNPACK_VERSION)
    return ep_err(P2P_ETRANSPORT, "plugin's unpack device handle has version %d; "
                  "version %d is the one understood", dh->netDeviceVersion,
                  NCCL_NET_DEVICE_UNPACK_VERSION);
  /* Without CUDA the handle can only be host memory: unpack opens a CPU
   * copy for it (plugins that land receives in host bounce pages). */
  gpu_cuda *cuda;
  if (gpu_cuda_load(&cuda) != NET_OK) cuda = NULL;
  if (gpu_unpack_open(cuda, dh, (gpu_unpack **)&l->unpack[k]) != NET_OK)
    return ep_err(P2P_ENOTSUP, "device unpack for %s: %s", c->net->name, err_get());
  return P2P_OK;
}

/* Number the receive on an unpack comm (every irecv counts). */
int gpath_posted_recv(conn *c, lane *l, int k, chunk *ch) {
  if (!l->unpack[k]) return 0;
  /* Host destinations too: every receive has a slot, and the kernel writes
   * host memory through the GPU's view of it (HMM). */
  if (gpu_unpack_post(l->unpack[k], &ch->unpack_k) != NET_OK)
    return gpu_fail(c, "unpack bookkeeping");
  return 0;
}

/* Plugins that ask for it (forceFlush) get an iflush after each direct
 * GPU receive; a NULL request back means already flushed. */
static int start_flush(conn *c, lane *l, int k, chunk *ch) {
  if (!c->force_flush || ch->mode != GPATH_DIRECT || ch->size == 0 || l->unpack[k])
    return 0; /* (unpack plugins do not flush: the kernel copy is the fence) */
  void *data = ch->ptr, *mh = region_mh(c->ep, c->net, ch->mr, l->comm[k]);
  size_t size = ch->size;
  ch->flush_req = NULL;
  int rc = net_call(c->net, iflush, l->comm[k], 1, &data, &size, &mh, &ch->flush_req);
  if (rc != NET_OK) return conn_fail_net(c, rc);
  return ch->flush_req != NULL;
}

/* A staged receive's slot holds its bytes: copy them to the GPU. */
static int start_h2d(conn *c, chunk *ch) {
  if (gpu_staging_h2d(c->stage[1], ch->slot, ch->ptr, ch->size) != NET_OK)
    return gpu_fail(c, "host-to-device copy");
  ch->copying = 1;
  return 0;
}

/* test() said done. Returns 1 when the chunk must wait in `finishing`
 * (a copy to the GPU, a flush, or its turn to be consumed), 0 when done. */
int gpath_after_test(conn *c, lane *l, int k, chunk *ch) {
  if (!ch->is_recv) {
    gpath_release(c, ch);
    return 0;
  }
  int flushing = start_flush(c, l, k, ch);
  if (flushing) return flushing; /* 1, or -1 on failure */
  if (l->unpack[k]) {
    /* Unpacked where it was posted: a staged receive into its slot (TCPX
     * may also land a host receive there in place), copied to the GPU
     * once unpacked (gpath_finished). */
    uint8_t *dst = ch->slot >= 0 ? gpu_staging_host(c->stage[1], ch->slot) : ch->ptr;
    if (gpu_unpack_submit(l->unpack[k], ch->unpack_k, dst) != NET_OK)
      return gpu_fail(c, "unpack kernel launch");
    return 1;
  }
  if (ch->mode == GPATH_STAGED) return start_h2d(c, ch) != 0 ? -1 : 1;
  return 0;
}

/* Is a finishing chunk's copy done? */
int gpath_finished(conn *c, lane *l, int k, chunk *ch, int *done) {
  *done = 1;
  if (ch->flush_req) {
    int rc = net_call(c->net, test, ch->flush_req, done, NULL);
    if (rc != NET_OK) return conn_fail_net(c, rc);
    if (*done) ch->flush_req = NULL;
    return 0;
  }
  if (!l->unpack[k] && !ch->copying) return 0; /* waiting for its turn */
  int rc = ch->copying ? gpu_staging_ready(c->stage[1], ch->slot, done)
                       : gpu_unpack_done(l->unpack[k], ch->unpack_k, done);
  if (rc != NET_OK) return gpu_fail(c, "copy to GPU memory");
  if (*done && ch->mode == GPATH_STAGED && !ch->copying) {
    *done = 0; /* unpacked into its slot; now to the GPU */
    return start_h2d(c, ch);
  }
  if (*done) {
    trace_chunk(c, TR_COPIED, ch);
    gpath_release(c, ch);
  }
  return 0;
}

/* Small synchronous copies between GPU memory and host memory (the bytes
 * of inline messages): one copy on a stream of its own beats a transport
 * request, a staging slot and two hand-offs for a few KiB. */
int gpath_copy(int device, void *dst, const void *src, size_t n, int to_gpu) {
  gpu_cuda *cuda;
  if (gpu_cuda_load(&cuda) != NET_OK || gpu_copy_sync(cuda, device, dst, src, n, to_gpu) != NET_OK)
    return -1;
  return 0;
}

/* The comms are closed: drop unpack state and staging rings. */
void gpath_close(conn *c) {
  for (int li = 0; li < ENGINE_LANES; li++)
    for (int k = 0; k < ENGINE_MAX_COMMS; k++)
      if (c->recv_lanes[li].unpack[k]) {
        gpu_unpack_close(c->recv_lanes[li].unpack[k]);
        c->recv_lanes[li].unpack[k] = NULL;
      }
  for (int dir = 0; dir < 2; dir++)
    if (c->stage[dir]) {
      /* An abandoned comm (drain.c) may still write into a slot: keep it. */
      if (!c->nabandoned) gpu_staging_close(c->stage[dir]);
      else lsan_leak_on_purpose(c->stage[dir]);
      c->stage[dir] = NULL;
    }
}
