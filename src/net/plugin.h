/* Loader for NCCL net plugins (any ncclNet_v7 ... v11 shared object) and
 * the transport selection order. */
#ifndef TCPX_P2P_PLUGIN_H
#define TCPX_P2P_PLUGIN_H

#include "net.h"
#include "tcp.h"

#define NET_PLUGIN_MIN_VERSION 7
#define NET_PLUGIN_MAX_VERSION 11

/* Load the plugin at `path` (a path, or a NAME resolved as
 * libnccl-net-NAME.so by the dynamic linker), pick the highest version it
 * exports (or exactly `force_version` when non-zero), check CUDA first when
 * the plugin pulls in libcuda, call its init, and adapt it to net.h. */
int net_plugin_load(const char *path, int force_version, net_transport **out);

/* The selection order of the engine and the CLI:
 * 1. `explicit_path` (API) or $TCPX_P2P_NET_PLUGIN ("builtin" = built-in TCP);
 * 2. $NCCL_NET_PLUGIN (first entry; "none" = built-in TCP), as given and
 *    then as libnccl-net-NAME.so;
 * 3. /usr/local/tcpx/lib64/libnccl-net-tcpx.so,
 *    /var/lib/tcpx/lib64/libnccl-net.so when present;
 * 4. the built-in TCP transport with `tcp` options (NULL = defaults).
 * Version forcing: `force_version`, else $TCPX_P2P_NET_PLUGIN_VERSION. */
int net_open(const char *explicit_path, int force_version,
             const tcp_options *tcp, net_transport **out);

/* Where net_open's selection order leads, decided without loading
 * anything (for `tcpx-p2p doctor`, which explains the choice). */
typedef enum net_source {
  NET_FROM_ARGUMENT,   /* explicit_path */
  NET_FROM_TCPX_P2P,   /* $TCPX_P2P_NET_PLUGIN */
  NET_FROM_NCCL,       /* $NCCL_NET_PLUGIN, its first entry */
  NET_FROM_DEFAULT,    /* a GPUDirect-TCPX default location that exists */
  NET_FROM_NOTHING,    /* nothing set, nothing found */
} net_source;

typedef struct net_choice {
  net_source source;
  int builtin;          /* 1: the built-in TCP transport */
  char path[4096];      /* the plugin path or NAME when !builtin */
} net_choice;

/* Fill `c` as net_open(explicit_path, ...) would choose. NET_EINVAL when
 * the chosen path does not fit `c->path`. */
int net_choose(const char *explicit_path, net_choice *c);

/* The GPUDirect-TCPX default locations in search order; NULL past the
 * last. */
const char *net_default_location(int i);

#endif
