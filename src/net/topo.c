/* Host network discovery: which interfaces a transport may use, with their
 * addresses (getifaddrs) and their PCI path and link speed (sysfs). */
#include "topo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "err.h"
#include "net.h"

/* ---- filter (NCCL_SOCKET_IFNAME syntax) ---- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

/* Does the entry [entry, entry+len) select `ifname`? */
static int entry_matches(const char *entry, size_t len, const char *ifname,
                         int exact) {
  if (strncmp(ifname, entry, len) != 0) return 0;
  return !exact || ifname[len] == '\0';
}

/* Does any comma-separated entry of `list` select `ifname`? Blanks around
 * entries are ignored (interface names cannot contain them), and so are
 * empty entries, which would otherwise match every name as a prefix. */
static int list_matches(const char *list, const char *ifname, int exact) {
  const char *p = list;
  while (*p) {
    while (is_space(*p)) p++;
    const char *end = p + strcspn(p, ",");
    const char *last = end;
    while (last > p && is_space(last[-1])) last--;
    if (last > p && entry_matches(p, (size_t)(last - p), ifname, exact))
      return 1;
    p = *end ? end + 1 : end;
  }
  return 0;
}

int topo_filter_match(const char *filter, const char *ifname) {
  if (!filter || !*filter) return 1;
  int exclude = filter[0] == '^';
  if (exclude) filter++;
  int exact = filter[0] == '=';
  if (exact) filter++;
  int listed = list_matches(filter, ifname, exact);
  return exclude ? !listed : listed;
}

/* A filter "names" an interface when it is an include list that selects it:
 * only then are loopback and docker bridges offered without being asked. */
static int filter_names(const char *filter, const char *ifname) {
  return filter && *filter && filter[0] != '^' &&
         topo_filter_match(filter, ifname);
}

/* ---- sysfs ---- */

/* Read the first line of a small sysfs file, without its newline. */
static int read_sysfs_line(const char *path, char *buf, size_t size) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int ok = fgets(buf, (int)size, f) != NULL;
  fclose(f);
  if (!ok) return -1;
  buf[strcspn(buf, "\n")] = '\0';
  return 0;
}

/* This interface's MAC address as sysfs writes it ("aa:bb:..."), read from
 * the calling thread's own network namespace. */
static int own_hwaddr(const char *ifname, char *buf, size_t size) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  int rc = ioctl(fd, SIOCGIFHWADDR, &ifr);
  close(fd);
  if (rc != 0) return -1;
  const unsigned char *mac = (const unsigned char *)ifr.ifr_hwaddr.sa_data;
  snprintf(buf, size, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
           mac[2], mac[3], mac[4], mac[5]);
  return 0;
}

/* /sys shows the interfaces of the namespace it was mounted in, which is
 * not the caller's after setns(): trust /sys/class/net/NAME only when its
 * ifindex and MAC are those of NAME in the caller's namespace. */
static int sysfs_is_ours(const char *ifname) {
  char path[PATH_MAX], line[64], mac[32];
  snprintf(path, sizeof path, "/sys/class/net/%s/ifindex", ifname);
  if (read_sysfs_line(path, line, sizeof line) != 0) return 0;
  unsigned idx = if_nametoindex(ifname);
  if (idx == 0 || strtoul(line, NULL, 10) != idx) return 0;
  snprintf(path, sizeof path, "/sys/class/net/%s/address", ifname);
  if (read_sysfs_line(path, line, sizeof line) != 0) return 0;
  if (own_hwaddr(ifname, mac, sizeof mac) != 0) return 0;
  /* Addresses that are not 6 bytes long print shorter or longer. */
  size_t n = strlen(line) < strlen(mac) ? strlen(line) : strlen(mac);
  return n > 0 && strncmp(line, mac, n) == 0;
}

char *topo_pci_path(const char *ifname) {
  if (!ifname || !*ifname || strchr(ifname, '/') || !sysfs_is_ours(ifname))
    return NULL;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "/sys/class/net/%s/device", ifname);
  return realpath(path, NULL); /* NULL when absent: virtual interface */
}

int topo_link_speed(const char *ifname) {
  if (!ifname || !*ifname || strchr(ifname, '/') || !sysfs_is_ours(ifname))
    return 0;
  char path[PATH_MAX], line[64];
  snprintf(path, sizeof path, "/sys/class/net/%s/speed", ifname);
  if (read_sysfs_line(path, line, sizeof line) != 0) return 0;
  char *end;
  long mbps = strtol(line, &end, 10);
  if (end == line || mbps <= 0 || mbps > INT_MAX) return 0;
  return (int)mbps;
}

/* ---- the list being built ---- */

typedef struct iface_list {
  topo_iface *v;
  int n, cap;
} iface_list;

static topo_iface *list_find(iface_list *l, const char *name) {
  for (int i = 0; i < l->n; i++)
    if (strcmp(l->v[i].name, name) == 0) return &l->v[i];
  return NULL;
}

static topo_iface *list_add(iface_list *l, const char *name) {
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 8;
    topo_iface *v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) return NULL;
    l->v = v;
    l->cap = cap;
  }
  topo_iface *it = &l->v[l->n++];
  memset(it, 0, sizeof *it);
  snprintf(it->name, sizeof it->name, "%s", name);
  return it;
}

static int is_link_local_v6(const struct sockaddr *sa) {
  const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
  return IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr);
}

/* Should `sa` replace the address `it` holds? IPv4 beats IPv6, the first
 * IPv4 address stays, and a global IPv6 address beats a link-local one. */
static int address_is_better(const topo_iface *it, const struct sockaddr *sa) {
  if (it->family == 0) return 1;
  if (it->family == AF_INET) return 0;
  if (sa->sa_family == AF_INET) return 1;
  return is_link_local_v6((const struct sockaddr *)&it->addr) &&
         !is_link_local_v6(sa);
}

static int set_address(topo_iface *it, const struct sockaddr *sa,
                       unsigned flags) {
  socklen_t len = sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                           : sizeof(struct sockaddr_in6);
  int rc = getnameinfo(sa, len, it->addr_str, sizeof it->addr_str, NULL, 0,
                       NI_NUMERICHOST);
  if (rc != 0)
    return err_set(NET_ESYS, "getnameinfo for interface %s: %s", it->name,
                   gai_strerror(rc));
  memset(&it->addr, 0, sizeof it->addr);
  memcpy(&it->addr, sa, len);
  it->addr_len = len;
  it->family = sa->sa_family;
  it->is_loopback = (flags & IFF_LOOPBACK) != 0;
  return NET_OK;
}

/* ---- selection ---- */

enum pass { PASS_USUAL, PASS_LOOPBACK_ONLY };

typedef struct selection {
  const char *filter;
  int allow_loopback;
  int want_v6;
} selection;

/* lo (and other loopback devices) and docker bridges are not offered
 * unless asked for: peers on other hosts cannot reach them. */
static int hidden_by_default(const struct ifaddrs *ifa) {
  return (ifa->ifa_flags & IFF_LOOPBACK) ||
         strncmp(ifa->ifa_name, "docker", 6) == 0;
}

static int admits(const selection *s, const struct ifaddrs *ifa,
                  enum pass pass) {
  if (!ifa->ifa_addr || !(ifa->ifa_flags & IFF_UP)) return 0;
  int family = ifa->ifa_addr->sa_family;
  if (family != AF_INET && !(family == AF_INET6 && s->want_v6)) return 0;
  if (!topo_filter_match(s->filter, ifa->ifa_name)) return 0;
  if (pass == PASS_LOOPBACK_ONLY) return (ifa->ifa_flags & IFF_LOOPBACK) != 0;
  if (!hidden_by_default(ifa)) return 1;
  if (filter_names(s->filter, ifa->ifa_name)) return 1;
  return s->allow_loopback && (ifa->ifa_flags & IFF_LOOPBACK);
}

static int collect(const selection *s, struct ifaddrs *all, enum pass pass,
                   iface_list *out) {
  for (struct ifaddrs *ifa = all; ifa; ifa = ifa->ifa_next) {
    if (!admits(s, ifa, pass)) continue;
    topo_iface *it = list_find(out, ifa->ifa_name);
    if (!it && !(it = list_add(out, ifa->ifa_name)))
      return err_set(NET_ESYS, "topo: out of memory listing interfaces");
    if (!address_is_better(it, ifa->ifa_addr)) continue;
    int rc = set_address(it, ifa->ifa_addr, ifa->ifa_flags);
    if (rc != NET_OK) return rc;
  }
  return NET_OK;
}

static void add_sysfs_facts(iface_list *l) {
  for (int i = 0; i < l->n; i++) {
    l->v[i].pci_path = topo_pci_path(l->v[i].name);
    l->v[i].speed_mbps = topo_link_speed(l->v[i].name);
  }
}

/* ---- the error when nothing matches ---- */

static void append(char *buf, size_t size, const char *text) {
  size_t used = strlen(buf);
  if (used < size) snprintf(buf + used, size - used, "%s", text);
}

/* Why `name` may not have been usable, for the error text. */
static const char *iface_state(struct ifaddrs *all, const char *name) {
  int up = 0, v4 = 0;
  for (struct ifaddrs *ifa = all; ifa; ifa = ifa->ifa_next) {
    if (strcmp(ifa->ifa_name, name) != 0) continue;
    up |= (ifa->ifa_flags & IFF_UP) != 0;
    v4 |= ifa->ifa_addr && ifa->ifa_addr->sa_family == AF_INET;
    if (ifa->ifa_flags & IFF_LOOPBACK) return " (loopback)";
  }
  if (!up) return " (down)";
  return v4 ? "" : " (no IPv4 address)";
}

static int seen_before(struct ifaddrs *all, struct ifaddrs *stop) {
  for (struct ifaddrs *ifa = all; ifa != stop; ifa = ifa->ifa_next)
    if (strcmp(ifa->ifa_name, stop->ifa_name) == 0) return 1;
  return 0;
}

static int no_match_error(const selection *s, struct ifaddrs *all) {
  char present[P2P_ERR_MAX] = "";
  for (struct ifaddrs *ifa = all; ifa; ifa = ifa->ifa_next) {
    if (seen_before(all, ifa)) continue;
    if (present[0]) append(present, sizeof present, ", ");
    append(present, sizeof present, ifa->ifa_name);
    append(present, sizeof present, iface_state(all, ifa->ifa_name));
  }
  char wanted[P2P_ERR_MAX / 2] = "found (no interface filter set)";
  if (s->filter && *s->filter)
    snprintf(wanted, sizeof wanted,
             "matches interface filter \"%s\" (NCCL_SOCKET_IFNAME syntax)",
             s->filter);
  return err_set(NET_EINVAL,
                 "no usable network interface (up, with an IPv4%s address) "
                 "%s; interfaces present: %s",
                 s->want_v6 ? " or IPv6" : "", wanted,
                 present[0] ? present : "none");
}

/* ---- entry point ---- */

int topo_find_ifaces(const char *filter, int allow_loopback, int want_v6,
                     topo_iface **out, int *count) {
  if (!out || !count)
    return err_set(NET_EINVAL, "topo_find_ifaces: NULL output argument");
  *out = NULL;
  *count = 0;
  struct ifaddrs *all = NULL;
  if (getifaddrs(&all) != 0)
    return err_sys(NET_ESYS, errno, "getifaddrs");
  selection s = {filter, allow_loopback, want_v6};
  iface_list l = {NULL, 0, 0};
  int rc = collect(&s, all, PASS_USUAL, &l);
  if (rc == NET_OK && l.n == 0) rc = collect(&s, all, PASS_LOOPBACK_ONLY, &l);
  if (rc == NET_OK && l.n == 0) rc = no_match_error(&s, all);
  freeifaddrs(all);
  if (rc != NET_OK) {
    free(l.v);
    return rc;
  }
  add_sysfs_facts(&l);
  *out = l.v;
  *count = l.n;
  return NET_OK;
}

void topo_free_ifaces(topo_iface *ifaces, int count) {
  if (!ifaces) return;
  for (int i = 0; i < count; i++) free(ifaces[i].pci_path);
  free(ifaces);
}
