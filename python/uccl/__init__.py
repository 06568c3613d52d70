"""UCCL compatibility package: code written for UCCL P2P runs on tcpx-p2p.

    from uccl import p2p            # p2p.Endpoint, p2p.get_oob_ip
    from uccl import collective     # torch.distributed-style send/recv
    from uccl import transfer       # TransferManager

Submodules load on first use, so ``from uccl import p2p`` does not import
torch.
"""
import importlib as _importlib

import tcpx_p2p as _tcpx_p2p

__version__ = _tcpx_p2p.__version__

_SUBMODULES = ("p2p", "collective", "transfer")


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'uccl' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
