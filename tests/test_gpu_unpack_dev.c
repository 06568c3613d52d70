/* The device-unpack kernel on a real GPU (skipped, exit 77, without one):
 * 64 receives of 4 MiB in shuffled 4 KiB fragments, byte-exact against
 * the host reference and timed against cuMemcpyDtoD of the same bytes;
 * every alignment of fragment and destination; the submit/done life of
 * receives. Prints "RESULT name value unit" lines for scripts/gpu-check. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cudadrv.h"
#include "net.h"
#include "twohost.h"
#include "unpack.h"

#define MIB ((size_t)1 << 20)
#define RECV_BYTES (4 * MIB)
#define RECEIVES 64
#define PAGES_PER_SLOT (RECV_BYTES / GPU_UNPACK_PAGE)
#define BOUNCE_BYTES (GPU_UNPACK_SLOTS * RECV_BYTES)
#define REPS 5

static gpu_cuda *cu;

#define CU(call) CHECK_EQ(gpu_cuda_check(cu, (call), "%s", #call), NET_OK)

/* A synchronous copy from pageable memory may return before its DMA has
 * landed, and nothing orders it with our non-blocking streams: wait. */
#define UPLOAD(dst, src, n)                        \
  do {                                             \
    CU(cu->cuMemcpyHtoD((dst), (src), (n)));       \
    CU(cu->cuCtxSynchronize());                    \
  } while (0)

/* A stand-in for what an UNPACK plugin's accept returns: meta in mapped
 * pinned memory, a GPU bounce buffer, the 24-byte target in GPU memory. */
typedef struct fake_comm {
  gpu_unpack_meta *meta;
  gcu_dptr bounce, target;
  unsigned char *image; /* host copy of the bounce buffer */
  net_dev_handle dh;
  gpu_unpack *u;
} fake_comm;

static int fake_open(fake_comm *f, size_t bounce_bytes) {
  void *meta = NULL;
  gcu_dptr meta_dev;
  memset(f, 0, sizeof *f);
  CU(cu->cuMemHostAlloc(&meta, sizeof *f->meta, GCU_MEMHOSTALLOC_DEVICEMAP |
                                                    GCU_MEMHOSTALLOC_PORTABLE));
  f->meta = meta;
  memset(f->meta, 0, sizeof *f->meta);
  CU(cu->cuMemHostGetDevicePointer(&meta_dev, meta, 0));
  CU(cu->cuMemAlloc(&f->bounce, bounce_bytes));
  CU(cu->cuMemAlloc(&f->target, sizeof(gpu_unpack_handle)));
  gpu_unpack_handle t = {gpu_vptr(meta_dev), gpu_vptr(f->bounce), UINT64_MAX};
  UPLOAD(f->target, &t, sizeof t);
  f->image = malloc(bounce_bytes);
  CHECK(f->image != NULL);
  f->dh = (net_dev_handle){NCCL_NET_DEVICE_UNPACK, 7, gpu_vptr(f->target),
                           sizeof t, 1};
  CHECK_EQ(gpu_unpack_open(cu, &f->dh, &f->u), NET_OK);
  CHECK(gpu_unpack_target(f->u)->bounce_buf == gpu_vptr(f->bounce));
  CHECK(gpu_unpack_cnt_on_host(f->u)); /* meta is cuMemHostAlloc'ed */
  return 0;
}

static void fake_close(fake_comm *f) {
  gpu_unpack_close(f->u);
  cu->cuMemFree(f->target);
  cu->cuMemFree(f->bounce);
  cu->cuMemFreeHost(f->meta);
  free(f->image);
}

/* ---- 64 x 4 MiB, timed --------------------------------------------------- */

typedef struct bench {
  fake_comm f;
  unsigned char *data[GPU_UNPACK_SLOTS]; /* what each slot's receive holds */
  unsigned char *check;
  gcu_dptr dst, src;
  gcu_event t0, t1;
} bench;

static int bench_setup(bench *b) {
  CHECK(fake_open(&b->f, BOUNCE_BYTES) == 0);
  uint32_t *pages = malloc(sizeof(uint32_t) * GPU_UNPACK_SLOTS * PAGES_PER_SLOT);
  gpu_unpack_shuffle_pages(pages, GPU_UNPACK_SLOTS * PAGES_PER_SLOT, 7);
  for (int s = 0; s < GPU_UNPACK_SLOTS; s++) {
    b->data[s] = malloc(RECV_BYTES);
    fill_random(b->data[s], RECV_BYTES, 1000 + (unsigned)s);
    CHECK_EQ(gpu_unpack_scatter(b->f.meta, s, b->data[s], RECV_BYTES,
                                b->f.image, BOUNCE_BYTES,
                                pages + (size_t)s * PAGES_PER_SLOT,
                                PAGES_PER_SLOT, GPU_SCATTER_PAGES, 50 + s),
             NET_OK);
    CHECK_EQ(b->f.meta->cnt[s], PAGES_PER_SLOT);
  }
  free(pages);
  UPLOAD(b->f.bounce, b->f.image, BOUNCE_BYTES);
  CU(cu->cuMemAlloc(&b->dst, RECEIVES * RECV_BYTES));
  CU(cu->cuMemAlloc(&b->src, RECEIVES * RECV_BYTES));
  CU(cu->cuEventCreate(&b->t0, GCU_EVENT_DEFAULT));
  CU(cu->cuEventCreate(&b->t1, GCU_EVENT_DEFAULT));
  b->check = malloc(RECEIVES * RECV_BYTES);
  CHECK(b->check != NULL);
  return 0;
}

/* The host reference must reproduce every slot's data from the image. */
static int bench_reference(bench *b) {
  unsigned char *out = malloc(RECV_BYTES);
  for (int s = 0; s < GPU_UNPACK_SLOTS; s++) {
    CHECK_EQ(gpu_unpack_host(b->f.meta, s, b->f.image, BOUNCE_BYTES, out,
                             RECV_BYTES, NULL), NET_OK);
    CHECK(bytes_equal(out, b->data[s], RECV_BYTES, "host reference"));
  }
  free(out);
  return 0;
}

/* Receive k lands at dst + k * 4 MiB from slot k % 16. */
static int launch_all(bench *b, int per_launch) {
  for (int k = 0; k < RECEIVES; k += per_launch) {
    int slots[GPU_UNPACK_MAX_BATCH];
    void *dst[GPU_UNPACK_MAX_BATCH];
    for (int i = 0; i < per_launch; i++) {
      slots[i] = gpu_unpack_slot((uint64_t)(k + i));
      dst[i] = gpu_vptr(b->dst + (size_t)(k + i) * RECV_BYTES);
    }
    CHECK_EQ(gpu_unpack_launch(b->f.u, slots, dst, per_launch), NET_OK);
  }
  return 0;
}

static int verify_dst(bench *b, const char *what) {
  CU(cu->cuMemcpyDtoH(b->check, b->dst, RECEIVES * RECV_BYTES));
  for (int k = 0; k < RECEIVES; k++)
    if (!bytes_equal(b->check + (size_t)k * RECV_BYTES,
                     b->data[k % GPU_UNPACK_SLOTS], RECV_BYTES, what)) {
      fprintf(stderr, "  receive %d wrong (%s)\n", k, what);
      return 1;
    }
  return 0;
}

/* Best of REPS, in GB/s of receive bytes (256 MiB per rep). per_launch 0
 * means the cuMemcpyDtoD reference. */
static int time_variant(bench *b, int per_launch, double *gbps) {
  gcu_stream st = gpu_unpack_stream(b->f.u);
  float best = 1e30f;
  for (int rep = 0; rep <= REPS; rep++) { /* rep 0 warms up */
    CU(cu->cuEventRecord(b->t0, st));
    if (per_launch)
      CHECK(launch_all(b, per_launch) == 0);
    else
      CU(cu->cuMemcpyDtoDAsync(b->dst, b->src, RECEIVES * RECV_BYTES, st));
    CU(cu->cuEventRecord(b->t1, st));
    CU(cu->cuEventSynchronize(b->t1));
    float ms = 0;
    CU(cu->cuEventElapsedTime(&ms, b->t0, b->t1));
    if (rep > 0 && ms < best) best = ms;
  }
  *gbps = (double)(RECEIVES * RECV_BYTES) / (best * 1e-3) / 1e9;
  return 0;
}

static int test_unpack_64x4MiB_vs_memcpy(void) {
  bench b;
  CHECK(bench_setup(&b) == 0);
  CHECK(bench_reference(&b) == 0);
  double batched = 0, single, memcpy_gbps, gbps;
  /* {descriptors per warp (0 = default), kernel reads cnt}; the last is
   * the default configuration. */
  static const unsigned sweep[][2] = {
      {0, 1}, {1, 0}, {2, 0}, {4, 0}, {8, 0}, {0, 0}};
  for (size_t i = 0; i < sizeof sweep / sizeof sweep[0]; i++) {
    CHECK_EQ(gpu_unpack_tune(b.f.u, sweep[i][0], (int)sweep[i][1]), NET_OK);
    CU(cu->cuMemsetD8(b.dst, 0, RECEIVES * RECV_BYTES));
    CU(cu->cuCtxSynchronize());
    CHECK(time_variant(&b, 16, &gbps) == 0);
    CHECK(verify_dst(&b, "16 receives per launch") == 0);
    printf("RESULT unpack_16_per_launch_%u_per_warp_cnt_on_%s %.0f GB/s\n",
           sweep[i][0], sweep[i][1] ? "gpu" : "host", gbps);
    batched = gbps;
  }
  CU(cu->cuMemsetD8(b.dst, 0, RECEIVES * RECV_BYTES));
  CU(cu->cuCtxSynchronize());
  CHECK(time_variant(&b, 1, &single) == 0);
  CHECK(verify_dst(&b, "1 receive per launch") == 0);
  CHECK(time_variant(&b, 0, &memcpy_gbps) == 0);
  printf("RESULT unpack_16_per_launch %.0f GB/s\n", batched);
  printf("RESULT unpack_1_per_launch %.0f GB/s\n", single);
  printf("RESULT memcpy_dtod_256MiB %.0f GB/s\n", memcpy_gbps);
  printf("RESULT ratio_batched_vs_memcpy %.2f x (goal >= 0.80: %s)\n",
         batched / memcpy_gbps, batched / memcpy_gbps >= 0.8 ? "met" : "NOT met");
  printf("RESULT ratio_single_vs_memcpy %.2f x\n", single / memcpy_gbps);
  cu->cuEventDestroy(b.t0);
  cu->cuEventDestroy(b.t1);
  cu->cuMemFree(b.dst);
  cu->cuMemFree(b.src);
  for (int s = 0; s < GPU_UNPACK_SLOTS; s++) free(b.data[s]);
  free(b.check);
  fake_close(&b.f);
  return 0;
}

/* ---- every alignment, through post/submit/done ----------------------------- */

#define UA_PAGES 16384 /* 64 MiB bounce: 1024 pages per slot */
#define UA_DST (8 * MIB)
#define UA_GUARD 64

/* Receives of many lengths into destinations at every offset mod 16,
 * fragments of random length at random page offsets; the whole buffer,
 * guards included, must equal the host reference's result. */
static int unaligned_fragments(int device_cnt) {
  static const size_t lens[] = {1, 3, 15, 16, 17, 31, 4095, 4096, 4097,
                                65535, 100003, 1048573, 1572869};
  enum { N = sizeof lens / sizeof lens[0] };
  fake_comm f;
  CHECK(fake_open(&f, (size_t)UA_PAGES * GPU_UNPACK_PAGE) == 0);
  uint32_t *pages = malloc(sizeof(uint32_t) * UA_PAGES);
  gpu_unpack_shuffle_pages(pages, UA_PAGES, 99);
  unsigned char *want = malloc(UA_DST), *got = malloc(UA_DST);
  fill_random(want, UA_DST, 4242); /* the destination's prior contents */
  gcu_dptr dst;
  CU(cu->cuMemAlloc(&dst, UA_DST));
  UPLOAD(dst, want, UA_DST);
  size_t pos = 0, per_slot = UA_PAGES / GPU_UNPACK_SLOTS;
  void *dsts[N];
  for (int k = 0; k < N; k++) {
    uint64_t kk;
    CHECK_EQ(gpu_unpack_post(f.u, &kk), NET_OK);
    CHECK_EQ(kk, (uint64_t)k);
    int slot = gpu_unpack_slot(kk);
    unsigned char *data = malloc(lens[k]);
    fill_random(data, lens[k], 7000 + (unsigned)k);
    pos += UA_GUARD + (size_t)k % 16; /* offsets 0..15 mod 16 */
    CHECK(pos + lens[k] <= UA_DST);
    CHECK_EQ(gpu_unpack_scatter(f.meta, slot, data, lens[k], f.image,
                                (size_t)UA_PAGES * GPU_UNPACK_PAGE,
                                pages + (size_t)slot * per_slot, per_slot,
                                GPU_SCATTER_RANDOM, 300 + k), NET_OK);
    CHECK_EQ(gpu_unpack_host(f.meta, slot, f.image,
                             (size_t)UA_PAGES * GPU_UNPACK_PAGE, want + pos,
                             lens[k], NULL), NET_OK);
    dsts[k] = gpu_vptr(dst + pos);
    pos += lens[k];
    free(data);
  }
  UPLOAD(f.bounce, f.image, (size_t)UA_PAGES * GPU_UNPACK_PAGE);
  CHECK_EQ(gpu_unpack_tune(f.u, 0, device_cnt), NET_OK);
  CHECK_EQ(gpu_unpack_submit(f.u, 0, dsts[0]), NET_OK);   /* one alone */
  CHECK_EQ(gpu_unpack_submit(f.u, 2, dsts[2]), NET_EUSAGE); /* out of order */
  CHECK_EQ(gpu_unpack_submit_batch(f.u, 1, N - 1, dsts + 1), NET_OK);
  int done = 0;
  for (long spin = 0; !done && spin < 100000000L; spin++)
    CHECK_EQ(gpu_unpack_done(f.u, N - 1, &done), NET_OK);
  CHECK(done);
  CHECK_EQ(gpu_unpack_done(f.u, 0, &done), NET_OK);
  CHECK(done); /* in order: the last done means all done */
  CU(cu->cuMemcpyDtoH(got, dst, UA_DST));
  CHECK(bytes_equal(got, want, UA_DST, "unaligned receives and guards"));
  printf("RESULT unaligned_receives_cnt_on_%s %d receives, %zu bytes "
         "byte-exact\n", device_cnt ? "gpu" : "host", N, pos);
  cu->cuMemFree(dst);
  free(pages);
  free(want);
  free(got);
  fake_close(&f);
  return 0;
}

static int test_unpack_unaligned_fragments(void) {
  return unaligned_fragments(0);
}

static int test_unpack_unaligned_fragments_cnt_on_gpu(void) {
  return unaligned_fragments(1);
}

static const check_case cases[] = {
    CHECK_CASE(test_unpack_unaligned_fragments),
    CHECK_CASE(test_unpack_unaligned_fragments_cnt_on_gpu),
    CHECK_CASE(test_unpack_64x4MiB_vs_memcpy),
};

int main(int argc, char **argv) {
  if (gpu_cuda_load(&cu) != NET_OK) {
    printf("skipped: %s\n", err_get());
    return 77;
  }
  if (gpu_cuda_use_device(cu, 0, NULL) != NET_OK) {
    printf("skipped: %s\n", err_get());
    return 77;
  }
  size_t size;
  if (!gpu_unpack_image(&size)) {
    printf("FAIL: unpack kernel not built\n");
    return 1;
  }
  return check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
}
