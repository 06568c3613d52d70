"""Pointers and sizes of Python buffers, for the int-pointer Endpoint API.

``buffer_ptr(obj)`` returns ``(ptr, nbytes)`` for a contiguous
- torch tensor (``data_ptr()``; CPU or GPU),
- object with ``__cuda_array_interface__`` or ``__array_interface__``
  (numpy arrays, cupy, numba, ...),
- object with the buffer protocol (bytes, bytearray, memoryview, array).
The pointer is valid while ``obj`` lives and is not resized. With
``writable=True`` read-only buffers are refused (use it for receive
buffers).
"""
from . import _ext


def _is_tensor(obj):
    return (callable(getattr(obj, "data_ptr", None))
            and callable(getattr(obj, "element_size", None))
            and callable(getattr(obj, "numel", None)))


def _tensor_ptr(t):
    if callable(getattr(t, "is_contiguous", None)) and not t.is_contiguous():
        raise ValueError("buffer_ptr(): tensor is not contiguous")
    return int(t.data_ptr()), int(t.numel()) * int(t.element_size())


def _c_strides(shape, itemsize):
    strides, step = [], itemsize
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


def _interface_ptr(iface, writable):
    shape = tuple(iface["shape"])
    itemsize = int(iface["typestr"][2:])
    nbytes = itemsize
    for dim in shape:
        nbytes *= dim
    strides = iface.get("strides")
    if strides is not None and nbytes and \
            tuple(strides) != _c_strides(shape, itemsize):
        raise ValueError("buffer_ptr(): array is not C-contiguous")
    ptr, readonly = iface["data"]
    if writable and readonly:
        raise ValueError("buffer_ptr(): array is read-only")
    return int(ptr), nbytes


def buffer_ptr(obj, writable=False):
    """``(ptr, nbytes)`` of a contiguous tensor, array or bytes-like object."""
    if _is_tensor(obj):
        return _tensor_ptr(obj)
    for name in ("__cuda_array_interface__", "__array_interface__"):
        iface = getattr(obj, name, None)
        if isinstance(iface, dict) and isinstance(iface.get("data"), tuple):
            return _interface_ptr(iface, writable)
    return _ext._buffer_address(obj, writable)
