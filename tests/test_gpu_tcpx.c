/* FakeTCPX (tests/plugins/fake_tcpx.c) through the real plugin loader, on
 * a GPU host (skipped, exit 77, without one): host sends, GPU receives
 * landed by gpu_unpack, driven the way the engine must drive TCPX: exact
 * sizes, at most 16 requests per comm, test on the oldest, sizes never
 * read from test, irecvConsumed in order after the copy. Byte-exact. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "cudadrv.h"
#include "net.h"
#include "plugin.h"
#include "twohost.h"
#include "unpack.h"

/* Without the CUDA toolkit at build time the plugin is not built: the
 * test compiles and reports itself skipped. */
#ifndef GPU_FAKE_TCPX_PATH
#define GPU_FAKE_TCPX_MISSING 1
#define GPU_FAKE_TCPX_PATH ""
#endif

#define MIB ((size_t)1 << 20)
#define N 48
#define WINDOW 16

static gpu_cuda *cu;

#define CU(call) CHECK_EQ(gpu_cuda_check(cu, (call), "%s", #call), NET_OK)

typedef struct xfer {
  net_transport *t;
  void *lc, *sc, *rc, *smh, *gmh, *hmh;
  net_dev_handle dh;
  gpu_unpack *u;
  unsigned char *send_buf, *host_dst, *check;
  gcu_dptr gpu_alloc;
  char *gpu_dst;            /* 4 KiB aligned */
  size_t size[N], src_off[N], dst_off[N], region;
  int on_host[N];
  void *sreq[N], *rreq[N];
} xfer;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Sizes TCPX sees: empty, tiny, page edges, the 4 MiB maximum, odd ones;
 * destinations packed at odd offsets; every fifth receive into host memory. */
static void plan(xfer *x) {
  static const size_t fixed[] = {0, 1, 4095, 4096, 4097, 4 * MIB, 12345, 0};
  size_t src = 0, dst = 0;
  uint64_t r = 88172645463325252ull;
  for (int k = 0; k < N; k++) {
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    x->size[k] = k < 8 ? fixed[k] : (size_t)(r % (4 * MIB + 1));
    x->on_host[k] = k % 5 == 2;
    x->src_off[k] = src;
    src += x->size[k];
    dst += (size_t)k % 7; /* odd destination offsets */
    x->dst_off[k] = dst;
    dst += x->size[k];
  }
  x->region = (dst + 4095) & ~(size_t)4095;
}

static int connect_pair(xfer *x) {
  char handle[NET_HANDLE_SIZE];
  CHECK_EQ(net_call(x->t, listen, 0, handle, &x->lc), NET_OK);
  net_dev_handle *dhp = &x->dh;
  x->dh = (net_dev_handle){NCCL_NET_DEVICE_UNPACK, 7, NULL, 0, 0};
  for (int i = 0; i < 1000 && (!x->sc || !x->rc); i++) {
    if (!x->sc) CHECK_EQ(net_call(x->t, connect, 0, handle, &x->sc, NULL), NET_OK);
    if (!x->rc) CHECK_EQ(net_call(x->t, accept, x->lc, &x->rc, &dhp), NET_OK);
  }
  CHECK(x->sc && x->rc);
  CHECK_EQ(x->dh.size, GPU_UNPACK_HANDLE_SIZE);
  CHECK_EQ(x->dh.needsProxyProgress, 1);
  return 0;
}

static int setup(xfer *x) {
  memset(x, 0, sizeof *x);
  plan(x);
  /* A NIC with a PCI path: GPU regMr on one without ([gpu-regmr-pci]) is
   * where real TCPX crashes. Read at init. */
  setenv("FAKE_TCPX_PCI_PATH", "/sys/devices/pci0000:00/0000:00:04.0", 1);
  CHECK_EQ(net_plugin_load(GPU_FAKE_TCPX_PATH, 0, &x->t), NET_OK);
  CHECK_STR_CONTAINS(x->t->name, "FakeTCPX_v7");
  net_props p;
  CHECK_EQ(net_call(x->t, get_properties, 0, &p), NET_OK);
  CHECK_EQ(p.ptr_support, NCCL_PTR_HOST | NCCL_PTR_CUDA);
  CHECK(p.pci_path && p.pci_path[0]);
  CHECK_EQ(p.dev_type, NCCL_NET_DEVICE_UNPACK);
  CHECK_EQ(p.max_recvs, 1);
  CHECK(connect_pair(x) == 0);
  CHECK_EQ(gpu_unpack_open(cu, &x->dh, &x->u), NET_OK);
  size_t total = x->src_off[N - 1] + x->size[N - 1];
  x->send_buf = malloc(total);
  x->host_dst = malloc(x->region);
  x->check = malloc(x->region);
  fill_random(x->send_buf, total, 2024);
  memset(x->host_dst, 0x5a, x->region);
  CU(cu->cuMemAlloc(&x->gpu_alloc, x->region + 4096));
  x->gpu_dst = gpu_vptr((x->gpu_alloc + 4095) & ~(gcu_dptr)4095);
  CU(cu->cuMemsetD8(gpu_dptr(x->gpu_dst), 0x5a, x->region));
  CU(cu->cuCtxSynchronize()); /* before the unpack stream writes there */
  /* GPU memory registers only from a 4 KiB boundary (TCPX checks it). */
  CHECK(net_call(x->t, reg_mr, x->rc, x->gpu_dst + 1, 4096, NCCL_PTR_CUDA,
                 &x->gmh) != NET_OK);
  CHECK_STR_CONTAINS(err_get(), "[gpu-regmr-4k]");
  CHECK_EQ(net_call(x->t, reg_mr, x->rc, x->gpu_dst, x->region, NCCL_PTR_CUDA,
                    &x->gmh), NET_OK);
  CHECK_EQ(net_call(x->t, reg_mr, x->rc, x->host_dst, x->region,
                    NCCL_PTR_HOST, &x->hmh), NET_OK);
  CHECK_EQ(net_call(x->t, reg_mr, x->sc, x->send_buf, total, NCCL_PTR_HOST,
                    &x->smh), NET_OK);
  return 0;
}

static void *dst_of(xfer *x, int k) {
  return (x->on_host[k] ? (char *)x->host_dst : x->gpu_dst) + x->dst_off[k];
}

static int post_recv(xfer *x, int k) {
  void *data = dst_of(x, k);
  size_t size = x->size[k];
  int tag = 0;
  uint64_t kk;
  void *mh = x->on_host[k] ? x->hmh : x->gmh;
  CHECK_EQ(net_call(x->t, irecv, x->rc, 1, &data, &size, &tag, &mh,
                    &x->rreq[k]), NET_OK);
  CHECK(x->rreq[k] != NULL);
  CHECK_EQ(gpu_unpack_post(x->u, &kk), NET_OK);
  CHECK_EQ(kk, (uint64_t)k);
  return 0;
}

/* With 16 receives held, TCPX makes the 17th an error, not "try again". */
static int seventeenth_refused(xfer *x, int k) {
  void *data = dst_of(x, k), *req = NULL, *mh = x->gmh;
  size_t size = 1;
  int tag = 0;
  CHECK(net_call(x->t, irecv, x->rc, 1, &data, &size, &tag, &mh, &req) ==
        NET_EINTERNAL);
  CHECK_STR_CONTAINS(err_get(), "16 requests already in flight");
  return 0;
}

typedef struct progress {
  int sent_posted, sent_done, recv_posted, recv_done, submitted, consumed;
  int refused_checked, order_checked;
} progress;

static int step_sends(xfer *x, progress *g) {
  while (g->sent_posted < N && g->sent_posted - g->sent_done < WINDOW) {
    int k = g->sent_posted++;
    CHECK_EQ(net_call(x->t, isend, x->sc, x->send_buf + x->src_off[k],
                      x->size[k], 0, x->smh, &x->sreq[k]), NET_OK);
    CHECK(x->sreq[k] != NULL);
  }
  int done = 0;
  if (g->sent_done < g->sent_posted) {
    CHECK_EQ(net_call(x->t, test, x->sreq[g->sent_done], &done, NULL), NET_OK);
    if (done) g->sent_done++;
  }
  return 0;
}

static int step_recvs(xfer *x, progress *g) {
  while (g->recv_posted < N && g->recv_posted - g->consumed < WINDOW)
    CHECK(post_recv(x, g->recv_posted++) == 0);
  if (!g->refused_checked && g->recv_posted < N &&
      g->recv_posted - g->consumed == WINDOW) {
    CHECK(seventeenth_refused(x, g->recv_posted) == 0);
    g->refused_checked = 1;
  }
  if (!g->order_checked && g->recv_posted - g->recv_done >= 2) {
    int d = 0; /* only the oldest may be tested */
    CHECK(net_call(x->t, test, x->rreq[g->recv_done + 1], &d, NULL) != NET_OK);
    g->order_checked = 1;
  }
  if (g->recv_done < g->recv_posted) {
    int done = 0;
    size_t sizes[1] = {777};
    CHECK_EQ(net_call(x->t, test, x->rreq[g->recv_done], &done, sizes), NET_OK);
    if (done) {
      CHECK_EQ(sizes[0], 777); /* TCPX never reports sizes */
      g->recv_done++;
    }
  }
  return 0;
}

/* Launch what test reported done (up to 16 per launch), then consume in
 * order what the GPU has finished. */
static int step_unpack(xfer *x, progress *g) {
  if (g->submitted < g->recv_done) {
    int n = g->recv_done - g->submitted;
    if (n > GPU_UNPACK_MAX_BATCH) n = GPU_UNPACK_MAX_BATCH;
    void *dst[GPU_UNPACK_MAX_BATCH];
    for (int i = 0; i < n; i++) dst[i] = dst_of(x, g->submitted + i);
    CHECK_EQ(gpu_unpack_submit_batch(x->u, (uint64_t)g->submitted, n, dst),
             NET_OK);
    g->submitted += n;
  }
  while (g->consumed < g->submitted) {
    int done = 0;
    CHECK_EQ(gpu_unpack_done(x->u, (uint64_t)g->consumed, &done), NET_OK);
    if (!done) break;
    CHECK_EQ(net_call(x->t, irecv_consumed, x->rc, 1, x->rreq[g->consumed]),
             NET_OK);
    g->consumed++;
  }
  return 0;
}

static int verify(xfer *x) {
  CU(cu->cuMemcpyDtoH(x->check, gpu_dptr(x->gpu_dst), x->region));
  size_t at = 0;
  for (int k = 0; k < N; k++) {
    unsigned char *got = x->on_host[k] ? x->host_dst : x->check;
    unsigned char *other = x->on_host[k] ? x->check : x->host_dst;
    for (size_t i = at; i < x->dst_off[k]; i++) /* gaps untouched */
      CHECK(x->check[i] == 0x5a && x->host_dst[i] == 0x5a);
    CHECK(bytes_equal(got + x->dst_off[k], x->send_buf + x->src_off[k],
                      x->size[k], "received bytes"));
    for (size_t i = 0; i < x->size[k]; i++) /* nothing in the other buffer */
      if (other[x->dst_off[k] + i] != 0x5a) CHECK(!"wrote the wrong buffer");
    at = x->dst_off[k] + x->size[k];
  }
  return 0;
}

static void teardown(xfer *x) {
  gpu_unpack_close(x->u);
  net_call(x->t, dereg_mr, x->rc, x->gmh);
  net_call(x->t, dereg_mr, x->rc, x->hmh);
  net_call(x->t, dereg_mr, x->sc, x->smh);
  net_call(x->t, close_send, x->sc);
  net_call(x->t, close_recv, x->rc);
  net_call(x->t, close_listen, x->lc);
  x->t->ops->destroy(x->t);
  cu->cuMemFree(x->gpu_alloc);
  free(x->send_buf);
  free(x->host_dst);
  free(x->check);
}

static int run(const char *frags) {
  setenv("FAKE_TCPX_FRAGS", frags, 1);
  xfer *x = calloc(1, sizeof *x);
  CHECK(setup(x) == 0);
  progress g = {0};
  double t0 = now_s();
  while (g.consumed < N) {
    CHECK(now_s() - t0 < 60);
    CHECK(step_sends(x, &g) == 0);
    CHECK(step_recvs(x, &g) == 0);
    CHECK(step_unpack(x, &g) == 0);
  }
  double secs = now_s() - t0;
  CHECK(g.refused_checked && g.order_checked);
  CHECK(verify(x) == 0);
  size_t bytes = x->src_off[N - 1] + x->size[N - 1];
  printf("RESULT faketcpx_%s %d receives, %zu bytes byte-exact, %.2f GB/s "
         "(loopback TCP + one H2D per receive)\n", frags, N, bytes,
         (double)bytes / secs / 1e9);
  teardown(x);
  free(x);
  return 0;
}

static int test_faketcpx_page_fragments(void) { return run("page"); }
static int test_faketcpx_random_fragments(void) { return run("random"); }

static const check_case cases[] = {
    CHECK_CASE(test_faketcpx_page_fragments),
    CHECK_CASE(test_faketcpx_random_fragments),
};

int main(int argc, char **argv) {
#ifdef GPU_FAKE_TCPX_MISSING
  (void)cases, (void)argc, (void)argv;
  printf("skipped: FakeTCPX not built (no CUDA headers or libcuda stub)\n");
  return 77;
#else
  if (gpu_cuda_load(&cu) != NET_OK || gpu_cuda_use_device(cu, 0, NULL)) {
    printf("skipped: %s\n", err_get());
    return 77;
  }
  return check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
#endif
}
