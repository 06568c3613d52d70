/* tcpx_p2p._ext: the CPython binding of include/tcpx_p2p.h, shaped like
 * UCCL P2P's `Endpoint` (docs/PYTHON_API.md).
 *
 * Files: _ext.c (module, logging bridge, module functions), _args.c
 * (Python values to C values), _endpoint.c (the Endpoint type, set-up
 * calls), _transfer.c (data movement), _ipc.c (same-host calls, not yet
 * implemented). Conventions:
 * - wrong argument types raise TypeError, bad values ArgumentError (a
 *   ValueError that is also a RuntimeError, as UCCL raises RuntimeError);
 * - a failure of the library returns ok=False and logs p2p_last_error()
 *   through the Python logger "tcpx_p2p";
 * - every call into the library runs with the GIL released. */
#ifndef TCPX_P2P_PY_EXT_H
#define TCPX_P2P_PY_EXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#include "tcpx_p2p.h"

/* ---- module (_ext.c) --------------------------------------------------- */

/* tcpx_p2p.ArgumentError. CPython's single-phase modules keep their
 * exception and type objects in statics; there is one per process. */
extern PyObject *ext_argument_error;

/* Log "<call>: <P2P_E...>: <p2p_last_error()>" at ERROR on the "tcpx_p2p"
 * logger. Call right after the failed library call, on the same thread
 * (the message is thread-local). Never raises. */
void ext_log_failure(const char *call, int rc);
/* Log a message of ours (not from the library) at ERROR. */
void ext_log_message(const char *fmt, ...);

/* Build (ok, value) and similar results; steal `value`. NULL on error. */
PyObject *ext_pair(int ok, PyObject *value);

/* ---- arguments (_args.c) ------------------------------------------------ */

/* Each converter returns 0, or -1 with a Python exception set naming
 * `fn` and `name`. Integers: int or any object with __index__. */
int arg_u64(PyObject *obj, const char *fn, const char *name, uint64_t *out);
int arg_size(PyObject *obj, const char *fn, const char *name, size_t *out);
int arg_ptr(PyObject *obj, const char *fn, const char *name, void **out);
int arg_int(PyObject *obj, const char *fn, const char *name, long long lo,
            long long hi, int *out);
/* A str argument (None allowed when `optional`: *out = NULL). The text
 * lives as long as `obj`. */
int arg_str(PyObject *obj, const char *fn, const char *name, int optional,
            const char **out);
/* A bytes-like object of exactly `len` bytes (RuntimeError otherwise, as
 * UCCL). */
int arg_blob(PyObject *obj, const char *fn, const char *name, uint8_t *out,
             size_t len);
/* A bytes-like object of at most `cap` bytes; *len gets its length. */
int arg_bytes(PyObject *obj, const char *fn, const char *name, uint8_t *out,
              size_t cap, size_t *len);

/* A sequence (list, tuple, array; not str/bytes) of integers. *out is
 * PyMem_Malloc'ed (free with PyMem_Free) and holds *n values. */
int arg_u64_list(PyObject *obj, const char *fn, const char *name,
                 uint64_t **out, size_t *n);
/* The same, converted to pointers / sizes (64-bit targets only). */
int arg_ptr_list(PyObject *obj, const char *fn, const char *name, void ***out,
                 size_t *n);
int arg_size_list(PyObject *obj, const char *fn, const char *name,
                  size_t **out, size_t *n);
/* A sequence of exactly `n` bytes-like objects of `len` bytes each, into
 * a PyMem_Malloc'ed array of n * len bytes. */
int arg_blob_list(PyObject *obj, const char *fn, const char *name, size_t n,
                  size_t len, uint8_t **out);
/* Raise ArgumentError unless every list length equals num_iovs. */
int arg_check_counts(const char *fn, size_t num_iovs, const size_t *lens,
                     const char *const *names, int count);

/* ---- Endpoint (_endpoint.c) -------------------------------------------- */

typedef struct {
  PyObject_HEAD
  p2p_endpoint *ep;
  int gpu_index;
  PyObject *rank_conns;   /* dict rank -> conn id (uccl.collective) */
  PyObject *keep_alive;   /* tuple of the option strings given to create */
} EndpointObject;

extern PyTypeObject ext_endpoint_type;

/* ---- transfers (_transfer.c) -------------------------------------------- */

/* One transfer's arguments: n segments of (mr id, pointer, size) and, for
 * read/write, n descriptors. n == 1 uses the inline storage. */
typedef struct xfer_args {
  uint64_t conn_id;
  size_t n;
  uint64_t *mr_ids;
  void **ptrs;
  size_t *sizes;
  uint8_t *descs;         /* n * P2P_DESC_SIZE, or NULL */
  int owns_arrays;        /* arrays are PyMem_Malloc'ed */
  uint64_t mr1;
  void *ptr1;
  size_t size1;
  uint8_t desc1[P2P_DESC_SIZE];
} xfer_args;

void xfer_args_free(xfer_args *x);

PyObject *ext_send(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_recv(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_sendv(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_recvv(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_advertise(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_advertisev(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_read(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_write(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_readv(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_writev(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_send_async(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_recv_async(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_read_async(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_write_async(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_sendv_async(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_recvv_async(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_readv_async(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_writev_async(EndpointObject *self, PyObject *args,
                           PyObject *kw);
PyObject *ext_poll_async(EndpointObject *self, PyObject *args, PyObject *kw);

/* ---- same-host calls (_ipc.c) ------------------------------------------ */

PyObject *ext_connect_local(EndpointObject *self, PyObject *args,
                            PyObject *kw);
PyObject *ext_accept_local(EndpointObject *self, PyObject *args,
                           PyObject *kw);
PyObject *ext_send_ipc(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_recv_ipc(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_send_ipc_async(EndpointObject *self, PyObject *args,
                             PyObject *kw);
PyObject *ext_recv_ipc_async(EndpointObject *self, PyObject *args,
                             PyObject *kw);
PyObject *ext_write_ipc(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_read_ipc(EndpointObject *self, PyObject *args, PyObject *kw);
PyObject *ext_write_ipc_async(EndpointObject *self, PyObject *args,
                              PyObject *kw);
PyObject *ext_read_ipc_async(EndpointObject *self, PyObject *args,
                             PyObject *kw);
PyObject *ext_advertise_ipc(EndpointObject *self, PyObject *args,
                            PyObject *kw);
PyObject *ext_advertisev_ipc(EndpointObject *self, PyObject *args,
                             PyObject *kw);

/* Method-table entries take (self, args, kw). */
#define EXT_METHOD(name, fn, doc) \
  {name, (PyCFunction)(void (*)(void))(fn), METH_VARARGS | METH_KEYWORDS, doc}

#endif
