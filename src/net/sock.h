/* Small socket helpers, each doing one socket thing and leaving an err_*
 * message on failure. Return NET_OK or a NET_* code. */
#ifndef TCPX_P2P_SOCK_H
#define TCPX_P2P_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* "10.0.0.1:5000" / "[fe80::1]:5000" (with_port) or the bare address. */
void sock_addr_str(const struct sockaddr *sa, int with_port, char *buf,
                   size_t len);
socklen_t sock_addr_len(const struct sockaddr *sa);
uint16_t sock_addr_port(const struct sockaddr *sa);
void sock_addr_set_port(struct sockaddr *sa, uint16_t port);

/* 1 when `addr` lies in the subnet of an address of interface `ifname`
 * (a neighbour on that link); loopback interfaces never count. */
int sock_addr_on_link(const char *ifname, const struct sockaddr *addr);

int sock_set_nonblock(int fd);
int sock_set_nodelay(int fd);
/* Control sockets: the settings liveness needs (the retransmission
 * back-off cap; the timeout itself is the engine's, timeout_ms unused). */
int sock_set_timeouts(int fd, int timeout_ms);
/* TCP_USER_TIMEOUT plus keepalive (data streams, opt-in; <= 0: nothing). */
int sock_set_user_timeout(int fd, int timeout_ms);
/* Cap TCP's retransmission back-off at rto_max_ms (>= 1000; Linux 6.15+,
 * silently ignored elsewhere), so a link that comes back is used again
 * within that long. */
void sock_set_rto_max(int fd, int rto_max_ms);

/* Bound, listening, non-blocking socket on `addr` with an ephemeral port;
 * the chosen port is written back into `addr`. */
int sock_listen(struct sockaddr_storage *addr, int *fd_out);

/* Start a non-blocking connect from `src` (port 0) to `dst`. */
int sock_connect_start(const struct sockaddr *src, const struct sockaddr *dst,
                       int *fd_out);
/* Poll a connect in progress: *done = 1 once connected. */
int sock_connect_poll(int fd, int *done);

/* Non-blocking whole-or-nothing helpers for small messages: write/read as
 * much as possible into buf[*off..len). Return NET_OK (check *off), or an
 * error on a socket error or EOF. */
int sock_send_some(int fd, const void *buf, size_t len, size_t *off);
int sock_recv_some(int fd, void *buf, size_t len, size_t *off);

/* Wall clock for timeouts, in nanoseconds. */
uint64_t clock_ns(void);

#endif
