/* tcpx-p2p devices: open the transport the engine would use and print what
 * it reports for each device, with the host interface behind it. Nothing is
 * invented: unknown values print as "unknown" (JSON: null). */
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "err.h"
#include "net.h"
#include "plugin.h"
#include "affinity.h"
#include "cudadrv.h"
#include "json.h"
#include "tools.h"

typedef struct devices_args {
  const char *plugin; /* NULL: the engine's selection order */
  int version;        /* 0: highest the plugin exports */
  int json;
} devices_args;

static void print_devices_usage(FILE *out) {
  fprintf(out,
          "usage: tcpx-p2p devices [--plugin PATH] [--version N] [--json]\n"
          "\n"
          "Open the transport the engine would use and list its devices.\n"
          "  --plugin PATH  NCCL net plugin to load (a path, a NAME for\n"
          "                 libnccl-net-NAME.so, or \"builtin\"); default:\n"
          "                 $TCPX_P2P_NET_PLUGIN, $NCCL_NET_PLUGIN, the\n"
          "                 usual TCPX paths, then the built-in TCP transport\n"
          "  --version N    use ncclNet_vN of the plugin (%d..%d)\n"
          "  --json         one JSON object per device, one per line\n",
          NET_PLUGIN_MIN_VERSION, NET_PLUGIN_MAX_VERSION);
}

/* ---- arguments ---- */

static int usage_error(const char *fmt, ...) P2P_PRINTF(1, 2);

static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "tcpx-p2p devices: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n\n");
  va_end(ap);
  print_devices_usage(stderr);
  return TOOL_USAGE;
}

static int parse_version(const char *text, int *version) {
  char *end;
  long v = strtol(text, &end, 10);
  if (end == text || *end || v < NET_PLUGIN_MIN_VERSION ||
      v > NET_PLUGIN_MAX_VERSION)
    return usage_error("--version wants a number from %d to %d, not '%s'",
                       NET_PLUGIN_MIN_VERSION, NET_PLUGIN_MAX_VERSION, text);
  *version = (int)v;
  return TOOL_OK;
}

/* Returns TOOL_OK, TOOL_USAGE, or -1 when --help was printed. */
static int parse_devices_args(int argc, char **argv, devices_args *a) {
  memset(a, 0, sizeof *a);
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    int has_value = i + 1 < argc;
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      print_devices_usage(stdout);
      return -1;
    } else if (strcmp(arg, "--json") == 0) {
      a->json = 1;
    } else if (strcmp(arg, "--plugin") == 0 && has_value) {
      a->plugin = argv[++i];
    } else if (strcmp(arg, "--version") == 0 && has_value) {
      if (parse_version(argv[++i], &a->version) != TOOL_OK) return TOOL_USAGE;
    } else if (strcmp(arg, "--plugin") == 0 || strcmp(arg, "--version") == 0) {
      return usage_error("%s needs a value", arg);
    } else {
      return usage_error("unknown argument '%s'", arg);
    }
  }
  return TOOL_OK;
}

/* ---- what the host knows about a device name ---- */

/* All IPv4 and IPv6 addresses of interface `name`, comma-separated in
 * `buf`. Returns how many there are. */
static int iface_addresses(struct ifaddrs *all, const char *name, char *buf,
                           size_t size) {
  int n = 0;
  buf[0] = '\0';
  for (struct ifaddrs *ifa = all; ifa; ifa = ifa->ifa_next) {
    if (!ifa->ifa_addr || strcmp(ifa->ifa_name, name) != 0) continue;
    int family = ifa->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in)
                                      : sizeof(struct sockaddr_in6);
    char host[NI_MAXHOST];
    if (getnameinfo(ifa->ifa_addr, len, host, sizeof host, NULL, 0,
                    NI_NUMERICHOST) != 0)
      continue;
    size_t used = strlen(buf);
    snprintf(buf + used, size - used, "%s%s", n ? "," : "", host);
    n++;
  }
  return n;
}

static const char *ptr_names(int bits, char *buf, size_t size) {
  snprintf(buf, size, "%s%s%s", bits & NCCL_PTR_HOST ? ",HOST" : "",
           bits & NCCL_PTR_CUDA ? ",CUDA" : "",
           bits & NCCL_PTR_DMABUF ? ",DMABUF" : "");
  return buf[0] ? buf + 1 : "none";
}

static const char *dev_type_name(const net_props *p, char *buf, size_t size) {
  if (p->dev_type == NCCL_NET_DEVICE_HOST) return "host";
  if (p->dev_type == NCCL_NET_DEVICE_UNPACK)
    snprintf(buf, size, "unpack v%d", p->dev_version);
  else
    snprintf(buf, size, "type %d v%d", p->dev_type, p->dev_version);
  return buf;
}

/* ---- text output ---- */

static void print_transport(const net_transport *t, int ndev) {
  printf("plugin:      %s\n", t->path[0] ? t->path : "built-in");
  printf("transport:   %s\n", t->name);
  if (t->abi_version)
    printf("abi:         ncclNet_v%d\n", t->abi_version);
  else
    printf("abi:         built-in (no ncclNet version)\n");
  printf("devices:     %d\n", ndev);
}

static void print_device_text(int dev, const net_props *p,
                              struct ifaddrs *all) {
  char addrs[1024], ptrs[32], type[32];
  const char *name = p->name ? p->name : "";
  int is_iface = if_nametoindex(name) != 0;
  int naddrs = is_iface ? iface_addresses(all, name, addrs, sizeof addrs) : 0;
  printf("\ndevice %d: %s\n", dev, p->name ? p->name : "(no name)");
  printf("  addresses:   %s\n",
         !is_iface ? "- (not a network interface here)"
                   : naddrs ? addrs : "none");
  printf("  pci path:    %s\n", p->pci_path ? p->pci_path : "unknown");
  if (p->speed_mbps > 0)
    printf("  link speed:  %d Mb/s\n", p->speed_mbps);
  else
    printf("  link speed:  unknown\n");
  printf("  pointers:    %s\n", ptr_names(p->ptr_support, ptrs, sizeof ptrs));
  printf("  max comms:   %d\n", p->max_comms);
  printf("  max recvs:   %d\n", p->max_recvs);
  printf("  device type: %s\n", dev_type_name(p, type, sizeof type));
}

/* ---- JSON output ---- */

/* Most values fit the stack buffer; a longer one (a plugin may report any
 * name) gets a buffer of the size the escaper asked for. */
static void json_string(const char *s) {
  char small[512];
  size_t n = json_escape(s, small, sizeof small);
  char *big = n < sizeof small ? NULL : malloc(n + 1);
  if (big) json_escape(s, big, n + 1);
  /* out of memory: null, never a cut-off (invalid) literal */
  fputs(big ? big : n < sizeof small ? small : "null", stdout);
  free(big);
}

static void json_key_string(const char *key, const char *value) {
  printf(",\"%s\":", key);
  json_string(value);
}

/* A comma-separated list as a JSON array of strings. */
static void json_string_array(const char *key, const char *csv) {
  printf(",\"%s\":[", key);
  for (const char *p = csv; *p;) {
    size_t len = strcspn(p, ",");
    printf("%s\"%.*s\"", p == csv ? "" : ",", (int)len, p);
    p += len + (p[len] == ',');
  }
  putchar(']');
}

static void print_device_json(const net_transport *t, int dev,
                              const net_props *p, struct ifaddrs *all) {
  char addrs[1024] = "", ptrs[32];
  int is_iface = p->name && if_nametoindex(p->name) != 0;
  if (is_iface) iface_addresses(all, p->name, addrs, sizeof addrs);
  const char *ptr_list = ptr_names(p->ptr_support, ptrs, sizeof ptrs);
  printf("{\"dev\":%d", dev);
  json_key_string("name", p->name);
  printf(",\"is_interface\":%s", is_iface ? "true" : "false");
  json_string_array("addresses", addrs);
  json_key_string("pci_path", p->pci_path);
  if (p->speed_mbps > 0)
    printf(",\"speed_mbps\":%d", p->speed_mbps);
  else
    printf(",\"speed_mbps\":null");
  json_string_array("ptr_support", p->ptr_support ? ptr_list : "");
  printf(",\"max_comms\":%d,\"max_recvs\":%d", p->max_comms, p->max_recvs);
  json_key_string("dev_type",
                  p->dev_type == NCCL_NET_DEVICE_HOST     ? "host"
                  : p->dev_type == NCCL_NET_DEVICE_UNPACK ? "unpack"
                                                          : "other");
  printf(",\"dev_type_id\":%d,\"dev_version\":%d", p->dev_type,
         p->dev_version);
  json_key_string("transport", t->name);
  json_key_string("plugin", t->path[0] ? t->path : NULL);
  if (t->abi_version)
    printf(",\"abi_version\":%d}\n", t->abi_version);
  else
    printf(",\"abi_version\":null}\n");
}

/* ---- checks and the command ---- */

static int same_name(const net_props *a, const net_props *b) {
  return a->name && b->name && strcmp(a->name, b->name) == 0;
}

/* Several devices may be one NIC (docs/NET_ABI.md): say so, once per name. */
static void warn_shared_names(const net_props *props, int ndev) {
  for (int i = 0; i < ndev; i++) {
    int seen = 0, shared = 0;
    for (int j = 0; j < i; j++) seen |= same_name(&props[j], &props[i]);
    for (int j = i + 1; j < ndev && !seen; j++) {
      if (!same_name(&props[j], &props[i])) continue;
      if (!shared) fprintf(stderr, "warning: devices %d", i);
      fprintf(stderr, ", %d", j);
      shared = 1;
    }
    if (shared)
      fprintf(stderr, " report the same name \"%s\": they may be one NIC\n",
              props[i].name);
  }
}

static int read_all_props(net_transport *t, int ndev, net_props *props) {
  for (int dev = 0; dev < ndev; dev++) {
    memset(&props[dev], 0, sizeof props[dev]);
    if (net_call(t, get_properties, dev, &props[dev]) != NET_OK) {
      fprintf(stderr, "tcpx-p2p devices: device %d: %s\n", dev, err_get());
      return TOOL_FAILED;
    }
  }
  return TOOL_OK;
}

/* GPU -> nearest devices (TCPX_P2P_GPU_NICS, else sysfs PCI distance), as
 * the endpoint of each GPU will pick them. Nothing when CUDA is absent. */
static void print_gpu_map(const net_props *props, int ndev, int json) {
  gpu_cuda *cuda;
  if (gpu_cuda_load(&cuda) != NET_OK) {
    if (!json) printf("GPU -> NIC map: no GPU (%s)\n", err_get());
    return;
  }
  if (!json) printf("GPU -> NIC map (%s):\n", getenv(GPU_NICS_ENV)
                        ? GPU_NICS_ENV : "nearest by sysfs PCI path");
  for (int g = 0; g < cuda->ndevices; g++) {
    int devs[64], n = 0;
    char path[512] = "unknown";
    gpu_pci_path(cuda, g, path, sizeof path);
    if (gpu_nics_for_gpu(cuda, g, props, ndev, devs, 64, &n) != NET_OK) {
      fprintf(stderr, "tcpx-p2p devices: GPU %d: %s\n", g, err_get());
      continue;
    }
    printf(json ? "{\"gpu\": %d, \"pci_path\": \"%s\", \"devices\": [" : "  GPU %d (%s):", g, path);
    for (int i = 0; i < n; i++)
      printf(json ? "%s%d" : "%s %d (%s)", json && i ? ", " : "", devs[i],
             json ? "" : props[devs[i]].name);
    printf(json ? "]}\n" : "\n");
  }
}

static int list_devices(net_transport *t, int json) {
  int ndev = 0;
  if (net_call(t, devices, &ndev) != NET_OK) {
    fprintf(stderr, "tcpx-p2p devices: %s\n", err_get());
    return TOOL_FAILED;
  }
  net_props *props = calloc(ndev > 0 ? (size_t)ndev : 1, sizeof *props);
  struct ifaddrs *all = NULL;
  int rc = TOOL_FAILED;
  if (!props || getifaddrs(&all) != 0)
    perror("tcpx-p2p devices: getifaddrs");
  else
    rc = read_all_props(t, ndev, props);
  if (rc == TOOL_OK) {
    if (!json) print_transport(t, ndev);
    for (int dev = 0; dev < ndev; dev++) {
      if (json)
        print_device_json(t, dev, &props[dev], all);
      else
        print_device_text(dev, &props[dev], all);
    }
    warn_shared_names(props, ndev);
    print_gpu_map(props, ndev, json);
  }
  if (rc == TOOL_OK && ndev <= 0) {
    fprintf(stderr, "tcpx-p2p devices: transport %s reports no devices\n",
            t->name);
    rc = TOOL_FAILED;
  }
  if (all) freeifaddrs(all);
  free(props);
  return rc;
}

int cmd_devices(int argc, char **argv) {
  devices_args a;
  int rc = parse_devices_args(argc, argv, &a);
  if (rc != TOOL_OK) return rc < 0 ? TOOL_OK : rc;
  net_transport *t = NULL;
  if (net_open(a.plugin, a.version, NULL, &t) != NET_OK) {
    fprintf(stderr, "%s\n", err_get());
    return TOOL_FAILED;
  }
  rc = list_devices(t, a.json);
  fflush(stdout);
  t->ops->destroy(t);
  return rc;
}
