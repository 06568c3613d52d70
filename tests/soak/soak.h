/* The bounded soak (scripts/soak): a long-lived hub endpoint in one
 * namespace, 1..7 spoke endpoints (one process each) in the other, every
 * spoke connected to the hub and running a random, seeded mix of checked
 * operations with it. The driver kills and restarts spokes and flaps the
 * link while they run; see driver.c. Shared between the processes: one
 * MAP_SHARED page of counters. */
#ifndef TCPX_P2P_SOAK_H
#define TCPX_P2P_SOAK_H

#include <stdatomic.h>
#include <stdint.h>

#include "tcpx_p2p.h"

typedef struct soak_shared {
  atomic_int stop;              /* driver: finish the current op and leave */
  atomic_int hub_ready;
  char hub_ip[64];
  int hub_port, hub_gpu;
  atomic_int live;              /* hub sessions running now */
  atomic_ullong accepted;       /* connections the hub accepted */
  atomic_ullong ops, bytes;     /* completed at the hub (each op once) */
  atomic_ullong errors;         /* calls that returned an error (any side) */
  atomic_ullong corruptions;    /* payload checks that failed (any side) */
  atomic_ullong hangs;          /* ops that took over twice their timeout */
  atomic_ullong max_op_ms;
} soak_shared;

/* Endpoint options every soak process uses: the defaults, the built-in
 * transport, and the op timeout that bounds an op. */
#define SOAK_OP_TIMEOUT_MS 60000
void soak_options(p2p_options *o, int gpu);

/* Run seeded ops on one connection until an op fails or stop is set.
 * hub: 1 on the hub's side. Returns the number of ops completed. */
uint64_t soak_session(p2p_endpoint *ep, uint64_t conn, int hub, uint64_t seed,
                      soak_shared *sh);

#endif
