/* Same-host calls of UCCL's API: connect_local/accept_local (unix socket)
 * and the *_ipc transfers (CUDA IPC for GPU buffers, the connection for
 * host buffers). No memory registration is involved: the library trusts
 * ptr/size as UCCL does. Info blobs are P2P_IPC_INFO_SIZE bytes, opaque. */
#include "_ext.h"

#include <limits.h>
#include <string.h>

/* ---- connections ------------------------------------------------------- */

PyObject *ext_connect_local(EndpointObject *self, PyObject *args,
                            PyObject *kw) {
  static char *kwlist[] = {"remote_gpu_idx", NULL};
  PyObject *gpu_obj;
  int gpu;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:connect_local", kwlist,
                                   &gpu_obj) ||
      arg_int(gpu_obj, "connect_local", "remote_gpu_idx", INT_MIN, INT_MAX,
              &gpu) < 0)
    return NULL;
  uint64_t conn_id = 0;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_connect_local(self->ep, gpu, &conn_id);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) {
    ext_log_failure("connect_local", rc);
    conn_id = 0;
  }
  return ext_pair(rc == P2P_OK, PyLong_FromUnsignedLongLong(conn_id));
}

PyObject *ext_accept_local(EndpointObject *self, PyObject *args,
                           PyObject *kw) {
  static char *kwlist[] = {NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kw, ":accept_local", kwlist))
    return NULL;
  int gpu = -1, rc;
  uint64_t conn_id = 0;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_accept_local(self->ep, &gpu, &conn_id);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) {
    ext_log_failure("accept_local", rc);
    return Py_BuildValue("(Oii)", Py_False, -1, 0);
  }
  return Py_BuildValue("(OiK)", Py_True, gpu, (unsigned long long)conn_id);
}

/* ---- transfers ----------------------------------------------------------- */

typedef struct ipc_args {
  uint64_t conn_id;
  void *ptr;
  size_t size;
  uint8_t info[P2P_IPC_INFO_SIZE];
} ipc_args;

/* (conn_id, ptr, size) and, with `with_info`, (..., info). */
static int parse_ipc(PyObject *args, PyObject *kw, const char *fn,
                     int with_info, ipc_args *a) {
  static char *kw_plain[] = {"conn_id", "ptr", "size", NULL};
  static char *kw_info[] = {"conn_id", "ptr", "size", "info", NULL};
  PyObject *conn, *ptr, *size, *info = NULL;
  char fmt[64];
  snprintf(fmt, sizeof fmt, "OOO%s:%s", with_info ? "O" : "", fn);
  memset(a, 0, sizeof *a);
  if (!PyArg_ParseTupleAndKeywords(args, kw, fmt,
                                   with_info ? kw_info : kw_plain, &conn,
                                   &ptr, &size, &info))
    return -1;
  if (arg_u64(conn, fn, "conn_id", &a->conn_id) < 0 ||
      arg_ptr(ptr, fn, "ptr", &a->ptr) < 0 ||
      arg_size(size, fn, "size", &a->size) < 0)
    return -1;
  return with_info ? arg_blob(info, fn, "info", a->info, P2P_IPC_INFO_SIZE)
                   : 0;
}

static int call_ipc(p2p_endpoint *ep, p2p_ipc_kind kind, const ipc_args *a) {
  switch (kind) {
  case P2P_IPC_SEND: return p2p_send_ipc(ep, a->conn_id, a->ptr, a->size);
  case P2P_IPC_RECV: return p2p_recv_ipc(ep, a->conn_id, a->ptr, a->size);
  case P2P_IPC_WRITE:
    return p2p_write_ipc(ep, a->conn_id, a->ptr, a->size, a->info);
  case P2P_IPC_READ:
    return p2p_read_ipc(ep, a->conn_id, a->ptr, a->size, a->info);
  }
  return P2P_EINVAL;
}

static int has_info(p2p_ipc_kind kind) {
  return kind == P2P_IPC_WRITE || kind == P2P_IPC_READ;
}

/* The blocking form: ok. */
static PyObject *blocking_ipc(EndpointObject *self, PyObject *args,
                              PyObject *kw, p2p_ipc_kind kind,
                              const char *fn) {
  ipc_args a;
  if (parse_ipc(args, kw, fn, has_info(kind), &a) < 0) return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = call_ipc(self->ep, kind, &a);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) ext_log_failure(fn, rc);
  return PyBool_FromLong(rc == P2P_OK);
}

/* The async form: (ok, transfer_id), polled with poll_async. */
static PyObject *post_ipc(EndpointObject *self, PyObject *args, PyObject *kw,
                          p2p_ipc_kind kind, const char *fn) {
  ipc_args a;
  if (parse_ipc(args, kw, fn, has_info(kind), &a) < 0) return NULL;
  uint64_t xfer_id = 0;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_post_ipc(self->ep, a.conn_id, kind, a.ptr, a.size,
                    has_info(kind) ? a.info : NULL, &xfer_id);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) {
    ext_log_failure(fn, rc);
    xfer_id = 0;
  }
  return ext_pair(rc == P2P_OK, PyLong_FromUnsignedLongLong(xfer_id));
}

PyObject *ext_send_ipc(EndpointObject *self, PyObject *args, PyObject *kw) {
  return blocking_ipc(self, args, kw, P2P_IPC_SEND, "send_ipc");
}

PyObject *ext_recv_ipc(EndpointObject *self, PyObject *args, PyObject *kw) {
  return blocking_ipc(self, args, kw, P2P_IPC_RECV, "recv_ipc");
}

PyObject *ext_write_ipc(EndpointObject *self, PyObject *args, PyObject *kw) {
  return blocking_ipc(self, args, kw, P2P_IPC_WRITE, "write_ipc");
}

PyObject *ext_read_ipc(EndpointObject *self, PyObject *args, PyObject *kw) {
  return blocking_ipc(self, args, kw, P2P_IPC_READ, "read_ipc");
}

PyObject *ext_send_ipc_async(EndpointObject *self, PyObject *args,
                             PyObject *kw) {
  return post_ipc(self, args, kw, P2P_IPC_SEND, "send_ipc_async");
}

PyObject *ext_recv_ipc_async(EndpointObject *self, PyObject *args,
                             PyObject *kw) {
  return post_ipc(self, args, kw, P2P_IPC_RECV, "recv_ipc_async");
}

PyObject *ext_write_ipc_async(EndpointObject *self, PyObject *args,
                              PyObject *kw) {
  return post_ipc(self, args, kw, P2P_IPC_WRITE, "write_ipc_async");
}

PyObject *ext_read_ipc_async(EndpointObject *self, PyObject *args,
                             PyObject *kw) {
  return post_ipc(self, args, kw, P2P_IPC_READ, "read_ipc_async");
}

/* ---- advertise ------------------------------------------------------------ */

PyObject *ext_advertise_ipc(EndpointObject *self, PyObject *args,
                            PyObject *kw) {
  ipc_args a;
  if (parse_ipc(args, kw, "advertise_ipc", 0, &a) < 0) return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_advertise_ipc(self->ep, a.conn_id, a.ptr, a.size, a.info);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) {
    ext_log_failure("advertise_ipc", rc);
    return ext_pair(0, PyBytes_FromStringAndSize("", 0));
  }
  return ext_pair(1, PyBytes_FromStringAndSize((const char *)a.info,
                                               P2P_IPC_INFO_SIZE));
}

/* Advertise each buffer; stops at the first failure. */
static int advertise_all(p2p_endpoint *ep, uint64_t conn_id, void **ptrs,
                         const size_t *sizes, size_t n, uint8_t *infos,
                         size_t *failed_at) {
  for (size_t i = 0; i < n; i++) {
    int rc = p2p_advertise_ipc(ep, conn_id, ptrs[i], sizes[i],
                               infos + i * P2P_IPC_INFO_SIZE);
    if (rc != P2P_OK) {
      *failed_at = i;
      return rc;
    }
  }
  return P2P_OK;
}

static PyObject *infos_to_list(const uint8_t *infos, size_t n) {
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; list && i < n; i++) {
    PyObject *b = PyBytes_FromStringAndSize(
        (const char *)infos + i * P2P_IPC_INFO_SIZE, P2P_IPC_INFO_SIZE);
    if (!b) Py_CLEAR(list);
    else PyList_SET_ITEM(list, (Py_ssize_t)i, b);
  }
  return list;
}

static PyObject *advertisev_call(EndpointObject *self, uint64_t conn_id,
                                 void **ptrs, size_t *sizes, size_t n) {
  uint8_t *infos = PyMem_Calloc(n + 1, P2P_IPC_INFO_SIZE);
  if (!infos) return PyErr_NoMemory();
  size_t failed_at = 0;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = advertise_all(self->ep, conn_id, ptrs, sizes, n, infos, &failed_at);
  Py_END_ALLOW_THREADS
  PyObject *r;
  if (rc != P2P_OK) {
    char call[64];
    snprintf(call, sizeof call, "advertisev_ipc (buffer %zu)", failed_at);
    ext_log_failure(call, rc);
    r = ext_pair(0, PyList_New(0));
  } else {
    r = ext_pair(1, infos_to_list(infos, n));
  }
  PyMem_Free(infos);
  return r;
}

PyObject *ext_advertisev_ipc(EndpointObject *self, PyObject *args,
                             PyObject *kw) {
  static char *kwlist[] = {"conn_id", "ptr_v", "size_v", NULL};
  PyObject *conn, *ptr_v, *size_v;
  uint64_t conn_id;
  void **ptrs = NULL;
  size_t *sizes = NULL, n_ptrs = 0, n_sizes = 0;
  PyObject *r = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO:advertisev_ipc", kwlist,
                                   &conn, &ptr_v, &size_v) ||
      arg_u64(conn, "advertisev_ipc", "conn_id", &conn_id) < 0 ||
      arg_ptr_list(ptr_v, "advertisev_ipc", "ptr_v", &ptrs, &n_ptrs) < 0 ||
      arg_size_list(size_v, "advertisev_ipc", "size_v", &sizes, &n_sizes) < 0)
    goto out;
  if (n_ptrs != n_sizes) {
    PyErr_Format(ext_argument_error,
                 "advertisev_ipc(): ptr_v and size_v must match (%zu vs %zu)",
                 n_ptrs, n_sizes);
    goto out;
  }
  r = advertisev_call(self, conn_id, ptrs, sizes, n_ptrs);
out:
  PyMem_Free(ptrs);
  PyMem_Free(sizes);
  return r;
}
