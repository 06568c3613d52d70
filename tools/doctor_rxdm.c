/* doctor: is GPUDirect-TCPX's receive-datapath manager (RxDM) reachable?
 *
 * The plugin talks to RxDM over unix stream sockets in the directory
 * NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX (default /tmp), named after what
 * they serve (from the plugin's public source):
 *   rx_rule_manager, rx_rule_uninstall   flow-steering rules, asked for on
 *                                        every data connection;
 *   get_gpu_fd_<bus id>,
 *   get_gpu_metadata_<bus id>            each GPU's receive buffer pool.
 * The doctor only connects and closes: it sends nothing, so RxDM sees a
 * client that left. Connects are non-blocking: a busy RxDM is reported,
 * never waited for. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "affinity.h"
#include "doctor.h"

#define PREFIX_ENV "NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX"

typedef enum probe_result {
  PROBE_OK,
  PROBE_ABSENT,  /* ENOENT */
  PROBE_STALE,   /* ECONNREFUSED: a socket file nobody listens on */
  PROBE_BUSY,    /* EAGAIN: listening, backlog full */
  PROBE_ERROR,   /* anything else; errno kept */
} probe_result;

static probe_result probe(const char *path, int *err) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  *err = ENAMETOOLONG;
  if (strlen(path) >= sizeof addr.sun_path) return PROBE_ERROR;
  memcpy(addr.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno;
    return PROBE_ERROR;
  }
  int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
  *err = rc == 0 ? 0 : errno;
  close(fd);
  if (rc == 0) return PROBE_OK;
  if (*err == ENOENT) return PROBE_ABSENT;
  if (*err == ECONNREFUSED) return PROBE_STALE;
  if (*err == EAGAIN) return PROBE_BUSY;
  return PROBE_ERROR;
}

static const char *probe_text(probe_result r, int err, char *buf,
                              size_t len) {
  switch (r) {
  case PROBE_OK: return "reachable";
  case PROBE_ABSENT: return "absent";
  case PROBE_STALE: return "socket file left behind, nobody listening";
  case PROBE_BUSY: return "listening, but its backlog is full";
  case PROBE_ERROR: break;
  }
  snprintf(buf, len, "connect: %s", strerror(err));
  return buf;
}

typedef struct rxdm_probe {
  doc_buf json;
  int ok, total;
} rxdm_probe;

/* Probe prefix/name, add its field, return whether it is reachable. */
static int probe_socket(doc_check *c, rxdm_probe *p, const char *prefix,
                        const char *name, int text_too) {
  char path[4200], buf[128];
  int err;
  snprintf(path, sizeof path, "%s/%s", prefix, name);
  probe_result r = probe(path, &err);
  const char *what = probe_text(r, err, buf, sizeof buf);
  if (text_too || r != PROBE_OK) doc_str(c, 1, name, "%s", what);
  buf_printf(&p->json, "%s{\"socket\":", p->total ? "," : "");
  buf_json_string(&p->json, path);
  buf_printf(&p->json, ",\"reachable\":%s,\"state\":",
             r == PROBE_OK ? "true" : "false");
  buf_json_string(&p->json, what);
  buf_printf(&p->json, "}");
  p->total++;
  p->ok += r == PROBE_OK;
  return r == PROBE_OK;
}

/* Each GPU's buffer-pool sockets; only their failures are printed. */
static int probe_gpu_sockets(doc_host *h, doc_check *c, rxdm_probe *p,
                             const char *prefix) {
  int missing = 0;
  for (int g = 0; h->cuda && g < h->cuda->ndevices; g++) {
    char bus[64], name[128];
    if (gpu_bus_id(h->cuda, g, bus, sizeof bus) != NET_OK) continue;
    snprintf(name, sizeof name, "get_gpu_fd_%s", bus);
    missing += !probe_socket(c, p, prefix, name, 0);
    snprintf(name, sizeof name, "get_gpu_metadata_%s", bus);
    missing += !probe_socket(c, p, prefix, name, 0);
  }
  return missing;
}

/* RxDM's own default socket directory (its --uds_path), which is not the
 * plugin's default (/tmp): the two must be made to agree. */
#define RXDM_DEFAULT_DIR "/run/tcpx"

/* What to do when rx_rule_manager is not reachable under `prefix`. */
static void rxdm_fix(doc_check *c, const char *prefix) {
  int err;
  char there[128];
  snprintf(there, sizeof there, RXDM_DEFAULT_DIR "/rx_rule_manager");
  if (strcmp(prefix, RXDM_DEFAULT_DIR) != 0 && probe(there, &err) == PROBE_OK) {
    doc_str(c, 1, "found", "RxDM listening under " RXDM_DEFAULT_DIR
            " (its default --uds_path)");
    doc_fix(c, "export " PREFIX_ENV "=" RXDM_DEFAULT_DIR " (GPUDirect-TCPX "
            "looks under %s).", prefix);
    return;
  }
  doc_fix(c, "Start the receive-datapath manager (RxDM, Google's "
          "tcpgpudmarxd container) before the job and set " PREFIX_ENV
          " to its --uds_path (default " RXDM_DEFAULT_DIR "); in a "
          "container, mount that directory in.");
}

static int prefix_usable(doc_check *c, const char *prefix) {
  struct stat st;
  int rc = stat(prefix, &st);
  if (rc == 0 && S_ISDIR(st.st_mode)) return 1;
  doc_status_at_least(c, DOC_FAIL);
  doc_summary(c, "RxDM not reachable: %s: %s", prefix,
              rc == 0 ? "not a directory" : strerror(errno));
  rxdm_fix(c, prefix);
  return 0;
}

void doc_check_rxdm(doc_host *h, doc_check *c) {
  const char *env = getenv(PREFIX_ENV);
  char prefix[4096];
  snprintf(prefix, sizeof prefix, "%s", env && *env ? env : "/tmp");
  size_t len = strlen(prefix);
  while (len > 1 && prefix[len - 1] == '/') prefix[--len] = '\0';
  doc_str(c, 1, "prefix", "%s%s", prefix,
          env && *env ? " (" PREFIX_ENV ")" : " (default; " PREFIX_ENV
                                             " unset)");
  if (!prefix_usable(c, prefix)) return;
  rxdm_probe p = {{0}, 0, 0};
  buf_printf(&p.json, "[");
  int rules = probe_socket(c, &p, prefix, "rx_rule_manager", 1);
  /* When RxDM is not there at all, one line says so; the rest is JSON. */
  doc_check quiet = {0}, *more = rules ? c : &quiet;
  probe_socket(more, &p, prefix, "rx_rule_uninstall", 0);
  int gpu_missing = probe_gpu_sockets(h, more, &p, prefix);
  doc_free_fields(&quiet);
  buf_printf(&p.json, "]");
  if (!p.json.oom) doc_raw(c, "sockets", NULL, buf_text(&p.json));
  buf_free(&p.json);
  if (!rules) {
    doc_status_at_least(c, DOC_FAIL);
    doc_summary(c, "RxDM not reachable under %s: every TCPX connection "
                "would fail (\"unix client connect() error\")", prefix);
    rxdm_fix(c, prefix);
  } else if (p.ok < p.total) {
    doc_status_at_least(c, DOC_WARN);
    doc_summary(c, "RxDM reachable, but %d of its %d sockets are not%s",
                p.total - p.ok, p.total,
                gpu_missing ? " (GPU receive buffers come from them)" : "");
    doc_fix(c, "Restart RxDM with the GPUs of this host visible to it.");
  } else {
    doc_summary(c, "RxDM reachable under %s (%d socket%s)", prefix, p.total,
                p.total == 1 ? "" : "s");
  }
}
