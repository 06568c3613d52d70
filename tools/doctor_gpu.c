/* doctor: the CUDA driver and its GPUs (through the engine's run-time
 * loader, as the engine will see them), and which data NIC each GPU's
 * traffic would use. */
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "doctor.h"

/* ---- cuda ---- */

static void fix_for_cuda_error(doc_check *c, const char *msg) {
  if (strstr(msg, "not found"))
    doc_fix(c, "Install the NVIDIA driver (it provides libcuda.so.1); in a "
            "container, mount the driver's libraries (GKE: "
            "/usr/local/nvidia/lib64) and add them to LD_LIBRARY_PATH, or "
            "set TCPX_P2P_CUDA_LIB to libcuda.so.1's path.");
  else if (strstr(msg, "no GPU") || strstr(msg, "0 GPUs"))
    doc_fix(c, "Check CUDA_VISIBLE_DEVICES and that /dev/nvidia* exist "
            "(containers: pass the GPU devices in); `nvidia-smi` should "
            "list the GPUs.");
  else
    doc_fix(c, "The driver refused: `nvidia-smi` shows why (driver and "
            "kernel module versions must match).");
}

/* Where libcuda.so.1 was found. */
static void library_path(gpu_cuda *cuda, char *out, size_t len) {
  struct link_map *map = NULL;
  snprintf(out, len, "unknown");
  if (dlinfo(cuda->lib, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name &&
      *map->l_name)
    snprintf(out, len, "%s", map->l_name);
}

static void list_gpus(gpu_cuda *cuda, doc_check *c) {
  doc_buf json = {0}, text = {0};
  buf_printf(&json, "[");
  for (int g = 0; g < cuda->ndevices; g++) {
    char bus[64];
    if (gpu_bus_id(cuda, g, bus, sizeof bus) != NET_OK)
      snprintf(bus, sizeof bus, "unknown (%s)", err_get());
    buf_printf(&json, "%s{\"index\":%d,\"bus_id\":", g ? "," : "", g);
    buf_json_string(&json, bus);
    buf_printf(&json, "}");
    buf_printf(&text, "%s%d:%s", g ? " " : "", g, bus);
  }
  buf_printf(&json, "]");
  if (!json.oom && !text.oom) doc_raw(c, "gpus", buf_text(&text), buf_text(&json));
  buf_free(&json);
  buf_free(&text);
}

void doc_check_cuda(doc_host *h, doc_check *c) {
  const char *env = getenv("TCPX_P2P_CUDA_LIB");
  if (gpu_cuda_load(&h->cuda) != NET_OK) {
    h->cuda = NULL;
    doc_status_at_least(c, DOC_FAIL);
    doc_summary(c, "%s", err_get());
    if (env && *env) doc_str(c, 1, "library", "%s (TCPX_P2P_CUDA_LIB)", env);
    fix_for_cuda_error(c, err_get());
    return;
  }
  gpu_cuda *cuda = h->cuda;
  char lib[1024];
  library_path(cuda, lib, sizeof lib);
  doc_summary(c, "driver CUDA %d.%d, %d GPU%s", cuda->driver_version / 1000,
              cuda->driver_version % 1000 / 10, cuda->ndevices,
              cuda->ndevices == 1 ? "" : "s");
  doc_str(c, 1, "library", "%s", lib);
  doc_int(c, 0, "driver_version", cuda->driver_version);
  doc_int(c, 0, "gpu_count", cuda->ndevices);
  list_gpus(cuda, c);
}

/* ---- affinity ---- */

/* The data NICs as the affinity code takes them. */
static net_props *nic_props(const doc_host *h) {
  net_props *props = calloc((size_t)h->nnics, sizeof *props);
  for (int i = 0; props && i < h->nnics; i++) {
    props[i].name = h->nics[i].name;
    props[i].pci_path = h->nics[i].pci_path;
  }
  return props;
}

typedef struct gpu_nic_map {
  doc_buf text, json;
  int *used;       /* per NIC: how many GPUs picked it */
  int undecided;   /* GPUs for which no NIC was nearer than another */
  int failed;
} gpu_nic_map;

static void map_one_gpu(doc_host *h, const net_props *props, int g,
                        gpu_nic_map *m) {
  int devs[64], n = 0;
  if (gpu_nics_for_gpu(h->cuda, g, props, h->nnics, devs, 64, &n) != NET_OK) {
    buf_printf(&m->text, "%sGPU %d: %s", m->text.len ? "; " : "", g,
               err_get());
    m->failed++;
    return;
  }
  buf_printf(&m->text, "%s%d:", m->text.len ? ";" : "", g);
  buf_printf(&m->json, "%s{\"gpu\":%d,\"nics\":[",
             m->json.len > 1 ? "," : "", g);
  for (int i = 0; i < n; i++) {
    buf_printf(&m->text, "%s%s", i ? "," : "", props[devs[i]].name);
    buf_printf(&m->json, "%s", i ? "," : "");
    buf_json_string(&m->json, props[devs[i]].name);
    m->used[devs[i]]++;
  }
  buf_printf(&m->json, "]}");
  if (n == h->nnics && h->nnics > 1) m->undecided++;
}

static void judge_map(doc_host *h, doc_check *c, const gpu_nic_map *m,
                      int by_spec) {
  int idle = 0;
  for (int i = 0; i < h->nnics; i++) idle += m->used[i] == 0;
  if (m->failed) {
    doc_status_at_least(c, DOC_FAIL);
    doc_summary(c, "no NIC choice for %d GPU%s", m->failed,
                m->failed == 1 ? "" : "s");
    doc_fix(c, by_spec ? "Fix TCPX_P2P_GPU_NICS (syntax "
            "\"0:eth1;1:eth1;2:eth2\", names of data NICs)."
            : "See the error: the GPU's sysfs PCI path could not be read.");
  } else if (m->undecided && !by_spec) {
    doc_status_at_least(c, DOC_WARN);
    doc_summary(c, "for %d GPU%s no data NIC is nearer than another (PCI "
                "paths unknown): traffic may cross the root complex",
                m->undecided, m->undecided == 1 ? "" : "s");
    doc_fix(c, "Pin by hand with TCPX_P2P_GPU_NICS (A3: "
            "\"0:eth1;1:eth1;2:eth2;3:eth2;4:eth3;5:eth3;6:eth4;7:eth4\").");
  } else if (idle) {
    doc_status_at_least(c, DOC_WARN);
    doc_summary(c, "%d data NIC%s nearest to no GPU: %s bandwidth unused",
                idle, idle == 1 ? " is" : "s are",
                idle == 1 ? "its" : "their");
    doc_fix(c, "Check NCCL_GPUDIRECTTCPX_SOCKET_IFNAME lists the NICs on "
            "the GPUs' PCIe switches, or set TCPX_P2P_GPU_NICS.");
  } else {
    doc_summary(c, "every GPU has a near data NIC and every data NIC a GPU");
  }
}

void doc_check_affinity(doc_host *h, doc_check *c) {
  if (!h->cuda || h->nnics <= 0) {
    doc_status_at_least(c, DOC_SKIP);
    doc_summary(c, "needs GPUs and data NICs (see %s)",
                h->cuda ? "nics" : "cuda");
    return;
  }
  const char *spec = getenv(GPU_NICS_ENV);
  int by_spec = spec && *spec;
  gpu_nic_map m = {{0}, {0}, calloc((size_t)h->nnics, sizeof(int)), 0, 0};
  net_props *props = nic_props(h);
  if (!props || !m.used) {
    doc_status_at_least(c, DOC_SKIP);
    doc_summary(c, "out of memory");
  } else {
    buf_printf(&m.json, "[");
    for (int g = 0; g < h->cuda->ndevices; g++) map_one_gpu(h, props, g, &m);
    buf_printf(&m.json, "]");
    doc_str(c, 1, "source", "%s", by_spec ? GPU_NICS_ENV
                                          : "nearest by sysfs PCI path");
    if (!m.text.oom && !m.json.oom)
      doc_raw(c, "map", buf_text(&m.text), buf_text(&m.json));
    judge_map(h, c, &m, by_spec);
  }
  free(props);
  free(m.used);
  buf_free(&m.text);
  buf_free(&m.json);
}
