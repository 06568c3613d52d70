/* Host network discovery: the real interfaces of this host (or of the
 * network namespace of the calling thread), their addresses, PCI paths and
 * link speeds, read from getifaddrs() and sysfs. Nothing is invented: an
 * unknown PCI path is NULL, an unknown speed is 0. */
#ifndef TCPX_P2P_TOPO_H
#define TCPX_P2P_TOPO_H

#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct topo_iface {
  char name[IF_NAMESIZE];
  int family;                   /* AF_INET or AF_INET6 */
  struct sockaddr_storage addr; /* port 0 */
  socklen_t addr_len;
  char addr_str[64];            /* numeric, e.g. "10.0.0.1" or "fe80::1%eth0" */
  char *pci_path;               /* realpath of /sys/class/net/NAME/device, or NULL */
  int speed_mbps;               /* /sys/class/net/NAME/speed, 0 = unknown */
  int is_loopback;
} topo_iface;

/* Interface filter, NCCL_SOCKET_IFNAME syntax: a comma list of name
 * prefixes; a leading '^' makes it an exclude list; a leading '=' makes the
 * entries exact names. NULL or "" matches everything. */
int topo_filter_match(const char *filter, const char *ifname);

/* One entry per UP interface with an IPv4 address (and IPv6 ones when the
 * interface has no IPv4 and `want_v6` is set), filtered by `filter`.
 * Loopback and docker* are skipped unless the filter names them explicitly,
 * `allow_loopback` is set, or nothing else is found (then loopback alone
 * is returned). One address per interface (the first IPv4 one).
 * Returns 0 and a malloc'ed array (free with topo_free_ifaces) or a
 * NET_* error code with err_get() set. */
int topo_find_ifaces(const char *filter, int allow_loopback, int want_v6,
                     topo_iface **out, int *count);
void topo_free_ifaces(topo_iface *ifaces, int count);

/* sysfs look-ups, exposed for the CLI and tests. */
char *topo_pci_path(const char *ifname);   /* malloc'ed or NULL */
int topo_link_speed(const char *ifname);   /* Mb/s, 0 = unknown */

#endif
