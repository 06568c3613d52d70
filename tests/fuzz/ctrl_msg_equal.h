/* Field-by-field equality of two control messages, arrays compared by
 * content: shared by tests/test_ctrl.c and the ctrl fuzz target. */
#ifndef TCPX_P2P_CTRL_MSG_EQUAL_H
#define TCPX_P2P_CTRL_MSG_EQUAL_H

#include <string.h>

#include "ctrl.h"

static inline int ctrl_hello_equal(const ctrl_hello *x, const ctrl_hello *y) {
  return x->magic == y->magic && x->version == y->version &&
         x->flags == y->flags && x->gpu_index == y->gpu_index &&
         x->comms_per_lane == y->comms_per_lane &&
         x->chunk_size == y->chunk_size &&
         memcmp(x->nonce, y->nonce, CTRL_NONCE_SIZE) == 0;
}

static inline int ctrl_send_equal(const ctrl_send *x, const ctrl_send *y) {
  if (x->seq != y->seq || x->nseg != y->nseg) return 0;
  for (uint32_t i = 0; i < x->nseg; i++)
    if (ctrl_send_size(x, i) != ctrl_send_size(y, i)) return 0;
  return 1;
}

static inline int ctrl_access_equal(const ctrl_access *x, const ctrl_access *y) {
  return x->id == y->id && x->region == y->region && x->offset == y->offset &&
         x->size == y->size && memcmp(x->key, y->key, CTRL_KEY_SIZE) == 0;
}

static inline int ctrl_msg_equal(const ctrl_msg *a, const ctrl_msg *b) {
  if (a->type != b->type) return 0;
  switch (a->type) {
  case CTRL_HELLO: return ctrl_hello_equal(&a->u.hello, &b->u.hello);
  case CTRL_AUTH: return memcmp(a->u.auth.mac, b->u.auth.mac, CTRL_MAC_SIZE) == 0;
  case CTRL_HANDLES:
    return a->u.handles.count == b->u.handles.count &&
           (a->u.handles.count == 0 ||
            memcmp(a->u.handles.handles, b->u.handles.handles,
                   (size_t)a->u.handles.count * CTRL_HANDLE_SIZE) == 0);
  case CTRL_SEND: return ctrl_send_equal(&a->u.send, &b->u.send);
  case CTRL_SEND_DONE:
  case CTRL_WRITE_DONE:
  case CTRL_READ_DONE:
    return a->u.status.id == b->u.status.id &&
           a->u.status.status == b->u.status.status &&
           a->u.status.size == b->u.status.size;
  case CTRL_WRITE:
  case CTRL_READ: return ctrl_access_equal(&a->u.access, &b->u.access);
  case CTRL_READ_DATA:
    return a->u.read_data.id == b->u.read_data.id &&
           a->u.read_data.size == b->u.read_data.size;
  case CTRL_BYE: return a->u.bye.reason == b->u.bye.reason;
  case CTRL_READY:
  case CTRL_PING:
    return 1;
  }
  return 0;
}

#endif
