/* What the fake "versions" plugin (fake_versions.c) saw, exported as the
 * data symbol `fake_record` so that test_loader can check what the loader
 * passed in. */
#ifndef TCPX_P2P_FAKE_RECORD_H
#define TCPX_P2P_FAKE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define FAKE_NIC_SPEED 4321
#define FAKE_NIC_MAX_RECVS 4
#define FAKE_NIC_MAX_COMMS 77
#define FAKE_NIC_MAX_P2P ((size_t)(1u << 30) + 5)

typedef struct fake_record {
  int init_calls[12];          /* by version */
  int finalize_calls;
  void *last_init_ctx;         /* v11 context handed out by init */
  void *last_finalize_ctx;
  uint64_t last_comm_id;
  int last_init_traffic_class; /* v11 init config; 999 when NULL */
  int last_init_had_profiler;  /* v10, v11 */
  void *last_listen_ctx;       /* v11 */
  void *last_connect_ctx;      /* v11 */
  int last_connect_traffic_class; /* v10 connect config; 999 when NULL */
  int isend_calls;
  size_t last_isend_size;
  int last_isend_phandle_null; /* v10, v11 */
  int irecv_calls;
  int last_irecv_n;
  size_t last_irecv_sizes[8];
  int last_irecv_phandles_ok;  /* v10, v11: array given, n NULL entries */
  int last_request_was_null;   /* *request on entry to isend/irecv */
} fake_record;

#endif
