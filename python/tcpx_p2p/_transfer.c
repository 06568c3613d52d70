/* Data movement: two-sided send/recv, one-sided advertise/read/write, the
 * vectored forms, the async forms and poll_async. Arguments are parsed into
 * one xfer_args shape; each call then runs with the GIL released. */
#include "_ext.h"

#include <sched.h>
#include <string.h>

/* ---- argument shapes -------------------------------------------------- */

void xfer_args_free(xfer_args *x) {
  if (x->owns_arrays) {
    PyMem_Free(x->mr_ids);
    PyMem_Free(x->ptrs);
    PyMem_Free(x->sizes);
    PyMem_Free(x->descs);
  }
  memset(x, 0, sizeof *x);
}

/* (conn_id, mr_id, ptr, size) or, with `with_meta`, (..., meta). */
static int parse_single(PyObject *args, PyObject *kw, const char *fn,
                        int with_meta, xfer_args *x) {
  static char *kw_plain[] = {"conn_id", "mr_id", "ptr", "size", NULL};
  static char *kw_meta[] = {"conn_id", "mr_id", "ptr", "size", "meta", NULL};
  PyObject *conn, *mr, *ptr, *size, *meta = NULL;
  char fmt[64];
  snprintf(fmt, sizeof fmt, "OOOO%s:%s", with_meta ? "O" : "", fn);
  memset(x, 0, sizeof *x);
  if (!PyArg_ParseTupleAndKeywords(args, kw, fmt,
                                   with_meta ? kw_meta : kw_plain, &conn, &mr,
                                   &ptr, &size, &meta))
    return -1;
  x->n = 1;
  x->mr_ids = &x->mr1;
  x->ptrs = &x->ptr1;
  x->sizes = &x->size1;
  if (arg_u64(conn, fn, "conn_id", &x->conn_id) < 0 ||
      arg_u64(mr, fn, "mr_id", &x->mr1) < 0 ||
      arg_ptr(ptr, fn, "ptr", &x->ptr1) < 0 ||
      arg_size(size, fn, "size", &x->size1) < 0)
    return -1;
  if (!with_meta) return 0;
  x->descs = x->desc1;
  return arg_blob(meta, fn, "meta", x->desc1, P2P_DESC_SIZE);
}

typedef struct vec_objs {
  PyObject *conn, *mr_v, *ptr_v, *size_v, *meta_v, *num_iovs;
} vec_objs;

/* The lists of a vectored call, converted; lengths checked against
 * num_iovs (ArgumentError, as UCCL's RuntimeError). */
static int convert_lists(const vec_objs *o, const char *fn,
                         const char *ptr_name, xfer_args *x) {
  size_t num_iovs, lens[3];
  const char *names[3] = {"mr_id_v", ptr_name, "size_v"};
  x->owns_arrays = 1;
  if (arg_u64(o->conn, fn, "conn_id", &x->conn_id) < 0 ||
      arg_u64_list(o->mr_v, fn, "mr_id_v", &x->mr_ids, &lens[0]) < 0 ||
      arg_ptr_list(o->ptr_v, fn, ptr_name, &x->ptrs, &lens[1]) < 0 ||
      arg_size_list(o->size_v, fn, "size_v", &x->sizes, &lens[2]) < 0 ||
      arg_size(o->num_iovs, fn, "num_iovs", &num_iovs) < 0 ||
      arg_check_counts(fn, num_iovs, lens, names, 3) < 0)
    return -1;
  x->n = num_iovs;
  if (!o->meta_v) return 0;
  return arg_blob_list(o->meta_v, fn, "meta_blob_v", x->n, P2P_DESC_SIZE,
                       &x->descs);
}

/* (conn_id, mr_id_v, <ptr_name>, size_v, [meta_blob_v,] num_iovs). */
static int parse_vector(PyObject *args, PyObject *kw, const char *fn,
                        const char *ptr_name, int with_meta, xfer_args *x) {
  char *kw_plain[] = {"conn_id", "mr_id_v", (char *)ptr_name, "size_v",
                      "num_iovs", NULL};
  char *kw_meta[] = {"conn_id", "mr_id_v", (char *)ptr_name, "size_v",
                     "meta_blob_v", "num_iovs", NULL};
  vec_objs o = {0};
  char fmt[64];
  snprintf(fmt, sizeof fmt, "OOOOO%s:%s", with_meta ? "O" : "", fn);
  memset(x, 0, sizeof *x);
  int parsed = with_meta
      ? PyArg_ParseTupleAndKeywords(args, kw, fmt, kw_meta, &o.conn, &o.mr_v,
                                    &o.ptr_v, &o.size_v, &o.meta_v,
                                    &o.num_iovs)
      : PyArg_ParseTupleAndKeywords(args, kw, fmt, kw_plain, &o.conn,
                                    &o.mr_v, &o.ptr_v, &o.size_v,
                                    &o.num_iovs);
  if (!parsed) return -1;
  if (convert_lists(&o, fn, ptr_name, x) < 0) {
    xfer_args_free(x);
    return -1;
  }
  return 0;
}

/* ---- blocking calls ------------------------------------------------------ */

static int call_single(p2p_endpoint *ep, p2p_op_kind kind, const xfer_args *x) {
  switch (kind) {
  case P2P_OP_SEND:
    return p2p_send(ep, x->conn_id, x->mr1, x->ptr1, x->size1);
  case P2P_OP_RECV:
    return p2p_recv(ep, x->conn_id, x->mr1, x->ptr1, x->size1, NULL);
  case P2P_OP_READ:
    return p2p_read(ep, x->conn_id, x->mr1, x->ptr1, x->size1, x->desc1);
  case P2P_OP_WRITE:
    return p2p_write(ep, x->conn_id, x->mr1, x->ptr1, x->size1, x->desc1);
  }
  return P2P_EINVAL;
}

static int call_vector(p2p_endpoint *ep, p2p_op_kind kind, const xfer_args *x) {
  switch (kind) {
  case P2P_OP_SEND:
    return p2p_sendv(ep, x->conn_id, x->mr_ids, x->ptrs, x->sizes, x->n);
  case P2P_OP_RECV:
    return p2p_recvv(ep, x->conn_id, x->mr_ids, x->ptrs, x->sizes, x->n,
                     NULL);
  case P2P_OP_READ:
    return p2p_readv(ep, x->conn_id, x->mr_ids, x->ptrs, x->sizes, x->descs,
                     x->n);
  case P2P_OP_WRITE:
    return p2p_writev(ep, x->conn_id, x->mr_ids, x->ptrs, x->sizes, x->descs,
                      x->n);
  }
  return P2P_EINVAL;
}

/* Run a parsed blocking call, free its arguments, return ok. */
static PyObject *run_blocking(EndpointObject *self, p2p_op_kind kind,
                              int vector, xfer_args *x, const char *fn) {
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = vector ? call_vector(self->ep, kind, x) : call_single(self->ep, kind, x);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) ext_log_failure(fn, rc);
  xfer_args_free(x);
  return PyBool_FromLong(rc == P2P_OK);
}

static PyObject *blocking_single(EndpointObject *self, PyObject *args,
                                 PyObject *kw, p2p_op_kind kind,
                                 const char *fn) {
  int with_meta = kind == P2P_OP_READ || kind == P2P_OP_WRITE;
  xfer_args x;
  if (parse_single(args, kw, fn, with_meta, &x) < 0) return NULL;
  return run_blocking(self, kind, 0, &x, fn);
}

static PyObject *blocking_vector(EndpointObject *self, PyObject *args,
                                 PyObject *kw, p2p_op_kind kind,
                                 const char *fn) {
  int one_sided = kind == P2P_OP_READ || kind == P2P_OP_WRITE;
  xfer_args x;
  if (parse_vector(args, kw, fn, one_sided ? "ptr_v" : "data_ptr_v",
                   one_sided, &x) < 0)
    return NULL;
  return run_blocking(self, kind, 1, &x, fn);
}

PyObject *ext_send(EndpointObject *self, PyObject *args, PyObject *kw) {
  return blocking_single(self, args, kw, P2P_OP_SEND, "send");
}

PyObject *ext_recv(EndpointObject *self, PyObject *args, PyObject *kw) {
  return blocking_single(self, args, kw, P2P_OP_RECV, "recv");
}

PyObject *ext_read(EndpointObject *self, PyObject *args, PyObject *kw) {
  return blocking_single(self, args, kw, P2P_OP_READ, "read");
}

PyObject *ext_write(EndpointObject *self, PyObject *args, PyObject *kw) {
  return blocking_single(self, args, kw, P2P_OP_WRITE, "write");
}

PyObject *ext_sendv(EndpointObject *self, PyObject *args, PyObject *kw) {
  return blocking_vector(self, args, kw, P2P_OP_SEND, "sendv");
}

PyObject *ext_recvv(EndpointObject *self, PyObject *args, PyObject *kw) {
  return blocking_vector(self, args, kw, P2P_OP_RECV, "recvv");
}

PyObject *ext_readv(EndpointObject *self, PyObject *args, PyObject *kw) {
  return blocking_vector(self, args, kw, P2P_OP_READ, "readv");
}

PyObject *ext_writev(EndpointObject *self, PyObject *args, PyObject *kw) {
  return blocking_vector(self, args, kw, P2P_OP_WRITE, "writev");
}

/* ---- asynchronous calls --------------------------------------------------- */

/* p2p_post the parsed transfer; (ok, transfer_id), (False, 0) on failure. */
static PyObject *run_post(EndpointObject *self, p2p_op_kind kind,
                          xfer_args *x, const char *fn) {
  p2p_iov one, *iov = &one;
  if (x->n > 1 && !(iov = PyMem_Calloc(x->n, sizeof *iov))) {
    xfer_args_free(x);
    return PyErr_NoMemory();
  }
  for (size_t i = 0; i < x->n; i++) {
    iov[i].mr_id = x->mr_ids[i];
    iov[i].ptr = x->ptrs[i];
    iov[i].size = x->sizes[i];
    iov[i].desc = x->descs ? x->descs + i * P2P_DESC_SIZE : NULL;
  }
  uint64_t xfer_id = 0;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_post(self->ep, x->conn_id, kind, iov, x->n, &xfer_id);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) {
    ext_log_failure(fn, rc);
    xfer_id = 0;
  }
  if (iov != &one) PyMem_Free(iov);
  xfer_args_free(x);
  return ext_pair(rc == P2P_OK, PyLong_FromUnsignedLongLong(xfer_id));
}

static PyObject *post_single(EndpointObject *self, PyObject *args,
                             PyObject *kw, p2p_op_kind kind, const char *fn) {
  int with_meta = kind == P2P_OP_READ || kind == P2P_OP_WRITE;
  xfer_args x;
  if (parse_single(args, kw, fn, with_meta, &x) < 0) return NULL;
  return run_post(self, kind, &x, fn);
}

static PyObject *post_vector(EndpointObject *self, PyObject *args,
                             PyObject *kw, p2p_op_kind kind, const char *fn) {
  int one_sided = kind == P2P_OP_READ || kind == P2P_OP_WRITE;
  xfer_args x;
  if (parse_vector(args, kw, fn, one_sided ? "ptr_v" : "data_ptr_v",
                   one_sided, &x) < 0)
    return NULL;
  return run_post(self, kind, &x, fn);
}

PyObject *ext_send_async(EndpointObject *self, PyObject *args, PyObject *kw) {
  return post_single(self, args, kw, P2P_OP_SEND, "send_async");
}

PyObject *ext_recv_async(EndpointObject *self, PyObject *args, PyObject *kw) {
  return post_single(self, args, kw, P2P_OP_RECV, "recv_async");
}

PyObject *ext_read_async(EndpointObject *self, PyObject *args, PyObject *kw) {
  return post_single(self, args, kw, P2P_OP_READ, "read_async");
}

PyObject *ext_write_async(EndpointObject *self, PyObject *args, PyObject *kw) {
  return post_single(self, args, kw, P2P_OP_WRITE, "write_async");
}

PyObject *ext_sendv_async(EndpointObject *self, PyObject *args, PyObject *kw) {
  return post_vector(self, args, kw, P2P_OP_SEND, "sendv_async");
}

PyObject *ext_recvv_async(EndpointObject *self, PyObject *args, PyObject *kw) {
  return post_vector(self, args, kw, P2P_OP_RECV, "recvv_async");
}

PyObject *ext_readv_async(EndpointObject *self, PyObject *args, PyObject *kw) {
  return post_vector(self, args, kw, P2P_OP_READ, "readv_async");
}

PyObject *ext_writev_async(EndpointObject *self, PyObject *args,
                           PyObject *kw) {
  return post_vector(self, args, kw, P2P_OP_WRITE, "writev_async");
}

/* (True, done) while fine; (False, True) once the transfer failed or is
 * unknown, so that `while not done` loops end. A transfer reported done is
 * forgotten by the library: polling it again gives (False, True). */
PyObject *ext_poll_async(EndpointObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"transfer_id", NULL};
  PyObject *obj;
  uint64_t xfer_id;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O:poll_async", kwlist, &obj) ||
      arg_u64(obj, "poll_async", "transfer_id", &xfer_id) < 0)
    return NULL;
  int done = 0, rc;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_poll(self->ep, xfer_id, &done);
  /* Callers spin on poll_async; when there are fewer cores than spinning
   * threads plus progress threads, let the progress threads run. */
  if (rc == P2P_OK && !done) sched_yield();
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) {
    ext_log_failure("poll_async", rc);
    return ext_pair(0, Py_NewRef(Py_True));
  }
  return ext_pair(1, PyBool_FromLong(done));
}

/* ---- advertise ------------------------------------------------------------ */

PyObject *ext_advertise(EndpointObject *self, PyObject *args, PyObject *kw) {
  xfer_args x;
  if (parse_single(args, kw, "advertise", 0, &x) < 0) return NULL;
  uint8_t desc[P2P_DESC_SIZE] = {0};
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = p2p_advertise(self->ep, x.conn_id, x.mr1, x.ptr1, x.size1, desc);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) {
    ext_log_failure("advertise", rc);
    return ext_pair(0, PyBytes_FromStringAndSize("", 0));
  }
  return ext_pair(1, PyBytes_FromStringAndSize((const char *)desc,
                                               P2P_DESC_SIZE));
}

static PyObject *descs_to_list(const uint8_t *descs, size_t n) {
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; list && i < n; i++) {
    PyObject *b = PyBytes_FromStringAndSize(
        (const char *)descs + i * P2P_DESC_SIZE, P2P_DESC_SIZE);
    if (!b) Py_CLEAR(list);
    else PyList_SET_ITEM(list, (Py_ssize_t)i, b);
  }
  return list;
}

/* Advertise each segment; stops at the first failure. */
static int advertise_all(p2p_endpoint *ep, const xfer_args *x,
                         uint8_t *descs, size_t *failed_at) {
  for (size_t i = 0; i < x->n; i++) {
    int rc = p2p_advertise(ep, x->conn_id, x->mr_ids[i], x->ptrs[i],
                           x->sizes[i], descs + i * P2P_DESC_SIZE);
    if (rc != P2P_OK) {
      *failed_at = i;
      return rc;
    }
  }
  return P2P_OK;
}

PyObject *ext_advertisev(EndpointObject *self, PyObject *args, PyObject *kw) {
  xfer_args x;
  if (parse_vector(args, kw, "advertisev", "ptr_v", 0, &x) < 0) return NULL;
  uint8_t *descs = PyMem_Calloc(x.n + 1, P2P_DESC_SIZE);
  if (!descs) {
    xfer_args_free(&x);
    return PyErr_NoMemory();
  }
  size_t failed_at = 0;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = advertise_all(self->ep, &x, descs, &failed_at);
  Py_END_ALLOW_THREADS
  PyObject *r;
  if (rc != P2P_OK) {
    char call[64];
    snprintf(call, sizeof call, "advertisev (iov %zu)", failed_at);
    ext_log_failure(call, rc);
    r = ext_pair(0, PyList_New(0));
  } else {
    r = ext_pair(1, descs_to_list(descs, x.n));
  }
  PyMem_Free(descs);
  xfer_args_free(&x);
  return r;
}
