/* tcpx-p2p doctor: run every check of the GPUDirect-TCPX set-up (see
 * doctor.h) and print the report, as one screen of text or one JSON
 * object. Exit 0 when no check failed, 1 when one did, 2 on a usage
 * error. */
#include "doctor.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "tools.h"

/* ---- growing strings ---- */

/* Room for n more bytes and the NUL; 0 (and oom set) when there is none. */
static int buf_reserve(doc_buf *b, size_t n) {
  if (b->oom) return 0;
  size_t need = b->len + n + 1;
  if (need <= b->cap) return 1;
  size_t cap = b->cap ? b->cap : 128;
  while (cap < need) cap *= 2;
  char *s = realloc(b->s, cap);
  if (!s) {
    b->oom = 1; /* the report shows what fitted; nothing to free here */
    return 0;
  }
  b->s = s;
  b->cap = cap;
  return 1;
}

void buf_printf(doc_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !buf_reserve(b, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Measure first, then escape in place: the same escaper as `devices`. */
void buf_json_string(doc_buf *b, const char *s) {
  size_t n = json_escape(s, NULL, 0);
  if (!buf_reserve(b, n)) return;
  json_escape(s, b->s + b->len, b->cap - b->len);
  b->len += n;
}

const char *buf_text(const doc_buf *b) { return b->s ? b->s : ""; }

void buf_free(doc_buf *b) {
  free(b->s);
  memset(b, 0, sizeof *b);
}

/* ---- filling a check ---- */

void doc_status_at_least(doc_check *c, doc_status s) {
  if (s > c->status) c->status = s;
}

void doc_summary(doc_check *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->summary, sizeof c->summary, fmt, ap);
  va_end(ap);
}

void doc_fix(doc_check *c, const char *fmt, ...) {
  size_t used = strlen(c->fix);
  if (used && used + 1 < sizeof c->fix) { /* a space between sentences */
    c->fix[used++] = ' ';
    c->fix[used] = '\0';
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->fix + used, sizeof c->fix - used, fmt, ap);
  va_end(ap);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* Takes copies; a field that cannot be stored is dropped (out of memory
 * or more than DOC_MAX_FIELDS), never half-stored. */
void doc_raw(doc_check *c, const char *key, const char *text,
             const char *json) {
  if (c->nfields >= DOC_MAX_FIELDS) return;
  doc_field f = {strdup(key), dup_or_null(text), dup_or_null(json)};
  if (!f.key || (json && !f.json) || (text && !f.text)) {
    free(f.key), free(f.text), free(f.json);
    return;
  }
  c->fields[c->nfields++] = f;
}

void doc_str(doc_check *c, int text_too, const char *key, const char *fmt,
             ...) {
  char value[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(value, sizeof value, fmt, ap);
  va_end(ap);
  doc_buf json = {0};
  buf_json_string(&json, value);
  if (!json.oom) doc_raw(c, key, text_too ? value : NULL, buf_text(&json));
  buf_free(&json);
}

void doc_int(doc_check *c, int text_too, const char *key, long long v) {
  char text[32];
  snprintf(text, sizeof text, "%lld", v);
  doc_raw(c, key, text_too ? text : NULL, text);
}

void doc_bool(doc_check *c, const char *key, int v) {
  doc_raw(c, key, NULL, v ? "true" : "false");
}

void doc_null(doc_check *c, const char *key, const char *text) {
  doc_raw(c, key, text, "null");
}

void doc_free_fields(doc_check *c) {
  for (int i = 0; i < c->nfields; i++) {
    free(c->fields[i].key);
    free(c->fields[i].text);
    free(c->fields[i].json);
  }
  c->nfields = 0;
}

/* ---- output ---- */

static const char *status_word(doc_status s) {
  static const char *const words[] = {"ok", "skip", "warn", "fail"};
  return words[s];
}

static const char *status_tag(doc_status s) {
  static const char *const tags[] = {"[ OK ]", "[SKIP]", "[WARN]", "[FAIL]"};
  return tags[s];
}

static void print_check_text(const doc_check *c) {
  printf("%s %-9s %s\n", status_tag(c->status), c->id, c->summary);
  for (int i = 0; i < c->nfields; i++)
    if (c->fields[i].text)
      printf("       %s: %s\n", c->fields[i].key, c->fields[i].text);
  if (c->fix[0]) printf("       fix: %s\n", c->fix);
}

static void check_json(doc_buf *b, const doc_check *c) {
  buf_printf(b, "{\"check\":\"%s\",\"status\":\"%s\",\"summary\":", c->id,
             status_word(c->status));
  buf_json_string(b, c->summary);
  buf_printf(b, ",\"fix\":");
  buf_json_string(b, c->fix[0] ? c->fix : NULL);
  buf_printf(b, ",\"details\":{");
  int n = 0;
  for (int i = 0; i < c->nfields; i++) {
    if (!c->fields[i].json) continue;
    buf_printf(b, "%s", n++ ? "," : "");
    buf_json_string(b, c->fields[i].key);
    buf_printf(b, ":%s", c->fields[i].json);
  }
  buf_printf(b, "}}");
}

static int count_status(const doc_check *checks, int n, doc_status s) {
  int k = 0;
  for (int i = 0; i < n; i++) k += checks[i].status == s;
  return k;
}

static int exit_code(const doc_check *checks, int n) {
  return count_status(checks, n, DOC_FAIL) ? TOOL_FAILED : TOOL_OK;
}

static void print_text(const doc_check *checks, int n) {
  char host[256] = "this host";
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "?");
  host[sizeof host - 1] = '\0';
  printf("tcpx-p2p doctor: can %s run GPUDirect-TCPX?\n\n", host);
  for (int i = 0; i < n; i++) print_check_text(&checks[i]);
  int fails = count_status(checks, n, DOC_FAIL);
  int warns = count_status(checks, n, DOC_WARN);
  if (fails)
    printf("\nresult: NOT ready for TCPX: %d check%s failed, %d warning%s "
           "(exit %d)\n", fails, fails == 1 ? "" : "s", warns,
           warns == 1 ? "" : "s", exit_code(checks, n));
  else
    printf("\nresult: ready for TCPX, %d warning%s (exit 0)\n", warns,
           warns == 1 ? "" : "s");
}

static int print_json(const doc_check *checks, int n) {
  doc_buf b = {0};
  int code = exit_code(checks, n);
  buf_printf(&b, "{\"tcpx_ready\":%s,\"exit_code\":%d,\"checks\":[",
             code == TOOL_OK ? "true" : "false", code);
  for (int i = 0; i < n; i++) {
    buf_printf(&b, "%s", i ? "," : "");
    check_json(&b, &checks[i]);
  }
  buf_printf(&b, "]}\n");
  int ok = !b.oom;
  if (ok)
    fputs(buf_text(&b), stdout);
  else
    fprintf(stderr, "tcpx-p2p doctor: out of memory writing JSON\n");
  buf_free(&b);
  return ok;
}

/* ---- the command ---- */

static void print_doctor_usage(FILE *out) {
  fprintf(out,
          "usage: tcpx-p2p doctor [--plugin PATH] [--json]\n"
          "\n"
          "Check that this host is set up for GPUDirect-TCPX and say what\n"
          "to fix: the net plugin and why it was chosen, the CUDA driver\n"
          "and GPUs, the data NICs and GPU/NIC affinity, the receive-\n"
          "datapath manager (RxDM), TCPX variables, noexec mounts and the\n"
          "memlock limit. docs/DOCTOR.md explains each check.\n"
          "  --plugin PATH  check this plugin instead of the selection order\n"
          "  --json         one JSON object instead of text\n"
          "Exit status: 0 ready (warnings allowed), 1 a check failed, 2 usage.\n");
}

static int usage_error(const char *what, const char *arg) {
  fprintf(stderr, "tcpx-p2p doctor: %s '%s'\n\n", what, arg);
  print_doctor_usage(stderr);
  return TOOL_USAGE;
}

/* Returns TOOL_OK, TOOL_USAGE, or -1 when --help was printed. */
static int parse_doctor_args(int argc, char **argv, doc_host *h, int *json) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      print_doctor_usage(stdout);
      return -1;
    } else if (!strcmp(argv[i], "--json")) {
      *json = 1;
    } else if (!strcmp(argv[i], "--plugin")) {
      if (i + 1 >= argc) return usage_error("a value is missing after", argv[i]);
      h->plugin_arg = argv[++i];
    } else {
      return usage_error("unknown argument", argv[i]);
    }
  }
  return TOOL_OK;
}

enum { CHECK_ENV, CHECK_PLUGIN, CHECK_NOEXEC, CHECK_CUDA, CHECK_NICS,
       CHECK_AFFINITY, CHECK_RXDM, CHECK_MEMLOCK, NCHECKS };

/* The order the checks run in: the environment is read before the plugin
 * is loaded, because loading may change it (tcpx-p2p itself may set
 * NCCL_DYNAMIC_CHUNK_SIZE, and a plugin's init may set anything). */
static void run_checks(doc_host *h, doc_check *checks) {
  static const char *const ids[NCHECKS] = {
      "env", "plugin", "noexec", "cuda", "nics", "affinity", "rxdm",
      "memlock"};
  for (int i = 0; i < NCHECKS; i++) checks[i].id = ids[i];
  doc_check_env(h, &checks[CHECK_ENV]);
  doc_check_plugin(h, &checks[CHECK_PLUGIN]);
  doc_check_env_finish(h, &checks[CHECK_ENV]);
  doc_check_noexec(h, &checks[CHECK_NOEXEC]);
  doc_check_cuda(h, &checks[CHECK_CUDA]);
  doc_check_nics(h, &checks[CHECK_NICS]);
  doc_check_affinity(h, &checks[CHECK_AFFINITY]);
  doc_check_rxdm(h, &checks[CHECK_RXDM]);
  doc_check_memlock(h, &checks[CHECK_MEMLOCK]);
}

/* The order they are printed in: the plugin first, the way a user reads
 * a failure (nothing else matters until the plugin loads). */
static const int print_order[NCHECKS] = {
    CHECK_PLUGIN, CHECK_NOEXEC, CHECK_CUDA, CHECK_NICS, CHECK_AFFINITY,
    CHECK_RXDM, CHECK_ENV, CHECK_MEMLOCK};

int cmd_doctor(int argc, char **argv) {
  doc_host h;
  int json = 0;
  memset(&h, 0, sizeof h);
  int rc = parse_doctor_args(argc, argv, &h, &json);
  if (rc != TOOL_OK) return rc < 0 ? TOOL_OK : rc;
  doc_check checks[NCHECKS], ordered[NCHECKS];
  memset(checks, 0, sizeof checks);
  run_checks(&h, checks);
  for (int i = 0; i < NCHECKS; i++) ordered[i] = checks[print_order[i]];
  if (json) {
    if (!print_json(ordered, NCHECKS)) rc = TOOL_FAILED;
  } else {
    print_text(ordered, NCHECKS);
  }
  if (rc == TOOL_OK) rc = exit_code(ordered, NCHECKS);
  fflush(stdout);
  for (int i = 0; i < NCHECKS; i++) doc_free_fields(&checks[i]);
  if (h.transport) h.transport->ops->destroy(h.transport);
  topo_free_ifaces(h.nics, h.nnics);
  return rc;
}
