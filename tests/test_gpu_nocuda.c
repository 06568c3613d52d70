/* The GPU layer on a host without a GPU (CI): CUDA loading fails cleanly
 * and late, every pointer is host memory, the unpack kernel is embedded,
 * and the host reference of the unpack walk and the receive numbering
 * behave as TCPX's receive side requires. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cudadrv.h"
#include "net.h"
#include "twohost.h"
#include "unpack.h"

#define MIB (1024 * 1024)
#define BOUNCE_PAGES 4096 /* 16 MiB */

static const char *expected_lib = "libcuda.so.1";

/* On a GPU host, point the loader at a library that cannot exist, so the
 * "no driver" path is tested everywhere. Must run before any load. */
static void hide_real_driver(void) {
  const char *env = getenv("TCPX_P2P_CUDA_LIB");
  if (env && *env) {
    expected_lib = env;
    return;
  }
  void *real = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!real) return;
  dlclose(real);
  expected_lib = "libcuda-absent-for-test.so.1";
  setenv("TCPX_P2P_CUDA_LIB", expected_lib, 1);
}

static int test_load_fails_without_driver(void) {
  gpu_cuda *c = (gpu_cuda *)1;
  CHECK_EQ(gpu_cuda_load(&c), NET_ECUDA);
  CHECK(c == NULL);
  CHECK_STR_CONTAINS(err_get(), "no CUDA: ");
  CHECK_STR_CONTAINS(err_get(), expected_lib);
  CHECK_STR_CONTAINS(err_get(), "not found (NVIDIA driver missing)");
  err_clear();
  CHECK_EQ(gpu_cuda_load(&c), NET_ECUDA); /* same answer, same text */
  CHECK_STR_CONTAINS(err_get(), "NVIDIA driver missing");
  return 0;
}

static int test_classify_is_host_without_cuda(void) {
  int stack_var = 0, kind = -1, device = 7;
  void *heap = malloc(64);
  const void *ptrs[] = {heap, &stack_var, NULL, (void *)(uintptr_t)0x7f0000001000ull};
  for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) {
    CHECK_EQ(gpu_ptr_classify(ptrs[i], &kind, &device), NET_OK);
    CHECK_EQ(kind, GPU_MEM_HOST);
    CHECK_EQ(device, -1);
  }
  free(heap);
  return 0;
}

static int test_kernel_embedded(void) {
  size_t size = 123;
  const unsigned char *image = gpu_unpack_image(&size);
#if P2P_EXPECT_KERNEL
  CHECK(image != NULL);
  CHECK(size > 1024);
  static const unsigned char fatbin_magic[4] = {0x50, 0xed, 0x55, 0xba};
  CHECK(memcmp(image, fatbin_magic, 4) == 0);
#else
  CHECK(image == NULL);
  CHECK_EQ(size, 0);
#endif
  return 0;
}

static int test_unpack_open_checks_handle_first(void) {
  gpu_unpack *u = (gpu_unpack *)1;
  CHECK_EQ(gpu_unpack_open(NULL, NULL, &u), NET_EINVAL);
  CHECK(u == NULL);
  CHECK_STR_CONTAINS(err_get(), "no device handle");
  net_dev_handle dh = {NCCL_NET_DEVICE_HOST, 7, (void *)0x1000, 24, 1};
  CHECK_EQ(gpu_unpack_open(NULL, &dh, &u), NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "type 0 version 7");
  dh.netDeviceType = NCCL_NET_DEVICE_UNPACK;
  dh.netDeviceVersion = 6;
  CHECK_EQ(gpu_unpack_open(NULL, &dh, &u), NET_EINVAL);
  dh.netDeviceVersion = 7;
  dh.handle = NULL;
  CHECK_EQ(gpu_unpack_open(NULL, &dh, &u), NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "not filled by the plugin");
  return 0;
}

/* ---- host reference walk ---------------------------------------------- */

typedef struct layout {
  gpu_unpack_meta *meta;
  unsigned char *bounce;
  uint32_t pages[BOUNCE_PAGES];
} layout;

static int layout_init(layout *l, uint64_t seed) {
  l->meta = calloc(1, sizeof *l->meta);
  l->bounce = malloc((size_t)BOUNCE_PAGES * GPU_UNPACK_PAGE);
  if (!l->meta || !l->bounce) return -1;
  fill_random(l->bounce, (size_t)BOUNCE_PAGES * GPU_UNPACK_PAGE, seed);
  gpu_unpack_shuffle_pages(l->pages, BOUNCE_PAGES, seed);
  return 0;
}

static void layout_free(layout *l) {
  free(l->meta);
  free(l->bounce);
}

/* Slot `slot` gets pages [slot*256, slot*256+256) of the shuffled list:
 * up to 1 MiB in 4 KiB fragments, disjoint from the other slots. */
static int scatter_into(layout *l, int slot, const void *data, size_t len,
                        int mode, uint64_t seed) {
  size_t per_slot = BOUNCE_PAGES / GPU_UNPACK_SLOTS;
  return gpu_unpack_scatter(l->meta, slot, data, len, l->bounce,
                            (size_t)BOUNCE_PAGES * GPU_UNPACK_PAGE,
                            l->pages + (size_t)slot * per_slot, per_slot, mode,
                            seed);
}

static int descriptors_shuffled(const gpu_unpack_meta *m, int slot) {
  for (uint64_t i = 1; i < m->cnt[slot]; i++)
    if (m->mem[slot][i].dst_off < m->mem[slot][i - 1].dst_off) return 1;
  return 0;
}

static int test_host_walk_pages(void) {
  layout l;
  CHECK(layout_init(&l, 11) == 0);
  size_t len = 1 * MIB;
  unsigned char *data = malloc(len), *dst = calloc(1, len);
  fill_random(data, len, 12);
  CHECK_EQ(scatter_into(&l, 3, data, len, GPU_SCATTER_PAGES, 13), NET_OK);
  CHECK_EQ(l.meta->cnt[3], len / GPU_UNPACK_PAGE);
  CHECK(descriptors_shuffled(l.meta, 3));
  for (uint64_t i = 0; i < l.meta->cnt[3]; i++) {
    CHECK_EQ(l.meta->mem[3][i].len, GPU_UNPACK_PAGE);
    CHECK_EQ(l.meta->mem[3][i].src_off % GPU_UNPACK_PAGE, 0);
  }
  size_t copied = 0;
  CHECK_EQ(gpu_unpack_host(l.meta, 3, l.bounce,
                           (size_t)BOUNCE_PAGES * GPU_UNPACK_PAGE, dst, len,
                           &copied), NET_OK);
  CHECK_EQ(copied, len);
  CHECK(bytes_equal(dst, data, len, "unpacked pages"));
  free(data);
  free(dst);
  layout_free(&l);
  return 0;
}

/* Random fragment lengths and page offsets, odd total lengths, an odd
 * destination offset; bytes outside the receive stay untouched. */
static int test_host_walk_random_unaligned(void) {
  static const size_t lens[] = {1, 15, 16, 17, 4095, 4097, 65536 + 13,
                                300001};
  layout l;
  CHECK(layout_init(&l, 21) == 0);
  for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++) {
    size_t len = lens[t], pad = 7;
    unsigned char *data = malloc(len);
    unsigned char *dst = malloc(len + 2 * pad), *want = malloc(len + 2 * pad);
    fill_random(data, len, 100 + t);
    memset(dst, 0xab, len + 2 * pad);
    memcpy(want, dst, len + 2 * pad);
    memcpy(want + pad, data, len);
    int slot = (int)(t % GPU_UNPACK_SLOTS);
    CHECK_EQ(scatter_into(&l, slot, data, len, GPU_SCATTER_RANDOM, 200 + t),
             NET_OK);
    CHECK_EQ(gpu_unpack_host(l.meta, slot, l.bounce,
                             (size_t)BOUNCE_PAGES * GPU_UNPACK_PAGE, dst + pad,
                             len + pad, NULL), NET_OK);
    CHECK(bytes_equal(dst, want, len + 2 * pad, "unaligned unpack"));
    free(data);
    free(dst);
    free(want);
  }
  layout_free(&l);
  return 0;
}

static int test_host_walk_rejects_bad_descriptors(void) {
  gpu_unpack_meta *m = calloc(1, sizeof *m);
  unsigned char bounce[8192] = {0}, dst[4096];
  m->cnt[5] = GPU_UNPACK_MAX_FRAGS + 1;
  CHECK_EQ(gpu_unpack_host(m, 5, bounce, sizeof bounce, dst, sizeof dst, NULL),
           NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "exceeds 2048");
  m->cnt[5] = 1;
  m->mem[5][0] = (gpu_load_meta){8000, 200, 0};
  CHECK_EQ(gpu_unpack_host(m, 5, bounce, sizeof bounce, dst, sizeof dst, NULL),
           NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "outside");
  m->mem[5][0] = (gpu_load_meta){0, 200, 4000};
  CHECK_EQ(gpu_unpack_host(m, 5, bounce, sizeof bounce, dst, sizeof dst, NULL),
           NET_EINVAL);
  CHECK_EQ(gpu_unpack_host(m, 16, bounce, sizeof bounce, dst, sizeof dst, NULL),
           NET_EINVAL);
  free(m);
  return 0;
}

static int test_scatter_refuses_more_than_2048_fragments(void) {
  layout l;
  CHECK(layout_init(&l, 31) == 0);
  size_t len = (size_t)(GPU_UNPACK_MAX_FRAGS + 1) * GPU_UNPACK_PAGE;
  unsigned char *data = calloc(1, len);
  CHECK_EQ(gpu_unpack_scatter(l.meta, 0, data, len, l.bounce,
                              (size_t)BOUNCE_PAGES * GPU_UNPACK_PAGE, l.pages,
                              BOUNCE_PAGES, GPU_SCATTER_PAGES, 1), NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "fragments");
  free(data);
  layout_free(&l);
  return 0;
}

/* ---- receive numbering ------------------------------------------------- */

/* 50 receives, every seventh empty, through one comm whose 16 meta slots
 * are reused: each receive is found at slot k % 16, with its own data. */
static int test_slots_follow_every_receive(void) {
  layout l;
  CHECK(layout_init(&l, 41) == 0);
  gpu_unpack_seq s;
  gpu_unpack_seq_init(&s);
  enum { RECEIVES = 50, LEN = 20000 };
  unsigned char data[LEN], dst[LEN];
  for (uint64_t want = 0; want < RECEIVES; want++) {
    uint64_t k;
    CHECK_EQ(gpu_unpack_seq_post(&s, &k), NET_OK);
    CHECK_EQ(k, want);
    size_t len = k % 7 == 0 ? 0 : LEN - k * 13;
    fill_random(data, len, 500 + k);
    CHECK_EQ(scatter_into(&l, gpu_unpack_slot(k), data, len,
                          GPU_SCATTER_RANDOM, k), NET_OK);
    if (len == 0) CHECK_EQ(l.meta->cnt[gpu_unpack_slot(k)], 0);
    CHECK_EQ(gpu_unpack_seq_check_submit(&s, k, 1), NET_OK);
    gpu_unpack_seq_submitted(&s, k, 1);
    memset(dst, 0, sizeof dst);
    size_t copied = 1;
    CHECK_EQ(gpu_unpack_host(l.meta, gpu_unpack_slot(k), l.bounce,
                             (size_t)BOUNCE_PAGES * GPU_UNPACK_PAGE, dst,
                             sizeof dst, &copied), NET_OK);
    CHECK_EQ(copied, len);
    CHECK(bytes_equal(dst, data, len, "receive k"));
    s.completed = k + 1; /* its copy finished */
  }
  CHECK_EQ(gpu_unpack_slot(16), 0);
  CHECK_EQ(gpu_unpack_slot(49), 1);
  layout_free(&l);
  return 0;
}

static int test_seventeenth_outstanding_receive_refused(void) {
  gpu_unpack_seq s;
  gpu_unpack_seq_init(&s);
  uint64_t k;
  for (int i = 0; i < GPU_UNPACK_SLOTS; i++)
    CHECK_EQ(gpu_unpack_seq_post(&s, &k), NET_OK);
  CHECK_EQ(gpu_unpack_seq_post(&s, &k), NET_EUSAGE);
  CHECK_STR_CONTAINS(err_get(), "slots are all held");
  CHECK_EQ(gpu_unpack_seq_check_submit(&s, 0, 16), NET_OK);
  gpu_unpack_seq_submitted(&s, 0, 16);
  s.completed = 1; /* receive 0 finished: its slot is free again */
  CHECK_EQ(gpu_unpack_seq_post(&s, &k), NET_OK);
  CHECK_EQ(k, 16);
  CHECK_EQ(gpu_unpack_slot(k), 0);
  return 0;
}

static int test_submit_order_and_events(void) {
  gpu_unpack_seq s;
  gpu_unpack_seq_init(&s);
  uint64_t k, j = 99;
  for (int i = 0; i < 6; i++) CHECK_EQ(gpu_unpack_seq_post(&s, &k), NET_OK);
  CHECK_EQ(gpu_unpack_seq_next_event(&s, &j), 0);
  CHECK_EQ(gpu_unpack_seq_check_submit(&s, 1, 1), NET_EUSAGE); /* skips 0 */
  CHECK_EQ(gpu_unpack_seq_check_submit(&s, 0, 7), NET_EUSAGE); /* 6 posted */
  CHECK_EQ(gpu_unpack_seq_check_submit(&s, 0, 0), NET_EINVAL);
  CHECK_EQ(gpu_unpack_seq_check_submit(&s, 0, 4), NET_OK);
  gpu_unpack_seq_submitted(&s, 0, 4); /* one launch, event at receive 3 */
  CHECK_EQ(gpu_unpack_seq_next_event(&s, &j), 1);
  CHECK_EQ(j, 3);
  CHECK_EQ(gpu_unpack_seq_check_submit(&s, 4, 2), NET_OK);
  gpu_unpack_seq_submitted(&s, 4, 2);
  s.completed = 4;
  CHECK_EQ(gpu_unpack_seq_next_event(&s, &j), 1);
  CHECK_EQ(j, 5);
  s.completed = 6;
  CHECK_EQ(gpu_unpack_seq_next_event(&s, &j), 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_load_fails_without_driver),
    CHECK_CASE(test_classify_is_host_without_cuda),
    CHECK_CASE(test_kernel_embedded),
    CHECK_CASE(test_unpack_open_checks_handle_first),
    CHECK_CASE(test_host_walk_pages),
    CHECK_CASE(test_host_walk_random_unaligned),
    CHECK_CASE(test_host_walk_rejects_bad_descriptors),
    CHECK_CASE(test_scatter_refuses_more_than_2048_fragments),
    CHECK_CASE(test_slots_follow_every_receive),
    CHECK_CASE(test_seventeenth_outstanding_receive_refused),
    CHECK_CASE(test_submit_order_and_events),
};

int main(int argc, char **argv) {
  hide_real_driver();
  return check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
}
