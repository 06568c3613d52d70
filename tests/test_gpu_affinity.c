/* GPU/NIC affinity without a GPU: sysfs path nearness and the
 * TCPX_P2P_GPU_NICS override, on made-up A3-like PCI trees. */
#include <string.h>

#include "affinity.h"
#include "check.h"

/* Two PCIe switches under one root port each; GPU 0 and eth1/eth2 share
 * switch A, eth3/eth4 sit behind switch B, eth0 on another root. */
#define ROOT "/sys/devices/pci0000:00"
#define SW_A ROOT "/0000:00:01.0/0000:01:00.0"
#define SW_B ROOT "/0000:00:02.0/0000:05:00.0"
static const char *gpu0 = SW_A "/0000:02:00.0/0000:03:00.0";
static const char *gpu4 = SW_B "/0000:06:00.0/0000:07:00.0";

static net_props props[] = {
    {.name = "eth0", .pci_path = "/sys/devices/pci0000:80/0000:80:01.0/0000:81:00.0"},
    {.name = "eth1", .pci_path = SW_A "/0000:02:01.0/0000:04:00.0"},
    {.name = "eth2", .pci_path = SW_A "/0000:02:02.0/0000:04:00.1"},
    {.name = "eth3", .pci_path = SW_B "/0000:06:01.0/0000:08:00.0"},
    {.name = "eth4", .pci_path = SW_B "/0000:06:02.0/0000:08:00.1"},
};
#define NDEV ((int)(sizeof props / sizeof props[0]))

static int test_path_common_counts_components(void) {
  CHECK_EQ(gpu_path_common("/a/b/c", "/a/b/d"), 2);
  CHECK_EQ(gpu_path_common("/a/b", "/a/bc"), 1);   /* whole components only */
  CHECK_EQ(gpu_path_common("/a//b/", "/a/b"), 2);  /* repeated '/' ignored */
  CHECK_EQ(gpu_path_common("/x", "/y"), 0);
  CHECK_EQ(gpu_path_common(NULL, "/a"), 0);
  CHECK_EQ(gpu_path_common(gpu0, props[1].pci_path), 5);
  return 0;
}

static int test_pick_nics_behind_the_same_switch(void) {
  int out[8], n = 0;
  CHECK_EQ(gpu_affinity_pick(gpu0, props, NDEV, out, 8, &n), NET_OK);
  CHECK_EQ(n, 2);
  CHECK_EQ(out[0], 1);
  CHECK_EQ(out[1], 2);
  CHECK_EQ(gpu_affinity_pick(gpu4, props, NDEV, out, 8, &n), NET_OK);
  CHECK_EQ(n, 2);
  CHECK_EQ(out[0], 3);
  CHECK_EQ(out[1], 4);
  CHECK_EQ(gpu_affinity_pick(gpu4, props, NDEV, out, 1, &n), NET_OK);
  CHECK_EQ(n, 1); /* `max` is respected */
  return 0;
}

static int test_pick_everything_without_paths(void) {
  net_props none[3] = {{.name = "a"}, {.name = "b"}, {.name = "c"}};
  int out[8], n = 0;
  CHECK_EQ(gpu_affinity_pick(gpu0, none, 3, out, 8, &n), NET_OK);
  CHECK_EQ(n, 3);
  CHECK_EQ(gpu_affinity_pick(NULL, props, NDEV, out, 8, &n), NET_OK);
  CHECK_EQ(n, NDEV);
  return 0;
}

static int test_spec_names_nics_per_gpu(void) {
  int out[8], n = 0, found = 0;
  const char *spec = "0:eth1,eth2; 1:eth1 ;4: eth3 , eth4";
  CHECK_EQ(gpu_affinity_from_spec(spec, 4, props, NDEV, out, 8, &n, &found),
           NET_OK);
  CHECK_EQ(found, 1);
  CHECK_EQ(n, 2);
  CHECK_EQ(out[0], 3);
  CHECK_EQ(out[1], 4);
  CHECK_EQ(gpu_affinity_from_spec(spec, 1, props, NDEV, out, 8, &n, &found),
           NET_OK);
  CHECK_EQ(n, 1);
  CHECK_EQ(out[0], 1);
  CHECK_EQ(gpu_affinity_from_spec(spec, 2, props, NDEV, out, 8, &n, &found),
           NET_OK);
  CHECK_EQ(found, 0); /* no entry: sysfs decides */
  CHECK_EQ(gpu_affinity_from_spec(NULL, 0, props, NDEV, out, 8, &n, &found),
           NET_OK);
  CHECK_EQ(found, 0);
  return 0;
}

static int test_spec_matches_every_device_of_a_name(void) {
  net_props twins[3] = {{.name = "eth1"}, {.name = "eth2"}, {.name = "eth1"}};
  int out[8], n = 0, found = 0;
  CHECK_EQ(gpu_affinity_from_spec("0:eth1", 0, twins, 3, out, 8, &n, &found),
           NET_OK);
  CHECK_EQ(n, 2);
  CHECK_EQ(out[0], 0);
  CHECK_EQ(out[1], 2);
  return 0;
}

static int test_spec_errors_name_the_problem(void) {
  int out[8], n = 0, found = 0;
  CHECK_EQ(gpu_affinity_from_spec("0=eth1", 0, props, NDEV, out, 8, &n,
                                  &found), NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "lacks ':'");
  CHECK_EQ(gpu_affinity_from_spec("x:eth1", 0, props, NDEV, out, 8, &n,
                                  &found), NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "not a GPU number");
  CHECK_EQ(gpu_affinity_from_spec("0:eth9", 0, props, NDEV, out, 8, &n,
                                  &found), NET_EINVAL);
  CHECK_STR_CONTAINS(err_get(), "\"eth9\"");
  CHECK_STR_CONTAINS(err_get(), GPU_NICS_ENV);
  CHECK_EQ(found, 0);
  CHECK_EQ(gpu_affinity_from_spec("0:", 0, props, NDEV, out, 8, &n, &found),
           NET_EINVAL);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_path_common_counts_components),
    CHECK_CASE(test_pick_nics_behind_the_same_switch),
    CHECK_CASE(test_pick_everything_without_paths),
    CHECK_CASE(test_spec_names_nics_per_gpu),
    CHECK_CASE(test_spec_matches_every_device_of_a_name),
    CHECK_CASE(test_spec_errors_name_the_problem),
};
CHECK_MAIN(cases)
