/* The built-in multi-stream TCP transport (host memory only).
 *
 * Each comm is several TCP streams between the two hosts, served by helper
 * threads; every message is cut into per-stream parts so that one comm can
 * fill a fast link. It implements net.h directly and is also exported as a
 * NCCL net plugin (plugin/). */
#ifndef TCPX_P2P_TCP_H
#define TCPX_P2P_TCP_H

#include <stddef.h>

#include "net.h"

typedef struct tcp_options {
  int nstreams;        /* TCP streams per comm (TCPX_P2P_TCP_STREAMS, 4) */
  int nthreads;        /* helper threads per comm (TCPX_P2P_TCP_THREADS;
                          default min(nstreams, max(2, cores / 2))) */
  int max_requests;    /* requests in flight per comm (32; strict: 16) */
  int max_recvs;       /* buffers per grouped irecv (8; strict: 1) */
  size_t min_split;    /* messages smaller than this use one stream (256 KiB) */
  int user_timeout_ms; /* TCP_USER_TIMEOUT and keepalive on every stream
                          (TCPX_P2P_TCP_TIMEOUT_MS; 0 = none, the default) */
  int rto_max_ms;      /* cap on a stream's retransmission back-off
                          (TCPX_P2P_TCP_RTO_MAX_MS, 1000; 0 = kernel's) */
  int spin_us;         /* a helper thread keeps polling this long after its
                          streams last moved bytes before it sleeps in poll()
                          (TCPX_P2P_TCP_SPIN_US): a wake-up costs more than
                          the gap between a sync transfer's messages */
  int rcvlowat;        /* a receiving stream's thread wakes once this many
                          bytes of its part are there, at most (SO_RCVLOWAT;
                          TCPX_P2P_TCP_RCVLOWAT, 256 KiB; 0: any byte) */
  int strict;          /* TCPX rules, errors where TCPX errors (TCPX_P2P_TCP_STRICT) */
  int allow_loopback;  /* offer lo even when other interfaces exist */
  char ifname[256];    /* interface filter; default TCPX_P2P_SOCKET_IFNAME,
                          then NCCL_SOCKET_IFNAME */
} tcp_options;

/* Defaults, overridden by the environment variables named above. */
void tcp_options_default(tcp_options *opts);

/* Make a transport instance. Discovers devices at once; fails when the
 * filter matches no interface. */
int net_tcp_create(const tcp_options *opts, net_transport **out);

/* The peer address ("ip:port") a comm's first stream is connected to:
 * for the accepting side, the connecting host's real address. */
int net_tcp_comm_peer(void *comm, char *buf, size_t len);

/* Strict-mode limits (those of GPUDirect-TCPX). */
#define TCP_STRICT_MAX_REQUESTS 16
#define TCP_STRICT_MAX_RECV_BYTES (4u << 20)

#endif
