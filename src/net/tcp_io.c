/* Built-in TCP transport: the data path.
 *
 * A comm's messages form one ordered ring. Every stream carries, for every
 * message, a 16-byte header and its part of the bytes (tcp_part_range), so
 * each stream advances through the ring on its own and no stream waits for
 * another. Helper threads each own a subset of the streams and do
 * non-blocking I/O, sleeping in poll() when there is nothing to do. The API
 * side posts under the comm lock and publishes the ring tail; a message is
 * complete when all streams have moved their part. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sock.h"
#include "tcp_internal.h"

void tcp_part_range(const tcp_comm *c, uint64_t seq, size_t size, int s,
                    size_t *off, size_t *len) {
  int n = c->nstreams;
  if (n == 1 || size < c->min_split) {
    /* Small: one stream carries it all, rotating so streams share load. */
    int lead = (int)(seq % (uint64_t)n);
    *off = 0;
    *len = s == lead ? size : 0;
    return;
  }
  size_t chunk = (size + (size_t)n - 1) / (size_t)n;
  chunk = (chunk + 4095) & ~(size_t)4095; /* page-aligned parts */
  size_t start = chunk * (size_t)s;
  *off = start < size ? start : size;
  *len = start < size ? (size - start < chunk ? size - start : chunk) : 0;
}

/* ---- failure ------------------------------------------------------------ */

static void comm_fail(tcp_comm *c, const char *why) {
  pthread_mutex_lock(&c->lock);
  if (!atomic_load(&c->failed)) {
    snprintf(c->err, sizeof c->err, "tcp %s comm on %s with %s: %s",
             c->is_recv ? "recv" : "send", c->dev[0] ? c->dev : "?",
             c->peer[0] ? c->peer : "?", why);
    atomic_store(&c->failed, 1);
  }
  pthread_mutex_unlock(&c->lock);
}

static int comm_error(tcp_comm *c) {
  pthread_mutex_lock(&c->lock);
  err_set(NET_EREMOTE, "%s", c->err);
  pthread_mutex_unlock(&c->lock);
  return NET_EREMOTE;
}

/* ---- per-stream progress (helper threads) ------------------------------ */

static void part_done(tcp_slot *slot) {
  tcp_req *req = slot->req; /* read before the slot may be reused */
  if (atomic_fetch_sub_explicit(&slot->parts_left, 1, memory_order_acq_rel) == 1)
    atomic_fetch_sub_explicit(&req->msgs_left, 1, memory_order_acq_rel);
}

/* Send header and part of the stream's current message, as far as the
 * socket takes them. Returns NET_OK; *moved tells whether bytes moved. */
static int send_progress(tcp_comm *c, tcp_stream *st, int *moved) {
  for (;;) {
    uint64_t tail = atomic_load_explicit(&c->tail, memory_order_acquire);
    if (st->cursor >= tail) return NET_OK;
    tcp_slot *slot = &c->ring[st->cursor % TCP_RING];
    if (st->done == 0) {
      size_t off;
      st->hdr = (tcp_msg_hdr){.seq = (uint32_t)st->cursor, .tag = slot->tag,
                              .size = slot->size};
      tcp_part_range(c, st->cursor, slot->size, st->index, &off, &st->part_len);
      st->part = slot->req->data[0] + off;
    }
    size_t total = sizeof st->hdr + st->part_len;
    while (st->done < total) {
      struct iovec iov[2];
      int n = 0;
      if (st->done < sizeof st->hdr) {
        iov[n++] = (struct iovec){(char *)&st->hdr + st->done,
                                  sizeof st->hdr - st->done};
        iov[n++] = (struct iovec){st->part, st->part_len};
      } else {
        size_t at = st->done - sizeof st->hdr;
        iov[n++] = (struct iovec){st->part + at, st->part_len - at};
      }
      struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
      ssize_t w = sendmsg(st->fd, &mh, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return NET_OK;
        if (errno == EINTR) continue;
        return err_sys(NET_EREMOTE, errno, "send");
      }
      st->done += (size_t)w;
      *moved = 1;
    }
    st->done = 0;
    st->cursor++;
    part_done(slot);
  }
}

/* Match a header to its posted receive: choose the buffer (by tag for
 * grouped receives), check the size against the posted capacity, and agree
 * with what other streams already saw. */
static int accept_header(tcp_comm *c, tcp_stream *st, tcp_slot *slot) {
  const tcp_msg_hdr *h = &st->hdr;
  if (h->seq != (uint32_t)st->cursor)
    return err_set(NET_EREMOTE, "stream %d out of step (message %u, expected "
                   "%u)", st->index, h->seq, (uint32_t)st->cursor);
  int rc = NET_OK;
  pthread_mutex_lock(&c->lock);
  tcp_req *req = slot->req;
  if (!atomic_load(&slot->size_known)) {
    int sub = req->n == 1 ? 0 : -1; /* one buffer: tags are not checked */
    for (int i = 0; sub < 0 && i < req->n; i++)
      if (!req->claimed[i] && req->tags[i] == h->tag) sub = i;
    if (sub < 0) {
      rc = err_set(NET_EREMOTE, "message with tag %d matches no buffer of "
                   "the posted grouped receive", h->tag);
    } else if (h->size > req->cap[sub]) {
      rc = err_set(NET_EREMOTE, "message of %llu bytes is larger than the "
                   "posted receive of %zu bytes (nothing truncated: failed)",
                   (unsigned long long)h->size, req->cap[sub]);
    } else {
      req->claimed[sub] = 1;
      req->sizes[sub] = h->size;
      slot->sub = sub;
      slot->tag = h->tag;
      slot->size = h->size;
      atomic_store(&slot->size_known, 1);
    }
  } else if (slot->size != h->size || slot->tag != h->tag) {
    rc = err_set(NET_EREMOTE, "streams disagree on message %u", h->seq);
  }
  pthread_mutex_unlock(&c->lock);
  if (rc != NET_OK) return rc;
  size_t off;
  tcp_part_range(c, st->cursor, slot->size, st->index, &off, &st->part_len);
  st->part = req->data[slot->sub] + off;
  return NET_OK;
}

/* Wake the stream's thread only when `want` bytes (at most the option's
 * value) have arrived: fewer, larger receives of a long part. */
static void set_lowat(tcp_comm *c, tcp_stream *st, size_t want) {
  int cap = c->inst->opts.rcvlowat;
  if (cap <= 1 && st->lowat <= 1) return;
  int v = cap <= 1 ? 1 : want < (size_t)cap ? (int)want : cap;
  if (v != st->lowat &&
      setsockopt(st->fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v) == 0)
    st->lowat = v;
}

static int recv_progress(tcp_comm *c, tcp_stream *st, int *moved) {
  for (;;) {
    uint64_t tail = atomic_load_explicit(&c->tail, memory_order_acquire);
    if (st->cursor >= tail) return NET_OK; /* nothing posted: leave data in the kernel */
    tcp_slot *slot = &c->ring[st->cursor % TCP_RING];
    int rc;
    if (!st->in_body) {
      size_t before = st->done;
      rc = sock_recv_some(st->fd, &st->hdr, sizeof st->hdr, &st->done);
      if (st->done != before) *moved = 1;
      if (rc != NET_OK) return rc;
      if (st->done < sizeof st->hdr) return NET_OK;
      if ((rc = accept_header(c, st, slot)) != NET_OK) return rc;
      st->in_body = 1;
      st->done = 0;
    }
    size_t before = st->done;
    rc = sock_recv_some(st->fd, st->part, st->part_len, &st->done);
    if (st->done != before) *moved = 1;
    if (rc != NET_OK) return rc;
    if (st->done < st->part_len) {
      set_lowat(c, st, st->part_len - st->done);
      return NET_OK;
    }
    set_lowat(c, st, 1); /* the next header may be all there is */
    st->in_body = 0;
    st->done = 0;
    st->cursor++;
    part_done(slot);
  }
}

/* ---- helper threads ----------------------------------------------------- */

static int stream_has_work(tcp_comm *c, const tcp_stream *st, uint64_t tail) {
  (void)c;
  return st->cursor < tail;
}

/* A stream failed: the comm fails with the stream's number and the cause,
 * so the engine can report it on the connection at once. */
static void stream_fail(tcp_comm *c, const tcp_stream *st, const char *why) {
  char msg[P2P_ERR_MAX / 2];
  snprintf(msg, sizeof msg, "stream %d of %d: %.200s", st->index, c->nstreams, why);
  atomic_fetch_add(&c->stream_resets, 1);
  comm_fail(c, msg);
}

/* An idle stream is polled for errors only (events 0: POLLERR and POLLHUP
 * are always reported), so a reset on an idle connection is noticed when
 * it happens, not at the next transfer. */
static int idle_stream_died(tcp_comm *c, const tcp_stream *st, short revents) {
  if (!(revents & (POLLERR | POLLHUP | POLLNVAL))) return 0;
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (getsockopt(st->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
  char why[160];
  if (soerr) snprintf(why, sizeof why, "idle stream lost: %s", strerror(soerr));
  else snprintf(why, sizeof why, "idle stream hung up");
  stream_fail(c, st, why);
  return 1;
}

/* One round over the thread's streams: move bytes, collect what to poll.
 * idx[i] is the stream of pfd[i] for idle ones, -1 for busy ones. */
static int streams_round(tcp_thread *th, struct pollfd *pfd, int *idx, int *np,
                         int *moved) {
  tcp_comm *c = th->comm;
  *np = 0;
  for (int s = th->first_stream; s < c->nstreams; s += c->nthreads) {
    tcp_stream *st = &c->streams[s];
    int rc = c->is_recv ? recv_progress(c, st, moved)
                        : send_progress(c, st, moved);
    if (rc != NET_OK) {
      stream_fail(c, st, err_get());
      return -1;
    }
    int busy = stream_has_work(c, st, atomic_load(&c->tail));
    short ev = busy ? (short)(c->is_recv ? POLLIN : POLLOUT) : 0;
    idx[*np] = busy ? -1 : s;
    pfd[(*np)++] = (struct pollfd){st->fd, ev, 0};
  }
  return 0;
}

/* After activity a helper thread keeps polling for spin_ns (yielding the
 * CPU) before it sleeps: the next message of a back-to-back exchange
 * comes within a round trip, and poll()'s wake-up costs more than that. */
static int recently_busy(uint64_t *last_move, int moved, uint64_t spin_ns) {
  uint64_t now = clock_ns();
  if (moved) *last_move = now;
  return now - *last_move < spin_ns;
}

static void *stream_thread(void *arg) {
  tcp_thread *th = arg;
  tcp_comm *c = th->comm;
  struct pollfd pfd[TCP_MAX_STREAMS + 1];
  int idx[TCP_MAX_STREAMS + 1];
  uint64_t last_move = 0;
  while (!atomic_load(&c->stop) && !atomic_load(&c->failed)) {
    uint64_t tail = atomic_load(&c->tail);
    int moved = 0, np = 0;
    if (streams_round(th, pfd, idx, &np, &moved) != 0) return NULL;
    if (c->spin_ns && recently_busy(&last_move, moved, c->spin_ns)) {
      if (!moved) sched_yield();
      continue;
    }
    if (moved) continue;
    /* Sleep. Announce it first, then re-check the tail: a poster that
     * published after our check sees `sleeping` and wakes us. */
    atomic_store(&th->sleeping, 1);
    if (atomic_load(&c->tail) != tail) {
      atomic_store(&th->sleeping, 0);
      continue;
    }
    pfd[np++] = (struct pollfd){th->wake_fd, POLLIN, 0};
    int n = poll(pfd, (nfds_t)np, 1000);
    atomic_store(&th->sleeping, 0);
    for (int i = 0; n > 0 && i < np - 1; i++)
      if (idx[i] >= 0 && idle_stream_died(c, &c->streams[idx[i]], pfd[i].revents))
        return NULL;
    if (n > 0 && (pfd[np - 1].revents & POLLIN)) {
      uint64_t v;
      if (read(th->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN) break;
    }
  }
  return NULL;
}

static void wake_threads(tcp_comm *c) {
  for (int i = 0; i < c->nthreads; i++) {
    tcp_thread *th = &c->threads[i];
    if (atomic_load(&th->sleeping) || atomic_load(&c->stop)) {
      uint64_t one = 1;
      if (write(th->wake_fd, &one, sizeof one) < 0) { /* counter saturated: awake anyway */ }
    }
  }
}

int tcp_comm_start(tcp_comm *c) {
  for (int i = 0; i < c->nthreads; i++) {
    tcp_thread *th = &c->threads[i];
    th->comm = c;
    th->first_stream = i;
    th->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (th->wake_fd < 0) return err_sys(NET_ESYS, errno, "tcp: eventfd");
  }
  for (int s = 0; s < c->nstreams; s++)
    if (sock_set_nonblock(c->streams[s].fd) != NET_OK) return NET_ESYS;
  for (int i = 0; i < c->nthreads; i++) {
    int e = pthread_create(&c->threads[i].tid, NULL, stream_thread, &c->threads[i]);
    if (e) {
      atomic_store(&c->stop, 1);
      for (int j = 0; j < i; j++) pthread_join(c->threads[j].tid, NULL);
      c->nthreads = 0; /* joined */
      return err_sys(NET_ESYS, e, "tcp: pthread_create");
    }
    c->threads[i].tid_valid = 1;
  }
  return NET_OK;
}

void tcp_comm_destroy(tcp_comm *c) {
  atomic_store(&c->stop, 1);
  wake_threads(c);
  for (int i = 0; i < c->nthreads; i++)
    if (c->threads[i].tid_valid) pthread_join(c->threads[i].tid, NULL);
  for (int i = 0; i < TCP_MAX_THREADS; i++)
    if (c->threads[i].wake_fd >= 0) close(c->threads[i].wake_fd);
  for (int s = 0; s < c->nstreams; s++)
    if (c->streams[s].fd >= 0) close(c->streams[s].fd);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

/* ---- posting and testing (API side) ------------------------------------- */

/* Under c->lock. A free request, or NULL when max_requests are in flight. */
static tcp_req *req_alloc(tcp_comm *c) {
  for (int i = 0; i < c->max_requests; i++) {
    tcp_req *r = &c->reqs[i];
    if (!r->used) {
      memset(r, 0, sizeof *r);
      r->used = 1;
      r->comm = c;
      r->order = c->next_order++;
      return r;
    }
  }
  return NULL;
}

/* Under c->lock: is there room in the ring for `n` more messages? */
static int ring_room(tcp_comm *c, int n) {
  uint64_t tail = atomic_load(&c->tail);
  while (c->head < tail &&
         atomic_load_explicit(&c->ring[c->head % TCP_RING].parts_left,
                              memory_order_acquire) == 0)
    c->head++;
  return tail + (uint64_t)n - c->head <= TCP_RING;
}

static void publish(tcp_comm *c, tcp_req *req, int n) {
  uint64_t tail = atomic_load(&c->tail);
  for (int i = 0; i < n; i++) {
    tcp_slot *slot = &c->ring[(tail + (uint64_t)i) % TCP_RING];
    slot->req = req;
    slot->sub = req->is_recv ? (n == 1 ? 0 : -1) : 0;
    slot->tag = req->tags[i];
    slot->size = req->sizes[i];
    atomic_store(&slot->size_known, !req->is_recv);
    atomic_store(&slot->parts_left, c->nstreams);
  }
  atomic_store_explicit(&c->tail, tail + (uint64_t)n, memory_order_release);
}

/* Reserve a request and ring room, or say "busy" (*req = NULL, NET_OK);
 * strict mode makes a request beyond the limit an error, as TCPX does. */
static int post_begin(tcp_comm *c, int n, tcp_req **req) {
  *req = NULL;
  if (atomic_load(&c->failed)) return comm_error(c);
  pthread_mutex_lock(&c->lock);
  tcp_req *r = ring_room(c, n) ? req_alloc(c) : NULL;
  if (!r) {
    pthread_mutex_unlock(&c->lock);
    if (c->strict)
      return err_set(NET_EINTERNAL, "tcp (strict): more than %d requests in "
                     "flight on one comm", c->max_requests);
    return NET_OK;
  }
  *req = r;
  return NET_OK; /* lock held: post_end releases it */
}

static void post_end(tcp_comm *c, tcp_req *req, int n, void **request) {
  atomic_store(&req->msgs_left, n);
  publish(c, req, n);
  pthread_mutex_unlock(&c->lock);
  wake_threads(c);
  *request = req;
}

int tcp_isend(net_transport *t, void *comm, void *data, size_t size, int tag,
              void *mh, void **request) {
  (void)t;
  (void)mh;
  tcp_comm *c = comm;
  *request = NULL;
  if (!c || c->is_recv) return err_set(NET_EINVAL, "tcp isend: not a send comm");
  if (!data && size) return err_set(NET_EINVAL, "tcp isend: NULL data");
  if (c->strict && size > TCP_STRICT_MAX_RECV_BYTES)
    return err_set(NET_EINVAL, "tcp isend (strict): %zu bytes > 4 MiB", size);
  tcp_req *req;
  int rc = post_begin(c, 1, &req);
  if (!req) return rc;
  req->n = 1;
  req->data[0] = data;
  req->sizes[0] = size;
  req->tags[0] = tag;
  post_end(c, req, 1, request);
  return NET_OK;
}

int tcp_irecv(net_transport *t, void *comm, int n, void **data, size_t *sizes,
              int *tags, void **mhs, void **request) {
  (void)t;
  (void)mhs;
  tcp_comm *c = comm;
  *request = NULL;
  if (!c || !c->is_recv) return err_set(NET_EINVAL, "tcp irecv: not a recv comm");
  if (n < 1 || n > c->max_recvs)
    return err_set(NET_EINVAL, "tcp irecv: %d buffers (1..%d allowed)", n,
                   c->max_recvs);
  for (int i = 0; i < n; i++) {
    if (!data[i] && sizes[i])
      return err_set(NET_EINVAL, "tcp irecv: NULL buffer %d", i);
    if (c->strict && sizes[i] > TCP_STRICT_MAX_RECV_BYTES)
      return err_set(NET_EINVAL, "tcp irecv (strict): %zu bytes > 4 MiB",
                     sizes[i]);
  }
  tcp_req *req;
  int rc = post_begin(c, n, &req);
  if (!req) return rc;
  req->is_recv = 1;
  req->n = n;
  for (int i = 0; i < n; i++) {
    req->data[i] = data[i];
    req->cap[i] = sizes[i];
    req->tags[i] = tags ? tags[i] : 0;
  }
  post_end(c, req, n, request);
  return NET_OK;
}

int tcp_comm_status(net_transport *t, void *comm, int *stream_resets) {
  (void)t;
  tcp_comm *c = comm;
  if (stream_resets) *stream_resets = c ? atomic_load(&c->stream_resets) : 0;
  if (!c || !atomic_load(&c->failed)) return NET_OK;
  return comm_error(c);
}

/* Under c->lock: strict mode allows test only on the oldest request. */
static int is_oldest(tcp_comm *c, const tcp_req *req) {
  for (int i = 0; i < c->max_requests; i++) {
    const tcp_req *r = &c->reqs[i];
    if (r->used && !r->tested_done && r->order < req->order) return 0;
  }
  return 1;
}

int tcp_test(net_transport *t, void *request, int *done, size_t *sizes) {
  (void)t;
  tcp_req *req = request;
  *done = 0;
  if (!req || !req->used)
    return err_set(NET_EINVAL, "tcp test: not an outstanding request");
  tcp_comm *c = req->comm;
  if (c->strict) {
    pthread_mutex_lock(&c->lock);
    int oldest = is_oldest(c, req);
    pthread_mutex_unlock(&c->lock);
    if (!oldest)
      return err_set(NET_EUSAGE, "tcp test (strict): not the oldest request "
                     "of its comm");
  }
  if (atomic_load_explicit(&req->msgs_left, memory_order_acquire) > 0)
    return atomic_load(&c->failed) ? comm_error(c) : NET_OK;
  *done = 1;
  if (sizes && !c->strict) /* strict: TCPX never reports sizes */
    for (int i = 0; i < req->n; i++) sizes[i] = req->sizes[i];
  pthread_mutex_lock(&c->lock);
  if (c->strict && req->is_recv)
    req->tested_done = 1; /* slot held until irecv_consumed */
  else
    req->used = 0;
  pthread_mutex_unlock(&c->lock);
  return NET_OK;
}

int tcp_irecv_consumed(net_transport *t, void *comm, int n, void *request) {
  (void)t;
  tcp_comm *c = comm;
  tcp_req *req = request;
  if (!c || !c->strict) return NET_OK; /* slots are freed by test */
  if (n != 1) return err_set(NET_EINVAL, "tcp irecvConsumed: n must be 1");
  pthread_mutex_lock(&c->lock);
  int ok = req && req->comm == c && req->used && req->tested_done;
  if (ok) req->used = 0;
  pthread_mutex_unlock(&c->lock);
  if (!ok)
    return err_set(NET_EUSAGE, "tcp irecvConsumed: request not done or "
                   "already consumed");
  return NET_OK;
}
