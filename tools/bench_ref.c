/* References for `tcpx-p2p bench`, measured between the same two hosts as
 * the benchmark itself: iperf3 for bandwidth, a raw TCP ping-pong for
 * latency. Also the statistics and the test data pattern. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_ref.h"

/* ---- statistics --------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least p% of values <= it. */
static double percentile(const double *sorted, size_t n, double p) {
  size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

void bench_stats_of(double *v, size_t n, bench_stats *out) {
  memset(out, 0, sizeof *out);
  if (n == 0) return;
  qsort(v, n, sizeof *v, cmp_double);
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += v[i];
  *out = (bench_stats){.p50 = percentile(v, n, 50), .p99 = percentile(v, n, 99),
                       .mean = sum / (double)n, .min = v[0], .max = v[n - 1],
                       .n = n};
}

/* ---- test data ---------------------------------------------------------- */

/* splitmix64's finaliser: every input bit affects every output bit. */
static uint64_t pattern_word(uint64_t seed, uint64_t k) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + k * 0xD1B54A32D192ED03ull + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void bench_fill(void *buf, size_t len, uint64_t seed) {
  unsigned char *p = buf;
  uint64_t k = 0;
  for (; len >= 8; p += 8, len -= 8, k++) {
    uint64_t w = pattern_word(seed, k);
    memcpy(p, &w, 8);
  }
  if (len) {
    uint64_t w = pattern_word(seed, k);
    memcpy(p, &w, len);
  }
}

/* The first offset in [off, off + n) where buf differs from the pattern
 * word `w`, or n when it does not. */
static size_t word_mismatch(const unsigned char *p, uint64_t w, size_t n) {
  const unsigned char *want = (const unsigned char *)&w;
  size_t i = 0;
  while (i < n && p[i] == want[i]) i++;
  return i;
}

int bench_check(const void *buf, size_t len, uint64_t seed, const char *what) {
  const unsigned char *p = buf;
  for (size_t off = 0; off < len; off += 8) {
    uint64_t w = pattern_word(seed, off / 8), got = 0;
    size_t n = len - off < 8 ? len - off : 8;
    memcpy(&got, p + off, n);
    if (n == 8 ? got == w : word_mismatch(p + off, w, n) == n) continue;
    size_t i = word_mismatch(p + off, w, n);
    fprintf(stderr, "%s: data differs at byte %zu of %zu: got 0x%02x, "
            "expected 0x%02x\n", what, off + i, len, p[off + i],
            ((const unsigned char *)&w)[i]);
    return 0;
  }
  return 1;
}

/* ---- a minimal JSON walker (enough to read iperf3 -J) -------------------- */

static const char *json_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  return p;
}

/* p at '"': the character after the closing quote, or NULL. */
static const char *json_skip_string(const char *p) {
  for (p++; *p && *p != '"'; p++)
    if (*p == '\\' && !*++p) return NULL;
  return *p ? p + 1 : NULL;
}

/* Skip one value (object, array, string, number, literal). */
static const char *json_skip(const char *p) {
  p = json_ws(p);
  if (*p == '"') return json_skip_string(p);
  if (*p != '{' && *p != '[') {
    const char *start = p;
    while (*p && !strchr(",}] \t\r\n", *p)) p++;
    return p > start ? p : NULL;
  }
  int depth = 0;
  do {
    if (*p == '"') {
      if (!(p = json_skip_string(p))) return NULL;
      continue;
    }
    if (*p == '{' || *p == '[') depth++;
    if (*p == '}' || *p == ']') depth--;
    if (!*p) return NULL;
    p++;
  } while (depth > 0);
  return p;
}

/* The value of member `key` of the object at p, or NULL. */
static const char *json_member(const char *p, const char *key) {
  p = json_ws(p);
  if (*p++ != '{') return NULL;
  size_t klen = strlen(key);
  for (;;) {
    p = json_ws(p);
    if (*p != '"') return NULL;  /* '}' (not found) or not JSON */
    const char *name = p + 1, *end = json_skip_string(p);
    if (!end) return NULL;
    p = json_ws(end);
    if (*p++ != ':') return NULL;
    p = json_ws(p);
    if ((size_t)(end - 1 - name) == klen && memcmp(name, key, klen) == 0)
      return p;
    if (!(p = json_skip(p))) return NULL;
    p = json_ws(p);
    if (*p++ != ',') return NULL;
  }
}

static const char *json_at(const char *json, const char *const *path) {
  const char *p = json;
  for (; p && *path; path++) p = json_member(p, *path);
  return p;
}

int json_number_at(const char *json, const char *const *path, double *value) {
  const char *p = json_at(json, path);
  if (!p) return -1;
  char *end;
  errno = 0;
  *value = strtod(p, &end);
  return end == p || errno ? -1 : 0;
}

int json_string_at(const char *json, const char *const *path, char *buf,
                   size_t len) {
  const char *p = json_at(json, path);
  const char *end = p && *p == '"' ? json_skip_string(p) : NULL;
  if (!end || len == 0) return -1;
  size_t n = (size_t)(end - p - 2);
  if (n >= len) n = len - 1;
  memcpy(buf, p + 1, n);
  buf[n] = '\0';
  return 0;
}

/* ---- reference: iperf3 --------------------------------------------------- */

#define IPERF3_OMIT_S 1          /* slow start, left out of the result */
#define IPERF3_CONNECT_TRIES 50  /* 100 ms apart, while every client is refused */
#define IPERF3_LISTEN_WAIT_MS 5000
#define IPERF3_SERVER_GRACE_MS 3000
#define IPERF3_CLIENT_GRACE_MS 5000
#define IPERF3_PORT_TRIES 100

/* One iperf3 server (side 0) and its client (side 1). */
typedef struct iperf3_pair {
  int port;
  int nic;           /* the hosts' NIC it runs over (twohost nic_addr) */
  int cpu[2];        /* server's CPU, client's; -1: not pinned */
  pid_t server, client;  /* -1: not running (or reaped) */
  int out_fd;        /* the client's stdout; -1 when closed */
  int ok;            /* the client reported a result */
  double cpu_s[2];   /* server's, client's CPU seconds; -1: not known */
  double bytes;      /* moved over the client's life; -1: not known */
} iperf3_pair;

static int find_program(const char *name, char *out, size_t cap) {
  const char *path = getenv("PATH");
  char dirs[4096];
  snprintf(dirs, sizeof dirs, "%s:/usr/bin:/usr/local/bin:/bin",
           path ? path : "");
  for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d;
       d = strtok_r(NULL, ":", &save)) {
    snprintf(out, cap, "%s/%s", d, name);
    if (*d && access(out, X_OK) == 0) return 0;
  }
  return -1;
}

/* A TCP port free on loopback (namespaces are fresh: any port is free). */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  if (fd >= 0) close(fd);
  return port;
}

/* Distinct free ports for the n pairs (free_port may hand out one twice,
 * as nothing holds it in between). Returns 0 or -1. */
static int pick_ports(iperf3_pair *p, int n) {
  for (int k = 0; k < n; k++) {
    int dup = 1;
    for (int tries = 0; dup && tries < IPERF3_PORT_TRIES; tries++) {
      p[k].port = free_port();
      dup = p[k].port < 0;
      for (int j = 0; j < k; j++) dup |= p[j].port == p[k].port;
    }
    if (dup) return -1;
  }
  return 0;
}

/* The k-th CPU of `set`, counting modulo its size; -1 when it is empty. */
static int nth_cpu(const cpu_set_t *set, int k) {
  int n = CPU_COUNT(set), seen = 0;
  for (int c = 0; n > 0 && c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, set) && seen++ == k % n) return c;
  return -1;
}

/* Pair k's server on the k-th CPU of side 0's half, its client on the k-th
 * of side 1's (the halves of bench_side_start): one pair keeps the two
 * ends of a single-threaded iperf3 on two CPUs, several pairs spread over
 * each side's cores as a multi-threaded sender and receiver do. No
 * pinning where there are fewer than two CPUs. */
static void place_pairs(iperf3_pair *p, int n, iperf3_result *r) {
  cpu_set_t half[2];
  int pinned = bench_cpu_halves(half) == 0;
  for (int k = 0; k < n; k++)
    for (int side = 0; side < 2; side++)
      p[k].cpu[side] = pinned ? nth_cpu(&half[side], k) : -1;
  for (int side = 0; side < 2; side++) {
    int size = pinned ? CPU_COUNT(&half[side]) : 0;
    r->cpu[side] = p[0].cpu[side];
    r->ncpus[side] = size < n ? size : n;
  }
}

/* Fork a child that enters `side`, is pinned to `cpu` (-1: not pinned) and
 * runs argv with stdout on out_fd (-1: /dev/null) and stderr on /dev/null.
 * Returns its pid or -1. */
static pid_t spawn_in_side(const twohost *th, int side, int cpu,
                           char *const argv[], int out_fd) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid != 0) return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (cpu >= 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    sched_setaffinity(0, sizeof one, &one);
  }
  int devnull = open("/dev/null", O_WRONLY);
  dup2(out_fd >= 0 ? out_fd : devnull, STDOUT_FILENO);
  dup2(devnull, STDERR_FILENO);
  if (twohost_enter(th, side) == 0) execv(argv[0], argv);
  _exit(127);
}

/* Read all of fd into a NUL-terminated heap buffer (NULL on failure). */
static char *read_all(int fd) {
  size_t len = 0, cap = 1 << 16;
  char *buf = malloc(cap);
  while (buf) {
    if (cap - len < 4096) {
      char *bigger = realloc(buf, cap * 2);
      if (!bigger) break;
      buf = bigger;
      cap *= 2;
    }
    ssize_t n = bench_interrupted() ? 0 : read(fd, buf + len, cap - len - 1);
    if (n > 0) {
      len += (size_t)n;
    } else if (n == 0 || errno != EINTR) { /* EOF, stopped, reader gone */
      buf[len] = '\0';
      return buf;
    }
  }
  free(buf);
  return NULL;
}

/* Reap pid, killing it after grace_ms. Returns the CPU seconds (user +
 * system, all its threads, its whole life) of a process that exited by
 * itself, from wait4: the kernel's account of that one child, which
 * neither misses its last moments (as reading /proc/PID/stat before it
 * exits would) nor mixes in other children (as RUSAGE_CHILDREN deltas
 * would). -1 when it had to be killed or was not ours. */
static double reap(pid_t pid, int grace_ms) {
  struct rusage ru;
  int status;
  pid_t got = 0;
  for (int waited = 0; got == 0 && waited < grace_ms; waited += 10)
    if ((got = wait4(pid, &status, WNOHANG, &ru)) == 0) usleep(10000);
  if (got == pid && WIFEXITED(status))
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
  if (got == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  return -1;
}

static int start_servers(const twohost *th, const char *bin, iperf3_pair *p,
                         int n, iperf3_result *r) {
  for (int k = 0; k < n; k++) {
    char port[16];
    snprintf(port, sizeof port, "%d", p[k].port);
    char *argv[] = {(char *)bin, "-s", "-1", "-B",
                    (char *)th->nic_addr[p[k].nic][0], "-p", port, NULL};
    p[k].server = spawn_in_side(th, 0, p[k].cpu[0], argv, -1);
    if (p[k].server < 0) {
      snprintf(r->why, sizeof r->why, "cannot start %.200s -s", bin);
      return -1;
    }
  }
  return 0;
}

/* 1 when process `pid` has a TCP socket listening on `port`, as its own
 * network namespace sees it (/proc/PID/net): asking by connecting would
 * use up a one-off (-1) server. Tables that cannot be read count as
 * listening; the clients' retry on "unable to connect" still covers it. */
static int listening(pid_t pid, int port) {
  static const char *const tables[] = {"tcp", "tcp6"};
  int found = 0, readable = 0;
  for (int t = 0; t < 2 && !found; t++) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/net/%s", (int)pid, tables[t]);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    readable = 1;
    unsigned lport, state;
    /* "   0: 0100D30A:1451 00000000:0000 0A ...": local port, state
     * (0A = LISTEN); the header line does not match. */
    while (!found && fgets(line, sizeof line, f))
      found = sscanf(line, " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x",
                     &lport, &state) == 2 &&
              lport == (unsigned)port && state == 0x0A;
    fclose(f);
  }
  return found || !readable;
}

/* Until every server listens: the clients start together and must not be
 * refused one by one. */
static int wait_listening(iperf3_pair *p, int n, iperf3_result *r) {
  int waited = 0, status;
  for (int k = 0; k < n;) {
    if (waitpid(p[k].server, &status, WNOHANG) == p[k].server) {
      p[k].server = -1;
      snprintf(r->why, sizeof r->why, "iperf3 -s on port %d exited before "
               "listening", p[k].port);
      return -1;
    }
    if (listening(p[k].server, p[k].port)) {
      k++;
    } else if (waited >= IPERF3_LISTEN_WAIT_MS) {
      snprintf(r->why, sizeof r->why, "iperf3 -s not listening on port %d "
               "after %d ms", p[k].port, IPERF3_LISTEN_WAIT_MS);
      return -1;
    } else {
      usleep(10000);
      waited += 10;
    }
  }
  return 0;
}

/* Start pair k's client (-P streams / procs), its stdout on p->out_fd. */
static int start_client(const twohost *th, const char *bin, iperf3_pair *p,
                        const iperf3_result *r) {
  char port[16], par[16], secs[16], omit[16];
  snprintf(port, sizeof port, "%d", p->port);
  snprintf(par, sizeof par, "%d", r->streams / r->procs);
  snprintf(secs, sizeof secs, "%d", r->seconds);
  snprintf(omit, sizeof omit, "%d", IPERF3_OMIT_S);
  char *argv[] = {(char *)bin, "-c", (char *)th->nic_addr[p->nic][0], "-B",
                  (char *)th->nic_addr[p->nic][1], "-p", port, "-P", par, "-t",
                  secs, "-O", omit, "-J", r->reverse ? "-R" : NULL, NULL};
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  p->client = spawn_in_side(th, 1, p->cpu[1], argv, fds[1]);
  close(fds[1]);
  if (p->client < 0) {
    close(fds[0]);
    return -1;
  }
  p->out_fd = fds[0];
  return 0;
}

/* Parse a client's JSON: *gbps, or -1 with the error iperf3 reported. */
static int iperf3_parse(const char *json, double *gbps, char *why,
                        size_t wlen) {
  static const char *const bps[] = {"end", "sum_received", "bits_per_second",
                                    NULL};
  static const char *const error[] = {"error", NULL};
  double v;
  if (json_string_at(json, error, why, wlen) == 0) return -1;
  if (json_number_at(json, bps, &v) != 0 || v <= 0) {
    snprintf(why, wlen, "iperf3 -J output has no "
             "end.sum_received.bits_per_second");
    return -1;
  }
  *gbps = v / 8e9;
  return 0;
}

/* The bytes a client's test moved over the client's whole life, to go
 * with the CPU time of the two processes' whole lives (reap):
 * end.sum_received.bytes counts the measured seconds only, so the bytes
 * of the omitted intervals (-O, slow start) are added. -1 when the
 * output lacks them: an iperf3 that reported no omitted interval would
 * otherwise make the reference look dearer than it is. */
static double iperf3_bytes(const char *json) {
  static const char *const received[] = {"end", "sum_received", "bytes", NULL};
  static const char *const intervals[] = {"intervals", NULL};
  static const char *const omitted[] = {"sum", "omitted", NULL};
  static const char *const bytes[] = {"sum", "bytes", NULL};
  const char *p = json_at(json, intervals);
  double total, b;
  int seen = 0;
  if (json_number_at(json, received, &total) != 0 || !p || *p != '[') return -1;
  for (p = json_ws(p + 1); *p == '{'; p = json_ws(p)) {
    const char *o = json_at(p, omitted);
    if (o && strncmp(o, "true", 4) == 0) {
      if (json_number_at(p, bytes, &b) != 0) return -1;
      total += b;
      seen = 1;
    }
    if (!(p = json_skip(p))) return -1;
    if (*(p = json_ws(p)) == ',') p++;
  }
  return *p == ']' && seen ? total : -1;
}

/* Read a started client's output to its end, reap it, parse it. Clients
 * print only when done, so reading them one after the other does not
 * hold any back while it measures. */
static int finish_client(const char *bin, iperf3_pair *p, double *gbps,
                         char *why, size_t wlen) {
  char *json = read_all(p->out_fd);
  close(p->out_fd);
  p->out_fd = -1;
  p->cpu_s[1] = reap(p->client, bench_interrupted() ? 0 : IPERF3_CLIENT_GRACE_MS);
  p->client = -1;
  if (!json) snprintf(why, wlen, "running %.200s -c failed", bin);
  p->ok = json && iperf3_parse(json, gbps, why, wlen) == 0;
  p->bytes = p->ok ? iperf3_bytes(json) : -1;
  free(json);
  return p->ok ? 0 : -1;
}

/* Every pair's client at once; r->gbps = the sum of what they received.
 * Returns 0, 1 when every client was refused (no server listened yet, so
 * none is used up: try again), or -1 with r->why naming a failed client. */
static int run_clients(const twohost *th, const char *bin, iperf3_pair *p,
                       int n, iperf3_result *r) {
  int started = 0, failed = 0, refused = 0;
  double sum = 0;
  while (started < n && start_client(th, bin, &p[started], r) == 0) started++;
  for (int k = 0; k < started; k++) {
    char why[sizeof r->why];
    double gbps = 0;
    if (finish_client(bin, &p[k], &gbps, why, sizeof why) == 0) {
      sum += gbps;
      continue;
    }
    refused += strstr(why, "unable to connect") != NULL;
    if (failed++ > 0) continue;
    if (n == 1) snprintf(r->why, sizeof r->why, "%s", why);
    else snprintf(r->why, sizeof r->why, "client %d of %d (port %d): %.200s",
                  k + 1, n, p[k].port, why);
  }
  if (started < n) {
    snprintf(r->why, sizeof r->why, "cannot start %.200s -c", bin);
    return -1;
  }
  if (failed == 0) r->gbps = sum;
  return failed == 0 ? 0 : refused == n ? 1 : -1;
}

/* Servers whose client finished exit by themselves (-1); others are
 * killed at once. */
static void stop_servers(iperf3_pair *p, int n) {
  for (int k = 0; k < n; k++)
    if (p[k].server > 0)
      p[k].cpu_s[0] = reap(p[k].server, p[k].ok && !bench_interrupted()
                                            ? IPERF3_SERVER_GRACE_MS : 0);
}

/* The reference's CPU cost: every client and server, over all the bytes
 * their tests moved; left unknown (0) when any of them is. Their whole
 * lives include start-up and the exchange of results (milliseconds
 * against seconds of transfer), which only makes the reference dearer by
 * that much. */
static void sum_cpu(const iperf3_pair *p, int n, iperf3_result *r) {
  double cpu = 0, bytes = 0;
  for (int k = 0; k < n; k++) {
    if (p[k].cpu_s[0] < 0 || p[k].cpu_s[1] < 0 || p[k].bytes <= 0) return;
    cpu += p[k].cpu_s[0] + p[k].cpu_s[1];
    bytes += p[k].bytes;
  }
  r->cpu_s = cpu;
  r->cpu_bytes = bytes;
}

/* r->procs pairs: start the servers, wait until they listen, run the
 * clients together (again while every one is refused), stop the servers. */
static void iperf3_run(const twohost *th, const char *bin, iperf3_pair *p,
                       iperf3_result *r) {
  int n = r->procs, rc = -1;
  place_pairs(p, n, r);
  if (pick_ports(p, n) != 0)
    snprintf(r->why, sizeof r->why, "no free TCP port for iperf3");
  else if (start_servers(th, bin, p, n, r) == 0 && wait_listening(p, n, r) == 0)
    for (int attempt = 0; attempt < IPERF3_CONNECT_TRIES &&
                          !bench_interrupted(); attempt++) {
      if ((rc = run_clients(th, bin, p, n, r)) != 1) break;
      usleep(100000);
    }
  r->available = rc == 0;
  stop_servers(p, n);
  if (r->available) sum_cpu(p, n, r);
}

/* `procs` pairs of `streams / procs` streams each; pair k over NIC
 * nic[k] (NULL: all over NIC 0, the hosts' first link). */
static void measure(const twohost *th, int streams, int procs, int seconds,
                    int reverse, const int *nic, iperf3_result *out) {
  *out = (iperf3_result){.streams = streams, .procs = procs,
                         .seconds = seconds, .reverse = reverse,
                         .cpu = {-1, -1}};
  char bin[4096];
  iperf3_pair *p = NULL;
  if (find_program("iperf3", bin, sizeof bin) != 0) {
    snprintf(out->why, sizeof out->why, "iperf3 is not installed "
             "(scripts/setup installs the Debian package iperf3)");
    return;
  }
  if (procs < 1 || streams % procs != 0 ||
      !(p = calloc((size_t)procs, sizeof *p))) {
    snprintf(out->why, sizeof out->why, "cannot run %d iperf3 pairs of %d "
             "streams in all", procs, streams);
    return;
  }
  for (int k = 0; k < procs; k++)
    p[k] = (iperf3_pair){.server = -1, .client = -1, .out_fd = -1,
                         .cpu_s = {-1, -1}, .bytes = -1,
                         .nic = nic && nic[k] > 0 && nic[k] < th->nnics ? nic[k] : 0};
  iperf3_run(th, bin, p, out);
  free(p);
}

void iperf3_measure(const twohost *th, int streams, int seconds, int reverse,
                    iperf3_result *out) {
  measure(th, streams, 1, seconds, reverse, NULL, out);
}

void iperf3_measure_procs(const twohost *th, int streams, int seconds,
                          int reverse, iperf3_result *out) {
  measure(th, streams, streams, seconds, reverse, NULL, out);
}

void iperf3_measure_nics(const twohost *th, int procs, const int *nic,
                         int seconds, int reverse, iperf3_result *out) {
  fprintf(stderr, "bench: measuring the iperf3 reference (%d processes x 1 "
          "stream over the endpoints' NICs%s), about %d s...\n", procs,
          reverse ? "; -R" : "", seconds + IPERF3_OMIT_S);
  measure(th, procs, procs, seconds, reverse, nic, out);
}

void iperf3_measure_pair(const twohost *th, int streams, int seconds,
                         int reverse, int with_procs, iperf3_result *ref,
                         iperf3_result *procs) {
  /* Say so: the benchmark is otherwise silent for these seconds. */
  fprintf(stderr, "bench: measuring the iperf3 reference%s (%d streams%s%s), "
          "about %d s...\n", with_procs ? "s" : "", streams,
          with_procs ? "; then as that many processes" : "",
          reverse ? "; -R" : "", (seconds + IPERF3_OMIT_S) * (1 + !!with_procs));
  iperf3_measure(th, streams, seconds, reverse, ref);
  if (with_procs) iperf3_measure_procs(th, streams, seconds, reverse, procs);
}

double iperf3_gbps(const iperf3_result *r) { return r->available ? r->gbps : -1; }

double iperf3_cpu_s_per_gb(const iperf3_result *r) {
  return r->available && r->cpu_bytes > 0 ? bench_cpu_per_gb(r->cpu_s, r->cpu_bytes)
                                          : -1;
}

/* N processes of one stream spread over N cores, as the transport spreads
 * its streams over threads: the reference of the same shape. */
double iperf3_cpu_ref(const iperf3_result *procs, const iperf3_result *ref) {
  double c = procs ? iperf3_cpu_s_per_gb(procs) : -1;
  return c > 0 ? c : iperf3_cpu_s_per_gb(ref);
}

void iperf3_cpu_words(const iperf3_result *r, char *buf, size_t len) {
  double c = iperf3_cpu_s_per_gb(r);
  if (c > 0) snprintf(buf, len, ", %.3g CPU s/GB", c);
  else snprintf(buf, len, "%s", "");
}

void iperf3_placement(const iperf3_result *r, char *buf, size_t len) {
  if (r->cpu[0] < 0)
    snprintf(buf, len, "not pinned (fewer than 2 CPUs)");
  else
    snprintf(buf, len, "servers on %d CPU(s) of side 0's half from CPU %d, "
             "clients on %d of side 1's from CPU %d", r->ncpus[0], r->cpu[0],
             r->ncpus[1], r->cpu[1]);
}

/* ---- plain TCP between the two side processes ------------------------------ */

int bench_tcp_listen(const twohost *th, int peer_fd, int backlog, const char *who) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;
  inet_pton(AF_INET, th->addr[0], &sa.sin_addr);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      listen(lfd, backlog) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &len)) {
    fprintf(stderr, "%s: listen on %s: %s\n", who, th->addr[0], strerror(errno));
    if (lfd >= 0) close(lfd);
    return -1;
  }
  uint16_t port = sa.sin_port;
  if (oob_send(peer_fd, &port, sizeof port) != 0) {
    close(lfd);
    return -1;
  }
  return lfd;
}

int bench_tcp_peer(const twohost *th, int peer_fd, struct sockaddr_in *to) {
  *to = (struct sockaddr_in){.sin_family = AF_INET};
  inet_pton(AF_INET, th->addr[0], &to->sin_addr);
  return oob_recv(peer_fd, &to->sin_port, sizeof to->sin_port) == 0 ? 0 : -1;
}

int bench_tcp_connect(const struct sockaddr_in *to) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, (const struct sockaddr *)to, sizeof *to) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    fd = -1;
  }
  return fd;
}

/* ---- reference: raw TCP ping-pong -------------------------------------- */

static int io_full(int fd, void *buf, size_t len, int is_send) {
  char *p = buf;
  while (len > 0) {
    ssize_t n = is_send ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      fprintf(stderr, "pingpong: %s: %s\n", is_send ? "send" : "recv",
              n == 0 ? "peer closed" : strerror(errno));
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* TCP_NODELAY: each message leaves at once; a receive timeout so a lost
 * peer cannot hang the benchmark. */
static void tune_socket(int fd) {
  int one = 1;
  struct timeval tv = {.tv_sec = 30};
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

int pingpong_listen(const twohost *th, int peer_fd) {
  int lfd = bench_tcp_listen(th, peer_fd, 1, "pingpong");
  if (lfd < 0) return -1;
  struct pollfd pfd = {lfd, POLLIN, 0};
  int fd = poll(&pfd, 1, 30000) == 1 ? accept4(lfd, NULL, NULL, SOCK_CLOEXEC) : -1;
  if (fd < 0) fprintf(stderr, "pingpong: no connection on %s\n", th->addr[0]);
  else tune_socket(fd);
  close(lfd);
  return fd;
}

int pingpong_dial(const twohost *th, int peer_fd) {
  struct sockaddr_in to;
  if (bench_tcp_peer(th, peer_fd, &to) != 0) return -1;
  int fd = bench_tcp_connect(&to);
  if (fd < 0) {
    fprintf(stderr, "pingpong: connect to %s: %s\n", th->addr[0], strerror(errno));
    return -1;
  }
  tune_socket(fd);
  return fd;
}

int pingpong_round(int fd, void *buf, size_t size, int initiator) {
  return io_full(fd, buf, size, initiator) || io_full(fd, buf, size, !initiator)
             ? -1 : 0;
}
