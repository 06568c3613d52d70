/* Two "hosts" for network tests: a pair of network namespaces joined by a
 * veth pair (10.211.0.1/24 <-> 10.211.0.2/24), made by the test and removed
 * afterwards. Where namespaces cannot be made (not root, no `ip`), both
 * sides run on loopback and the harness says so. No other address is ever
 * used.
 *
 * A3-shaped hosts (twohost_setup_nics): the same two namespaces joined by
 * several veth pairs, one per "NIC", each on its own subnet: NIC k is
 * nic<k>a 10.211.k.1/24 on side 0 and nic<k>b 10.211.k.2/24 on side 1.
 * As on an A3 VM (8 GPUs, 4 NICs), GPUs 2k and 2k+1 map to NIC k (modulo
 * the NIC count): twohost_enter exports that map as TCPX_P2P_GPU_NICS. */
#ifndef TCPX_P2P_TWOHOST_H
#define TCPX_P2P_TWOHOST_H

#include <sys/types.h>

#define TWOHOST_MAX_NICS 8
#define TWOHOST_GPUS 8   /* GPU indexes of an A3 host: 0..7 */

typedef struct twohost {
  int netns;             /* 1: namespaces in use; 0: loopback fallback */
  char ns[2][64];        /* namespace names (netns mode) */
  char ifname[2][16];    /* each side's interface: veth names, or "lo";
                            with several NICs, NIC 0's */
  char addr[2][64];      /* each side's address, e.g. "10.211.0.1" */
  int nnics;             /* NICs per host: 1 unless twohost_setup_nics made
                            more (always 1 on loopback) */
  char nic[TWOHOST_MAX_NICS][2][16];      /* NIC k's interface per side */
  char nic_addr[TWOHOST_MAX_NICS][2][64]; /* and its address per side */
} twohost;

/* Make the two hosts. Namespace names are unique per process. Set
 * TCPX_P2P_NO_NETNS=1 to force loopback. Returns 0, or -1 (message on
 * stderr) when neither mode works. */
int twohost_setup(twohost *th);
void twohost_teardown(twohost *th);

/* A3-shaped hosts: nnics (1..TWOHOST_MAX_NICS) veth pairs between the two
 * namespaces. Where namespaces cannot be made it falls back to loopback
 * like twohost_setup, with nnics = 1 (a test that needs the NICs skips
 * when th->netns is 0). Returns 0, or -1 (message on stderr). */
int twohost_setup_nics(twohost *th, int nnics);

/* Move the calling thread into side's namespace (no-op on loopback), and
 * set TCPX_P2P_SOCKET_IFNAME to that side's interface (so the transport
 * discovers exactly it). With several NICs: every NIC of the side
 * ("=nic0a,nic1a,..."), and TCPX_P2P_GPU_NICS to the A3 map
 * ("0:nic0a;1:nic0a;2:nic1a;..."). */
int twohost_enter(const twohost *th, int side);

/* The NIC that GPU `gpu` uses in the A3 map: (gpu / 2) % nnics. */
int twohost_gpu_nic(const twohost *th, int gpu);

/* Bytes an interface of the calling thread's network namespace has
 * received and sent (/proc/thread-self/net/dev: sysfs would show the
 * namespace it was mounted in). Returns 0, or -1 with a message. */
int twohost_if_bytes(const char *ifname, unsigned long long *rx,
                     unsigned long long *tx);

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
