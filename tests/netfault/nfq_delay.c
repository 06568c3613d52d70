/* nfq_delay: delay and reorder the packets of one network namespace, for
 * fault tests where the kernel has no netem. An iptables rule sends
 * packets to NFQUEUE queue Q (with --queue-bypass, so they pass when this
 * program is not running); this program holds each one for DELAY ms (plus
 * up to JITTER ms) before accepting it, except REORDER percent of them,
 * accepted at once so that they overtake the delayed ones (netem's
 * "reorder"). Only packet ids and times are kept, no payload.
 *
 *   nfq_delay QUEUE DELAY_MS [JITTER_MS [REORDER_PCT]]
 *
 * Prints "ready" once bound; runs until SIGTERM/SIGINT, then releases
 * every held packet. */
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_HELD 65536

typedef struct held {
  uint64_t due_ns;
  uint32_t id;
} held;

static held heap[MAX_HELD];
static int nheld;
static struct nfq_q_handle *qh;
static int delay_ms, jitter_ms, reorder_pct;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static volatile sig_atomic_t stop;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Min-heap on due time: jitter makes release order differ from arrival. */
static void heap_push(held h) {
  int i = nheld++;
  while (i > 0 && heap[(i - 1) / 2].due_ns > h.due_ns) {
    heap[i] = heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  heap[i] = h;
}

static held heap_pop(void) {
  held top = heap[0], last = heap[--nheld];
  int i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= nheld) break;
    if (c + 1 < nheld && heap[c + 1].due_ns < heap[c].due_ns) c++;
    if (heap[c].due_ns >= last.due_ns) break;
    heap[i] = heap[c];
    i = c;
  }
  heap[i] = last;
  return top;
}

static int on_packet(struct nfq_q_handle *q, struct nfgenmsg *msg,
                     struct nfq_data *nfa, void *data) {
  (void)msg;
  (void)data;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  if (!ph) return 0;
  uint32_t id = ntohl(ph->packet_id);
  if (nheld >= MAX_HELD || (int)(rnd() % 100) < reorder_pct)
    return nfq_set_verdict(q, id, NF_ACCEPT, 0, NULL);
  uint64_t ms = (uint64_t)delay_ms + (jitter_ms ? rnd() % (uint64_t)(jitter_ms + 1) : 0);
  heap_push((held){now_ns() + ms * 1000000ull, id});
  return 0;
}

static void release_due(int all) {
  uint64_t now = now_ns();
  while (nheld && (all || heap[0].due_ns <= now))
    nfq_set_verdict(qh, heap_pop().id, NF_ACCEPT, 0, NULL);
}

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: nfq_delay QUEUE DELAY_MS [JITTER_MS [REORDER_PCT]]\n");
    return 2;
  }
  int queue = atoi(argv[1]);
  delay_ms = atoi(argv[2]);
  jitter_ms = argc > 3 ? atoi(argv[3]) : 0;
  reorder_pct = argc > 4 ? atoi(argv[4]) : 0;
  struct nfq_handle *h = nfq_open();
  if (!h) {
    perror("nfq_open");
    return 1;
  }
  nfq_unbind_pf(h, AF_INET);
  if (nfq_bind_pf(h, AF_INET) < 0 ||
      !(qh = nfq_create_queue(h, (uint16_t)queue, on_packet, NULL)) ||
      nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0) {
    perror("nfq_delay: binding the queue");
    return 1;
  }
  nfq_set_queue_maxlen(qh, MAX_HELD);
  nfnl_rcvbufsiz(nfq_nfnlh(h), 16u << 20);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  printf("ready\n");
  fflush(stdout);
  int fd = nfq_fd(h);
  static char buf[1 << 16];
  while (!stop) {
    int wait = -1;
    if (nheld) {
      uint64_t now = now_ns(), due = heap[0].due_ns;
      wait = due > now ? (int)((due - now + 999999) / 1000000) : 0;
    }
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, wait) > 0) {
      ssize_t n;
      while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        nfq_handle_packet(h, buf, (int)n);
    }
    release_due(0);
  }
  release_due(1);
  nfq_destroy_queue(qh);
  nfq_close(h);
  return 0;
}
