/* SHA-256 (FIPS 180-4), HMAC-SHA256 (RFC 2104), the connection proof built
 * on them, and the endpoint's source of unguessable bytes. */
#include "auth.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "err.h"

/* ---- SHA-256 ------------------------------------------------------------ */

#define SHA256_BLOCK 64

typedef struct sha256_ctx {
  uint32_t state[8];
  uint8_t block[SHA256_BLOCK];
  size_t used;       /* bytes waiting in block */
  uint64_t total;    /* message length so far, in bytes */
} sha256_ctx;

/* FIPS 180-4 section 4.2.2: the first 32 bits of the fractional parts of
 * the cube roots of the first 64 primes. */
static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static uint32_t load_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void sha256_init(sha256_ctx *c) {
  /* Section 5.3.3: fractional parts of the square roots of the first 8
   * primes. */
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                 0xa54ff53a, 0x510e527f, 0x9b05688c,
                                 0x1f83d9ab, 0x5be0cd19};
  memcpy(c->state, h0, sizeof h0);
  c->used = 0;
  c->total = 0;
}

/* Section 6.2.2: one 512-bit block into the state. */
static void sha256_compress(uint32_t state[8], const uint8_t block[SHA256_BLOCK]) {
  uint32_t w[64];
  for (int t = 0; t < 16; t++) w[t] = load_be32(block + 4 * t);
  for (int t = 16; t < 64; t++) {
    uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
    uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
    w[t] = w[t - 16] + s0 + w[t - 7] + s1;
  }
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
  for (int t = 0; t < 64; t++) {
    uint32_t big_s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + big_s1 + ch + sha256_k[t] + w[t];
    uint32_t big_s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = big_s0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
  state[5] += f;
  state[6] += g;
  state[7] += h;
}

static void sha256_update(sha256_ctx *c, const void *data, size_t len) {
  const uint8_t *p = data;
  c->total += len;
  while (len > 0) {
    size_t take = SHA256_BLOCK - c->used;
    if (take > len) take = len;
    memcpy(c->block + c->used, p, take);
    c->used += take;
    p += take;
    len -= take;
    if (c->used == SHA256_BLOCK) {
      sha256_compress(c->state, c->block);
      c->used = 0;
    }
  }
}

/* Section 5.1.1: a 1 bit, zeros to 448 mod 512, the bit length as 64-bit
 * big-endian. */
static void sha256_final(sha256_ctx *c, uint8_t out[32]) {
  uint64_t bits = c->total * 8;
  static const uint8_t pad[SHA256_BLOCK] = {0x80};
  size_t pad_len = c->used < 56 ? 56 - c->used : 120 - c->used;
  sha256_update(c, pad, pad_len);
  uint8_t len_be[8];
  for (int i = 0; i < 8; i++) len_be[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha256_update(c, len_be, sizeof len_be);
  for (int i = 0; i < 8; i++) store_be32(out + 4 * i, c->state[i]);
}

void auth_sha256(const void *data, size_t len, uint8_t out[32]) {
  sha256_ctx c;
  sha256_init(&c);
  sha256_update(&c, data, len);
  sha256_final(&c, out);
}

/* ---- HMAC-SHA256 -------------------------------------------------------- */

void auth_hmac_sha256(const void *key, size_t key_len, const void *msg,
                      size_t msg_len, uint8_t out[32]) {
  /* RFC 2104: keys longer than a block are hashed first; the key is then
   * zero-padded to a block and XORed with ipad (0x36) / opad (0x5c). */
  uint8_t k0[SHA256_BLOCK] = {0};
  if (key_len > SHA256_BLOCK)
    auth_sha256(key, key_len, k0);
  else if (key_len > 0)
    memcpy(k0, key, key_len);
  uint8_t pad[SHA256_BLOCK];
  uint8_t inner[32];
  sha256_ctx c;

  for (int i = 0; i < SHA256_BLOCK; i++) pad[i] = k0[i] ^ 0x36;
  sha256_init(&c);
  sha256_update(&c, pad, sizeof pad);
  sha256_update(&c, msg, msg_len);
  sha256_final(&c, inner);

  for (int i = 0; i < SHA256_BLOCK; i++) pad[i] = k0[i] ^ 0x5c;
  sha256_init(&c);
  sha256_update(&c, pad, sizeof pad);
  sha256_update(&c, inner, sizeof inner);
  sha256_final(&c, out);
}

/* ---- proof, comparison, randomness --------------------------------------- */

#define AUTH_LABEL "tcpx-p2p auth v1"

void auth_proof(const char *token, int role, const uint8_t own_nonce[32],
                const uint8_t peer_nonce[32], uint8_t mac[AUTH_MAC_SIZE]) {
  uint8_t msg[sizeof AUTH_LABEL - 1 + 1 + 32 + 32];
  size_t off = 0;
  memcpy(msg, AUTH_LABEL, sizeof AUTH_LABEL - 1);
  off += sizeof AUTH_LABEL - 1;
  msg[off++] = (uint8_t)role;
  memcpy(msg + off, own_nonce, 32);
  off += 32;
  memcpy(msg + off, peer_nonce, 32);
  off += 32;
  const char *key = token ? token : "";
  auth_hmac_sha256(key, strlen(key), msg, off, mac);
}

int auth_equal(const uint8_t *a, const uint8_t *b, size_t len) {
  /* Touch every byte whatever the data, so timing says nothing about
   * where the first difference is. */
  volatile uint8_t diff = 0;
  for (size_t i = 0; i < len; i++) diff |= a[i] ^ b[i];
  return diff == 0;
}

int auth_random(void *buf, size_t len) {
  uint8_t *p = buf;
  while (len > 0) {
    ssize_t got = getrandom(p, len, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return err_sys(-1, errno, "getrandom(%zu bytes)", len);
    }
    if (got == 0)
      return err_set(-1, "getrandom(%zu bytes): returned no bytes", len);
    p += got;
    len -= (size_t)got;
  }
  return 0;
}
