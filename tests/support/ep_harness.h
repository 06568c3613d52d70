/* Helpers for the endpoint tests (tests/test_endpoint*.c): endpoints with
 * test options, the accept/connect pairing of two sides over the twohost
 * out-of-band socket, position-keyed data patterns that large buffers can
 * be checked against without a second copy, guarded and poisoned
 * destination buffers, and an explicit leak check for side processes
 * (they end with _exit, which skips LeakSanitizer's own exit check). */
#ifndef TCPX_P2P_EP_HARNESS_H
#define TCPX_P2P_EP_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "tcpx_p2p.h"
#include "twohost.h"

/* Destination bytes before a transfer, and the guard after a buffer. */
#define EPH_POISON 0xA5
#define EPH_GUARD_BYTE 0x5A
#define EPH_GUARD 4096

/* How much slower than a plain build this build runs: time limits that
 * tests assert are multiplied by it (ThreadSanitizer slows syscalls and
 * memory-heavy loops by an order of magnitude). */
#if defined(__SANITIZE_THREAD__)
#define EPH_SLOWDOWN 10
#elif defined(__SANITIZE_ADDRESS__)
#define EPH_SLOWDOWN 3
#else
#define EPH_SLOWDOWN 1
#endif

/* Liveness timeout the fault tests use (TCPX_P2P_TIMEOUT_MS in spirit). */
#define EPH_TIMEOUT_MS 2000

/* Test options: the built-in TCP transport, no auth token unless given,
 * generous set-up timeout. */
void eph_options(p2p_options *o);
/* Create an endpoint with o (NULL: eph_options). Prints the library's
 * message on failure. */
int eph_create(const p2p_options *o, p2p_endpoint **ep);

/* Side 0 ("server"): send its metadata over fd, accept one connection.
 * peer_ip/peer_gpu (may be NULL) get what accept reported. */
int eph_serve(p2p_endpoint *ep, int fd, uint64_t *conn, char *peer_ip,
              size_t ip_len, int *peer_gpu);
/* Send this endpoint's metadata over fd (for a peer that will connect). */
int eph_send_metadata(p2p_endpoint *ep, int fd);
/* Side 1 ("client"): read the peer's metadata from fd and connect. */
int eph_dial(p2p_endpoint *ep, int fd, uint64_t *conn);
/* Read metadata from fd into ip/port/gpu. */
int eph_recv_metadata(int fd, char *ip, size_t ip_len, int *port, int *gpu);

/* Out-of-band small values and a two-sided barrier. */
int eph_put_u64(int fd, uint64_t v);
int eph_get_u64(int fd, uint64_t *v);
int eph_sync(int fd);

/* Pattern: byte i of (seed) is a function of seed and i only, so any
 * range can be filled or checked on its own. */
void pat_fill(void *buf, size_t len, uint64_t seed);
/* 1 when buf holds the pattern; else prints the first mismatch, 0. */
int pat_check(const void *buf, size_t len, uint64_t seed, const char *what);
/* 1 when every byte is `b`; else prints the first mismatch, 0. */
int all_bytes(const void *buf, size_t len, uint8_t b, const char *what);

/* Buffer of `size` bytes poisoned with EPH_POISON, followed by EPH_GUARD
 * guard bytes. NULL when out of memory. */
uint8_t *gbuf_new(size_t size);
/* 1 when the guard after [buf, buf + size) is intact. */
int gbuf_guard_ok(const uint8_t *buf, size_t size, const char *what);
void gbuf_free(uint8_t *buf, size_t size);

/* Milliseconds on the monotonic clock (shared by all processes). */
double eph_now_ms(void);

/* 0 when LeakSanitizer finds no leak (or is not built in); 1 otherwise. */
int eph_leak_check(void);

/* Run fn[0] and fn[1] on the two hosts; 0 when both succeeded. */
int eph_run(const twohost *th, twohost_fn side0, twohost_fn side1, void *arg,
            int timeout_s);

/* GPU indexes the paired sides announce (distinct, so tests can tell). */
#define EPH_GPU0 3
#define EPH_GPU1 5

/* A test body on one side of a connected pair. */
typedef int (*eph_body)(p2p_endpoint *ep, uint64_t conn, int fd, int side,
                        void *arg);

/* Each side makes an endpoint (eph_options, GPU EPH_GPU0/EPH_GPU1), side 1
 * connects to side 0, both run their body, meet at a barrier, destroy the
 * endpoint and check for leaks. 0 when both sides succeeded. */
int eph_pair_run(const twohost *th, eph_body body0, eph_body body1, void *arg,
                 int timeout_s);
/* The same with each side's options (NULL: eph_options and the side's
 * GPU index). */
int eph_pair_run_opts(const twohost *th, const p2p_options *opts0,
                      const p2p_options *opts1, eph_body body0, eph_body body1,
                      void *arg, int timeout_s);

/* A plain blocking TCP connection to ip:port (IPv4); -1 on failure. */
int eph_tcp_connect(const char *ip, int port);
/* Read and discard until the peer closes fd (EOF or reset): 1 when that
 * happens within limit_ms, else 0. */
int eph_wait_closed(int fd, int limit_ms);

/* Transfers with their checks (0 on success; a CHECK message otherwise).
 * eph_send_pattern: send `size` bytes of pattern seed from a registered
 * buffer. eph_recv_pattern: receive into a poisoned buffer posted with
 * capacity cap and expect exactly size pattern bytes, poison after them,
 * the guard intact. */
int eph_send_pattern(p2p_endpoint *ep, uint64_t conn, size_t size,
                     uint64_t seed);
int eph_recv_pattern(p2p_endpoint *ep, uint64_t conn, size_t size,
                     size_t cap, uint64_t seed);
/* One read or write: blocking, or (async) posted and polled. */
int eph_access(p2p_endpoint *ep, uint64_t conn, p2p_op_kind kind, uint64_t mr,
               uint8_t *ptr, size_t size, const uint8_t *desc, int async);
/* A write then a read of `size` bytes between the two sides, over fd:
 * the target advertises a poisoned buffer, checks pattern wseed written
 * into it, refills it with rseed; the initiator writes wseed and reads
 * rseed back into a poisoned, guarded buffer. */
int eph_onesided_target(p2p_endpoint *ep, uint64_t conn, int fd, size_t size,
                        uint64_t wseed, uint64_t rseed);
int eph_onesided_initiator(p2p_endpoint *ep, uint64_t conn, int fd,
                           size_t size, uint64_t wseed, uint64_t rseed,
                           int async);

/* Run an `ip` command (argv after "ip", NULL-terminated) in the calling
 * process's namespace. 0 on success. */
int eph_ip(char *const args[]);

#endif
