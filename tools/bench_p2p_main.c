/* tcpx-p2p bench p2p: the command line, the once-per-run iperf3
 * references, and the start of the two sides (bench_p2p.c). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_p2p.h"
#include "tcp.h"
#include "tcpx_p2p.h"
#include "tools.h"

/* ---- references ------------------------------------------------------------------- */

static void print_iperf3(const p2p_plan *plan, const iperf3_result *r,
                         const char *dir) {
  FILE *info = plan->json ? stderr : stdout;
  char cpu[48];
  iperf3_cpu_words(r, cpu, sizeof cpu);
  if (r->available)
    fprintf(info, "reference: iperf3 -P %d%s (%s), %d s after 1 s omitted, ends "
            "on CPUs %d and %d, once per run: %.3f GB/s%s\n", r->streams,
            r->reverse ? " -R" : "", dir, r->seconds, r->cpu[0], r->cpu[1],
            r->gbps, cpu);
  else
    fprintf(info, "reference (%s): unavailable (%s): ratio null\n", dir,
            plan->ref_seconds ? r->why : "--ref-seconds 0");
}

static void print_procs(const p2p_plan *plan, const iperf3_result *r,
                        const char *dir) {
  FILE *info = plan->json ? stderr : stdout;
  char where[160], cpu[48];
  iperf3_placement(r, where, sizeof where);
  iperf3_cpu_words(r, cpu, sizeof cpu);
  if (r->available)
    fprintf(info, "reference 2: %d iperf3 processes x 1 stream%s at once (%s), "
            "%d s after 1 s omitted, %s, summed, once per run: %.3f GB/s%s\n",
            r->procs, r->reverse ? " (-R)" : "", dir, r->seconds, where,
            r->gbps, cpu);
  else
    fprintf(info, "reference 2 (%s): unavailable (%s): ratio2 null\n", dir,
            !plan->ref_seconds ? "--ref-seconds 0"
            : !plan->ref_procs ? "--ref-procs 0" : r->why);
}

/* The raw bulk reference is measured by the sides themselves, per row;
 * say here what it is and which rows get it. */
static void print_raw(const p2p_plan *plan) {
  FILE *info = plan->json ? stderr : stdout;
  char min[16];
  bench_size_str(RAW_MIN_SIZE, min, sizeof min);
  if (!plan->ref_raw || plan->gpu)
    fprintf(info, "reference 3: no raw TCP bulk reference (%s): raw_gbps null\n",
            plan->gpu ? "--gpu" : "--ref-raw 0");
  else
    fprintf(info, "reference 3: raw TCP, %d plain connections between the two "
            "side processes, a thread per connection on each side's CPUs, "
            "each moving its slice of the row's own buffers with one blocking "
            "send()/recv() per message, right after each op and size of %s "
            "and more (the op's direction; about 1 s, at least the row's "
            "messages)\n", plan->comms_per_lane * plan->tcp_streams, min);
}

static void measure_references(const twohost *th, p2p_plan *plan) {
  int fwd = p2p_plan_has_op(plan, OP_SEND) || p2p_plan_has_op(plan, OP_WRITE);
  int rev = p2p_plan_has_op(plan, OP_READ);
  if (plan->ref_per_size && plan->ref_seconds > 0 && (fwd || rev)) {
    fprintf(plan->json ? stderr : stdout, "reference: iperf3 -P %d%s, %d s "
            "after 1 s omitted (-R for read), measured right before each op "
            "and size between the same hosts\n",
            plan->comms_per_lane * plan->tcp_streams,
            plan->ref_procs ? " and as that many processes x 1 stream" : "",
            plan->ref_seconds);
    fwd = rev = 0;
  }
  if (bench_interrupted()) return;
  if (fwd) bench_p2p_measure_direction(th, plan, 0, &plan->ref_fwd, &plan->procs_fwd);
  if (rev) bench_p2p_measure_direction(th, plan, 1, &plan->ref_rev, &plan->procs_rev);
  if (bench_interrupted()) return;
  if (fwd) {
    print_iperf3(plan, &plan->ref_fwd, "client -> server, as send and write");
    print_procs(plan, &plan->procs_fwd, "client -> server");
  }
  if (rev) {
    print_iperf3(plan, &plan->ref_rev, "server -> client, as read");
    print_procs(plan, &plan->procs_rev, "server -> client");
  }
  print_raw(plan);
  if (p2p_plan_has_op(plan, OP_PINGPONG))
    fprintf(plan->json ? stderr : stdout, "reference: raw TCP ping-pong (one "
            "socket, TCP_NODELAY, blocking I/O) between the same two processes, "
            "in blocks of %d round trips alternating with the endpoint's\n",
            PINGPONG_BLOCK);
}

/* --endpoints N: N iperf3 processes x 1 stream, pair k over the NIC of
 * endpoint k's GPU, in each direction the ops use. */
static void measure_nic_references(const twohost *th, p2p_plan *plan) {
  FILE *info = plan->json ? stderr : stdout;
  int nic[BENCH_MAX_ENDPOINTS];
  for (int k = 0; k < plan->endpoints; k++) nic[k] = twohost_gpu_nic(th, k);
  int fwd = p2p_plan_has_op(plan, OP_SEND) || p2p_plan_has_op(plan, OP_WRITE);
  int rev = p2p_plan_has_op(plan, OP_READ);
  for (int dir = 0; dir < 2 && !bench_interrupted(); dir++) {
    iperf3_result *r = dir ? &plan->ref_nics_rev : &plan->ref_nics_fwd;
    if (!(dir ? rev : fwd)) continue;
    if (plan->ref_seconds > 0)
      iperf3_measure_nics(th, plan->endpoints, nic, plan->ref_seconds, dir, r);
    char where[160], cpu[48];
    iperf3_placement(r, where, sizeof where);
    iperf3_cpu_words(r, cpu, sizeof cpu);
    if (r->available)
      fprintf(info, "reference: %d iperf3 processes x 1 stream at once%s (%s), "
              "pair k over endpoint k's NIC, %d s after 1 s omitted, %s, "
              "summed, once per run: %.3f GB/s%s\n", r->procs, dir ? " (-R)" : "",
              dir ? "server -> client, as read" : "client -> server, as send "
              "and write", r->seconds, where, r->gbps, cpu);
    else
      fprintf(info, "reference (%s): unavailable (%s): ratio null\n",
              dir ? "read" : "send, write",
              plan->ref_seconds ? r->why : "--ref-seconds 0");
  }
  fprintf(info, "reference 3: no raw TCP bulk reference with --endpoints: "
          "raw_gbps null\n");
}

/* ---- command line -------------------------------------------------------------------- */

static int usage(FILE *out) {
  fprintf(out,
          "usage: tcpx-p2p bench p2p [--sizes 256,4K,64K,1M,16M,64M,256M,1G]\n"
          "                          [--ops send,write,read,pingpong] [--async]\n"
          "                          [--depth N] [--kv-blocks N] [--iters N]\n"
          "                          [--ref-seconds S] [--ref-procs 1|0]\n"
          "                          [--ref-per-size] [--ref-raw 1|0] [--json]\n"
          "                          [--loopback] [--plugin P] [--cpus apart|free]\n"
          "                          [--endpoints N] [--gpu [--local]]\n"
          "  The endpoint API between two hosts (network namespaces as root, else\n"
          "  loopback). Per op and size: GB/s and per-transfer latency p50/p99\n"
          "  (sync: each call; --async: up to --depth (default %d, max %d) posted\n"
          "  and polled). --kv-blocks N splits each transfer into N blocks\n"
          "  (sendv/recvv/writev/readv). pingpong (sizes <= 64K, sync): send then\n"
          "  receive the echo. References in the same run: iperf3 -P (comms per\n"
          "  lane x TCP streams) for --ref-seconds (default 3; 0 = none), the same\n"
          "  number of iperf3 processes of 1 stream each at once, each pair on its\n"
          "  own CPUs (reference 2, ratio2; --ref-procs 0 skips it), and a raw\n"
          "  TCP ping-pong. The iperf3 references are measured once per run per\n"
          "  direction, or with --ref-per-size right before each op and size.\n"
          "  Reference 3 (raw_gbps, ratio_raw, raw_cpu_s_per_gb; text column\n"
          "  'raw GB/s ratio CPU'), measured by the two sides right after each\n"
          "  op and size: as many plain TCP connections between them, a thread\n"
          "  per connection, moving the row's own buffers (DRAM, not iperf3's\n"
          "  cached 128 KiB) with blocking send()/recv(). --ref-raw 1 (default):\n"
          "  rows of 1M and more, none below; 0: none. Never with --gpu or\n"
          "  --endpoints (null).\n"
          "  Default iterations: 512 MiB worth, %d..%d. Bandwidth rows also give\n"
          "  both sides' CPU seconds per GB next to the iperf3 reference's (N\n"
          "  processes where measured) and their ratio.\n"
          "  --cpus apart (default): each side and its threads on its own half\n"
          "  of the CPUs, like two hosts; free: where the scheduler puts them.\n"
          "  --endpoints N (1..%d): N endpoint pairs at once, endpoint k with GPU\n"
          "  index k on its GPU's NICs: in namespaces, two A3-shaped hosts joined\n"
          "  by %d veth NICs (GPUs 2k, 2k+1 -> NIC k). Ops send, write, read;\n"
          "  sizes default 1M,16M,64M. Per row: total and per-endpoint GB/s, the\n"
          "  bytes each NIC moved, and the reference: N iperf3 processes x 1\n"
          "  stream, pair k over endpoint k's NIC, pinned like the sides.\n"
          "  --gpu: GPU buffers on both sides (staged through pinned memory on\n"
          "  the built-in TCP transport), each row next to the same op through\n"
          "  the same endpoint with host buffers and the pinned H2D/D2H copy\n"
          "  rate; exits 77 with a message where CUDA has no device.\n"
          "  --gpu --local: the same-host path: two processes of this host\n"
          "  joined by connect_local/accept_local move GPU buffers (GPU 0 and 1\n"
          "  where there are two) by CUDA IPC: write (write_ipc), read\n"
          "  (read_ipc), send (send_ipc/recv_ipc). Per op and size: GB/s and\n"
          "  p50/p99 per call, the first call apart (first_us; the first of an\n"
          "  op maps the peer's buffer), and the reference measured in the same\n"
          "  run, in rounds alternating with the IPC calls: cuMemcpyDtoDAsync +\n"
          "  cuStreamSynchronize of the same size on a non-blocking stream\n"
          "  between the same GPUs (ref_gbps, ratio). Every row byte-checked.\n"
          "  Exits 77 with a message where CUDA IPC is unavailable; takes\n"
          "  --sizes, --ops (send, write, read), --iters, --json, --cpus.\n",
          P2P_DEPTH, P2P_DEPTH, P2P_MIN_ITERS, P2P_MAX_ITERS, BENCH_MAX_ENDPOINTS,
          BENCH_NICS);
  return out == stdout ? TOOL_OK : TOOL_USAGE;
}

#define P2P_CMD "bench p2p"

static int parse_ops(const char *list, p2p_plan *p) {
  char copy[256];
  snprintf(copy, sizeof copy, "%s", list);
  p->nops = 0;
  for (char *save = NULL, *t = strtok_r(copy, ",", &save); t;
       t = strtok_r(NULL, ",", &save)) {
    int k = 0;
    while (k < OP_COUNT && strcmp(op_names[k], t) != 0) k++;
    if (k == OP_COUNT || p->nops == OP_COUNT)
      return arg_error(P2P_CMD, "--ops '%s': unknown op '%s'; it accepts a "
                       "comma list of send, write, read, pingpong", list, t), -1;
    p->ops[p->nops++] = (bench_op)k;
  }
  if (p->nops == 0)
    return arg_error(P2P_CMD, "--ops '%s': no op in it; it accepts a comma "
                     "list of send, write, read, pingpong", list), -1;
  return 0;
}

/* A flag with a value at argv[*i]; 0, 1 when `flag` is not one, or -1
 * after the message. */
static int parse_valued(int argc, char **argv, int *i, p2p_plan *p) {
  static const char *const valued[] = {"--sizes", "--ops", "--depth",
      "--kv-blocks", "--iters", "--ref-seconds", "--ref-procs", "--plugin",
      "--cpus", "--endpoints", "--ref-raw", NULL};
  const char *flag = argv[*i], *v;
  int k = 0;
  while (valued[k] && strcmp(valued[k], flag) != 0) k++;
  if (!valued[k]) return 1;
  if (!(v = arg_value(P2P_CMD, argc, argv, i))) return -1;
  switch (k) {
    case 0: return (p->nsizes = bench_parse_sizes(P2P_CMD, v, p->sizes,
                                                  BENCH_MAX_SIZES)) < 0 ? -1 : 0;
    case 1: return parse_ops(v, p);
    case 2: return arg_int(P2P_CMD, flag, v, 1, P2P_DEPTH, &p->depth);
    case 3: return arg_int(P2P_CMD, flag, v, 1, P2P_MAX_BLOCKS, &p->kv_blocks);
    case 4: return arg_long(P2P_CMD, flag, v, 1, 100000000, &p->iters);
    case 5: return arg_int(P2P_CMD, flag, v, 0, 3600, &p->ref_seconds);
    case 6: return arg_int(P2P_CMD, flag, v, 0, 1, &p->ref_procs);
    case 7: p->plugin = v; return 0;
    case 8: return bench_parse_cpus(P2P_CMD, v, &p->cpus_apart);
    case 9: return arg_int(P2P_CMD, flag, v, 1, BENCH_MAX_ENDPOINTS, &p->endpoints);
    default: return arg_int(P2P_CMD, flag, v, 0, 1, &p->ref_raw);
  }
}

static int given(int argc, char **argv, const char *flag) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], flag)) return 1;
  return 0;
}

/* --local moves GPU memory by CUDA IPC between two processes of this
 * host: the flags of the network paths and references do not apply. */
static int check_local(int argc, char **argv, const p2p_plan *p) {
  static const char *const remote[] = {"--endpoints", "--plugin", "--kv-blocks",
      "--async", "--depth", "--ref-seconds", "--ref-procs", "--ref-per-size",
      "--ref-raw", NULL};
  if (!p->gpu)
    return arg_error(P2P_CMD, "--local moves GPU buffers by CUDA IPC: it "
                     "needs --gpu"), -1;
  for (int k = 0; remote[k]; k++)
    if (given(argc, argv, remote[k]))
      return arg_error(P2P_CMD, "%s does not apply to --local (blocking CUDA "
                       "IPC calls between two processes of this host, next "
                       "to the driver's device-to-device copy)", remote[k]), -1;
  return 0;
}

/* What --local, --endpoints N > 1 and --gpu change or refuse. */
static int check_combination(int argc, char **argv, p2p_plan *p) {
  if (p->local && check_local(argc, argv, p) != 0) return -1;
  if (p->endpoints > 1) {
    static const char *const single[] = {"--async", "--kv-blocks", "--depth",
                                         "--ref-per-size", "--gpu", NULL};
    for (int k = 0; single[k]; k++)
      if (given(argc, argv, single[k]))
        return arg_error(P2P_CMD, "%s is for one endpoint pair; --endpoints %d "
                         "runs blocking send, write, read", single[k],
                         p->endpoints), -1;
    if (!given(argc, argv, "--sizes"))
      p->nsizes = bench_parse_sizes(P2P_CMD, "1M,16M,64M", p->sizes, BENCH_MAX_SIZES);
  }
  if (p->endpoints > 1 || p->gpu) {
    if (given(argc, argv, "--ops") && p2p_plan_has_op(p, OP_PINGPONG))
      return arg_error(P2P_CMD, "--ops pingpong runs with one endpoint pair on "
                       "host memory only"), -1;
    if (!given(argc, argv, "--ops")) parse_ops("send,write,read", p);
  }
  return 0;
}

static int parse_args(int argc, char **argv, p2p_plan *p, int *loopback) {
  *p = (p2p_plan){.depth = P2P_DEPTH, .kv_blocks = 1, .ref_seconds = 3,
                  .ref_procs = 1, .ref_raw = 1, .cpus_apart = 1,
                  .endpoints = 1};
  p->nsizes = bench_parse_sizes(P2P_CMD, "256,4K,64K,1M,16M,64M,256M,1G",
                                p->sizes, BENCH_MAX_SIZES);
  parse_ops("send,write,read,pingpong", p);
  for (int i = 1; i < argc; i++) {
    int rc;
    if (!strcmp(argv[i], "--json")) p->json = 1;
    else if (!strcmp(argv[i], "--loopback")) *loopback = 1;
    else if (!strcmp(argv[i], "--async")) p->async = 1;
    else if (!strcmp(argv[i], "--ref-per-size")) p->ref_per_size = 1;
    else if (!strcmp(argv[i], "--gpu")) p->gpu = 1;
    else if (!strcmp(argv[i], "--local")) p->local = 1;
    else if ((rc = parse_valued(argc, argv, &i, p)) != 0)
      return rc < 0 ? -1 : (arg_unknown(P2P_CMD, argv[i]), -1);
  }
  return check_combination(argc, argv, p);
}

/* What the engine will open: comms per lane from the endpoint options, TCP
 * streams per comm from the built-in transport's options. */
static void read_layout(p2p_plan *p) {
  p2p_options opts;
  tcp_options tcp;
  p2p_options_init(&opts);
  tcp_options_default(&tcp);
  p->comms_per_lane = opts.comms_per_lane;
  p->tcp_streams = tcp.nstreams;
}

/* ---- --local ----------------------------------------------------------------- */

/* The same-host sockets go in a directory of this run's own (TMPDIR for
 * the sides): the benchmark neither replaces the socket of an application
 * endpoint of the same GPU index nor meets another run's. */
static int private_socket_dir(char *dir, size_t len) {
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, len, "%s/tcpx-p2p-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir) || setenv("TMPDIR", dir, 1) != 0) {
    fprintf(stderr, "tcpx-p2p bench p2p --local: %s: %s\n", dir, strerror(errno));
    return -1;
  }
  return 0;
}

/* What the endpoints left there (their sockets, if a side died), then it. */
static void remove_socket_dir(const char *dir) {
  char sub[PATH_MAX];
  snprintf(sub, sizeof sub, "%s/tcpx-p2p-%u", dir, (unsigned)geteuid());
  DIR *d = opendir(sub);
  for (struct dirent *e; d && (e = readdir(d));) {
    char path[PATH_MAX + 256];
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      snprintf(path, sizeof path, "%s/%s", sub, e->d_name), unlink(path);
  }
  if (d) closedir(d);
  rmdir(sub);
  rmdir(dir);
}

/* The two sides, then the hosts' teardown; the tool's exit status. */
static int run_sides(twohost *th, twohost_fn fn[2], p2p_plan *plan) {
  int rc = bench_interrupted() ? -1
                               : twohost_run(th, fn, plan, P2P_RUN_TIMEOUT_S, NULL);
  twohost_teardown(th);
  if (bench_interrupted()) return bench_interrupt_exit("bench p2p");
  return rc == 0 ? TOOL_OK : TOOL_FAILED;
}

/* Two processes of this host (loopback: no namespaces), CUDA IPC between
 * them (bench_p2p_local.c); no network reference. */
static int run_local(p2p_plan *plan) {
  twohost th;
  char dir[PATH_MAX];
  bench_catch_interrupt();
  if (private_socket_dir(dir, sizeof dir) != 0) return TOOL_FAILED;
  if (bench_hosts_setup_nics(&th, 1, 1, &plan->mode) != 0) {
    remove_socket_dir(dir);
    return TOOL_FAILED;
  }
  plan->mode = "local";
  bench_print_cpus(plan->json ? stderr : stdout, plan->cpus_apart);
  twohost_fn fn[2] = {bench_p2p_local_side, bench_p2p_local_side};
  int rc = run_sides(&th, fn, plan);
  remove_socket_dir(dir);
  return rc;
}

int bench_p2p_main(int argc, char **argv) {
  p2p_plan plan;
  int loopback = 0;
  bench_cpus_init();
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout);
  if (parse_args(argc, argv, &plan, &loopback) != 0) return TOOL_USAGE;
  read_layout(&plan);
  char why[512];
  if (plan.gpu && bench_gpu_probe(why, sizeof why, plan.local) != 0) {
    fprintf(stderr, "tcpx-p2p bench p2p --gpu%s: skipped: %s (%s)\n",
            plan.local ? " --local" : "", plan.local ? "no usable GPU or no "
            "CUDA IPC" : "no usable GPU", why);
    return TOOL_SKIP;
  }
  if (plan.local) return run_local(&plan);
  twohost th;
  bench_catch_interrupt();
  int multi = plan.endpoints > 1;
  if (bench_hosts_setup_nics(&th, loopback, multi ? BENCH_NICS : 1, &plan.mode) != 0)
    return TOOL_FAILED;
  FILE *info = plan.json ? stderr : stdout;
  fprintf(info, "bench p2p: client side 1 %s (%s), server side 0 %s (%s), %s; "
          "%s, %s\n", th.addr[1], th.ifname[1], th.addr[0], th.ifname[0],
          th.netns ? "network namespaces over veth" : "loopback",
          plan.async ? "async" : "sync", plan.async ? "post + poll window" :
          "each call timed");
  bench_print_cpus(info, plan.cpus_apart);
  if (multi) measure_nic_references(&th, &plan);
  else measure_references(&th, &plan);
  twohost_fn fn[2] = {bench_p2p_server, bench_p2p_client};
  if (multi) {
    fn[0] = fn[1] = bench_p2p_multi_side;
  }
  return run_sides(&th, fn, &plan);
}
