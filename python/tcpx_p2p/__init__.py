"""tcpx-p2p: UCCL P2P's ``Endpoint`` API over GPUDirect-TCPX or plain TCP.

    from tcpx_p2p import Endpoint        # or: from uccl import p2p
    ep = Endpoint(local_gpu_idx=0, num_cpus=4)
    ok, conn_id = ep.connect(ip, gpu_idx, remote_port=port)

Pointers are Python ints (``tensor.data_ptr()``, ``array.ctypes.data``);
``buffer_ptr(obj)`` gives ``(ptr, nbytes)`` for torch tensors, numpy
arrays and bytes-like objects. Calls return ``ok=False`` on failure and log
the reason on the ``tcpx_p2p`` logger (level from ``TCPX_P2P_LOG_LEVEL`` or
``UCCL_P2P_LOG_LEVEL``); wrong argument types raise ``TypeError``, bad
values ``ArgumentError`` (both a ``ValueError`` and a ``RuntimeError``).
"""
import logging as _logging
import os as _os

# NCCL's level names and numbers (TCPX_P2P_LOG_LEVEL is read the same way
# by the C library) plus the usual Python/glog names.
_LEVELS = {
    "NONE": _logging.CRITICAL + 10, "OFF": _logging.CRITICAL + 10,
    "VERSION": _logging.ERROR, "WARN": _logging.WARNING,
    "WARNING": _logging.WARNING, "INFO": _logging.INFO,
    "ABORT": _logging.INFO, "TRACE": _logging.DEBUG,
    "DEBUG": _logging.DEBUG, "ERROR": _logging.ERROR,
    "FATAL": _logging.CRITICAL, "CRITICAL": _logging.CRITICAL,
}
_NCCL_NUMBERS = ["NONE", "VERSION", "WARN", "INFO", "ABORT", "TRACE"]


def _level_from_env():
    for var in ("TCPX_P2P_LOG_LEVEL", "UCCL_P2P_LOG_LEVEL"):
        text = _os.environ.get(var, "").strip().upper()
        if not text:
            continue
        if text.isdigit():
            n = int(text)
            text = _NCCL_NUMBERS[min(n, len(_NCCL_NUMBERS) - 1)]
        if text in _LEVELS:
            return _LEVELS[text]
    return None


_level = _level_from_env()
if _level is not None:
    _logging.getLogger("tcpx_p2p").setLevel(_level)

from ._ext import (  # noqa: E402  (the logger is set up first)
    ArgumentError, DESC_SIZE, Endpoint, IPC_INFO_SIZE, METADATA_MAX, NO_CONN,
    VERSION as __version__, get_oob_ip)
from .buffers import buffer_ptr  # noqa: E402

__all__ = ["Endpoint", "get_oob_ip", "buffer_ptr", "ArgumentError",
           "DESC_SIZE", "IPC_INFO_SIZE", "METADATA_MAX", "NO_CONN"]
