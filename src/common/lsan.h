/* Objects leaked on purpose (a comm abandoned to its plugin, drain.c):
 * in AddressSanitizer builds, LeakSanitizer is told not to report them or
 * what they point to. Elsewhere this compiles to nothing. */
#ifndef TCPX_P2P_LSAN_H
#define TCPX_P2P_LSAN_H

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define P2P_HAVE_LSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define P2P_HAVE_LSAN 1
#endif

#ifdef P2P_HAVE_LSAN
#include <sanitizer/lsan_interface.h>
static inline void lsan_leak_on_purpose(const void *p) { __lsan_ignore_object(p); }
#else
static inline void lsan_leak_on_purpose(const void *p) { (void)p; }
#endif

#endif
