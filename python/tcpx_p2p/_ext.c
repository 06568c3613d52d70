/* The module: ArgumentError, the bridge from library failures to Python's
 * logging, and the module-level functions (get_oob_ip, _buffer_address). */
#include "_ext.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

PyObject *ext_argument_error;
static PyObject *logger; /* logging.getLogger("tcpx_p2p") */

/* ---- logging ------------------------------------------------------------ */

/* logger.error("%s", text). A failing handler must not turn a returned
 * ok=False into an exception, so any error here is dropped, and an
 * exception already pending is kept. */
static void log_error_text(const char *text) {
  if (!logger) return;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyObject *r = PyObject_CallMethod(logger, "error", "ss", "%s", text);
  Py_XDECREF(r);
  if (!r) PyErr_Clear();
  PyErr_Restore(type, value, tb);
}

void ext_log_failure(const char *call, int rc) {
  char text[1024];
  snprintf(text, sizeof text, "%s failed: %s: %s", call, p2p_strerror(rc),
           p2p_last_error());
  log_error_text(text);
}

void ext_log_message(const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  log_error_text(text);
}

PyObject *ext_pair(int ok, PyObject *value) {
  if (!value) return NULL;
  PyObject *t = PyTuple_New(2);
  if (!t) {
    Py_DECREF(value);
    return NULL;
  }
  PyTuple_SET_ITEM(t, 0, PyBool_FromLong(ok));
  PyTuple_SET_ITEM(t, 1, value);
  return t;
}

/* ---- get_oob_ip ----------------------------------------------------------- */

/* The address a new endpoint would advertise: that of a short-lived
 * endpoint on the built-in transport (no plugin is loaded for it), with
 * the same interface selection (UCCL_SOCKET_IFNAME, NCCL_SOCKET_IFNAME,
 * TCPX_P2P_* overrides). Every endpoint also takes over the same-host
 * (connect_local) socket path of its GPU index, and removes it when it
 * goes: the probe uses an index no real endpoint has, so that it never
 * takes a real endpoint's path away. */
#define PROBE_GPU_INDEX INT_MIN

static int probe_local_ip(char *ip, size_t ip_len, char *err, size_t err_len) {
  p2p_options opts;
  p2p_options_init(&opts);
  opts.gpu_index = PROBE_GPU_INDEX;
  opts.plugin = "builtin";
  opts.num_threads = 1;
  opts.listen_port = 0;
  p2p_endpoint *ep = NULL;
  int rc = p2p_endpoint_create(&opts, &ep);
  if (rc == P2P_OK) rc = p2p_local_ip(ep, ip, ip_len);
  if (rc != P2P_OK) snprintf(err, err_len, "%s", p2p_last_error());
  p2p_endpoint_destroy(ep);
  return rc;
}

static PyObject *ext_get_oob_ip(PyObject *mod, PyObject *unused) {
  (void)mod, (void)unused;
  char ip[128] = "", err[1024] = "";
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = probe_local_ip(ip, sizeof ip, err, sizeof err);
  Py_END_ALLOW_THREADS
  if (rc != P2P_OK) {
    PyErr_Format(PyExc_RuntimeError, "get_oob_ip: %s: %s", p2p_strerror(rc),
                 err);
    return NULL;
  }
  return PyUnicode_FromString(ip);
}

/* ---- _buffer_address -------------------------------------------------- */

/* (address, nbytes) of a C-contiguous object with the buffer protocol.
 * The address stays valid while the object lives and is not resized. */
static PyObject *ext_buffer_address(PyObject *mod, PyObject *args,
                                    PyObject *kw) {
  (void)mod;
  static char *kwlist[] = {"obj", "writable", NULL};
  PyObject *obj;
  int writable = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|p:_buffer_address", kwlist,
                                   &obj, &writable))
    return NULL;
  if (PyUnicode_Check(obj) || !PyObject_CheckBuffer(obj)) {
    PyErr_Format(PyExc_TypeError,
                 "buffer_ptr(): %.100s has no buffer, data_ptr() or array "
                 "interface",
                 Py_TYPE(obj)->tp_name);
    return NULL;
  }
  Py_buffer view;
  int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
  if (PyObject_GetBuffer(obj, &view, flags) < 0) {
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "buffer_ptr(): %.100s is not a %s",
                 Py_TYPE(obj)->tp_name,
                 writable ? "writable, contiguous buffer" : "contiguous buffer");
    return NULL;
  }
  PyObject *r = Py_BuildValue("(Kn)", (unsigned long long)(uintptr_t)view.buf,
                              view.len);
  PyBuffer_Release(&view);
  return r;
}

/* ---- module ------------------------------------------------------------- */

static PyMethodDef module_methods[] = {
    {"get_oob_ip", ext_get_oob_ip, METH_NOARGS,
     "get_oob_ip() -> str\n\nThe IP address an Endpoint made now would "
     "advertise in its metadata\n(UCCL_SOCKET_IFNAME / NCCL_SOCKET_IFNAME "
     "choose the interface;\n127.0.0.1 on a host with only loopback)."},
    EXT_METHOD("_buffer_address", ext_buffer_address,
               "_buffer_address(obj, writable=False) -> (address, nbytes)\n\n"
               "For objects with the buffer protocol; see "
               "tcpx_p2p.buffer_ptr."),
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tcpx_p2p._ext",
    .m_doc = "C binding of libtcpx_p2p (include/tcpx_p2p.h), shaped like "
             "UCCL P2P.",
    .m_size = -1,
    .m_methods = module_methods,
};

static PyObject *make_argument_error(void) {
  PyObject *bases = PyTuple_Pack(2, PyExc_ValueError, PyExc_RuntimeError);
  if (!bases) return NULL;
  PyObject *e = PyErr_NewExceptionWithDoc(
      "tcpx_p2p.ArgumentError",
      "A bad argument value: a ValueError, and a RuntimeError as UCCL "
      "raises for a meta blob of the wrong length or lists of unequal "
      "length.",
      bases, NULL);
  Py_DECREF(bases);
  return e;
}

static PyObject *make_logger(void) {
  PyObject *logging = PyImport_ImportModule("logging");
  if (!logging) return NULL;
  PyObject *l = PyObject_CallMethod(logging, "getLogger", "s", "tcpx_p2p");
  Py_DECREF(logging);
  return l;
}

static int add_constants(PyObject *m) {
  if (PyModule_AddIntConstant(m, "DESC_SIZE", P2P_DESC_SIZE) < 0) return -1;
  if (PyModule_AddIntConstant(m, "METADATA_MAX", P2P_METADATA_MAX) < 0)
    return -1;
  if (PyModule_AddIntConstant(m, "IPC_INFO_SIZE", P2P_IPC_INFO_SIZE) < 0)
    return -1;
  /* The C library's own string, so Python and C cannot disagree. */
  if (PyModule_AddStringConstant(m, "VERSION", p2p_version()) < 0) return -1;
  return PyModule_AddObject(m, "NO_CONN",
                            PyLong_FromUnsignedLongLong(UINT64_MAX));
}

PyMODINIT_FUNC PyInit__ext(void) {
  if (PyType_Ready(&ext_endpoint_type) < 0) return NULL;
  PyObject *m = PyModule_Create(&module_def);
  if (!m) return NULL;
  if (!ext_argument_error) ext_argument_error = make_argument_error();
  if (!logger) logger = make_logger();
  if (!ext_argument_error || !logger || add_constants(m) < 0) goto fail;
  Py_INCREF(ext_argument_error);
  if (PyModule_AddObject(m, "ArgumentError", ext_argument_error) < 0) {
    Py_DECREF(ext_argument_error);
    goto fail;
  }
  Py_INCREF(&ext_endpoint_type);
  if (PyModule_AddObject(m, "Endpoint", (PyObject *)&ext_endpoint_type) < 0) {
    Py_DECREF(&ext_endpoint_type);
    goto fail;
  }
  return m;
fail:
  Py_DECREF(m);
  return NULL;
}
