"""torch.distributed-style point-to-point on tcpx-p2p (UCCL's ``collective``).

    import torch.distributed as dist
    from uccl import collective
    dist.init_process_group("gloo", ...)
    collective.init_collective(num_cpus=4)
    collective.send(tensor, dst=1)           # or isend/irecv + wait
    collective.finalize_collective()

How the mesh is made (differs from UCCL in the ways noted):
- every rank makes one Endpoint and all-gathers its metadata through
  torch.distributed (gloo; padded to a fixed size, so IPv4 and IPv6 ranks
  mix);
- rank r connects to every higher rank and accepts from every lower rank,
  concurrently; ONE connection per pair carries both directions (UCCL
  makes one per direction);
- right after connecting, the connecting side sends its rank (8 bytes) on
  the new connection, so the accepting side maps connections to ranks even
  when several ranks share an IP and GPU index;
- ``Endpoint.conn_id_of_rank(r)`` then gives the connection to rank r;
- same-host peers use the network path too (UCCL uses CUDA IPC; tcpx-p2p's
  IPC calls are not implemented yet);
- tensors are registered on first use if ``register_tensor`` was not called
  (UCCL raises instead); registration never pins memory.
"""
from __future__ import annotations

import ctypes
import os
import struct
import threading
import time
from typing import Dict, List, Optional, Tuple

import torch
import torch.distributed as dist

from tcpx_p2p import Endpoint

_META_SLOT = 1 + 22          # length byte + the longest (IPv6) metadata
_RANK_MSG = struct.Struct("<q")
_SELF_TRANSFER = -1           # id of a send/recv to oneself (nothing to do)


def _local_gpu_idx(rank: int) -> int:
    """LOCAL_RANK, else RANK % LOCAL_WORLD_SIZE, else the global rank."""
    if os.environ.get("LOCAL_RANK", "").isdigit():
        return int(os.environ["LOCAL_RANK"])
    rank_env = os.environ.get("RANK", "")
    lws = os.environ.get("LOCAL_WORLD_SIZE", "")
    if rank_env.isdigit() and lws.isdigit() and int(lws) > 0:
        return int(rank_env) % int(lws)
    return rank


def _all_gather_metadata(meta: bytes, world_size: int) -> List[bytes]:
    slot = torch.zeros(_META_SLOT, dtype=torch.uint8)
    slot[0] = len(meta)
    slot[1:1 + len(meta)] = torch.tensor(list(meta), dtype=torch.uint8)
    gathered = [torch.zeros_like(slot) for _ in range(world_size)]
    dist.all_gather(gathered, slot)
    out = []
    for t in gathered:
        raw = bytes(t.tolist())
        out.append(raw[1:1 + raw[0]])
    return out


class _RankMessage:
    """An 8-byte registered buffer for the rank hand-shake."""

    def __init__(self, ep: Endpoint):
        self.buf = ctypes.create_string_buffer(_RANK_MSG.size)
        self.ptr = ctypes.addressof(self.buf)
        ok, self.mr_id = ep.reg(self.ptr, _RANK_MSG.size)
        if not ok:
            raise RuntimeError("collective: cannot register 8 bytes")

    def send_rank(self, ep: Endpoint, conn_id: int, rank: int) -> bool:
        _RANK_MSG.pack_into(self.buf, 0, rank)
        return ep.send(conn_id, self.mr_id, self.ptr, _RANK_MSG.size)

    def recv_rank(self, ep: Endpoint, conn_id: int) -> Optional[int]:
        if not ep.recv(conn_id, self.mr_id, self.ptr, _RANK_MSG.size):
            return None
        return _RANK_MSG.unpack_from(self.buf, 0)[0]


class CollectiveContext:
    """One endpoint and a full mesh of connections, one per peer rank."""

    def __init__(self, num_cpus: int = 4, local_gpu_idx: Optional[int] = None):
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed must be initialized before "
                               "creating CollectiveContext")
        if dist.get_backend() != "gloo":
            raise RuntimeError("CollectiveContext requires torch.distributed "
                               "to use the 'gloo' backend")
        self.num_cpus = num_cpus
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.local_gpu_idx = (local_gpu_idx if local_gpu_idx is not None
                              else _local_gpu_idx(self.rank))
        self.ep: Optional[Endpoint] = None
        self.conns: List[Optional[int]] = []
        self.memory_regions: Dict[int, Tuple[int, int]] = {}  # ptr -> (mr, size)
        self.initialized = False

    # ---- set-up -------------------------------------------------------

    def init(self):
        if self.initialized:
            return
        self.ep = Endpoint(self.local_gpu_idx, self.num_cpus)
        metas = _all_gather_metadata(self.ep.get_metadata(), self.world_size)
        self.conns = [None] * self.world_size
        self._connect_mesh(metas)
        for peer, conn in enumerate(self.conns):
            if conn is not None:
                self.ep.set_conn_id_of_rank(peer, conn)
        dist.barrier()
        self.initialized = True

    def _connect_mesh(self, metas: List[bytes]):
        errors: List[str] = []
        accepter = threading.Thread(target=self._accept_lower,
                                    args=(errors,), daemon=True)
        accepter.start()
        self._connect_higher(metas, errors)
        accepter.join()
        if errors:
            raise RuntimeError("collective: " + "; ".join(errors))
        missing = [r for r in range(self.world_size)
                   if r != self.rank and self.conns[r] is None]
        if missing:
            raise RuntimeError(f"collective: no connection to ranks {missing}")

    def _connect_higher(self, metas: List[bytes], errors: List[str]):
        msg = _RankMessage(self.ep)
        for peer in range(self.rank + 1, self.world_size):
            ip, port, gpu = Endpoint.parse_metadata(metas[peer])
            ok, conn = self.ep.connect(ip, gpu, remote_port=port)
            if not ok or not msg.send_rank(self.ep, conn, self.rank):
                errors.append(f"connect to rank {peer} ({ip}:{port}) failed")
                return
            self.conns[peer] = conn

    def _accept_lower(self, errors: List[str]):
        msg = _RankMessage(self.ep)
        for _ in range(self.rank):
            ok, ip, _gpu, conn = self.ep.accept()
            peer = msg.recv_rank(self.ep, conn) if ok else None
            if peer is None or not 0 <= peer < self.rank or \
                    self.conns[peer] is not None:
                errors.append(f"accept failed or bad rank hand-shake from {ip}"
                              f" (rank {peer})")
                return
            self.conns[peer] = conn

    # ---- memory -------------------------------------------------------

    @staticmethod
    def _buffer_info(tensor: torch.Tensor) -> Tuple[int, int]:
        if not tensor.is_contiguous():
            raise ValueError("Tensor must be contiguous")
        return tensor.data_ptr(), tensor.numel() * tensor.element_size()

    def _mr_for(self, ptr: int, size: int) -> int:
        known = self.memory_regions.get(ptr)
        if known is not None and known[1] >= size:
            return known[0]
        ok, mr_id = self.ep.reg(ptr, size)
        if not ok:
            raise RuntimeError("Failed to register memory")
        self.memory_regions[ptr] = (mr_id, size)
        return mr_id

    def register_tensor(self, tensor: torch.Tensor):
        self._check_ready()
        self._mr_for(*self._buffer_info(tensor))

    # ---- transfers ----------------------------------------------------

    def _check_ready(self):
        if not self.initialized:
            raise RuntimeError("CollectiveContext not initialized. Call init() "
                               "first.")

    def _conn_to(self, peer: int, what: str) -> int:
        if not 0 <= peer < self.world_size or self.conns[peer] is None:
            raise ValueError(f"No {what} connection to rank {peer}")
        return self.conns[peer]

    def _prepare(self, tensor, peer, what):
        self._check_ready()
        conn = self._conn_to(peer, what)
        ptr, size = self._buffer_info(tensor)
        return conn, self._mr_for(ptr, size), ptr, size

    def send(self, tensor: torch.Tensor, dst: int):
        if dst == self.rank:
            return
        conn, mr, ptr, size = self._prepare(tensor, dst, "send")
        if not self.ep.send(conn, mr, ptr, size):
            raise RuntimeError(f"Failed to send to rank {dst}")

    def recv(self, tensor: torch.Tensor, src: int):
        if src == self.rank:
            return
        conn, mr, ptr, size = self._prepare(tensor, src, "recv")
        if not self.ep.recv(conn, mr, ptr, size):
            raise RuntimeError(f"Failed to recv from rank {src}")

    def isend(self, tensor: torch.Tensor, dst: int) -> int:
        if dst == self.rank:
            return _SELF_TRANSFER
        conn, mr, ptr, size = self._prepare(tensor, dst, "send")
        ok, transfer_id = self.ep.send_async(conn, mr, ptr, size)
        if not ok:
            raise RuntimeError(f"Failed to initiate async send to rank {dst}")
        return transfer_id

    def irecv(self, tensor: torch.Tensor, src: int) -> int:
        if src == self.rank:
            return _SELF_TRANSFER
        conn, mr, ptr, size = self._prepare(tensor, src, "recv")
        ok, transfer_id = self.ep.recv_async(conn, mr, ptr, size)
        if not ok:
            raise RuntimeError(f"Failed to initiate async recv from rank {src}")
        return transfer_id

    def test(self, transfer_id: int) -> bool:
        if transfer_id == _SELF_TRANSFER:
            return True
        ok, done = self.ep.poll_async(transfer_id)
        if not ok:
            raise RuntimeError(f"Transfer {transfer_id} failed")
        return done

    def wait(self, transfer_id: int):
        """Spin on poll_async, backing off to short sleeps after a while so
        that waiting does not starve the progress threads of CPU."""
        spins = 0
        while not self.test(transfer_id):
            spins += 1
            if spins > 1000:
                time.sleep(50e-6)

    def finalize(self):
        if not self.initialized:
            return
        self.conns = []
        self.memory_regions.clear()
        self.ep = None
        self.initialized = False


_default_context: Optional[CollectiveContext] = None


def init_collective(num_cpus: int = 4, local_gpu_idx: Optional[int] = None):
    """Make the default context and connect it to every other rank."""
    global _default_context
    _default_context = CollectiveContext(num_cpus, local_gpu_idx)
    _default_context.init()


def get_collective() -> CollectiveContext:
    if _default_context is None:
        raise RuntimeError("Collective not initialized. Call init_collective() "
                           "first.")
    return _default_context


def send(tensor: torch.Tensor, dst: int):
    get_collective().send(tensor, dst)


def recv(tensor: torch.Tensor, src: int):
    get_collective().recv(tensor, src)


def isend(tensor: torch.Tensor, dst: int) -> int:
    return get_collective().isend(tensor, dst)


def irecv(tensor: torch.Tensor, src: int) -> int:
    return get_collective().irecv(tensor, src)


def wait(transfer_id: int):
    get_collective().wait(transfer_id)


def wait_all(transfer_ids: List[int]):
    for transfer_id in transfer_ids:
        get_collective().wait(transfer_id)


def test(transfer_id: int) -> bool:
    return get_collective().test(transfer_id)


def register_tensor(tensor: torch.Tensor):
    get_collective().register_tensor(tensor)


def finalize_collective():
    global _default_context
    if _default_context is not None:
        _default_context.finalize()
        _default_context = None
