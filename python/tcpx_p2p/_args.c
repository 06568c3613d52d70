/* Python arguments to C values. Every error names the method and the
 * argument: TypeError for a wrong type, ArgumentError (ValueError and
 * RuntimeError) for a value that C cannot hold or the API refuses. */
#include "_ext.h"

#include <string.h>

static int type_error(const char *fn, const char *name, const char *want,
                      PyObject *got) {
  PyErr_Format(PyExc_TypeError, "%s(): argument '%s' must be %s, not %.100s",
               fn, name, want, Py_TYPE(got)->tp_name);
  return -1;
}

/* Python int (after __index__) of `obj`, new reference; NULL + TypeError
 * for floats, str and everything else without __index__. */
static PyObject *as_index(PyObject *obj, const char *fn, const char *name) {
  if (!PyIndex_Check(obj)) {
    type_error(fn, name, "an int", obj);
    return NULL;
  }
  return PyNumber_Index(obj);
}

int arg_u64(PyObject *obj, const char *fn, const char *name, uint64_t *out) {
  PyObject *num = as_index(obj, fn, name);
  if (!num) return -1;
  unsigned long long v = PyLong_AsUnsignedLongLong(num);
  Py_DECREF(num);
  if (v == (unsigned long long)-1 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
    PyErr_Clear();
    PyErr_Format(ext_argument_error,
                 "%s(): argument '%s' must be in 0 .. 2**64-1", fn, name);
    return -1;
  }
  *out = (uint64_t)v;
  return 0;
}

int arg_size(PyObject *obj, const char *fn, const char *name, size_t *out) {
  uint64_t v;
  if (arg_u64(obj, fn, name, &v) < 0) return -1;
  if (v > SIZE_MAX) {
    PyErr_Format(ext_argument_error, "%s(): argument '%s' is too large", fn,
                 name);
    return -1;
  }
  *out = (size_t)v;
  return 0;
}

int arg_ptr(PyObject *obj, const char *fn, const char *name, void **out) {
  uint64_t v;
  if (arg_u64(obj, fn, name, &v) < 0) return -1;
  if (v > UINTPTR_MAX) {
    PyErr_Format(ext_argument_error, "%s(): argument '%s' is not an address",
                 fn, name);
    return -1;
  }
  *out = (void *)(uintptr_t)v;
  return 0;
}

int arg_int(PyObject *obj, const char *fn, const char *name, long long lo,
            long long hi, int *out) {
  PyObject *num = as_index(obj, fn, name);
  if (!num) return -1;
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(num, &overflow);
  Py_DECREF(num);
  if (v == -1 && PyErr_Occurred()) return -1;
  if (overflow || v < lo || v > hi) {
    PyErr_Format(ext_argument_error, "%s(): argument '%s' must be in %lld .. %lld",
                 fn, name, lo, hi);
    return -1;
  }
  *out = (int)v;
  return 0;
}

int arg_str(PyObject *obj, const char *fn, const char *name, int optional,
            const char **out) {
  if (optional && obj == Py_None) {
    *out = NULL;
    return 0;
  }
  if (!PyUnicode_Check(obj))
    return type_error(fn, name, optional ? "a str or None" : "a str", obj);
  Py_ssize_t len = 0;
  const char *s = PyUnicode_AsUTF8AndSize(obj, &len);
  if (!s) return -1;
  if ((size_t)len != strlen(s)) {
    PyErr_Format(ext_argument_error, "%s(): argument '%s' contains a NUL",
                 fn, name);
    return -1;
  }
  *out = s;
  return 0;
}

/* A C-contiguous view of a bytes-like `obj`; TypeError for anything else
 * (including non-contiguous memoryviews). */
static int get_bytes_view(PyObject *obj, const char *fn, const char *name,
                          Py_buffer *view) {
  if (PyUnicode_Check(obj) || !PyObject_CheckBuffer(obj))
    return type_error(fn, name, "bytes", obj);
  if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) == 0) return 0;
  PyErr_Clear();
  return type_error(fn, name, "contiguous bytes", obj);
}

int arg_bytes(PyObject *obj, const char *fn, const char *name, uint8_t *out,
              size_t cap, size_t *len) {
  Py_buffer view;
  if (get_bytes_view(obj, fn, name, &view) < 0) return -1;
  int rc = 0;
  if ((size_t)view.len > cap) {
    PyErr_Format(ext_argument_error,
                 "%s(): argument '%s' must be at most %zu bytes, got %zd", fn,
                 name, cap, view.len);
    rc = -1;
  } else {
    memcpy(out, view.buf, (size_t)view.len);
    *len = (size_t)view.len;
  }
  PyBuffer_Release(&view);
  return rc;
}

int arg_blob(PyObject *obj, const char *fn, const char *name, uint8_t *out,
             size_t len) {
  Py_buffer view;
  if (get_bytes_view(obj, fn, name, &view) < 0) return -1;
  size_t got = (size_t)view.len;
  if (got == len) memcpy(out, view.buf, len);
  PyBuffer_Release(&view);
  if (got != len) {
    PyErr_Format(ext_argument_error,
                 "%s(): '%s' must be exactly %zu bytes, got %zu", fn, name,
                 len, got);
    return -1;
  }
  return 0;
}

/* Far above what the library takes in one call (CTRL_MAX_SEGS); checked
 * before a lazy sequence such as range() is turned into a list. */
#define MAX_LIST_LEN (1 << 24)

/* Fast sequence of `obj` for list arguments, rejecting text and bytes
 * (which are sequences of characters, never lists of values). */
static PyObject *as_sequence(PyObject *obj, const char *fn,
                             const char *name) {
  if (PyUnicode_Check(obj) || PyBytes_Check(obj) || PyByteArray_Check(obj) ||
      !PySequence_Check(obj)) {
    type_error(fn, name, "a list", obj);
    return NULL;
  }
  Py_ssize_t len = PySequence_Size(obj);
  if (len < 0) {
    PyErr_Clear();
    type_error(fn, name, "a list", obj);
    return NULL;
  }
  if (len > MAX_LIST_LEN) {
    PyErr_Format(ext_argument_error, "%s(): '%s' has %zd entries (at most %d)",
                 fn, name, len, MAX_LIST_LEN);
    return NULL;
  }
  return PySequence_Fast(obj, "expected a list");
}

int arg_u64_list(PyObject *obj, const char *fn, const char *name,
                 uint64_t **out, size_t *n) {
  PyObject *seq = as_sequence(obj, fn, name);
  if (!seq) return -1;
  Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
  uint64_t *vals = PyMem_Calloc((size_t)count + 1, sizeof *vals);
  if (!vals) {
    Py_DECREF(seq);
    PyErr_NoMemory();
    return -1;
  }
  char item_name[96];
  for (Py_ssize_t i = 0; i < count; i++) {
    snprintf(item_name, sizeof item_name, "%s[%zd]", name, i);
    if (arg_u64(PySequence_Fast_GET_ITEM(seq, i), fn, item_name, &vals[i]) < 0) {
      PyMem_Free(vals);
      Py_DECREF(seq);
      return -1;
    }
  }
  Py_DECREF(seq);
  *out = vals;
  *n = (size_t)count;
  return 0;
}

int arg_blob_list(PyObject *obj, const char *fn, const char *name, size_t n,
                  size_t len, uint8_t **out) {
  PyObject *seq = as_sequence(obj, fn, name);
  if (!seq) return -1;
  size_t count = (size_t)PySequence_Fast_GET_SIZE(seq);
  if (count != n) {
    Py_DECREF(seq);
    PyErr_Format(ext_argument_error,
                 "%s(): '%s' has %zu entries, num_iovs is %zu", fn, name,
                 count, n);
    return -1;
  }
  uint8_t *blobs = PyMem_Calloc(n + 1, len);
  if (!blobs) {
    Py_DECREF(seq);
    PyErr_NoMemory();
    return -1;
  }
  char item_name[96];
  for (size_t i = 0; i < n; i++) {
    snprintf(item_name, sizeof item_name, "%s[%zu]", name, i);
    if (arg_blob(PySequence_Fast_GET_ITEM(seq, i), fn, item_name,
                 blobs + i * len, len) < 0) {
      PyMem_Free(blobs);
      Py_DECREF(seq);
      return -1;
    }
  }
  Py_DECREF(seq);
  *out = blobs;
  return 0;
}

int arg_check_counts(const char *fn, size_t num_iovs, const size_t *lens,
                     const char *const *names, int count) {
  for (int i = 0; i < count; i++) {
    if (lens[i] != num_iovs) {
      PyErr_Format(ext_argument_error,
                   "%s(): '%s' has %zu entries, num_iovs is %zu (all lists "
                   "must have length num_iovs)",
                   fn, names[i], lens[i], num_iovs);
      return -1;
    }
  }
  return 0;
}

int arg_ptr_list(PyObject *obj, const char *fn, const char *name, void ***out,
                 size_t *n) {
  uint64_t *vals;
  if (arg_u64_list(obj, fn, name, &vals, n) < 0) return -1;
  void **ptrs = PyMem_Calloc(*n + 1, sizeof *ptrs);
  if (!ptrs) {
    PyMem_Free(vals);
    PyErr_NoMemory();
    return -1;
  }
  for (size_t i = 0; i < *n; i++) ptrs[i] = (void *)(uintptr_t)vals[i];
  PyMem_Free(vals);
  *out = ptrs;
  return 0;
}

int arg_size_list(PyObject *obj, const char *fn, const char *name,
                  size_t **out, size_t *n) {
  uint64_t *vals;
  if (arg_u64_list(obj, fn, name, &vals, n) < 0) return -1;
  size_t *sizes = PyMem_Calloc(*n + 1, sizeof *sizes);
  if (!sizes) {
    PyMem_Free(vals);
    PyErr_NoMemory();
    return -1;
  }
  for (size_t i = 0; i < *n; i++) sizes[i] = (size_t)vals[i];
  PyMem_Free(vals);
  *out = sizes;
  return 0;
}
