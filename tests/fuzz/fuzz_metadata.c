/* libFuzzer target: p2p_parse_metadata (include/tcpx_p2p.h), which reads
 * metadata a peer handed over out of band.
 *
 * Input: byte 0 picks the capacity of the caller's IP string buffer
 * (0 ... 63), the rest is the metadata. Oracles: only 10 or 22 bytes
 * parse; what parses writes a NUL-terminated numeric address that maps
 * back to the input's bytes, the port in network order and the GPU index
 * in host order; nothing is written past the IP buffer; a refusal leaves
 * an error message. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tcpx_p2p.h"

#define IP_CAP_MAX 64
#define GUARD 16
#define SENTINEL 0xa5

/* The parsed fields agree with the raw metadata. */
static void check_parsed(const uint8_t *md, size_t len, const char *ip,
                         int port, int gpu) {
  int v6 = len == 22;
  size_t alen = v6 ? 16 : 4;
  uint8_t addr[16];
  FUZZ_ASSERT(inet_pton(v6 ? AF_INET6 : AF_INET, ip, addr) == 1);
  FUZZ_ASSERT(memcmp(addr, md, alen) == 0);
  FUZZ_ASSERT(port == (md[alen] << 8 | md[alen + 1]));
  int32_t want_gpu;
  memcpy(&want_gpu, md + alen + 2, 4);
  FUZZ_ASSERT(gpu == want_gpu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t ip_len = data[0] % IP_CAP_MAX;
  size_t len = size - 1;
  /* An exact-size copy: a read past the metadata is caught by ASan. */
  uint8_t *md = malloc(len ? len : 1);
  FUZZ_ASSERT(md != NULL);
  memcpy(md, data + 1, len);
  char ip[IP_CAP_MAX + GUARD];
  memset(ip, SENTINEL, sizeof ip);
  int port = -1, gpu = -1;
  int rc = p2p_parse_metadata(md, len, ip, ip_len, &port, &gpu);
  for (size_t i = ip_len; i < sizeof ip; i++)
    FUZZ_ASSERT((uint8_t)ip[i] == SENTINEL);
  if (rc == P2P_OK) {
    FUZZ_ASSERT(len == 10 || len == 22);
    FUZZ_ASSERT(memchr(ip, 0, ip_len) != NULL);
    check_parsed(md, len, ip, port, gpu);
  } else {
    FUZZ_ASSERT(rc < 0);
    FUZZ_ASSERT(p2p_last_error()[0] != '\0');
  }
  free(md);
  return 0;
}
