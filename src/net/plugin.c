/* Loader for NCCL net plugins, and the transport selection order.
 *
 * Two pieces of global state, both forced by the plugin ABI: the logger a
 * plugin's init receives has no context argument, so the last warning it
 * logged is kept in a global buffer; and a v7 ... v10 plugin must be
 * initialised once per process however often it is loaded, so loaded
 * libraries are counted in a small registry keyed by dlopen handle. */
#include "plugin.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "plugin_adapt.h"

/* Where GPUDirect-TCPX lives on our users' VMs and on GKE hosts. */
static const char *const tcpx_locations[] = {
    "/usr/local/tcpx/lib64/libnccl-net-tcpx.so",
    "/var/lib/tcpx/lib64/libnccl-net.so",
};

#define BUILTIN_HINT \
  "set TCPX_P2P_NET_PLUGIN=builtin to use the built-in TCP transport"

/* ---- the logger handed to plugins ------------------------------------ */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_name[64] = "?"; /* the plugin loaded most recently */
#define PLUGIN_LOG_MAX 512 /* one plugin log line, kept whole */
static char last_warning[PLUGIN_LOG_MAX];
static atomic_uint warn_seq;
static atomic_int log_threshold = NCCL_LOG_WARN;

/* TCPX_P2P_LOG_LEVEL: a number (NCCL levels: 2 WARN, 3 INFO, 5 TRACE) or
 * a level name. */
static int parse_log_level(const char *s) {
  static const char *const names[] = {"NONE", "VERSION", "WARN",
                                      "INFO", "ABORT",   "TRACE"};
  if (!s || !*s) return NCCL_LOG_WARN;
  if (isdigit((unsigned char)*s)) return atoi(s);
  for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
    if (!strcasecmp(s, names[i])) return i;
  return NCCL_LOG_WARN;
}

static int is_printed(int level) {
  int threshold = atomic_load(&log_threshold);
  if (level == NCCL_LOG_WARN || level == NCCL_LOG_ABORT)
    return threshold >= NCCL_LOG_WARN;
  if (level == NCCL_LOG_TRACE) return threshold >= NCCL_LOG_TRACE;
  return threshold >= NCCL_LOG_INFO;
}

static void plugin_logger(int level, unsigned long flags, const char *file,
                          int line, const char *fmt, ...) {
  (void)flags, (void)file, (void)line;
  char msg[PLUGIN_LOG_MAX]; /* same size as last_warning: no truncation */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt ? fmt : "", ap);
  va_end(ap);
  size_t len = strlen(msg);
  while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
    msg[--len] = '\0';
  int is_warning = level == NCCL_LOG_WARN || level == NCCL_LOG_ABORT;
  pthread_mutex_lock(&log_lock);
  if (is_warning) {
    snprintf(last_warning, sizeof last_warning, "%s", msg);
    atomic_fetch_add(&warn_seq, 1);
  }
  if (is_printed(level))
    fprintf(stderr, "[plugin %s] %s %s\n", log_name,
            is_warning ? "WARN" : "INFO", msg);
  pthread_mutex_unlock(&log_lock);
}

unsigned plugin_warn_seq(void) { return atomic_load(&warn_seq); }

int plugin_last_warning(char *buf, size_t len) {
  pthread_mutex_lock(&log_lock);
  int any = last_warning[0] != '\0';
  snprintf(buf, len, "%s", last_warning);
  pthread_mutex_unlock(&log_lock);
  return any;
}

int plugin_warning_since(unsigned seq, char *buf, size_t len) {
  int logged = 0;
  pthread_mutex_lock(&log_lock);
  if (atomic_load(&warn_seq) != seq) {
    snprintf(buf, len, "%s", last_warning);
    logged = 1;
  }
  pthread_mutex_unlock(&log_lock);
  return logged;
}

static void set_log_name(const char *name) {
  pthread_mutex_lock(&log_lock);
  snprintf(log_name, sizeof log_name, "%s", name);
  pthread_mutex_unlock(&log_lock);
  atomic_store(&log_threshold, parse_log_level(getenv("TCPX_P2P_LOG_LEVEL")));
}

/* ---- registry of loaded libraries ------------------------------------ */

typedef struct plugin_lib {
  void *dl;             /* the registry's one dlopen reference */
  int users;            /* live transports made from this library */
  unsigned inited;      /* bit N: ncclNet_vN init done (v7 ... v10) */
  struct plugin_lib *next;
} plugin_lib;

static pthread_mutex_t libs_lock = PTHREAD_MUTEX_INITIALIZER;
static plugin_lib *loaded_libs;

/* Count one more user of `dl`, taking over the caller's dlopen reference.
 * Call with libs_lock held. */
static int lib_acquire(void *dl, const char *path, plugin_lib **out) {
  for (plugin_lib *lib = loaded_libs; lib; lib = lib->next) {
    if (lib->dl != dl) continue;
    dlclose(dl); /* the registry already holds one reference */
    lib->users++;
    *out = lib;
    return NET_OK;
  }
  plugin_lib *lib = calloc(1, sizeof *lib);
  if (!lib) {
    dlclose(dl);
    return err_set(NET_ESYS, "net plugin %s: out of memory", path);
  }
  lib->dl = dl;
  lib->users = 1;
  lib->next = loaded_libs;
  loaded_libs = lib;
  *out = lib;
  return NET_OK;
}

/* Drop one user; the last one unloads the library. Call with libs_lock. */
static void lib_release(plugin_lib *lib) {
  if (--lib->users > 0) return;
  for (plugin_lib **at = &loaded_libs; *at; at = &(*at)->next) {
    if (*at != lib) continue;
    *at = lib->next;
    break;
  }
  dlclose(lib->dl);
  free(lib);
}

/* ---- opening the shared object --------------------------------------- */

static void *try_dlopen(const char *name, char *why, size_t len) {
  void *dl = dlopen(name, RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    const char *text = dlerror();
    snprintf(why, len, "%s", text ? text : "dlopen failed");
  }
  return dl;
}

/* The likely fix for the two failures users hit most. */
static const char *dlopen_hint(const char *why) {
  if (strstr(why, "failed to map segment"))
    return "; the file is probably on a noexec mount: copy it to a "
           "directory mounted with exec (e.g. /usr/local/lib) and load it "
           "from there";
  if (strstr(why, "libcuda.so.1"))
    return "; libcuda.so.1 comes with the NVIDIA driver: the driver is "
           "missing on this host (or not on the library path), and this "
           "plugin cannot run without it";
  return "";
}

static int open_path(const char *path, void **dl) {
  struct stat st;
  char why[320];
  if (stat(path, &st) != 0 && errno == ENOENT)
    return err_set(NET_ESYS, "net plugin %s: no such file", path);
  *dl = try_dlopen(path, why, sizeof why);
  if (!*dl)
    return err_set(NET_ESYS, "net plugin %s: dlopen failed: %s%s", path, why,
                   dlopen_hint(why));
  return NET_OK;
}

/* A bare NAME is tried as given, then as libnccl-net-NAME.so (NCCL's
 * rule), both through the dynamic linker's search path. */
static int open_name(const char *name, void **dl) {
  char lib[300], why[2][200];
  snprintf(lib, sizeof lib, "libnccl-net-%s.so", name);
  *dl = try_dlopen(name, why[0], sizeof why[0]);
  if (*dl) return NET_OK;
  *dl = try_dlopen(lib, why[1], sizeof why[1]);
  if (*dl) return NET_OK;
  const char *hint = *dlopen_hint(why[0]) ? dlopen_hint(why[0])
                                          : dlopen_hint(why[1]);
  return err_set(NET_ESYS, "net plugin %s: dlopen failed as %s: %s; as %s: "
                 "%s%s", name, name, why[0], lib, why[1], hint);
}

static int open_library(const char *path, void **dl) {
  return strchr(path, '/') ? open_path(path, dl) : open_name(path, dl);
}

/* The file the dynamic linker actually loaded (full path when it was
 * found through the search path). */
static void loaded_path(void *dl, const char *fallback, char *out,
                        size_t len) {
  struct link_map *map = NULL;
  const char *path = fallback;
  if (dlinfo(dl, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name &&
      *map->l_name)
    path = map->l_name;
  snprintf(out, len, "%s", path);
}

/* ---- choosing the version -------------------------------------------- */

static const void *table_symbol(void *dl, int version) {
  char sym[32];
  snprintf(sym, sizeof sym, "ncclNetPlugin_v%d", version);
  return dlsym(dl, sym);
}

/* "v7, v9" for the versions in range that `dl` exports; "" for none. */
static void exported_versions(void *dl, char *out, size_t len) {
  size_t used = 0;
  out[0] = '\0';
  for (int v = NET_PLUGIN_MIN_VERSION; v <= NET_PLUGIN_MAX_VERSION; v++) {
    if (!table_symbol(dl, v)) continue;
    int n = snprintf(out + used, len - used, "%sv%d", used ? ", " : "", v);
    if (n < 0 || (size_t)n >= len - used) break;
    used += (size_t)n;
  }
}

static int no_table_error(const char *path) {
  return err_set(NET_EINVAL, "net plugin %s: exports no ncclNetPlugin_v7..v11 "
                 "symbol (not a NCCL net plugin, or one older than v7)",
                 path);
}

static int pick_forced_version(void *dl, const char *path, int force,
                               plugin_inst *p) {
  if (force < NET_PLUGIN_MIN_VERSION || force > NET_PLUGIN_MAX_VERSION)
    return err_set(NET_EINVAL, "net plugin %s: version %d requested, but "
                   "tcpx-p2p drives ncclNetPlugin_v7..v11 only", path, force);
  p->table.any = table_symbol(dl, force);
  if (p->table.any) {
    p->version = force;
    return NET_OK;
  }
  char have[64];
  exported_versions(dl, have, sizeof have);
  if (!*have) return no_table_error(path);
  return err_set(NET_EINVAL, "net plugin %s: ncclNetPlugin_v%d requested "
                 "(TCPX_P2P_NET_PLUGIN_VERSION) but not exported; it exports "
                 "%s", path, force, have);
}

/* The highest version exported, or exactly `force` when non-zero. */
static int pick_version(void *dl, const char *path, int force,
                        plugin_inst *p) {
  if (force) return pick_forced_version(dl, path, force, p);
  for (int v = NET_PLUGIN_MAX_VERSION; v >= NET_PLUGIN_MIN_VERSION; v--) {
    p->table.any = table_symbol(dl, v);
    if (p->table.any) {
      p->version = v;
      return NET_OK;
    }
  }
  return no_table_error(path);
}

static int check_members(const plugin_inst *p, const char *path) {
  const char *missing = plugin_missing_member(p->version, p->table);
  if (!missing) return NET_OK;
  return err_set(NET_EINVAL, "net plugin %s: ncclNetPlugin_v%d.%s is NULL, "
                 "and tcpx-p2p needs it", path, p->version, missing);
}

/* ---- CUDA check and init --------------------------------------------- */

typedef int (*cu_init_fn)(unsigned int flags);
typedef int (*cu_count_fn)(int *count);

/* GPUDirect-TCPX's init exits the process when CUDA does not work, so a
 * plugin that pulled libcuda.so.1 in is initialised only once CUDA is
 * known to work. Plugins without libcuda are initialised normally. */
static int check_cuda(const net_transport *t) {
  void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (!cuda) {
    dlerror(); /* not loaded: nothing to check */
    return NET_OK;
  }
  cu_init_fn cu_init = (cu_init_fn)dlsym(cuda, "cuInit");
  cu_count_fn cu_count = (cu_count_fn)dlsym(cuda, "cuDeviceGetCount");
  int rc = NET_OK, cerr, count = 0;
  if (!cu_init || !cu_count)
    rc = err_set(NET_ECUDA, "net plugin %s: CUDA not usable (libcuda.so.1 "
                 "lacks cuInit or cuDeviceGetCount): %s would exit the "
                 "process in its init; not calling it", t->path, t->name);
  else if ((cerr = cu_init(0)) != 0)
    rc = err_set(NET_ECUDA, "net plugin %s: CUDA not usable (cuInit error "
                 "%d): %s would exit the process in its init; not calling "
                 "it", t->path, cerr, t->name);
  else if ((cerr = cu_count(&count)) != 0)
    rc = err_set(NET_ECUDA, "net plugin %s: CUDA not usable "
                 "(cuDeviceGetCount error %d): %s would exit the process in "
                 "its init; not calling it", t->path, cerr, t->name);
  else if (count <= 0)
    rc = err_set(NET_ECUDA, "net plugin %s: CUDA not usable (cuInit "
                 "succeeded but sees 0 devices): %s would exit the process "
                 "in its init; not calling it", t->path, t->name);
  dlclose(cuda);
  return rc;
}

static int init_failed(const net_transport *t, unsigned seq, int rc) {
  char warning[256];
  if (plugin_warning_since(seq, warning, sizeof warning))
    return err_set(rc, "net plugin %s (%s): init failed with error %d "
                   "(%s); plugin said: %s", t->path, t->name, rc,
                   plugin_result_text(rc), warning);
  return err_set(rc, "net plugin %s (%s): init failed with error %d (%s; "
                 "the plugin logged no warning)", t->path, t->name, rc,
                 plugin_result_text(rc));
}

/* GPUDirect-TCPX reads NCCL_DYNAMIC_CHUNK_SIZE at init, and without it
 * cuts every isend into 0-byte chunks that never complete. So it is set
 * before any plugin's init (others ignore it) unless the user chose a
 * value; a value that is not a positive byte count is refused. */
#define DYNAMIC_CHUNK_VAR "NCCL_DYNAMIC_CHUNK_SIZE"
#define DYNAMIC_CHUNK_DEFAULT "524288" /* what GKE's TCPX set-up uses */

static int ensure_dynamic_chunk_size(const net_transport *t) {
  const char *s = getenv(DYNAMIC_CHUNK_VAR);
  if (!s || !*s) {
    if (setenv(DYNAMIC_CHUNK_VAR, DYNAMIC_CHUNK_DEFAULT, 1) != 0)
      return err_set(NET_ESYS, "setenv(%s): %s", DYNAMIC_CHUNK_VAR, strerror(errno));
    log_msg(LOG_INFO, "net plugin %s: %s=%s (set by tcpx-p2p; TCPX needs it)",
            t->name, DYNAMIC_CHUNK_VAR, DYNAMIC_CHUNK_DEFAULT);
    return NET_OK;
  }
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v <= 0 || v > INT32_MAX)
    return err_set(NET_EINVAL, "%s=%s: expected a positive byte count (TCPX "
                   "sends nothing without one); unset it to use %s",
                   DYNAMIC_CHUNK_VAR, s, DYNAMIC_CHUNK_DEFAULT);
  log_msg(LOG_INFO, "net plugin %s: %s=%s (from the environment)", t->name,
          DYNAMIC_CHUNK_VAR, s);
  return NET_OK;
}

/* v7 ... v10: once per process and version; v11: once per instance (each
 * gets its own context). Call with libs_lock held. */
static int init_plugin(net_transport *t, plugin_inst *p) {
  unsigned bit = 1u << p->version;
  set_log_name(t->name);
  if (p->version < 11 && (p->lib->inited & bit)) return NET_OK;
  int rc = check_cuda(t);
  if (rc == NET_OK) rc = ensure_dynamic_chunk_size(t);
  if (rc != NET_OK) return rc;
  unsigned seq = plugin_warn_seq();
  rc = plugin_call_init(p, plugin_logger);
  if (rc != NCCL_OK) return init_failed(t, seq, rc);
  if (p->version < 11) p->lib->inited |= bit;
  return NET_OK;
}

/* ---- loading --------------------------------------------------------- */

/* One allocation per loaded instance: the transport and its state. */
typedef struct plugin_handle {
  net_transport base; /* first: destroy frees the whole handle */
  plugin_inst inst;
} plugin_handle;

static void describe(plugin_handle *h, void *dl, const char *path) {
  const char *name = plugin_table_name(h->inst.version, h->inst.table);
  snprintf(h->base.name, sizeof h->base.name, "%s",
           name && *name ? name : "(unnamed)");
  loaded_path(dl, path, h->base.path, sizeof h->base.path);
  h->base.abi_version = h->inst.version;
  h->base.impl = &h->inst;
  h->base.ops = &h->inst.ops;
}

/* Everything that can be decided from the symbols alone. */
static int inspect(void *dl, const char *path, int force, plugin_handle *h) {
  int rc = pick_version(dl, path, force, &h->inst);
  if (rc == NET_OK) rc = check_members(&h->inst, path);
  if (rc != NET_OK) return rc;
  describe(h, dl, path);
  plugin_bind(&h->inst);
  return NET_OK;
}

int net_plugin_load(const char *path, int force_version, net_transport **out) {
  *out = NULL;
  if (!path || !*path) return err_set(NET_EINVAL, "net plugin: empty path");
  void *dl;
  int rc = open_library(path, &dl);
  if (rc != NET_OK) return rc;
  plugin_handle *h = calloc(1, sizeof *h);
  if (!h) {
    dlclose(dl);
    return err_set(NET_ESYS, "net plugin %s: out of memory", path);
  }
  rc = inspect(dl, path, force_version, h);
  if (rc != NET_OK) {
    dlclose(dl);
    free(h);
    return rc;
  }
  pthread_mutex_lock(&libs_lock);
  rc = lib_acquire(dl, path, &h->inst.lib);
  if (rc == NET_OK && (rc = init_plugin(&h->base, &h->inst)) != NET_OK)
    lib_release(h->inst.lib);
  pthread_mutex_unlock(&libs_lock);
  if (rc != NET_OK) {
    free(h);
    return rc;
  }
  *out = &h->base;
  return NET_OK;
}

void plugin_destroy(net_transport *t) {
  if (!t) return;
  plugin_handle *h = (plugin_handle *)t;
  plugin_call_finalize(&h->inst);
  pthread_mutex_lock(&libs_lock);
  lib_release(h->inst.lib);
  pthread_mutex_unlock(&libs_lock);
  free(h);
}

/* ---- selection order ------------------------------------------------- */

static int is_builtin_name(const char *s) {
  return !strcasecmp(s, "builtin") || !strcasecmp(s, "tcp");
}

static int open_builtin(const tcp_options *tcp, net_transport **out) {
  tcp_options defaults;
  if (!tcp) {
    tcp_options_default(&defaults);
    tcp = &defaults;
  }
  return net_tcp_create(tcp, out);
}

static int resolve_version(int force, int *out) {
  const char *s = getenv("TCPX_P2P_NET_PLUGIN_VERSION");
  *out = force;
  if (force || !s || !*s) return NET_OK;
  char *end;
  long v = strtol(s, &end, 10);
  if (*end || v < NET_PLUGIN_MIN_VERSION || v > NET_PLUGIN_MAX_VERSION)
    return err_set(NET_EINVAL, "TCPX_P2P_NET_PLUGIN_VERSION=%s: expected a "
                   "version from 7 to 11", s);
  *out = (int)v;
  return NET_OK;
}

/* Append where the plugin came from and the way out, keeping the tail
 * whole when the message is long. */
static int with_builtin_hint(int rc, const char *source) {
  char msg[P2P_ERR_MAX], tail[160];
  snprintf(msg, sizeof msg, "%s", err_get());
  int n = snprintf(tail, sizeof tail, " (plugin from %s); " BUILTIN_HINT,
                   source);
  int room = P2P_ERR_MAX - 1 - n;
  return err_set(rc, "%.*s%s", room > 0 ? room : 0, msg, tail);
}

static int load_with_hint(const char *path, int version, const char *source,
                          net_transport **out) {
  int rc = net_plugin_load(path, version, out);
  return rc == NET_OK ? rc : with_builtin_hint(rc, source);
}

/* NCCL_NET_PLUGIN is a comma list; tcpx-p2p takes its first entry. */
static void first_entry(const char *list, char *out, size_t len) {
  size_t n = strcspn(list, ",");
  if (n >= len) n = len - 1;
  memcpy(out, list, n);
  out[n] = '\0';
}

static int choose_path(net_choice *c, net_source source, const char *path) {
  c->source = source;
  c->builtin = 0;
  size_t len = strlen(path);
  if (len >= sizeof c->path)
    return err_set(NET_EINVAL, "net plugin path of %zu bytes is too long",
                   len);
  memcpy(c->path, path, len + 1);
  return NET_OK;
}

static int choose_builtin(net_choice *c, net_source source) {
  c->source = source;
  c->builtin = 1;
  c->path[0] = '\0';
  return NET_OK;
}

const char *net_default_location(int i) {
  int n = (int)(sizeof tcpx_locations / sizeof tcpx_locations[0]);
  return i >= 0 && i < n ? tcpx_locations[i] : NULL;
}

int net_choose(const char *explicit_path, net_choice *c) {
  net_source source = NET_FROM_ARGUMENT;
  const char *chosen = explicit_path;
  if (!chosen || !*chosen) {
    source = NET_FROM_TCPX_P2P;
    chosen = getenv("TCPX_P2P_NET_PLUGIN");
  }
  if (chosen && *chosen)
    return is_builtin_name(chosen) ? choose_builtin(c, source)
                                   : choose_path(c, source, chosen);
  const char *nccl = getenv("NCCL_NET_PLUGIN");
  if (nccl && *nccl) {
    char first[256];
    first_entry(nccl, first, sizeof first);
    if (!strcasecmp(first, "none")) return choose_builtin(c, NET_FROM_NCCL);
    if (*first) return choose_path(c, NET_FROM_NCCL, first);
  }
  for (int i = 0; net_default_location(i); i++) {
    if (access(net_default_location(i), F_OK) == 0)
      return choose_path(c, NET_FROM_DEFAULT, net_default_location(i));
  }
  return choose_builtin(c, NET_FROM_NOTHING);
}

int net_open(const char *explicit_path, int force_version,
             const tcp_options *tcp, net_transport **out) {
  int version;
  net_choice c;
  *out = NULL;
  int rc = resolve_version(force_version, &version);
  if (rc == NET_OK) rc = net_choose(explicit_path, &c);
  if (rc != NET_OK) return rc;
  if (c.builtin) return open_builtin(tcp, out);
  if (c.source == NET_FROM_NCCL)
    return load_with_hint(c.path, version, "NCCL_NET_PLUGIN", out);
  if (c.source == NET_FROM_DEFAULT)
    return load_with_hint(c.path, version,
                          "the GPUDirect-TCPX default location", out);
  return net_plugin_load(c.path, version, out);
}
