/* Reproducible pseudo-random bytes (xorshift64*), for test data and the
 * CLI's transfer checks: both ends derive the same bytes from one seed. */
#ifndef TCPX_P2P_PRNG_H
#define TCPX_P2P_PRNG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void prng_fill(void *buf, size_t len, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  if (x == 0) x = 0x2545F4914F6CDD1Dull; /* xorshift must not start at 0 */
  unsigned char *p = buf;
  while (len) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    uint64_t v = x * 0x2545F4914F6CDD1Dull;
    size_t n = len < 8 ? len : 8;
    memcpy(p, &v, n);
    p += n;
    len -= n;
  }
}

#endif
