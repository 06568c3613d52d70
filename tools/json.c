/* The JSON string escaper of tools/json.h. */
#include "json.h"

#include <stdio.h>

/* Append n bytes at offset *len, keeping one byte for the NUL; *len counts
 * every byte, stored or not, so the caller learns the size it needs. */
static void put(char *buf, size_t size, size_t *len, const char *bytes,
                size_t n) {
  for (size_t i = 0; i < n; i++, (*len)++)
    if (*len + 1 < size) buf[*len] = bytes[i];
}

/* One input byte as it appears inside the literal; returns its length. */
static size_t escape_byte(unsigned char ch, char out[8]) {
  if (ch == '"' || ch == '\\') {
    out[0] = '\\';
    out[1] = (char)ch;
    return 2;
  }
  if (ch < 0x20) /* control characters may not appear raw in JSON */
    return (size_t)snprintf(out, 8, "\\u%04x", ch);
  out[0] = (char)ch;
  return 1;
}

size_t json_escape(const char *s, char *buf, size_t size) {
  size_t len = 0;
  if (!s) {
    put(buf, size, &len, "null", 4);
  } else {
    put(buf, size, &len, "\"", 1);
    for (; *s; s++) {
      char piece[8];
      put(buf, size, &len, piece, escape_byte((unsigned char)*s, piece));
    }
    put(buf, size, &len, "\"", 1);
  }
  if (size) buf[len < size ? len : size - 1] = '\0';
  return len;
}
