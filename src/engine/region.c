/* Memory regions and the exposures advertised from them.
 *
 * reg records a range and nothing else: no pinning, no touching the bytes
 * (applications free registered memory without deregistering). Transport
 * registrations are made lazily, per comm, on first use. A region lives
 * while referenced: by the table until dereg, and by every op or peer
 * access using it; dereg revokes it at once (its exposures vanish, new
 * uses are refused) and waits for peer accesses already in progress. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "cudadrv.h"
#include "engine.h"
#include "log.h"

/* ---- descriptors ------------------------------------------------------------------ */

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* magic u32 | version u16 | flags u16 | exposure id | addr | size | key[16] | zeros */
void desc_encode(const desc_fields *d, uint8_t out[P2P_DESC_SIZE]) {
  memset(out, 0, P2P_DESC_SIZE);
  put64(out, DESC_MAGIC | (uint64_t)1 << 32);
  put64(out + 8, d->exposure_id);
  put64(out + 16, d->addr);
  put64(out + 24, d->size);
  memcpy(out + 32, d->key, CTRL_KEY_SIZE);
}

int desc_decode(const uint8_t in[P2P_DESC_SIZE], desc_fields *d) {
  uint64_t head = get64(in);
  int reserved_zero = 1;
  for (int i = 32 + CTRL_KEY_SIZE; i < P2P_DESC_SIZE; i++) reserved_zero &= in[i] == 0;
  if ((uint32_t)head != DESC_MAGIC || head >> 32 != 1 || !reserved_zero)
    return ep_err(P2P_EINVAL, "not a tcpx-p2p descriptor (from advertise)");
  d->exposure_id = get64(in + 8);
  d->addr = get64(in + 16);
  d->size = get64(in + 24);
  memcpy(d->key, in + 32, CTRL_KEY_SIZE);
  return P2P_OK;
}

/* ---- registration ------------------------------------------------------------------ */

int p2p_reg(p2p_endpoint *ep, void *ptr, size_t size, uint64_t *mr_id) {
  if (!ep || !mr_id) return ep_err(P2P_EINVAL, "reg: NULL argument");
  if (!ptr && size) return ep_err(P2P_EINVAL, "reg: NULL pointer with %zu bytes", size);
  if ((uintptr_t)ptr + size < (uintptr_t)ptr)
    return ep_err(P2P_EINVAL, "reg: range wraps around");
  mem_region *mr = calloc(1, sizeof *mr);
  if (!mr) return ep_err(P2P_ENOMEM, "out of memory");
  int kind = GPU_MEM_HOST, device = -1;
  if (ptr && gpu_ptr_classify(ptr, &kind, &device) != NET_OK) {
    free(mr);
    return ep_err(P2P_ENOTSUP, "reg: %s", err_get());
  }
  /* Garbage would crash us later (a small send copies from it, a peer's
   * read too): host memory must be mapped now. */
  if (kind != GPU_MEM_DEVICE && !mem_mapped(ptr, size)) {
    free(mr);
    return ep_err(P2P_EINVAL, "reg: [%p, +%zu) is not mapped memory", ptr, size);
  }
  mr->base = (uintptr_t)ptr;
  mr->size = size;
  mr->ptr_type = kind == GPU_MEM_DEVICE ? NCCL_PTR_CUDA : NCCL_PTR_HOST;
  mr->device = kind == GPU_MEM_DEVICE ? device : -1;
  mr->refs = 1;
  pthread_mutex_lock(&ep->regions_lock);
  size_t count = ep->regions.count;
  int rc = count >= ep->lim.max_regions ? 1 : 0;
  if (!rc) {
    mr->id = ++ep->next_mr_id;
    rc = idmap_put(&ep->regions, mr->id, mr) != 0 ? -1 : 0;
  }
  pthread_mutex_unlock(&ep->regions_lock);
  if (rc != 0) {
    free(mr);
    return rc > 0 ? ep_err(P2P_ELIMIT, "reg: %zu regions registered already "
                           "(TCPX_P2P_MAX_REGIONS)", count)
                  : ep_err(P2P_ENOMEM, "out of memory");
  }
  *mr_id = mr->id;
  err_clear(); /* a "no CUDA" from classifying is not a failure */
  return P2P_OK;
}

int p2p_regv(p2p_endpoint *ep, void *const *ptrs, const size_t *sizes, size_t n,
             uint64_t *mr_ids) {
  if (!ep || (n && (!ptrs || !sizes || !mr_ids)))
    return ep_err(P2P_EINVAL, "regv: NULL argument");
  for (size_t i = 0; i < n; i++) {
    int rc = p2p_reg(ep, ptrs[i], sizes[i], &mr_ids[i]);
    if (rc != P2P_OK) {
      while (i--) p2p_dereg(ep, mr_ids[i]);
      return rc;
    }
  }
  return P2P_OK;
}

/* Under regions_lock. */
static mem_region *live_region(p2p_endpoint *ep, uint64_t id) {
  mem_region *mr = idmap_get(&ep->regions, id);
  return mr && !mr->revoked ? mr : NULL;
}

/* Exposures are also found by what they expose, so advertising the same
 * range again (applications do, per transfer) returns the same descriptor
 * instead of piling up entries. The key is a hash; equal fields decide. */
static uint64_t range_key(uint64_t mr_id, uintptr_t addr, size_t size) {
  uint64_t h = mr_id * 0x9E3779B97F4A7C15ull ^ (uint64_t)addr;
  h = (h ^ (h >> 29)) * 0xBF58476D1CE4E5B9ull ^ (uint64_t)size;
  h ^= h >> 32;
  return h == 0 || h == UINT64_MAX ? 1 : h;
}

static void remove_exposures(p2p_endpoint *ep, uint64_t mr_id) {
  for (size_t i = 0; i < ep->exposures.cap; i++)
    if (idmap_live(&ep->exposures, i)) {
      exposure *e = ep->exposures.slots[i].value;
      if (e->mr_id != mr_id) continue;
      uint64_t k = range_key(e->mr_id, e->addr, e->size);
      if (idmap_get(&ep->exposure_ranges, k) == e) idmap_del(&ep->exposure_ranges, k);
      free(idmap_del(&ep->exposures, e->id));
    }
}

int p2p_dereg(p2p_endpoint *ep, uint64_t mr_id) {
  if (!ep) return ep_err(P2P_EINVAL, "dereg: NULL endpoint");
  pthread_mutex_lock(&ep->regions_lock);
  mem_region *mr = live_region(ep, mr_id);
  if (!mr) {
    pthread_mutex_unlock(&ep->regions_lock);
    return ep_err(P2P_ENOTFOUND, "dereg: no region %llu", (unsigned long long)mr_id);
  }
  mr->revoked = 1;
  remove_exposures(ep, mr_id);
  /* Peer accesses already moving bytes finish before dereg returns. */
  struct timespec until;
  deadline_in(&until, ep->opts.timeout_ms + 1000);
  int timed_out = 0;
  while (mr->serving > 0 && !timed_out)
    timed_out = pthread_cond_timedwait(&ep->regions_cond, &ep->regions_lock, &until) != 0;
  pthread_mutex_unlock(&ep->regions_lock);
  region_put(ep, mr);
  if (timed_out)
    return ep_err(P2P_ETIMEDOUT, "dereg: a peer access to region %llu is still "
                  "in progress", (unsigned long long)mr_id);
  return P2P_OK;
}

int region_get(p2p_endpoint *ep, uint64_t mr_id, mem_region **out) {
  pthread_mutex_lock(&ep->regions_lock);
  mem_region *mr = live_region(ep, mr_id);
  if (mr) mr->refs++;
  pthread_mutex_unlock(&ep->regions_lock);
  *out = mr;
  if (!mr) return ep_err(P2P_ENOTFOUND, "no registered region %llu",
                         (unsigned long long)mr_id);
  return P2P_OK;
}

static void drop_handles(mem_region *mr) {
  while (mr->handles) {
    mr_handle *h = mr->handles;
    mr->handles = h->next;
    net_call(h->net, dereg_mr, h->comm, h->mh);
    free(h);
  }
}

void region_put(p2p_endpoint *ep, mem_region *mr) {
  pthread_mutex_lock(&ep->regions_lock);
  int last = --mr->refs == 0;
  if (last) {
    idmap_del(&ep->regions, mr->id);
    drop_handles(mr);
  }
  pthread_mutex_unlock(&ep->regions_lock);
  if (last) free(mr);
}

void *region_mh(p2p_endpoint *ep, net_transport *net, mem_region *mr, void *comm) {
  void *mh = NULL;
  pthread_mutex_lock(&ep->regions_lock);
  for (mr_handle *h = mr->handles; h && !mh; h = h->next)
    if (h->comm == comm) mh = h->mh;
  if (!mh) {
    /* GPU memory registers as whole 4 KiB pages (TCPX's rule): the page
     * range around the region; pointers inside it are offsets into it. */
    uintptr_t base = mr->base, end = mr->base + mr->size;
    if (mr->ptr_type == NCCL_PTR_CUDA) {
      base &= ~(uintptr_t)4095;
      end = (end + 4095) & ~(uintptr_t)4095;
    }
    mr_handle *h = calloc(1, sizeof *h);
    if (h && net_call(net, reg_mr, comm, (void *)base, end - base, mr->ptr_type,
                      &h->mh) == NET_OK) {
      h->net = net;
      h->comm = comm;
      h->next = mr->handles;
      mr->handles = h;
      mh = h->mh;
    } else {
      free(h); /* the transport will refuse the request itself if it needs one */
    }
  }
  pthread_mutex_unlock(&ep->regions_lock);
  return mh;
}

static int comm_of_conn(const conn *c, const void *comm) {
  for (int li = 0; li < ENGINE_LANES; li++)
    for (int k = 0; k < ENGINE_MAX_COMMS; k++)
      if (c->send_lanes[li].comm[k] == comm || c->recv_lanes[li].comm[k] == comm)
        return comm != NULL;
  return 0;
}

static int comm_abandoned(const conn *c, const void *comm) {
  for (int i = 0; i < c->nabandoned; i++)
    if (c->abandoned[i] == comm) return 1;
  return 0;
}

/* Handles on the connection's comms are deregistered; those on abandoned
 * comms (drain.c) are only dropped: a request may still use them. */
static void forget_in(mem_region *mr, conn *c) {
  for (mr_handle **pp = &mr->handles; *pp;) {
    mr_handle *h = *pp;
    int mine = comm_of_conn(c, h->comm);
    if (mine || comm_abandoned(c, h->comm)) {
      if (mine && net_call(h->net, dereg_mr, h->comm, h->mh) != NET_OK)
        log_msg(LOG_WARN, "connection %llu: deregMr on %s: %s",
                (unsigned long long)c->id, h->net->name, err_get());
      *pp = h->next;
      free(h);
    } else {
      pp = &h->next;
    }
  }
}

void regions_forget_comms(p2p_endpoint *ep, conn *c) {
  pthread_mutex_lock(&ep->regions_lock);
  for (size_t i = 0; i < ep->regions.cap; i++)
    if (idmap_live(&ep->regions, i)) forget_in(ep->regions.slots[i].value, c);
  forget_in(&c->scratch_mr, c);
  for (int dir = 0; dir < 2; dir++)
    for (int i = 0; i < GPATH_MAX_SLOTS; i++) forget_in(&c->stage_mr[dir][i], c);
  pthread_mutex_unlock(&ep->regions_lock);
}

void regions_free_all(p2p_endpoint *ep) {
  for (size_t i = 0; i < ep->regions.cap; i++)
    if (idmap_live(&ep->regions, i)) {
      mem_region *mr = ep->regions.slots[i].value;
      drop_handles(mr);
      free(mr);
    }
  idmap_free(&ep->regions);
  for (size_t i = 0; i < ep->exposures.cap; i++)
    if (idmap_live(&ep->exposures, i)) free(ep->exposures.slots[i].value);
  idmap_free(&ep->exposures);
  idmap_free(&ep->exposure_ranges);
}

/* ---- exposures --------------------------------------------------------------------- */

int p2p_advertise(p2p_endpoint *ep, uint64_t conn_id, uint64_t mr_id, void *ptr,
                  size_t size, uint8_t desc[P2P_DESC_SIZE]) {
  (void)conn_id; /* a descriptor works on any connection that knows its key */
  if (!ep || !desc) return ep_err(P2P_EINVAL, "advertise: NULL argument");
  exposure *e = calloc(1, sizeof *e);
  if (!e) return ep_err(P2P_ENOMEM, "out of memory");
  if (auth_random(e->key, sizeof e->key) != 0) {
    free(e);
    return ep_err(P2P_ESYS, "%s", err_get());
  }
  e->mr_id = mr_id;
  e->addr = (uintptr_t)ptr;
  e->size = size;
  pthread_mutex_lock(&ep->regions_lock);
  mem_region *mr = live_region(ep, mr_id);
  int rc = P2P_OK;
  if (!mr)
    rc = ep_err(P2P_ENOTFOUND, "advertise: no registered region %llu",
                (unsigned long long)mr_id);
  else if (e->addr < mr->base || e->addr + size < e->addr ||
           e->addr + size > mr->base + mr->size)
    rc = ep_err(P2P_EINVAL, "advertise: [%p, +%zu) is outside region %llu",
                ptr, size, (unsigned long long)mr_id);
  uint64_t k = range_key(mr_id, e->addr, size);
  exposure *same = rc == P2P_OK ? idmap_get(&ep->exposure_ranges, k) : NULL;
  if (same && (same->mr_id != mr_id || same->addr != e->addr || same->size != size))
    same = NULL; /* a hash collision: a new entry, not indexed by range */
  if (same) {
    free(e);
    e = same;
  } else if (rc == P2P_OK) {
    e->id = ++ep->next_exposure_id;
    if (idmap_put(&ep->exposures, e->id, e) != 0) rc = ep_err(P2P_ENOMEM, "out of memory");
    else if (!idmap_get(&ep->exposure_ranges, k))
      idmap_put(&ep->exposure_ranges, k, e); /* best effort: only an index */
  }
  desc_fields d = {.exposure_id = e->id, .addr = e->addr, .size = e->size};
  memcpy(d.key, e->key, CTRL_KEY_SIZE);
  pthread_mutex_unlock(&ep->regions_lock);
  if (rc != P2P_OK) {
    free(e);
    return rc;
  }
  desc_encode(&d, desc);
  return P2P_OK;
}

int region_acquire(p2p_endpoint *ep, const ctrl_access *a, int is_write,
                   uint8_t **ptr, mem_region **out) {
  const char *what = is_write ? "write" : "read";
  int rc = P2P_OK;
  pthread_mutex_lock(&ep->regions_lock);
  exposure *e = idmap_get(&ep->exposures, a->region);
  mem_region *mr = e ? live_region(ep, e->mr_id) : NULL;
  if (!e || !auth_equal(e->key, a->key, CTRL_KEY_SIZE))
    rc = err_set(P2P_EREFUSED, "%s: unknown region or wrong key", what);
  else if (!mr)
    rc = err_set(P2P_EREFUSED, "%s: region deregistered", what);
  else if (a->offset > e->size || a->size > e->size - a->offset)
    rc = err_set(P2P_EREFUSED, "%s of %llu bytes at %llu: beyond the %zu "
                 "advertised bytes", what, (unsigned long long)a->size,
                 (unsigned long long)a->offset, e->size);
  if (rc == P2P_OK) {
    mr->refs++;
    mr->serving++;
    *ptr = (uint8_t *)e->addr + a->offset;
    *out = mr;
  }
  pthread_mutex_unlock(&ep->regions_lock);
  return rc;
}

void region_release(p2p_endpoint *ep, mem_region *mr) {
  pthread_mutex_lock(&ep->regions_lock);
  mr->serving--;
  pthread_cond_broadcast(&ep->regions_cond);
  pthread_mutex_unlock(&ep->regions_lock);
  region_put(ep, mr);
}
