/* tcpx-p2p bench p2p --gpu: the GPU buffers of a side, and the pinned
 * copy rate the staged path is bounded by. The library loads CUDA at run
 * time; so does this file (through the library's loader), so the tool
 * runs, and refuses --gpu clearly, on machines without a GPU. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_p2p.h"
#include "cudadrv.h"
#include "err.h"
#include "net.h"

#define COPY_MIN_BYTES ((size_t)256 << 20) /* per copy-rate measurement */
#define COPY_MIN_ROUNDS 3

struct bench_gpu {
  gpu_cuda *cuda;
  int device;
  gcu_dptr dptr;       /* the device buffer the endpoint moves */
  unsigned char *host; /* pinned shadow: fill, check, copy-rate source */
  size_t size;
  /* --local: the device-to-device reference (bench_gpu_ref_open) */
  int ref_device;
  gcu_dptr ref_dptr;   /* on ref_device, this process's own */
  gcu_stream ref_stream;
  int ref_peer_access; /* 1: enabled to ref_device, 0: not, -1: same GPU */
};

/* ---- probe (parent, before any side exists) --------------------------------- */

/* CUDA IPC needs memory the driver can export: a small allocation on
 * device 0 and its handle (the fake driver without IPC, or a platform
 * without it, refuses). "" when it works, else why not. */
static void probe_ipc(gpu_cuda *c, char *msg, size_t len) {
  gcu_dptr d = 0;
  gcu_ipc_mem_handle h;
  gcu_result r = GCU_SUCCESS;
  const char *what = "cuMemAlloc";
  if (gpu_cuda_use_device(c, 0, NULL) != NET_OK) {
    snprintf(msg, len, "GPU 0: %s", err_get());
    return;
  }
  if ((r = c->cuMemAlloc(&d, 4096)) == GCU_SUCCESS) {
    what = "cuIpcGetMemHandle";
    r = c->cuIpcGetMemHandle(&h, d);
    c->cuMemFree(d);
  }
  if (r != GCU_SUCCESS) {
    gpu_cuda_check(c, r, "%s", what);
    snprintf(msg, len, "no CUDA IPC: %s", err_get());
  }
}

/* Loading CUDA initialises it, and a process that forks after that cannot
 * use CUDA in its children: the parent asks a throw-away child. */
int bench_gpu_probe(char *why, size_t len, int need_ipc) {
  int fds[2];
  if (pipe(fds) != 0) return snprintf(why, len, "pipe failed"), -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    gpu_cuda *c = NULL;
    char msg[P2P_ERR_MAX] = "";
    if (gpu_cuda_load(&c) != NET_OK)
      snprintf(msg, sizeof msg, "%s", err_get());
    else if (c->ndevices < 1)
      snprintf(msg, sizeof msg, "CUDA driver %d has no device", c->driver_version);
    else if (need_ipc)
      probe_ipc(c, msg, sizeof msg);
    if (write(fds[1], msg, strlen(msg)) < 0) _exit(2);
    _exit(msg[0] ? 1 : 0);
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    return snprintf(why, len, "fork failed"), -1;
  }
  ssize_t n = read(fds[0], why, len - 1);
  why[n > 0 ? n : 0] = '\0';
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {}
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  if (!why[0]) snprintf(why, len, "the CUDA probe died (status 0x%x)", status);
  return -1;
}

/* ---- a side's GPU buffer ------------------------------------------------------ */

static int cuda_fail(bench_gpu *g, gcu_result r, const char *what) {
  gpu_cuda_check(g->cuda, r, "%s", what);
  fprintf(stderr, "bench p2p --gpu: %s\n", err_get());
  return -1;
}

/* Make `device` current (its context in *ctx when asked). */
static int use_device(bench_gpu *g, int device, gcu_ctx *ctx) {
  if (gpu_cuda_use_device(g->cuda, device, ctx) == NET_OK) return 0;
  fprintf(stderr, "bench p2p --gpu: GPU %d: %s\n", device, err_get());
  return -1;
}

int bench_gpu_open(int side, size_t size, bench_gpu **out) {
  bench_gpu *g = calloc(1, sizeof *g);
  *out = NULL;
  if (!g) return -1;
  if (gpu_cuda_load(&g->cuda) != NET_OK || g->cuda->ndevices < 1) {
    fprintf(stderr, "bench p2p --gpu: no CUDA device: %s\n", err_get());
    free(g);
    return -1;
  }
  g->device = side % g->cuda->ndevices; /* two GPUs: one per side */
  g->size = size;
  *out = g;
  if (use_device(g, g->device, NULL) != 0) return -1;
  gcu_result r = g->cuda->cuMemAlloc(&g->dptr, size);
  if (r != GCU_SUCCESS) return cuda_fail(g, r, "cuMemAlloc");
  void *host = NULL;
  r = g->cuda->cuMemHostAlloc(&host, size, 0);
  if (r != GCU_SUCCESS) return cuda_fail(g, r, "cuMemHostAlloc");
  g->host = host;
  return 0;
}

int bench_gpu_device(const bench_gpu *g) { return g->device; }

void *bench_gpu_ptr(const bench_gpu *g) { return gpu_vptr(g->dptr); }

int bench_gpu_fill(bench_gpu *g, size_t len, uint64_t seed) {
  bench_fill(g->host, len, seed);
  gcu_result r = g->cuda->cuMemcpyHtoD(g->dptr, g->host, len);
  return r == GCU_SUCCESS ? 0 : cuda_fail(g, r, "cuMemcpyHtoD (fill)");
}

int bench_gpu_poison(bench_gpu *g, size_t len) {
  gcu_result r = g->cuda->cuMemsetD8(g->dptr, BENCH_POISON, len);
  if (r == GCU_SUCCESS) r = g->cuda->cuCtxSynchronize();
  return r == GCU_SUCCESS ? 0 : cuda_fail(g, r, "cuMemsetD8 (poison)");
}

int bench_gpu_check(bench_gpu *g, size_t len, uint64_t seed, const char *what) {
  memset(g->host, 0, len); /* a failed copy must not pass as the pattern */
  gcu_result r = g->cuda->cuMemcpyDtoH(g->host, g->dptr, len);
  if (r != GCU_SUCCESS) return cuda_fail(g, r, "cuMemcpyDtoH (check)"), 0;
  return bench_check(g->host, len, seed, what);
}

/* One direction: enough copies of `len` to move COPY_MIN_BYTES. */
static double copy_gbps(bench_gpu *g, size_t len, int h2d) {
  long rounds = (long)(COPY_MIN_BYTES / len);
  if (rounds < COPY_MIN_ROUNDS) rounds = COPY_MIN_ROUNDS;
  gcu_result r = h2d ? g->cuda->cuMemcpyHtoD(g->dptr, g->host, len)  /* warm */
                     : g->cuda->cuMemcpyDtoH(g->host, g->dptr, len);
  double t0 = bench_now();
  for (long i = 0; i < rounds && r == GCU_SUCCESS; i++)
    r = h2d ? g->cuda->cuMemcpyHtoD(g->dptr, g->host, len)
            : g->cuda->cuMemcpyDtoH(g->host, g->dptr, len);
  if (r == GCU_SUCCESS) r = g->cuda->cuCtxSynchronize();
  if (r != GCU_SUCCESS) return cuda_fail(g, r, h2d ? "H2D rate" : "D2H rate"), -1;
  return bench_gbps((double)len * (double)rounds, bench_now() - t0);
}

void bench_gpu_copy_rates(bench_gpu *g, size_t len, double *h2d, double *d2h) {
  *h2d = copy_gbps(g, len, 1);
  *d2h = copy_gbps(g, len, 0);
}

/* ---- --local: the device-to-device reference ---------------------------------- */

int bench_gpu_count(const bench_gpu *g) { return g->cuda->ndevices; }

#define PEER_ACCESS_ALREADY_ENABLED 704 /* CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED */

/* The IPC path opens the peer's memory with lazy peer access, so a copy
 * between two GPUs goes over their direct link; without peer access the
 * driver's own copy between them is staged through the host (an order of
 * magnitude slower on NVLink machines), a reference that flatters IPC.
 * Enable it from this side's context to the reference's GPU where the
 * driver offers it (looked up here: the library's loader does not need
 * it); 1 when it is on. */
static int enable_peer_access(bench_gpu *g, gcu_ctx peer) {
  typedef gcu_result (*enable_fn)(gcu_ctx peer, unsigned int flags);
  enable_fn enable = (enable_fn)dlsym(g->cuda->lib, "cuCtxEnablePeerAccess");
  if (!enable) return 0;
  gcu_result r = enable(peer, 0);
  return r == GCU_SUCCESS || r == PEER_ACCESS_ALREADY_ENABLED;
}

/* The reference's buffer lives on ref_device (the peer's GPU: the copy
 * crosses the same GPUs as the IPC one) but belongs to this process; its
 * stream is non-blocking on this side's GPU, like the library's IPC
 * stream. */
int bench_gpu_ref_open(bench_gpu *g, int ref_device) {
  gpu_cuda *c = g->cuda;
  gcu_ctx peer = NULL;
  g->ref_device = ref_device;
  if (use_device(g, ref_device, &peer) != 0) return -1;
  gcu_result r = c->cuMemAlloc(&g->ref_dptr, g->size);
  if (use_device(g, g->device, NULL) != 0) return -1;
  if (r != GCU_SUCCESS) return cuda_fail(g, r, "cuMemAlloc (reference buffer)");
  g->ref_peer_access = ref_device == g->device ? -1 : enable_peer_access(g, peer);
  /* The pattern too: a read's reference copies it into the side's buffer,
   * which must keep the pattern for the ops after it. */
  r = c->cuMemcpyDtoD(g->ref_dptr, g->dptr, g->size);
  if (r == GCU_SUCCESS) r = c->cuCtxSynchronize();
  if (r != GCU_SUCCESS) return cuda_fail(g, r, "cuMemcpyDtoD (reference buffer)");
  r = c->cuStreamCreate(&g->ref_stream, GCU_STREAM_NON_BLOCKING);
  return r == GCU_SUCCESS ? 0 : cuda_fail(g, r, "cuStreamCreate (reference)");
}

int bench_gpu_ref_peer_access(const bench_gpu *g) { return g->ref_peer_access; }

/* One copy of len bytes between the side's buffer and the reference's,
 * waited for as a blocking IPC call waits for its own. */
int bench_gpu_ref_copy(bench_gpu *g, size_t len, int to_ref) {
  gpu_cuda *c = g->cuda;
  gcu_dptr dst = to_ref ? g->ref_dptr : g->dptr;
  gcu_dptr src = to_ref ? g->dptr : g->ref_dptr;
  gcu_result r = c->cuMemcpyDtoDAsync(dst, src, len, g->ref_stream);
  if (r == GCU_SUCCESS) r = c->cuStreamSynchronize(g->ref_stream);
  return r == GCU_SUCCESS ? 0 : cuda_fail(g, r, "cuMemcpyDtoDAsync (reference)");
}

void bench_gpu_close(bench_gpu *g) {
  if (!g) return;
  if (g->ref_stream) g->cuda->cuStreamDestroy(g->ref_stream);
  if (g->ref_dptr) g->cuda->cuMemFree(g->ref_dptr);
  if (g->dptr) g->cuda->cuMemFree(g->dptr);
  if (g->host) g->cuda->cuMemFreeHost(g->host);
  free(g);
}
