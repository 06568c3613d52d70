/* Interface discovery (src/net/topo.c): the filter syntax, discovery on
 * this host checked against getifaddrs and sysfs, and discovery inside a
 * fresh network namespace (twohost side 0), where the interfaces are known
 * exactly. */
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "net.h"
#include "topo.h"
#include "twohost.h"

/* ---- filter syntax ---- */

static int test_filter_empty_matches_all(void) {
  CHECK(topo_filter_match(NULL, "eth0"));
  CHECK(topo_filter_match("", "eth0"));
  CHECK(topo_filter_match("", "lo"));
  CHECK(topo_filter_match("^", "eth0"));   /* excludes nothing */
  CHECK(!topo_filter_match("=", "eth0"));  /* names nothing */
  CHECK(!topo_filter_match(",", "eth0"));  /* empty entries name nothing */
  return 0;
}

static int test_filter_prefix(void) {
  CHECK(topo_filter_match("eth", "eth0"));
  CHECK(topo_filter_match("eth", "eth10"));
  CHECK(topo_filter_match("eth0", "eth0"));
  CHECK(topo_filter_match("eth1", "eth10"));  /* a prefix, not a name */
  CHECK(!topo_filter_match("eth", "veth0"));
  CHECK(!topo_filter_match("eth0", "eth"));
  CHECK(!topo_filter_match("eth", "enp0s3"));
  return 0;
}

static int test_filter_exclusion(void) {
  CHECK(!topo_filter_match("^eth", "eth0"));
  CHECK(!topo_filter_match("^eth", "eth12"));
  CHECK(topo_filter_match("^eth", "veth0"));
  CHECK(topo_filter_match("^eth", "lo"));
  CHECK(!topo_filter_match("^docker,lo", "docker0"));
  CHECK(!topo_filter_match("^docker,lo", "lo"));
  CHECK(topo_filter_match("^docker,lo", "ens5"));
  return 0;
}

static int test_filter_exact(void) {
  CHECK(topo_filter_match("=eth1", "eth1"));
  CHECK(!topo_filter_match("=eth1", "eth10"));
  CHECK(!topo_filter_match("=eth1", "eth"));
  CHECK(topo_filter_match("=eth1,eth2", "eth2"));
  CHECK(!topo_filter_match("=eth1,eth2", "eth20"));
  /* '^' then '=': exclude exactly these names */
  CHECK(!topo_filter_match("^=eth1", "eth1"));
  CHECK(topo_filter_match("^=eth1", "eth10"));
  return 0;
}

static int test_filter_multiple_entries(void) {
  const char *gke = "eth1,eth2,eth3,eth4";
  CHECK(topo_filter_match(gke, "eth1"));
  CHECK(topo_filter_match(gke, "eth4"));
  CHECK(!topo_filter_match(gke, "eth0"));
  CHECK(!topo_filter_match(gke, "eth5"));
  CHECK(topo_filter_match("eth1, eth2", "eth2"));  /* blanks ignored */
  CHECK(topo_filter_match("eth1,,eth2", "eth2"));
  CHECK(!topo_filter_match("eth1,,eth2", "lo"));   /* "" is no wildcard */
  CHECK(!topo_filter_match("eth1,", "lo"));
  return 0;
}

/* ---- this host (root namespace) ---- */

/* The first IPv4 address getifaddrs lists for `name`, numeric; 0 if any. */
static int first_ipv4_of(const char *name, char *out, size_t size) {
  struct ifaddrs *all, *ifa;
  int found = -1;
  if (getifaddrs(&all) != 0) return -1;
  for (ifa = all; ifa && found != 0; ifa = ifa->ifa_next)
    if (ifa->ifa_addr && ifa->ifa_addr->sa_family == AF_INET &&
        strcmp(ifa->ifa_name, name) == 0)
      found = getnameinfo(ifa->ifa_addr, sizeof(struct sockaddr_in), out,
                          (socklen_t)size, NULL, 0, NI_NUMERICHOST);
  freeifaddrs(all);
  return found == 0 ? 0 : -1;
}

static int iface_is_up(const char *name) {
  struct ifaddrs *all;
  int up = 0;
  if (getifaddrs(&all) != 0) return 0;
  for (struct ifaddrs *ifa = all; ifa; ifa = ifa->ifa_next)
    if (strcmp(ifa->ifa_name, name) == 0) up |= (ifa->ifa_flags & IFF_UP) != 0;
  freeifaddrs(all);
  return up;
}

/* The sysfs facts, read here independently of topo.c. */
static int check_sysfs_facts(const topo_iface *it) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "/sys/class/net/%s/device", it->name);
  char *expect = realpath(path, NULL);
  if (expect) {
    CHECK(it->pci_path != NULL);
    CHECK(strcmp(it->pci_path, expect) == 0);
  } else {
    CHECK(it->pci_path == NULL);
  }
  free(expect);
  CHECK(it->speed_mbps >= 0);
  return 0;
}

static int check_host_iface(const topo_iface *it) {
  char addr[NI_MAXHOST];
  printf("  found %s %s pci=%s speed=%d\n", it->name, it->addr_str,
         it->pci_path ? it->pci_path : "(none)", it->speed_mbps);
  CHECK(if_nametoindex(it->name) != 0);
  CHECK(iface_is_up(it->name));
  CHECK_EQ(it->family, AF_INET);
  CHECK_EQ(it->addr_len, sizeof(struct sockaddr_in));
  CHECK_EQ(first_ipv4_of(it->name, addr, sizeof addr), 0);
  CHECK(strcmp(it->addr_str, addr) == 0);
  CHECK_EQ(((struct sockaddr_in *)&it->addr)->sin_port, 0);
  return check_sysfs_facts(it);
}

static int test_host_ifaces_are_real(void) {
  topo_iface *ifs;
  int n;
  CHECK_EQ(topo_find_ifaces(NULL, 0, 0, &ifs, &n), NET_OK);
  CHECK(n > 0);
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    rc = check_host_iface(&ifs[i]);
    /* loopback only as the last resort, and then alone */
    if (rc == 0 && ifs[i].is_loopback && n != 1) rc = 1;
    for (int j = 0; j < i && rc == 0; j++)
      if (strcmp(ifs[i].name, ifs[j].name) == 0) rc = 1; /* one per iface */
  }
  topo_free_ifaces(ifs, n);
  CHECK_EQ(rc, 0);
  return 0;
}

static int find_name(const topo_iface *ifs, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(ifs[i].name, name) == 0) return i;
  return -1;
}

static int test_host_loopback_when_asked(void) {
  topo_iface *ifs;
  int n, i;
  CHECK_EQ(topo_find_ifaces(NULL, 1, 0, &ifs, &n), NET_OK);
  i = find_name(ifs, n, "lo");
  int ok = i >= 0 && ifs[i].is_loopback &&
           strcmp(ifs[i].addr_str, "127.0.0.1") == 0;
  topo_free_ifaces(ifs, n);
  CHECK(ok);
  /* naming lo in the filter is asking for it too */
  CHECK_EQ(topo_find_ifaces("=lo", 0, 0, &ifs, &n), NET_OK);
  ok = n == 1 && strcmp(ifs[0].name, "lo") == 0 && ifs[0].pci_path == NULL;
  topo_free_ifaces(ifs, n);
  CHECK(ok);
  return 0;
}

/* Exact and exclusive filters applied to the real list. */
static int test_host_filters_select(void) {
  topo_iface *all, *one, *rest;
  int n_all, n_one, n_rest;
  CHECK_EQ(topo_find_ifaces(NULL, 1, 0, &all, &n_all), NET_OK);
  char filter[IF_NAMESIZE + 2];
  snprintf(filter, sizeof filter, "=%s", all[0].name);
  int rc1 = topo_find_ifaces(filter, 1, 0, &one, &n_one);
  filter[0] = '^';  /* "^name": every interface but those starting so */
  int rc2 = topo_find_ifaces(filter, 1, 0, &rest, &n_rest);
  int ok = rc1 == NET_OK && n_one == 1 &&
           strcmp(one[0].name, all[0].name) == 0 &&
           (rc2 != NET_OK ? n_all == 1
                          : find_name(rest, n_rest, all[0].name) < 0);
  topo_free_ifaces(all, n_all);
  if (rc1 == NET_OK) topo_free_ifaces(one, n_one);
  if (rc2 == NET_OK) topo_free_ifaces(rest, n_rest);
  CHECK(ok);
  return 0;
}

static int test_host_no_match_names_filter(void) {
  topo_iface *ifs = (topo_iface *)1;
  int n = -1;
  CHECK(topo_find_ifaces("tpxnosuch7,=tpxnosuch8", 0, 0, &ifs, &n) != NET_OK);
  CHECK(ifs == NULL);
  CHECK_EQ(n, 0);
  CHECK_STR_CONTAINS(err_get(), "\"tpxnosuch7,=tpxnosuch8\"");
  /* it lists the interfaces that do exist */
  struct if_nameindex *names = if_nameindex();
  CHECK(names != NULL);
  char first[IF_NAMESIZE];
  snprintf(first, sizeof first, "%s", names[0].if_name);
  if_freenameindex(names);
  CHECK_STR_CONTAINS(err_get(), first);
  return 0;
}

static int test_sysfs_lookups_of_unknown_names(void) {
  CHECK(topo_pci_path("tpxnosuch9") == NULL);
  CHECK_EQ(topo_link_speed("tpxnosuch9"), 0);
  CHECK(topo_pci_path("../../devices") == NULL);
  CHECK(topo_pci_path("lo") == NULL);  /* virtual */
  CHECK_EQ(topo_link_speed("lo"), 0);  /* sysfs: EINVAL */
  return 0;
}

/* ---- inside a fresh namespace ---- */

/* Run fn in twohost side 0; side 1 only exists. 0 when fn passed. A
 * loopback-mode harness proves nothing here, so that case is skipped. */
static int side_idle(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)fd, (void)arg;
  return 0;
}

static int run_in_side0(twohost_fn fn, void *arg) {
  twohost th;
  CHECK_EQ(twohost_setup(&th), 0);
  if (!th.netns) {
    printf("  skipped: no network namespaces here\n");
    return 0;
  }
  twohost_fn fns[2] = {fn, side_idle};
  int rc = twohost_run(&th, fns, arg, 30, NULL);
  twohost_teardown(&th);
  CHECK_EQ(rc, 0);
  return 0;
}

static int side0_only_veth(const twohost *th, int side, int fd, void *arg) {
  (void)side, (void)fd, (void)arg;
  topo_iface *ifs;
  int n;
  CHECK_EQ(topo_find_ifaces(NULL, 0, 0, &ifs, &n), NET_OK);
  int ok = n == 1 && strcmp(ifs[0].name, th->ifname[0]) == 0 &&
           strcmp(ifs[0].addr_str, "10.211.0.1") == 0 &&
           ifs[0].family == AF_INET && !ifs[0].is_loopback &&
           ifs[0].pci_path == NULL && if_nametoindex(ifs[0].name) != 0;
  if (!ok)
    fprintf(stderr, "  side 0: %d interfaces, first %s %s\n", n,
            n ? ifs[0].name : "-", n ? ifs[0].addr_str : "-");
  topo_free_ifaces(ifs, n);
  CHECK(ok);
  /* IPv6 allowed changes nothing: the veth has IPv4 */
  CHECK_EQ(topo_find_ifaces(NULL, 0, 1, &ifs, &n), NET_OK);
  ok = n == 1 && ifs[0].family == AF_INET;
  topo_free_ifaces(ifs, n);
  CHECK(ok);
  return 0;
}

static int test_netns_only_veth(void) {
  return run_in_side0(side0_only_veth, NULL);
}

static int side0_loopback(const twohost *th, int side, int fd, void *arg) {
  (void)side, (void)fd, (void)arg;
  topo_iface *ifs;
  int n;
  CHECK_EQ(topo_find_ifaces(NULL, 1, 0, &ifs, &n), NET_OK);
  int lo = find_name(ifs, n, "lo");
  int ok = n == 2 && lo >= 0 && ifs[lo].is_loopback &&
           strcmp(ifs[lo].addr_str, "127.0.0.1") == 0 &&
           find_name(ifs, n, th->ifname[0]) >= 0;
  topo_free_ifaces(ifs, n);
  CHECK(ok);
  /* a filter naming lo gets lo alone */
  CHECK_EQ(topo_find_ifaces("lo", 0, 0, &ifs, &n), NET_OK);
  ok = n == 1 && strcmp(ifs[0].name, "lo") == 0;
  topo_free_ifaces(ifs, n);
  CHECK(ok);
  /* with the veth excluded, loopback is the last resort */
  char filter[32];
  snprintf(filter, sizeof filter, "^=%s", th->ifname[0]);
  CHECK_EQ(topo_find_ifaces(filter, 0, 0, &ifs, &n), NET_OK);
  ok = n == 1 && strcmp(ifs[0].name, "lo") == 0 && ifs[0].is_loopback;
  topo_free_ifaces(ifs, n);
  CHECK(ok);
  return 0;
}

static int test_netns_loopback_only_when_asked(void) {
  return run_in_side0(side0_loopback, NULL);
}

static int side0_no_match(const twohost *th, int side, int fd, void *arg) {
  (void)side, (void)fd, (void)arg;
  topo_iface *ifs;
  int n;
  CHECK(topo_find_ifaces("eth", 1, 0, &ifs, &n) != NET_OK);
  CHECK_STR_CONTAINS(err_get(), "\"eth\"");
  CHECK_STR_CONTAINS(err_get(), th->ifname[0]);
  CHECK_STR_CONTAINS(err_get(), "lo");
  printf("  error: %s\n", err_get());
  return 0;
}

static int test_netns_no_match_error(void) {
  return run_in_side0(side0_no_match, NULL);
}

/* Run `ip ARGS` in the calling thread's namespace; 0 on success. */
static int run_ip(char *const argv[]) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execvp("ip", argv);
    execv("/usr/sbin/ip", argv);
    execv("/sbin/ip", argv);
    _exit(127);
  }
  int status;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* After setns() /sys still shows the host's interfaces. An interface in
 * the namespace that has the name of a host NIC must not be given that
 * NIC's PCI path or speed. */
static int side0_same_name(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)fd;
  char *name = arg;
  char *argv[] = {"ip", "link", "add", name, "type", "veth", "peer",
                  "name", "tpxtopopeer", NULL};
  CHECK_EQ(run_ip(argv), 0);
  CHECK(if_nametoindex(name) != 0);
  CHECK(topo_pci_path(name) == NULL);  /* a veth has no device */
  CHECK_EQ(topo_link_speed(name), 0);  /* and is down */
  return 0;
}

static int test_netns_name_of_host_nic(void) {
  struct if_nameindex *names = if_nameindex();
  CHECK(names != NULL);
  char name[IF_NAMESIZE] = "";
  for (struct if_nameindex *p = names; p->if_name && !name[0]; p++) {
    char *pci = topo_pci_path(p->if_name);
    if (pci) snprintf(name, sizeof name, "%s", p->if_name);
    free(pci);
  }
  if_freenameindex(names);
  if (!name[0]) {
    printf("  skipped: no host interface with a PCI device\n");
    return 0;
  }
  return run_in_side0(side0_same_name, name);
}

static const check_case cases[] = {
    CHECK_CASE(test_filter_empty_matches_all),
    CHECK_CASE(test_filter_prefix),
    CHECK_CASE(test_filter_exclusion),
    CHECK_CASE(test_filter_exact),
    CHECK_CASE(test_filter_multiple_entries),
    CHECK_CASE(test_host_ifaces_are_real),
    CHECK_CASE(test_host_loopback_when_asked),
    CHECK_CASE(test_host_filters_select),
    CHECK_CASE(test_host_no_match_names_filter),
    CHECK_CASE(test_sysfs_lookups_of_unknown_names),
    CHECK_CASE(test_netns_only_veth),
    CHECK_CASE(test_netns_loopback_only_when_asked),
    CHECK_CASE(test_netns_no_match_error),
    CHECK_CASE(test_netns_name_of_host_nic),
};

CHECK_MAIN(cases)
