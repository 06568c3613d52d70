/* See tcp_handle.h. */
#include "tcp_handle.h"

#include <netinet/in.h>
#include <string.h>

#include "tcp_internal.h"

int net_tcp_is_builtin(const net_transport *t) {
  return t && strcmp(t->name, "tcpx-p2p-tcp") == 0;
}

int net_tcp_handle_addr(const void *handle, struct sockaddr_storage *addr) {
  tcp_handle h;
  memcpy(&h, handle, sizeof h);
  memset(addr, 0, sizeof *addr);
  if (h.magic != TCP_HANDLE_MAGIC)
    return err_set(NET_EINVAL, "not a tcp handle (magic 0x%08x)", h.magic);
  if (h.family == AF_INET) {
    struct sockaddr_in *in = (struct sockaddr_in *)addr;
    in->sin_family = AF_INET;
    memcpy(&in->sin_addr, h.addr, 4);
  } else if (h.family == AF_INET6) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
    in6->sin6_family = AF_INET6;
    memcpy(&in6->sin6_addr, h.addr, 16);
  } else {
    return err_set(NET_EINVAL, "tcp handle with address family %u", h.family);
  }
  return NET_OK;
}
