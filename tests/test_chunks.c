/* src/engine/chunks.c: how a message is cut. Both sides run chunk_cut on
 * what they agreed (chunk size, comms per lane, the split rule), so the
 * receiver posts exactly the sender's sizes; these cases pin the rule. */
#include <stdint.h>

#include "check.h"
#include "engine.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)

/* Without the split rule every chunk is the agreed chunk size. */
static int test_cut_without_split(void) {
  CHECK_EQ(chunk_cut(MiB, 2, 0, 1), MiB);
  CHECK_EQ(chunk_cut(MiB, 2, 0, 300 * KiB), MiB);
  CHECK_EQ(chunk_cut(4 * MiB, 3, 0, 64 * MiB), 4 * MiB);
  return 0;
}

/* With it a message shorter than two chunks per comm goes out as two
 * page-rounded chunks per comm, never under 64 KiB, never over the agreed
 * size. */
static int test_cut_with_split(void) {
  CHECK_EQ(chunk_cut(MiB, 2, 1, MiB), 256 * KiB);       /* 4 chunks, 2 per comm */
  CHECK_EQ(chunk_cut(MiB, 2, 1, 256 * KiB), 64 * KiB);
  CHECK_EQ(chunk_cut(MiB, 2, 1, 65 * KiB), 64 * KiB);   /* floor: 64 KiB */
  CHECK_EQ(chunk_cut(MiB, 2, 1, 1), 64 * KiB);
  CHECK_EQ(chunk_cut(MiB, 2, 1, MiB + 5), 260 * KiB);   /* ceil(size / 4), page-rounded */
  CHECK_EQ(chunk_cut(MiB, 2, 1, 4 * MiB), MiB);         /* big enough: the agreed size */
  CHECK_EQ(chunk_cut(MiB, 2, 1, 64 * MiB), MiB);
  CHECK_EQ(chunk_cut(MiB, 1, 1, MiB), 512 * KiB);
  CHECK_EQ(chunk_cut(64 * KiB, 4, 1, MiB), 64 * KiB);   /* a small agreed size wins */
  CHECK_EQ(chunk_cut(4 * KiB, 2, 1, MiB), 4 * KiB);
  return 0;
}

/* No cut ever yields more than 2 x comms chunks below the agreed size, or
 * a chunk over it (TCPX takes at most 4 MiB per receive). */
static int test_cut_bounds(void) {
  for (uint64_t size = 1; size <= 16 * MiB; size = size * 3 + 4093)
    for (int n = 1; n <= 8; n++) {
      uint64_t cut = chunk_cut(MiB, n, 1, size);
      CHECK(cut <= MiB && cut >= 4 * KiB && cut % (4 * KiB) == 0);
      if (cut < MiB) CHECK((size + cut - 1) / cut <= 2 * (uint64_t)n);
    }
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_cut_without_split),
    CHECK_CASE(test_cut_with_split),
    CHECK_CASE(test_cut_bounds),
};

CHECK_MAIN(cases)
