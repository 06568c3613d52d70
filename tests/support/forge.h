/* A forging peer for the hostile-peer tests: it speaks the endpoint's wire
 * protocol itself (control messages from ctrl.h, transport comms from the
 * built-in TCP transport) with no endpoint behind it, so a test can send
 * what no honest endpoint would: handles pointing elsewhere, WRITEs with
 * wrong keys and huge sizes, floods of inline SENDs. Runs in a side
 * process of the two-host harness (a real second process). */
#ifndef TCPX_P2P_FORGE_H
#define TCPX_P2P_FORGE_H

#include <stddef.h>
#include <stdint.h>

#include "ctrl.h"
#include "net.h"

#define FORGE_COMMS 2 /* one per lane and direction (comms_per_lane 1) */

typedef struct forge {
  int fd;                      /* control socket (blocking) */
  net_transport *net;
  void *send[FORGE_COMMS], *recv[FORGE_COMMS];
  void *listen[FORGE_COMMS];   /* forge_stall_after_handles: never accepted */
  uint8_t *in;                 /* received control bytes not yet parsed */
  size_t in_len, in_cap;
  size_t used;                 /* bytes of the message forge_recv gave last */
} forge;

/* The chunk size the forger's HELLO asks for (1 MiB unless changed; the
 * endpoint takes the smaller of both). */
extern uint64_t forge_chunk_size;

/* Called on our HANDLES before they are sent (may rewrite them). */
typedef void (*forge_handles_fn)(uint8_t handles[FORGE_COMMS][CTRL_HANDLE_SIZE]);

/* Connect to the endpoint at ip:port and go through the whole set-up
 * (HELLO, HANDLES, comms, READY). With `rewrite`, stop after sending the
 * rewritten handles (the endpoint is expected to refuse them) and return
 * 0 once the endpoint closed the connection. 0 on success. */
int forge_connect(forge *f, const char *ip, int port, forge_handles_fn rewrite);
/* Go as far as sending our HANDLES, then stop: the endpoint's set-up waits
 * for comms that never connect. 0 when the HANDLES were sent. */
int forge_stall_after_handles(forge *f, const char *ip, int port);
/* Encode and send one control message (sizes64: SEND segment sizes). */
int forge_send(forge *f, const ctrl_msg *m, const uint64_t *sizes64);
/* Next control message within limit_ms; *m points into f->in until the
 * next call. 0, or -1 (timeout, closed, malformed). */
int forge_recv(forge *f, ctrl_msg *m, int limit_ms);
/* Send `len` bytes on the two-sided (lane 0) or one-sided (lane 1) comm,
 * waiting until the transport finished them. 0 or -1. */
int forge_send_data(forge *f, int lane, const void *buf, size_t len, int limit_ms);
/* Receive `len` bytes on a lane's receiving comm into buf. 0 or -1. */
int forge_recv_data(forge *f, int lane, void *buf, size_t len, int limit_ms);
void forge_close(forge *f);

/* Rewrite a built-in TCP handle's address (IPv4) and port, fixing its
 * checksum, so that it is well-formed but points at ip:port. */
void forge_point_handle(uint8_t handle[CTRL_HANDLE_SIZE], const char *ip, int port);

#endif
