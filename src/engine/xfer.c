/* Transfers, run by whoever drives the connection: announce each op on the
 * control channel, cut its bytes into chunks striped over the lane's
 * comms, keep a window of transport requests in flight per comm, and
 * finish ops when their chunks and the peer's acknowledgements are in.
 *
 * Order is the whole protocol: on each lane and direction, the sender
 * queues chunks in the order its control messages announce them, and the
 * receiver queues receives in the order it reads those messages, with the
 * same chunk -> comm rule (chunk n of the lane goes to comm n % ncomms).
 * So every receive is posted with exactly the size the sender sends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "log.h"

/* Messages the peer may have announced before this side posts receives. */
#define XFER_MAX_UNMATCHED 65536

/* ---- lists ------------------------------------------------------------------- */

static void op_append(op **head, op *o) {
  o->next = NULL;
  while (*head) head = &(*head)->next;
  *head = o;
}

static void op_remove(op **head, op *o) {
  while (*head && *head != o) head = &(*head)->next;
  if (*head) *head = o->next;
  o->next = NULL;
}

/* ---- finishing ----------------------------------------------------------------- */

static op **op_list_of(conn *c, const op *o) {
  switch (o->kind) {
  case P2P_OP_SEND: return &c->sends_active;
  case P2P_OP_RECV: return &c->recvs_active;
  default: return &c->remote_ops;
  }
}

static void op_fail_reason(op *o, int status, const char *fmt, const char *detail) {
  if (o->status != P2P_OK) return; /* the first reason wins */
  o->status = status;
  snprintf(o->err, sizeof o->err, fmt, detail);
}

static void op_maybe_done(conn *c, op *o) {
  if (o->chunks_left > 0 || o->remote_left > 0) return;
  op_remove(op_list_of(c, o), o);
  trace_op(c, TR_OP_DONE, o, o->received);
  if (o->kind == P2P_OP_RECV && o->status == P2P_OK) {
    ctrl_msg m = {.type = CTRL_SEND_DONE,
                  .u.status = {.id = o->seq, .status = P2P_OK, .size = o->received}};
    conn_send_ctrl(c, &m, NULL);
  }
  op_finish(o, o->status, o->err);
}

static void serve_done(conn *c, serve *sv) {
  serve **pp = &c->serving;
  while (*pp && *pp != sv) pp = &(*pp)->next;
  if (*pp) *pp = sv->next;
  int was_paused = xfer_read_paused(c);
  if (sv->reply) c->nserving--;
  else c->nreading--;
  if (was_paused && !xfer_read_paused(c)) c->read_resumed = 1;
  if (sv->reply) {
    ctrl_msg m = {.type = sv->reply,
                  .u.status = {.id = sv->id, .status = sv->status, .size = sv->size}};
    conn_send_ctrl(c, &m, NULL);
  }
  if (sv->mr) region_release(c->ep, sv->mr);
  free(sv);
}

static serve *serve_new(conn *c, ctrl_type reply, uint64_t id, int status,
                        size_t size, mem_region *mr) {
  serve *sv = calloc(1, sizeof *sv);
  if (!sv) return NULL;
  *sv = (serve){.next = c->serving, .reply = reply, .id = id, .status = status,
                .size = size, .mr = mr};
  c->serving = sv;
  int *count = reply ? &c->nserving : &c->nreading;
  if (++*count > atomic_load(&c->stats.serving_peak))
    atomic_store(&c->stats.serving_peak, *count);
  return sv;
}

static void chunk_done(conn *c, chunk *ch) {
  trace_chunk(c, TR_CHUNK_DONE, ch);
  atomic_fetch_add_explicit(ch->is_recv ? &c->stats.bytes_received
                                        : &c->stats.bytes_sent,
                            ch->size, memory_order_relaxed);
  if (ch->owner) {
    ch->owner->chunks_left--;
    op_maybe_done(c, ch->owner);
  } else if (ch->serve && --ch->serve->chunks_left == 0) {
    serve_done(c, ch->serve);
  }
  free(ch);
}

/* ---- starting ops ------------------------------------------------------------- */

static int add_seg_chunks(conn *c, op *o, int lane_idx, int is_recv,
                          const op_seg *s, size_t size) {
  lane *l = is_recv ? &c->recv_lanes[lane_idx] : &c->send_lanes[lane_idx];
  return lane_add(c, l, s->ptr, size, is_recv, o, NULL, s->mr, &o->chunks_left);
}

/* Bytes of a small message out of host or GPU memory. */
static int copy_out(const mem_region *mr, uint8_t *dst, const uint8_t *src, size_t n) {
  if (n == 0) return 0; /* src may be NULL: memcpy(x, NULL, 0) is UB */
  if (mr->ptr_type == NCCL_PTR_CUDA) return gpath_copy(mr->device, dst, src, n, 0);
  memcpy(dst, src, n);
  return 0;
}

/* Small messages go inline in their SEND: no transport request, no chunk,
 * one hop (GPU memory too: one small copy each side beats a staged or
 * unpacked transport receive). The bytes are copied now, so the sender's
 * buffer is free at once; the op still completes on the peer's SEND_DONE.
 * NULL: send by chunks (too big, too much pending, or a copy failed: the
 * chunk path then reports why). */
static uint8_t *gather_inline(conn *c, op *o, size_t total) {
  if (total > c->eager_max || c->eager_pending >= EAGER_MAX_PENDING ||
      c->eager_pending_bytes + total > c->ep->lim.eager_buf)
    return NULL;
  uint8_t *data = malloc(total ? total : 1), *at = data;
  for (size_t i = 0; data && i < o->nseg; i++) {
    if (copy_out(o->segs[i].mr, at, o->segs[i].ptr, o->segs[i].size) != 0) {
      free(data);
      return NULL;
    }
    at += o->segs[i].size;
  }
  return data;
}

static int start_send(conn *c, op *o) {
  uint64_t *sizes = malloc(o->nseg * sizeof *sizes);
  if (!sizes) return -1;
  size_t total = 0;
  for (size_t i = 0; i < o->nseg; i++) total += sizes[i] = o->segs[i].size;
  uint8_t *data = gather_inline(c, o, total);
  o->seq = c->next_send_seq++;
  trace_op(c, TR_SEND_START, o, total);
  ctrl_msg m = {.type = CTRL_SEND, .u.send = {.seq = o->seq, .nseg = (uint32_t)o->nseg,
                                              .data = data, .data_len = (uint32_t)total}};
  int rc = conn_send_ctrl(c, &m, sizes);
  free(sizes);
  free(data);
  if (rc != 0) return -1;
  o->remote_left = 1;
  if (data) {
    o->eager = 1;
    o->eager_bytes = total;
    c->eager_pending++;
    c->eager_pending_bytes += total;
    op_append(&c->sends_active, o);
    return 0;
  }
  for (size_t i = 0; i < o->nseg; i++)
    if (add_seg_chunks(c, o, LANE_TWO_SIDED, 0, &o->segs[i], o->segs[i].size) != 0)
      return -1;
  op_append(&c->sends_active, o);
  return 0;
}

static int start_access(conn *c, op *o, ctrl_type type) {
  o->seq = c->next_access_id;
  c->next_access_id += o->nseg;
  o->remote_left = (int)o->nseg;
  op_append(&c->remote_ops, o);
  for (size_t i = 0; i < o->nseg; i++) {
    op_seg *s = &o->segs[i];
    /* A small write carries its bytes (copied now; out of GPU memory into
     * a bounce buffer, encoded before this returns). */
    uint8_t *bounce = NULL;
    const uint8_t *bytes = s->ptr ? s->ptr : (const uint8_t *)"";
    int inline_write = type == CTRL_WRITE && s->size <= c->eager_max;
    if (inline_write && s->size && s->mr->ptr_type == NCCL_PTR_CUDA) {
      bounce = malloc(s->size);
      inline_write = bounce && copy_out(s->mr, bounce, s->ptr, s->size) == 0;
      bytes = bounce;
    }
    ctrl_msg m = {.type = type,
                  .u.access = {.id = o->seq + i, .region = s->remote.exposure_id,
                               .offset = 0, .size = s->size,
                               .data = inline_write ? bytes : NULL}};
    memcpy(m.u.access.key, s->remote.key, CTRL_KEY_SIZE);
    int sent = conn_send_ctrl(c, &m, NULL);
    free(bounce);
    if (sent != 0) return -1;
    if (type == CTRL_WRITE && !inline_write &&
        add_seg_chunks(c, o, LANE_ONE_SIDED, 0, s, s->size) != 0)
      return -1;
  }
  return 0;
}

static int match_recvs(conn *c);

void xfer_start(conn *c, op *o) {
  int rc = 0;
  switch (o->kind) {
  case P2P_OP_SEND: rc = start_send(c, o); break;
  case P2P_OP_RECV:
    op_append(&c->recvs_waiting, o);
    rc = match_recvs(c);
    break;
  case P2P_OP_WRITE: rc = start_access(c, o, CTRL_WRITE); break;
  case P2P_OP_READ: rc = start_access(c, o, CTRL_READ); break;
  }
  if (rc != 0) conn_fail(c, P2P_ENOMEM, "out of memory starting a transfer");
}

/* ---- two-sided matching ------------------------------------------------------- */

/* Why an incoming message does not fit a posted receive, or NULL. */
static const char *recv_misfit(const op *o, const incoming_send *in,
                               char *why, size_t len) {
  if (in->nseg != o->nseg) {
    snprintf(why, len, "peer sent %u segments, the receive has %zu",
             in->nseg, o->nseg);
    return why;
  }
  for (uint32_t i = 0; i < in->nseg; i++)
    if (in->sizes[i] > o->segs[i].size) {
      snprintf(why, len, "message of %llu bytes (segment %u) is larger than "
               "the posted receive of %zu bytes; nothing truncated",
               (unsigned long long)in->sizes[i], i, o->segs[i].size);
      return why;
    }
  return NULL;
}

/* Drain a refused message and tell the sender. */
static int refuse_incoming(conn *c, const incoming_send *in, int status) {
  serve *sv = serve_new(c, CTRL_SEND_DONE, in->seq, status, 0, NULL);
  if (!sv) return -1;
  if (in->data) { /* inline: nothing on the lane to drain */
    serve_done(c, sv);
    return 0;
  }
  for (uint32_t i = 0; i < in->nseg; i++)
    if (lane_add_drain(c, &c->recv_lanes[LANE_TWO_SIDED], in->sizes[i], sv) != 0)
      return -1;
  if (sv->chunks_left == 0) serve_done(c, sv);
  return 0;
}

/* Inline bytes into a destination of region mr (host or GPU memory). */
static int put_inline(conn *c, const mem_region *mr, uint8_t *dst,
                      const uint8_t *src, size_t n) {
  if (n == 0) return 0;
  if (mr->ptr_type != NCCL_PTR_CUDA) {
    memcpy(dst, src, n);
    return 0;
  }
  if (gpath_copy(mr->device, dst, src, n, 1) == 0) return 0;
  char why[P2P_ERR_MAX];
  snprintf(why, sizeof why, "copy to GPU memory: %s", err_get());
  conn_fail(c, P2P_ENOTSUP, why);
  return -1;
}

/* Inline bytes go straight into the receive's buffers. */
static int copy_inline(conn *c, op *o, const incoming_send *in) {
  const uint8_t *at = in->data;
  for (uint32_t i = 0; i < in->nseg; i++) {
    if (put_inline(c, o->segs[i].mr, o->segs[i].ptr, at, in->sizes[i]) != 0)
      return -1;
    at += in->sizes[i];
  }
  return 0;
}

static int accept_incoming(conn *c, op *o, const incoming_send *in) {
  o->seq = in->seq;
  o->received = 0;
  trace_op(c, TR_RECV_MATCH, o, in->nseg ? in->sizes[0] : 0);
  op_append(&c->recvs_active, o);
  if (in->data) {
    for (uint32_t i = 0; i < in->nseg; i++) {
      o->received += in->sizes[i];
      o->segs[i].size = in->sizes[i];
    }
    if (copy_inline(c, o, in) != 0) return 0; /* the connection failed */
    op_maybe_done(c, o);
    return 0;
  }
  for (uint32_t i = 0; i < in->nseg; i++) {
    o->received += in->sizes[i];
    o->segs[i].size = in->sizes[i]; /* what arrives; reported per segment */
    if (add_seg_chunks(c, o, LANE_TWO_SIDED, 1, &o->segs[i], in->sizes[i]) != 0)
      return -1;
  }
  op_maybe_done(c, o);
  return 0;
}

/* Reading pauses while too much waits for the application (inline
 * messages), or while lim.max_ops writes of the peer (and drains) are
 * being received: those finish without another control message (their
 * bytes come in the order of messages already read). Reads served are
 * capped by refusal instead (on_read): sending their bytes needs the
 * peer to read our READ_DATA, and two peers both paused that way would
 * wait for each other. */
int xfer_read_paused(const conn *c) {
  return c->incoming_bytes >= c->ep->lim.eager_buf || c->nserving >= c->ep->lim.max_ops;
}

static int match_recvs(conn *c) {
  while (c->recvs_waiting && c->incoming_head) {
    op *o = c->recvs_waiting;
    incoming_send *in = c->incoming_head;
    int was_paused = xfer_read_paused(c);
    c->nincoming--;
    c->incoming_bytes -= in->mem;
    if (was_paused && !xfer_read_paused(c)) c->read_resumed = 1;
    op_remove(&c->recvs_waiting, o);
    c->incoming_head = in->next;
    if (!c->incoming_head) c->incoming_tail = NULL;
    char why[256];
    int rc;
    if (recv_misfit(o, in, why, sizeof why)) {
      rc = refuse_incoming(c, in, P2P_ETOOBIG);
      o->status = P2P_ETOOBIG;
      snprintf(o->err, sizeof o->err, "recv from %s: %s", c->peer_ip, why);
      op_finish(o, o->status, o->err);
    } else {
      rc = accept_incoming(c, o, in);
    }
    free(in);
    if (rc != 0) return -1;
  }
  return 0;
}

/* ---- control messages --------------------------------------------------------- */

static int protocol_error(conn *c, const char *what, uint64_t id) {
  char why[160];
  snprintf(why, sizeof why, "protocol error from peer: %s (id %llu)", what,
           (unsigned long long)id);
  conn_fail(c, P2P_EPEER, why);
  return -1;
}

static int on_send(conn *c, const ctrl_send *s) {
  if (s->seq != c->next_recv_seq)
    return protocol_error(c, "SEND out of sequence", s->seq);
  if (c->nincoming >= XFER_MAX_UNMATCHED)
    return protocol_error(c, "too many messages waiting for a receive", s->seq);
  c->next_recv_seq++;
  c->nincoming++;
  size_t inline_len = s->data ? s->data_len : 0;
  size_t mem = sizeof(incoming_send) + s->nseg * sizeof(uint64_t) + inline_len;
  incoming_send *in = malloc(mem);
  if (!in) return conn_fail(c, P2P_ENOMEM, "out of memory"), -1;
  in->next = NULL;
  in->mem = mem;
  c->incoming_bytes += mem;
  if (c->incoming_bytes > atomic_load(&c->stats.incoming_peak))
    atomic_store(&c->stats.incoming_peak, c->incoming_bytes);
  in->seq = s->seq;
  in->nseg = s->nseg;
  for (uint32_t i = 0; i < s->nseg; i++) in->sizes[i] = ctrl_send_size(s, i);
  in->data = s->data ? (uint8_t *)&in->sizes[s->nseg] : NULL;
  if (inline_len) memcpy(in->data, s->data, inline_len);
  if (c->incoming_tail) c->incoming_tail->next = in;
  else c->incoming_head = in;
  c->incoming_tail = in;
  return match_recvs(c);
}

/* The op among remote_ops (WRITE/READ) whose ids cover `id`, and the
 * segment; each segment is answered once. */
static op *remote_op(conn *c, p2p_op_kind kind, uint64_t id, size_t *seg) {
  for (op *o = c->remote_ops; o; o = o->next)
    if (o->kind == kind && id >= o->seq && id - o->seq < o->nseg &&
        !o->segs[id - o->seq].answered) {
      *seg = (size_t)(id - o->seq);
      o->segs[*seg].answered = 1;
      return o;
    }
  return NULL;
}

static int on_status(conn *c, const ctrl_msg *m) {
  const ctrl_status *st = &m->u.status;
  op *o = NULL;
  size_t seg = 0;
  if (m->type == CTRL_SEND_DONE) {
    for (o = c->sends_active; o && o->seq != st->id; o = o->next) {}
    if (!o || o->remote_left == 0) return protocol_error(c, "unknown SEND_DONE", st->id);
    if (o->eager) {
      c->eager_pending--;
      c->eager_pending_bytes -= o->eager_bytes;
      o->eager = 0;
    }
  } else {
    o = remote_op(c, m->type == CTRL_WRITE_DONE ? P2P_OP_WRITE : P2P_OP_READ,
                  st->id, &seg);
    if (!o) return protocol_error(c, "unknown WRITE_DONE/READ_DONE", st->id);
    if (m->type == CTRL_READ_DONE && st->status == P2P_OK)
      return protocol_error(c, "READ_DONE without an error", st->id);
  }
  if (st->status != P2P_OK) {
    char detail[200];
    snprintf(detail, sizeof detail, "%s (%s)", c->peer_ip, p2p_strerror(st->status));
    op_fail_reason(o, st->status,
                   m->type == CTRL_SEND_DONE
                       ? "send: peer %s refused the message: larger than its posted receive"
                   : st->status == P2P_ELIMIT
                       ? "peer %s refused the read: it serves too many at once "
                         "(its TCPX_P2P_MAX_OPS_PER_CONN)"
                       : "peer %s refused the one-sided access (key, bounds or deregistered region)",
                   detail);
  }
  o->remote_left--;
  op_maybe_done(c, o);
  return 0;
}

static int on_read_data(conn *c, const ctrl_read_data *rd) {
  size_t seg;
  op *o = remote_op(c, P2P_OP_READ, rd->id, &seg);
  if (!o) return protocol_error(c, "unknown READ_DATA", rd->id);
  if (rd->size != o->segs[seg].size)
    return protocol_error(c, "READ_DATA of the wrong size", rd->id);
  o->remote_left--;
  if (rd->data) { /* a small read: the bytes came with the answer */
    if (put_inline(c, o->segs[seg].mr, o->segs[seg].ptr, rd->data, rd->size) != 0)
      return -1;
    op_maybe_done(c, o);
    return 0;
  }
  if (add_seg_chunks(c, o, LANE_ONE_SIDED, 1, &o->segs[seg], rd->size) != 0)
    return conn_fail(c, P2P_ENOMEM, "out of memory"), -1;
  op_maybe_done(c, o);
  return 0;
}

/* A peer's access to an exposure whose memory is gone (the application
 * freed it without deregistering): refused, never a crash. */
static int unmapped(conn *c, const char *what, uint64_t size) {
  log_msg(LOG_WARN, "refused a %s of %llu bytes from %s: the advertised memory "
          "is no longer mapped (freed before p2p_dereg?)", what,
          (unsigned long long)size, c->peer_ip);
  return P2P_EREFUSED;
}

/* The bytes of a small read, copied from the exposure without trusting it
 * (host memory that may have been unmapped is read without faulting). */
static int read_inline(conn *c, const ctrl_access *a, const mem_region *mr,
                       const uint8_t *ptr, uint8_t **copy) {
  *copy = NULL;
  if (a->size == 0) return P2P_OK;
  if (!(*copy = malloc(a->size))) return conn_fail(c, P2P_ENOMEM, "out of memory"), -1;
  int copied = mr->ptr_type == NCCL_PTR_CUDA
                   ? gpath_copy(mr->device, *copy, ptr, a->size, 0)
                   : mem_copy(*copy, ptr, a->size);
  if (copied == 0) return P2P_OK;
  free(*copy);
  *copy = NULL;
  return unmapped(c, "read", a->size);
}

/* The peer writes into one of our exposures. */
static int on_write(conn *c, const ctrl_access *a) {
  uint8_t *ptr = NULL;
  mem_region *mr = NULL;
  int status = region_acquire(c->ep, a, 1, &ptr, &mr);
  if (status != P2P_OK)
    log_msg(LOG_INFO, "refused a write of %llu bytes from %s: %s",
            (unsigned long long)a->size, c->peer_ip, err_get());
  serve *sv = serve_new(c, CTRL_WRITE_DONE, a->id, status, a->size, mr);
  if (!sv) return conn_fail(c, P2P_ENOMEM, "out of memory"), -1;
  if (a->data) { /* a small write: its bytes came with it */
    if (status == P2P_OK && mr->ptr_type != NCCL_PTR_CUDA) {
      if (mem_copy(ptr, a->data, a->size) != 0) sv->status = unmapped(c, "write", a->size);
    } else if (status == P2P_OK && put_inline(c, mr, ptr, a->data, a->size) != 0) {
      return -1;
    }
    serve_done(c, sv);
    return 0;
  }
  lane *l = &c->recv_lanes[LANE_ONE_SIDED];
  int rc = status == P2P_OK
               ? lane_add(c, l, ptr, a->size, 1, NULL, sv, mr, &sv->chunks_left)
               : lane_add_drain(c, l, a->size, sv);
  if (rc != 0) return conn_fail(c, P2P_ENOMEM, "out of memory"), -1;
  if (sv->chunks_left == 0) serve_done(c, sv);
  return 0;
}

/* The peer reads from one of our exposures. */
static int on_read(conn *c, const ctrl_access *a) {
  uint8_t *ptr = NULL;
  mem_region *mr = NULL;
  int status = region_acquire(c->ep, a, 0, &ptr, &mr);
  if (status != P2P_OK) {
    log_msg(LOG_INFO, "refused a read of %llu bytes from %s: %s",
            (unsigned long long)a->size, c->peer_ip, err_get());
    ctrl_msg m = {.type = CTRL_READ_DONE, .u.status = {.id = a->id, .status = status}};
    return conn_send_ctrl(c, &m, NULL);
  }
  /* Small reads answer with the bytes themselves. */
  int inline_read = a->size <= c->eager_max;
  if (!inline_read && c->nreading >= c->ep->lim.max_ops) {
    region_release(c->ep, mr);
    log_msg(LOG_WARN, "refused a read from %s: %d reads served at once already "
            "(TCPX_P2P_MAX_OPS_PER_CONN)", c->peer_ip, c->nreading);
    ctrl_msg m = {.type = CTRL_READ_DONE, .u.status = {.id = a->id, .status = P2P_ELIMIT}};
    return conn_send_ctrl(c, &m, NULL);
  }
  uint8_t *copy = NULL;
  if (inline_read && (status = read_inline(c, a, mr, ptr, &copy)) != P2P_OK) {
    region_release(c->ep, mr);
    if (status < 0 && atomic_load(&c->dead)) return -1;
    ctrl_msg m = {.type = CTRL_READ_DONE, .u.status = {.id = a->id, .status = status}};
    return conn_send_ctrl(c, &m, NULL);
  }
  ctrl_msg m = {.type = CTRL_READ_DATA,
                .u.read_data = {.id = a->id, .size = a->size,
                                .data = inline_read ? (copy ? copy : (uint8_t *)"") : NULL}};
  int sent = conn_send_ctrl(c, &m, NULL);
  free(copy);
  if (sent != 0 || inline_read) {
    region_release(c->ep, mr);
    return sent;
  }
  serve *sv = serve_new(c, 0, a->id, P2P_OK, a->size, mr);
  if (!sv) return region_release(c->ep, mr), -1;
  if (lane_add(c, &c->send_lanes[LANE_ONE_SIDED], ptr, a->size, 0, NULL, sv, mr,
               &sv->chunks_left) != 0)
    return conn_fail(c, P2P_ENOMEM, "out of memory"), -1;
  if (sv->chunks_left == 0) serve_done(c, sv);
  return 0;
}

int xfer_on_ctrl(conn *c, const ctrl_msg *m) {
  switch (m->type) {
  case CTRL_SEND: return on_send(c, &m->u.send);
  case CTRL_SEND_DONE:
  case CTRL_WRITE_DONE:
  case CTRL_READ_DONE: return on_status(c, m);
  case CTRL_READ_DATA: return on_read_data(c, &m->u.read_data);
  case CTRL_WRITE: return on_write(c, &m->u.access);
  case CTRL_READ: return on_read(c, &m->u.access);
  case CTRL_PING: return 0;
  case CTRL_BYE:
    c->peer_closed = 1;
    conn_fail(c, P2P_EPEER, "peer closed the connection");
    return -1;
  default:
    return protocol_error(c, "handshake message on a live connection", m->type);
  }
}

/* ---- the transport pump ------------------------------------------------------- */

static int post_chunk(conn *c, void *comm, chunk *ch, void **req) {
  net_transport *t = c->net;
  mem_region *mr;
  uint8_t *ptr = gpath_post_buffer(c, ch, &mr);
  void *mh = region_mh(c->ep, c->net, mr, comm);
  *req = NULL;
  if (!ch->is_recv) return net_call(t, isend, comm, ptr, ch->size, 0, mh, req);
  void *data = ptr;
  size_t size = ch->size;
  int tag = 0;
  return net_call(t, irecv, comm, 1, &data, &size, &tag, &mh, req);
}

/* Receives are consumed in posting order, after their copy finished. */
static int consume(conn *c, void *comm, chunk *ch) {
  net_transport *t = c->net;
  int rc;
  if (ch->is_recv && t->ops->irecv_consumed &&
      (rc = net_call(t, irecv_consumed, comm, 1, ch->request)) != NET_OK)
    return conn_fail_net(c, rc);
  chunk_done(c, ch);
  return 0;
}

/* Finished copies to GPU memory, oldest first. */
static int pump_finishing(conn *c, lane *l, int k) {
  int moved = 0;
  while (l->finishing[k].head) {
    chunk *ch = l->finishing[k].head;
    int done = 0;
    if (gpath_finished(c, l, k, ch, &done) != 0) return -1;
    if (!done) break;
    fifo_pop(&l->finishing[k]);
    if (consume(c, l->comm[k], ch) != 0) return -1;
    moved++;
  }
  return moved;
}

/* Test the oldest requests (TCPX allows no other order). */
static int pump_inflight(conn *c, lane *l, int k) {
  int moved = 0;
  while (l->inflight[k].head) {
    chunk *ch = l->inflight[k].head;
    int done = 0;
    int rc = net_call(c->net, test, ch->request, &done, NULL);
    if (rc != NET_OK) return conn_fail_net(c, rc);
    if (!done) break;
    fifo_pop(&l->inflight[k]);
    moved++;
    trace_chunk(c, TR_TESTED, ch);
    int wait = gpath_after_test(c, l, k, ch);
    if (wait < 0) return -1;
    if (wait) fifo_push(&l->finishing[k], ch);
    else if (l->finishing[k].head) fifo_push(&l->finishing[k], ch); /* keep order */
    else if (consume(c, l->comm[k], ch) != 0) return -1;
  }
  return moved;
}

/* Post what the window allows; receives count until consumed. */
static int pump_waiting(conn *c, lane *l, int k) {
  /* Staged sends copy up to a window ahead of what may be posted, so the
   * copy to pinned memory is done by the time the chunk's turn comes. */
  int moved = 0, ahead = c->window;
  for (chunk *ch = l->waiting[k].head; ch && ahead > 0; ch = ch->next, ahead--)
    if (gpath_stage_ahead(c, ch) != 0) return -1;
  while (l->waiting[k].head &&
         l->inflight[k].count + l->finishing[k].count < c->window) {
    if (l->waiting[k].head->repeat && lane_take(c, l, k) != 0)
      return conn_fail(c, P2P_ENOMEM, "out of memory"), -1;
    chunk *ch = l->waiting[k].head;
    int ready;
    if (gpath_ready_to_post(c, ch, &ready) != 0) return -1;
    if (!ready) break;
    int rc = post_chunk(c, l->comm[k], ch, &ch->request);
    if (rc != NET_OK) return conn_fail_net(c, rc);
    if (!ch->request) { /* transport busy: later */
      atomic_fetch_add_explicit(&c->stats.retries, 1, memory_order_relaxed);
      break;
    }
    trace_chunk(c, TR_POST, ch);
    if (ch->is_recv && gpath_posted_recv(c, l, k, ch) != 0) return -1;
    fifo_push(&l->inflight[k], fifo_pop(&l->waiting[k]));
    moved++;
  }
  return moved;
}

static int pump_comm(conn *c, lane *l, int k) {
  int a = pump_finishing(c, l, k);
  int b = a < 0 ? -1 : pump_inflight(c, l, k);
  int d = b < 0 ? -1 : pump_waiting(c, l, k);
  return d < 0 ? -1 : a + b + d;
}

int xfer_pump(conn *c) {
  int moved = 0;
  for (int dir = 0; dir < 2; dir++)
    for (int li = 0; li < ENGINE_LANES; li++) {
      lane *l = dir ? &c->recv_lanes[li] : &c->send_lanes[li];
      for (int k = 0; k < l->ncomms; k++) {
        int n = pump_comm(c, l, k);
        if (n < 0) return -1;
        moved += n;
      }
    }
  return moved;
}

int xfer_busy(const conn *c) {
  for (int dir = 0; dir < 2; dir++)
    for (int li = 0; li < ENGINE_LANES; li++) {
      const lane *l = dir ? &c->recv_lanes[li] : &c->send_lanes[li];
      for (int k = 0; k < l->ncomms; k++)
        if (l->inflight[k].count || l->waiting[k].count || l->finishing[k].count)
          return 1;
    }
  return 0;
}

/* ---- failure ------------------------------------------------------------------- */

static void fail_list(op **head, int code, const char *why) {
  while (*head) {
    op *o = *head;
    *head = o->next;
    o->next = NULL;
    op_finish(o, code, why);
  }
}

/* The comms are closed already: no chunk is in any transport's hands. */
void xfer_fail_all(conn *c, int code, const char *why) {
  for (int dir = 0; dir < 2; dir++)
    for (int li = 0; li < ENGINE_LANES; li++) {
      lane *l = dir ? &c->recv_lanes[li] : &c->send_lanes[li];
      for (int k = 0; k < ENGINE_MAX_COMMS; k++) {
        chunk *ch;
        while ((ch = fifo_pop(&l->waiting[k]))) free(ch);
        while ((ch = fifo_pop(&l->inflight[k]))) free(ch);
        while ((ch = fifo_pop(&l->finishing[k]))) free(ch);
      }
    }
  while (c->serving) {
    serve *sv = c->serving;
    c->serving = sv->next;
    if (sv->mr) region_release(c->ep, sv->mr);
    free(sv);
  }
  while (c->incoming_head) {
    incoming_send *in = c->incoming_head;
    c->incoming_head = in->next;
    free(in);
  }
  c->incoming_tail = NULL;
  c->nincoming = 0;
  c->incoming_bytes = 0;
  c->nserving = c->nreading = 0;
  fail_list(&c->sends_active, code, why);
  fail_list(&c->recvs_waiting, code, why);
  fail_list(&c->recvs_active, code, why);
  fail_list(&c->remote_ops, code, why);
}
