/* The NCCL net plugin loader (src/net/plugin.c): error messages, version
 * choice, the per-version adapters, init rules (once per process, v11
 * contexts), the selection order of net_open, and real data through the
 * exported plugin (build/libnccl-net-tcpxp2p.so) at every version over
 * loopback. What GPUDirect-TCPX needs of the loader (CUDA first,
 * NCCL_DYNAMIC_CHUNK_SIZE, RxDM, its default location) is tested by
 * test_loader_tcpx.c; helpers both share are in loader_common.h.
 *
 * The fake plugins live in LOADER_BUILD_DIR/test-plugins (tests/plugins).
 * Cases that need mounts run in a forked child in a private mount
 * namespace and are skipped, saying why, when that is not allowed. */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>

#include "fake_record.h"
#include "loader_common.h"
#include "plugin.h"
#include "twohost.h"

#define REAL_PLUGIN LOADER_BUILD_DIR "/libnccl-net-tcpxp2p.so"
#define ROUND_TRIP_BYTES (1u << 20)

/* ---- helpers --------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int copy_file(const char *from, const char *to) {
  char buf[65536];
  int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT, 0755);
  ssize_t n = 0;
  while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
    if (write(out, buf, (size_t)n) != n) n = -1;
  int ok = in >= 0 && out >= 0 && n == 0;
  if (in >= 0) close(in);
  if (out >= 0) close(out);
  return ok ? 0 : -1;
}

/* The fake "versions" plugin's record, through our own handle on it (the
 * same library the loader opens, kept loaded while the case runs). */
static fake_record *open_record(void **dl) {
  *dl = dlopen(FAKE("fake-versions"), RTLD_NOW | RTLD_LOCAL);
  return *dl ? dlsym(*dl, "fake_record_data") : NULL;
}

/* Capture what the process writes to stderr while `fn` runs. */
typedef struct capture {
  FILE *file;
  int saved_fd;
} capture;

static int capture_begin(capture *c) {
  fflush(stderr);
  c->file = tmpfile();
  c->saved_fd = dup(2);
  if (!c->file || c->saved_fd < 0) return -1;
  return dup2(fileno(c->file), 2) < 0 ? -1 : 0;
}

static void capture_end(capture *c, char *out, size_t len) {
  fflush(stderr);
  dup2(c->saved_fd, 2);
  close(c->saved_fd);
  rewind(c->file);
  size_t n = fread(out, 1, len - 1, c->file);
  out[n] = '\0';
  fclose(c->file);
}

/* ---- error messages -------------------------------------------------- */

static int test_missing_file_exact_message(void) {
  net_transport *t = (net_transport *)&t;
  const char *path = LOADER_BUILD_DIR "/test-plugins/no-such-plugin.so";
  char want[600];
  CHECK(net_plugin_load(path, 0, &t) != NET_OK);
  CHECK(t == NULL);
  snprintf(want, sizeof want, "net plugin %s: no such file", path);
  if (strcmp(err_get(), want) != 0) {
    fprintf(stderr, "  got  \"%s\"\n  want \"%s\"\n", err_get(), want);
    return 1;
  }
  return 0;
}

static int test_not_an_elf_includes_dlerror_verbatim(void) {
  char dir[] = "/tmp/loader-test-XXXXXX", path[64];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/libnot-elf.so", dir);
  CHECK_EQ(write_text_file(path), 0);
  CHECK(dlopen(path, RTLD_NOW | RTLD_LOCAL) == NULL);
  char dlerr[512];
  snprintf(dlerr, sizeof dlerr, "%s", dlerror());
  net_transport *t;
  int rc = net_plugin_load(path, 0, &t);
  unlink(path);
  rmdir(dir);
  CHECK_EQ(rc, NET_ESYS);
  CHECK_STR_CONTAINS(err_get(), path);
  CHECK_STR_CONTAINS(err_get(), "dlopen failed: ");
  CHECK_STR_CONTAINS(err_get(), dlerr);
  return 0;
}

static int test_library_without_table_is_not_a_plugin(void) {
  net_transport *t;
  CHECK_EQ(net_plugin_load(FAKE("fake-not-a-plugin"), 0, &t), NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), FAKE("fake-not-a-plugin"));
  CHECK_STR_CONTAINS(err_get(), "exports no ncclNetPlugin_v7..v11 symbol");
  return 0;
}

static int test_forced_version_not_exported_lists_exports(void) {
  net_transport *t;
  CHECK_EQ(net_plugin_load(FAKE("fake-versions"), 8, &t), NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "ncclNetPlugin_v8 requested");
  CHECK_STR_CONTAINS(err_get(), "it exports v7, v9, v10, v11");
  CHECK_EQ(net_plugin_load(FAKE("fake-versions"), 12, &t), NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "version 12 requested");
  return 0;
}

static int test_null_member_is_named(void) {
  net_transport *t;
  CHECK_EQ(net_plugin_load(FAKE("fake-null-member"), 0, &t), NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "ncclNetPlugin_v8.test is NULL");
  return 0;
}

static int test_init_failure_includes_plugin_warning(void) {
  net_transport *t;
  capture cap;
  char printed[4096];
  CHECK_EQ(capture_begin(&cap), 0);
  int rc = net_plugin_load(FAKE("fake-init-fails"), 0, &t);
  capture_end(&cap, printed, sizeof printed);
  CHECK_EQ(rc, NET_EINTERNAL);
  CHECK_STR_CONTAINS(err_get(), "init failed with error 3 (internal error)");
  CHECK_STR_CONTAINS(err_get(),
                     "plugin said: fake-init-fails: no interface found "
                     "matching FAKE_IFNAME");
  CHECK_STR_CONTAINS(printed, "[plugin fake-init-fails] WARN fake-init-fails:"
                              " no interface found matching FAKE_IFNAME\n");
  CHECK(strstr(printed, "looking for interfaces") == NULL); /* INFO: quiet */
  return 0;
}

static int test_info_printed_when_log_level_is_info(void) {
  net_transport *t;
  capture cap;
  char printed[4096];
  setenv("TCPX_P2P_LOG_LEVEL", "INFO", 1);
  CHECK_EQ(capture_begin(&cap), 0);
  int rc = net_plugin_load(FAKE("fake-init-fails"), 0, &t);
  capture_end(&cap, printed, sizeof printed);
  unsetenv("TCPX_P2P_LOG_LEVEL");
  CHECK(rc != NET_OK);
  CHECK_STR_CONTAINS(printed, "[plugin fake-init-fails] INFO fake-init-fails:"
                              " looking for interfaces matching FAKE_IFNAME");
  return 0;
}

/* ---- version choice and init rules (fake plugin) --------------------- */

static int test_highest_version_is_picked(void) {
  net_transport *t;
  CHECK_EQ(net_plugin_load(FAKE("fake-versions"), 0, &t), NET_OK);
  CHECK_EQ(t->abi_version, 11);
  CHECK(strcmp(t->name, "fake-versions") == 0);
  CHECK_STR_CONTAINS(t->path, "libfake-versions.so");
  t->ops->destroy(t);
  return 0;
}

static int test_legacy_init_runs_once_per_process(void) {
  void *own;
  fake_record *rec = open_record(&own);
  CHECK(rec != NULL);
  int before = rec->init_calls[9];
  net_transport *a, *b;
  CHECK_EQ(net_plugin_load(FAKE("fake-versions"), 9, &a), NET_OK);
  CHECK_EQ(net_plugin_load(FAKE("fake-versions"), 9, &b), NET_OK);
  CHECK_EQ(rec->init_calls[9] - before, 1);
  CHECK_EQ(a->abi_version, 9);
  a->ops->destroy(a);
  b->ops->destroy(b);
  dlclose(own);
  return 0;
}

static int test_v11_context_reaches_listen_connect_finalize(void) {
  void *own;
  fake_record *rec = open_record(&own);
  CHECK(rec != NULL);
  net_transport *a, *b;
  CHECK_EQ(net_plugin_load(FAKE("fake-versions"), 11, &a), NET_OK);
  void *ctx_a = rec->last_init_ctx;
  CHECK_EQ(rec->last_init_traffic_class, -1);
  CHECK(rec->last_init_had_profiler);
  CHECK_EQ(net_plugin_load(FAKE("fake-versions"), 11, &b), NET_OK);
  void *ctx_b = rec->last_init_ctx;
  CHECK(ctx_a != NULL && ctx_b != NULL && ctx_a != ctx_b);
  char handle[NET_HANDLE_SIZE];
  void *comm;
  CHECK_EQ(net_call(a, listen, 0, handle, &comm), NET_OK);
  CHECK(rec->last_listen_ctx == ctx_a);
  CHECK_EQ(net_call(b, connect, 0, handle, &comm, NULL), NET_OK);
  CHECK(rec->last_connect_ctx == ctx_b);
  int finalized = rec->finalize_calls;
  a->ops->destroy(a);
  CHECK_EQ(rec->finalize_calls, finalized + 1);
  CHECK(rec->last_finalize_ctx == ctx_a);
  b->ops->destroy(b);
  CHECK(rec->last_finalize_ctx == ctx_b);
  dlclose(own);
  return 0;
}

static int test_v10_gets_config_profiler_and_handles(void) {
  void *own;
  fake_record *rec = open_record(&own);
  CHECK(rec != NULL);
  net_transport *t;
  CHECK_EQ(net_plugin_load(FAKE("fake-versions"), 10, &t), NET_OK);
  CHECK(rec->last_init_had_profiler);
  char handle[NET_HANDLE_SIZE], buf[2][64];
  void *comm, *req = (void *)0x1, *data[2] = {buf[0], buf[1]};
  void *mh[2] = {NULL, NULL};
  size_t sizes[2] = {10, 20};
  int tags[2] = {0, 1};
  CHECK_EQ(net_call(t, connect, 0, handle, &comm, NULL), NET_OK);
  CHECK_EQ(rec->last_connect_traffic_class, -1);
  CHECK_EQ(net_call(t, isend, comm, buf[0], 10, 0, NULL, &req), NET_OK);
  CHECK(rec->last_isend_phandle_null);
  CHECK(rec->last_request_was_null);
  req = (void *)0x1;
  CHECK_EQ(net_call(t, irecv, comm, 2, data, sizes, tags, mh, &req), NET_OK);
  CHECK(rec->last_irecv_phandles_ok);
  CHECK(rec->last_request_was_null);
  CHECK(t->ops->irecv_consumed == NULL); /* the fake has none */
  t->ops->destroy(t);
  dlclose(own);
  return 0;
}

/* v7 takes int sizes: larger ones are refused before the plugin sees
 * them, and test() copies back exactly the sizes the plugin wrote. */
static int test_v7_int_sizes_checked_and_converted(void) {
  void *own;
  fake_record *rec = open_record(&own);
  CHECK(rec != NULL);
  net_transport *t;
  CHECK_EQ(net_plugin_load(FAKE("fake-versions"), 7, &t), NET_OK);
  char handle[NET_HANDLE_SIZE], buf[2][64];
  void *comm, *req, *mh, *data[2] = {buf[0], buf[1]}, *mhs[2] = {0};
  int sends = rec->isend_calls, tags[2] = {0, 0}, done = 0;
  size_t too_big = (size_t)INT_MAX + 1, sizes[2] = {100, 200};
  CHECK_EQ(net_call(t, connect, 0, handle, &comm, NULL), NET_OK);
  CHECK_EQ(net_call(t, isend, comm, buf, too_big, 0, NULL, &req),
           NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "takes int sizes");
  CHECK_EQ(rec->isend_calls, sends);
  CHECK_EQ(net_call(t, reg_mr, comm, buf, too_big, NCCL_PTR_HOST, &mh),
           NET_EINVAL);
  CHECK_EQ(net_call(t, irecv, comm, 9, data, sizes, tags, mhs, &req),
           NET_EINVAL);
  CHECK_EQ(net_call(t, irecv, comm, 2, data, sizes, tags, mhs, &req), 0);
  CHECK_EQ(rec->last_irecv_n, 2);
  CHECK_EQ(rec->last_irecv_sizes[0], 100);
  CHECK_EQ(rec->last_irecv_sizes[1], 200);
  size_t got[3] = {0, 0, 777};
  CHECK_EQ(net_call(t, test, req, &done, got), NET_OK);
  CHECK(done);
  CHECK_EQ(got[0], 100);
  CHECK_EQ(got[1], 200);
  CHECK_EQ(got[2], 777); /* not written by the plugin: left alone */
  t->ops->destroy(t);
  dlclose(own);
  return 0;
}

static int check_fake_props(int version) {
  net_transport *t;
  net_props p;
  CHECK_EQ(net_plugin_load(FAKE("fake-versions"), version, &t), NET_OK);
  CHECK_EQ(net_call(t, get_properties, 0, &p), NET_OK);
  CHECK(p.name && strcmp(p.name, "fake-nic") == 0);
  CHECK(p.pci_path == NULL);
  CHECK_EQ(p.guid, 0x1234);
  CHECK_EQ(p.ptr_support, NCCL_PTR_HOST);
  CHECK_EQ(p.speed_mbps, FAKE_NIC_SPEED);
  CHECK_EQ(p.port, 1);
  CHECK(p.latency_us == 2.5f);
  CHECK_EQ(p.max_comms, FAKE_NIC_MAX_COMMS);
  CHECK_EQ(p.max_recvs, FAKE_NIC_MAX_RECVS);
  CHECK_EQ(p.dev_type, NCCL_NET_DEVICE_HOST);
  CHECK_EQ(p.reg_is_global, version >= 9);
  CHECK_EQ(p.force_flush, version >= 9);
  CHECK_EQ(p.max_p2p_bytes, version >= 9 ? FAKE_NIC_MAX_P2P : INT_MAX);
  t->ops->destroy(t);
  return 0;
}

static int test_fake_properties_through_each_adapter(void) {
  int versions[] = {7, 9, 10, 11};
  for (int i = 0; i < 4; i++) {
    if (check_fake_props(versions[i])) {
      fprintf(stderr, "  (at version %d)\n", versions[i]);
      return 1;
    }
  }
  return 0;
}

/* ---- mounts (private mount namespace in a child) --------------------- */

static int noexec_child(void) {
  int rc = private_mounts();
  if (rc) return rc;
  char dir[] = "/tmp/loader-noexec-XXXXXX", copy[128];
  CHECK(mkdtemp(dir) != NULL);
  if (mount("tmpfs", dir, "tmpfs", MS_NOEXEC, "size=16m") != 0) {
    rmdir(dir);
    return skip("mount -t tmpfs -o noexec: %s", strerror(errno));
  }
  snprintf(copy, sizeof copy, "%s/libnccl-net-tcpxp2p.so", dir);
  CHECK_EQ(copy_file(REAL_PLUGIN, copy), 0);
  net_transport *t;
  rc = net_plugin_load(copy, 0, &t);
  /* glibc keeps a read-only mapping of the file after the failed
   * dlopen: detach the mount instead of waiting for it to be unused. */
  if (umount2(dir, MNT_DETACH) != 0) perror("umount2");
  if (rmdir(dir) != 0) perror("rmdir");
  CHECK_EQ(rc, NET_ESYS);
  CHECK_STR_CONTAINS(err_get(), copy);
  CHECK_STR_CONTAINS(err_get(), "failed to map segment");
  CHECK_STR_CONTAINS(err_get(), "noexec mount");
  return 0;
}

static int test_noexec_mount_gets_hint(void) {
  if (geteuid() != 0) {
    skip("not root: cannot mount a noexec tmpfs");
    return 0;
  }
  return in_child(noexec_child);
}

/* ---- the exported plugin --------------------------------------------- */

static int test_exported_plugin_defaults_to_v11(void) {
  net_transport *t;
  CHECK_EQ(net_plugin_load(REAL_PLUGIN, 0, &t), NET_OK);
  CHECK_EQ(t->abi_version, 11);
  CHECK(strcmp(t->name, "tcpx-p2p-tcp") == 0);
  CHECK_STR_CONTAINS(t->path, "libnccl-net-tcpxp2p.so");
  t->ops->destroy(t);
  return 0;
}

static int test_exported_plugin_loads_at_each_version(void) {
  for (int v = 7; v <= 11; v++) {
    net_transport *t;
    int ndev = 0;
    CHECK_EQ(net_plugin_load(REAL_PLUGIN, v, &t), NET_OK);
    CHECK_EQ(t->abi_version, v);
    CHECK_EQ(net_call(t, devices, &ndev), NET_OK);
    CHECK(ndev > 0);
    t->ops->destroy(t);
  }
  return 0;
}

/* No usable interface: init fails with the plugin's own reason, logged at
 * WARN, at every version (v7 ... v10 try again on the next load). */
static int test_exported_plugin_init_fails_without_device(void) {
  setenv("TCPX_P2P_SOCKET_IFNAME", "=no-such-if0", 1);
  for (int v = 7; v <= 11; v++) {
    net_transport *t = NULL;
    capture cap;
    char printed[4096];
    CHECK_EQ(capture_begin(&cap), 0);
    int rc = net_plugin_load(REAL_PLUGIN, v, &t);
    capture_end(&cap, printed, sizeof printed);
    CHECK(rc == NET_ESYS || rc == NET_EINTERNAL);
    CHECK(t == NULL);
    CHECK_STR_CONTAINS(err_get(), "init failed with error");
    CHECK_STR_CONTAINS(err_get(), "plugin said: tcpx-p2p-tcp: init: ");
    CHECK_STR_CONTAINS(printed,
                       "[plugin tcpx-p2p-tcp] WARN tcpx-p2p-tcp: init");
  }
  return 0;
}

/* Properties through plugin + adapter equal the built-in transport's. */
static int compare_props(const net_props *got, const net_props *want, int v) {
  CHECK(got->name != NULL && strcmp(got->name, want->name) == 0);
  CHECK(got->ptr_support & NCCL_PTR_HOST);
  CHECK_EQ(got->ptr_support, want->ptr_support & ~NCCL_PTR_DMABUF);
  CHECK_EQ(got->guid, want->guid);
  CHECK_EQ(got->speed_mbps, want->speed_mbps);
  CHECK_EQ(got->max_comms, want->max_comms);
  CHECK_EQ(got->max_recvs, want->max_recvs);
  CHECK_EQ(got->dev_type, want->dev_type);
  CHECK_EQ(got->reg_is_global, v >= 8 ? want->reg_is_global : 0);
  CHECK_EQ(got->force_flush, v >= 9 ? want->force_flush : 0);
  CHECK_EQ(got->max_p2p_bytes, v >= 9 ? want->max_p2p_bytes : INT_MAX);
  CHECK((got->pci_path == NULL) == (want->pci_path == NULL));
  return 0;
}

static int test_exported_plugin_properties_round_trip(void) {
  net_transport *builtin;
  net_props want;
  tcp_options opts;
  tcp_options_default(&opts);
  CHECK_EQ(net_tcp_create(&opts, &builtin), NET_OK);
  CHECK_EQ(net_call(builtin, get_properties, 0, &want), NET_OK);
  for (int v = 7; v <= 11; v++) {
    net_transport *t;
    net_props got;
    CHECK_EQ(net_plugin_load(REAL_PLUGIN, v, &t), NET_OK);
    CHECK_EQ(net_call(t, get_properties, 0, &got), NET_OK);
    int rc = compare_props(&got, &want, v);
    t->ops->destroy(t);
    if (rc) {
      fprintf(stderr, "  (at version %d)\n", v);
      builtin->ops->destroy(builtin);
      return 1;
    }
  }
  builtin->ops->destroy(builtin);
  return 0;
}

typedef struct pair {
  void *listen, *send, *recv;
} pair;

/* connect and accept never block: drive both until each has a comm. */
static int connect_pair(net_transport *t, pair *p) {
  char handle[NET_HANDLE_SIZE] = {0};
  double deadline = now_s() + 10;
  memset(p, 0, sizeof *p);
  CHECK_EQ(net_call(t, listen, 0, handle, &p->listen), NET_OK);
  CHECK(p->listen != NULL);
  while (!p->send || !p->recv) {
    if (!p->send)
      CHECK_EQ(net_call(t, connect, 0, handle, &p->send, NULL), NET_OK);
    if (!p->recv)
      CHECK_EQ(net_call(t, accept, p->listen, &p->recv, NULL), NET_OK);
    CHECK(now_s() < deadline);
  }
  return 0;
}

static int post_both(net_transport *t, pair *p, void *src, void *dst,
                     size_t n, void *mh[2], void *req[2]) {
  size_t size = n;
  int tag = 3;
  double deadline = now_s() + 10;
  req[0] = req[1] = NULL;
  while (!req[0] || !req[1]) {
    if (!req[1])
      CHECK_EQ(net_call(t, irecv, p->recv, 1, &dst, &size, &tag, &mh[1],
                        &req[1]), NET_OK);
    if (!req[0])
      CHECK_EQ(net_call(t, isend, p->send, src, n, tag, mh[0], &req[0]),
               NET_OK);
    CHECK(now_s() < deadline);
  }
  return 0;
}

static int wait_both(net_transport *t, void *req[2], size_t n) {
  int done[2] = {0, 0};
  size_t got[2] = {0, 12345};
  double deadline = now_s() + 20;
  while (!done[0] || !done[1]) {
    if (!done[0]) CHECK_EQ(net_call(t, test, req[0], &done[0], NULL), NET_OK);
    if (!done[1]) CHECK_EQ(net_call(t, test, req[1], &done[1], got), NET_OK);
    CHECK(now_s() < deadline);
  }
  CHECK_EQ(got[0], n);
  CHECK_EQ(got[1], 12345); /* one buffer posted: one size reported */
  return 0;
}

static int send_one_mib(net_transport *t, unsigned long long seed) {
  pair p;
  void *mh[2], *req[2];
  char *src = malloc(ROUND_TRIP_BYTES), *dst = calloc(1, ROUND_TRIP_BYTES);
  CHECK(src && dst);
  fill_random(src, ROUND_TRIP_BYTES, seed);
  CHECK_EQ(connect_pair(t, &p), 0);
  CHECK_EQ(net_call(t, reg_mr, p.send, src, ROUND_TRIP_BYTES, NCCL_PTR_HOST,
                    &mh[0]), NET_OK);
  CHECK_EQ(net_call(t, reg_mr, p.recv, dst, ROUND_TRIP_BYTES, NCCL_PTR_HOST,
                    &mh[1]), NET_OK);
  CHECK_EQ(post_both(t, &p, src, dst, ROUND_TRIP_BYTES, mh, req), 0);
  CHECK_EQ(wait_both(t, req, ROUND_TRIP_BYTES), 0);
  CHECK_EQ(bytes_equal(src, dst, ROUND_TRIP_BYTES, "1 MiB round trip"), 1);
  if (t->abi_version <= 8) { /* int sizes: refused, not truncated */
    void *big;
    CHECK_EQ(net_call(t, isend, p.send, src, (size_t)INT_MAX + 1, 0, mh[0],
                      &big), NET_EINVAL);
    CHECK_STR_CONTAINS(err_get(), "takes int sizes");
  }
  CHECK_EQ(net_call(t, dereg_mr, p.send, mh[0]), NET_OK);
  CHECK_EQ(net_call(t, dereg_mr, p.recv, mh[1]), NET_OK);
  CHECK_EQ(net_call(t, close_send, p.send), NET_OK);
  CHECK_EQ(net_call(t, close_recv, p.recv), NET_OK);
  CHECK_EQ(net_call(t, close_listen, p.listen), NET_OK);
  free(src);
  free(dst);
  return 0;
}

static int test_exported_plugin_moves_data_at_each_version(void) {
  for (int v = 7; v <= 11; v++) {
    net_transport *t;
    CHECK_EQ(net_plugin_load(REAL_PLUGIN, v, &t), NET_OK);
    int rc = send_one_mib(t, 1000 + (unsigned long long)v);
    t->ops->destroy(t);
    if (rc) {
      fprintf(stderr, "  (at version %d)\n", v);
      return 1;
    }
  }
  return 0;
}

/* ---- net_open selection order ---------------------------------------- */

static int expect_builtin(const char *explicit_path) {
  net_transport *t;
  CHECK_EQ(net_open(explicit_path, 0, NULL, &t), NET_OK);
  CHECK_EQ(t->abi_version, 0);
  CHECK_EQ(t->path[0], '\0');
  CHECK(strcmp(t->name, "tcpx-p2p-tcp") == 0);
  t->ops->destroy(t);
  return 0;
}

static int test_open_builtin_by_name(void) {
  setenv("TCPX_P2P_NET_PLUGIN", "builtin", 1);
  setenv("NCCL_NET_PLUGIN", "no-such-plugin", 1); /* must not be tried */
  CHECK_EQ(expect_builtin(NULL), 0);
  setenv("TCPX_P2P_NET_PLUGIN", "tcp", 1);
  CHECK_EQ(expect_builtin(NULL), 0);
  unsetenv("TCPX_P2P_NET_PLUGIN");
  CHECK_EQ(expect_builtin("builtin"), 0);
  setenv("NCCL_NET_PLUGIN", "none", 1);
  CHECK_EQ(expect_builtin(NULL), 0);
  return 0;
}

static int test_open_explicit_path_wins_over_env(void) {
  net_transport *t;
  setenv("TCPX_P2P_NET_PLUGIN", "builtin", 1);
  CHECK_EQ(net_open(REAL_PLUGIN, 9, NULL, &t), NET_OK);
  CHECK_EQ(t->abi_version, 9);
  t->ops->destroy(t);
  return 0;
}

static int test_open_nccl_net_plugin_name_resolves_library(void) {
  net_transport *t;
  setenv("NCCL_NET_PLUGIN", "tcpxp2p,ignored", 1);
  CHECK_EQ(net_open(NULL, 0, NULL, &t), NET_OK);
  CHECK_EQ(t->abi_version, 11);
  CHECK_STR_CONTAINS(t->path, "/libnccl-net-tcpxp2p.so");
  t->ops->destroy(t);
  setenv("NCCL_NET_PLUGIN", "no-such-plugin", 1);
  CHECK(net_open(NULL, 0, NULL, &t) != NET_OK);
  CHECK_STR_CONTAINS(err_get(), "libnccl-net-no-such-plugin.so");
  CHECK_STR_CONTAINS(err_get(), "NCCL_NET_PLUGIN");
  CHECK_STR_CONTAINS(err_get(), BUILTIN_HINT_TEXT);
  return 0;
}

static int test_open_version_from_env(void) {
  net_transport *t;
  setenv("TCPX_P2P_NET_PLUGIN", REAL_PLUGIN, 1);
  setenv("TCPX_P2P_NET_PLUGIN_VERSION", "8", 1);
  CHECK_EQ(net_open(NULL, 0, NULL, &t), NET_OK);
  CHECK_EQ(t->abi_version, 8);
  t->ops->destroy(t);
  setenv("TCPX_P2P_NET_PLUGIN_VERSION", "6", 1);
  CHECK_EQ(net_open(NULL, 0, NULL, &t), NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "TCPX_P2P_NET_PLUGIN_VERSION=6");
  return 0;
}

/* ---- runner ---------------------------------------------------------- */

LOADER_CASE(test_missing_file_exact_message)
LOADER_CASE(test_not_an_elf_includes_dlerror_verbatim)
LOADER_CASE(test_library_without_table_is_not_a_plugin)
LOADER_CASE(test_forced_version_not_exported_lists_exports)
LOADER_CASE(test_null_member_is_named)
LOADER_CASE(test_init_failure_includes_plugin_warning)
LOADER_CASE(test_info_printed_when_log_level_is_info)
LOADER_CASE(test_noexec_mount_gets_hint)
LOADER_CASE(test_highest_version_is_picked)
LOADER_CASE(test_legacy_init_runs_once_per_process)
LOADER_CASE(test_v11_context_reaches_listen_connect_finalize)
LOADER_CASE(test_v10_gets_config_profiler_and_handles)
LOADER_CASE(test_v7_int_sizes_checked_and_converted)
LOADER_CASE(test_fake_properties_through_each_adapter)
LOADER_CASE(test_exported_plugin_defaults_to_v11)
LOADER_CASE(test_exported_plugin_loads_at_each_version)
LOADER_CASE(test_exported_plugin_init_fails_without_device)
LOADER_CASE(test_exported_plugin_properties_round_trip)
LOADER_CASE(test_exported_plugin_moves_data_at_each_version)
LOADER_CASE(test_open_builtin_by_name)
LOADER_CASE(test_open_explicit_path_wins_over_env)
LOADER_CASE(test_open_nccl_net_plugin_name_resolves_library)
LOADER_CASE(test_open_version_from_env)

/* Forking cases come first, while this process has no helper threads. */
static const check_case cases[] = {
    LOADER_ENTRY(test_missing_file_exact_message),
    LOADER_ENTRY(test_not_an_elf_includes_dlerror_verbatim),
    LOADER_ENTRY(test_library_without_table_is_not_a_plugin),
    LOADER_ENTRY(test_forced_version_not_exported_lists_exports),
    LOADER_ENTRY(test_null_member_is_named),
    LOADER_ENTRY(test_init_failure_includes_plugin_warning),
    LOADER_ENTRY(test_info_printed_when_log_level_is_info),
    LOADER_ENTRY(test_noexec_mount_gets_hint),
    LOADER_ENTRY(test_highest_version_is_picked),
    LOADER_ENTRY(test_legacy_init_runs_once_per_process),
    LOADER_ENTRY(test_v11_context_reaches_listen_connect_finalize),
    LOADER_ENTRY(test_v10_gets_config_profiler_and_handles),
    LOADER_ENTRY(test_v7_int_sizes_checked_and_converted),
    LOADER_ENTRY(test_fake_properties_through_each_adapter),
    LOADER_ENTRY(test_exported_plugin_defaults_to_v11),
    LOADER_ENTRY(test_exported_plugin_loads_at_each_version),
    LOADER_ENTRY(test_exported_plugin_init_fails_without_device),
    LOADER_ENTRY(test_exported_plugin_properties_round_trip),
    LOADER_ENTRY(test_exported_plugin_moves_data_at_each_version),
    LOADER_ENTRY(test_open_builtin_by_name),
    LOADER_ENTRY(test_open_explicit_path_wins_over_env),
    LOADER_ENTRY(test_open_nccl_net_plugin_name_resolves_library),
    LOADER_ENTRY(test_open_version_from_env),
};

CHECK_MAIN(cases)
