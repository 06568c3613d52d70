/* Two "hosts" for network tests: a pair of network namespaces joined by a
 * veth pair (10.211.0.1/24 <-> 10.211.0.2/24), made by the test and removed
 * afterwards. Where namespaces cannot be made (not root, no `ip`), both
 * sides run on loopback and the harness says so. No other address is ever
 * used. */
#ifndef TCPX_P2P_TWOHOST_H
#define TCPX_P2P_TWOHOST_H

#include <sys/types.h>

typedef struct twohost {
  int netns;             /* 1: namespaces in use; 0: loopback fallback */
  char ns[2][64];        /* namespace names (netns mode) */
  char ifname[2][16];    /* each side's interface: veth names, or "lo" */
  char addr[2][64];      /* each side's address, e.g. "10.211.0.1" */
} twohost;

/* Make the two hosts. Namespace names are unique per process. Set
 * TCPX_P2P_NO_NETNS=1 to force loopback. Returns 0, or -1 (message on
 * stderr) when neither mode works. */
int twohost_setup(twohost *th);
void twohost_teardown(twohost *th);

/* Move the calling thread into side's namespace (no-op on loopback), and
 * set TCPX_P2P_SOCKET_IFNAME to that side's interface (so the transport
 * discovers exactly it). */
int twohost_enter(const twohost *th, int side);

/* Side function, run in a forked child that has entered its side.
 * `peer_fd` is a socketpair end connected to the other side's child, for
 * out-of-band exchange (handles, sizes). Return 0 for success. */
typedef int (*twohost_fn)(const twohost *th, int side, int peer_fd, void *arg);

/* Fork one child per side, run fn[side] there, wait for both (killing both
 * after timeout_s), and store each child's wait status in status[side]
 * (may be NULL). Returns 0 when both exited with status 0. */
int twohost_run(const twohost *th, twohost_fn fn[2], void *arg, int timeout_s,
                int status[2]);

/* Ask a running (or the next) twohost_run to stop: it signals both sides
 * (SIGTERM, then SIGKILL after a second) and returns -1. Async-signal-safe,
 * for a signal handler of the parent. */
void twohost_interrupt(void);

/* Out-of-band helpers over peer_fd: whole-buffer write/read with a 30 s
 * timeout. Return 0 or -1. */
int oob_send(int fd, const void *buf, size_t len);
int oob_recv(int fd, void *buf, size_t len);

/* Random bytes from a seeded xorshift (reproducible), and a byte-exact
 * compare that prints the first mismatch. */
void fill_random(void *buf, size_t len, unsigned long long seed);
int bytes_equal(const void *a, const void *b, size_t len, const char *what);

#endif
