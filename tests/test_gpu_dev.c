/* The GPU layer on a real GPU (skipped, exit 77, without one): pointer
 * classification, the pinned staging ring, CUDA IPC between two processes
 * and the GPU's sysfs PCI path. Prints "RESULT ..." lines. */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "affinity.h"
#include "check.h"
#include "cudadrv.h"
#include "ipc.h"
#include "net.h"
#include "staging.h"
#include "twohost.h"

#define MIB ((size_t)1 << 20)

static gpu_cuda *cu;

#define CU(call) CHECK_EQ(gpu_cuda_check(cu, (call), "%s", #call), NET_OK)

/* A synchronous copy from pageable memory may return before its DMA has
 * landed, and nothing orders it with our non-blocking streams: wait. */
#define UPLOAD(dst, src, n)                        \
  do {                                             \
    CU(cu->cuMemcpyHtoD((dst), (src), (n)));       \
    CU(cu->cuCtxSynchronize());                    \
  } while (0)

static int test_classify_host_pinned_device_managed(void) {
  int kind, dev;
  void *heap = malloc(4096), *pinned = NULL;
  gcu_dptr d, managed;
  CU(cu->cuMemHostAlloc(&pinned, 4096, GCU_MEMHOSTALLOC_PORTABLE));
  CU(cu->cuMemAlloc(&d, 4096));
  CU(cu->cuMemAllocManaged(&managed, MIB, GCU_MEM_ATTACH_GLOBAL));
  CHECK_EQ(gpu_ptr_classify(heap, &kind, &dev), NET_OK);
  CHECK_EQ(kind, GPU_MEM_HOST);
  CHECK_EQ(dev, -1);
  CHECK_EQ(gpu_ptr_classify(pinned, &kind, &dev), NET_OK);
  CHECK_EQ(kind, GPU_MEM_PINNED);
  CHECK_EQ(gpu_ptr_classify(gpu_vptr(d + 100), &kind, &dev), NET_OK);
  CHECK_EQ(kind, GPU_MEM_DEVICE);
  CHECK_EQ(dev, 0);
  CHECK_EQ(gpu_ptr_classify(gpu_vptr(managed), &kind, &dev), NET_OK);
  CHECK_EQ(kind, GPU_MEM_DEVICE);
  cu->cuMemFree(managed);
  cu->cuMemFree(d);
  cu->cuMemFreeHost(pinned);
  free(heap);
  return 0;
}

static int wait_ready(gpu_staging *s, int slot) {
  int done = 0;
  for (long spin = 0; !done && spin < 100000000L; spin++)
    if (gpu_staging_ready(s, slot, &done) != NET_OK) return -1;
  return done ? 0 : -1;
}

/* 16 MiB GPU -> pinned -> GPU through 4 slots of 1 MiB (plus a ragged
 * tail), checking each slot's host bytes on the way. */
static int test_staging_round_trip(void) {
  enum { SLOTS = 4 };
  const size_t total = 16 * MIB + 12345, slot = MIB;
  unsigned char *want = malloc(total), *got = malloc(total);
  fill_random(want, total, 77);
  gcu_dptr src, dst;
  CU(cu->cuMemAlloc(&src, total));
  CU(cu->cuMemAlloc(&dst, total));
  CU(cu->cuMemsetD8(dst, 0, total));
  UPLOAD(src, want, total);
  gpu_staging *s;
  CHECK_EQ(gpu_staging_open(cu, 0, slot, SLOTS, &s), NET_OK);
  CHECK_EQ(gpu_staging_d2h(s, 0, gpu_vptr(src), slot + 1), NET_EINVAL);
  CHECK_EQ(gpu_staging_h2d(s, SLOTS, gpu_vptr(dst), 1), NET_EINVAL);
  int kind, dev;
  CHECK_EQ(gpu_ptr_classify(gpu_staging_host(s, 1), &kind, &dev), NET_OK);
  CHECK_EQ(kind, GPU_MEM_PINNED);
  for (size_t off = 0, i = 0; off < total; off += slot, i++) {
    int sl = (int)(i % SLOTS);
    size_t n = total - off < slot ? total - off : slot;
    CHECK(wait_ready(s, sl) == 0); /* the slot's last h2d has finished */
    CHECK_EQ(gpu_staging_d2h(s, sl, gpu_vptr(src + off), n), NET_OK);
    CHECK(wait_ready(s, sl) == 0);
    CHECK(bytes_equal(gpu_staging_host(s, sl), want + off, n, "staged slot"));
    CHECK_EQ(gpu_staging_h2d(s, sl, gpu_vptr(dst + off), n), NET_OK);
  }
  for (int sl = 0; sl < SLOTS; sl++) CHECK(wait_ready(s, sl) == 0);
  CU(cu->cuMemcpyDtoH(got, dst, total));
  CHECK(bytes_equal(got, want, total, "staging round trip"));
  printf("RESULT staging_round_trip %zu bytes byte-exact\n", total);
  gpu_staging_close(s);
  cu->cuMemFree(src);
  cu->cuMemFree(dst);
  free(want);
  free(got);
  return 0;
}

/* ---- IPC between two processes -------------------------------------------- */

#define IPC_LEN MIB
#define IPC_OFFSET 4099 /* the exported pointer is not the allocation base */

/* Polling copy_done, as the engine's progress would. */
static int copy_and_poll(gpu_ipc_cache *k, gcu_dptr dst, gcu_dptr src) {
  uint64_t t;
  int done = 0;
  CHECK_EQ(gpu_ipc_copy(k, gpu_vptr(dst), gpu_vptr(src), IPC_LEN, &t), NET_OK);
  for (long spin = 0; !done && spin < 100000000L; spin++)
    CHECK_EQ(gpu_ipc_copy_done(k, t, &done), NET_OK);
  CHECK(done);
  return 0;
}

/* Blocking in copy_wait, as write_ipc does; then the copy reads as done. */
static int copy_and_wait(gpu_ipc_cache *k, gcu_dptr dst, gcu_dptr src) {
  uint64_t t;
  int done = 0;
  CHECK_EQ(gpu_ipc_copy(k, gpu_vptr(dst), gpu_vptr(src), IPC_LEN, &t), NET_OK);
  CHECK_EQ(gpu_ipc_copy_wait(k, t), NET_OK);
  CHECK_EQ(gpu_ipc_copy_done(k, t, &done), NET_OK);
  CHECK(done);
  CHECK_EQ(gpu_ipc_copy_wait(k, t + 1), NET_EINVAL); /* never issued */
  return 0;
}

/* The child: map the parent's buffer, read it, then overwrite it. */
static int ipc_child(void) {
  gpu_ipc_blob blob;
  if (read(0, &blob, sizeof blob) != (ssize_t)sizeof blob) return 10;
  int dev = cu->ndevices > 1 ? 1 : 0;
  gpu_ipc_cache *k;
  void *peer;
  gcu_dptr mine;
  unsigned char *want = malloc(IPC_LEN), *got = malloc(IPC_LEN);
  CHECK_EQ(gpu_ipc_cache_open(cu, dev, &k), NET_OK);
  CHECK_EQ(gpu_ipc_map(k, &blob, blob.alloc_size, &peer), NET_EINVAL);
  CHECK_EQ(gpu_ipc_map(k, &blob, IPC_LEN, &peer), NET_OK);
  CU(cu->cuMemAlloc(&mine, IPC_LEN));
  /* Each copy is read back at once, on the legacy stream (which does not
   * wait for the cache's non-blocking one): a wait that returned early
   * would show old bytes. */
  CHECK(copy_and_wait(k, mine, gpu_dptr(peer)) == 0);
  CU(cu->cuMemcpyDtoH(got, mine, IPC_LEN));
  fill_random(want, IPC_LEN, 555);
  CHECK(bytes_equal(got, want, IPC_LEN, "child reads parent"));
  fill_random(want, IPC_LEN, 666);
  UPLOAD(mine, want, IPC_LEN);
  CHECK(copy_and_poll(k, gpu_dptr(peer), mine) == 0);
  CU(cu->cuMemcpyDtoH(got, gpu_dptr(peer), IPC_LEN));
  CHECK(bytes_equal(got, want, IPC_LEN, "child reads its write back"));
  gpu_ipc_cache_close(k);
  cu->cuMemFree(mine);
  free(want);
  free(got);
  printf("RESULT ipc_child_gpu %d (parent GPU %d)\n", dev, blob.device);
  return 0;
}

static pid_t spawn_child(int *to_child) {
  int fds[2];
  if (pipe(fds)) return -1;
  pid_t pid = fork();
  if (pid == 0) { /* exec at once: no CUDA in a forked child */
    dup2(fds[0], 0);
    close(fds[1]);
    execl("/proc/self/exe", "test_gpu_dev", "--ipc-child", (char *)NULL);
    _exit(127);
  }
  close(fds[0]);
  *to_child = fds[1];
  return pid;
}

static int test_ipc_two_processes(void) {
  gcu_dptr buf;
  unsigned char *pattern = malloc(IPC_LEN), *got = malloc(IPC_LEN);
  CU(cu->cuMemAlloc(&buf, IPC_OFFSET + IPC_LEN));
  fill_random(pattern, IPC_LEN, 555);
  UPLOAD(buf + IPC_OFFSET, pattern, IPC_LEN);
  gpu_ipc_blob blob;
  CHECK_EQ(gpu_ipc_export(cu, gpu_vptr(buf + IPC_OFFSET), &blob), NET_OK);
  CHECK_EQ(blob.offset, IPC_OFFSET);
  CHECK(blob.alloc_size >= IPC_OFFSET + IPC_LEN);
  gpu_ipc_cache *own;
  void *p;
  CHECK_EQ(gpu_ipc_cache_open(cu, 0, &own), NET_OK);
  CHECK_EQ(gpu_ipc_map(own, &blob, IPC_LEN, &p), NET_OK); /* same process */
  CHECK(p == gpu_vptr(buf + IPC_OFFSET));
  gpu_ipc_cache_close(own);
  int fd, status = -1;
  pid_t pid = spawn_child(&fd);
  CHECK(pid > 0);
  CHECK(write(fd, &blob, sizeof blob) == (ssize_t)sizeof blob);
  close(fd);
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK_EQ(WEXITSTATUS(status), 0);
  CU(cu->cuMemcpyDtoH(got, buf + IPC_OFFSET, IPC_LEN));
  fill_random(pattern, IPC_LEN, 666);
  CHECK(bytes_equal(got, pattern, IPC_LEN, "parent sees child's write"));
  printf("RESULT ipc_two_processes byte-exact both ways\n");
  cu->cuMemFree(buf);
  free(pattern);
  free(got);
  return 0;
}

/* ---- one cache, many threads (write_ipc from several threads) -------------- */

#define COPY_THREADS 8
#define COPIES_EACH 40 /* 320 copies: the cache's 32 events go round often */
#define COPY_LEN (256 * 1024)

typedef struct copier {
  gpu_ipc_cache *k;
  int id, rc;
  uint64_t tickets[COPIES_EACH];
} copier;

/* Two sources of different bytes copied in turn into one destination,
 * each copy waited for and read back at once: a wait that returned
 * before its own copy had landed shows the other source's bytes. */
static int copier_run(copier *w) {
  gcu_dptr src[2], dst;
  unsigned char *want[2] = {malloc(COPY_LEN), malloc(COPY_LEN)};
  unsigned char *got = malloc(COPY_LEN);
  CHECK_EQ(gpu_cuda_use_device(cu, 0, NULL), NET_OK);
  for (int j = 0; j < 2; j++) {
    CU(cu->cuMemAlloc(&src[j], COPY_LEN));
    fill_random(want[j], COPY_LEN, 1000u + 2u * (unsigned)w->id + (unsigned)j);
    UPLOAD(src[j], want[j], COPY_LEN);
  }
  CU(cu->cuMemAlloc(&dst, COPY_LEN));
  for (int i = 0; i < COPIES_EACH; i++) {
    CHECK_EQ(gpu_ipc_copy(w->k, gpu_vptr(dst), gpu_vptr(src[i & 1]), COPY_LEN,
                          &w->tickets[i]), NET_OK);
    CHECK_EQ(gpu_ipc_copy_wait(w->k, w->tickets[i]), NET_OK);
    CU(cu->cuMemcpyDtoH(got, dst, COPY_LEN));
    CHECK(bytes_equal(got, want[i & 1], COPY_LEN, "copy read back after its wait"));
  }
  for (int j = 0; j < 2; j++) cu->cuMemFree(src[j]), free(want[j]);
  cu->cuMemFree(dst);
  free(got);
  return 0;
}

static void *copier_main(void *arg) {
  copier *w = arg;
  w->rc = copier_run(w);
  return NULL;
}

static int test_ipc_copies_from_threads(void) {
  enum { TOTAL = COPY_THREADS * COPIES_EACH };
  gpu_ipc_cache *k;
  CHECK_EQ(gpu_ipc_cache_open(cu, 0, &k), NET_OK);
  static copier w[COPY_THREADS];
  pthread_t tid[COPY_THREADS];
  for (int i = 0; i < COPY_THREADS; i++) {
    w[i] = (copier){.k = k, .id = i, .rc = -1};
    CHECK_EQ(pthread_create(&tid[i], NULL, copier_main, &w[i]), 0);
  }
  for (int i = 0; i < COPY_THREADS; i++) pthread_join(tid[i], NULL);
  /* A fresh cache numbers its copies 0..TOTAL-1, each once. */
  static unsigned char seen[TOTAL];
  memset(seen, 0, sizeof seen);
  for (int i = 0; i < COPY_THREADS; i++) {
    CHECK_EQ(w[i].rc, 0);
    for (int j = 0; j < COPIES_EACH; j++) {
      CHECK(w[i].tickets[j] < TOTAL);
      CHECK(!seen[w[i].tickets[j]]++);
    }
  }
  gpu_ipc_cache_close(k);
  printf("RESULT ipc_copies_from_threads %d threads x %d copies on one cache: "
         "tickets unique, each read back byte-exact after its wait\n",
         COPY_THREADS, COPIES_EACH);
  return 0;
}

static int test_gpu_pci_path(void) {
  char path[PATH_MAX];
  int rc = gpu_pci_path(cu, 0, path, sizeof path);
  if (rc != NET_OK) { /* some VMs and containers hide /sys/bus/pci */
    printf("RESULT gpu0_pci_path unavailable (%s)\n", err_get());
    return 0;
  }
  CHECK(strncmp(path, "/sys/devices/", 13) == 0);
  printf("RESULT gpu0_pci_path %s\n", path);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_classify_host_pinned_device_managed),
    CHECK_CASE(test_staging_round_trip),
    CHECK_CASE(test_ipc_two_processes),
    CHECK_CASE(test_ipc_copies_from_threads),
    CHECK_CASE(test_gpu_pci_path),
};

int main(int argc, char **argv) {
  if (gpu_cuda_load(&cu) != NET_OK || gpu_cuda_use_device(cu, 0, NULL)) {
    printf("skipped: %s\n", err_get());
    return 77;
  }
  if (argc > 1 && !strcmp(argv[1], "--ipc-child")) {
    int rc = ipc_child();
    return rc ? rc : 0;
  }
  return check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
}
