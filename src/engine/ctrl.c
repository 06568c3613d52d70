#include "ctrl.h"

#include <string.h>

#include "err.h"
#include "tcpx_p2p.h"

/* ---- little-endian cursor ------------------------------------------------ */

typedef struct cursor {
  const uint8_t *p;
  size_t left;
  int bad;
} cursor;

static uint64_t get_le(cursor *c, size_t n) {
  uint64_t v = 0;
  if (c->left < n) {
    c->bad = 1;
    return 0;
  }
  for (size_t i = 0; i < n; i++) v |= (uint64_t)c->p[i] << (8 * i);
  c->p += n;
  c->left -= n;
  return v;
}

static const uint8_t *get_bytes(cursor *c, size_t n) {
  if (c->left < n) {
    c->bad = 1;
    return NULL;
  }
  const uint8_t *at = c->p;
  c->p += n;
  c->left -= n;
  return at;
}

static void get_copy(cursor *c, void *dst, size_t n) {
  const uint8_t *src = get_bytes(c, n);
  if (src) memcpy(dst, src, n);
}

typedef struct writer {
  uint8_t *p;
  size_t left;
  int bad;
} writer;

static void put_le(writer *w, uint64_t v, size_t n) {
  if (w->left < n) {
    w->bad = 1;
    return;
  }
  for (size_t i = 0; i < n; i++) w->p[i] = (uint8_t)(v >> (8 * i));
  w->p += n;
  w->left -= n;
}

static void put_bytes(writer *w, const void *src, size_t n) {
  if (w->left < n) {
    w->bad = 1;
    return;
  }
  if (n) memcpy(w->p, src, n);
  w->p += n;
  w->left -= n;
}

/* ---- payload sizes ---------------------------------------------------------- */

#define HELLO_LEN (4 + 2 + 2 + 4 + 4 + 8 + CTRL_NONCE_SIZE)
#define STATUS_LEN (8 + 4 + 8)
#define ACCESS_LEN (8 + 8 + CTRL_KEY_SIZE + 8 + 8)
#define READ_DATA_LEN (8 + 8)

static size_t payload_len(const ctrl_msg *m) {
  switch (m->type) {
  case CTRL_HELLO: return HELLO_LEN;
  case CTRL_AUTH: return CTRL_MAC_SIZE;
  case CTRL_HANDLES: return 4 + (size_t)m->u.handles.count * CTRL_HANDLE_SIZE;
  case CTRL_SEND:
    return 8 + 4 + (size_t)m->u.send.nseg * 8 +
           (m->u.send.data ? m->u.send.data_len : 0);
  case CTRL_SEND_DONE:
  case CTRL_WRITE_DONE:
  case CTRL_READ_DONE: return STATUS_LEN;
  case CTRL_WRITE:
  case CTRL_READ:
    return ACCESS_LEN + (m->u.access.data ? (size_t)m->u.access.size : 0);
  case CTRL_READ_DATA:
    return READ_DATA_LEN + (m->u.read_data.data ? (size_t)m->u.read_data.size : 0);
  case CTRL_BYE: return m->u.bye.reason ? 4 : 0;
  case CTRL_READY:
  case CTRL_PING: return 0;
  }
  return 0;
}

size_t ctrl_encoded_len(const ctrl_msg *m) { return CTRL_HDR_SIZE + payload_len(m); }

/* ---- validation (shared by parse and encode) ------------------------------ */

/* Range checks on a decoded message: what the parser refuses from a peer,
 * the encoder refuses from us. Returns 0 or -1 with err_get() set. */
static int validate(const ctrl_msg *m) {
  switch (m->type) {
  case CTRL_HELLO: {
    const ctrl_hello *h = &m->u.hello;
    if (h->comms_per_lane < 1 || h->comms_per_lane > CTRL_MAX_HANDLES / 2)
      return err_set(-1, "control: HELLO asks for %u comms per lane",
                     h->comms_per_lane);
    if (h->chunk_size < 4096 || h->chunk_size > (1ull << 30))
      return err_set(-1, "control: HELLO chunk size %llu out of range",
                     (unsigned long long)h->chunk_size);
    return 0;
  }
  case CTRL_HANDLES:
    if (m->u.handles.count > CTRL_MAX_HANDLES)
      return err_set(-1, "control: %u handles (at most %d)", m->u.handles.count,
                     CTRL_MAX_HANDLES);
    return 0;
  case CTRL_SEND:
    if (m->u.send.nseg < 1 || m->u.send.nseg > CTRL_MAX_SEGS)
      return err_set(-1, "control: SEND with %u segments", m->u.send.nseg);
    if (m->u.send.data && m->u.send.data_len > CTRL_MAX_INLINE)
      return err_set(-1, "control: SEND with %u inline bytes (at most %u)",
                     m->u.send.data_len, CTRL_MAX_INLINE);
    return 0;
  case CTRL_SEND_DONE:
  case CTRL_WRITE_DONE:
  case CTRL_READ_DONE:
    if (m->u.status.status > 0 || m->u.status.status < P2P_ELIMIT)
      return err_set(-1, "control: unknown status %d", m->u.status.status);
    return 0;
  case CTRL_WRITE:
  case CTRL_READ:
    if (m->u.access.offset + m->u.access.size < m->u.access.offset)
      return err_set(-1, "control: access range wraps around");
    if (m->u.access.data && (m->type == CTRL_READ || m->u.access.size > CTRL_MAX_INLINE))
      return err_set(-1, "control: inline bytes in a READ or over %u", CTRL_MAX_INLINE);
    return 0;
  case CTRL_BYE:
    if (m->u.bye.reason > 0 || m->u.bye.reason < P2P_ELIMIT)
      return err_set(-1, "control: BYE with unknown reason %d", m->u.bye.reason);
    return 0;
  case CTRL_READ_DATA:
    if (m->u.read_data.data && m->u.read_data.size > CTRL_MAX_INLINE)
      return err_set(-1, "control: READ_DATA with %llu inline bytes",
                     (unsigned long long)m->u.read_data.size);
    return 0;
  default:
    return 0;
  }
}

/* ---- parse ----------------------------------------------------------------- */

/* Inline bytes: exactly the rest of the payload, at most CTRL_MAX_INLINE. */
static int get_inline(cursor *c, uint64_t size, const uint8_t **data) {
  if (size > CTRL_MAX_INLINE || size != c->left)
    return err_set(-1, "control: %zu inline bytes for %llu declared", c->left,
                   (unsigned long long)size);
  *data = get_bytes(c, (size_t)size);
  return 0;
}

static int parse_payload(ctrl_msg *m, cursor *c) {
  switch (m->type) {
  case CTRL_HELLO: {
    ctrl_hello *h = &m->u.hello;
    h->magic = (uint32_t)get_le(c, 4);
    h->version = (uint16_t)get_le(c, 2);
    h->flags = (uint16_t)get_le(c, 2);
    h->gpu_index = (int32_t)get_le(c, 4);
    h->comms_per_lane = (uint32_t)get_le(c, 4);
    h->chunk_size = get_le(c, 8);
    get_copy(c, h->nonce, CTRL_NONCE_SIZE);
    if (!c->bad && h->magic != CTRL_MAGIC)
      return err_set(-1, "control: HELLO with bad magic 0x%08x", h->magic);
    if (!c->bad && h->version != CTRL_VERSION)
      /* The library version names what to upgrade; it is not on the wire
       * (a longer HELLO would be refused by every existing peer). */
      return err_set(-1, "control: peer speaks protocol %u, we speak %u "
                     "(tcpx-p2p %s)", h->version, CTRL_VERSION, p2p_version());
    return 0;
  }
  case CTRL_AUTH:
    get_copy(c, m->u.auth.mac, CTRL_MAC_SIZE);
    return 0;
  case CTRL_HANDLES:
    m->u.handles.count = (uint32_t)get_le(c, 4);
    if (!c->bad && validate(m) != 0) return -1; /* before sizing the array */
    m->u.handles.handles =
        get_bytes(c, (size_t)m->u.handles.count * CTRL_HANDLE_SIZE);
    return 0;
  case CTRL_SEND: {
    m->u.send.seq = get_le(c, 8);
    uint32_t raw = (uint32_t)get_le(c, 4);
    m->u.send.nseg = raw & ~CTRL_SEND_INLINE;
    if (!c->bad && validate(m) != 0) return -1; /* before sizing the array */
    m->u.send.sizes = get_bytes(c, (size_t)m->u.send.nseg * 8);
    if (c->bad || !(raw & CTRL_SEND_INLINE)) return 0;
    uint64_t total = 0; /* inline bytes: exactly the sizes' sum */
    for (uint32_t i = 0; i < m->u.send.nseg && total <= CTRL_MAX_INLINE; i++)
      total += ctrl_send_size(&m->u.send, i);
    if (total > CTRL_MAX_INLINE || total != c->left)
      return err_set(-1, "control: SEND with %zu inline bytes for %llu declared",
                     c->left, (unsigned long long)total);
    m->u.send.data_len = (uint32_t)total;
    m->u.send.data = get_bytes(c, total);
    return 0;
  }
  case CTRL_SEND_DONE:
  case CTRL_WRITE_DONE:
  case CTRL_READ_DONE:
    m->u.status.id = get_le(c, 8);
    m->u.status.status = (int32_t)get_le(c, 4);
    m->u.status.size = get_le(c, 8);
    return 0;
  case CTRL_WRITE:
  case CTRL_READ:
    m->u.access.id = get_le(c, 8);
    m->u.access.region = get_le(c, 8);
    get_copy(c, m->u.access.key, CTRL_KEY_SIZE);
    m->u.access.offset = get_le(c, 8);
    m->u.access.size = get_le(c, 8);
    if (!c->bad && (m->u.access.size & CTRL_SIZE_INLINE)) {
      m->u.access.size &= ~CTRL_SIZE_INLINE;
      return get_inline(c, m->u.access.size, &m->u.access.data);
    }
    return 0;
  case CTRL_READ_DATA:
    m->u.read_data.id = get_le(c, 8);
    m->u.read_data.size = get_le(c, 8);
    if (!c->bad && (m->u.read_data.size & CTRL_SIZE_INLINE)) {
      m->u.read_data.size &= ~CTRL_SIZE_INLINE;
      return get_inline(c, m->u.read_data.size, &m->u.read_data.data);
    }
    return 0;
  case CTRL_BYE:
    if (c->left < 4) return 0; /* a plain close (stray bytes: "trailing") */
    m->u.bye.reason = (int32_t)get_le(c, 4);
    if (!c->bad && m->u.bye.reason == 0)
      return err_set(-1, "control: BYE with a payload but no reason");
    return 0;
  case CTRL_READY:
  case CTRL_PING:
    return 0;
  }
  return err_set(-1, "control: unknown message type %d", (int)m->type);
}

long ctrl_parse(const uint8_t *buf, size_t len, ctrl_msg *m) {
  if (len < CTRL_HDR_SIZE) return 0;
  cursor hdr = {buf, CTRL_HDR_SIZE, 0};
  unsigned type = (unsigned)get_le(&hdr, 2);
  unsigned reserved = (unsigned)get_le(&hdr, 2);
  uint32_t plen = (uint32_t)get_le(&hdr, 4);
  if (type < CTRL_HELLO || type > CTRL_TYPE_MAX)
    return err_set(-1, "control: unknown message type %u", type);
  if (reserved != 0)
    return err_set(-1, "control: reserved header bits set (0x%x)", reserved);
  if (plen > CTRL_MAX_PAYLOAD)
    return err_set(-1, "control: payload of %u bytes (at most %u)", plen,
                   CTRL_MAX_PAYLOAD);
  if (len - CTRL_HDR_SIZE < plen) return 0;
  memset(m, 0, sizeof *m);
  m->type = (ctrl_type)type;
  cursor c = {buf + CTRL_HDR_SIZE, plen, 0};
  if (parse_payload(m, &c) != 0) return -1;
  if (!c.bad && validate(m) != 0) return -1;
  if (c.bad)
    return err_set(-1, "control: message type %u truncated (%u payload bytes)",
                   type, plen);
  if (c.left != 0)
    return err_set(-1, "control: message type %u has %zu trailing bytes", type,
                   c.left);
  return (long)(CTRL_HDR_SIZE + plen);
}

uint64_t ctrl_send_size(const ctrl_send *s, uint32_t i) {
  cursor c = {s->sizes + (size_t)i * 8, 8, 0};
  return get_le(&c, 8);
}

/* ---- encode ---------------------------------------------------------------- */

static void encode_payload(const ctrl_msg *m, const uint64_t *sizes64,
                           writer *w) {
  switch (m->type) {
  case CTRL_HELLO: {
    const ctrl_hello *h = &m->u.hello;
    put_le(w, CTRL_MAGIC, 4);
    put_le(w, CTRL_VERSION, 2);
    put_le(w, h->flags, 2);
    put_le(w, (uint32_t)h->gpu_index, 4);
    put_le(w, h->comms_per_lane, 4);
    put_le(w, h->chunk_size, 8);
    put_bytes(w, h->nonce, CTRL_NONCE_SIZE);
    break;
  }
  case CTRL_AUTH: put_bytes(w, m->u.auth.mac, CTRL_MAC_SIZE); break;
  case CTRL_HANDLES:
    put_le(w, m->u.handles.count, 4);
    put_bytes(w, m->u.handles.handles,
              (size_t)m->u.handles.count * CTRL_HANDLE_SIZE);
    break;
  case CTRL_SEND:
    put_le(w, m->u.send.seq, 8);
    put_le(w, m->u.send.nseg | (m->u.send.data ? CTRL_SEND_INLINE : 0), 4);
    for (uint32_t i = 0; i < m->u.send.nseg; i++) put_le(w, sizes64[i], 8);
    if (m->u.send.data) put_bytes(w, m->u.send.data, m->u.send.data_len);
    break;
  case CTRL_SEND_DONE:
  case CTRL_WRITE_DONE:
  case CTRL_READ_DONE:
    put_le(w, m->u.status.id, 8);
    put_le(w, (uint32_t)m->u.status.status, 4);
    put_le(w, m->u.status.size, 8);
    break;
  case CTRL_WRITE:
  case CTRL_READ:
    put_le(w, m->u.access.id, 8);
    put_le(w, m->u.access.region, 8);
    put_bytes(w, m->u.access.key, CTRL_KEY_SIZE);
    put_le(w, m->u.access.offset, 8);
    put_le(w, m->u.access.size | (m->u.access.data ? CTRL_SIZE_INLINE : 0), 8);
    if (m->u.access.data) put_bytes(w, m->u.access.data, (size_t)m->u.access.size);
    break;
  case CTRL_READ_DATA:
    put_le(w, m->u.read_data.id, 8);
    put_le(w, m->u.read_data.size | (m->u.read_data.data ? CTRL_SIZE_INLINE : 0), 8);
    if (m->u.read_data.data) put_bytes(w, m->u.read_data.data, (size_t)m->u.read_data.size);
    break;
  case CTRL_BYE:
    if (m->u.bye.reason) put_le(w, (uint32_t)m->u.bye.reason, 4);
    break;
  case CTRL_READY:
  case CTRL_PING:
    break;
  }
}

size_t ctrl_encode(const ctrl_msg *m, const uint64_t *sizes64, uint8_t *buf,
                   size_t cap) {
  if (m->type < CTRL_HELLO || m->type > CTRL_TYPE_MAX || validate(m) != 0) return 0;
  if (m->type == CTRL_HANDLES && m->u.handles.count && !m->u.handles.handles) return 0;
  if (m->type == CTRL_SEND && !sizes64) return 0;
  if (m->type == CTRL_SEND && m->u.send.data) { /* inline: the sizes' sum */
    uint64_t total = 0;
    for (uint32_t i = 0; i < m->u.send.nseg; i++) total += sizes64[i];
    if (total != m->u.send.data_len) return 0;
  }
  size_t plen = payload_len(m);
  writer w = {buf, cap, 0};
  put_le(&w, (uint64_t)m->type, 2);
  put_le(&w, 0, 2);
  put_le(&w, plen, 4);
  encode_payload(m, sizes64, &w);
  return w.bad ? 0 : CTRL_HDR_SIZE + plen;
}
