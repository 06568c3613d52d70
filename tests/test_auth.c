/* src/engine/auth.c: SHA-256 and HMAC-SHA256 against the published test
 * vectors, the connection proof, constant-time comparison, randomness. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "check.h"

/* "ba78..." -> bytes; returns 0 on a malformed string. */
static int from_hex(const char *hex, uint8_t *out, size_t len) {
  if (strlen(hex) != 2 * len) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return 0;
    out[i] = (uint8_t)v;
  }
  return 1;
}

static int digest_is(const uint8_t got[32], const char *hex) {
  uint8_t want[32];
  if (!from_hex(hex, want, sizeof want)) return 0;
  if (memcmp(got, want, 32) == 0) return 1;
  fprintf(stderr, "  digest ");
  for (int i = 0; i < 32; i++) fprintf(stderr, "%02x", got[i]);
  fprintf(stderr, "\n  wanted %s\n", hex);
  return 0;
}

static int sha_of_str_is(const char *msg, const char *hex) {
  uint8_t d[32];
  auth_sha256(msg, strlen(msg), d);
  return digest_is(d, hex);
}

/* ---- SHA-256: FIPS 180-4 examples (csrc.nist.gov SHA256.pdf) ------------- */

static int test_sha256_abc(void) {
  CHECK(sha_of_str_is(
      "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  return 0;
}

static int test_sha256_empty(void) {
  CHECK(sha_of_str_is(
      "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  uint8_t d[32];
  auth_sha256(NULL, 0, d); /* no data at all is the empty message */
  CHECK(digest_is(
      d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  return 0;
}

static int test_sha256_448_bits(void) {
  /* Two blocks: the padding no longer fits in the first. */
  CHECK(sha_of_str_is(
      "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
  return 0;
}

static int test_sha256_million_a(void) {
  size_t n = 1000000;
  char *a = malloc(n);
  CHECK(a != NULL);
  memset(a, 'a', n);
  uint8_t d[32];
  auth_sha256(a, n, d);
  free(a);
  CHECK(digest_is(
      d, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
  return 0;
}

/* Lengths around the padding boundaries (55/56 bytes fit or do not fit
 * the length field; 64 is a full block), message bytes 0, 1, 2, ...;
 * digests from Python's hashlib. */
static int test_sha256_padding_boundaries(void) {
  static const struct { size_t len; const char *hex; } v[] = {
      {55, "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59"},
      {56, "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562"},
      {63, "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488"},
      {64, "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108"},
      {65, "4bfd2c8b6f1eec7a2afeb48b934ee4b2694182027e6d0fc075074f2fabb31781"},
      {119, "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6"},
      {120, "f52b23db1fbb6ded89ef42a23ce0c8922c45f25c50b568a93bf1c075420bbb7c"},
      {128, "471fb943aa23c511f6f72f8d1652d9c880cfa392ad80503120547703e56a2be5"},
  };
  uint8_t msg[128];
  for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)i;
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    uint8_t d[32];
    auth_sha256(msg, v[i].len, d);
    if (!digest_is(d, v[i].hex)) fprintf(stderr, "  at length %zu\n", v[i].len);
    CHECK(digest_is(d, v[i].hex));
  }
  return 0;
}

/* ---- HMAC-SHA256: RFC 4231 section 4 ------------------------------------ */

static int hmac_is(const uint8_t *key, size_t key_len, const void *msg,
                   size_t msg_len, const char *hex) {
  uint8_t mac[32];
  auth_hmac_sha256(key, key_len, msg, msg_len, mac);
  return digest_is(mac, hex);
}

static int test_hmac_rfc4231_case1(void) {
  uint8_t key[20];
  memset(key, 0x0b, sizeof key);
  CHECK(hmac_is(key, sizeof key, "Hi There", 8,
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));
  return 0;
}

static int test_hmac_rfc4231_case2(void) {
  const char *msg = "what do ya want for nothing?";
  CHECK(hmac_is((const uint8_t *)"Jefe", 4, msg, strlen(msg),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
  return 0;
}

static int test_hmac_rfc4231_case3(void) {
  uint8_t key[20], msg[50];
  memset(key, 0xaa, sizeof key);
  memset(msg, 0xdd, sizeof msg);
  CHECK(hmac_is(key, sizeof key, msg, sizeof msg,
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"));
  return 0;
}

static int test_hmac_rfc4231_case4(void) {
  uint8_t key[25], msg[50];
  for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)(i + 1);
  memset(msg, 0xcd, sizeof msg);
  CHECK(hmac_is(key, sizeof key, msg, sizeof msg,
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"));
  return 0;
}

static int test_hmac_rfc4231_case6_long_key(void) {
  uint8_t key[131];
  memset(key, 0xaa, sizeof key);
  const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
  CHECK(hmac_is(key, sizeof key, msg, strlen(msg),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
  return 0;
}

static int test_hmac_rfc4231_case7_long_key_and_data(void) {
  uint8_t key[131];
  memset(key, 0xaa, sizeof key);
  const char *msg =
      "This is a test using a larger than block-size key and a larger than "
      "block-size data. The key needs to be hashed before being used by the "
      "HMAC algorithm.";
  CHECK(hmac_is(key, sizeof key, msg, strlen(msg),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"));
  return 0;
}

/* RFC 2104: a key longer than a block is replaced by its hash; one of
 * exactly a block is used as it is. */
static int test_hmac_long_key_is_its_hash(void) {
  uint8_t key[100], hashed[32], a[32], b[32];
  for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)(i * 7 + 3);
  auth_sha256(key, sizeof key, hashed);
  auth_hmac_sha256(key, sizeof key, "m", 1, a);
  auth_hmac_sha256(hashed, sizeof hashed, "m", 1, b);
  CHECK(memcmp(a, b, 32) == 0);
  auth_hmac_sha256(key, 64, "m", 1, a);
  auth_sha256(key, 64, hashed);
  auth_hmac_sha256(hashed, sizeof hashed, "m", 1, b);
  CHECK(memcmp(a, b, 32) != 0);
  return 0;
}

/* ---- proof ---------------------------------------------------------------- */

static void nonce_fill(uint8_t n[32], uint8_t seed) {
  for (int i = 0; i < 32; i++) n[i] = (uint8_t)(seed + 31 * i);
}

/* The proof is the documented HMAC, built here independently. */
static int test_proof_is_documented_hmac(void) {
  uint8_t own[32], peer[32], mac[32], want[32];
  nonce_fill(own, 1);
  nonce_fill(peer, 2);
  for (int role = 0; role <= 1; role++) {
    uint8_t msg[16 + 1 + 64];
    memcpy(msg, "tcpx-p2p auth v1", 16);
    msg[16] = (uint8_t)role;
    memcpy(msg + 17, own, 32);
    memcpy(msg + 49, peer, 32);
    auth_hmac_sha256("s3cret", 6, msg, sizeof msg, want);
    auth_proof("s3cret", role, own, peer, mac);
    CHECK(memcmp(mac, want, 32) == 0);
  }
  return 0;
}

static int test_proof_differs_by_role(void) {
  uint8_t own[32], peer[32], c[32], a[32];
  nonce_fill(own, 1);
  nonce_fill(peer, 2);
  auth_proof("token", 0, own, peer, c);
  auth_proof("token", 1, own, peer, a);
  CHECK(memcmp(c, a, 32) != 0);
  return 0;
}

static int test_proof_differs_by_nonce(void) {
  uint8_t n1[32], n2[32], n3[32], base[32], other[32];
  nonce_fill(n1, 1);
  nonce_fill(n2, 2);
  nonce_fill(n3, 2);
  n3[31] ^= 1; /* one bit of the peer's nonce */
  auth_proof("token", 0, n1, n2, base);
  auth_proof("token", 0, n1, n3, other);
  CHECK(memcmp(base, other, 32) != 0);
  auth_proof("token", 0, n2, n1, other); /* own and peer swapped */
  CHECK(memcmp(base, other, 32) != 0);
  n3[31] ^= 1;
  auth_proof("token", 0, n1, n3, other); /* same inputs, same proof */
  CHECK(memcmp(base, other, 32) == 0);
  return 0;
}

static int test_proof_differs_by_token(void) {
  uint8_t own[32], peer[32], a[32], b[32], empty[32];
  nonce_fill(own, 1);
  nonce_fill(peer, 2);
  auth_proof("token", 0, own, peer, a);
  auth_proof("tokem", 0, own, peer, b);
  auth_proof("", 0, own, peer, empty);
  CHECK(memcmp(a, b, 32) != 0);
  CHECK(memcmp(a, empty, 32) != 0);
  return 0;
}

/* What the acceptor recomputes to check the connector's proof matches. */
static int test_proof_verifies_across_sides(void) {
  uint8_t cn[32], an[32], sent[32], expect[32];
  CHECK_EQ(auth_random(cn, sizeof cn), 0);
  CHECK_EQ(auth_random(an, sizeof an), 0);
  auth_proof("shared", 0, cn, an, sent);     /* connector: own = cn */
  auth_proof("shared", 0, cn, an, expect);   /* acceptor: connector's view */
  CHECK(auth_equal(sent, expect, 32));
  auth_proof("shared", 1, an, cn, expect);   /* the acceptor's own proof */
  CHECK(!auth_equal(sent, expect, 32));      /* cannot be reflected */
  return 0;
}

/* ---- auth_equal ----------------------------------------------------------- */

static int test_equal(void) {
  uint8_t a[32], b[32];
  nonce_fill(a, 9);
  memcpy(b, a, sizeof a);
  CHECK_EQ(auth_equal(a, b, 32), 1);
  CHECK_EQ(auth_equal(a, b, 0), 1);
  for (size_t i = 0; i < sizeof a; i++) {
    for (int bit = 0; bit < 8; bit++) {
      b[i] ^= (uint8_t)(1u << bit);
      CHECK_EQ(auth_equal(a, b, 32), 0);
      b[i] ^= (uint8_t)(1u << bit);
    }
  }
  b[31] ^= 0xff;
  CHECK_EQ(auth_equal(a, b, 31), 1); /* only len bytes are compared */
  return 0;
}

/* ---- auth_random ---------------------------------------------------------- */

static int test_random_buffers_differ(void) {
  uint8_t a[32], b[32], zero[32] = {0};
  CHECK_EQ(auth_random(a, sizeof a), 0);
  CHECK_EQ(auth_random(b, sizeof b), 0);
  CHECK(memcmp(a, b, sizeof a) != 0);
  CHECK(memcmp(a, zero, sizeof a) != 0);
  CHECK_EQ(auth_random(a, 0), 0);
  return 0;
}

/* A large request: every byte value shows up, none far more than others. */
static int test_random_large_buffer_is_filled(void) {
  size_t n = 4u << 20;
  uint8_t *buf = calloc(1, n);
  CHECK(buf != NULL);
  int rc = auth_random(buf, n);
  size_t count[256] = {0};
  for (size_t i = 0; i < n; i++) count[buf[i]]++;
  free(buf);
  CHECK_EQ(rc, 0);
  size_t mean = n / 256;
  for (int v = 0; v < 256; v++) {
    CHECK(count[v] > mean / 2);
    CHECK(count[v] < mean * 2);
  }
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_sha256_abc),
    CHECK_CASE(test_sha256_empty),
    CHECK_CASE(test_sha256_448_bits),
    CHECK_CASE(test_sha256_million_a),
    CHECK_CASE(test_sha256_padding_boundaries),
    CHECK_CASE(test_hmac_rfc4231_case1),
    CHECK_CASE(test_hmac_rfc4231_case2),
    CHECK_CASE(test_hmac_rfc4231_case3),
    CHECK_CASE(test_hmac_rfc4231_case4),
    CHECK_CASE(test_hmac_rfc4231_case6_long_key),
    CHECK_CASE(test_hmac_rfc4231_case7_long_key_and_data),
    CHECK_CASE(test_hmac_long_key_is_its_hash),
    CHECK_CASE(test_proof_is_documented_hmac),
    CHECK_CASE(test_proof_differs_by_role),
    CHECK_CASE(test_proof_differs_by_nonce),
    CHECK_CASE(test_proof_differs_by_token),
    CHECK_CASE(test_proof_verifies_across_sides),
    CHECK_CASE(test_equal),
    CHECK_CASE(test_random_buffers_differ),
    CHECK_CASE(test_random_large_buffer_is_filled),
};

CHECK_MAIN(cases)
