/* `tcpx-p2p doctor`: the checks of a GPUDirect-TCPX host set-up and the
 * report they fill. Each check is one function that looks at one part of
 * the host and fills one doc_check: a status, one summary line, what to do
 * when it failed, and detail fields (printed as text or JSON). Facts more
 * than one check needs (the plugin, the CUDA driver, the data NICs) are
 * found once and kept in doc_host. */
#ifndef TCPX_P2P_TOOLS_DOCTOR_H
#define TCPX_P2P_TOOLS_DOCTOR_H

#include <stddef.h>

#include "cudadrv.h"
#include "err.h"
#include "net.h"
#include "plugin.h"
#include "topo.h"

/* Ordered by severity: a check's status is the worst of its findings. */
typedef enum doc_status {
  DOC_OK,   /* fine for TCPX */
  DOC_SKIP, /* could not be checked (an earlier check failed) */
  DOC_WARN, /* works, but likely slow or fragile: read the fix */
  DOC_FAIL, /* TCPX cannot run until this is fixed */
} doc_status;

/* Text mode prints `text` (NULL: JSON only); JSON mode prints `json`, a
 * JSON value (NULL: text only). Both are malloc'ed. */
typedef struct doc_field {
  char *key;
  char *text;
  char *json;
} doc_field;

#define DOC_MAX_FIELDS 40

typedef struct doc_check {
  const char *id; /* short name, also the JSON "check" */
  doc_status status;
  char summary[512];
  char fix[1024]; /* "" when there is nothing to do */
  doc_field fields[DOC_MAX_FIELDS];
  int nfields;
} doc_check;

typedef struct doc_host {
  const char *plugin_arg;   /* --plugin, or NULL */
  net_choice choice;        /* where the selection order leads */
  net_transport *transport; /* the loaded plugin, or NULL */
  char plugin_file[4096];   /* the plugin's file when known, else "" */
  gpu_cuda *cuda;           /* NULL without a working driver */
  topo_iface *nics;         /* the data NICs (see doctor_nics.c) */
  int nnics;
  int env_vars, env_bad;    /* TCPX variables set; settings TCPX refuses */
  int chunk_unset;          /* NCCL_DYNAMIC_CHUNK_SIZE unset by the user */
} doc_host;

/* ---- filling a check (doctor.c) ---- */

/* Raise the status to `s` when it is worse. */
void doc_status_at_least(doc_check *c, doc_status s);
void doc_summary(doc_check *c, const char *fmt, ...) P2P_PRINTF(2, 3);
/* Append one sentence to what the user should do. */
void doc_fix(doc_check *c, const char *fmt, ...) P2P_PRINTF(2, 3);
/* A string field; `text_too` = 0 keeps it out of the text output. */
void doc_str(doc_check *c, int text_too, const char *key, const char *fmt,
             ...) P2P_PRINTF(4, 5);
void doc_int(doc_check *c, int text_too, const char *key, long long v);
void doc_bool(doc_check *c, const char *key, int v);
void doc_null(doc_check *c, const char *key, const char *text);
/* A field with its own JSON value (an array or object) and its text;
 * either may be NULL. */
void doc_raw(doc_check *c, const char *key, const char *text,
             const char *json);

/* Free a check's fields (the check itself is the caller's). */
void doc_free_fields(doc_check *c);

/* A growing string, for JSON arrays and long text lines. */
typedef struct doc_buf {
  char *s;
  size_t len, cap;
  int oom;
} doc_buf;
void buf_printf(doc_buf *b, const char *fmt, ...) P2P_PRINTF(2, 3);
void buf_json_string(doc_buf *b, const char *s); /* json.h; NULL -> null */
const char *buf_text(const doc_buf *b);          /* "" when empty */
void buf_free(doc_buf *b);

/* ---- the checks ---- */
void doc_check_plugin(doc_host *h, doc_check *c); /* doctor_plugin.c */
void doc_check_noexec(doc_host *h, doc_check *c);
void doc_check_cuda(doc_host *h, doc_check *c);   /* doctor_gpu.c */
void doc_check_affinity(doc_host *h, doc_check *c);
void doc_check_nics(doc_host *h, doc_check *c);   /* doctor_nics.c */
void doc_check_rxdm(doc_host *h, doc_check *c);   /* doctor_rxdm.c */
/* doctor_env.c: the environment as the user set it, read before the
 * plugin is loaded; _finish judges it once the plugin was loaded. */
void doc_check_env(doc_host *h, doc_check *c);
void doc_check_env_finish(doc_host *h, doc_check *c);
void doc_check_memlock(doc_host *h, doc_check *c);

#endif
