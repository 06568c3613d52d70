/* Pinned host staging rings (see staging.h). */
#include "staging.h"

#include <stdlib.h>

#include "err.h"
#include "net.h"

struct gpu_staging {
  gpu_cuda *cuda;
  gcu_ctx ctx;
  int device;
  gcu_stream stream;
  size_t slot_size;
  int nslots;
  char *host;          /* nslots * slot_size bytes, page-locked */
  gcu_event *ev;       /* one per slot: its last copy */
  unsigned char *busy; /* slot has a copy not yet seen finished */
};

static int alloc_host(gpu_staging *s) {
  gpu_cuda *c = s->cuda;
  size_t total = s->slot_size * (size_t)s->nslots;
  void *p = NULL;
  int rc = gpu_cuda_check(c, c->cuMemHostAlloc(&p, total,
                                               GCU_MEMHOSTALLOC_PORTABLE),
                          "staging: cuMemHostAlloc(%zu bytes)", total);
  s->host = p;
  return rc;
}

static int make_stream_and_events(gpu_staging *s) {
  gpu_cuda *c = s->cuda;
  s->ev = calloc((size_t)s->nslots, sizeof *s->ev);
  s->busy = calloc((size_t)s->nslots, 1);
  if (!s->ev || !s->busy) return err_set(NET_ESYS, "staging: out of memory");
  int rc = gpu_cuda_check(c, c->cuStreamCreate(&s->stream,
                                               GCU_STREAM_NON_BLOCKING),
                          "staging: cuStreamCreate(GPU %d)", s->device);
  for (int i = 0; rc == NET_OK && i < s->nslots; i++)
    rc = gpu_cuda_check(c, c->cuEventCreate(&s->ev[i],
                                            GCU_EVENT_DISABLE_TIMING),
                        "staging: cuEventCreate(GPU %d)", s->device);
  return rc;
}

int gpu_staging_open(gpu_cuda *c, int device, size_t slot_size, int nslots,
                     gpu_staging **out) {
  *out = NULL;
  if (slot_size == 0 || nslots < 1 || slot_size > SIZE_MAX / (size_t)nslots)
    return err_set(NET_EINVAL, "staging: %d slots of %zu bytes", nslots,
                   slot_size);
  gpu_staging *s = calloc(1, sizeof *s);
  if (!s) return err_set(NET_ESYS, "staging: out of memory");
  *s = (gpu_staging){.cuda = c, .device = device, .slot_size = slot_size,
                     .nslots = nslots};
  int rc = gpu_cuda_use_device(c, device, &s->ctx);
  if (rc == NET_OK) rc = alloc_host(s);
  if (rc == NET_OK) rc = make_stream_and_events(s);
  if (rc != NET_OK) {
    gpu_staging_close(s);
    return rc;
  }
  *out = s;
  return NET_OK;
}

void gpu_staging_close(gpu_staging *s) {
  if (!s) return;
  gpu_cuda *c = s->cuda;
  if (s->ctx && gpu_cuda_enter(c, s->ctx) == NET_OK) {
    if (s->stream) c->cuStreamSynchronize(s->stream);
    for (int i = 0; s->ev && i < s->nslots; i++)
      if (s->ev[i]) c->cuEventDestroy(s->ev[i]);
    if (s->stream) c->cuStreamDestroy(s->stream);
    if (s->host) c->cuMemFreeHost(s->host);
  }
  free(s->ev);
  free(s->busy);
  free(s);
}

static int check_slot(const gpu_staging *s, int slot, size_t n) {
  if (slot < 0 || slot >= s->nslots)
    return err_set(NET_EINVAL, "staging: slot %d (0..%d)", slot,
                   s->nslots - 1);
  if (n > s->slot_size)
    return err_set(NET_EINVAL, "staging: %zu bytes exceed the %zu-byte slot",
                   n, s->slot_size);
  return NET_OK;
}

/* Mark the slot's copy with its event. */
static int record(gpu_staging *s, int slot) {
  int rc = gpu_cuda_check(s->cuda, s->cuda->cuEventRecord(s->ev[slot],
                                                          s->stream),
                          "staging: cuEventRecord(slot %d)", slot);
  if (rc == NET_OK) s->busy[slot] = 1;
  return rc;
}

int gpu_staging_d2h(gpu_staging *s, int slot, const void *dev_src, size_t n) {
  int rc = check_slot(s, slot, n);
  if (rc == NET_OK) rc = gpu_cuda_enter(s->cuda, s->ctx);
  if (rc != NET_OK) return rc;
  rc = gpu_cuda_check(s->cuda, s->cuda->cuMemcpyDtoHAsync(
                                   gpu_staging_host(s, slot), gpu_dptr(dev_src),
                                   n, s->stream),
                      "staging: GPU %p -> host slot %d (%zu bytes)", dev_src,
                      slot, n);
  return rc == NET_OK ? record(s, slot) : rc;
}

int gpu_staging_h2d(gpu_staging *s, int slot, void *dev_dst, size_t n) {
  int rc = check_slot(s, slot, n);
  if (rc == NET_OK) rc = gpu_cuda_enter(s->cuda, s->ctx);
  if (rc != NET_OK) return rc;
  rc = gpu_cuda_check(s->cuda, s->cuda->cuMemcpyHtoDAsync(
                                   gpu_dptr(dev_dst), gpu_staging_host(s, slot),
                                   n, s->stream),
                      "staging: host slot %d -> GPU %p (%zu bytes)", slot,
                      dev_dst, n);
  return rc == NET_OK ? record(s, slot) : rc;
}

int gpu_staging_ready(gpu_staging *s, int slot, int *done) {
  *done = 0;
  int rc = check_slot(s, slot, 0);
  if (rc != NET_OK) return rc;
  if (!s->busy[slot]) {
    *done = 1;
    return NET_OK;
  }
  rc = gpu_cuda_enter(s->cuda, s->ctx);
  if (rc != NET_OK) return rc;
  gcu_result r = s->cuda->cuEventQuery(s->ev[slot]);
  if (r == GCU_ERROR_NOT_READY) return NET_OK;
  rc = gpu_cuda_check(s->cuda, r, "staging: copy of slot %d", slot);
  if (rc != NET_OK) return rc;
  s->busy[slot] = 0;
  *done = 1;
  return NET_OK;
}

void *gpu_staging_host(gpu_staging *s, int slot) {
  return s->host + (size_t)slot * s->slot_size;
}

size_t gpu_staging_slot_size(const gpu_staging *s) { return s->slot_size; }

int gpu_staging_slots(const gpu_staging *s) { return s->nslots; }
