/* `tcpx-p2p bench`: what the two benchmarks (bench_net.c, bench_p2p.c)
 * share.
 *
 * - The references they are compared against, measured between the same
 *   two hosts in the same run: iperf3 (bandwidth), a raw TCP ping-pong
 *   of our own (latency), bench_ref.c; a raw TCP bulk transfer of the
 *   benchmark's own buffers (bandwidth), bench_raw.c.
 * - Statistics and the test data pattern. bench_ref.c.
 * - Command-line helpers (size lists, two-host set-up, output). bench.c.
 *
 * Units: GB/s is 1e9 bytes per second; the JSON field for it is "gbps". */
#ifndef TCPX_P2P_BENCH_REF_H
#define TCPX_P2P_BENCH_REF_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>

#include "twohost.h"

#define BENCH_MAX_SIZES 32

/* ---- subcommands (bench.c dispatches `bench net|p2p`) -------------------- */
int bench_net_main(int argc, char **argv);
int bench_p2p_main(int argc, char **argv);

/* ---- command-line helpers (bench.c) ------------------------------------ */

/* The largest size a benchmark takes (each side holds one buffer of it). */
#define BENCH_SIZE_MAX ((size_t)16 << 30)
/* "4K,64K,1M" (size_parse's syntax, 1..BENCH_SIZE_MAX each) into sizes[].
 * Returns the count, or -1 after a message naming --sizes (arg_error; the
 * caller exits with TOOL_USAGE). */
int bench_parse_sizes(const char *cmd, const char *list, size_t *sizes,
                      int max);
/* The largest of n sizes (0 when n is 0). */
size_t bench_largest(const size_t *sizes, int n);
/* "4K", "256M", "1G", "1000": the shortest exact spelling. */
void bench_size_str(size_t size, char *buf, size_t len);
/* GB/s: bytes / seconds / 1e9 (0 when seconds <= 0). */
double bench_gbps(double bytes, double seconds);
/* Make the two hosts (network namespaces as root, loopback otherwise or
 * when `loopback`), and describe the mode in `mode` ("netns" or
 * "loopback"). Returns 0 or -1 (message on stderr). */
int bench_hosts_setup(twohost *th, int loopback, const char **mode);
/* The same with `nics` veth NICs between the namespaces (A3-shaped hosts,
 * twohost_setup_nics); loopback has one. */
int bench_hosts_setup_nics(twohost *th, int loopback, int nics,
                           const char **mode);
/* A JSON number, or null when value < 0 (not measured). */
void bench_json_num(FILE *out, const char *key, double value, int last);
/* Back off while polling: yield for a while, then nap, so two benchmark
 * processes and the transport's threads share two cores. Reset *rounds to
 * 0 whenever something moved. */
void bench_idle(int *rounds);
/* Monotonic time in seconds. */
double bench_now(void);

/* ---- CPU cost (bench.c) ---------------------------------------------------
 * A bandwidth row's CPU cost is the CPU time both side processes spent in
 * its timed part (user + system, every thread), per GB (1e9 bytes) moved;
 * the iperf3 reference's is the same for its client and server processes.
 * Serving hosts share their cores with inference: a transfer that is fast
 * but burns cores is not free. */

/* CPU seconds this process has used so far, all its threads (live and
 * exited) together, not its children. */
double bench_cpu_now(void);
/* CPU seconds since bench_cpu_now() returned c0; -1 when either reading
 * failed (< 0). */
double bench_cpu_since(double c0);
/* Both sides' CPU seconds, or -1 when either is not known (< 0). */
double bench_cpu_both(double mine, double theirs);
/* cpu_s / (bytes / 1e9), or -1 when either is not known (< 0) or bytes
 * is 0. */
double bench_cpu_per_gb(double cpu_s, double bytes);
/* The row's three JSON keys "cpu_s_per_gb", "ref_cpu_s_per_gb" and
 * "cpu_ratio" (ours / the reference's), each null when not known (< 0). */
void bench_json_cpu(FILE *out, double cpu_s_per_gb, double ref, int last);
/* The text tables' compact cell: "0.412/0.305 1.35x" (ours / reference
 * and their ratio), "0.412/n/a" without a reference, "n/a" without ours. */
void bench_cpu_cell(char *buf, size_t len, double cpu_s_per_gb, double ref);
/* The text tables' header of that column. */
#define BENCH_CPU_HEADER "CPU s/GB /ref"
/* SIGINT, SIGTERM, SIGHUP, SIGPIPE: the parent notes the signal, stops a
 * running iperf3 reference and both sides (twohost_interrupt), and then
 * removes its namespaces; the sides, which call bench_side_start() first,
 * die of it. Call before bench_hosts_setup. */
void bench_catch_interrupt(void);
/* The signal caught, or 0. */
int bench_interrupted(void);
/* After the clean-up: one line on stderr (none for SIGPIPE); returns the
 * exit code, 128 + the signal. */
int bench_interrupt_exit(const char *cmd);
/* First call of a side process. apart: pin it (and the threads it will
 * start) to its half of this process's CPUs, as two hosts each have their
 * own cores; the references are measured with the same placement. */
void bench_side_start(int side, int apart);
/* Remember the CPUs this process may use: call first thing in the
 * parent, before the sides (which inherit it) pin themselves. */
void bench_cpus_init(void);
/* Those CPUs split in two (first half, second half); -1 when there are
 * fewer than two. */
int bench_cpu_halves(cpu_set_t half[2]);
/* --cpus apart|free -> *apart (1|0); -1 and a message otherwise. */
int bench_parse_cpus(const char *cmd, const char *word, int *apart);
/* One line saying where the sides run. */
void bench_print_cpus(FILE *out, int apart);
/* The TCP sockets (IPv4 and IPv6 stream sockets) this process holds: shows
 * how many comms and streams a connection really opened. */
int bench_tcp_sockets(void);
/* oob_recv after waiting up to an hour for the first byte: the peer may be
 * busy with a long timed phase (oob_recv alone gives up after 30 s). */
int bench_oob_wait(int fd, void *buf, size_t len);

/* ---- statistics ------------------------------------------------------- */
typedef struct bench_stats {
  double p50, p99, mean, min, max;
  size_t n;
} bench_stats;
/* Percentiles by nearest rank; sorts v in place. n == 0 gives all zeros. */
void bench_stats_of(double *v, size_t n, bench_stats *out);

/* ---- test data ---------------------------------------------------------- */
/* A seekable pseudo-random pattern: the 8-byte word at offset 8k is a hash
 * of (seed, k), so a receiver checks any range without a second copy. */
void bench_fill(void *buf, size_t len, uint64_t seed);
/* 1 when buf[0..len) is the pattern; else 0 and the first mismatch is
 * printed to stderr, prefixed by `what`. */
int bench_check(const void *buf, size_t len, uint64_t seed, const char *what);
/* The byte a receiver writes before a checked transfer: a transfer that
 * moves nothing cannot pass the check. */
#define BENCH_POISON 0xA5

/* ---- reference: iperf3 --------------------------------------------------- */
typedef struct iperf3_result {
  int available;     /* 0: not measured; `why` says why */
  double gbps;       /* end.sum_received.bits_per_second / 8e9, summed over
                        the processes */
  int streams;       /* TCP streams in all: -P of each client x procs */
  int procs;         /* iperf3 client/server pairs run at the same time:
                        1 for iperf3_measure (-P streams), streams for
                        iperf3_measure_procs (-P 1 each) */
  int seconds;       /* -t (after -O 1: one second of slow start omitted) */
  int reverse;       /* -R: side 0 sends */
  int cpu[2];        /* the CPUs the first pair's ends were pinned to (side
                        0's end, side 1's); -1: not pinned */
  int ncpus[2];      /* CPUs each side's ends were spread over: pair k on
                        the k-th CPU of the side's half, modulo its size;
                        0: not pinned */
  double cpu_s;      /* CPU seconds of all its client and server
                        processes over their whole lives (wait4); 0: not
                        known */
  double cpu_bytes;  /* bytes the clients moved in those lives: the
                        measured seconds and the omitted one; 0: not known */
  char why[256];
} iperf3_result;

/* iperf3 -s in side 0's namespace, iperf3 -c -P streams -t seconds -J from
 * side 1 (with -R when `reverse`: data flows side 0 -> side 1). The two
 * ends are pinned to two different CPUs where two are allowed: iperf3
 * 3.x is single-threaded, and two ends sharing one CPU halve its rate, so
 * unpinned runs flip between two results; pinned, the reference is the
 * stable, favourable one. Never fails the benchmark: a missing iperf3 or
 * a failed run leaves available = 0 and the reason. */
void iperf3_measure(const twohost *th, int streams, int seconds, int reverse,
                    iperf3_result *out);
/* The same with `streams` pairs of iperf3 processes, one stream each (-P
 * 1), all running at once, their received rates summed. iperf3 3.12 runs
 * all -P streams on one thread, so on a host with many cores
 * iperf3_measure is bounded by one core per end; this one lets the kernel
 * use as many cores as there are streams. Server k is pinned to the k-th
 * CPU of side 0's half, client k to the k-th of side 1's (modulo each
 * half's size), so on two CPUs it is about iperf3_measure again. Any
 * client failing leaves available = 0 and says which. */
void iperf3_measure_procs(const twohost *th, int streams, int seconds,
                          int reverse, iperf3_result *out);
/* `procs` iperf3 pairs of one stream each at once, pair k over the hosts'
 * NIC nic[k] (twohost nic_addr: A3-shaped hosts), placed on CPUs as
 * iperf3_measure_procs places them; their received rates summed. */
void iperf3_measure_nics(const twohost *th, int procs, const int *nic,
                         int seconds, int reverse, iperf3_result *out);
/* iperf3_measure into ref and, when with_procs, iperf3_measure_procs into
 * procs: the two references of a bandwidth row, in one direction. */
void iperf3_measure_pair(const twohost *th, int streams, int seconds,
                         int reverse, int with_procs, iperf3_result *ref,
                         iperf3_result *procs);
/* A reference's GB/s, or -1 when it was not measured. */
double iperf3_gbps(const iperf3_result *r);
/* A reference's CPU seconds per GB (cpu_s / cpu_bytes), or -1 when it
 * was not measured. */
double iperf3_cpu_s_per_gb(const iperf3_result *r);
/* The CPU cost a bandwidth row is compared with: that of the N processes
 * reference where it was measured (procs may be NULL), else that of
 * iperf3 -P N; -1 when neither was. */
double iperf3_cpu_ref(const iperf3_result *procs, const iperf3_result *ref);
/* ", 0.305 CPU s/GB": a reference's CPU cost for the header lines, or ""
 * when it was not measured. */
void iperf3_cpu_words(const iperf3_result *r, char *buf, size_t len);
/* Where the ends of a measurement ran, in words ("servers on 4 CPU(s) of
 * side 0's half from CPU 0, ..."; "not pinned ..."). */
void iperf3_placement(const iperf3_result *r, char *buf, size_t len);
/* In a JSON document, the number at a path of object keys, e.g.
 * {"end", "sum_received", "bits_per_second", NULL}. Returns 0 and *value,
 * or -1 when the path is missing or the text is not JSON. */
int json_number_at(const char *json, const char *const *path, double *value);
/* Same for a string value (unescaped bytes copied as they are). */
int json_string_at(const char *json, const char *const *path, char *buf,
                   size_t len);

/* ---- reference: raw TCP bulk transfer (bench_raw.c) --------------------
 * The kernel's own TCP limit for the row's work: `n` plain TCP connections
 * opened between the benchmark's two side processes, a thread per
 * connection on each side (on the side's CPUs: threads inherit its
 * placement), each moving its contiguous slice of the row's buffer with
 * one blocking send() or recv(MSG_WAITALL) per message. The buffers are
 * the benchmark's own (allocated once, pattern-filled), so the reference
 * reads and writes the same DRAM the benchmark does, where iperf3 reuses
 * one 128 KiB buffer per stream that stays in the CPU cache. */

/* Rows of this size and more get the reference by default (--ref-raw 1);
 * below it each connection's slice is too small to say anything. */
#define RAW_MIN_SIZE ((size_t)1 << 20)

typedef struct raw_bulk raw_bulk;

typedef struct raw_result {
  int measured;      /* 0: not run for this row (JSON null) */
  int conns;         /* connections = threads per side */
  long msgs;         /* timed messages (each: every slice once) */
  double gbps;       /* size * msgs / the wall time until both sides
                        finished */
  double cpu_s;      /* both side processes' CPU seconds in that time
                        (bench_cpu_now); -1: not known */
  double bytes;      /* size * msgs */
} raw_result;

/* Side 0 listens on its address and sends the port over peer_fd; side 1
 * dials `n` connections and names each (its slice's index). Returns the
 * connections, or NULL after a message on stderr. */
raw_bulk *raw_bulk_open(const twohost *th, int side, int peer_fd, int n);
void raw_bulk_close(raw_bulk *r);
/* One row's reference; both sides call it at the same point, the side
 * that reports the row as the leader, which picks the message counts.
 * `sending`: this side sends buf[0..size) (holding the pattern of
 * `seed`); else it receives into buf, poisoned first and checked after.
 * A warm-up round (about 0.1 s at the row's own rate, which also
 * calibrates), then the timed round: at least the row's `row_msgs`, more
 * to last about a second. Both sides return 0, or -1 after a message
 * (a connection failed, the received bytes differ from the pattern). */
int raw_bulk_lead(raw_bulk *r, int sending, unsigned char *buf, size_t size,
                  long row_msgs, double row_secs, uint64_t seed,
                  raw_result *out);
int raw_bulk_follow(raw_bulk *r, int sending, unsigned char *buf, size_t size,
                    uint64_t seed);
/* The row's three JSON keys "raw_gbps", "ratio_raw" (gbps / raw_gbps)
 * and "raw_cpu_s_per_gb", each null when not measured (r NULL or not
 * measured, or the CPU time not known). */
void bench_json_raw(FILE *out, double gbps, const raw_result *r, int last);
/* The text tables' compact cell: "24.105 0.62x 0.318" (raw GB/s, the
 * row's ratio to it, raw CPU s/GB), "n/a" when not measured. */
void bench_raw_cell(char *buf, size_t len, double gbps, const raw_result *r);
/* The text tables' header of that column. */
#define BENCH_RAW_HEADER "raw GB/s ratio CPU"

/* ---- plain TCP between the two side processes ------------------------------
 * The raw references' sockets: side 0 listens on its address (any port)
 * and sends the port over peer_fd; side 1 learns it and connects. No
 * address but the two hosts' own is ever used. */

/* Side 0: a listening socket on th->addr[0] taking `backlog` connections,
 * its port already sent over peer_fd; -1 after a message naming `who`. */
int bench_tcp_listen(const twohost *th, int peer_fd, int backlog, const char *who);
/* Side 1: side 0's listening address, its port read from peer_fd. */
int bench_tcp_peer(const twohost *th, int peer_fd, struct sockaddr_in *to);
/* A socket connected to `to`, or -1 with errno set (nothing left open). */
int bench_tcp_connect(const struct sockaddr_in *to);

/* ---- reference: raw TCP ping-pong -------------------------------------- */
/* One TCP socket (TCP_NODELAY, blocking I/O) from side 1 to side 0,
 * opened by the benchmark's own two side processes, so that raw and
 * benchmark round trips can alternate under the same conditions. Side 0
 * listens on its address and sends the port over peer_fd; side 1 dials.
 * Each returns the connected socket, or -1 (message on stderr). */
int pingpong_listen(const twohost *th, int peer_fd);
int pingpong_dial(const twohost *th, int peer_fd);
/* One round trip of `size` bytes: the initiator sends then receives, the
 * other side receives then sends back. Returns 0 or -1. */
int pingpong_round(int fd, void *buf, size_t size, int initiator);

#endif
