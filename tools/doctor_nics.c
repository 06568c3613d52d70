/* doctor: the data NICs GPUDirect-TCPX would use
 * (NCCL_GPUDIRECTTCPX_SOCKET_IFNAME, else its own guess), what each one is
 * (address, PCI device, driver, speed), and the control NIC. */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor.h"

#define IFNAME_ENV "NCCL_GPUDIRECTTCPX_SOCKET_IFNAME"
#define CTRL_ENV "NCCL_GPUDIRECTTCPX_CTRL_DEV"

/* The interface holding the IPv4 default route (on A3, eth0: the control
 * NIC, which is not a data NIC), read from /proc/net/route, which shows
 * the caller's network namespace. */
static void default_route_iface(char *out, size_t len) {
  out[0] = '\0';
  FILE *f = fopen("/proc/net/route", "r");
  if (!f) return;
  char line[512], name[64];
  unsigned long dest, gw, mask;
  unsigned flags;
  int refcnt, use, metric;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "%63s %lx %lx %x %d %d %d %lx", name, &dest, &gw, &flags,
               &refcnt, &use, &metric, &mask) == 8 &&
        dest == 0 && mask == 0) {
      snprintf(out, len, "%s", name);
      break;
    }
  }
  fclose(f);
}

/* The kernel driver behind a NIC's PCI device ("gve" for gVNIC). */
static void nic_driver(const topo_iface *nic, char *out, size_t len) {
  char link[PATH_MAX], real[PATH_MAX];
  snprintf(out, len, "unknown");
  if (!nic->pci_path) return;
  snprintf(link, sizeof link, "%s/driver", nic->pci_path);
  if (realpath(link, real)) snprintf(out, len, "%s", basename(real));
}

/* Is [s, s+len) a PCI address, "0000:06:00.0"? */
static int is_pci_address(const char *s, size_t len) {
  unsigned dom, bus, dev, fn;
  char tail;
  char part[32];
  if (len >= sizeof part) return 0;
  memcpy(part, s, len);
  part[len] = '\0';
  return sscanf(part, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) == 4;
}

/* The last PCI address in the NIC's device path (a virtio NIC's device is
 * a child of its PCI function). */
static void pci_bus_id(const topo_iface *nic, char *out, size_t len) {
  snprintf(out, len, "none");
  for (const char *p = nic->pci_path; p && *p;) {
    while (*p == '/') p++;
    size_t n = strcspn(p, "/");
    if (is_pci_address(p, n)) snprintf(out, len, "%.*s", (int)n, p);
    p += n;
  }
}

/* ---- choosing the data NICs when the variable is unset ---- */

/* Would a user list this one as a data NIC? A PCI NIC that is neither
 * loopback, the control NIC, nor the default route's. */
static int looks_like_data_nic(const topo_iface *nic, const char *ctrl,
                               const char *route) {
  if (nic->is_loopback || !nic->pci_path) return 0;
  if (ctrl && *ctrl && topo_filter_match(ctrl, nic->name)) return 0;
  return strcmp(nic->name, route) != 0;
}

/* Keep the data-NIC-looking entries of `all` (moved into a new array,
 * the rest freed); keep everything when none looks like one. Returns how
 * many looked like one. */
static int keep_data_nics(topo_iface *all, int n, doc_host *h) {
  char route[64];
  const char *ctrl = getenv(CTRL_ENV);
  default_route_iface(route, sizeof route);
  int keep = 0;
  for (int i = 0; i < n; i++) keep += looks_like_data_nic(&all[i], ctrl, route);
  topo_iface *v = keep ? calloc((size_t)keep, sizeof *v) : NULL;
  h->nics = all;
  h->nnics = n;
  if (!v) return keep;
  int k = 0;
  for (int i = 0; i < n; i++) {
    if (looks_like_data_nic(&all[i], ctrl, route))
      v[k++] = all[i];
    else
      free(all[i].pci_path);
  }
  free(all);
  h->nics = v;
  h->nnics = k;
  return keep;
}

static void name_list(const topo_iface *v, int n, doc_buf *b) {
  for (int i = 0; i < n; i++) buf_printf(b, "%s%s", i ? "," : "", v[i].name);
}

/* ---- describing and judging ---- */

static void describe_nics(doc_host *h, doc_check *c) {
  doc_buf json = {0};
  buf_printf(&json, "[");
  for (int i = 0; i < h->nnics; i++) {
    const topo_iface *nic = &h->nics[i];
    char driver[64], speed[32] = "speed unknown", bus[32], line[256];
    nic_driver(nic, driver, sizeof driver);
    pci_bus_id(nic, bus, sizeof bus);
    if (nic->speed_mbps > 0)
      snprintf(speed, sizeof speed, "%d Mb/s", nic->speed_mbps);
    snprintf(line, sizeof line, "%s, pci %s, driver %s, %s", nic->addr_str,
             bus, driver, speed);
    doc_raw(c, nic->name, line, NULL);
    buf_printf(&json, "%s{\"name\":", i ? "," : "");
    buf_json_string(&json, nic->name);
    buf_printf(&json, ",\"address\":");
    buf_json_string(&json, nic->addr_str);
    buf_printf(&json, ",\"pci_path\":");
    buf_json_string(&json, nic->pci_path);
    buf_printf(&json, ",\"driver\":");
    buf_json_string(&json, nic->pci_path ? driver : NULL);
    if (nic->speed_mbps > 0)
      buf_printf(&json, ",\"speed_mbps\":%d}", nic->speed_mbps);
    else
      buf_printf(&json, ",\"speed_mbps\":null}");
  }
  buf_printf(&json, "]");
  if (!json.oom) doc_raw(c, "interfaces", NULL, buf_text(&json));
  buf_free(&json);
}

static void judge_nics(doc_host *h, doc_check *c) {
  int virt = 0, loop = 0, other = 0;
  for (int i = 0; i < h->nnics; i++) {
    char driver[64];
    nic_driver(&h->nics[i], driver, sizeof driver);
    loop += h->nics[i].is_loopback;
    virt += !h->nics[i].is_loopback && !h->nics[i].pci_path;
    other += h->nics[i].pci_path && strcmp(driver, "gve") != 0;
  }
  if (loop) {
    doc_status_at_least(c, DOC_FAIL);
    doc_fix(c, "Loopback is not a data NIC: peers cannot reach it.");
  }
  if (virt) {
    doc_status_at_least(c, DOC_FAIL);
    doc_fix(c, "%d data NIC%s no PCI device (virtual): GPUDirect-TCPX "
            "registers GPU memory only on a PCI NIC; list the gVNIC data "
            "NICs instead.", virt, virt == 1 ? " has" : "s have");
  }
  if (other) {
    doc_status_at_least(c, DOC_WARN);
    doc_fix(c, "%d data NIC%s not driven by gve: GPUDirect-TCPX needs "
            "gVNIC (A3 VMs).", other, other == 1 ? " is" : "s are");
  }
}

/* The control NIC: a name that matches nothing is silently ignored by
 * GPUDirect-TCPX, so say so here. */
static void check_ctrl(doc_host *h, doc_check *c) {
  const char *ctrl = getenv(CTRL_ENV);
  if (!ctrl || !*ctrl) {
    doc_null(c, "ctrl_dev", "unset (GPUDirect-TCPX uses its default control "
             "sockets; A3: set " CTRL_ENV "=eth0)");
    return;
  }
  topo_iface *v = NULL;
  int n = 0;
  if (topo_find_ifaces(ctrl, 0, 1, &v, &n) != NET_OK) {
    doc_str(c, 1, "ctrl_dev", "%s matches no usable interface", ctrl);
    doc_status_at_least(c, DOC_WARN);
    doc_fix(c, "GPUDirect-TCPX ignores a " CTRL_ENV " that matches nothing: "
            "set it to the control NIC (A3: eth0).");
    return;
  }
  doc_str(c, 1, "ctrl_dev", "%s (%s)", ctrl, v[0].name);
  for (int i = 0; i < h->nnics; i++) {
    if (strcmp(h->nics[i].name, v[0].name) != 0) continue;
    doc_status_at_least(c, DOC_WARN);
    doc_fix(c, "%s is both the control NIC and a data NIC.", v[0].name);
  }
  topo_free_ifaces(v, n);
}

static int find_set(doc_host *h, doc_check *c, const char *want) {
  doc_str(c, 0, "socket_ifname", "%s", want);
  if (topo_find_ifaces(want, 0, 1, &h->nics, &h->nnics) == NET_OK) {
    doc_summary(c, "%d data NIC%s from " IFNAME_ENV "=%s", h->nnics,
                h->nnics == 1 ? "" : "s", want);
    return 1;
  }
  h->nics = NULL;
  h->nnics = 0;
  doc_status_at_least(c, DOC_FAIL);
  doc_summary(c, IFNAME_ENV "=%s matches no usable interface (plugin init "
              "fails: \"no interface found\")", want);
  doc_str(c, 1, "error", "%s", err_get());
  doc_fix(c, "Set " IFNAME_ENV " to the data NICs (A3: eth1,eth2,eth3,eth4; "
          "`ip -br addr` lists them; they must be up with an address).");
  return 0;
}

static int guess(doc_host *h, doc_check *c) {
  topo_iface *all = NULL;
  int n = 0;
  doc_null(c, "socket_ifname", NULL);
  if (topo_find_ifaces(NULL, 0, 1, &all, &n) != NET_OK) {
    doc_status_at_least(c, DOC_FAIL);
    doc_summary(c, "no usable interface at all: %s", err_get());
    doc_fix(c, "Bring the data NICs up with an address.");
    return 0;
  }
  doc_buf every = {0}, pick = {0};
  name_list(all, n, &every);
  int data = keep_data_nics(all, n, h);
  if (data) name_list(h->nics, h->nnics, &pick);
  doc_status_at_least(c, DOC_WARN);
  doc_summary(c, IFNAME_ENV " unset: GPUDirect-TCPX would use every "
              "interface (%s)", buf_text(&every));
  if (data) {
    doc_str(c, 0, "suggested", "%s", buf_text(&pick));
    doc_fix(c, "export " IFNAME_ENV "=%s (the PCI NICs other than the "
            "control and default-route one; A3: eth1,eth2,eth3,eth4).",
            buf_text(&pick));
  } else {
    doc_null(c, "suggested", NULL);
    doc_fix(c, "No interface here looks like a data NIC (a PCI NIC other "
            "than the control and default-route one); A3 VMs have four, "
            "eth1..eth4: export " IFNAME_ENV "=eth1,eth2,eth3,eth4.");
  }
  buf_free(&every);
  buf_free(&pick);
  return 1;
}

void doc_check_nics(doc_host *h, doc_check *c) {
  const char *want = getenv(IFNAME_ENV);
  /* GPUDirect-TCPX ignores a value of one character. */
  int found = want && strlen(want) > 1 ? find_set(h, c, want) : guess(h, c);
  if (found) {
    describe_nics(h, c);
    judge_nics(h, c);
  }
  check_ctrl(h, c);
}
