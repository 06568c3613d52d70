/* tcpx-p2p bench net|p2p ...: dispatch to the two benchmarks, and the
 * command-line helpers they share (bench_ref.h). */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <time.h>

#include "bench_ref.h"
#include "tools.h"

static int usage(FILE *out) {
  fprintf(out,
          "usage: tcpx-p2p bench net [ARGS...]   throughput through the transport "
          "layer vs iperf3\n"
          "       tcpx-p2p bench p2p [ARGS...]   the endpoint API (send, write, "
          "read, ping-pong) vs iperf3 and a raw TCP ping-pong\n"
          "`tcpx-p2p bench net --help` and `tcpx-p2p bench p2p --help` list the "
          "arguments. docs/BENCHMARKS.md explains the references.\n");
  return out == stdout ? TOOL_OK : TOOL_USAGE;
}

int cmd_bench(int argc, char **argv) {
  if (argc < 2) return usage(stderr);
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help"))
    return usage(stdout);
  if (!strcmp(argv[1], "net")) return bench_net_main(argc - 1, argv + 1);
  if (!strcmp(argv[1], "p2p")) return bench_p2p_main(argc - 1, argv + 1);
  fprintf(stderr, "tcpx-p2p bench: unknown benchmark '%s'\n", argv[1]);
  return usage(stderr);
}

/* ---- sizes ---------------------------------------------------------------- */

int bench_parse_sizes(const char *cmd, const char *list, size_t *sizes,
                      int max) {
  char copy[1024];
  if (snprintf(copy, sizeof copy, "%s", list) >= (int)sizeof copy)
    return arg_error(cmd, "--sizes: list longer than %zu characters",
                     sizeof copy - 1), -1;
  int n = 0;
  for (char *save = NULL, *t = strtok_r(copy, ",", &save); t;
       t = strtok_r(NULL, ",", &save)) {
    if (n == max)
      return arg_error(cmd, "--sizes '%s': more than %d sizes", list, max), -1;
    if (arg_size(cmd, "--sizes", t, 1, BENCH_SIZE_MAX, &sizes[n]) != 0) return -1;
    n++;
  }
  if (n == 0)
    return arg_error(cmd, "--sizes '%s': no size in it; it accepts a comma "
                     "list like 256,4K,16M", list), -1;
  return n;
}

void bench_size_str(size_t size, char *buf, size_t len) {
  size_str(size, buf, len);
}

/* ---- hosts, output, time -------------------------------------------------- */

int bench_hosts_setup(twohost *th, int loopback, const char **mode) {
  return bench_hosts_setup_nics(th, loopback, 1, mode);
}

int bench_hosts_setup_nics(twohost *th, int loopback, int nics,
                           const char **mode) {
  if (loopback && setenv("TCPX_P2P_NO_NETNS", "1", 1) != 0) {
    fprintf(stderr, "tcpx-p2p bench: setenv: %s\n", strerror(errno));
    return -1;
  }
  if (twohost_setup_nics(th, nics) != 0) return -1;
  *mode = th->netns ? "netns" : "loopback";
  return 0;
}

double bench_gbps(double bytes, double seconds) {
  return seconds > 0 ? bytes / seconds / 1e9 : 0;
}

void bench_json_num(FILE *out, const char *key, double value, int last) {
  if (value < 0)
    fprintf(out, "\"%s\":null%s", key, last ? "}\n" : ",");
  else
    fprintf(out, "\"%s\":%.6g%s", key, value, last ? "}\n" : ",");
}

#define IDLE_YIELDS 200  /* then nap: the peer process needs the core */
#define IDLE_NAP_NS 20000

void bench_idle(int *rounds) {
  if ((*rounds)++ < IDLE_YIELDS) {
    sched_yield();
    return;
  }
  nanosleep(&(struct timespec){0, IDLE_NAP_NS}, NULL);
}

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- CPU cost --------------------------------------------------------------- */

/* The scheduler's count of the time this process's threads ran, user and
 * system, in nanoseconds, exited threads included: the same total as
 * getrusage's user + system (which only splits it by tick samples), and
 * it covers the engine's and the transport's threads as well as the
 * caller's. Kernel work the process causes but that runs outside its
 * context (a softirq run by ksoftirqd, or by whatever task a CPU was
 * running) is not in it; the iperf3 reference is counted the same way. */
double bench_cpu_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return -1;
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_cpu_since(double c0) {
  double now = bench_cpu_now();
  return c0 < 0 || now < 0 ? -1 : now - c0;
}

double bench_cpu_both(double mine, double theirs) {
  return mine < 0 || theirs < 0 ? -1 : mine + theirs;
}

double bench_cpu_per_gb(double cpu_s, double bytes) {
  return cpu_s < 0 || bytes <= 0 ? -1 : cpu_s / (bytes / 1e9);
}

void bench_json_cpu(FILE *out, double cpu_s_per_gb, double ref, int last) {
  bench_json_num(out, "cpu_s_per_gb", cpu_s_per_gb, 0);
  bench_json_num(out, "ref_cpu_s_per_gb", ref, 0);
  bench_json_num(out, "cpu_ratio",
                 cpu_s_per_gb > 0 && ref > 0 ? cpu_s_per_gb / ref : -1, last);
}

void bench_cpu_cell(char *buf, size_t len, double cpu_s_per_gb, double ref) {
  if (cpu_s_per_gb <= 0) snprintf(buf, len, "n/a");
  else if (ref <= 0) snprintf(buf, len, "%.3g/n/a", cpu_s_per_gb);
  else snprintf(buf, len, "%.3g/%.3g %.2fx", cpu_s_per_gb, ref,
                cpu_s_per_gb / ref);
}

/* ---- interruption ------------------------------------------------------------ */

/* The signal that asked the benchmark to stop, or 0. Set by the handler
 * only. */
static volatile sig_atomic_t interrupted;
static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
#define NSTOP_SIGNALS ((int)(sizeof stop_signals / sizeof stop_signals[0]))

/* Async-signal-safe: note the signal and make twohost_run stop the sides.
 * SIGPIPE comes from stdout closing (`bench ... | head`); the write then
 * fails with EPIPE instead of killing the process before it cleans up. */
static void on_interrupt(int sig) {
  if (!interrupted) interrupted = sig;
  twohost_interrupt();
}

void bench_catch_interrupt(void) {
  /* No SA_RESTART: a blocking read of iperf3's output returns EINTR. */
  struct sigaction sa = {.sa_handler = on_interrupt};
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < NSTOP_SIGNALS; i++) sigaction(stop_signals[i], &sa, NULL);
}

int bench_interrupted(void) { return interrupted; }

int bench_interrupt_exit(const char *cmd) {
  int sig = interrupted;
  if (sig != SIGPIPE) /* with stdout gone, say nothing more */
    fprintf(stderr, "tcpx-p2p %s: stopped by %s; its namespaces and iperf3 "
            "processes are gone\n", cmd, strsignal(sig));
  return 128 + sig;
}

size_t bench_largest(const size_t *sizes, int n) {
  size_t max = 0;
  for (int i = 0; i < n; i++)
    if (sizes[i] > max) max = sizes[i];
  return max;
}

/* ---- CPU placement ------------------------------------------------------------ */

/* The CPUs the benchmark started on, read in the parent before a side
 * pins itself: a side that measures a reference (--ref-per-size) must
 * split the whole set, not its own half. */
static cpu_set_t start_cpus;
static int start_cpus_known;

void bench_cpus_init(void) {
  start_cpus_known = sched_getaffinity(0, sizeof start_cpus, &start_cpus) == 0;
}

int bench_cpu_halves(cpu_set_t half[2]) {
  cpu_set_t set = start_cpus;
  CPU_ZERO(&half[0]);
  CPU_ZERO(&half[1]);
  if (!start_cpus_known && sched_getaffinity(0, sizeof set, &set) != 0) return -1;
  int n = CPU_COUNT(&set), seen = 0;
  if (n < 2) return -1;
  for (int c = 0; c < CPU_SETSIZE && seen < n; c++)
    if (CPU_ISSET(c, &set)) CPU_SET(c, &half[seen++ < n / 2 ? 0 : 1]);
  return 0;
}

int bench_parse_cpus(const char *cmd, const char *word, int *apart) {
  if (!strcmp(word, "apart") || !strcmp(word, "free")) {
    *apart = !strcmp(word, "apart");
    return 0;
  }
  return arg_error(cmd, "--cpus '%s': it accepts apart or free", word), -1;
}

static void print_cpu_list(FILE *out, const cpu_set_t *set) {
  const char *sep = "";
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, set)) {
      fprintf(out, "%s%d", sep, c);
      sep = ",";
    }
}

void bench_print_cpus(FILE *out, int apart) {
  cpu_set_t half[2];
  if (!apart || bench_cpu_halves(half) != 0) {
    fprintf(out, "placement: both sides wherever the scheduler puts them%s\n",
            apart ? " (fewer than 2 CPUs)" : " (--cpus free)");
    return;
  }
  fprintf(out, "placement: side 0 on CPU ");
  print_cpu_list(out, &half[0]);
  fprintf(out, ", side 1 on CPU ");
  print_cpu_list(out, &half[1]);
  fprintf(out, ", all their threads (two hosts, each its own cores)\n");
}

void bench_side_start(int side, int apart) {
  /* The parent stops the sides (twohost_run); they just die. */
  for (int i = 0; i < NSTOP_SIGNALS; i++) signal(stop_signals[i], SIG_DFL);
  cpu_set_t half[2];
  if (apart && bench_cpu_halves(half) == 0)
    sched_setaffinity(0, sizeof half[side], &half[side]);
}

/* ---- sockets, out-of-band waits ------------------------------------------------ */

int bench_tcp_sockets(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    int fd = atoi(e->d_name), type = 0;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss, tlen = sizeof type;
    if (fd == dirfd(d) || getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0)
      continue;
    n += (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) &&
         type == SOCK_STREAM;
  }
  if (d) closedir(d);
  return n;
}

#define OOB_WAIT_MS (3600 * 1000)

int bench_oob_wait(int fd, void *buf, size_t len) {
  struct pollfd p = {fd, POLLIN, 0};
  int n;
  while ((n = poll(&p, 1, OOB_WAIT_MS)) < 0 && errno == EINTR) {}
  if (n <= 0) {
    fprintf(stderr, "tcpx-p2p bench: peer silent for an hour: %s\n",
            n < 0 ? strerror(errno) : "timed out");
    return -1;
  }
  return oob_recv(fd, buf, len);
}
