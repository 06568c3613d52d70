/* The forging peer (see forge.h). Everything here is blocking with a
 * limit: a test that waits for the endpoint never hangs. */
#include "forge.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ep_harness.h"
#include "tcp.h"
#include "tcp_internal.h"

#define FORGE_LIMIT_MS 10000

uint64_t forge_chunk_size = 1 << 20;

static int send_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int forge_send(forge *f, const ctrl_msg *m, const uint64_t *sizes64) {
  size_t len = ctrl_encoded_len(m);
  uint8_t *buf = malloc(len);
  int rc = buf && ctrl_encode(m, sizes64, buf, len) == len
               ? send_all(f->fd, buf, len) : -1;
  free(buf);
  return rc;
}

int forge_recv(forge *f, ctrl_msg *m, int limit_ms) {
  if (f->used) {
    memmove(f->in, f->in + f->used, f->in_len - f->used);
    f->in_len -= f->used;
    f->used = 0;
  }
  double until = eph_now_ms() + limit_ms;
  for (;;) {
    long n = ctrl_parse(f->in, f->in_len, m);
    if (n < 0) return -1;
    if (n > 0) {
      f->used = (size_t)n;
      return 0;
    }
    if (f->in_cap - f->in_len < 65536) {
      uint8_t *grown = realloc(f->in, f->in_cap + (1 << 20) + CTRL_HDR_SIZE);
      if (!grown) return -1;
      f->in = grown;
      f->in_cap += (1 << 20) + CTRL_HDR_SIZE;
    }
    struct pollfd p = {f->fd, POLLIN, 0};
    int left = (int)(until - eph_now_ms());
    if (left <= 0 || poll(&p, 1, left) <= 0) return -1;
    ssize_t got = recv(f->fd, f->in + f->in_len, f->in_cap - f->in_len, 0);
    if (got <= 0) return -1;
    f->in_len += (size_t)got;
  }
}

static int expect(forge *f, ctrl_type type, ctrl_msg *m) {
  if (forge_recv(f, m, FORGE_LIMIT_MS) != 0) return -1;
  if (m->type != type) {
    fprintf(stderr, "  forge: expected message %d, got %d\n", type, m->type);
    return -1;
  }
  return 0;
}

static int exchange_hello(forge *f) {
  ctrl_msg m = {.type = CTRL_HELLO,
                .u.hello = {.gpu_index = 7, .comms_per_lane = 1,
                            .chunk_size = forge_chunk_size}};
  fill_random(m.u.hello.nonce, sizeof m.u.hello.nonce, 99);
  if (forge_send(f, &m, NULL) != 0 || expect(f, CTRL_HELLO, &m) != 0) return -1;
  return m.u.hello.comms_per_lane >= 1 ? 0 : -1;
}

/* Every comm up, both directions (non-blocking transport calls). */
static int connect_comms(forge *f, void *listen[FORGE_COMMS],
                         uint8_t theirs[FORGE_COMMS][CTRL_HANDLE_SIZE]) {
  double until = eph_now_ms() + FORGE_LIMIT_MS;
  for (;;) {
    int up = 0;
    for (int j = 0; j < FORGE_COMMS; j++) {
      if (!f->send[j] && net_call(f->net, connect, 0, theirs[j], &f->send[j], NULL) != NET_OK)
        return -1;
      if (!f->recv[j] && net_call(f->net, accept, listen[j], &f->recv[j], NULL) != NET_OK)
        return -1;
      up += (f->send[j] != NULL) + (f->recv[j] != NULL);
    }
    if (up == 2 * FORGE_COMMS) return 0;
    if (eph_now_ms() > until) return -1;
    usleep(500);
  }
}

static int exchange_handles(forge *f, forge_handles_fn rewrite) {
  tcp_options o;
  tcp_options_default(&o);
  if (net_tcp_create(&o, &f->net) != NET_OK) return -1;
  void *listen[FORGE_COMMS] = {0};
  uint8_t mine[FORGE_COMMS][CTRL_HANDLE_SIZE], theirs[FORGE_COMMS][CTRL_HANDLE_SIZE];
  for (int j = 0; j < FORGE_COMMS; j++)
    if (net_call(f->net, listen, 0, mine[j], &listen[j]) != NET_OK) return -1;
  if (rewrite) rewrite(mine);
  ctrl_msg m = {.type = CTRL_HANDLES,
                .u.handles = {.count = FORGE_COMMS, .handles = mine[0]}};
  int rc = forge_send(f, &m, NULL);
  if (rc == 0 && rewrite) { /* the endpoint must hang up, not connect */
    rc = eph_wait_closed(f->fd, FORGE_LIMIT_MS) ? 0 : -1;
  } else if (rc == 0 && (rc = expect(f, CTRL_HANDLES, &m)) == 0) {
    rc = m.u.handles.count == FORGE_COMMS ? 0 : -1;
    if (rc == 0) memcpy(theirs, m.u.handles.handles, sizeof theirs);
    if (rc == 0) rc = connect_comms(f, listen, theirs);
  }
  for (int j = 0; j < FORGE_COMMS; j++)
    if (listen[j]) net_call(f->net, close_listen, listen[j]);
  return rc;
}

int forge_stall_after_handles(forge *f, const char *ip, int port) {
  memset(f, 0, sizeof *f);
  f->fd = eph_tcp_connect(ip, port);
  if (f->fd < 0 || exchange_hello(f) != 0) return -1;
  tcp_options o;
  tcp_options_default(&o);
  if (net_tcp_create(&o, &f->net) != NET_OK) return -1;
  uint8_t mine[FORGE_COMMS][CTRL_HANDLE_SIZE];
  for (int j = 0; j < FORGE_COMMS; j++) /* real, but never accepted */
    if (net_call(f->net, listen, 0, mine[j], &f->listen[j]) != NET_OK) return -1;
  ctrl_msg m = {.type = CTRL_HANDLES,
                .u.handles = {.count = FORGE_COMMS, .handles = mine[0]}};
  return forge_send(f, &m, NULL);
}

int forge_connect(forge *f, const char *ip, int port, forge_handles_fn rewrite) {
  memset(f, 0, sizeof *f);
  f->fd = eph_tcp_connect(ip, port);
  if (f->fd < 0) return -1;
  if (exchange_hello(f) != 0 || exchange_handles(f, rewrite) != 0) return -1;
  if (rewrite) return 0;
  ctrl_msg m = {.type = CTRL_READY};
  if (forge_send(f, &m, NULL) != 0 || expect(f, CTRL_READY, &m) != 0) return -1;
  return 0;
}

/* Test a posted request until it is done; -1 past `until` (eph_now_ms). */
static int wait_request(forge *f, void *req, double until) {
  for (int done = 0; !done;) {
    if (net_call(f->net, test, req, &done, NULL) != NET_OK) return -1;
    if (!done && eph_now_ms() > until) return -1;
  }
  return 0;
}

int forge_send_data(forge *f, int lane, const void *buf, size_t len, int limit_ms) {
  void *req = NULL;
  double until = eph_now_ms() + limit_ms;
  while (!req) {
    if (net_call(f->net, isend, f->send[lane], (void *)buf, len, 0, NULL, &req) != NET_OK)
      return -1;
    if (!req && eph_now_ms() > until) return -1;
  }
  return wait_request(f, req, until);
}

int forge_recv_data(forge *f, int lane, void *buf, size_t len, int limit_ms) {
  void *req = NULL, *mh = NULL;
  size_t size = len;
  int tag = 0;
  double until = eph_now_ms() + limit_ms;
  while (!req) {
    if (net_call(f->net, irecv, f->recv[lane], 1, &buf, &size, &tag, &mh, &req) != NET_OK)
      return -1;
    if (!req && eph_now_ms() > until) return -1;
  }
  return wait_request(f, req, until);
}

void forge_close(forge *f) {
  for (int j = 0; f->net && j < FORGE_COMMS; j++) {
    if (f->send[j]) net_call(f->net, close_send, f->send[j]);
    if (f->recv[j]) net_call(f->net, close_recv, f->recv[j]);
    if (f->listen[j]) net_call(f->net, close_listen, f->listen[j]);
  }
  if (f->net) f->net->ops->destroy(f->net);
  if (f->fd >= 0) close(f->fd);
  free(f->in);
  memset(f, 0, sizeof *f);
  f->fd = -1;
}

static uint32_t handle_check(const tcp_handle *h) {
  const uint8_t *p = (const uint8_t *)h;
  uint32_t v = 2166136261u; /* FNV-1a, as the transport checks it */
  for (size_t i = 0; i < offsetof(tcp_handle, check); i++) v = (v ^ p[i]) * 16777619u;
  return v;
}

void forge_point_handle(uint8_t handle[CTRL_HANDLE_SIZE], const char *ip, int port) {
  tcp_handle h;
  memcpy(&h, handle, sizeof h);
  h.family = AF_INET;
  h.port = (uint16_t)port;
  memset(h.addr, 0, sizeof h.addr);
  inet_pton(AF_INET, ip, h.addr);
  h.check = handle_check(&h);
  memcpy(handle, &h, sizeof h);
}
