/* The library's version: CMakeLists.txt's project(VERSION) is the only
 * place it is written; the build passes it in as P2P_VERSION. */
#include "tcpx_p2p.h"

#ifndef P2P_VERSION
#error "P2P_VERSION is set by CMakeLists.txt (project VERSION)"
#endif

const char *p2p_version(void) { return P2P_VERSION; }
