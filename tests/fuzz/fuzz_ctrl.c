/* libFuzzer target: the control-message parser (src/engine/ctrl.c) fed the
 * input as a byte stream from the peer.
 *
 * Oracles, besides the sanitizers:
 * - every parsed message re-encodes to exactly the bytes it came from
 *   (the encoding is canonical), and those bytes parse to an equal message;
 * - a malformed message leaves an error message;
 * - a stream reader that receives the same bytes in small pieces sees the
 *   same messages and stops at the same place as one that has them all. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrl.h"
#include "ctrl_msg_equal.h"
#include "err.h"
#include "fuzz_common.h"

/* How the whole-input pass ended: at `end`, with `last` from ctrl_parse
 * (0: needs more bytes, -1: malformed). */
typedef struct pass_result {
  size_t *ends;      /* end offset of every parsed message */
  size_t count;
  size_t end;
  long last;
} pass_result;

/* Encode m again and compare with the bytes it was parsed from. */
static void check_reencode(const ctrl_msg *m, const uint8_t *orig, size_t len) {
  uint64_t *sizes = NULL;
  if (m->type == CTRL_SEND) {
    sizes = malloc((size_t)m->u.send.nseg * sizeof *sizes);
    FUZZ_ASSERT(sizes != NULL);
    for (uint32_t i = 0; i < m->u.send.nseg; i++)
      sizes[i] = ctrl_send_size(&m->u.send, i);
  }
  FUZZ_ASSERT(ctrl_encoded_len(m) == len);
  uint8_t *enc = malloc(len);
  FUZZ_ASSERT(enc != NULL);
  FUZZ_ASSERT(ctrl_encode(m, sizes, enc, len - 1) == 0);
  FUZZ_ASSERT(ctrl_encode(m, sizes, enc, len) == len);
  FUZZ_ASSERT(memcmp(enc, orig, len) == 0);
  ctrl_msg again;
  FUZZ_ASSERT(ctrl_parse(enc, len, &again) == (long)len);
  FUZZ_ASSERT(ctrl_msg_equal(m, &again));
  free(enc);
  free(sizes);
}

/* Parse everything at once, straight from the fuzzer's buffer, so that a
 * read past the input's end is caught by ASan. */
static pass_result whole_pass(const uint8_t *data, size_t size) {
  pass_result r = {malloc((size / CTRL_HDR_SIZE + 1) * sizeof(size_t)), 0, 0, 0};
  FUZZ_ASSERT(r.ends != NULL);
  for (;;) {
    ctrl_msg m;
    err_clear();
    long n = ctrl_parse(data + r.end, size - r.end, &m);
    if (n <= 0) {
      FUZZ_ASSERT(n == 0 || n == -1);
      if (n == -1) FUZZ_ASSERT(strstr(err_get(), "control: ") != NULL);
      r.last = n;
      return r;
    }
    FUZZ_ASSERT((size_t)n >= CTRL_HDR_SIZE && (size_t)n <= size - r.end);
    check_reencode(&m, data + r.end, (size_t)n);
    r.end += (size_t)n;
    r.ends[r.count++] = r.end;
  }
}

/* Bytes arrive `step` at a time; after each arrival the reader parses as
 * many whole messages as it has, like the engine's control reader. */
static void stream_pass(const uint8_t *data, size_t size, size_t step,
                        const pass_result *want) {
  size_t have = 0, done = 0, seen = 0;
  while (have < size) {
    have = have + step < size ? have + step : size;
    for (;;) {
      ctrl_msg m;
      long n = ctrl_parse(data + done, have - done, &m);
      if (n == 0) break;
      if (n < 0) {
        /* Malformed: it must be the very place the whole pass stopped. */
        FUZZ_ASSERT(want->last == -1 && done == want->end && seen == want->count);
        return;
      }
      FUZZ_ASSERT(seen < want->count && want->ends[seen] == done + (size_t)n);
      done += (size_t)n;
      seen++;
    }
  }
  FUZZ_ASSERT(seen == want->count && done == want->end && want->last == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pass_result r = whole_pass(data, size);
  /* Piece sizes from 1 up: a different split for different lengths. */
  size_t step = 1 + (size * 2654435761u >> 8) % 97;
  stream_pass(data, size, step, &r);
  if (size < 4096) stream_pass(data, size, 1, &r);
  free(r.ends);
  return 0;
}
