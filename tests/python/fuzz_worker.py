"""Call every Endpoint method with random argument types and values; the
process must survive (run in a subprocess by test_fuzz.py).

    fuzz_worker.py SEED ITERATIONS

Two endpoints in this process are connected over loopback, each with a
real registered buffer, so valid-looking calls really move data. Pointers
and memory-region ids are drawn so that memory is only touched through
regions that really exist: a region registered by the fuzzer itself over
random addresses is never used afterwards (ids are never reused), so any
crash is a bug of the binding or the library, not of the fuzzer. The *_ipc
calls take no region (the library trusts ptr and size, as UCCL's), so they
only get the start of a real buffer (or NULL) and sizes that fit it.

Allowed outcomes of a call: a result, TypeError, or ValueError /
RuntimeError (tcpx_p2p.ArgumentError). Anything else exits 1. Prints
"FUZZ-OK {json counts}" at the end.
"""
import json
import logging
import os
import random
import sys
import threading

import numpy as np

import tcpx_p2p
from tcpx_p2p import Endpoint

logging.getLogger("tcpx_p2p").setLevel(logging.CRITICAL)  # failures are expected

BUF = 64 << 10
WRONG = [None, "x", "", 1.5, float("nan"), object(), {}, b"ab", 3 + 4j,
         True, [], (), bytearray(3), lambda: 0]


class World:
    def __init__(self, rng):
        self.rng = rng
        opts = dict(op_timeout_ms=200, ifname="lo", plugin="builtin")
        self.a, self.b = Endpoint(0, 2, **opts), Endpoint(1, 1, **opts)
        assert self.connect(), "set-up connection failed"
        self.buf_a = np.zeros(BUF, dtype=np.uint8)
        self.buf_b = np.zeros(BUF, dtype=np.uint8)
        _, self.mr_a = self.a.reg(self.buf_a.ctypes.data, BUF)
        _, self.mr_b = self.b.reg(self.buf_b.ctypes.data, BUF)
        _, blob_b = self.b.advertise(self.conn_b, self.mr_b,
                                     self.buf_b.ctypes.data, BUF)
        _, blob_a = self.a.advertise(self.conn_a, self.mr_a,
                                     self.buf_a.ctypes.data, BUF)
        self.blobs = [blob_a, blob_b]
        self.infos = []

    def connect(self):
        """A fresh connection a -> b (a blocking call that times out fails
        its connection, so the fuzzer makes new ones now and then)."""
        ip, port, gpu = Endpoint.parse_metadata(self.b.get_metadata())
        got = {}
        t = threading.Thread(target=lambda: got.update(r=self.b.accept()))
        t.start()
        ok, conn_a = self.a.connect(ip, gpu, port)
        t.join()
        if ok and got["r"][0]:
            self.conn_a, self.conn_b = conn_a, got["r"][3]
        return ok

    # ---- value pools ----------------------------------------------------

    def conn(self):
        return self.rng.choice([self.conn_a, self.conn_b, 0, 2**64 - 1,
                                12345, -1, 2**64, 2**70])

    def mr(self):
        return self.rng.choice([self.mr_a, self.mr_b, 0, 2**63,
                                2**64 - 1, -5, 2**64])

    def ptr(self):
        base = self.rng.choice([self.buf_a.ctypes.data,
                                self.buf_b.ctypes.data])
        return self.rng.choice([base, base + self.rng.randrange(BUF),
                                base + BUF, base - 1, 0, 1, 2**64 - 1, -1,
                                2**64 + 5, 2**63])

    def size(self):
        return self.rng.choice([0, 1, 100, BUF // 2, BUF, BUF + 1,
                                self.rng.randrange(1 << 20), 2**63,
                                2**64 - 1, -1, 2**64])

    def ipc_ptr(self):
        return self.rng.choice([self.buf_a.ctypes.data,
                                self.buf_b.ctypes.data, 0])

    def ipc_size(self):
        return self.rng.choice([0, 1, 100, BUF, -1, 2**64])

    def info(self):
        blob = self.rng.choice(self.infos) if self.infos else bytes(128)
        flipped = bytearray(blob)
        flipped[self.rng.randrange(128)] ^= 1 << self.rng.randrange(8)
        return self.rng.choice([blob, bytes(flipped), bytes(128), b"",
                                bytes(88), "x"])

    def meta(self):
        blob = self.rng.choice(self.blobs)
        flipped = bytearray(blob)
        flipped[self.rng.randrange(64)] ^= 1 << self.rng.randrange(8)
        return self.rng.choice([blob, bytes(flipped), b"", bytes(64),
                                os.urandom(64), b"x" * 65, bytearray(blob),
                                memoryview(blob), "s" * 64, 64])

    def small(self):
        return self.rng.choice([0, 1, 2, 32, -1, 2**31, 2**64, 2**70])

    def gpu(self):
        return self.rng.choice([0, 1, -1, 2**31, 2**31 - 1, -2**31 - 1])

    def lst(self, pick, random_values=True):
        """A list of values from `pick`, or something list-like that is
        wrong; `random_values` adds arrays of arbitrary integers."""
        n = self.rng.choice([0, 1, 2, 3, 32, 1000])
        choices = [[pick() for _ in range(n)],
                   tuple(pick() for _ in range(n)),
                   "abc", None, [None] * n, [1.5] * n, 7]
        if random_values:
            choices.append(np.array([self.rng.randrange(2**63)
                                     for _ in range(n)], dtype=np.uint64))
        return self.rng.choice(choices)

    def any(self, pick):
        """A value from the pool, or (30%) one of the wrong types."""
        return pick() if self.rng.random() < 0.7 else self.rng.choice(WRONG)


# Each method: argument names and how to draw each one.
def signatures(w):
    single = [("conn_id", w.conn), ("mr_id", w.mr), ("ptr", w.ptr),
              ("size", w.size)]
    meta = single + [("meta", w.meta)]
    vec = [("conn_id", w.conn), ("mr_id_v", lambda: w.lst(w.mr)),
           ("data_ptr_v", lambda: w.lst(w.ptr)),
           ("size_v", lambda: w.lst(w.size)), ("num_iovs", w.small)]
    onev = [("conn_id", w.conn), ("mr_id_v", lambda: w.lst(w.mr)),
            ("ptr_v", lambda: w.lst(w.ptr)), ("size_v", lambda: w.lst(w.size))]
    ipc = [("conn_id", w.conn), ("ptr", w.ipc_ptr), ("size", w.ipc_size)]
    info = ipc + [("info", w.info)]
    return {
        "connect": [("remote_ip_addr", lambda: w.rng.choice(
            ["127.0.0.1", "::1", "999.1.1.1", "", "x" * 300,
             w.a.get_metadata(), "127.0.0.1\0x"])),
            ("remote_gpu_idx", w.gpu),
            ("remote_port", lambda: w.rng.choice([-1, 0, 1, 65535, 65536]))],
        "reg": [("ptr", w.ptr), ("size", w.size)],
        "regv": [("ptrs", lambda: w.lst(w.ptr)),
                 ("sizes", lambda: w.lst(w.size))],
        "dereg": [("mr_id", lambda: w.rng.choice([0, 2**64 - 1, 2**63]))],
        "send": single, "recv": single, "send_async": single,
        "recv_async": single, "advertise": single,
        "read": meta, "write": meta, "read_async": meta, "write_async": meta,
        "sendv": vec, "recvv": vec, "sendv_async": vec, "recvv_async": vec,
        "advertisev": onev + [("num_iovs", w.small)],
        "readv": onev + [("meta_blob_v", lambda: w.lst(w.meta)),
                         ("num_iovs", w.small)],
        "writev": onev + [("meta_blob_v", lambda: w.lst(w.meta)),
                          ("num_iovs", w.small)],
        "readv_async": onev + [("meta_blob_v", lambda: w.lst(w.meta)),
                               ("num_iovs", w.small)],
        "writev_async": onev + [("meta_blob_v", lambda: w.lst(w.meta)),
                                ("num_iovs", w.small)],
        "poll_async": [("transfer_id", lambda: w.rng.choice(
            [0, 1, 2, 3, 50, 2**64 - 1, -1]))],
        "connect_local": [("remote_gpu_idx", w.gpu)],
        "accept_local": [],
        "send_ipc": ipc, "recv_ipc": ipc, "send_ipc_async": ipc,
        "recv_ipc_async": ipc, "advertise_ipc": ipc,
        "write_ipc": info, "read_ipc": info, "write_ipc_async": info,
        "read_ipc_async": info,
        "advertisev_ipc": [("conn_id", w.conn),
                           ("ptr_v", lambda: w.lst(w.ipc_ptr, False)),
                           ("size_v", lambda: w.lst(w.ipc_size, False))],
        "conn_id_of_rank": [("rank", w.small)],
        "get_metadata": [], "accept": [],
        "parse_metadata": [("metadata", w.meta)],
    }


def draw_call(w, sig):
    """(args, kwargs) for one call: keyword or positional, sometimes with an
    argument missing, one too many, or an unknown keyword. Half the calls
    have only well-typed arguments (so that they reach the library)."""
    typed = w.rng.random() < 0.5
    values = [(name, pick() if typed else w.any(pick)) for name, pick in sig]
    r = w.rng.random()
    if r < 0.05 and values:
        values.pop(w.rng.randrange(len(values)))
    elif r < 0.08:
        values.append(("bogus", 1))
    if w.rng.random() < 0.5:
        return [v for name, v in values if name != "bogus"], \
            {k: v for k, v in values if k == "bogus"}
    cut = w.rng.randrange(len(values) + 1)
    return [v for _, v in values[:cut]], dict(values[cut:])


def note_blob(w, result):
    """Keep descriptors and IPC infos the fuzzer's own advertise calls made."""
    if isinstance(result, tuple) and len(result) == 2 and result[0] is True \
            and isinstance(result[1], bytes):
        if len(result[1]) == 64:
            w.blobs.append(result[1])
        elif len(result[1]) == tcpx_p2p.IPC_INFO_SIZE:
            w.infos.append(result[1])


def main():
    seed, iterations = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    w = World(rng)
    sigs = signatures(w)
    counts = {"calls": 0, "TypeError": 0, "ArgumentError": 0,
              "returned": 0, "ok_true": 0}
    for i in range(iterations):
        if i and i % 250 == 0:
            w.connect()  # may fail (e.g. a fuzzed accept took it): go on
        name = rng.choice(sorted(sigs))
        ep = rng.choice([w.a, w.b])
        args, kwargs = draw_call(w, sigs[name])
        counts["calls"] += 1
        try:
            result = getattr(ep, name)(*args, **kwargs)
        except TypeError:
            counts["TypeError"] += 1
            continue
        except (ValueError, RuntimeError) as e:
            if not isinstance(e, tcpx_p2p.ArgumentError):
                print(f"unexpected {type(e).__name__} from {name}: {e}")
                sys.exit(1)
            counts["ArgumentError"] += 1
            continue
        counts["returned"] += 1
        counts["ok_true"] += bool(result is True or (
            isinstance(result, tuple) and result and result[0] is True))
        note_blob(w, result)
    print("FUZZ-OK " + json.dumps(counts), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
