/* doctor: which NCCL net plugin the engine would load and why, whether it
 * loads, and whether its file sits on a noexec mount. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "doctor.h"

/* Where GKE pods see the plugin; not in the engine's search order, so the
 * doctor only points at it. */
#define POD_PLUGIN "/usr/local/nvidia/lib64/libnccl-net.so"

/* ---- why this plugin ---- */

static const char *source_var(net_source s) {
  switch (s) {
  case NET_FROM_ARGUMENT: return "--plugin";
  case NET_FROM_TCPX_P2P: return "TCPX_P2P_NET_PLUGIN";
  case NET_FROM_NCCL: return "NCCL_NET_PLUGIN";
  case NET_FROM_DEFAULT: return "default location";
  case NET_FROM_NOTHING: break;
  }
  return "nothing";
}

static void describe_source(doc_host *h, doc_check *c) {
  const net_choice *ch = &h->choice;
  const char *var = source_var(ch->source);
  doc_str(c, 0, "chosen_by", "%s", var);
  switch (ch->source) {
  case NET_FROM_ARGUMENT:
    doc_str(c, 1, "why", "given with --plugin %s", h->plugin_arg);
    break;
  case NET_FROM_TCPX_P2P:
  case NET_FROM_NCCL:
    doc_str(c, 1, "why", "%s=%s%s", var, getenv(var),
            ch->source == NET_FROM_NCCL && strchr(getenv(var), ',')
                ? " (tcpx-p2p uses the first entry)" : "");
    break;
  case NET_FROM_DEFAULT:
    doc_str(c, 1, "why", "no TCPX_P2P_NET_PLUGIN or NCCL_NET_PLUGIN set; "
            "found at the GPUDirect-TCPX default location");
    break;
  case NET_FROM_NOTHING:
    doc_str(c, 1, "why", "no TCPX_P2P_NET_PLUGIN or NCCL_NET_PLUGIN set, "
            "and no plugin at the default locations");
    break;
  }
}

/* The default locations and whether each exists (JSON), and the text
 * line when nothing was found there. */
static void describe_search(doc_check *c, int text_too) {
  doc_buf json = {0}, text = {0};
  buf_printf(&json, "[");
  for (int i = 0; net_default_location(i); i++) {
    const char *loc = net_default_location(i);
    int there = access(loc, F_OK) == 0;
    buf_printf(&json, "%s{\"path\":", i ? "," : "");
    buf_json_string(&json, loc);
    buf_printf(&json, ",\"present\":%s}", there ? "true" : "false");
    buf_printf(&text, "%s%s (%s)", i ? ", " : "", loc,
               there ? "present" : "absent");
  }
  buf_printf(&json, "]");
  if (!json.oom && !text.oom)
    doc_raw(c, "searched", text_too ? buf_text(&text) : NULL,
            buf_text(&json));
  buf_free(&json);
  buf_free(&text);
}

/* ---- built-in chosen ---- */

static void builtin_chosen(doc_host *h, doc_check *c) {
  doc_status_at_least(c, DOC_FAIL);
  if (h->choice.source == NET_FROM_NOTHING) {
    doc_summary(c, "no GPUDirect-TCPX plugin found: the engine would use "
                "its built-in TCP transport (no GPUDirect)");
    describe_search(c, 1);
    if (access(POD_PLUGIN, F_OK) == 0)
      doc_fix(c, "%s exists but is not searched: set NCCL_NET_PLUGIN=%s.",
              POD_PLUGIN, POD_PLUGIN);
    else
      doc_fix(c, "Install GPUDirect-TCPX (A3 VMs: %s), or set "
              "NCCL_NET_PLUGIN to the path of its libnccl-net.so.",
              net_default_location(0));
    return;
  }
  const char *var = source_var(h->choice.source);
  doc_summary(c, "%s chooses the built-in TCP transport (no GPUDirect)",
              var);
  if (h->choice.source == NET_FROM_ARGUMENT)
    doc_fix(c, "Give --plugin the path of GPUDirect-TCPX's plugin.");
  else
    doc_fix(c, "Unset %s, or set it to the path of GPUDirect-TCPX's "
            "libnccl-net.so.", var);
  describe_search(c, 0);
}

/* ---- loading ---- */

/* The likely fix for a load failure, from the loader's message. */
static void fix_for_load_error(doc_check *c, const char *msg) {
  if (strstr(msg, "failed to map segment"))
    doc_fix(c, "The file is on a noexec mount (see noexec): copy it to a "
            "directory mounted with exec and point NCCL_NET_PLUGIN there.");
  else if (strstr(msg, "libcuda.so.1"))
    doc_fix(c, "libcuda.so.1 comes with the NVIDIA driver: install the "
            "driver; in a container, mount the driver's libraries (GKE: "
            "/usr/local/nvidia/lib64) and add them to LD_LIBRARY_PATH.");
  else if (strstr(msg, "undefined symbol"))
    doc_fix(c, "A library the plugin links is older than the one it was "
            "built against (often libcuda.so.1 of an older NVIDIA driver): "
            "`ldd -r` on the plugin names it; update it.");
  else if (strstr(msg, "CUDA not usable"))
    doc_fix(c, "GPUDirect-TCPX exits the process without a working GPU: "
            "fix CUDA first (see cuda).");
  else if (strstr(msg, "no such file") ||
           strstr(msg, "cannot open shared object file"))
    doc_fix(c, "Check the path (`ls -l` it); `ldd` on the plugin names any "
            "library it needs that is missing.");
  else if (strstr(msg, "exports no ncclNetPlugin"))
    doc_fix(c, "This is not a NCCL net plugin: point the variable at "
            "GPUDirect-TCPX's libnccl-net.so.");
  else if (strstr(msg, "TCPX_P2P_NET_PLUGIN_VERSION"))
    doc_fix(c, "Unset TCPX_P2P_NET_PLUGIN_VERSION, or set it to a version "
            "the plugin exports (GPUDirect-TCPX: 7).");
  else if (strstr(msg, "init failed"))
    doc_fix(c, "The plugin's own warning is quoted above. For "
            "GPUDirect-TCPX, \"no interface found\" means "
            "NCCL_GPUDIRECTTCPX_SOCKET_IFNAME matches nothing (see nics).");
  else
    doc_fix(c, "Run `ldd` on the plugin to find what it cannot load.");
}

static int is_tcpx_name(const char *name) {
  return strncmp(name, "GPUDirectTCPX", 13) == 0;
}

static void loaded(doc_host *h, doc_check *c) {
  const net_transport *t = h->transport;
  int ndev = -1;
  doc_str(c, 1, "path", "%s", t->path);
  doc_int(c, 0, "abi_version", t->abi_version);
  doc_str(c, 0, "name", "%s", t->name);
  doc_str(c, 1, "abi", "ncclNet_v%d, name \"%s\"", t->abi_version, t->name);
  if (net_call((net_transport *)t, devices, &ndev) == NET_OK)
    doc_int(c, 1, "devices", ndev);
  else
    doc_str(c, 1, "devices", "devices() failed: %s", err_get());
  if (!is_tcpx_name(t->name)) {
    doc_status_at_least(c, DOC_WARN);
    doc_summary(c, "%s loads, but it is not GPUDirect-TCPX", t->name);
    doc_fix(c, "Point NCCL_NET_PLUGIN at GPUDirect-TCPX to use it.");
  } else {
    doc_summary(c, "%s loads (ncclNet_v%d)", t->name, t->abi_version);
  }
}

/* The file to check for noexec: the chosen path, or where the dynamic
 * linker found a bare NAME. */
static void remember_file(doc_host *h) {
  const char *file = strchr(h->choice.path, '/') ? h->choice.path
                     : h->transport              ? h->transport->path
                                                 : "";
  snprintf(h->plugin_file, sizeof h->plugin_file, "%s", file);
}

void doc_check_plugin(doc_host *h, doc_check *c) {
  if (net_choose(h->plugin_arg, &h->choice) != NET_OK) {
    doc_status_at_least(c, DOC_FAIL);
    doc_summary(c, "cannot tell which plugin: %s", err_get());
    return;
  }
  describe_source(h, c);
  if (h->choice.builtin) {
    builtin_chosen(h, c);
    return;
  }
  if (net_open(h->plugin_arg, 0, NULL, &h->transport) == NET_OK) {
    loaded(h, c);
  } else {
    h->transport = NULL;
    doc_status_at_least(c, DOC_FAIL);
    doc_summary(c, "%s cannot be loaded", h->choice.path);
    doc_str(c, 1, "error", "%s", err_get());
    fix_for_load_error(c, err_get());
  }
  remember_file(h);
  doc_str(c, 0, "plugin", "%s", h->choice.path);
}

/* ---- noexec ---- */

/* Where `dir`'s mount starts: the highest ancestor on the same device. */
static void mount_point(const char *dir, char *out, size_t len) {
  char path[PATH_MAX];
  struct stat st, up;
  snprintf(out, len, "%s", dir);
  if (!realpath(dir, path) || stat(path, &st) != 0) return;
  snprintf(out, len, "%s", path);
  while (strcmp(path, "/") != 0) {
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *p = dirname(parent);
    if (stat(p, &up) != 0 || up.st_dev != st.st_dev) return;
    snprintf(path, sizeof path, "%s", p);
    snprintf(out, len, "%s", path);
  }
}

void doc_check_noexec(doc_host *h, doc_check *c) {
  if (!h->plugin_file[0]) {
    doc_status_at_least(c, DOC_SKIP);
    doc_summary(c, "no plugin file to check");
    return;
  }
  char copy[sizeof h->plugin_file], where[PATH_MAX];
  snprintf(copy, sizeof copy, "%s", h->plugin_file);
  const char *dir = dirname(copy);
  struct statvfs vfs;
  doc_str(c, 0, "directory", "%s", dir);
  if (statvfs(dir, &vfs) != 0) {
    doc_status_at_least(c, DOC_SKIP);
    doc_summary(c, "cannot check %s: %s", dir, strerror(errno));
    return;
  }
  mount_point(dir, where, sizeof where);
  doc_str(c, 0, "mount_point", "%s", where);
  doc_bool(c, "noexec", (vfs.f_flag & ST_NOEXEC) != 0);
  if (!(vfs.f_flag & ST_NOEXEC)) {
    doc_summary(c, "%s is on an exec mount (%s)", dir, where);
    return;
  }
  doc_status_at_least(c, DOC_FAIL);
  doc_summary(c, "%s is on a noexec mount (%s): dlopen cannot map the "
              "plugin (\"failed to map segment from shared object\")",
              dir, where);
  doc_fix(c, "Copy the plugin to a directory mounted with exec (e.g. "
          "/usr/local/lib) and set NCCL_NET_PLUGIN to the copy, or "
          "`mount -o remount,exec %s`.", where);
}
