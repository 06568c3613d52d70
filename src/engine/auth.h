/* Connection authentication with a shared secret: each side proves it
 * knows the token with an HMAC-SHA256 over both sides' fresh nonces; the
 * token itself never crosses the wire. Also the endpoint's source of
 * unguessable bytes (nonces, region keys). */
#ifndef TCPX_P2P_AUTH_H
#define TCPX_P2P_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_MAC_SIZE 32

void auth_sha256(const void *data, size_t len, uint8_t out[32]);
void auth_hmac_sha256(const void *key, size_t key_len, const void *msg,
                      size_t msg_len, uint8_t out[32]);

/* The proof a side sends: HMAC(token, "tcpx-p2p auth v1" || role (1 byte) ||
 * own_nonce || peer_nonce); role 0 = connector, 1 = acceptor, so a proof
 * cannot be reflected back. */
void auth_proof(const char *token, int role, const uint8_t own_nonce[32],
                const uint8_t peer_nonce[32], uint8_t mac[AUTH_MAC_SIZE]);

/* Constant-time comparison: 1 when equal. */
int auth_equal(const uint8_t *a, const uint8_t *b, size_t len);

/* Fill from the kernel's CSPRNG (getrandom). Returns 0, or -1 with
 * err_get() set. */
int auth_random(void *buf, size_t len);

#endif
