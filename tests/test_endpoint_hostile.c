/* Hostile and mismatched peers at an endpoint's control listener, across
 * two namespaces:
 * - malformed and truncated control messages from a raw TCP socket
 *   (garbage, a valid HELLO then garbage, a truncated HELLO, a huge
 *   length, bad handles, steps out of order, a silent socket): each such
 *   connection is dropped at once, none is ever accepted, nothing
 *   crashes, and a real peer is accepted afterwards;
 * - authentication: tokens from options.auth_token or TCPX_P2P_AUTH_TOKEN
 *   that differ, or are missing on one side, make connect fail with
 *   P2P_EAUTH and accept return nothing; matching tokens work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "ctrl.h"
#include "ep_harness.h"
#include "twohost.h"

static twohost hosts;  /* made once in main for every case */

/* A dropped connection must close well before the set-up timeout. */
#define DROP_MS (2000 * EPH_SLOWDOWN)
#define HOSTILE_CONNECT_TIMEOUT_MS 8000

enum { STEP_HOSTILE_DONE = 1, STEP_READY };

/* ---- raw control bytes ---- */

static size_t encode(const ctrl_msg *m, uint8_t *buf, size_t cap) {
  return ctrl_encode(m, NULL, buf, cap);
}

static size_t hello_bytes(uint8_t *buf, size_t cap) {
  ctrl_msg m = {.type = CTRL_HELLO,
                .u.hello = {.gpu_index = 9, .comms_per_lane = 1,
                            .chunk_size = 1 << 20}};
  fill_random(m.u.hello.nonce, sizeof m.u.hello.nonce, 5);
  return encode(&m, buf, cap);
}

static int send_all(int fd, const void *buf, size_t len) {
  return send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Read until one whole control message is in; 0 when it is of `type`. */
static int expect_msg(int fd, ctrl_type type) {
  static uint8_t buf[CTRL_HDR_SIZE + CTRL_MAX_HANDLES * CTRL_HANDLE_SIZE + 64];
  size_t len = 0;
  double deadline = eph_now_ms() + DROP_MS;
  for (;;) {
    ctrl_msg m;
    long n = ctrl_parse(buf, len, &m);
    if (n < 0) return -1;
    if (n > 0) return m.type == type ? 0 : -1;
    if (eph_now_ms() > deadline || len == sizeof buf) return -1;
    ssize_t got = recv(fd, buf + len, sizeof buf - len, 0);
    if (got <= 0) return -1;
    len += (size_t)got;
  }
}

typedef struct hostile {
  const char *name;
  int (*act)(int fd);  /* what the raw peer does; 0 when it could do it */
} hostile;

static int act_garbage(int fd) {
  uint8_t junk[64];
  fill_random(junk, sizeof junk, 1);
  junk[0] = 0xff;  /* no such message type */
  return send_all(fd, junk, sizeof junk);
}

static int act_hello_then_garbage(int fd) {
  uint8_t buf[256], junk[100];
  size_t n = hello_bytes(buf, sizeof buf);
  fill_random(junk, sizeof junk, 2);
  if (send_all(fd, buf, n) || expect_msg(fd, CTRL_HELLO)) return -1;
  return send_all(fd, junk, sizeof junk);
}

static int act_truncated_hello_then_close(int fd) {
  uint8_t buf[256];
  size_t n = hello_bytes(buf, sizeof buf);
  if (send_all(fd, buf, n / 2)) return -1;
  return shutdown(fd, SHUT_WR);
}

static int act_huge_length(int fd) {
  uint8_t hdr[CTRL_HDR_SIZE] = {CTRL_HELLO, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
  return send_all(fd, hdr, sizeof hdr);
}

static int act_hello_wrong_version(int fd) {
  uint8_t buf[256];
  size_t n = hello_bytes(buf, sizeof buf);
  buf[CTRL_HDR_SIZE + 4] = 99;  /* version, after the 4-byte magic */
  return send_all(fd, buf, n);
}

static int act_hello_then_zero_handles(int fd) {
  static uint8_t handles[2][CTRL_HANDLE_SIZE];
  uint8_t buf[512];
  size_t n = hello_bytes(buf, sizeof buf);
  if (send_all(fd, buf, n) || expect_msg(fd, CTRL_HELLO)) return -1;
  ctrl_msg m = {.type = CTRL_HANDLES,
                .u.handles = {.count = 2, .handles = handles[0]}};
  n = encode(&m, buf, sizeof buf);
  return n ? send_all(fd, buf, n) : -1;
}

static int act_hello_then_wrong_handle_count(int fd) {
  static uint8_t handles[5][CTRL_HANDLE_SIZE];
  uint8_t buf[1024];
  size_t n = hello_bytes(buf, sizeof buf);
  if (send_all(fd, buf, n) || expect_msg(fd, CTRL_HELLO)) return -1;
  ctrl_msg m = {.type = CTRL_HANDLES,
                .u.handles = {.count = 5, .handles = handles[0]}};
  n = encode(&m, buf, sizeof buf);
  return n ? send_all(fd, buf, n) : -1;
}

static int act_hello_then_ready(int fd) {
  uint8_t buf[256];
  size_t n = hello_bytes(buf, sizeof buf);
  ctrl_msg m = {.type = CTRL_READY};
  n += encode(&m, buf + n, sizeof buf - n);
  return send_all(fd, buf, n);
}

static int act_hello_then_send(int fd) {
  uint8_t buf[256];
  uint64_t sizes[1] = {1 << 20};
  size_t n = hello_bytes(buf, sizeof buf);
  ctrl_msg m = {.type = CTRL_SEND, .u.send = {.seq = 0, .nseg = 1}};
  n += ctrl_encode(&m, sizes, buf + n, sizeof buf - n);
  return send_all(fd, buf, n);
}

static const hostile hostiles[] = {
    {"garbage bytes", act_garbage},
    {"valid HELLO then garbage", act_hello_then_garbage},
    {"truncated HELLO then close", act_truncated_hello_then_close},
    {"huge length", act_huge_length},
    {"HELLO of another protocol version", act_hello_wrong_version},
    {"HELLO then zeroed transport handles", act_hello_then_zero_handles},
    {"HELLO then the wrong handle count", act_hello_then_wrong_handle_count},
    {"HELLO then READY", act_hello_then_ready},
    {"HELLO then a SEND", act_hello_then_send},
};
#define NHOSTILE (sizeof hostiles / sizeof hostiles[0])

/* Side 1: every hostile connection, each dropped by the endpoint; a burst
 * of 40 garbage connections at once; a silent one left open; then a real
 * peer. */
static int hostile_client(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  char ip[64];
  int port, gpu, burst[40];
  uint64_t step;
  CHECK_EQ(eph_recv_metadata(fd, ip, sizeof ip, &port, &gpu), 0);
  for (size_t i = 0; i < NHOSTILE; i++) {
    int s = eph_tcp_connect(ip, port);
    CHECK(s >= 0);
    if (hostiles[i].act(s) != 0 || !eph_wait_closed(s, DROP_MS)) {
      fprintf(stderr, "  %s: not dropped within %d ms\n", hostiles[i].name,
              DROP_MS);
      return 1;
    }
    close(s);
  }
  for (int i = 0; i < 40; i++) CHECK((burst[i] = eph_tcp_connect(ip, port)) >= 0);
  for (int i = 0; i < 40; i++) CHECK_EQ(act_garbage(burst[i]), 0);
  for (int i = 0; i < 40; i++) {
    CHECK(eph_wait_closed(burst[i], DROP_MS));
    close(burst[i]);
  }
  int silent = eph_tcp_connect(ip, port);
  CHECK(silent >= 0);
  CHECK_EQ(eph_put_u64(fd, STEP_HOSTILE_DONE), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);
  p2p_options o;
  eph_options(&o);
  o.gpu_index = EPH_GPU1;
  p2p_endpoint *ep;
  uint64_t conn, mr;
  uint8_t msg[3000];
  pat_fill(msg, sizeof msg, 17);
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  CHECK_EQ(p2p_connect(ep, ip, gpu, port, &conn), P2P_OK);
  CHECK_EQ(p2p_reg(ep, msg, sizeof msg, &mr), P2P_OK);
  CHECK_EQ(p2p_send(ep, conn, mr, msg, sizeof msg), P2P_OK);
  CHECK_EQ(eph_sync(fd), 0);
  close(silent);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int hostile_server(const twohost *th, int side, int fd, void *arg) {
  (void)side, (void)arg;
  p2p_options o;
  eph_options(&o);
  o.gpu_index = EPH_GPU0;
  o.op_timeout_ms = 1000;  /* bounds p2p_accept */
  o.connect_timeout_ms = HOSTILE_CONNECT_TIMEOUT_MS;
  p2p_endpoint *ep;
  uint64_t conn, step, mr;
  char ip[64];
  int gpu;
  size_t got = 0;
  uint8_t msg[3000];
  CHECK_EQ(eph_create(&o, &ep), P2P_OK);
  CHECK_EQ(eph_send_metadata(ep, fd), 0);
  CHECK_EQ(eph_get_u64(fd, &step), 0);
  /* Not one of them became a connection. */
  CHECK_EQ(p2p_accept(ep, ip, sizeof ip, &gpu, &conn), P2P_ETIMEDOUT);
  CHECK_EQ(eph_put_u64(fd, STEP_READY), 0);
  int rc = P2P_ETIMEDOUT;
  for (int tries = 0; tries < 20 && rc == P2P_ETIMEDOUT; tries++)
    rc = p2p_accept(ep, ip, sizeof ip, &gpu, &conn);
  CHECK_EQ(rc, P2P_OK);
  CHECK_EQ(gpu, EPH_GPU1);
  CHECK(strcmp(ip, th->addr[1]) == 0);
  memset(msg, EPH_POISON, sizeof msg);
  CHECK_EQ(p2p_reg(ep, msg, sizeof msg, &mr), P2P_OK);
  CHECK_EQ(p2p_recv(ep, conn, mr, msg, sizeof msg, &got), P2P_OK);
  CHECK_EQ(got, sizeof msg);
  CHECK(pat_check(msg, sizeof msg, 17, "message after the hostile peers"));
  CHECK_EQ(eph_sync(fd), 0);
  p2p_endpoint_destroy(ep);
  return eph_leak_check();
}

static int test_hostile_malformed_control_messages(void) {
  CHECK_EQ(eph_run(&hosts, hostile_server, hostile_client, NULL, 120), 0);
  return 0;
}

/* ---- authentication ---- */

typedef struct token_cfg {
  const char *option;  /* options.auth_token */
  const char *env;     /* TCPX_P2P_AUTH_TOKEN; NULL = unset */
} token_cfg;

typedef struct auth_case {
  const char *name;
  token_cfg side[2];   /* 0 accepts, 1 connects */
  int ok;              /* should the connection come up? */
} auth_case;

static char long_a[301], long_b[301];  /* differ only in the last byte */

static const auth_case auth_cases[] = {
    {"tokens differ", {{"alpha", NULL}, {"beta", NULL}}, 0},
    {"connector has no token", {{"alpha", NULL}, {NULL, NULL}}, 0},
    {"acceptor has no token", {{NULL, NULL}, {"beta", NULL}}, 0},
    {"environment tokens match", {{NULL, "gamma"}, {NULL, "gamma"}}, 1},
    {"option overrides environment", {{NULL, "gamma"}, {"delta", "gamma"}}, 0},
    {"option tokens match", {{"same", NULL}, {"same", NULL}}, 1},
    {"long tokens differ at byte 300", {{long_a, NULL}, {long_b, NULL}}, 0},
    {"no tokens at all", {{NULL, NULL}, {NULL, NULL}}, 1},
};
#define NAUTH (sizeof auth_cases / sizeof auth_cases[0])

/* Endpoint with side's token configuration; P2P_EINVAL from create is
 * passed back (a token the endpoint refuses to use). */
static int auth_endpoint(const token_cfg *t, int gpu, int op_timeout,
                         p2p_endpoint **ep) {
  if (t->env) setenv("TCPX_P2P_AUTH_TOKEN", t->env, 1);
  else unsetenv("TCPX_P2P_AUTH_TOKEN");
  p2p_options o;
  eph_options(&o);
  o.gpu_index = gpu;
  o.auth_token = t->option;
  o.op_timeout_ms = op_timeout;
  return p2p_endpoint_create(&o, ep);
}

static int auth_server(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  for (size_t i = 0; i < NAUTH; i++) {
    const auth_case *c = &auth_cases[i];
    p2p_endpoint *ep;
    uint64_t conn, result;
    char ip[64];
    int gpu;
    CHECK_EQ(auth_endpoint(&c->side[0], EPH_GPU0, 1500, &ep), P2P_OK);
    CHECK_EQ(eph_send_metadata(ep, fd), 0);
    CHECK_EQ(eph_get_u64(fd, &result), 0);  /* the connect is over */
    int rc = p2p_accept(ep, ip, sizeof ip, &gpu, &conn);
    if (rc != (c->ok ? P2P_OK : P2P_ETIMEDOUT)) {
      fprintf(stderr, "  %s: accept gave %s\n", c->name, p2p_strerror(rc));
      return 1;
    }
    if (c->ok) {
      uint8_t b = 0x42;
      uint64_t mr;
      size_t got;
      CHECK_EQ(p2p_reg(ep, &b, 1, &mr), P2P_OK);
      CHECK_EQ(p2p_recv(ep, conn, mr, &b, 1, &got), P2P_OK);
      CHECK_EQ(b, 0x24);
    }
    CHECK_EQ(eph_sync(fd), 0);
    p2p_endpoint_destroy(ep);
  }
  return eph_leak_check();
}

static int auth_client(const twohost *th, int side, int fd, void *arg) {
  (void)th, (void)side, (void)arg;
  for (size_t i = 0; i < NAUTH; i++) {
    const auth_case *c = &auth_cases[i];
    p2p_endpoint *ep = NULL;
    uint64_t conn;
    char ip[64];
    int port, gpu;
    CHECK_EQ(eph_recv_metadata(fd, ip, sizeof ip, &port, &gpu), 0);
    int rc = auth_endpoint(&c->side[1], EPH_GPU1, 0, &ep);
    if (rc == P2P_EINVAL && !c->ok) {
      printf("  %s: the endpoint refuses the token: %s\n", c->name,
             p2p_last_error());
    } else {
      CHECK_EQ(rc, P2P_OK);
      rc = p2p_connect(ep, ip, gpu, port, &conn);
      if (rc != (c->ok ? P2P_OK : P2P_EAUTH)) {
        fprintf(stderr, "  %s: connect gave %s: %s\n", c->name, p2p_strerror(rc),
                p2p_last_error());
        return 1;
      }
    }
    CHECK_EQ(eph_put_u64(fd, (uint64_t)-rc), 0);
    if (c->ok) {
      uint8_t b = 0x24;
      uint64_t mr;
      CHECK_EQ(p2p_reg(ep, &b, 1, &mr), P2P_OK);
      CHECK_EQ(p2p_send(ep, conn, mr, &b, 1), P2P_OK);
    }
    CHECK_EQ(eph_sync(fd), 0);
    p2p_endpoint_destroy(ep);
  }
  return eph_leak_check();
}

static int test_hostile_auth_tokens(void) {
  memset(long_a, 'x', 300);
  memset(long_b, 'x', 300);
  long_b[299] = 'y';
  CHECK_EQ(eph_run(&hosts, auth_server, auth_client, NULL, 120), 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_hostile_malformed_control_messages),
    CHECK_CASE(test_hostile_auth_tokens),
};

int main(int argc, char **argv) {
  if (twohost_setup(&hosts)) return 1;
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  twohost_teardown(&hosts);
  return rc;
}
