/* A growable byte buffer for control-channel I/O: bytes are appended at
 * the end and consumed from the front; space is reclaimed by sliding. */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

int bytebuf_reserve(bytebuf *b, size_t more) {
  if (b->off && b->off == b->len) b->off = b->len = 0;
  if (b->cap - b->len >= more) return 0;
  if (b->off) { /* slide the valid bytes down first */
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    if (b->cap - b->len >= more) return 0;
  }
  size_t cap = b->cap ? b->cap : 4096;
  while (cap - b->len < more) cap *= 2;
  uint8_t *d = realloc(b->data, cap);
  if (!d) return err_set(-1, "out of memory (%zu bytes)", cap);
  b->data = d;
  b->cap = cap;
  return 0;
}

int bytebuf_append(bytebuf *b, const void *src, size_t n) {
  if (bytebuf_reserve(b, n) != 0) return -1;
  memcpy(b->data + b->len, src, n);
  b->len += n;
  return 0;
}

void bytebuf_consume(bytebuf *b, size_t n) {
  b->off += n;
  if (b->off == b->len) b->off = b->len = 0;
}

void bytebuf_free(bytebuf *b) {
  free(b->data);
  *b = (bytebuf){0};
}
