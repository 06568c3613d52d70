/* Same-host calls of UCCL's API (unix-socket connections, CUDA IPC). The
 * C library does not offer them yet: each checks its arguments like the
 * real call would (TypeError, ArgumentError), logs that it is not
 * implemented, and returns the failure shape of its UCCL result. */
#include "_ext.h"

#include <limits.h>

static void log_not_implemented(const char *fn) {
  ext_log_message("%s failed: not implemented yet in tcpx-p2p (same-host "
                  "IPC path); use connect()/accept() and the network "
                  "calls instead",
                  fn);
}

/* (conn_id, ptr, size) and, with `with_info`, (..., info). */
static int parse_ipc(PyObject *args, PyObject *kw, const char *fn,
                     int with_info) {
  static char *kw_plain[] = {"conn_id", "ptr", "size", NULL};
  static char *kw_info[] = {"conn_id", "ptr", "size", "info", NULL};
  PyObject *conn, *ptr, *size, *info = NULL;
  char fmt[64];
  snprintf(fmt, sizeof fmt, "OOO%s:%s", with_info ? "O" : "", fn);
  if (!PyArg_ParseTupleAndKeywords(args, kw, fmt,
                                   with_info ? kw_info : kw_plain, &conn,
                                   &ptr, &size, &info))
    return -1;
  uint64_t conn_id;
  void *p;
  size_t n;
  if (arg_u64(conn, fn, "conn_id", &conn_id) < 0 ||
      arg_ptr(ptr, fn, "ptr", &p) < 0 || arg_size(size, fn, "size", &n) < 0)
    return -1;
  if (with_info && (PyUnicode_Check(info) || !PyObject_CheckBuffer(info))) {
    PyErr_Format(PyExc_TypeError, "%s(): argument 'info' must be bytes, not "
                 "%.100s", fn, Py_TYPE(info)->tp_name);
    return -1;
  }
  return 0;
}

static PyObject *failed_ok(const char *fn) {
  log_not_implemented(fn);
  Py_RETURN_FALSE;
}

static PyObject *failed_pair(const char *fn, PyObject *value) {
  log_not_implemented(fn);
  return ext_pair(0, value);
}

PyObject *ext_connect_local(EndpointObject *self, PyObject *args,
                            PyObject *kw) {
  (void)self;
  static char *kwlist[] = {"remote_gpu_idx", NULL};
  PyObject *gpu_obj;
  int gpu;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:connect_local", kwlist,
                                   &gpu_obj) ||
      arg_int(gpu_obj, "connect_local", "remote_gpu_idx", INT_MIN, INT_MAX,
              &gpu) < 0)
    return NULL;
  return failed_pair("connect_local", PyLong_FromLong(0));
}

PyObject *ext_accept_local(EndpointObject *self, PyObject *args,
                           PyObject *kw) {
  (void)self;
  static char *kwlist[] = {NULL};
  if (!PyArg_ParseTupleAndKeywords(args, kw, ":accept_local", kwlist))
    return NULL;
  log_not_implemented("accept_local");
  return Py_BuildValue("(Oii)", Py_False, -1, 0);
}

PyObject *ext_send_ipc(EndpointObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  if (parse_ipc(args, kw, "send_ipc", 0) < 0) return NULL;
  return failed_ok("send_ipc");
}

PyObject *ext_recv_ipc(EndpointObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  if (parse_ipc(args, kw, "recv_ipc", 0) < 0) return NULL;
  return failed_ok("recv_ipc");
}

PyObject *ext_send_ipc_async(EndpointObject *self, PyObject *args,
                             PyObject *kw) {
  (void)self;
  if (parse_ipc(args, kw, "send_ipc_async", 0) < 0) return NULL;
  return failed_pair("send_ipc_async", PyLong_FromLong(0));
}

PyObject *ext_recv_ipc_async(EndpointObject *self, PyObject *args,
                             PyObject *kw) {
  (void)self;
  if (parse_ipc(args, kw, "recv_ipc_async", 0) < 0) return NULL;
  return failed_pair("recv_ipc_async", PyLong_FromLong(0));
}

PyObject *ext_write_ipc(EndpointObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  if (parse_ipc(args, kw, "write_ipc", 1) < 0) return NULL;
  return failed_ok("write_ipc");
}

PyObject *ext_read_ipc(EndpointObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  if (parse_ipc(args, kw, "read_ipc", 1) < 0) return NULL;
  return failed_ok("read_ipc");
}

PyObject *ext_write_ipc_async(EndpointObject *self, PyObject *args,
                              PyObject *kw) {
  (void)self;
  if (parse_ipc(args, kw, "write_ipc_async", 1) < 0) return NULL;
  return failed_pair("write_ipc_async", PyLong_FromLong(0));
}

PyObject *ext_read_ipc_async(EndpointObject *self, PyObject *args,
                             PyObject *kw) {
  (void)self;
  if (parse_ipc(args, kw, "read_ipc_async", 1) < 0) return NULL;
  return failed_pair("read_ipc_async", PyLong_FromLong(0));
}

PyObject *ext_advertise_ipc(EndpointObject *self, PyObject *args,
                            PyObject *kw) {
  (void)self;
  if (parse_ipc(args, kw, "advertise_ipc", 0) < 0) return NULL;
  return failed_pair("advertise_ipc", PyBytes_FromStringAndSize("", 0));
}

PyObject *ext_advertisev_ipc(EndpointObject *self, PyObject *args,
                             PyObject *kw) {
  (void)self;
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
  r = failed_pair("advertisev_ipc", PyList_New(0));
out:
  PyMem_Free(ptrs);
  PyMem_Free(sizes);
  return r;
}
