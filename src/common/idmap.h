/* A map from non-zero 64-bit ids to pointers (open addressing, linear
 * probing, tombstones). Not thread-safe: callers hold their own lock. */
#ifndef TCPX_P2P_IDMAP_H
#define TCPX_P2P_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct idmap_slot {
  uint64_t id;   /* 0 = empty, UINT64_MAX = deleted */
  void *value;
} idmap_slot;

typedef struct idmap {
  idmap_slot *slots;
  size_t cap;    /* power of two, or 0 */
  size_t count;  /* live entries */
  size_t used;   /* live + deleted */
} idmap;

/* 0 on success, -1 when out of memory (err_get() set). `id` must be new. */
int idmap_put(idmap *m, uint64_t id, void *value);
void *idmap_get(const idmap *m, uint64_t id);
/* Removes and returns the value, or NULL. */
void *idmap_del(idmap *m, uint64_t id);
void idmap_free(idmap *m);

/* Iterate: for (size_t i = 0; i < m->cap; i++) if (idmap_live(m, i)) ... */
static inline int idmap_live(const idmap *m, size_t i) {
  return m->slots[i].id != 0 && m->slots[i].id != UINT64_MAX;
}

#endif
