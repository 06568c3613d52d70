/* The endpoint's bounds against hostile or broken peers, from the
 * environment. Each one caps what a peer (or a buggy application) can make
 * the endpoint hold: memory, threads, file descriptors, time. */
#include "engine.h"
#include "env.h"

void limits_load(ep_limits *l) {
  l->eager_buf = env_size("TCPX_P2P_EAGER_BUF", EAGER_BUF_DEFAULT);
  if (l->eager_buf < CTRL_MAX_INLINE) l->eager_buf = CTRL_MAX_INLINE;
  l->hello_ms = env_int("TCPX_P2P_HELLO_TIMEOUT_MS", 3000);
  if (l->hello_ms < 100) l->hello_ms = 100;
  l->max_handshakes = env_int("TCPX_P2P_MAX_HANDSHAKES", 64);
  if (l->max_handshakes < 1) l->max_handshakes = 1;
  l->max_pending = env_int("TCPX_P2P_MAX_PENDING", 128);
  if (l->max_pending < 1) l->max_pending = 1;
  l->max_conns = env_int("TCPX_P2P_MAX_CONNS", 1024);
  if (l->max_conns < 1) l->max_conns = 1;
  l->max_regions = env_size("TCPX_P2P_MAX_REGIONS", (size_t)1 << 20);
  l->max_ops = env_int("TCPX_P2P_MAX_OPS_PER_CONN", 65536);
  if (l->max_ops < 1) l->max_ops = 1;
}
