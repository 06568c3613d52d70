/* src/engine/ctrl.c: control-message framing. Every type round-trips,
 * partial input asks for more, and every kind of malformed input is
 * refused with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ctrl.h"
#include "fuzz/ctrl_msg_equal.h"
#include "tcpx_p2p.h"

#define BUF_MAX (CTRL_HDR_SIZE + 12 + 8 * (size_t)CTRL_MAX_SEGS)

static uint8_t handle_bytes[CTRL_MAX_HANDLES * CTRL_HANDLE_SIZE];
static uint64_t seg_sizes[4] = {1, 4096, (1ull << 32) + 5, UINT64_MAX};
static uint8_t seg_sizes_le[4 * 8]; /* the same, as a parsed SEND holds them */

static void le_put(uint8_t *p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void hdr_put(uint8_t *p, unsigned type, unsigned reserved,
                    uint32_t plen) {
  le_put(p, type, 2);
  le_put(p + 2, reserved, 2);
  le_put(p + 4, plen, 4);
}

/* A message of `type` whose every field is set to something distinct. */
static ctrl_msg sample(ctrl_type type) {
  ctrl_msg m;
  memset(&m, 0, sizeof m);
  m.type = type;
  for (size_t i = 0; i < sizeof handle_bytes; i++)
    handle_bytes[i] = (uint8_t)(i * 13 + 1);
  switch (type) {
  case CTRL_HELLO:
    m.u.hello = (ctrl_hello){.magic = CTRL_MAGIC, .version = CTRL_VERSION,
                             .flags = 1, .gpu_index = -1, .comms_per_lane = 4,
                             .chunk_size = 512 << 10};
    for (int i = 0; i < CTRL_NONCE_SIZE; i++) m.u.hello.nonce[i] = (uint8_t)(0xa0 + i);
    break;
  case CTRL_AUTH:
    for (int i = 0; i < CTRL_MAC_SIZE; i++) m.u.auth.mac[i] = (uint8_t)(0x30 + i);
    break;
  case CTRL_HANDLES:
    m.u.handles.count = 3;
    m.u.handles.handles = handle_bytes;
    break;
  case CTRL_SEND:
    m.u.send.seq = 0x0102030405060708ull;
    m.u.send.nseg = 4;
    for (int i = 0; i < 4; i++) le_put(seg_sizes_le + 8 * i, seg_sizes[i], 8);
    m.u.send.sizes = seg_sizes_le;
    break;
  case CTRL_SEND_DONE:
  case CTRL_WRITE_DONE:
  case CTRL_READ_DONE:
    m.u.status = (ctrl_status){.id = 77 + type, .status = P2P_EREFUSED,
                               .size = 0xfedcba9876543210ull};
    break;
  case CTRL_WRITE:
  case CTRL_READ:
    m.u.access = (ctrl_access){.id = 5 + type, .region = 0x1122334455667788ull,
                               .offset = 4096, .size = 1ull << 33};
    for (int i = 0; i < CTRL_KEY_SIZE; i++) m.u.access.key[i] = (uint8_t)(0xc0 + i);
    break;
  case CTRL_READ_DATA:
    m.u.read_data = (ctrl_read_data){.id = 99, .size = 123456789};
    break;
  case CTRL_READY:
  case CTRL_PING:
  case CTRL_BYE:
    break;
  }
  return m;
}

/* Encode a sample into buf; returns its length (0 on failure). */
static size_t encode_sample(ctrl_type type, uint8_t *buf, size_t cap) {
  ctrl_msg m = sample(type);
  return ctrl_encode(&m, seg_sizes, buf, cap);
}

/* Parse buf[0..len) expecting -1 and an error naming `why`. */
static int refused(const uint8_t *buf, size_t len, const char *why) {
  ctrl_msg m;
  err_clear();
  long rc = ctrl_parse(buf, len, &m);
  if (rc != -1) {
    fprintf(stderr, "  parse returned %ld, wanted -1 (%s)\n", rc, why);
    return 0;
  }
  if (!strstr(err_get(), why)) {
    fprintf(stderr, "  error \"%s\" does not mention \"%s\"\n", err_get(), why);
    return 0;
  }
  return 1;
}

/* ---- round trip ------------------------------------------------------------ */

static int test_round_trip_every_type(void) {
  static uint8_t buf[BUF_MAX];
  for (int t = CTRL_HELLO; t <= CTRL_TYPE_MAX; t++) {
    ctrl_msg in = sample((ctrl_type)t), out;
    size_t len = ctrl_encode(&in, seg_sizes, buf, sizeof buf);
    CHECK(len >= CTRL_HDR_SIZE);
    CHECK_EQ(len, ctrl_encoded_len(&in));
    memset(&out, 0xee, sizeof out);
    CHECK_EQ(ctrl_parse(buf, len, &out), (long)len);
    if (!ctrl_msg_equal(&in, &out)) fprintf(stderr, "  type %d differs\n", t);
    CHECK(ctrl_msg_equal(&in, &out));
  }
  return 0;
}

static int test_round_trip_send_sizes(void) {
  static uint8_t buf[BUF_MAX];
  ctrl_msg in = sample(CTRL_SEND), out;
  size_t len = ctrl_encode(&in, seg_sizes, buf, sizeof buf);
  CHECK_EQ(ctrl_parse(buf, len, &out), (long)len);
  for (uint32_t i = 0; i < 4; i++)
    CHECK(ctrl_send_size(&out.u.send, i) == seg_sizes[i]);
  /* Pointers of a parsed message point into the input. */
  CHECK(out.u.send.sizes >= buf && out.u.send.sizes < buf + len);
  return 0;
}

static int test_round_trip_limits(void) {
  static uint8_t buf[BUF_MAX];
  static uint64_t many[CTRL_MAX_SEGS];
  for (uint32_t i = 0; i < CTRL_MAX_SEGS; i++) many[i] = i * 3ull;
  ctrl_msg in = sample(CTRL_SEND), out;
  in.u.send.nseg = CTRL_MAX_SEGS;
  size_t len = ctrl_encode(&in, many, buf, sizeof buf);
  CHECK(len > 0);
  CHECK_EQ(ctrl_parse(buf, len, &out), (long)len);
  CHECK_EQ(out.u.send.nseg, CTRL_MAX_SEGS);
  CHECK(ctrl_send_size(&out.u.send, CTRL_MAX_SEGS - 1) == (CTRL_MAX_SEGS - 1) * 3ull);

  in = sample(CTRL_HANDLES);
  in.u.handles.count = CTRL_MAX_HANDLES;
  len = ctrl_encode(&in, NULL, buf, sizeof buf);
  CHECK_EQ(ctrl_parse(buf, len, &out), (long)len);
  CHECK(ctrl_msg_equal(&in, &out));

  in.u.handles.count = 0; /* no handles at all is still a message */
  in.u.handles.handles = NULL;
  len = ctrl_encode(&in, NULL, buf, sizeof buf);
  CHECK_EQ(len, CTRL_HDR_SIZE + 4);
  CHECK_EQ(ctrl_parse(buf, len, &out), (long)len);
  CHECK_EQ(out.u.handles.count, 0);
  return 0;
}

/* Accepted edges of every checked range. */
static int test_round_trip_range_edges(void) {
  uint8_t buf[256];
  ctrl_msg in, out;
  uint64_t chunks[] = {4096, 1ull << 30};
  uint32_t comms[] = {1, CTRL_MAX_HANDLES / 2};
  for (int i = 0; i < 2; i++) {
    in = sample(CTRL_HELLO);
    in.u.hello.chunk_size = chunks[i];
    in.u.hello.comms_per_lane = comms[i];
    size_t len = ctrl_encode(&in, NULL, buf, sizeof buf);
    CHECK_EQ(ctrl_parse(buf, len, &out), (long)len);
    CHECK(ctrl_msg_equal(&in, &out));
  }
  int32_t statuses[] = {P2P_OK, P2P_ELIMIT};
  for (int i = 0; i < 2; i++) {
    in = sample(CTRL_SEND_DONE);
    in.u.status.status = statuses[i];
    size_t len = ctrl_encode(&in, NULL, buf, sizeof buf);
    CHECK_EQ(ctrl_parse(buf, len, &out), (long)len);
    CHECK_EQ(out.u.status.status, statuses[i]);
  }
  in = sample(CTRL_READ);
  in.u.access.offset = UINT64_MAX - 10;
  in.u.access.size = 10; /* ends exactly at 2^64 - 1: no wrap */
  size_t len = ctrl_encode(&in, NULL, buf, sizeof buf);
  CHECK_EQ(ctrl_parse(buf, len, &out), (long)len);
  CHECK(ctrl_msg_equal(&in, &out));
  return 0;
}

/* Several messages back to back, parsed one after another. */
static int test_stream_of_messages(void) {
  static uint8_t buf[4096];
  size_t off = 0;
  for (int t = CTRL_TYPE_MAX; t >= CTRL_HELLO; t--)
    off += encode_sample((ctrl_type)t, buf + off, sizeof buf - off);
  size_t pos = 0;
  for (int t = CTRL_TYPE_MAX; t >= CTRL_HELLO; t--) {
    ctrl_msg m, want = sample((ctrl_type)t);
    long n = ctrl_parse(buf + pos, off - pos, &m);
    CHECK(n > 0);
    CHECK(ctrl_msg_equal(&m, &want));
    pos += (size_t)n;
  }
  CHECK_EQ(pos, off);
  return 0;
}

/* ---- partial input ------------------------------------------------------- */

static int test_every_prefix_needs_more(void) {
  static uint8_t buf[BUF_MAX];
  for (int t = CTRL_HELLO; t <= CTRL_TYPE_MAX; t++) {
    size_t len = encode_sample((ctrl_type)t, buf, sizeof buf);
    CHECK(len > 0);
    for (size_t n = 0; n < len; n++) {
      /* An exact-size copy, so a read past the prefix is caught by ASan. */
      uint8_t *prefix = malloc(n ? n : 1);
      CHECK(prefix != NULL);
      memcpy(prefix, buf, n);
      ctrl_msg m;
      long rc = ctrl_parse(prefix, n, &m);
      free(prefix);
      if (rc != 0) fprintf(stderr, "  type %d, prefix %zu of %zu\n", t, n, len);
      CHECK_EQ(rc, 0);
    }
  }
  return 0;
}

/* ---- malformed ----------------------------------------------------------- */

static int test_unknown_type_refused(void) {
  uint8_t buf[CTRL_HDR_SIZE];
  unsigned types[] = {0, CTRL_TYPE_MAX + 1, 0x100, 0xffff};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    hdr_put(buf, types[i], 0, 0);
    CHECK(refused(buf, sizeof buf, "unknown message type"));
  }
  return 0;
}

static int test_reserved_bits_refused(void) {
  uint8_t buf[CTRL_HDR_SIZE];
  unsigned bits[] = {1, 0x8000, 0xffff};
  for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
    hdr_put(buf, CTRL_PING, bits[i], 0);
    CHECK(refused(buf, sizeof buf, "reserved"));
  }
  return 0;
}

/* Refused from the header alone: no need to wait for a megabyte. */
static int test_payload_too_large_refused(void) {
  uint8_t buf[CTRL_HDR_SIZE];
  hdr_put(buf, CTRL_SEND, 0, CTRL_MAX_PAYLOAD + 1);
  CHECK(refused(buf, sizeof buf, "payload of"));
  hdr_put(buf, CTRL_HANDLES, 0, UINT32_MAX);
  CHECK(refused(buf, sizeof buf, "payload of"));
  hdr_put(buf, CTRL_SEND, 0, CTRL_MAX_PAYLOAD); /* the limit itself: wait */
  ctrl_msg m;
  CHECK_EQ(ctrl_parse(buf, sizeof buf, &m), 0);
  return 0;
}

/* The header claims one byte less than the type needs, and the bytes are
 * all there: the payload is short, not incomplete. */
static int test_truncated_payload_refused(void) {
  static uint8_t buf[BUF_MAX];
  for (int t = CTRL_HELLO; t <= CTRL_TYPE_MAX; t++) {
    size_t len = encode_sample((ctrl_type)t, buf, sizeof buf);
    size_t plen = len - CTRL_HDR_SIZE;
    if (plen == 0) continue; /* READY, PING, BYE carry nothing */
    hdr_put(buf, (unsigned)t, 0, (uint32_t)(plen - 1));
    if (!refused(buf, len - 1, "truncated")) fprintf(stderr, "  type %d\n", t);
    CHECK(refused(buf, len - 1, "truncated"));
  }
  /* A HELLO with no payload at all, and a HANDLES whose count is cut. */
  hdr_put(buf, CTRL_HELLO, 0, 0);
  CHECK(refused(buf, CTRL_HDR_SIZE, "truncated"));
  hdr_put(buf, CTRL_HANDLES, 0, 3);
  CHECK(refused(buf, CTRL_HDR_SIZE + 3, "truncated"));
  return 0;
}

/* HANDLES and SEND: the count says more than the payload holds. */
static int test_count_beyond_payload_refused(void) {
  static uint8_t buf[BUF_MAX];
  size_t len = encode_sample(CTRL_HANDLES, buf, sizeof buf);
  le_put(buf + CTRL_HDR_SIZE, 4, 4); /* 4 handles claimed, 3 present */
  CHECK(refused(buf, len, "truncated"));
  len = encode_sample(CTRL_SEND, buf, sizeof buf);
  le_put(buf + CTRL_HDR_SIZE + 8, 5, 4); /* 5 sizes claimed, 4 present */
  CHECK(refused(buf, len, "truncated"));
  return 0;
}

static int test_trailing_bytes_refused(void) {
  static uint8_t buf[BUF_MAX + 1];
  for (int t = CTRL_HELLO; t <= CTRL_TYPE_MAX; t++) {
    size_t len = encode_sample((ctrl_type)t, buf, sizeof buf);
    buf[len] = 0;
    hdr_put(buf, (unsigned)t, 0, (uint32_t)(len - CTRL_HDR_SIZE + 1));
    if (!refused(buf, len + 1, "trailing")) fprintf(stderr, "  type %d\n", t);
    CHECK(refused(buf, len + 1, "trailing"));
  }
  return 0;
}

/* HELLO payload offsets: magic 0, version 4, flags 6, gpu 8, comms 12,
 * chunk size 16, nonce 24. */
static int hello_with(size_t field_off, uint64_t v, size_t n, const char *why) {
  uint8_t buf[256];
  size_t len = encode_sample(CTRL_HELLO, buf, sizeof buf);
  le_put(buf + CTRL_HDR_SIZE + field_off, v, n);
  return refused(buf, len, why);
}

static int test_bad_hello_refused(void) {
  CHECK(hello_with(0, CTRL_MAGIC ^ 1, 4, "magic"));
  CHECK(hello_with(0, 0, 4, "magic"));
  CHECK(hello_with(4, CTRL_VERSION + 1, 2, "protocol"));
  CHECK(hello_with(4, CTRL_VERSION + 1, 2, p2p_version())); /* says ours */
  CHECK(hello_with(4, 0, 2, "protocol"));
  CHECK(hello_with(12, 0, 4, "comms per lane"));
  CHECK(hello_with(12, CTRL_MAX_HANDLES / 2 + 1, 4, "comms per lane"));
  CHECK(hello_with(12, UINT32_MAX, 4, "comms per lane"));
  CHECK(hello_with(16, 4095, 8, "chunk size"));
  CHECK(hello_with(16, 0, 8, "chunk size"));
  CHECK(hello_with(16, (1ull << 30) + 1, 8, "chunk size"));
  CHECK(hello_with(16, UINT64_MAX, 8, "chunk size"));
  return 0;
}

static int test_too_many_handles_refused(void) {
  static uint8_t buf[CTRL_HDR_SIZE + 4 + (CTRL_MAX_HANDLES + 1) * CTRL_HANDLE_SIZE];
  uint32_t plen = 4 + (CTRL_MAX_HANDLES + 1) * CTRL_HANDLE_SIZE;
  memset(buf, 0, sizeof buf);
  hdr_put(buf, CTRL_HANDLES, 0, plen);
  le_put(buf + CTRL_HDR_SIZE, CTRL_MAX_HANDLES + 1, 4);
  CHECK(refused(buf, sizeof buf, "handles"));
  le_put(buf + CTRL_HDR_SIZE, UINT32_MAX, 4); /* count * 128 would wrap u32 */
  CHECK(refused(buf, sizeof buf, "handles"));
  return 0;
}

static int send_with_nseg(uint32_t nseg) {
  uint8_t buf[CTRL_HDR_SIZE + 12];
  hdr_put(buf, CTRL_SEND, 0, 12);
  le_put(buf + CTRL_HDR_SIZE, 1, 8);
  le_put(buf + CTRL_HDR_SIZE + 8, nseg, 4);
  return refused(buf, sizeof buf, "segments");
}

static int test_bad_segment_count_refused(void) {
  CHECK(send_with_nseg(0));
  CHECK(send_with_nseg(CTRL_MAX_SEGS + 1));
  CHECK(send_with_nseg(UINT32_MAX));
  return 0;
}

static int test_unknown_status_refused(void) {
  int32_t bad[] = {1, P2P_ELIMIT - 1, INT32_MAX, INT32_MIN};
  ctrl_type types[] = {CTRL_SEND_DONE, CTRL_WRITE_DONE, CTRL_READ_DONE};
  for (size_t t = 0; t < 3; t++) {
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      uint8_t buf[64];
      size_t len = encode_sample(types[t], buf, sizeof buf);
      le_put(buf + CTRL_HDR_SIZE + 8, (uint32_t)bad[i], 4);
      CHECK(refused(buf, len, "status"));
    }
  }
  return 0;
}

static int test_wrapping_access_refused(void) {
  ctrl_type types[] = {CTRL_WRITE, CTRL_READ};
  /* (a size with the top bit set means "bytes inline", so wrapping
   * comes from the offset) */
  uint64_t offs[] = {UINT64_MAX, UINT64_MAX / 2 + 2, UINT64_MAX - 4095};
  uint64_t sizes[] = {1, UINT64_MAX / 2, 4096};
  for (int t = 0; t < 2; t++) {
    for (int i = 0; i < 3; i++) {
      uint8_t buf[64];
      size_t len = encode_sample(types[t], buf, sizeof buf);
      le_put(buf + CTRL_HDR_SIZE + 32, offs[i], 8);
      le_put(buf + CTRL_HDR_SIZE + 40, sizes[i], 8);
      CHECK(refused(buf, len, "wraps"));
    }
  }
  return 0;
}

/* Small WRITEs and READ_DATAs carry their bytes: round trip, and the
 * declared size must match the bytes present. */
static int test_inline_bytes(void) {
  uint8_t bytes[100], buf[512];
  for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (uint8_t)(i * 7);
  ctrl_msg w = {.type = CTRL_WRITE,
                .u.access = {.id = 5, .region = 9, .offset = 3, .size = 100, .data = bytes}};
  ctrl_msg r = {.type = CTRL_READ_DATA, .u.read_data = {.id = 6, .size = 100, .data = bytes}};
  ctrl_msg *msgs[] = {&w, &r};
  for (int k = 0; k < 2; k++) {
    size_t len = ctrl_encode(msgs[k], NULL, buf, sizeof buf);
    CHECK(len == ctrl_encoded_len(msgs[k]) && len > 100);
    ctrl_msg m;
    CHECK_EQ(ctrl_parse(buf, len, &m), (long)len);
    const uint8_t *data = k ? m.u.read_data.data : m.u.access.data;
    CHECK(data && memcmp(data, bytes, 100) == 0);
    CHECK_EQ(k ? m.u.read_data.size : m.u.access.size, 100);
    buf[4] = (uint8_t)(buf[4] - 1); /* one byte fewer in the payload length */
    CHECK(refused(buf, len - 1, "inline bytes"));
  }
  ctrl_msg read = {.type = CTRL_READ, .u.access = {.size = 4, .data = bytes}};
  CHECK_EQ(ctrl_encode(&read, NULL, buf, sizeof buf), 0); /* a READ carries none */
  return 0;
}

/* ---- encode ----------------------------------------------------------------- */

static int test_encode_refuses_small_buffer(void) {
  static uint8_t buf[BUF_MAX];
  for (int t = CTRL_HELLO; t <= CTRL_TYPE_MAX; t++) {
    ctrl_msg m = sample((ctrl_type)t);
    size_t need = ctrl_encoded_len(&m);
    CHECK_EQ(ctrl_encode(&m, seg_sizes, buf, need - 1), 0);
    CHECK_EQ(ctrl_encode(&m, seg_sizes, buf, 0), 0);
    CHECK_EQ(ctrl_encode(&m, seg_sizes, buf, need), need);
  }
  return 0;
}

static int test_encode_refuses_invalid(void) {
  uint8_t buf[256];
  ctrl_msg m = sample(CTRL_PING);
  m.type = (ctrl_type)0;
  CHECK_EQ(ctrl_encode(&m, NULL, buf, sizeof buf), 0);
  m.type = (ctrl_type)(CTRL_TYPE_MAX + 1);
  CHECK_EQ(ctrl_encode(&m, NULL, buf, sizeof buf), 0);
  m = sample(CTRL_HANDLES);
  m.u.handles.count = CTRL_MAX_HANDLES + 1;
  CHECK_EQ(ctrl_encode(&m, NULL, buf, sizeof buf), 0);
  m = sample(CTRL_SEND);
  m.u.send.nseg = 0;
  CHECK_EQ(ctrl_encode(&m, seg_sizes, buf, sizeof buf), 0);
  m.u.send.nseg = CTRL_MAX_SEGS + 1;
  CHECK_EQ(ctrl_encode(&m, seg_sizes, buf, sizeof buf), 0);
  m.u.send.nseg = 1;
  CHECK_EQ(ctrl_encode(&m, NULL, buf, sizeof buf), 0); /* no sizes given */
  return 0;
}

/* BYE may say why (a limit refusing a set-up); 0 means a plain close and
 * has no payload; an unknown reason is refused. */
static int test_bye_reason(void) {
  uint8_t buf[64];
  ctrl_msg m = {.type = CTRL_BYE, .u.bye.reason = P2P_ELIMIT}, back;
  size_t len = ctrl_encode(&m, NULL, buf, sizeof buf);
  CHECK_EQ(len, CTRL_HDR_SIZE + 4);
  CHECK_EQ(ctrl_parse(buf, len, &back), (long)len);
  CHECK_EQ(back.type, CTRL_BYE);
  CHECK_EQ(back.u.bye.reason, P2P_ELIMIT);
  m.u.bye.reason = 0;
  CHECK_EQ(ctrl_encode(&m, NULL, buf, sizeof buf), CTRL_HDR_SIZE);
  hdr_put(buf, CTRL_BYE, 0, 4);
  le_put(buf + CTRL_HDR_SIZE, 0, 4);
  CHECK(refused(buf, CTRL_HDR_SIZE + 4, "no reason"));
  le_put(buf + CTRL_HDR_SIZE, (uint32_t)-99, 4);
  CHECK(refused(buf, CTRL_HDR_SIZE + 4, "unknown reason"));
  m.u.bye.reason = 5;
  CHECK_EQ(ctrl_encode(&m, NULL, buf, sizeof buf), 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_round_trip_every_type),
    CHECK_CASE(test_round_trip_send_sizes),
    CHECK_CASE(test_round_trip_limits),
    CHECK_CASE(test_round_trip_range_edges),
    CHECK_CASE(test_stream_of_messages),
    CHECK_CASE(test_every_prefix_needs_more),
    CHECK_CASE(test_unknown_type_refused),
    CHECK_CASE(test_reserved_bits_refused),
    CHECK_CASE(test_payload_too_large_refused),
    CHECK_CASE(test_truncated_payload_refused),
    CHECK_CASE(test_count_beyond_payload_refused),
    CHECK_CASE(test_trailing_bytes_refused),
    CHECK_CASE(test_bad_hello_refused),
    CHECK_CASE(test_too_many_handles_refused),
    CHECK_CASE(test_bad_segment_count_refused),
    CHECK_CASE(test_unknown_status_refused),
    CHECK_CASE(test_wrapping_access_refused),
    CHECK_CASE(test_inline_bytes),
    CHECK_CASE(test_bye_reason),
    CHECK_CASE(test_encode_refuses_small_buffer),
    CHECK_CASE(test_encode_refuses_invalid),
};

CHECK_MAIN(cases)
