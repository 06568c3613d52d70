#include "idmap.h"

#include <stdlib.h>

#include "err.h"

#define DELETED UINT64_MAX

static size_t slot_of(uint64_t id, size_t cap) {
  id ^= id >> 33;
  id *= 0xff51afd7ed558ccdull;
  id ^= id >> 33;
  return (size_t)id & (cap - 1);
}

static int grow(idmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 16;
  while (m->count * 2 >= cap) cap *= 2;
  idmap_slot *slots = calloc(cap, sizeof *slots);
  if (!slots) return err_set(-1, "out of memory (id map of %zu)", cap);
  for (size_t i = 0; i < m->cap; i++) {
    if (!idmap_live(m, i)) continue;
    size_t j = slot_of(m->slots[i].id, cap);
    while (slots[j].id) j = (j + 1) & (cap - 1);
    slots[j] = m->slots[i];
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  m->used = m->count;
  return 0;
}

int idmap_put(idmap *m, uint64_t id, void *value) {
  if ((m->used + 1) * 4 >= m->cap * 3 && grow(m) != 0) return -1;
  size_t j = slot_of(id, m->cap);
  while (m->slots[j].id && m->slots[j].id != DELETED)
    j = (j + 1) & (m->cap - 1);
  if (!m->slots[j].id) m->used++;
  m->slots[j] = (idmap_slot){id, value};
  m->count++;
  return 0;
}

static idmap_slot *find(const idmap *m, uint64_t id) {
  if (!m->cap || id == 0 || id == DELETED) return NULL;
  size_t j = slot_of(id, m->cap);
  while (m->slots[j].id) {
    if (m->slots[j].id == id) return &m->slots[j];
    j = (j + 1) & (m->cap - 1);
  }
  return NULL;
}

void *idmap_get(const idmap *m, uint64_t id) {
  idmap_slot *s = find(m, id);
  return s ? s->value : NULL;
}

void *idmap_del(idmap *m, uint64_t id) {
  idmap_slot *s = find(m, id);
  if (!s) return NULL;
  void *v = s->value;
  s->id = DELETED;
  s->value = NULL;
  m->count--;
  return v;
}

void idmap_free(idmap *m) {
  free(m->slots);
  *m = (idmap){0};
}
