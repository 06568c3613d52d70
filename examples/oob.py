"""Out-of-band channel for the examples: length-prefixed messages over one
TCP connection, for what UCCL applications exchange beside the data
(endpoint metadata, 64-byte descriptors, "done"). Real deployments use
their own (HTTP, Redis, torch.distributed)."""
import socket
import struct
import time

_LEN = struct.Struct("!I")


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Channel:
    def __init__(self, sock):
        self.sock = sock

    @classmethod
    def listen(cls, host, port, timeout=120.0):
        """Wait for the peer's connection on host:port."""
        with socket.create_server((host, port), reuse_port=False) as srv:
            srv.settimeout(timeout)
            conn, _ = srv.accept()
        conn.settimeout(timeout)
        return cls(conn)

    @classmethod
    def connect(cls, host, port, timeout=120.0):
        """Connect to host:port, retrying while the peer is starting."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection((host, port), timeout=5)
                sock.settimeout(timeout)
                return cls(sock)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def send(self, data: bytes):
        self.sock.sendall(_LEN.pack(len(data)) + data)

    def recv(self) -> bytes:
        (n,) = _LEN.unpack(self._exactly(_LEN.size))
        return self._exactly(n)

    def _exactly(self, n):
        chunks, got = [], 0
        while got < n:
            chunk = self.sock.recv(n - got)
            if not chunk:
                raise ConnectionError("out-of-band peer closed the channel")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self):
        self.sock.close()
