/* tcpx-p2p stats: a self-contained check of the endpoint stack that shows
 * its per-connection counters. Two endpoints in this process (built-in TCP
 * transport) connect to each other over this host's address, move
 * pseudo-random data both ways (each receive poisoned first and checked
 * byte for byte), optionally stay idle so liveness pings show, and print
 * both connections' counters (p2p_conn_stats_get).
 *
 *   tcpx-p2p stats [--size BYTES] [--iters N] [--idle SECONDS]
 *                  [--ifname NAME] [--json]
 *
 * Exit 0 when every byte arrived and both connections are still up. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prng.h"
#include "tcpx_p2p.h"
#include "tools.h"

typedef struct stats_args {
  size_t size;
  int iters, idle_s, json;
  const char *ifname; /* NULL: the usual *_SOCKET_IFNAME variables */
} stats_args;

typedef struct peer_side {
  p2p_endpoint *ep;
  uint64_t conn;
  int rc;
} peer_side;

static int parse_args(int argc, char **argv, stats_args *a) {
  *a = (stats_args){.size = 16u << 20, .iters = 4};
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(argv[i], "--size") && v) a->size = strtoull(argv[++i], NULL, 0);
    else if (!strcmp(argv[i], "--iters") && v) a->iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--idle") && v) a->idle_s = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--ifname") && v) a->ifname = argv[++i];
    else if (!strcmp(argv[i], "--json")) a->json = 1;
    else return -1;
  }
  return a->iters >= 0 && a->idle_s >= 0 && a->size > 0 ? 0 : -1;
}

static int failed(const char *what, int rc) {
  fprintf(stderr, "tcpx-p2p stats: %s: %s: %s\n", what, p2p_strerror(rc),
          p2p_last_error());
  return TOOL_FAILED;
}

static void *accept_main(void *arg) {
  peer_side *s = arg;
  char ip[64];
  int gpu;
  s->rc = p2p_accept(s->ep, ip, sizeof ip, &gpu, &s->conn);
  return NULL;
}

/* Two endpoints, b accepting a's connection. */
static int make_pair(const char *ifname, peer_side *a, peer_side *b) {
  p2p_options o;
  p2p_options_init(&o);
  o.ifname = ifname;
  o.plugin = "builtin";
  o.no_local = 1;
  int rc;
  o.gpu_index = 0;
  if ((rc = p2p_endpoint_create(&o, &a->ep)) != P2P_OK) return failed("endpoint", rc);
  o.gpu_index = 1;
  if ((rc = p2p_endpoint_create(&o, &b->ep)) != P2P_OK) return failed("endpoint", rc);
  uint8_t meta[P2P_METADATA_MAX];
  size_t len = sizeof meta;
  char ip[64];
  int port, gpu;
  if ((rc = p2p_get_metadata(b->ep, meta, &len)) != P2P_OK ||
      (rc = p2p_parse_metadata(meta, len, ip, sizeof ip, &port, &gpu)) != P2P_OK)
    return failed("metadata", rc);
  pthread_t t;
  if (pthread_create(&t, NULL, accept_main, b) != 0) return failed("thread", P2P_ESYS);
  rc = p2p_connect(a->ep, ip, gpu, port, &a->conn);
  pthread_join(t, NULL);
  if (rc != P2P_OK) return failed("connect", rc);
  if (b->rc != P2P_OK) return failed("accept", b->rc);
  return TOOL_OK;
}

/* One checked transfer from `from` to `to`. */
static int one_transfer(peer_side *from, peer_side *to, uint8_t *src,
                        uint8_t *dst, size_t size, uint64_t seed) {
  prng_fill(src, size, seed);
  memset(dst, 0xA5, size);
  uint64_t ms, mr, id;
  int rc;
  if ((rc = p2p_reg(from->ep, src, size, &ms)) != P2P_OK ||
      (rc = p2p_reg(to->ep, dst, size, &mr)) != P2P_OK)
    return failed("reg", rc);
  p2p_iov v = {mr, dst, size, NULL};
  if ((rc = p2p_post(to->ep, to->conn, P2P_OP_RECV, &v, 1, &id)) != P2P_OK)
    return failed("post recv", rc);
  if ((rc = p2p_send(from->ep, from->conn, ms, src, size)) != P2P_OK)
    return failed("send", rc);
  size_t got = 0;
  if ((rc = p2p_wait(to->ep, id, 60000, &got)) != P2P_OK) return failed("recv", rc);
  p2p_dereg(from->ep, ms);
  p2p_dereg(to->ep, mr);
  if (got != size || memcmp(src, dst, size) != 0) {
    fprintf(stderr, "tcpx-p2p stats: received bytes differ from those sent\n");
    return TOOL_FAILED;
  }
  return TOOL_OK;
}

static void print_stats(const char *name, const p2p_conn_stats *s, int json,
                        int last) {
  const char *state = s->state == P2P_OK ? "up" : p2p_strerror(s->state);
  if (json) {
    printf("  \"%s\": {\"peer\": \"%s\", \"state\": \"%s\", \"bytes_sent\": %llu, "
           "\"bytes_received\": %llu, \"ops_completed\": %llu, \"ops_failed\": %llu, "
           "\"ops_timed_out\": %llu, \"timeouts\": %llu, \"retries\": %llu, "
           "\"stream_resets\": %llu, \"pings_sent\": %llu, \"pings_received\": %llu, "
           "\"last_heard_ms\": %llu}%s\n", name, s->peer, state,
           (unsigned long long)s->bytes_sent, (unsigned long long)s->bytes_received,
           (unsigned long long)s->ops_completed, (unsigned long long)s->ops_failed,
           (unsigned long long)s->ops_timed_out, (unsigned long long)s->timeouts,
           (unsigned long long)s->retries, (unsigned long long)s->stream_resets,
           (unsigned long long)s->pings_sent, (unsigned long long)s->pings_received,
           (unsigned long long)s->last_heard_ms, last ? "" : ",");
    return;
  }
  printf("%s: peer %s, %s\n", name, s->peer, state);
  printf("  bytes sent %llu, received %llu\n", (unsigned long long)s->bytes_sent,
         (unsigned long long)s->bytes_received);
  printf("  ops completed %llu, failed %llu, timed out %llu\n",
         (unsigned long long)s->ops_completed, (unsigned long long)s->ops_failed,
         (unsigned long long)s->ops_timed_out);
  printf("  liveness timeouts %llu, transport retries %llu, stream resets %llu\n",
         (unsigned long long)s->timeouts, (unsigned long long)s->retries,
         (unsigned long long)s->stream_resets);
  printf("  pings sent %llu, received %llu, last heard %llu ms ago\n",
         (unsigned long long)s->pings_sent, (unsigned long long)s->pings_received,
         (unsigned long long)s->last_heard_ms);
}

static int run(const stats_args *a, peer_side *x, peer_side *y) {
  uint8_t *src = malloc(a->size), *dst = malloc(a->size);
  int rc = src && dst ? TOOL_OK : failed("buffers", P2P_ENOMEM);
  for (int i = 0; rc == TOOL_OK && i < a->iters; i++)
    rc = i % 2 ? one_transfer(y, x, src, dst, a->size, 77 + (uint64_t)i)
               : one_transfer(x, y, src, dst, a->size, 77 + (uint64_t)i);
  free(src);
  free(dst);
  if (rc == TOOL_OK && a->idle_s) sleep((unsigned)a->idle_s);
  p2p_conn_stats sx, sy;
  if (p2p_conn_stats_get(x->ep, x->conn, &sx) != P2P_OK ||
      p2p_conn_stats_get(y->ep, y->conn, &sy) != P2P_OK)
    return failed("conn_stats", P2P_ENOTFOUND);
  if (a->json) printf("{\n");
  print_stats("connector", &sx, a->json, 0);
  print_stats("acceptor", &sy, a->json, 1);
  if (a->json) printf("}\n");
  if (rc == TOOL_OK && (sx.state != P2P_OK || sy.state != P2P_OK)) rc = TOOL_FAILED;
  return rc;
}

int cmd_stats(int argc, char **argv) {
  stats_args a;
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) argc = -1;
  if (argc < 0 || parse_args(argc, argv, &a) != 0) {
    fprintf(stderr, "usage: tcpx-p2p stats [--size BYTES] [--iters N] "
            "[--idle SECONDS] [--ifname NAME] [--json]\n"
            "Two endpoints in this process connect over this host's address "
            "(interface NAME,\ne.g. lo), move checked data both ways (N "
            "transfers of BYTES), stay idle\nSECONDS, then print both "
            "connections' counters.\n");
    return argc < 0 ? TOOL_OK : TOOL_USAGE;
  }
  peer_side x = {0}, y = {0};
  int rc = make_pair(a.ifname, &x, &y);
  if (rc == TOOL_OK) rc = run(&a, &x, &y);
  p2p_endpoint_destroy(x.ep);
  p2p_endpoint_destroy(y.ep);
  return rc;
}
