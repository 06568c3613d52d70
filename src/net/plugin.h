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

#endif
