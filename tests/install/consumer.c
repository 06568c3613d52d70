/* A program built against an installed tcpx-p2p (tests/install.sh builds
 * it through pkg-config and through find_package): the header, the
 * library and its version are the installed ones, and an endpoint can be
 * made on loopback and destroyed.
 *   consumer EXPECTED_VERSION    exit 0 when all holds, 1 otherwise */
#include <stdio.h>
#include <string.h>

#include <tcpx_p2p.h>

static int check_version(const char *want) {
  const char *got = p2p_version();
  if (strcmp(got, want) == 0) return 0;
  fprintf(stderr, "consumer: p2p_version() is '%s', expected '%s'\n", got, want);
  return 1;
}

static int check_endpoint(void) {
  p2p_options opts;
  p2p_options_init(&opts);
  opts.plugin = "builtin";
  opts.ifname = "lo";
  opts.no_local = 1;
  p2p_endpoint *ep = NULL;
  int rc = p2p_endpoint_create(&opts, &ep);
  if (rc != P2P_OK) {
    fprintf(stderr, "consumer: endpoint: %s: %s\n", p2p_strerror(rc),
            p2p_last_error());
    return 1;
  }
  char ip[64] = "";
  uint8_t meta[P2P_METADATA_MAX];
  size_t len = sizeof meta;
  rc = p2p_local_ip(ep, ip, sizeof ip);
  if (rc == P2P_OK) rc = p2p_get_metadata(ep, meta, &len);
  p2p_endpoint_destroy(ep);
  if (rc != P2P_OK || strcmp(ip, "127.0.0.1") != 0 || len != 10) {
    fprintf(stderr, "consumer: endpoint on lo: rc %d, ip '%s', metadata %zu "
            "bytes (%s)\n", rc, ip, len, p2p_last_error());
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: consumer EXPECTED_VERSION\n");
    return 2;
  }
  int bad = check_version(argv[1]) | check_endpoint();
  if (!bad) printf("consumer: tcpx-p2p %s, endpoint on loopback: ok\n", p2p_version());
  return bad;
}
