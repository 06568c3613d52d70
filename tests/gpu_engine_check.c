/* GPU-to-GPU transfers through the endpoint, between two processes: run
 * by scripts/gpu-check on the GPU machine (needs CUDA; exits 77 without).
 *
 *   gpu_engine_check staged|unpack|ipc [--max BYTES] [--plugin PATH]
 *   gpu_engine_check staging      (the pinned ring and CPU copies alone)
 * Diagnosis knobs: GPU_CHECK_HOST_SIDE=send|recv (that side's "GPU" buffer
 * is host memory), GPU_CHECK_PINNED=1 (pinned host->host reference),
 * GPU_IPC_SAME=1 (both IPC processes on GPU 0).
 *
 * staged: the built-in TCP transport (host memory only): pinned staging.
 * unpack: the TCPX-like test plugin (TCPX_P2P_NET_PLUGIN names it): GPU
 *         receives land in bounce pages and the engine's kernel unpacks.
 * ipc:    connect_local + send_ipc/recv_ipc/write_ipc (CUDA IPC).
 * Sizes 1 B ... max at unaligned offsets, random data, poisoned
 * destinations with guard bytes, byte-exact; then throughput in the same
 * run, printed as a ratio: staged/unpack, 256 MiB transfers GPU->GPU
 * against host->host; ipc, write_ipc against cuMemcpyDtoDAsync +
 * cuStreamSynchronize (256 MiB x 10, 16 MiB and 1 MiB x 100, median of 5
 * alternating rounds) after a first call timed on its own (it maps the
 * peer's handle). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cudadrv.h"
#include "staging.h"
#include "prng.h"
#include "sock.h"
#include "tcpx_p2p.h"
#include "twohost.h"

#define OFFSET 3    /* unaligned user pointers */
#define GUARD 64
#define BENCH_SIZE (256u << 20)
#define BENCH_ITERS 4

typedef struct cfg {
  const char *mode;
  size_t max;
} cfg;

static gpu_cuda *cuda;

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fprintf(stderr, " (%s)\n", p2p_last_error()); return 1; } while (0)

static void *gpu_alloc(size_t n) {
  gcu_dptr p = 0;
  return cuda->cuMemAlloc(&p, n) == 0 ? (void *)(uintptr_t)p : NULL;
}

/* Host memory for the host->host reference; pinned with
 * GPU_CHECK_PINNED=1 (to see what sockets do with pinned pages). */
static uint8_t *host_alloc(size_t n) {
  void *p = NULL;
  if (getenv("GPU_CHECK_PINNED") && cuda->cuMemHostAlloc(&p, n, 1) == 0) return p;
  return malloc(n);
}

static int sizes_upto(size_t max, size_t *out) {
  /* 64 KiB travels inline (TCPX_P2P_EAGER_MAX), one byte more by chunks. */
  static const size_t all[] = {1, 4095, 4096, 65536, 65537, (1u << 20) + 7,
                               64u << 20, 1u << 30};
  int n = 0;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (all[i] <= max) out[n++] = all[i];
  return n;
}

static p2p_endpoint *make_ep(int gpu) {
  p2p_options o;
  p2p_options_init(&o);
  o.gpu_index = gpu;
  p2p_endpoint *ep = NULL;
  if (p2p_endpoint_create(&o, &ep) != P2P_OK)
    fprintf(stderr, "endpoint: %s\n", p2p_last_error());
  return ep;
}

/* ---- remote (staged / unpack) ------------------------------------------------ */

static double timed_sends(p2p_endpoint *ep, uint64_t conn, void *buf, uint64_t mr,
                          int is_recv) {
  uint64_t t0 = clock_ns();
  for (int i = 0; i < BENCH_ITERS; i++) {
    size_t got;
    int rc = is_recv ? p2p_recv(ep, conn, mr, buf, BENCH_SIZE, &got)
                     : p2p_send(ep, conn, mr, buf, BENCH_SIZE);
    if (rc != P2P_OK) return -1;
  }
  return (double)BENCH_SIZE * BENCH_ITERS / ((double)(clock_ns() - t0) / 1e9) / 1e9;
}

static int recv_side(const twohost *th, int side, int fd, void *arg) {
  cfg *c = arg;
  setenv("FAKE_TCPX_ADDR", th->addr[side], 1); /* the test plugin's address */
  if (gpu_cuda_load(&cuda) != 0 || gpu_cuda_use_device(cuda, 0, NULL) != 0)
    DIE("cuda device 0");
  p2p_endpoint *ep = make_ep(0);
  if (!ep) return 1;
  uint8_t md[P2P_METADATA_MAX];
  size_t len = sizeof md;
  p2p_get_metadata(ep, md, &len);
  oob_send(fd, &len, sizeof len);
  oob_send(fd, md, len);
  char ip[64];
  int gpu;
  uint64_t conn;
  if (p2p_accept(ep, ip, sizeof ip, &gpu, &conn) != P2P_OK) DIE("accept");
  size_t sizes[16];
  int n = sizes_upto(c->max, sizes), fails = 0;
  size_t cap = sizes[n - 1] + OFFSET + GUARD;
  uint8_t *dev = gpu_alloc(cap), *host = malloc(cap), *want = malloc(cap);
  if (!dev || !host || !want) DIE("alloc");
  for (int i = 0; i < n; i++) {
    size_t sz = sizes[i];
    cuda->cuMemsetD8(gpu_dptr(dev), 0xA5, cap);
    cuda->cuCtxSynchronize(); /* ordered before the engine's own streams */
    uint64_t mr;
    size_t got = 0;
    p2p_reg(ep, dev + OFFSET, sz, &mr);
    int rc = p2p_recv(ep, conn, mr, dev + OFFSET, sz, &got);
    cuda->cuMemcpyDtoH(host, gpu_dptr(dev), sz + OFFSET + GUARD);
    prng_fill(want, sz, sz);
    int ok = rc == P2P_OK && got == sz && memcmp(host + OFFSET, want, sz) == 0;
    for (int g = 0; g < GUARD; g++) ok &= host[OFFSET + sz + g] == 0xA5;
    for (int g = 0; g < OFFSET; g++) ok &= host[g] == 0xA5;
    printf("%-7s GPU->GPU %11zu B at +%d: %s\n", c->mode, sz, OFFSET,
           ok ? "byte-exact" : "MISMATCH");
    if (!ok) fprintf(stderr, "  rc %d: %s\n", rc, p2p_last_error());
    fails += !ok;
    p2p_dereg(ep, mr);
  }
  /* Throughput: GPU->GPU, then host->host through the same transport.
   * GPU_CHECK_HOST_SIDE=recv|send makes that side's "GPU" buffer host
   * memory, to tell which side limits the GPU path. */
  const char *hs = getenv("GPU_CHECK_HOST_SIDE");
  int host_here = hs && !strcmp(hs, "recv");
  uint8_t *big = host_here ? malloc(BENCH_SIZE) : gpu_alloc(BENCH_SIZE), *hbig = host_alloc(BENCH_SIZE);
  uint64_t mg, mh;
  p2p_reg(ep, big, BENCH_SIZE, &mg);
  p2p_reg(ep, hbig, BENCH_SIZE, &mh);
  memset(hbig, 0, BENCH_SIZE); /* no page faults inside the timing */
  char go;
  oob_recv(fd, &go, 1); /* the sender's buffers are ready too */
  double g = timed_sends(ep, conn, big, mg, 1), h = timed_sends(ep, conn, hbig, mh, 1);
  printf("%-7s bench 256 MiB x %d: GPU->GPU %.2f GB/s, host->host %.2f GB/s, "
         "ratio %.2f\n", c->mode, BENCH_ITERS, g, h, h > 0 ? g / h : 0);
  oob_send(fd, "k", 1);
  p2p_endpoint_destroy(ep);
  return fails ? 1 : 0;
}

static int send_side(const twohost *th, int side, int fd, void *arg) {
  cfg *c = arg;
  setenv("FAKE_TCPX_ADDR", th->addr[side], 1);
  if (gpu_cuda_load(&cuda) != 0) DIE("cuda");
  int dev_id = cuda->ndevices > 1 ? 1 : 0;
  if (gpu_cuda_use_device(cuda, dev_id, NULL) != 0) DIE("cuda device");
  p2p_endpoint *ep = make_ep(dev_id);
  if (!ep) return 1;
  size_t len;
  uint8_t md[P2P_METADATA_MAX];
  oob_recv(fd, &len, sizeof len);
  oob_recv(fd, md, len);
  char ip[64];
  int port, gpu;
  uint64_t conn;
  p2p_parse_metadata(md, len, ip, sizeof ip, &port, &gpu);
  if (p2p_connect(ep, ip, gpu, port, &conn) != P2P_OK) DIE("connect");
  size_t sizes[16];
  int n = sizes_upto(c->max, sizes);
  size_t cap = sizes[n - 1] + OFFSET;
  uint8_t *dev = gpu_alloc(cap), *host = malloc(cap);
  for (int i = 0; i < n; i++) {
    size_t sz = sizes[i];
    uint64_t mr;
    prng_fill(host, sz, sz);
    cuda->cuMemcpyHtoD(gpu_dptr(dev + OFFSET), host, sz);
    cuda->cuCtxSynchronize();
    p2p_reg(ep, dev + OFFSET, sz, &mr);
    if (p2p_send(ep, conn, mr, dev + OFFSET, sz) != P2P_OK) DIE("send %zu", sz);
    p2p_dereg(ep, mr);
  }
  const char *hs = getenv("GPU_CHECK_HOST_SIDE");
  int host_here = hs && !strcmp(hs, "send");
  uint8_t *big = host_here ? malloc(BENCH_SIZE) : gpu_alloc(BENCH_SIZE), *hbig = host_alloc(BENCH_SIZE);
  memset(hbig, 1, BENCH_SIZE);
  uint64_t mg, mh;
  p2p_reg(ep, big, BENCH_SIZE, &mg);
  p2p_reg(ep, hbig, BENCH_SIZE, &mh);
  oob_send(fd, "g", 1);
  timed_sends(ep, conn, big, mg, 0);
  timed_sends(ep, conn, hbig, mh, 0);
  char ack;
  oob_recv(fd, &ack, 1);
  p2p_endpoint_destroy(ep);
  return 0;
}

/* ---- ipc ----------------------------------------------------------------------------- */

static int ipc_recv_side(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side;
  cfg *c = arg;
  if (gpu_cuda_load(&cuda) != 0 || gpu_cuda_use_device(cuda, 0, NULL) != 0)
    DIE("cuda device 0");
  p2p_endpoint *ep = make_ep(0);
  oob_send(fd, "r", 1); /* listening on the local socket */
  int gpu;
  uint64_t conn;
  if (!ep || p2p_accept_local(ep, &gpu, &conn) != P2P_OK) DIE("accept_local");
  size_t sizes[16];
  int n = sizes_upto(c->max, sizes), fails = 0;
  size_t cap = sizes[n - 1] + OFFSET + GUARD;
  uint8_t *dev = gpu_alloc(cap), *host = malloc(cap), *want = malloc(cap);
  for (int i = 0; i < n; i++) {
    size_t sz = sizes[i];
    cuda->cuMemsetD8(gpu_dptr(dev), 0xA5, cap);
    cuda->cuCtxSynchronize();
    int rc = p2p_recv_ipc(ep, conn, dev + OFFSET, sz);
    cuda->cuMemcpyDtoH(host, gpu_dptr(dev), sz + OFFSET + GUARD);
    prng_fill(want, sz, sz);
    int ok = rc == P2P_OK && memcmp(host + OFFSET, want, sz) == 0;
    for (int g = 0; g < GUARD; g++) ok &= host[OFFSET + sz + g] == 0xA5;
    printf("ipc     recv_ipc %11zu B at +%d: %s\n", sz, OFFSET, ok ? "byte-exact" : "MISMATCH");
    fails += !ok;
  }
  /* write_ipc bandwidth target. */
  uint8_t *big = gpu_alloc(BENCH_SIZE), info[P2P_IPC_INFO_SIZE];
  p2p_advertise_ipc(ep, conn, big, BENCH_SIZE, info);
  oob_send(fd, info, sizeof info);
  char ack;
  oob_recv(fd, &ack, 1);
  p2p_endpoint_destroy(ep);
  return fails ? 1 : 0;
}

/* ---- ipc: write_ipc against the copy engine ------------------------------------ */

#define IPC_ROUNDS 5

typedef struct ipc_bench {
  p2p_endpoint *ep;
  uint64_t conn;
  const uint8_t *info; /* the receiver's 256 MiB GPU buffer */
  uint8_t *src;        /* ours, on our GPU */
  uint8_t *ref_dst;    /* on GPU 0, ours: the reference's target */
  gcu_stream stream;   /* the reference's, non-blocking like the library's */
} ipc_bench;

typedef struct ipc_case {
  size_t size;
  int copies; /* per round */
} ipc_case;

/* Seconds for `copies` write_ipc calls; -1 on failure. */
static double time_write_ipc(const ipc_bench *b, size_t size, int copies) {
  uint64_t t0 = clock_ns();
  for (int i = 0; i < copies; i++)
    if (p2p_write_ipc(b->ep, b->conn, b->src, size, b->info) != P2P_OK) return -1;
  return (double)(clock_ns() - t0) / 1e9;
}

/* The same copies straight to the driver, each waited for as write_ipc
 * waits: what the copy engine gives a blocking caller. */
static double time_ref_copies(const ipc_bench *b, size_t size, int copies) {
  uint64_t t0 = clock_ns();
  for (int i = 0; i < copies; i++)
    if (cuda->cuMemcpyDtoDAsync(gpu_dptr(b->ref_dst), gpu_dptr(b->src), size,
                                b->stream) != 0 ||
        cuda->cuStreamSynchronize(b->stream) != 0)
      return -1;
  return (double)(clock_ns() - t0) / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

/* Rounds alternate the two, so drift (clocks, other work on the GPU) hits
 * both alike; the median round drops an outlier. Median seconds per
 * round into *ipc and *ref. */
static int bench_case(const ipc_bench *b, ipc_case k, double *ipc, double *ref) {
  double si[IPC_ROUNDS], sr[IPC_ROUNDS];
  for (int r = 0; r < IPC_ROUNDS; r++) {
    si[r] = time_write_ipc(b, k.size, k.copies);
    sr[r] = time_ref_copies(b, k.size, k.copies);
    if (si[r] <= 0 || sr[r] <= 0) return -1;
  }
  *ipc = median(si, IPC_ROUNDS);
  *ref = median(sr, IPC_ROUNDS);
  return 0;
}

/* The first write_ipc maps the peer's handle (cuIpcOpenMemHandle; cached
 * after): timed on its own, never inside the steady-state figures. */
static int ipc_bench_all(const ipc_bench *b, int dev_id) {
  static const ipc_case cases[] = {{BENCH_SIZE, 10}, {16u << 20, 100}, {1u << 20, 100}};
  double first = time_write_ipc(b, BENCH_SIZE, 1);
  if (first <= 0 || time_ref_copies(b, BENCH_SIZE, 1) <= 0) DIE("write_ipc warm-up");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ipc_case k = cases[i];
    double si, sr;
    if (bench_case(b, k, &si, &sr) != 0) DIE("write_ipc %zu", k.size);
    double bytes = (double)k.size * k.copies;
    printf("ipc     bench write_ipc %3zu MiB x %d, median of %d rounds, GPU %d -> "
           "GPU 0: %.1f GB/s (%.1f us a call), cuMemcpyDtoDAsync+"
           "cuStreamSynchronize %.1f GB/s (%.1f us), ratio %.2f\n",
           k.size >> 20, k.copies, IPC_ROUNDS, dev_id, bytes / si / 1e9,
           si / k.copies * 1e6, bytes / sr / 1e9, sr / k.copies * 1e6, sr / si);
    if (i == 0)
      printf("ipc     bench write_ipc first call (maps the handle): 256 MiB in "
             "%.2f ms, steady state %.2f ms a call; not in the figures\n",
             first * 1e3, si / k.copies * 1e3);
  }
  return 0;
}

static int ipc_send_side(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side;
  cfg *c = arg;
  if (gpu_cuda_load(&cuda) != 0) DIE("cuda");
  /* GPU_IPC_SAME=1: both processes on GPU 0 (the DtoD reference is then
   * the same copy); else GPU 1 -> GPU 0 when there are two. */
  int dev_id = cuda->ndevices > 1 && !getenv("GPU_IPC_SAME") ? 1 : 0;
  if (gpu_cuda_use_device(cuda, dev_id, NULL) != 0) DIE("cuda device");
  p2p_endpoint *ep = make_ep(1); /* index 1: connect_local(0) must not reach itself */
  char r;
  oob_recv(fd, &r, 1);
  uint64_t conn;
  if (!ep || p2p_connect_local(ep, 0, &conn) != P2P_OK) DIE("connect_local");
  size_t sizes[16];
  int n = sizes_upto(c->max, sizes);
  uint8_t *dev = gpu_alloc(sizes[n - 1] + OFFSET), *host = malloc(sizes[n - 1]);
  for (int i = 0; i < n; i++) {
    prng_fill(host, sizes[i], sizes[i]);
    cuda->cuMemcpyHtoD(gpu_dptr(dev + OFFSET), host, sizes[i]);
    cuda->cuCtxSynchronize();
    if (p2p_send_ipc(ep, conn, dev + OFFSET, sizes[i]) != P2P_OK) DIE("send_ipc");
  }
  /* The reference copies into GPU 0, the receiver's GPU (a peer copy when
   * we are on GPU 1), from the same source as write_ipc. */
  uint8_t info[P2P_IPC_INFO_SIZE];
  ipc_bench b = {.ep = ep, .conn = conn, .info = info, .src = gpu_alloc(BENCH_SIZE)};
  gpu_cuda_use_device(cuda, 0, NULL);
  b.ref_dst = gpu_alloc(BENCH_SIZE);
  gpu_cuda_use_device(cuda, dev_id, NULL);
  if (!b.src || !b.ref_dst || cuda->cuStreamCreate(&b.stream, GCU_STREAM_NON_BLOCKING) != 0)
    DIE("bench buffers");
  oob_recv(fd, info, sizeof info);
  int rc = ipc_bench_all(&b, dev_id);
  oob_send(fd, "k", 1);
  p2p_endpoint_destroy(ep);
  return rc;
}

/* The staging ring alone: 256 MiB through 1 MiB slots, each direction. */
static int staging_bench(void) {
  if (gpu_cuda_load(&cuda) != 0 || gpu_cuda_use_device(cuda, 0, NULL) != 0) DIE("cuda");
  gpu_staging *s;
  size_t slot = 1u << 20;
  int nslots = 32;
  if (gpu_staging_open(cuda, 0, slot, nslots, &s) != 0) DIE("staging");
  uint8_t *dev = gpu_alloc(BENCH_SIZE);
  for (int dir = 0; dir < 2; dir++) {
    uint64_t t0 = clock_ns();
    for (size_t off = 0, i = 0; off < BENCH_SIZE; off += slot, i++) {
      int k = (int)(i % (size_t)nslots), done = 0;
      while (!done) gpu_staging_ready(s, k, &done);
      if (dir == 0) gpu_staging_d2h(s, k, dev + off, slot);
      else gpu_staging_h2d(s, k, dev + off, slot);
    }
    for (int k = 0; k < nslots; k++)
      for (int done = 0; !done;) gpu_staging_ready(s, k, &done);
    double gbs = (double)BENCH_SIZE / ((double)(clock_ns() - t0) / 1e9) / 1e9;
    printf("staging ring %s: %.1f GB/s (1 MiB slots, 32 of them)\n",
           dir ? "host->GPU" : "GPU->host", gbs);
  }
  /* The CPU's view of the slots: what a socket copy into/out of them costs. */
  uint8_t *plain = malloc(BENCH_SIZE);
  memset(plain, 1, BENCH_SIZE);
  for (int dir = 0; dir < 2; dir++) {
    uint64_t t0 = clock_ns();
    for (size_t off = 0, i = 0; off < BENCH_SIZE; off += slot, i++) {
      uint8_t *pin = gpu_staging_host(s, (int)(i % (size_t)nslots));
      if (dir == 0) memcpy(plain + off, pin, slot);
      else memcpy(pin, plain + off, slot);
    }
    printf("CPU memcpy %s pinned slots: %.1f GB/s\n", dir ? "into" : "out of",
           (double)BENCH_SIZE / ((double)(clock_ns() - t0) / 1e9) / 1e9);
  }
  uint64_t t0 = clock_ns();
  uint8_t *plain2 = malloc(BENCH_SIZE);
  memcpy(plain2, plain, BENCH_SIZE);
  printf("CPU memcpy malloc->malloc: %.1f GB/s\n",
         (double)BENCH_SIZE / ((double)(clock_ns() - t0) / 1e9) / 1e9);
  gpu_staging_close(s);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "staging")) return staging_bench();
  cfg c = {.mode = argc > 1 ? argv[1] : "staged", .max = 1u << 30};
  const char *plugin = "builtin";
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--max")) c.max = strtoull(argv[i + 1], NULL, 0);
    if (!strcmp(argv[i], "--plugin")) plugin = argv[i + 1];
  }
  setenv("TCPX_P2P_NET_PLUGIN", plugin, 1);
  /* CUDA must not be initialised before fork: only probe for the driver. */
  const char *libname = getenv("TCPX_P2P_CUDA_LIB"); /* the fake driver, in CI */
  void *lib = dlopen(libname && *libname ? libname : "libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    printf("no CUDA here: %s\n", dlerror());
    return 77;
  }
  dlclose(lib);
  int is_ipc = !strcmp(c.mode, "ipc");
  if (is_ipc) setenv("TCPX_P2P_NO_NETNS", "1", 1); /* one host, one network */
  twohost th;
  if (twohost_setup(&th) != 0) return 1;
  twohost_fn fns[2] = {is_ipc ? ipc_recv_side : recv_side,
                       is_ipc ? ipc_send_side : send_side};
  int rc = twohost_run(&th, fns, &c, 600, NULL);
  twohost_teardown(&th);
  printf("%s: %s\n", c.mode, rc == 0 ? "PASS" : "FAIL");
  return rc == 0 ? 0 : 1;
}
