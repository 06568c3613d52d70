"""Out-of-band channel for the examples: length-prefixed messages over one
TCP connection, for what UCCL applications exchange beside the data
(endpoint metadata, 64-byte descriptors, "done"). Real deployments use
their own (HTTP, Redis, torch.distributed).

Waiting is never silent: what is awaited goes to stderr, with a line every
PROGRESS_S seconds while it lasts. Every failure is an OobError with a
one-line message; the examples end with it (exit 1), not a traceback."""
import socket
import struct
import sys
import time

_LEN = struct.Struct("!I")
PROGRESS_S = 10.0


class OobError(Exception):
    """The out-of-band channel could not be set up or was lost."""


def say(msg):
    print(f"oob: {msg}", file=sys.stderr, flush=True)


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _resolve(host, port):
    """host:port as an address to connect to or bind, or OobError."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4]
    except socket.gaierror as e:
        raise OobError(f"out-of-band host {host!r}: {e.strerror}") from None


class Channel:
    def __init__(self, sock, timeout):
        self.sock = sock
        self.timeout = timeout

    @classmethod
    def listen(cls, host, port, timeout=120.0):
        """Wait for the peer's connection on host:port."""
        _resolve(host, port)
        try:
            srv = socket.create_server((host, port), reuse_port=False)
        except OSError as e:
            raise OobError(f"cannot listen on {host}:{port}: "
                           f"{e.strerror or e}") from None
        say(f"waiting up to {timeout:.0f} s for the peer to connect to "
            f"{host}:{port}")
        start = time.monotonic()
        deadline = start + timeout
        with srv:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OobError(f"no peer connected to {host}:{port} "
                                   f"within {timeout:.0f} s")
                srv.settimeout(min(left, PROGRESS_S))
                try:
                    conn, peer = srv.accept()
                    break
                except socket.timeout:
                    say(f"still waiting for the peer on {host}:{port} "
                        f"({time.monotonic() - start:.0f} s)")
        say(f"peer {peer[0]} connected")
        conn.settimeout(timeout)
        return cls(conn, timeout)

    @classmethod
    def connect(cls, host, port, timeout=120.0):
        """Connect to host:port, retrying while the peer is starting."""
        addr = _resolve(host, port)
        say(f"connecting to {host}:{port} (retrying up to {timeout:.0f} s "
            f"while the peer starts)")
        start = time.monotonic()
        next_note = start + PROGRESS_S
        while True:
            try:
                sock = socket.create_connection(addr[:2], timeout=5)
                sock.settimeout(timeout)
                return cls(sock, timeout)
            except OSError as e:
                now = time.monotonic()
                if now - start > timeout:
                    raise OobError(f"no peer at {host}:{port} after "
                                   f"{timeout:.0f} s ({e.strerror or e})") \
                        from None
                if now >= next_note:
                    say(f"still no peer at {host}:{port} ({now - start:.0f} "
                        f"s: {e.strerror or e})")
                    next_note = now + PROGRESS_S
                time.sleep(0.05)

    def send(self, data: bytes):
        try:
            self.sock.sendall(_LEN.pack(len(data)) + data)
        except OSError as e:
            raise OobError(f"out-of-band send: {e.strerror or e}") from None

    def recv(self) -> bytes:
        (n,) = _LEN.unpack(self._exactly(_LEN.size))
        return self._exactly(n)

    def _exactly(self, n):
        chunks, got = [], 0
        while got < n:
            try:
                chunk = self.sock.recv(n - got)
            except socket.timeout:
                raise OobError(f"out-of-band peer silent for "
                               f"{self.timeout:.0f} s") from None
            except OSError as e:
                raise OobError(f"out-of-band recv: {e.strerror or e}") \
                    from None
            if not chunk:
                raise OobError("out-of-band peer closed the channel")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self):
        self.sock.close()


def run_main(name, main):
    """sys.exit(main()), with an OobError as one line and exit 1."""
    try:
        sys.exit(main())
    except OobError as e:
        sys.exit(f"{name}: {e}")
