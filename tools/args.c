/* Command-line values for every subcommand: one size parser, one integer
 * and one number parser, and one way to refuse an argument. Every refusal
 * names the argument and what it accepts, on stderr, so a typo never runs
 * a default instead. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools.h"

#define SIZE_ACCEPTS "bytes as a whole number, optionally with K, M or G " \
                     "(KiB, MiB, GiB), e.g. 4096, 64K, 16M"

int arg_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "tcpx-p2p %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n(`tcpx-p2p %s --help` lists the arguments)\n", cmd);
  return TOOL_USAGE;
}

int arg_unknown(const char *cmd, const char *arg) {
  return arg_error(cmd, "unknown argument '%s'", arg);
}

const char *arg_value(const char *cmd, int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    arg_error(cmd, "%s needs a value", argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

/* Digits only: strtoull would take "-1" (as 2^64 - 1), " 5" and "0x10". */
static int all_digits_prefix(const char *s) {
  return *s >= '0' && *s <= '9';
}

int size_parse(const char *s, size_t *out) {
  if (!all_digits_prefix(s)) return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno) return -1;
  int shift = 0;
  if (*end == 'K' || *end == 'k') shift = 10;
  else if (*end == 'M' || *end == 'm') shift = 20;
  else if (*end == 'G' || *end == 'g') shift = 30;
  if (shift) end++;
  if (shift && (*end == 'i')) end++;      /* "64KiB" */
  if (*end == 'B' || *end == 'b') end++;  /* "64KB" reads as 64K */
  if (*end || v > (SIZE_MAX >> shift)) return -1;
  *out = (size_t)(v << shift);
  return 0;
}

void size_str(size_t size, char *buf, size_t len) {
  static const char units[] = "GMK";
  for (int i = 0; i < 3; i++) {
    size_t unit = (size_t)1 << (10 * (3 - i));
    if (size >= unit && size % unit == 0) {
      snprintf(buf, len, "%zu%c", size / unit, units[i]);
      return;
    }
  }
  snprintf(buf, len, "%zu", size);
}

int arg_size(const char *cmd, const char *arg, const char *text, size_t min,
             size_t max, size_t *out) {
  char lo[32], hi[32];
  size_t v;
  size_str(min, lo, sizeof lo);
  size_str(max, hi, sizeof hi);
  if (size_parse(text, &v) != 0)
    return arg_error(cmd, "%s '%s': not a size; it accepts %s..%s: %s", arg,
                     text, lo, hi, SIZE_ACCEPTS), -1;
  if (v < min || v > max)
    return arg_error(cmd, "%s '%s': out of range; it accepts %s..%s bytes",
                     arg, text, lo, hi), -1;
  *out = v;
  return 0;
}

int arg_long(const char *cmd, const char *arg, const char *text, long min,
             long max, long *out) {
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  int digits = all_digits_prefix(text) ||
               (text[0] == '-' && all_digits_prefix(text + 1));
  if (!digits || *end || errno == ERANGE)
    return arg_error(cmd, "%s '%s': not a whole number; it accepts %ld..%ld",
                     arg, text, min, max), -1;
  if (v < min || v > max)
    return arg_error(cmd, "%s '%s': out of range; it accepts %ld..%ld", arg,
                     text, min, max), -1;
  *out = v;
  return 0;
}

int arg_int(const char *cmd, const char *arg, const char *text, int min,
            int max, int *out) {
  long v;
  if (arg_long(cmd, arg, text, min, max, &v) != 0) return -1;
  *out = (int)v;
  return 0;
}

int arg_double(const char *cmd, const char *arg, const char *text, double min,
               double max, double *out) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (end == text || *end || errno == ERANGE || !isfinite(v))
    return arg_error(cmd, "%s '%s': not a number; it accepts %g..%g", arg,
                     text, min, max), -1;
  if (v < min || v > max)
    return arg_error(cmd, "%s '%s': out of range; it accepts %g..%g", arg,
                     text, min, max), -1;
  *out = v;
  return 0;
}
