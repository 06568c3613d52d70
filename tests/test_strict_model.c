/* The strict TCPX model (tests/plugins/fake_tcpx.c) catches what it
 * claims to: each case breaks one TCPX rule through the plugin's raw v7
 * table and checks that a violation naming that rule was recorded (and the
 * call failed). Without this, "0 violations" in the strict suites could
 * mean a checker that checks nothing. Loopback only. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "nccl_net_abi.h"

#ifndef STRICT_PLUGIN
#error "STRICT_PLUGIN: path of libfake-tcpx-host.so"
#endif

static ncclNet_v7_t *net;
static char violations[64];

static void quiet_logger(int level, unsigned long flags, const char *file,
                         int line, const char *fmt, ...) {
  (void)level, (void)flags, (void)file, (void)line, (void)fmt;
}

/* What the plugin recorded since the last call. */
static long seen;
static int new_violation(const char *rule, char *out, size_t len) {
  FILE *f = fopen(violations, "r");
  out[0] = '\0';
  if (!f) return 0;
  fseek(f, seen, SEEK_SET);
  size_t n = fread(out, 1, len - 1, f);
  out[n] = '\0';
  seen = ftell(f);
  fclose(f);
  char tag[64];
  snprintf(tag, sizeof tag, "RULE VIOLATION [%s]", rule);
  return strstr(out, tag) != NULL;
}

#define CHECK_VIOLATION(call, rule)                                        \
  do {                                                                     \
    char got_[2048];                                                       \
    CHECK((call) != NCCL_OK);                                              \
    if (!new_violation(rule, got_, sizeof got_)) {                         \
      fprintf(stderr, "  no [%s] violation recorded; got: %s\n", rule, got_); \
      return 1;                                                            \
    }                                                                      \
  } while (0)

/* A connected pair: listen, connect (pending, then made), accept. */
typedef struct pair {
  void *lc, *sc, *rc, *smh, *rmh;
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  devhandle_t dh, *dhp;
  char sbuf[1 << 16], rbuf[1 << 16];
} pair;

static int pair_open(pair *p) {
  memset(p, 0, sizeof *p);
  p->dhp = &p->dh;
  CHECK_EQ(net->listen(0, p->handle, &p->lc), NCCL_OK);
  for (int i = 0; i < 1000 && (!p->sc || !p->rc); i++) {
    if (!p->sc) CHECK_EQ(net->connect(0, p->handle, &p->sc, NULL), NCCL_OK);
    if (!p->rc) CHECK_EQ(net->accept(p->lc, &p->rc, &p->dhp), NCCL_OK);
  }
  CHECK(p->sc && p->rc);
  CHECK_EQ(net->regMr(p->sc, p->sbuf, sizeof p->sbuf, NCCL_PTR_HOST, &p->smh), NCCL_OK);
  CHECK_EQ(net->regMr(p->rc, p->rbuf, sizeof p->rbuf, NCCL_PTR_HOST, &p->rmh), NCCL_OK);
  return 0;
}

static int recv_post(pair *p, int size, void **req) {
  void *data = p->rbuf, *mh = p->rmh;
  int tag = 0;
  *req = NULL;
  return net->irecv(p->rc, 1, &data, &size, &tag, &mh, req);
}

static int test_until_done(void *req) {
  int done = 0;
  for (int i = 0; i < 100000 && !done; i++)
    if (net->test(req, &done, NULL) != NCCL_OK) return -1;
  return done ? 0 : -1;
}

/* One message each way through the pair, every receive consumed. */
static int pair_round(pair *p, int size) {
  void *s, *r;
  CHECK_EQ(net->isend(p->sc, p->sbuf, size, 0, p->smh, &s), NCCL_OK);
  CHECK_EQ(recv_post(p, size, &r), NCCL_OK);
  CHECK_EQ(test_until_done(s), 0);
  CHECK_EQ(test_until_done(r), 0);
  CHECK_EQ(net->irecvConsumed(p->rc, 1, r), NCCL_OK);
  return 0;
}

static void pair_close(pair *p) {
  net->deregMr(p->sc, p->smh);
  net->deregMr(p->rc, p->rmh);
  net->closeSend(p->sc);
  net->closeRecv(p->rc);
  net->closeListen(p->lc);
  char ignored[2048];
  new_violation("", ignored, sizeof ignored); /* a failed case's leftovers */
}

/* ---- cases -------------------------------------------------------------------- */

static int test_rules_kept_record_nothing(void) {
  pair p;
  CHECK_EQ(pair_open(&p), 0);
  for (int i = 0; i < 40; i++) CHECK_EQ(pair_round(&p, i * 1000), 0);
  char got[2048];
  CHECK(!new_violation("", got, sizeof got));
  pair_close(&p);
  return 0;
}

static int test_init_without_dynamic_chunk_size(void) {
  unsetenv("NCCL_DYNAMIC_CHUNK_SIZE");
  CHECK_VIOLATION(net->init(quiet_logger), "dynamic-chunk-size");
  setenv("NCCL_DYNAMIC_CHUNK_SIZE", "524288", 1);
  CHECK_EQ(net->init(quiet_logger), NCCL_OK);
  return 0;
}

static int test_seventeenth_request(void) {
  pair p;
  void *req;
  CHECK_EQ(pair_open(&p), 0);
  for (int i = 0; i < 16; i++)
    CHECK_EQ(net->isend(p.sc, p.sbuf, 8, 0, p.smh, &req), NCCL_OK);
  CHECK_VIOLATION(net->isend(p.sc, p.sbuf, 8, 0, p.smh, &req), "max-16-requests");
  pair_close(&p);
  return 0;
}

static int test_test_out_of_order(void) {
  pair p;
  void *a, *b;
  int done;
  CHECK_EQ(pair_open(&p), 0);
  CHECK_EQ(net->isend(p.sc, p.sbuf, 8, 0, p.smh, &a), NCCL_OK);
  CHECK_EQ(net->isend(p.sc, p.sbuf, 8, 0, p.smh, &b), NCCL_OK);
  CHECK_VIOLATION(net->test(b, &done, NULL), "test-order");
  pair_close(&p);
  return 0;
}

static int test_test_after_done_and_sizes_never_reported(void) {
  pair p;
  void *s, *r;
  int done = 0, size = 77;
  CHECK_EQ(pair_open(&p), 0);
  CHECK_EQ(net->isend(p.sc, p.sbuf, 100, 0, p.smh, &s), NCCL_OK);
  CHECK_EQ(recv_post(&p, 100, &r), NCCL_OK);
  CHECK_EQ(test_until_done(s), 0);
  while (!done) CHECK_EQ(net->test(r, &done, &size), NCCL_OK);
  CHECK(size != 100); /* never the real size: an engine that reads it fails */
  CHECK_VIOLATION(net->test(r, &done, NULL), "test-after-done");
  CHECK_EQ(net->irecvConsumed(p.rc, 1, r), NCCL_OK);
  pair_close(&p);
  return 0;
}

static int test_receive_over_4mib(void) {
  pair p;
  void *req;
  CHECK_EQ(pair_open(&p), 0);
  CHECK_VIOLATION(recv_post(&p, (4 << 20) + 1, &req), "recv-max-4MiB");
  pair_close(&p);
  return 0;
}

static int test_send_larger_than_receive(void) {
  pair p;
  void *s, *r;
  int done;
  CHECK_EQ(pair_open(&p), 0);
  CHECK_EQ(net->isend(p.sc, p.sbuf, 200, 0, p.smh, &s), NCCL_OK);
  CHECK_EQ(recv_post(&p, 100, &r), NCCL_OK);
  CHECK_EQ(test_until_done(s), 0);
  char got[2048];
  for (int i = 0; i < 100000 && !new_violation("recv-size", got, sizeof got); i++)
    net->test(r, &done, NULL);
  CHECK_STR_CONTAINS(got, "[recv-size]");
  pair_close(&p);
  return 0;
}

static int test_consumed_before_done(void) {
  pair p;
  void *r;
  CHECK_EQ(pair_open(&p), 0);
  CHECK_EQ(recv_post(&p, 8, &r), NCCL_OK);
  CHECK_VIOLATION(net->irecvConsumed(p.rc, 1, r), "irecv-consumed");
  pair_close(&p);
  return 0;
}

static int test_unconsumed_receives_hold_slots(void) {
  pair p;
  void *s, *r;
  CHECK_EQ(pair_open(&p), 0);
  for (int i = 0; i < 16; i++) { /* done, never consumed */
    CHECK_EQ(net->isend(p.sc, p.sbuf, 8, 0, p.smh, &s), NCCL_OK);
    CHECK_EQ(recv_post(&p, 8, &r), NCCL_OK);
    CHECK_EQ(test_until_done(s), 0);
    CHECK_EQ(test_until_done(r), 0);
  }
  CHECK_VIOLATION(recv_post(&p, 8, &r), "max-16-requests");
  pair_close(&p);
  return 0;
}

static int test_dereg_while_in_use(void) {
  pair p;
  void *s;
  CHECK_EQ(pair_open(&p), 0);
  CHECK_EQ(net->isend(p.sc, p.sbuf, 8, 0, p.smh, &s), NCCL_OK);
  CHECK_VIOLATION(net->deregMr(p.sc, p.smh), "dereg-in-use");
  CHECK_EQ(test_until_done(s), 0);
  pair_close(&p);
  return 0;
}

static int test_handle_of_another_comm(void) {
  pair p;
  void *s;
  CHECK_EQ(pair_open(&p), 0);
  CHECK_VIOLATION(net->isend(p.sc, p.sbuf, 8, 0, p.rmh, &s), "mr-comm");
  pair_close(&p);
  return 0;
}

static int test_iflush_called(void) {
  pair p;
  void *data, *mh, *req = NULL;
  int size = 8;
  CHECK_EQ(pair_open(&p), 0);
  data = p.rbuf, mh = p.rmh;
  CHECK_VIOLATION(net->iflush(p.rc, 1, &data, &size, &mh, &req), "no-iflush");
  pair_close(&p);
  return 0;
}

static int test_close_with_request_in_flight(void) {
  pair p;
  void *s;
  CHECK_EQ(pair_open(&p), 0);
  CHECK_EQ(net->isend(p.sc, p.sbuf, 8, 0, p.smh, &s), NCCL_OK);
  net->deregMr(p.rc, p.rmh);
  net->closeRecv(p.rc);
  net->closeListen(p.lc);
  char ignored[2048];
  new_violation("", ignored, sizeof ignored);
  /* (the send's mh is in use, so it is closed without its dereg) */
  CHECK_VIOLATION(net->closeSend(p.sc), "close-in-flight");
  return 0;
}

static int test_second_accept_and_no_device_handle(void) {
  pair p;
  void *rc2 = NULL;
  CHECK_EQ(pair_open(&p), 0);
  CHECK_VIOLATION(net->accept(p.lc, &rc2, &p.dhp), "one-accept");
  void *lc, *rc3 = NULL;
  char handle[NCCL_NET_HANDLE_MAXSIZE];
  CHECK_EQ(net->listen(0, handle, &lc), NCCL_OK);
  CHECK_VIOLATION(net->accept(lc, &rc3, NULL), "accept-devhandle");
  net->closeListen(lc);
  pair_close(&p);
  return 0;
}

static int test_connect_handle_copies(void) {
  void *lc, *sc = NULL;
  char handle[NCCL_NET_HANDLE_MAXSIZE], copy[NCCL_NET_HANDLE_MAXSIZE];
  CHECK_EQ(net->listen(0, handle, &lc), NCCL_OK);
  memcpy(copy, handle, sizeof copy);
  CHECK_EQ(net->connect(0, handle, &sc, NULL), NCCL_OK); /* pending */
  char pending[NCCL_NET_HANDLE_MAXSIZE];
  memcpy(pending, handle, sizeof pending);
  CHECK_VIOLATION(net->connect(0, pending, &sc, NULL), "connect-handle");
  CHECK_VIOLATION(net->connect(0, copy, &sc, NULL), "connect-handle");
  net->closeListen(lc);
  return 0;
}

/* init again with FakeTCPX's device knobs (read at init); NULL unsets. */
static int init_with(const char *ptr_cuda, const char *pci_path) {
  setenv("NCCL_DYNAMIC_CHUNK_SIZE", "524288", 1);
  if (ptr_cuda) setenv("FAKE_TCPX_PTR_CUDA", ptr_cuda, 1);
  else unsetenv("FAKE_TCPX_PTR_CUDA");
  if (pci_path) setenv("FAKE_TCPX_PCI_PATH", pci_path, 1);
  else unsetenv("FAKE_TCPX_PCI_PATH");
  return net->init(quiet_logger) == NCCL_OK ? 0 : -1;
}

/* A GPU regMr on one 4 KiB page of `gpu` (host memory: FakeTCPX's host
 * build never reads it at registration). */
static int reg_gpu(pair *p, void *gpu, void **mh) {
  return net->regMr(p->rc, gpu, 4096, NCCL_PTR_CUDA, mh);
}

/* The host build takes no GPU memory by default; FAKE_TCPX_PTR_CUDA=1
 * advertises it, as TCPX does on every device, but a GPU regMr on a
 * device without a PCI path (lo) is where real TCPX crashes. */
static int test_gpu_regmr_needs_a_pci_path(void) {
  static _Alignas(4096) char gpu[4096];
  ncclNetProperties_v7_t props;
  pair p;
  void *mh, *refused;
  CHECK_EQ(init_with(NULL, NULL), 0);
  CHECK_EQ(net->getProperties(0, &props), NCCL_OK);
  CHECK_EQ(props.ptrSupport, NCCL_PTR_HOST);
  CHECK(props.pciPath == NULL);
  CHECK_EQ(pair_open(&p), 0);
  CHECK_VIOLATION(reg_gpu(&p, gpu, &mh), "ptr-type");
  pair_close(&p);

  CHECK_EQ(init_with("1", NULL), 0);
  CHECK_EQ(net->getProperties(0, &props), NCCL_OK);
  CHECK_EQ(props.ptrSupport, NCCL_PTR_HOST | NCCL_PTR_CUDA);
  CHECK(props.pciPath == NULL);
  CHECK_EQ(pair_open(&p), 0);
  CHECK_VIOLATION(reg_gpu(&p, gpu, &mh), "gpu-regmr-pci");
  pair_close(&p);

  const char *nic = "/sys/devices/pci0000:00/0000:00:04.0";
  CHECK_EQ(init_with("1", nic), 0);
  CHECK_EQ(net->getProperties(0, &props), NCCL_OK);
  CHECK(props.pciPath && !strcmp(props.pciPath, nic));
  CHECK_EQ(pair_open(&p), 0);
  CHECK_EQ(reg_gpu(&p, gpu, &mh), NCCL_OK);
  CHECK_VIOLATION(reg_gpu(&p, gpu + 1, &refused), "gpu-regmr-4k"); /* still checked */
  CHECK_EQ(net->deregMr(p.rc, mh), NCCL_OK);
  pair_close(&p);
  CHECK_EQ(init_with(NULL, NULL), 0);
  return 0;
}

#define CASE(fn) {#fn, fn}
static const check_case cases[] = {
    CASE(test_init_without_dynamic_chunk_size),
    CASE(test_rules_kept_record_nothing),
    CASE(test_seventeenth_request),
    CASE(test_test_out_of_order),
    CASE(test_test_after_done_and_sizes_never_reported),
    CASE(test_receive_over_4mib),
    CASE(test_send_larger_than_receive),
    CASE(test_consumed_before_done),
    CASE(test_unconsumed_receives_hold_slots),
    CASE(test_dereg_while_in_use),
    CASE(test_handle_of_another_comm),
    CASE(test_iflush_called),
    CASE(test_close_with_request_in_flight),
    CASE(test_second_accept_and_no_device_handle),
    CASE(test_connect_handle_copies),
    CASE(test_gpu_regmr_needs_a_pci_path),
};

int main(int argc, char **argv) {
  snprintf(violations, sizeof violations, "/tmp/tcpx-strict-model.%d", (int)getpid());
  setenv("FAKE_TCPX_VIOLATIONS", violations, 1);
  unsetenv("FAKE_TCPX_ADDR");
  unsetenv("NCCL_GPUDIRECTTCPX_SOCKET_IFNAME");
  unsetenv("TCPX_P2P_SOCKET_IFNAME");
  void *dl = dlopen(STRICT_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  if (!dl || !(net = dlsym(dl, "ncclNetPlugin_v7"))) {
    fprintf(stderr, "cannot load %s: %s\n", STRICT_PLUGIN, dlerror());
    return 1;
  }
  int rc = check_run(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
  unlink(violations);
  return rc;
}
