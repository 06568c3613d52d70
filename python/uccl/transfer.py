"""UCCL's ``TransferManager`` on tcpx-p2p: one-sided tensor hand-off with
a small TCP side channel of its own.

    target:    tm = TransferManager(gpu, num_cpus, listen_port)
               conn = tm.accept()
               tid = tm.register_transfer(conn, tensor)
               tm.post_transfer_metadata(tid)     # send the descriptor
               tm.wait_transfer_done(tid)         # the initiator has written
    initiator: tm = TransferManager(gpu, num_cpus, listen_port)
               conn = tm.connect(target_ip, target_listen_port)
               tid = tm.register_transfer(conn, tensor)
               meta = tm.fetch_transfer_metadata(tid)
               poll = tm.do_transfer_async(tid, meta)  # write into the target
               while not tm.check_transfer_done(tid, poll): pass
               tm.post_transfer_done(tid)

Peers with the same out-of-band IP use connect_local and the *_ipc calls;
others connect over the network and use advertise/write. The side channel
carries typed, length-prefixed frames (JSON or raw bytes), never pickles.
``listen_host`` (keyword, default all interfaces as UCCL) picks where the
side channel listens.
"""
from __future__ import annotations

import json
import socket
import struct
import time
from typing import Dict

import tcpx_p2p
from tcpx_p2p import Endpoint

_FRAME = struct.Struct("!BI")  # kind, length
_JSON, _BYTES = 1, 2


def _send_frame(sock: socket.socket, obj) -> None:
    if isinstance(obj, (bytes, bytearray)):
        kind, body = _BYTES, bytes(obj)
    else:
        kind, body = _JSON, json.dumps(obj).encode()
    sock.sendall(_FRAME.pack(kind, len(body)) + body)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise ConnectionError("TransferManager: peer closed the channel")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _recv_frame(sock: socket.socket):
    kind, length = _FRAME.unpack(_recv_exactly(sock, _FRAME.size))
    body = _recv_exactly(sock, length)
    return body if kind == _BYTES else json.loads(body)


def _dial(ip: str, port: int, timeout: float = 60.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection((ip, port), timeout=timeout)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class TransferManager:
    class ConnState:
        def __init__(self, local_gpu_idx, remote_gpu_idx, socket, conn_id,
                     is_local):
            self.local_gpu_idx = local_gpu_idx
            self.remote_gpu_idx = remote_gpu_idx
            self.socket = socket
            self.conn_id = conn_id
            self.is_local = is_local

    class TransferState:
        def __init__(self, data, size, mr_id, conn_state):
            self.data = data
            self.size = size
            self.mr_id = mr_id
            self.conn_state = conn_state

    def __init__(self, local_gpu_idx: int, num_cpus: int, listen_port: int,
                 *, listen_host: str = ""):
        self.local_gpu_idx = local_gpu_idx
        self.num_cpus = num_cpus
        self.listen_port = listen_port
        self.ep = Endpoint(local_gpu_idx, num_cpus)
        ip, port, _ = Endpoint.parse_metadata(self.ep.get_metadata())
        self.local_ep_ip, self.local_ep_port = ip, port
        self.conn_table: Dict[int, TransferManager.ConnState] = {}
        self.transfer_table: Dict[int, TransferManager.TransferState] = {}
        self.next_transfer_id = 0
        self.listen_socket = socket.create_server((listen_host, listen_port),
                                                  backlog=128)

    # ---- connections ----------------------------------------------------

    def _hello(self, sock):
        """Swap [gpu index, endpoint port, endpoint ip] with the peer."""
        _send_frame(sock, [self.local_gpu_idx, self.local_ep_port,
                           self.local_ep_ip])
        gpu, port, ip = _recv_frame(sock)
        return int(gpu), int(port), str(ip)

    def connect(self, remote_ip: str, remote_listen_port: int) -> int:
        """Initiator: reach the target's manager, then its endpoint."""
        sock = _dial(remote_ip, remote_listen_port)
        gpu, port, ip = self._hello(sock)
        is_local = ip == self.local_ep_ip
        if is_local:
            ok, conn_id = self.ep.connect_local(gpu)
        else:
            ok, conn_id = self.ep.connect(ip, gpu, remote_port=port)
        if not ok:
            raise RuntimeError(f"TransferManager: cannot connect to GPU {gpu}"
                               f" at {ip}:{port}")
        self.conn_table[conn_id] = self.ConnState(self.local_gpu_idx, gpu,
                                                  sock, conn_id, is_local)
        return conn_id

    def accept(self) -> int:
        """Target: take the initiator's side channel, then its endpoint."""
        sock, _ = self.listen_socket.accept()
        gpu, _port, ip = self._hello(sock)
        is_local = ip == self.local_ep_ip
        if is_local:
            ok, _gpu, conn_id = self.ep.accept_local()
        else:
            ok, _ip, _gpu, conn_id = self.ep.accept()
        if not ok:
            raise RuntimeError(f"TransferManager: accept from GPU {gpu} at "
                               f"{ip} failed")
        self.conn_table[conn_id] = self.ConnState(self.local_gpu_idx, gpu,
                                                  sock, conn_id, is_local)
        return conn_id

    # ---- transfers ------------------------------------------------------

    def register_transfer(self, conn_id: int, tensor) -> int:
        ptr, size = tcpx_p2p.buffer_ptr(tensor)
        ok, mr_id = self.ep.reg(ptr, size)
        if not ok:
            raise RuntimeError("TransferManager: registration failed")
        tid = self.next_transfer_id
        self.next_transfer_id += 1
        self.transfer_table[tid] = self.TransferState(
            ptr, size, mr_id, self.conn_table[conn_id])
        return tid

    def deregister_transfer(self, transfer_id: int) -> bool:
        state = self.transfer_table.pop(transfer_id)
        if not self.ep.dereg(state.mr_id):
            raise RuntimeError("TransferManager: deregistration failed")
        return True

    def post_transfer_metadata(self, transfer_id: int) -> bool:
        """Target: describe the tensor to the initiator."""
        s = self.transfer_table[transfer_id]
        c = s.conn_state
        if c.is_local:
            ok, meta = self.ep.advertise_ipc(c.conn_id, s.data, s.size)
        else:
            ok, meta = self.ep.advertise(c.conn_id, s.mr_id, s.data, s.size)
        if not ok:
            raise RuntimeError("TransferManager: advertise failed")
        _send_frame(c.socket, meta)
        return True

    def fetch_transfer_metadata(self, transfer_id: int) -> bytes:
        meta = _recv_frame(self.transfer_table[transfer_id].conn_state.socket)
        if not isinstance(meta, bytes):
            raise RuntimeError("TransferManager: no transfer metadata")
        return meta

    def do_transfer_async(self, transfer_id: int,
                          transfer_metadata: bytes) -> int:
        """Initiator: write the tensor into the target's; -> poll id."""
        s = self.transfer_table[transfer_id]
        c = s.conn_state
        if c.is_local:
            ok, poll_id = self.ep.write_ipc_async(c.conn_id, s.data, s.size,
                                                  transfer_metadata)
        else:
            ok, poll_id = self.ep.write_async(c.conn_id, s.mr_id, s.data,
                                              s.size, transfer_metadata)
        if not ok:
            raise RuntimeError("TransferManager: transfer could not start")
        return poll_id

    def check_transfer_done(self, transfer_id: int, poll_id: int) -> bool:
        ok, done = self.ep.poll_async(poll_id)
        if not ok:
            raise RuntimeError(f"TransferManager: transfer {transfer_id} "
                               "failed")
        return done

    def post_transfer_done(self, transfer_id: int) -> bool:
        _send_frame(self.transfer_table[transfer_id].conn_state.socket, True)
        return True

    def wait_transfer_done(self, transfer_id: int) -> bool:
        done = _recv_frame(self.transfer_table[transfer_id].conn_state.socket)
        if done is not True:
            raise RuntimeError(f"TransferManager: transfer {transfer_id} "
                               "failed")
        return True
