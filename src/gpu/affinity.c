/* GPU/NIC affinity from sysfs PCI paths, or TCPX_P2P_GPU_NICS (see
 * affinity.h). */
#include "affinity.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

int gpu_bus_id(gpu_cuda *c, int device, char *buf, size_t len) {
  gcu_device dev;
  char bus[64];
  int rc = gpu_cuda_check(c, c->cuDeviceGet(&dev, device), "cuDeviceGet(%d)",
                          device);
  if (rc == NET_OK)
    rc = gpu_cuda_check(c, c->cuDeviceGetPCIBusId(bus, sizeof bus, dev),
                        "cuDeviceGetPCIBusId(GPU %d)", device);
  if (rc != NET_OK) return rc;
  bus[sizeof bus - 1] = '\0';
  for (char *p = bus; *p; p++) *p = (char)tolower((unsigned char)*p);
  if (strlen(bus) >= len)
    return err_set(NET_EINVAL, "GPU %d: PCI bus id %s too long", device, bus);
  memcpy(buf, bus, strlen(bus) + 1);
  return NET_OK;
}

int gpu_pci_path(gpu_cuda *c, int device, char *buf, size_t len) {
  char bus[64];
  int rc = gpu_bus_id(c, device, bus, sizeof bus);
  if (rc != NET_OK) return rc;
  char link[128], real[PATH_MAX];
  snprintf(link, sizeof link, "/sys/bus/pci/devices/%s", bus);
  if (!realpath(link, real))
    return err_sys(NET_ESYS, errno, "GPU %d: realpath(%s)", device, link);
  if (strlen(real) >= len)
    return err_set(NET_EINVAL, "GPU %d: PCI path %s too long", device, real);
  memcpy(buf, real, strlen(real) + 1);
  return NET_OK;
}

/* The next component of `*p` (skipping '/'), its length in *len. */
static const char *next_component(const char **p, size_t *len) {
  while (**p == '/') (*p)++;
  const char *start = *p;
  while (**p && **p != '/') (*p)++;
  *len = (size_t)(*p - start);
  return *len ? start : NULL;
}

int gpu_path_common(const char *a, const char *b) {
  int shared = 0;
  if (!a || !b) return 0;
  for (;;) {
    size_t la, lb;
    const char *ca = next_component(&a, &la), *cb = next_component(&b, &lb);
    if (!ca || !cb || la != lb || memcmp(ca, cb, la)) return shared;
    shared++;
  }
}

static void all_devices(int ndev, int *out, int max, int *n) {
  *n = 0;
  for (int d = 0; d < ndev && *n < max; d++) out[(*n)++] = d;
}

int gpu_affinity_pick(const char *gpu_path, const net_props *props, int ndev,
                      int *out, int max, int *n) {
  int best = -1, worst = INT_MAX;
  for (int d = 0; d < ndev; d++) {
    int s = gpu_path_common(gpu_path, props[d].pci_path);
    if (s > best) best = s;
    if (s < worst) worst = s;
  }
  if (ndev == 0 || best == worst) { /* nobody is nearer: no preference */
    all_devices(ndev, out, max, n);
    return NET_OK;
  }
  *n = 0;
  for (int d = 0; d < ndev && *n < max; d++)
    if (gpu_path_common(gpu_path, props[d].pci_path) == best) out[(*n)++] = d;
  return NET_OK;
}

/* ---- TCPX_P2P_GPU_NICS -------------------------------------------------- */

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
  return s;
}

/* Append every device called `name`. */
static int add_by_name(const char *name, const net_props *props, int ndev,
                       int gpu, int *out, int max, int *n) {
  int matched = 0;
  for (int d = 0; d < ndev; d++) {
    if (!props[d].name || strcmp(props[d].name, name)) continue;
    matched = 1;
    if (*n < max) out[(*n)++] = d;
  }
  if (!matched)
    return err_set(NET_EINVAL, "%s names network device \"%s\" for GPU %d, "
                   "but no device of the transport has that name",
                   GPU_NICS_ENV, name, gpu);
  return NET_OK;
}

/* One "GPU:name,name" entry; *found = 1 when it is this GPU's. */
static int parse_entry(char *entry, int gpu, const net_props *props, int ndev,
                       int *out, int max, int *n, int *found) {
  char *colon = strchr(entry, ':'), *end;
  if (!colon)
    return err_set(NET_EINVAL, "%s: entry \"%s\" lacks ':' (want "
                   "\"0:eth1,eth2;1:eth3\")", GPU_NICS_ENV, trim(entry));
  *colon = '\0';
  long g = strtol(trim(entry), &end, 10);
  if (end == trim(entry) || *end)
    return err_set(NET_EINVAL, "%s: \"%s\" is not a GPU number", GPU_NICS_ENV,
                   trim(entry));
  if (g != gpu) return NET_OK;
  *found = 1;
  for (char *save = NULL, *name = strtok_r(colon + 1, ",", &save); name;
       name = strtok_r(NULL, ",", &save)) {
    int rc = add_by_name(trim(name), props, ndev, gpu, out, max, n);
    if (rc != NET_OK) return rc;
  }
  if (*n == 0)
    return err_set(NET_EINVAL, "%s: no network device listed for GPU %d",
                   GPU_NICS_ENV, gpu);
  return NET_OK;
}

int gpu_affinity_from_spec(const char *spec, int gpu, const net_props *props,
                           int ndev, int *out, int max, int *n, int *found) {
  *n = 0;
  *found = 0;
  if (!spec || !*spec) return NET_OK;
  char *copy = strdup(spec);
  if (!copy) return err_set(NET_ESYS, "%s: out of memory", GPU_NICS_ENV);
  int rc = NET_OK;
  for (char *save = NULL, *entry = strtok_r(copy, ";", &save);
       entry && rc == NET_OK && !*found; entry = strtok_r(NULL, ";", &save))
    if (*trim(entry)) rc = parse_entry(entry, gpu, props, ndev, out, max, n, found);
  free(copy);
  if (rc != NET_OK) *found = 0;
  return rc;
}

int gpu_nics_for_gpu(gpu_cuda *c, int gpu, const net_props *props, int ndev,
                     int *out, int max, int *n) {
  int found;
  int rc = gpu_affinity_from_spec(getenv(GPU_NICS_ENV), gpu, props, ndev, out,
                                  max, n, &found);
  if (rc != NET_OK || found) return rc;
  char path[PATH_MAX];
  if (gpu_pci_path(c, gpu, path, sizeof path) != NET_OK) {
    all_devices(ndev, out, max, n); /* no sysfs view: no preference */
    return NET_OK;
  }
  return gpu_affinity_pick(path, props, ndev, out, max, n);
}
