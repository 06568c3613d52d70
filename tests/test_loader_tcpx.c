/* What GPUDirect-TCPX needs of the NCCL net plugin loader
 * (src/net/plugin.c), each case in a fresh child process:
 * - CUDA checked before the plugin's init, which exits the process when
 *   cuInit fails (a fake plugin that links a fake libcuda.so.1), and a
 *   hint naming the NVIDIA driver when libcuda.so.1 is missing;
 * - NCCL_DYNAMIC_CHUNK_SIZE set before init (without it TCPX's sends
 *   above the inline size never complete; FakeTCPX refuses init);
 * - a missing RxDM named in the error, with what to do;
 * - a broken file at TCPX's default location is an error, never a silent
 *   fall-back to TCP (a private mount namespace; skipped when not root).
 * The rest of the loader is tested by test_loader.c. */
#include <dlfcn.h>
#include <sys/stat.h>

#include "loader_common.h"
#include "plugin.h"

/* ---- CUDA check (fake libcuda.so.1; each in a fresh child) ----------- */

static int load_needs_cuda(const char *init_result, const char *devices,
                           int *init_calls, int *rc) {
  setenv("FAKE_CUDA_INIT_RESULT", init_result, 1);
  setenv("FAKE_CUDA_DEVICES", devices, 1);
  void *own = dlopen(FAKE("fake-needs-cuda"), RTLD_NOW | RTLD_LOCAL);
  CHECK(own != NULL);
  int *calls = dlsym(own, "fake_init_calls");
  CHECK(calls != NULL);
  net_transport *t = NULL;
  *rc = net_plugin_load(FAKE("fake-needs-cuda"), 0, &t);
  *init_calls = *calls;
  if (t) t->ops->destroy(t);
  return 0;
}

static int cuda_error_child(void) {
  int calls, rc;
  CHECK_EQ(load_needs_cuda("100", "1", &calls, &rc), 0);
  CHECK_EQ(rc, NET_ECUDA);
  CHECK_EQ(calls, 0);
  CHECK_STR_CONTAINS(err_get(), "CUDA not usable (cuInit error 100): "
                     "fake-needs-cuda would exit the process in its init; "
                     "not calling it");
  return 0;
}

static int cuda_no_device_child(void) {
  int calls, rc;
  CHECK_EQ(load_needs_cuda("0", "0", &calls, &rc), 0);
  CHECK_EQ(rc, NET_ECUDA);
  CHECK_EQ(calls, 0);
  CHECK_STR_CONTAINS(err_get(), "CUDA not usable");
  CHECK_STR_CONTAINS(err_get(), "sees 0 devices");
  return 0;
}

static int cuda_working_child(void) {
  int calls, rc;
  CHECK_EQ(load_needs_cuda("0", "2", &calls, &rc), 0);
  CHECK_EQ(rc, NET_OK);
  CHECK_EQ(calls, 1);
  return 0;
}

static int test_cuda_failure_refuses_before_init(void) {
  return in_child(cuda_error_child);
}

static int test_cuda_without_devices_refuses_before_init(void) {
  return in_child(cuda_no_device_child);
}

static int test_working_cuda_lets_init_run(void) {
  return in_child(cuda_working_child);
}

static int missing_driver_child(void) {
  net_transport *t;
  int rc = net_plugin_load(FAKE("fake-needs-cuda-nopath"), 0, &t);
  if (rc == NET_OK || !strstr(err_get(), "libcuda.so.1"))
    return skip("libcuda.so.1 is installed on this host (%s)",
                rc == NET_OK ? "the plugin loaded" : err_get());
  CHECK_EQ(rc, NET_ESYS);
  CHECK_STR_CONTAINS(err_get(), "libcuda.so.1: cannot open shared object");
  CHECK_STR_CONTAINS(err_get(), "NVIDIA driver");
  return 0;
}

static int test_missing_driver_gets_hint(void) {
  return in_child(missing_driver_child);
}

/* ---- NCCL_DYNAMIC_CHUNK_SIZE (FakeTCPX: init fails without it) ------------- */

#define STRICT_TCPX FAKE("fake-tcpx-host")

static int chunk_unset_child(void) {
  unsetenv("NCCL_DYNAMIC_CHUNK_SIZE");
  net_transport *t;
  CHECK_EQ(net_plugin_load(STRICT_TCPX, 0, &t), NET_OK);
  CHECK(getenv("NCCL_DYNAMIC_CHUNK_SIZE") != NULL);
  CHECK_STR_CONTAINS(getenv("NCCL_DYNAMIC_CHUNK_SIZE"), "524288");
  t->ops->destroy(t);
  return 0;
}

static int chunk_user_value_child(void) {
  setenv("NCCL_DYNAMIC_CHUNK_SIZE", "1048576", 1);
  net_transport *t;
  CHECK_EQ(net_plugin_load(STRICT_TCPX, 0, &t), NET_OK);
  CHECK_STR_CONTAINS(getenv("NCCL_DYNAMIC_CHUNK_SIZE"), "1048576");
  t->ops->destroy(t);
  return 0;
}

static int chunk_bad_value_child(void) {
  setenv("NCCL_DYNAMIC_CHUNK_SIZE", "0", 1);
  net_transport *t;
  CHECK_EQ(net_plugin_load(STRICT_TCPX, 0, &t), NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "NCCL_DYNAMIC_CHUNK_SIZE=0: expected a positive");
  return 0;
}

static int test_dynamic_chunk_size_set_before_init(void) {
  return in_child(chunk_unset_child);
}
static int test_dynamic_chunk_size_user_value_kept(void) {
  return in_child(chunk_user_value_child);
}
static int test_dynamic_chunk_size_bad_value_refused(void) {
  return in_child(chunk_bad_value_child);
}

/* TCPX without RxDM: the warning comes a call before the failure; the
 * error still quotes it and says what to do. */
static int no_rxdm_child(void) {
  setenv("FAKE_TCPX_NO_RXDM", "1", 1);
  setenv("NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX", "/run/nowhere", 1);
  net_transport *t;
  CHECK_EQ(net_plugin_load(STRICT_TCPX, 0, &t), NET_OK);
  char handle[NET_HANDLE_SIZE];
  void *lc, *rc = NULL;
  net_dev_handle dh = {0}, *dhp = &dh;
  CHECK_EQ(net_call(t, listen, 0, handle, &lc), NET_OK);
  CHECK_EQ(net_call(t, accept, lc, &rc, &dhp), NET_OK); /* warns, pending */
  CHECK(net_call(t, accept, lc, &rc, &dhp) != NET_OK);
  CHECK_STR_CONTAINS(err_get(), "receive-datapath-manager");
  CHECK_STR_CONTAINS(err_get(), "RxDM not reachable under UNIX_CLIENT_PREFIX "
                                "/run/nowhere");
  net_call(t, close_listen, lc);
  t->ops->destroy(t);
  return 0;
}

static int test_missing_rxdm_named_in_the_error(void) {
  return in_child(no_rxdm_child);
}

/* ---- the default location (private mount namespace in a child) ------ */

/* A file at the GPUDirect-TCPX default location that does not load is an
 * error naming the way out, never a silent fall-back to TCP. */
static int tcpx_location_child(void) {
  int rc = private_mounts();
  if (rc) return rc;
  if (mount("tmpfs", "/usr/local", "tmpfs", 0, "size=16m") != 0)
    return skip("mount tmpfs on /usr/local: %s", strerror(errno));
  CHECK_EQ(mkdir("/usr/local/tcpx", 0755), 0);
  CHECK_EQ(mkdir("/usr/local/tcpx/lib64", 0755), 0);
  CHECK_EQ(write_text_file("/usr/local/tcpx/lib64/libnccl-net-tcpx.so"), 0);
  net_transport *t = NULL;
  CHECK(net_open(NULL, 0, NULL, &t) != NET_OK);
  CHECK(t == NULL);
  CHECK_STR_CONTAINS(err_get(), "/usr/local/tcpx/lib64/libnccl-net-tcpx.so");
  CHECK_STR_CONTAINS(err_get(), "dlopen failed");
  CHECK_STR_CONTAINS(err_get(), BUILTIN_HINT_TEXT);
  setenv("TCPX_P2P_NET_PLUGIN", "builtin", 1);
  CHECK_EQ(net_open(NULL, 0, NULL, &t), NET_OK);
  CHECK_EQ(t->abi_version, 0);
  t->ops->destroy(t);
  return 0;
}

static int test_broken_tcpx_location_is_an_error(void) {
  if (geteuid() != 0) {
    skip("not root: cannot mount over /usr/local");
    return 0;
  }
  return in_child(tcpx_location_child);
}

/* ---- runner ---------------------------------------------------------- */

LOADER_CASE(test_cuda_failure_refuses_before_init)
LOADER_CASE(test_cuda_without_devices_refuses_before_init)
LOADER_CASE(test_working_cuda_lets_init_run)
LOADER_CASE(test_missing_driver_gets_hint)
LOADER_CASE(test_dynamic_chunk_size_set_before_init)
LOADER_CASE(test_dynamic_chunk_size_user_value_kept)
LOADER_CASE(test_dynamic_chunk_size_bad_value_refused)
LOADER_CASE(test_missing_rxdm_named_in_the_error)
LOADER_CASE(test_broken_tcpx_location_is_an_error)

static const check_case cases[] = {
    LOADER_ENTRY(test_cuda_failure_refuses_before_init),
    LOADER_ENTRY(test_cuda_without_devices_refuses_before_init),
    LOADER_ENTRY(test_working_cuda_lets_init_run),
    LOADER_ENTRY(test_missing_driver_gets_hint),
    LOADER_ENTRY(test_dynamic_chunk_size_set_before_init),
    LOADER_ENTRY(test_dynamic_chunk_size_user_value_kept),
    LOADER_ENTRY(test_dynamic_chunk_size_bad_value_refused),
    LOADER_ENTRY(test_missing_rxdm_named_in_the_error),
    LOADER_ENTRY(test_broken_tcpx_location_is_an_error),
};

CHECK_MAIN(cases)
