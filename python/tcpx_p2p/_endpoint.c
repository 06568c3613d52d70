/* The Endpoint type: creation, metadata, connections, memory regions and
 * the rank -> connection map. Data movement is in _transfer.c. */
#include "_ext.h"

#include <limits.h>
#include <string.h>

#define MAX_PROGRESS_THREADS 1024
#define IP_TEXT_MAX 128

/* ---- creation ------------------------------------------------------------ */

/* Keyword-only options beyond UCCL's two arguments (None = default). */
typedef struct extra_opts {
  PyObject *plugin, *ifname, *auth_token;
  PyObject *timeout_ms, *op_timeout_ms, *listen_port, *chunk_size;
} extra_opts;

static int set_int_opt(PyObject *obj, const char *name, long long lo,
                       long long hi, int *field) {
  if (!obj || obj == Py_None) return 0;
  return arg_int(obj, "Endpoint", name, lo, hi, field);
}

static int apply_extras(const extra_opts *x, p2p_options *o) {
  if (x->plugin && arg_str(x->plugin, "Endpoint", "plugin", 1, &o->plugin) < 0)
    return -1;
  if (x->ifname && arg_str(x->ifname, "Endpoint", "ifname", 1, &o->ifname) < 0)
    return -1;
  if (x->auth_token &&
      arg_str(x->auth_token, "Endpoint", "auth_token", 1, &o->auth_token) < 0)
    return -1;
  if (set_int_opt(x->timeout_ms, "timeout_ms", 0, INT_MAX, &o->timeout_ms) < 0 ||
      set_int_opt(x->op_timeout_ms, "op_timeout_ms", 0, INT_MAX,
                  &o->op_timeout_ms) < 0 ||
      set_int_opt(x->listen_port, "listen_port", 0, 65535, &o->listen_port) < 0)
    return -1;
  if (x->chunk_size && x->chunk_size != Py_None &&
      arg_size(x->chunk_size, "Endpoint", "chunk_size", &o->chunk_size) < 0)
    return -1;
  return 0;
}

/* The option strings must outlive the endpoint in case it keeps them. */
static PyObject *strings_to_keep(const extra_opts *x) {
  return PyTuple_Pack(3, x->plugin ? x->plugin : Py_None,
                      x->ifname ? x->ifname : Py_None,
                      x->auth_token ? x->auth_token : Py_None);
}

static int create_endpoint(EndpointObject *self, p2p_options *opts) {
  int rc;
  p2p_endpoint *ep = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_endpoint_create(opts, &ep);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) {
    PyErr_Format(PyExc_RuntimeError,
                 "Endpoint(local_gpu_idx=%d, num_cpus=%d): %s: %s",
                 opts->gpu_index, opts->num_threads, p2p_strerror(rc),
                 p2p_last_error());
    return -1;
  }
  self->ep = ep;
  return 0;
}

static PyObject *endpoint_new(PyTypeObject *type, PyObject *args,
                              PyObject *kw) {
  static char *kwlist[] = {"local_gpu_idx", "num_cpus", "plugin",
                           "ifname", "auth_token", "timeout_ms",
                           "op_timeout_ms", "listen_port", "chunk_size",
                           NULL};
  PyObject *gpu_obj, *cpus_obj;
  extra_opts x = {0};
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$OOOOOOO:Endpoint", kwlist,
                                   &gpu_obj, &cpus_obj, &x.plugin, &x.ifname,
                                   &x.auth_token, &x.timeout_ms,
                                   &x.op_timeout_ms, &x.listen_port,
                                   &x.chunk_size))
    return NULL;
  p2p_options opts;
  p2p_options_init(&opts);
  int cpus;
  if (arg_int(gpu_obj, "Endpoint", "local_gpu_idx", 0, INT_MAX,
              &opts.gpu_index) < 0 ||
      arg_int(cpus_obj, "Endpoint", "num_cpus", 0, MAX_PROGRESS_THREADS,
              &cpus) < 0 ||
      apply_extras(&x, &opts) < 0)
    return NULL;
  opts.num_threads = cpus > 0 ? cpus : 1;

  EndpointObject *self = (EndpointObject *)type->tp_alloc(type, 0);
  if (!self) return NULL;
  self->gpu_index = opts.gpu_index;
  self->rank_conns = PyDict_New();
  self->keep_alive = strings_to_keep(&x);
  if (!self->rank_conns || !self->keep_alive ||
      create_endpoint(self, &opts) < 0) {
    Py_DECREF(self);
    return NULL;
  }
  return (PyObject *)self;
}

/* Destroying joins the progress threads, so the GIL is let go meanwhile. */
static void endpoint_dealloc(EndpointObject *self) {
  p2p_endpoint *ep = self->ep;
  self->ep = NULL;
  if (ep) {
    Py_BEGIN_ALLOW_THREADS
    p2p_endpoint_destroy(ep);
    Py_END_ALLOW_THREADS
  }
  Py_CLEAR(self->rank_conns);
  Py_CLEAR(self->keep_alive);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *endpoint_repr(EndpointObject *self) {
  char ip[IP_TEXT_MAX] = "?";
  if (p2p_local_ip(self->ep, ip, sizeof ip) != P2P_OK) strcpy(ip, "?");
  return PyUnicode_FromFormat("<tcpx_p2p Endpoint %s gpu %d>", ip,
                              self->gpu_index);
}

/* ---- metadata ------------------------------------------------------------- */

static PyObject *ep_get_metadata(EndpointObject *self, PyObject *unused) {
  (void)unused;
  uint8_t buf[P2P_METADATA_MAX];
  size_t len = sizeof buf;
  int rc = p2p_get_metadata(self->ep, buf, &len);
  if (rc != P2P_OK) {
    PyErr_Format(PyExc_RuntimeError, "get_metadata: %s: %s", p2p_strerror(rc),
                 p2p_last_error());
    return NULL;
  }
  return PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)len);
}

/* Parse a metadata blob into ip/port/gpu; ArgumentError if malformed. */
static int parse_metadata_obj(PyObject *obj, const char *fn, char *ip,
                              size_t ip_len, int *port, int *gpu) {
  uint8_t buf[P2P_METADATA_MAX];
  size_t len = 0;
  if (arg_bytes(obj, fn, "metadata", buf, sizeof buf, &len) < 0) return -1;
  int rc = p2p_parse_metadata(buf, len, ip, ip_len, port, gpu);
  if (rc != P2P_OK) {
    PyErr_Format(ext_argument_error, "%s(): bad metadata (%zu bytes): %s", fn,
                 len, p2p_last_error());
    return -1;
  }
  return 0;
}

static PyObject *ep_parse_metadata(PyObject *unused, PyObject *args,
                                   PyObject *kw) {
  (void)unused;
  static char *kwlist[] = {"metadata", NULL};
  PyObject *obj;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:parse_metadata", kwlist, &obj))
    return NULL;
  char ip[IP_TEXT_MAX];
  int port = 0, gpu = 0;
  if (parse_metadata_obj(obj, "parse_metadata", ip, sizeof ip, &port, &gpu) < 0)
    return NULL;
  return Py_BuildValue("(sii)", ip, port, gpu);
}

/* ---- connections ----------------------------------------------------------- */

typedef struct peer_addr {
  char ip[IP_TEXT_MAX];
  int gpu;
  int port;
} peer_addr;

/* connect(remote_ip_addr, remote_gpu_idx, remote_port=-1), or, as older
 * UCCL, connect(metadata) with the blob from get_metadata(). */
static int parse_connect_args(PyObject *args, PyObject *kw, peer_addr *pa) {
  static char *kwlist[] = {"remote_ip_addr", "remote_gpu_idx", "remote_port",
                           "metadata", NULL};
  PyObject *ip = NULL, *gpu = NULL, *port = NULL, *meta = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOOO:connect", kwlist, &ip,
                                   &gpu, &port, &meta))
    return -1;
  if (!meta && ip && !gpu && !port && !PyUnicode_Check(ip) &&
      PyObject_CheckBuffer(ip)) {
    meta = ip;
    ip = NULL;
  }
  if (meta) {
    if (ip || gpu || port) {
      PyErr_SetString(PyExc_TypeError,
                      "connect(): give either metadata or remote_ip_addr and "
                      "remote_gpu_idx, not both");
      return -1;
    }
    return parse_metadata_obj(meta, "connect", pa->ip, sizeof pa->ip,
                              &pa->port, &pa->gpu);
  }
  if (!ip || !gpu) {
    PyErr_SetString(PyExc_TypeError,
                    "connect() missing required argument: 'remote_ip_addr' "
                    "and 'remote_gpu_idx'");
    return -1;
  }
  const char *text;
  pa->port = -1;
  if (arg_str(ip, "connect", "remote_ip_addr", 0, &text) < 0 ||
      arg_int(gpu, "connect", "remote_gpu_idx", INT_MIN, INT_MAX, &pa->gpu) < 0 ||
      (port && arg_int(port, "connect", "remote_port", -1, 65535, &pa->port) < 0))
    return -1;
  if (strlen(text) >= sizeof pa->ip) {
    PyErr_SetString(ext_argument_error, "connect(): remote_ip_addr too long");
    return -1;
  }
  strcpy(pa->ip, text);
  return 0;
}

static PyObject *ep_connect(EndpointObject *self, PyObject *args,
                            PyObject *kw) {
  peer_addr pa;
  if (parse_connect_args(args, kw, &pa) < 0) return NULL;
  uint64_t conn_id = 0;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_connect(self->ep, pa.ip, pa.gpu, pa.port, &conn_id);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) {
    ext_log_failure("connect", rc);
    conn_id = 0;
  }
  return ext_pair(rc == P2P_OK, PyLong_FromUnsignedLongLong(conn_id));
}

static PyObject *ep_accept(EndpointObject *self, PyObject *unused) {
  (void)unused;
  char ip[IP_TEXT_MAX] = "";
  int gpu = -1, rc;
  uint64_t conn_id = 0;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_accept(self->ep, ip, sizeof ip, &gpu, &conn_id);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) {
    ext_log_failure("accept", rc);
    return Py_BuildValue("(Osii)", Py_False, "", -1, 0);
  }
  return Py_BuildValue("(OsiK)", Py_True, ip, gpu,
                       (unsigned long long)conn_id);
}

/* ---- memory regions ----------------------------------------------------- */

static PyObject *ep_reg(EndpointObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"ptr", "size", NULL};
  PyObject *ptr_obj, *size_obj;
  void *ptr;
  size_t size;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:reg", kwlist, &ptr_obj,
                                   &size_obj) ||
      arg_ptr(ptr_obj, "reg", "ptr", &ptr) < 0 ||
      arg_size(size_obj, "reg", "size", &size) < 0)
    return NULL;
  uint64_t mr_id = 0;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_reg(self->ep, ptr, size, &mr_id);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) {
    ext_log_failure("reg", rc);
    mr_id = 0;
  }
  return ext_pair(rc == P2P_OK, PyLong_FromUnsignedLongLong(mr_id));
}

static PyObject *u64_list_to_py(const uint64_t *v, size_t n) {
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; list && i < n; i++) {
    PyObject *item = PyLong_FromUnsignedLongLong(v[i]);
    if (!item) Py_CLEAR(list);
    else PyList_SET_ITEM(list, (Py_ssize_t)i, item);
  }
  return list;
}

static PyObject *regv_call(EndpointObject *self, void **ptrs, size_t *sizes,
                           size_t n) {
  uint64_t *mr_ids = PyMem_Calloc(n + 1, sizeof *mr_ids);
  if (!mr_ids) return PyErr_NoMemory();
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_regv(self->ep, ptrs, sizes, n, mr_ids);
  Py_END_ALLOW_THREADS
  PyObject *r;
  if (rc != P2P_OK) {
    ext_log_failure("regv", rc);
    r = ext_pair(0, PyList_New(0));
  } else {
    r = ext_pair(1, u64_list_to_py(mr_ids, n));
  }
  PyMem_Free(mr_ids);
  return r;
}

static PyObject *ep_regv(EndpointObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"ptrs", "sizes", NULL};
  PyObject *ptrs_obj, *sizes_obj;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:regv", kwlist, &ptrs_obj,
                                   &sizes_obj))
    return NULL;
  void **ptrs = NULL;
  size_t *sizes = NULL;
  size_t n_ptrs = 0, n_sizes = 0;
  PyObject *r = NULL;
  if (arg_ptr_list(ptrs_obj, "regv", "ptrs", &ptrs, &n_ptrs) < 0 ||
      arg_size_list(sizes_obj, "regv", "sizes", &sizes, &n_sizes) < 0)
    goto out;
  if (n_ptrs != n_sizes) {
    PyErr_Format(ext_argument_error,
                 "regv(): ptrs and sizes must match (%zu vs %zu entries)",
                 n_ptrs, n_sizes);
    goto out;
  }
  r = regv_call(self, ptrs, sizes, n_ptrs);
out:
  PyMem_Free(ptrs);
  PyMem_Free(sizes);
  return r;
}

static PyObject *ep_dereg(EndpointObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"mr_id", NULL};
  PyObject *obj;
  uint64_t mr_id;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:dereg", kwlist, &obj) ||
      arg_u64(obj, "dereg", "mr_id", &mr_id) < 0)
    return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_dereg(self->ep, mr_id);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) ext_log_failure("dereg", rc);
  return PyBool_FromLong(rc == P2P_OK);
}

/* ---- rank map ---------------------------------------------------------------- */

static PyObject *ep_conn_id_of_rank(EndpointObject *self, PyObject *args,
                                    PyObject *kw) {
  static char *kwlist[] = {"rank", NULL};
  PyObject *obj;
  int rank;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:conn_id_of_rank", kwlist,
                                   &obj) ||
      arg_int(obj, "conn_id_of_rank", "rank", INT_MIN, INT_MAX, &rank) < 0)
    return NULL;
  PyObject *key = PyLong_FromLong(rank);
  if (!key) return NULL;
  PyObject *conn = PyDict_GetItemWithError(self->rank_conns, key);
  Py_DECREF(key);
  if (conn) return Py_NewRef(conn);
  if (PyErr_Occurred()) return NULL;
  return PyLong_FromUnsignedLongLong(UINT64_MAX);
}

static PyObject *ep_set_conn_id_of_rank(EndpointObject *self, PyObject *args,
                                        PyObject *kw) {
  static char *kwlist[] = {"rank", "conn_id", NULL};
  PyObject *rank_obj, *conn_obj;
  int rank;
  uint64_t conn_id;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:set_conn_id_of_rank", kwlist,
                                   &rank_obj, &conn_obj) ||
      arg_int(rank_obj, "set_conn_id_of_rank", "rank", INT_MIN, INT_MAX,
              &rank) < 0 ||
      arg_u64(conn_obj, "set_conn_id_of_rank", "conn_id", &conn_id) < 0)
    return NULL;
  PyObject *key = PyLong_FromLong(rank);
  PyObject *val = PyLong_FromUnsignedLongLong(conn_id);
  int rc = key && val ? PyDict_SetItem(self->rank_conns, key, val) : -1;
  Py_XDECREF(key);
  Py_XDECREF(val);
  if (rc < 0) return NULL;
  Py_RETURN_NONE;
}

/* ---- counters ---------------------------------------------------------------- */

static int dict_put_u64(PyObject *d, const char *key, uint64_t v) {
  PyObject *o = PyLong_FromUnsignedLongLong(v);
  int rc = o ? PyDict_SetItemString(d, key, o) : -1;
  Py_XDECREF(o);
  return rc;
}

static PyObject *stats_dict(const p2p_conn_stats *st) {
  PyObject *d = PyDict_New();
  if (!d) return NULL;
  const struct { const char *k; uint64_t v; } f[] = {
      {"bytes_sent", st->bytes_sent}, {"bytes_received", st->bytes_received},
      {"ops_completed", st->ops_completed}, {"ops_failed", st->ops_failed},
      {"ops_timed_out", st->ops_timed_out}, {"timeouts", st->timeouts},
      {"retries", st->retries}, {"stream_resets", st->stream_resets},
      {"pings_sent", st->pings_sent}, {"pings_received", st->pings_received},
      {"last_heard_ms", st->last_heard_ms}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (dict_put_u64(d, f[i].k, f[i].v) < 0) goto fail;
  PyObject *state = PyUnicode_FromString(st->state == P2P_OK ? "up" : p2p_strerror(st->state));
  PyObject *peer = PyUnicode_FromString(st->peer);
  int rc = state && peer && PyDict_SetItemString(d, "state", state) == 0 &&
                   PyDict_SetItemString(d, "peer", peer) == 0 ? 0 : -1;
  Py_XDECREF(state);
  Py_XDECREF(peer);
  if (rc == 0) return d;
fail:
  Py_DECREF(d);
  return NULL;
}

static PyObject *ep_get_stats(EndpointObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"conn_id", NULL};
  PyObject *obj;
  uint64_t conn_id;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:get_stats", kwlist, &obj) ||
      arg_u64(obj, "get_stats", "conn_id", &conn_id) < 0)
    return NULL;
  p2p_conn_stats st;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_conn_stats_get(self->ep, conn_id, &st);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) {
    ext_log_failure("get_stats", rc);
    Py_RETURN_NONE;
  }
  return stats_dict(&st);
}

static PyObject *ep_local_gpu_idx(EndpointObject *self, void *unused) {
  (void)unused;
  return PyLong_FromLong(self->gpu_index);
}

/* ---- type ---------------------------------------------------------------- */

#define XFER_DOC(sig, ret) sig " -> " ret

static PyMethodDef endpoint_methods[] = {
    {"get_metadata", (PyCFunction)ep_get_metadata, METH_NOARGS,
     "get_metadata() -> bytes: IP (4 or 16), port (2, network order), GPU "
     "index (4)."},
    {"get_endpoint_metadata", (PyCFunction)ep_get_metadata, METH_NOARGS,
     "Older UCCL name of get_metadata()."},
    {"parse_metadata",
     (PyCFunction)(void (*)(void))ep_parse_metadata,
     METH_VARARGS | METH_KEYWORDS | METH_STATIC,
     "parse_metadata(metadata) -> (ip, port, gpu_idx)"},
    EXT_METHOD("connect", ep_connect,
               XFER_DOC("connect(remote_ip_addr, remote_gpu_idx, "
                        "remote_port=-1) or connect(metadata)",
                        "(ok, conn_id)")),
    {"accept", (PyCFunction)ep_accept, METH_NOARGS,
     "accept() -> (ok, remote_ip, remote_gpu_idx, conn_id)"},
    EXT_METHOD("reg", ep_reg, XFER_DOC("reg(ptr, size)", "(ok, mr_id)")),
    EXT_METHOD("regv", ep_regv,
               XFER_DOC("regv(ptrs, sizes)", "(ok, [mr_id, ...])")),
    EXT_METHOD("dereg", ep_dereg, XFER_DOC("dereg(mr_id)", "ok")),
    EXT_METHOD("send", ext_send,
               XFER_DOC("send(conn_id, mr_id, ptr, size)", "ok")),
    EXT_METHOD("recv", ext_recv,
               XFER_DOC("recv(conn_id, mr_id, ptr, size)", "ok; size is a "
                        "capacity")),
    EXT_METHOD("send_async", ext_send_async,
               XFER_DOC("send_async(conn_id, mr_id, ptr, size)",
                        "(ok, transfer_id)")),
    EXT_METHOD("recv_async", ext_recv_async,
               XFER_DOC("recv_async(conn_id, mr_id, ptr, size)",
                        "(ok, transfer_id)")),
    EXT_METHOD("sendv", ext_sendv,
               XFER_DOC("sendv(conn_id, mr_id_v, data_ptr_v, size_v, "
                        "num_iovs)", "ok")),
    EXT_METHOD("recvv", ext_recvv,
               XFER_DOC("recvv(conn_id, mr_id_v, data_ptr_v, size_v, "
                        "num_iovs)", "ok")),
    EXT_METHOD("sendv_async", ext_sendv_async,
               XFER_DOC("sendv_async(conn_id, mr_id_v, data_ptr_v, size_v, "
                        "num_iovs)", "(ok, transfer_id)")),
    EXT_METHOD("recvv_async", ext_recvv_async,
               XFER_DOC("recvv_async(conn_id, mr_id_v, data_ptr_v, size_v, "
                        "num_iovs)", "(ok, transfer_id)")),
    EXT_METHOD("advertise", ext_advertise,
               XFER_DOC("advertise(conn_id, mr_id, ptr, size)",
                        "(ok, meta: 64 bytes); (False, b'') on failure")),
    EXT_METHOD("advertisev", ext_advertisev,
               XFER_DOC("advertisev(conn_id, mr_id_v, ptr_v, size_v, "
                        "num_iovs)", "(ok, [meta, ...])")),
    EXT_METHOD("read", ext_read,
               XFER_DOC("read(conn_id, mr_id, ptr, size, meta)", "ok")),
    EXT_METHOD("read_async", ext_read_async,
               XFER_DOC("read_async(conn_id, mr_id, ptr, size, meta)",
                        "(ok, transfer_id)")),
    EXT_METHOD("readv", ext_readv,
               XFER_DOC("readv(conn_id, mr_id_v, ptr_v, size_v, meta_blob_v, "
                        "num_iovs)", "ok")),
    EXT_METHOD("readv_async", ext_readv_async,
               XFER_DOC("readv_async(conn_id, mr_id_v, ptr_v, size_v, "
                        "meta_blob_v, num_iovs)", "(ok, transfer_id)")),
    EXT_METHOD("write", ext_write,
               XFER_DOC("write(conn_id, mr_id, ptr, size, meta)", "ok")),
    EXT_METHOD("write_async", ext_write_async,
               XFER_DOC("write_async(conn_id, mr_id, ptr, size, meta)",
                        "(ok, transfer_id)")),
    EXT_METHOD("writev", ext_writev,
               XFER_DOC("writev(conn_id, mr_id_v, ptr_v, size_v, "
                        "meta_blob_v, num_iovs)", "ok")),
    EXT_METHOD("writev_async", ext_writev_async,
               XFER_DOC("writev_async(conn_id, mr_id_v, ptr_v, size_v, "
                        "meta_blob_v, num_iovs)", "(ok, transfer_id)")),
    EXT_METHOD("poll_async", ext_poll_async,
               XFER_DOC("poll_async(transfer_id)",
                        "(ok, is_done); a failed transfer gives (False, "
                        "True)")),
    EXT_METHOD("connect_local", ext_connect_local,
               XFER_DOC("connect_local(remote_gpu_idx)", "(ok, conn_id)")),
    {"accept_local", (PyCFunction)(void (*)(void))ext_accept_local,
     METH_VARARGS | METH_KEYWORDS,
     "accept_local() -> (ok, remote_gpu_idx, conn_id)"},
    EXT_METHOD("send_ipc", ext_send_ipc,
               XFER_DOC("send_ipc(conn_id, ptr, size)", "ok")),
    EXT_METHOD("recv_ipc", ext_recv_ipc,
               XFER_DOC("recv_ipc(conn_id, ptr, size)", "ok")),
    EXT_METHOD("send_ipc_async", ext_send_ipc_async,
               XFER_DOC("send_ipc_async(conn_id, ptr, size)",
                        "(ok, transfer_id)")),
    EXT_METHOD("recv_ipc_async", ext_recv_ipc_async,
               XFER_DOC("recv_ipc_async(conn_id, ptr, size)",
                        "(ok, transfer_id)")),
    EXT_METHOD("write_ipc", ext_write_ipc,
               XFER_DOC("write_ipc(conn_id, ptr, size, info)", "ok")),
    EXT_METHOD("read_ipc", ext_read_ipc,
               XFER_DOC("read_ipc(conn_id, ptr, size, info)", "ok")),
    EXT_METHOD("write_ipc_async", ext_write_ipc_async,
               XFER_DOC("write_ipc_async(conn_id, ptr, size, info)",
                        "(ok, transfer_id)")),
    EXT_METHOD("read_ipc_async", ext_read_ipc_async,
               XFER_DOC("read_ipc_async(conn_id, ptr, size, info)",
                        "(ok, transfer_id)")),
    EXT_METHOD("advertise_ipc", ext_advertise_ipc,
               XFER_DOC("advertise_ipc(conn_id, ptr, size)", "(ok, info)")),
    EXT_METHOD("advertisev_ipc", ext_advertisev_ipc,
               XFER_DOC("advertisev_ipc(conn_id, ptr_v, size_v)",
                        "(ok, [info, ...])")),
    EXT_METHOD("get_stats", ep_get_stats,
               XFER_DOC("get_stats(conn_id)",
                        "dict of the connection's counters (bytes_sent, "
                        "bytes_received, ops_completed, ops_failed, "
                        "ops_timed_out, timeouts, retries, stream_resets, "
                        "pings_sent, pings_received, last_heard_ms, state, "
                        "peer); None for an unknown conn_id")),
    EXT_METHOD("conn_id_of_rank", ep_conn_id_of_rank,
               XFER_DOC("conn_id_of_rank(rank)",
                        "conn id (2**64-1 if none)")),
    EXT_METHOD("set_conn_id_of_rank", ep_set_conn_id_of_rank,
               XFER_DOC("set_conn_id_of_rank(rank, conn_id)",
                        "None (used by uccl.collective)")),
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef endpoint_getset[] = {
    {"local_gpu_idx", (getter)ep_local_gpu_idx, NULL,
     "The GPU index given at creation.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject ext_endpoint_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tcpx_p2p.Endpoint",
    .tp_basicsize = sizeof(EndpointObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Endpoint(local_gpu_idx, num_cpus, *, plugin=None, "
              "ifname=None,\n         auth_token=None, timeout_ms=None, "
              "op_timeout_ms=None,\n         listen_port=None, "
              "chunk_size=None)\n\n"
              "A tcpx-p2p endpoint with UCCL P2P's API; it listens at once.\n"
              "num_cpus is the number of progress threads. The keyword-only\n"
              "options override p2p_options (include/tcpx_p2p.h).",
    .tp_new = endpoint_new,
    .tp_dealloc = (destructor)endpoint_dealloc,
    .tp_repr = (reprfunc)endpoint_repr,
    .tp_methods = endpoint_methods,
    .tp_getset = endpoint_getset,
};
