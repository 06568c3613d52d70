/* Library log lines on stderr, for events no caller is waiting to hear
 * about (a refused incoming connection, a connection lost in the
 * background). Level from TCPX_P2P_LOG_LEVEL (or UCCL_P2P_LOG_LEVEL):
 * 0 none, 1 errors, 2 warnings (default), 3 info, 4 debug. */
#ifndef TCPX_P2P_LOG_H
#define TCPX_P2P_LOG_H

#include "err.h"

enum { LOG_ERROR = 1, LOG_WARN = 2, LOG_INFO = 3, LOG_DEBUG = 4 };

int log_level(void);
void log_msg(int level, const char *fmt, ...) P2P_PRINTF(2, 3);

#endif
