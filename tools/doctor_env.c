/* doctor: the GPUDirect-TCPX variables in force, the values TCPX cannot
 * work with, and the memlock limit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "doctor.h"

extern char **environ;

#define CHUNK_ENV "NCCL_DYNAMIC_CHUNK_SIZE"
#define TCPX_PREFIX "NCCL_GPUDIRECTTCPX_"

/* Plain NCCL_ variables GPUDirect-TCPX reads that matter here. */
static const char *const related[] = {
    CHUNK_ENV, "NCCL_NSOCKS_PERTHREAD", "NCCL_SOCKET_NTHREADS",
    "NCCL_USE_DMA_BUF", "NCCL_MIN_ZCOPY_SIZE"};

static int is_reported(const char *entry) {
  if (!strchr(entry, '=')) return 0;
  if (!strncmp(entry, TCPX_PREFIX, strlen(TCPX_PREFIX))) return 1;
  for (size_t i = 0; i < sizeof related / sizeof related[0]; i++) {
    size_t n = strlen(related[i]);
    if (!strncmp(entry, related[i], n) && entry[n] == '=') return 1;
  }
  return 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every reported variable, sorted: "A=1 B=2" and {"A":"1","B":"2"}. */
static int list_variables(doc_check *c) {
  int n = 0, k = 0;
  for (char **e = environ; *e; e++) n += is_reported(*e);
  const char **v = calloc(n ? (size_t)n : 1, sizeof *v);
  if (!v) return n;
  for (char **e = environ; *e; e++)
    if (is_reported(*e)) v[k++] = *e;
  qsort(v, (size_t)n, sizeof *v, by_name);
  doc_buf text = {0}, json = {0};
  buf_printf(&json, "{");
  for (int i = 0; i < n; i++) {
    const char *eq = strchr(v[i], '=');
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(eq - v[i]), v[i]);
    buf_printf(&text, "%s%s", i ? " " : "", v[i]);
    buf_printf(&json, "%s", i ? "," : "");
    buf_json_string(&json, name);
    buf_printf(&json, ":");
    buf_json_string(&json, eq + 1);
  }
  buf_printf(&json, "}");
  if (!text.oom && !json.oom)
    doc_raw(c, "set", n ? buf_text(&text) : "none", buf_text(&json));
  buf_free(&text);
  buf_free(&json);
  free(v);
  return n;
}

/* $name as a positive number; 0 when unset, -1 when not one. */
static long long env_positive(const char *name) {
  const char *s = getenv(name);
  if (!s || !*s) return 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  return *end || v <= 0 ? -1 : v;
}

/* A chunk size the user set: a positive byte count that fits an int.
 * Unset is judged after the plugin loaded (doc_check_env_finish). */
static int check_chunk_set(doc_check *c) {
  long long chunk = env_positive(CHUNK_ENV);
  if (chunk == 0 || (chunk > 0 && chunk <= INT32_MAX)) return 0;
  doc_status_at_least(c, DOC_FAIL);
  doc_fix(c, CHUNK_ENV "=%s is not a positive byte count: GPUDirect-TCPX "
          "cannot send with it; export " CHUNK_ENV "=524288 (GKE's value).",
          getenv(CHUNK_ENV));
  return 1;
}

static int check_dma_buf(doc_check *c) {
  const char *s = getenv("NCCL_USE_DMA_BUF");
  if (!s || strcmp(s, "0") != 0) return 0;
  doc_status_at_least(c, DOC_FAIL);
  doc_fix(c, "NCCL_USE_DMA_BUF=0 breaks GPU memory registration in "
          "GPUDirect-TCPX: unset it.");
  return 1;
}

static int check_sockets(doc_check *c) {
  long long per = env_positive("NCCL_NSOCKS_PERTHREAD");
  long long threads = env_positive("NCCL_SOCKET_NTHREADS");
  if (per <= 0 || threads <= 0 || per * threads <= 8) return 0;
  doc_status_at_least(c, DOC_FAIL);
  doc_fix(c, "NCCL_NSOCKS_PERTHREAD x NCCL_SOCKET_NTHREADS = %lld data "
          "sockets per comm; GPUDirect-TCPX allows 8 (GKE: 4 x 1).",
          per * threads);
  return 1;
}

void doc_check_env(doc_host *h, doc_check *c) {
  h->env_vars = list_variables(c);
  h->chunk_unset = env_positive(CHUNK_ENV) == 0;
  h->env_bad = check_chunk_set(c) + check_dma_buf(c) + check_sockets(c);
  if (!getenv(TCPX_PREFIX "PROGRAM_FLOW_STEERING_WAIT_MICROS"))
    doc_str(c, 1, "note", TCPX_PREFIX "PROGRAM_FLOW_STEERING_WAIT_MICROS "
            "unset: each accept waits 5 s for its flow-steering rule (GKE "
            "sets 500000)");
}

/* GPUDirect-TCPX sends nothing without NCCL_DYNAMIC_CHUNK_SIZE. When the
 * user left it unset, whether tcpx-p2p set it while loading the plugin
 * is seen, not assumed. */
static void judge_unset_chunk(doc_host *h, doc_check *c) {
  const char *now = getenv(CHUNK_ENV);
  if (now && *now) {
    doc_str(c, 1, "chunk", CHUNK_ENV " unset; tcpx-p2p set it to %s when "
            "it loaded the plugin (NCCL jobs must set it themselves)", now);
  } else if (h->transport) {
    doc_status_at_least(c, DOC_FAIL);
    h->env_bad++;
    doc_fix(c, CHUNK_ENV " is unset and this tcpx-p2p did not set it when "
            "loading the plugin: GPUDirect-TCPX then sends nothing; export "
            CHUNK_ENV "=524288 (GKE's value).");
  } else {
    doc_status_at_least(c, DOC_WARN);
    doc_fix(c, CHUNK_ENV " is unset, and with no plugin loaded it cannot "
            "be seen whether tcpx-p2p sets it: export " CHUNK_ENV
            "=524288 to be sure.");
  }
}

void doc_check_env_finish(doc_host *h, doc_check *c) {
  if (h->chunk_unset) judge_unset_chunk(h, c);
  if (h->env_bad)
    doc_summary(c, "%d setting%s TCPX cannot work with", h->env_bad,
                h->env_bad == 1 ? "" : "s");
  else
    doc_summary(c, "%d TCPX variable%s set, none in the way", h->env_vars,
                h->env_vars == 1 ? "" : "s");
}

/* ---- memlock ---- */

static void limit_text(rlim_t v, char *buf, size_t len) {
  if (v == RLIM_INFINITY)
    snprintf(buf, len, "unlimited");
  else
    snprintf(buf, len, "%llu KiB", (unsigned long long)(v / 1024));
}

void doc_check_memlock(doc_host *h, doc_check *c) {
  (void)h;
  struct rlimit rl;
  if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0) {
    doc_status_at_least(c, DOC_SKIP);
    doc_summary(c, "getrlimit(RLIMIT_MEMLOCK) failed");
    return;
  }
  char soft[32], hard[32];
  limit_text(rl.rlim_cur, soft, sizeof soft);
  limit_text(rl.rlim_max, hard, sizeof hard);
  if (rl.rlim_cur == RLIM_INFINITY)
    doc_null(c, "soft_bytes", NULL);
  else
    doc_int(c, 0, "soft_bytes", (long long)rl.rlim_cur);
  if (rl.rlim_max == RLIM_INFINITY)
    doc_null(c, "hard_bytes", NULL);
  else
    doc_int(c, 0, "hard_bytes", (long long)rl.rlim_max);
  if (rl.rlim_cur == RLIM_INFINITY) {
    doc_summary(c, "locked memory unlimited");
    return;
  }
  doc_status_at_least(c, DOC_WARN);
  doc_summary(c, "locked memory limited to %s (hard limit %s): pinning "
              "buffers may fail", soft, hard);
  doc_fix(c, "Raise it: `ulimit -l unlimited` (hard limit permitting), "
          "docker --ulimit memlock=-1, systemd LimitMEMLOCK=infinity, or "
          "memlock in /etc/security/limits.conf.");
}
