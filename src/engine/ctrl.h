/* Control messages between two endpoints: the framing, the types, and a
 * parser that trusts nothing. Every message is an 8-byte header
 * {u16 type, u16 reserved, u32 payload length} then the payload, all
 * little-endian. The parser checks lengths, counts and ranges against the
 * type; anything else is malformed and the connection is dropped. */
#ifndef TCPX_P2P_CTRL_H
#define TCPX_P2P_CTRL_H

#include <stddef.h>
#include <stdint.h>

#define CTRL_MAGIC 0x50325054u /* "TP2P" */
#define CTRL_VERSION 1
#define CTRL_HDR_SIZE 8
#define CTRL_MAX_PAYLOAD (1u << 20)
#define CTRL_NONCE_SIZE 32
#define CTRL_MAC_SIZE 32
#define CTRL_KEY_SIZE 16
#define CTRL_HANDLE_SIZE 128
#define CTRL_MAX_HANDLES 64
#define CTRL_MAX_SEGS 65536
#define CTRL_SEND_INLINE 0x80000000u /* nseg flag: the bytes follow inline */
#define CTRL_MAX_INLINE (64u << 10)

typedef enum ctrl_type {
  CTRL_HELLO = 1,      /* both ways first: version, GPU, nonce, layout */
  CTRL_AUTH = 2,       /* proof of the shared secret over both nonces */
  CTRL_HANDLES = 3,    /* transport handles the peer must connect to */
  CTRL_READY = 4,      /* all comms of the sender of this are connected */
  CTRL_SEND = 5,       /* two-sided message: segment sizes; data follows
                          inline (small) or on the two-sided lane */
  CTRL_SEND_DONE = 6,  /* receiver -> sender: status of a SEND */
  CTRL_WRITE = 7,      /* one-sided write: target region; data follows on the one-sided lane */
  CTRL_WRITE_DONE = 8, /* target -> initiator: status of a WRITE */
  CTRL_READ = 9,       /* one-sided read request */
  CTRL_READ_DATA = 10, /* target -> initiator: data follows on the one-sided lane */
  CTRL_READ_DONE = 11, /* target -> initiator: refusal of a READ (status) */
  CTRL_PING = 12,      /* liveness */
  CTRL_BYE = 13,       /* orderly close */
  CTRL_TYPE_MAX = 13,
} ctrl_type;

/* HELLO flags. */
#define CTRL_HELLO_AUTH 0x1  /* the sender requires authentication */
#define CTRL_HELLO_SPLIT 0x2 /* the sender cuts small messages finer (chunks.c);
                                in force when both sides set it */

typedef struct ctrl_hello {
  uint32_t magic;
  uint16_t version;
  uint16_t flags;         /* CTRL_HELLO_*; other bits reserved, ignored */
  int32_t gpu_index;
  uint32_t comms_per_lane;
  uint64_t chunk_size;
  uint8_t nonce[CTRL_NONCE_SIZE];
} ctrl_hello;

typedef struct ctrl_auth {
  uint8_t mac[CTRL_MAC_SIZE];
} ctrl_auth;

typedef struct ctrl_handles {
  uint32_t count;
  const uint8_t *handles; /* count * CTRL_HANDLE_SIZE bytes, in the input */
} ctrl_handles;

typedef struct ctrl_send {
  uint64_t seq;           /* two-sided message number on this connection */
  uint32_t nseg;
  const uint8_t *sizes;   /* nseg little-endian u64, in the input */
  const uint8_t *data;    /* small messages: the bytes themselves (sum of
                             sizes, <= CTRL_MAX_INLINE), else NULL */
  uint32_t data_len;
} ctrl_send;

typedef struct ctrl_status {
  uint64_t id;            /* SEND seq, WRITE or READ id */
  int32_t status;         /* P2P_OK or a P2P_E* code */
  uint64_t size;          /* SEND_DONE: bytes received */
} ctrl_status;

/* Small WRITEs and READ_DATAs carry their bytes inline (flagged by the top
 * bit of the size on the wire, size <= CTRL_MAX_INLINE); data is NULL
 * otherwise and the bytes follow on the one-sided lane. */
#define CTRL_SIZE_INLINE (1ull << 63)

typedef struct ctrl_access {
  uint64_t id;            /* initiator's id for the op */
  uint64_t region;        /* advertised region id */
  uint8_t key[CTRL_KEY_SIZE];
  uint64_t offset;
  uint64_t size;
  const uint8_t *data;    /* WRITE only: inline bytes (size of them) */
} ctrl_access;

typedef struct ctrl_read_data {
  uint64_t id;
  uint64_t size;
  const uint8_t *data;    /* inline bytes (size of them), or NULL */
} ctrl_read_data;

/* BYE: an orderly close, or a refusal during set-up, with its reason (a
 * P2P_E* code; 0, and no payload, for a plain close). */
typedef struct ctrl_bye {
  int32_t reason;
} ctrl_bye;

typedef struct ctrl_msg {
  ctrl_type type;
  union {
    ctrl_bye bye;
    ctrl_hello hello;
    ctrl_auth auth;
    ctrl_handles handles;
    ctrl_send send;
    ctrl_status status;     /* SEND_DONE, WRITE_DONE, READ_DONE */
    ctrl_access access;     /* WRITE, READ */
    ctrl_read_data read_data;
  } u;
} ctrl_msg;

/* Parse one message from buf[0..len). Returns the bytes consumed (> 0),
 * 0 when more bytes are needed, or -1 when malformed (err_get() says
 * why). Pointers in *msg point into buf. */
long ctrl_parse(const uint8_t *buf, size_t len, ctrl_msg *msg);

/* Segment i (< nseg) of a parsed SEND. */
uint64_t ctrl_send_size(const ctrl_send *s, uint32_t i);

/* Encode into buf (capacity cap). Returns the length, or 0 when it does
 * not fit or the message is invalid (anything ctrl_parse would refuse). For HANDLES and SEND, the arrays come
 * from the pointers in *msg (SEND sizes as host u64 array in `sizes64`). */
size_t ctrl_encode(const ctrl_msg *msg, const uint64_t *sizes64, uint8_t *buf,
                   size_t cap);

/* The encoded length of a message (for buffer sizing). */
size_t ctrl_encoded_len(const ctrl_msg *msg);

#endif
