/* Reading the built-in TCP transport's handles from outside the transport:
 * where a peer's handle would make us connect. A third-party plugin's
 * handle is opaque (its format is the plugin's own), so this answers only
 * for the built-in transport. */
#ifndef TCPX_P2P_TCP_HANDLE_H
#define TCPX_P2P_TCP_HANDLE_H

#include <sys/socket.h>

#include "net.h"

/* 1 when t is the built-in TCP transport (its handles are readable). */
int net_tcp_is_builtin(const net_transport *t);

/* The address (port 0) a well-formed built-in TCP handle points at.
 * NET_OK, or NET_EINVAL for a malformed handle. */
int net_tcp_handle_addr(const void *handle, struct sockaddr_storage *addr);

#endif
