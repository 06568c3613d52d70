/* The tools' JSON string escaper (tools/json.c), shared by `tcpx-p2p
 * devices --json` and `tcpx-p2p doctor --json`: every output is compared
 * byte for byte, and cut-short writes must stay inside the buffer. */
#include <string.h>

#include "check.h"
#include "json.h"

/* Escape `in` into a roomy buffer and compare with `want` exactly. */
static int expect_escaped(const char *in, const char *want) {
  char out[256];
  memset(out, 'X', sizeof out);
  size_t n = json_escape(in, out, sizeof out);
  CHECK_EQ(n, strlen(want));
  if (strcmp(out, want) != 0) {
    fprintf(stderr, "  got  %s\n  want %s\n", out, want);
    return 1;
  }
  return 0;
}

static int test_null_is_json_null(void) {
  return expect_escaped(NULL, "null");
}

static int test_plain_text_is_quoted(void) {
  CHECK_EQ(expect_escaped("", "\"\""), 0);
  return expect_escaped("eth1 0000:06:00.0", "\"eth1 0000:06:00.0\"");
}

static int test_quote_and_backslash_escaped(void) {
  return expect_escaped("a\"b\\c", "\"a\\\"b\\\\c\"");
}

static int test_control_bytes_become_u00xx(void) {
  CHECK_EQ(expect_escaped("\n\t\x01", "\"\\u000a\\u0009\\u0001\""), 0);
  return expect_escaped("\x1f end", "\"\\u001f end\"");
}

/* DEL and bytes >= 0x80 (UTF-8) are legal in JSON strings: copied. */
static int test_high_bytes_pass_through(void) {
  return expect_escaped("\x7f\xc3\xa9/", "\"\x7f\xc3\xa9/\"");
}

/* Like snprintf: the full length comes back, the buffer holds what fits
 * and a NUL, and nothing past `size` is touched. */
static int test_short_buffer_cut_and_terminated(void) {
  char out[8];
  memset(out, 'X', sizeof out);
  CHECK_EQ(json_escape("ab\"cd", out, 5), 8); /* "ab\"cd" */
  CHECK(memcmp(out, "\"ab\\\0XXX", 8) == 0);
  CHECK_EQ(json_escape("ab", out, 1), 4);
  CHECK_EQ(out[0], '\0');
  CHECK_EQ(out[1], 'a'); /* the earlier write, left alone */
  return 0;
}

static int test_measure_only_with_no_buffer(void) {
  CHECK_EQ(json_escape("x\ny", NULL, 0), 10); /* "x\u000ay" */
  CHECK_EQ(json_escape(NULL, NULL, 0), 4);
  return 0;
}

/* Exactly the literal's length plus one: the whole literal fits. */
static int test_exact_size_fits(void) {
  char out[5];
  CHECK_EQ(json_escape("ab", out, sizeof out), 4);
  CHECK(memcmp(out, "\"ab\"", 5) == 0);
  return 0;
}

static const check_case cases[] = {
    CHECK_CASE(test_null_is_json_null),
    CHECK_CASE(test_plain_text_is_quoted),
    CHECK_CASE(test_quote_and_backslash_escaped),
    CHECK_CASE(test_control_bytes_become_u00xx),
    CHECK_CASE(test_high_bytes_pass_through),
    CHECK_CASE(test_short_buffer_cut_and_terminated),
    CHECK_CASE(test_measure_only_with_no_buffer),
    CHECK_CASE(test_exact_size_fits),
};

CHECK_MAIN(cases)
