#include "sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "net.h"

void sock_addr_str(const struct sockaddr *sa, int with_port, char *buf,
                   size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  const void *raw = sa->sa_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
  inet_ntop(sa->sa_family, raw, ip, sizeof ip);
  if (!with_port)
    snprintf(buf, len, "%s", ip);
  else if (sa->sa_family == AF_INET6)
    snprintf(buf, len, "[%s]:%u", ip, sock_addr_port(sa));
  else
    snprintf(buf, len, "%s:%u", ip, sock_addr_port(sa));
}

socklen_t sock_addr_len(const struct sockaddr *sa) {
  return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                   : sizeof(struct sockaddr_in);
}

uint16_t sock_addr_port(const struct sockaddr *sa) {
  return ntohs(sa->sa_family == AF_INET6
                   ? ((const struct sockaddr_in6 *)sa)->sin6_port
                   : ((const struct sockaddr_in *)sa)->sin_port);
}

void sock_addr_set_port(struct sockaddr *sa, uint16_t port) {
  if (sa->sa_family == AF_INET6)
    ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
  else
    ((struct sockaddr_in *)sa)->sin_port = htons(port);
}

int sock_set_nonblock(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    return err_sys(NET_ESYS, errno, "fcntl(O_NONBLOCK)");
  return NET_OK;
}

int sock_set_nodelay(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
    return err_sys(NET_ESYS, errno, "setsockopt(TCP_NODELAY)");
  return NET_OK;
}

#ifndef TCP_RTO_MAX_MS
#define TCP_RTO_MAX_MS 44 /* Linux 6.15+ */
#endif

/* Control sockets. Liveness is the engine's own (pings, liveness.c), so
 * no TCP_USER_TIMEOUT or keepalive here: measured in the soak (Linux
 * 6.18), a control socket with TCP_USER_TIMEOUT that had recovered from a
 * link flap failed with ETIMEDOUT at once on a later flap, as if the
 * user timeout counted from the first outage. Only the retransmission
 * back-off is capped, so the peer is heard again soon after an outage. */
int sock_set_timeouts(int fd, int timeout_ms) {
  (void)timeout_ms;
  sock_set_rto_max(fd, 1000);
  return NET_OK;
}

/* Data streams, only when asked (TCPX_P2P_TCP_TIMEOUT_MS): unacknowledged
 * bytes older than timeout_ms end the stream (TCP_USER_TIMEOUT; note it
 * also ends a sender stuck on a zero window), keepalive probes an idle
 * one. */
int sock_set_user_timeout(int fd, int timeout_ms) {
  if (timeout_ms <= 0) return NET_OK;
  unsigned int user_timeout = (unsigned int)timeout_ms;
  int one = 1, idle = timeout_ms / 3000 + 1, intvl = idle, cnt = 3;
  if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
                 sizeof user_timeout) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) < 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) < 0)
    return err_sys(NET_ESYS, errno, "setsockopt(timeouts)");
  return NET_OK;
}

/* Cap the retransmission back-off. After an outage of L seconds Linux's
 * doubling back-off sends the next retransmission up to about L seconds
 * after the link is back; with a cap, within rto_max_ms. Older kernels
 * lack the option: ignored there (the back-off stays). */
void sock_set_rto_max(int fd, int rto_max_ms) {
  if (rto_max_ms <= 0) return;
  if (rto_max_ms < 1000) rto_max_ms = 1000; /* the kernel's lower bound */
  (void)setsockopt(fd, IPPROTO_TCP, TCP_RTO_MAX_MS, &rto_max_ms,
                   sizeof rto_max_ms);
}

int sock_listen(struct sockaddr_storage *addr, int *fd_out) {
  struct sockaddr *sa = (struct sockaddr *)addr;
  char where[80];
  sock_addr_str(sa, 0, where, sizeof where);
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return err_sys(NET_ESYS, errno, "socket() for listen on %s", where);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t len = sock_addr_len(sa);
  sock_addr_set_port(sa, 0);
  if (bind(fd, sa, len) < 0 || listen(fd, 256) < 0 ||
      getsockname(fd, sa, &len) < 0) {
    int e = errno;
    close(fd);
    return err_sys(NET_ESYS, e, "listen on %s", where);
  }
  *fd_out = fd;
  return NET_OK;
}

int sock_connect_start(const struct sockaddr *src, const struct sockaddr *dst,
                       int *fd_out) {
  char to[80];
  sock_addr_str(dst, 1, to, sizeof to);
  int fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return err_sys(NET_ESYS, errno, "socket() to connect to %s", to);
  if (src && bind(fd, src, sock_addr_len(src)) < 0) {
    int e = errno;
    char from[80];
    sock_addr_str(src, 0, from, sizeof from);
    close(fd);
    return err_sys(NET_ESYS, e, "bind to %s before connecting to %s", from, to);
  }
  if (connect(fd, dst, sock_addr_len(dst)) < 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    return err_sys(NET_ESYS, e, "connect to %s", to);
  }
  *fd_out = fd;
  return NET_OK;
}

int sock_connect_poll(int fd, int *done) {
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  *done = 0;
  int n = poll(&p, 1, 0);
  if (n < 0) return errno == EINTR ? NET_OK : err_sys(NET_ESYS, errno, "poll");
  if (n == 0) return NET_OK;
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
  if (soerr) return err_sys(NET_ESYS, soerr, "connect");
  *done = 1;
  return NET_OK;
}

int sock_send_some(int fd, const void *buf, size_t len, size_t *off) {
  while (*off < len) {
    ssize_t n = send(fd, (const char *)buf + *off, len - *off, MSG_NOSIGNAL);
    if (n > 0) {
      *off += (size_t)n;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return NET_OK;
    } else if (errno != EINTR) {
      return err_sys(NET_EREMOTE, errno, "send");
    }
  }
  return NET_OK;
}

int sock_recv_some(int fd, void *buf, size_t len, size_t *off) {
  while (*off < len) {
    ssize_t n = recv(fd, (char *)buf + *off, len - *off, 0);
    if (n > 0) {
      *off += (size_t)n;
    } else if (n == 0) {
      return err_set(NET_EREMOTE, "recv: connection closed by peer");
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return NET_OK;
    } else if (errno != EINTR) {
      return err_sys(NET_EREMOTE, errno, "recv");
    }
  }
  return NET_OK;
}

uint64_t clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- neighbours ------------------------------------------------------------ */

static int same_prefix(const uint8_t *a, const uint8_t *b, const uint8_t *mask,
                       size_t len) {
  for (size_t i = 0; i < len; i++)
    if ((a[i] & mask[i]) != (b[i] & mask[i])) return 0;
  return 1;
}

/* The address bytes of an IPv4 or IPv6 sockaddr, or NULL. */
static const uint8_t *addr_bytes(const struct sockaddr *sa, size_t *len) {
  if (sa->sa_family == AF_INET) {
    *len = 4;
    return (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
  }
  if (sa->sa_family == AF_INET6) {
    *len = 16;
    return (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
  }
  return NULL;
}

int sock_addr_on_link(const char *ifname, const struct sockaddr *addr) {
  struct ifaddrs *all;
  size_t len = 0, ilen = 0, mlen = 0;
  const uint8_t *want = addr_bytes(addr, &len);
  if (!want || getifaddrs(&all) != 0) return 0;
  int found = 0;
  for (struct ifaddrs *i = all; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr || !i->ifa_netmask || (i->ifa_flags & IFF_LOOPBACK) ||
        strcmp(i->ifa_name, ifname) != 0 || i->ifa_addr->sa_family != addr->sa_family)
      continue;
    const uint8_t *mine = addr_bytes(i->ifa_addr, &ilen);
    const uint8_t *mask = addr_bytes(i->ifa_netmask, &mlen);
    found = mine && mask && ilen == len && mlen == len &&
            same_prefix(mine, want, mask, len);
  }
  freeifaddrs(all);
  return found;
}
