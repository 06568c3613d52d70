/* JSON string literals for the tools' --json output: the one escaper that
 * `devices` (straight to stdout) and `doctor` (into its growing buffers)
 * both use, so the two cannot drift apart in what they escape. */
#ifndef TCPX_P2P_TOOLS_JSON_H
#define TCPX_P2P_TOOLS_JSON_H

#include <stddef.h>

/* Write `s` as a JSON string literal, quotes included, into buf[size]; a
 * NULL `s` writes null (unknown values print as null). '"' and '\\' are
 * backslash-escaped, bytes below 0x20 become \u00XX, every other byte is
 * copied as is (UTF-8 passes through). Like snprintf: the result is
 * NUL-terminated whenever size > 0, and the return value is the length of
 * the whole literal, so a return >= size means it was cut short and the
 * caller needs return + 1 bytes. buf may be NULL when size is 0. */
size_t json_escape(const char *s, char *buf, size_t size);

#endif
