/* Per-thread last-error text. Every failing call leaves a message here that
 * names the call, the peer or path, and the cause; the public API hands it
 * out through p2p_last_error(). */
#ifndef TCPX_P2P_ERR_H
#define TCPX_P2P_ERR_H

#include <stddef.h>

#if defined(__GNUC__)
#define P2P_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define P2P_PRINTF(a, b)
#endif

#define P2P_ERR_MAX 512

/* Replace this thread's message. Returns `code` so callers can write
 * `return err_set(NET_ESYS, "connect %s: %s", addr, strerror(errno));`. */
int err_set(int code, const char *fmt, ...) P2P_PRINTF(2, 3);
/* Same, appending ": strerror(errnum)". */
int err_sys(int code, int errnum, const char *fmt, ...) P2P_PRINTF(3, 4);
/* Prefix the current message with context ("accept: " + old message). */
int err_wrap(int code, const char *fmt, ...) P2P_PRINTF(2, 3);
const char *err_get(void);
void err_clear(void);

#endif
