#!/usr/bin/env python3
"""KV-cache hand-off from a prefill process to a decode process, written
against UCCL P2P's API (`from uccl import p2p`) and run on tcpx-p2p.

The KV cache of each side is one tensor of shape
    [layers, 2 (K, V), blocks, block_tokens, heads, head_dim]   fp16
so one (layer, K/V, block) slice is contiguous. A request's N blocks are
moved as follows:
  decode   picks N free blocks of its cache (scattered, as a block
           allocator would), advertises every (layer, K/V, block) slice
           with advertisev and sends the 64-byte descriptors to prefill;
  prefill  writes its N computed blocks into those slices with ONE writev
           (layers * 2 * N segments), then says "done";
  decode   never makes a transfer call itself; it checks its cache
           byte-exact against what prefill computed (the values come from
           a seed both sides know) and answers "verified".

Run both sides as two processes on this machine:
    python3 examples/kv_transfer.py
or separately (e.g. in two network namespaces):
    python3 examples/kv_transfer.py --role decode --host 10.0.0.2 --port 5555
    python3 examples/kv_transfer.py --role prefill --host 10.0.0.2 --port 5555
--host/--port is the out-of-band channel (examples/oob.py) that carries the
metadata and descriptors; the data goes over tcpx-p2p.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from uccl import p2p

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oob import Channel, free_port, run_main  # noqa: E402

torch = None  # imported by pick_lib() when used (numpy works the same way)

SEED = 1234


# ---- the cache ---------------------------------------------------------


class KVCache:
    """[layers, 2, blocks, block_tokens, heads, head_dim] fp16, contiguous."""

    def __init__(self, args, blocks, seed=None, lib="torch"):
        self.shape = (args.layers, 2, blocks, args.block_tokens, args.heads,
                      args.head_dim)
        self.blocks = blocks
        self.block_bytes = args.block_tokens * args.heads * args.head_dim * 2
        self.lib = lib
        if lib == "torch":
            self.data = self._torch_values(seed)
            self.ptr = self.data.data_ptr()
        else:
            self.data = self._numpy_values(seed)
            self.ptr = self.data.ctypes.data
        self.nbytes = self.block_bytes * int(np.prod(self.shape[:3]))

    def _torch_values(self, seed):
        if seed is None:
            return torch.zeros(self.shape, dtype=torch.float16)
        gen = torch.Generator().manual_seed(seed)
        raw = torch.randint(-2**15, 2**15, self.shape, dtype=torch.int16,
                            generator=gen)
        return raw.view(torch.float16)  # any bit pattern: compared as bits

    def _numpy_values(self, seed):
        if seed is None:
            return np.zeros(self.shape, dtype=np.float16)
        rng = np.random.default_rng(seed)
        return rng.integers(0, 2**16, self.shape, dtype=np.uint16).view(
            np.float16)

    def slice_ptr(self, layer, kv, block):
        index = (layer * 2 + kv) * self.blocks + block
        return self.ptr + index * self.block_bytes

    def slices(self, block_ids):
        """Pointers of every (layer, K/V, block) slice, in one fixed order."""
        layers = self.shape[0]
        return [self.slice_ptr(l, kv, b) for l in range(layers)
                for kv in (0, 1) for b in block_ids]

    def bits(self, block):
        """The raw 16-bit values of one block in every layer and K/V."""
        if self.lib == "torch":
            return self.data[:, :, block].contiguous().view(torch.int16)
        return self.data[:, :, block].view(np.uint16)

    def same_bits(self, block, other, other_block):
        a, b = self.bits(block), other.bits(other_block)
        if self.lib == "torch":
            return bool(torch.equal(a, b))
        return bool(np.array_equal(a, b))


# ---- decode -----------------------------------------------------------------


def run_decode(args, lib):
    cache = KVCache(args, args.cache_blocks, seed=None, lib=lib)
    ep = p2p.Endpoint(args.local_gpu_idx, args.num_cpus)
    chan = Channel.listen(args.host, args.port)
    chan.send(ep.get_metadata())
    ok, peer_ip, peer_gpu, conn_id = ep.accept()
    assert ok, "decode: accept failed"
    print(f"decode: prefill connected from {peer_ip} (GPU {peer_gpu})")

    n = int(chan.recv())
    rng = np.random.default_rng(SEED)
    dest = sorted(int(b) for b in rng.permutation(args.cache_blocks)[:n])
    ok, mr_id = ep.reg(cache.ptr, cache.nbytes)
    assert ok, "decode: reg failed"
    ptr_v = cache.slices(dest)
    size_v = [cache.block_bytes] * len(ptr_v)
    ok, metas = ep.advertisev(conn_id, [mr_id] * len(ptr_v), ptr_v, size_v,
                              len(ptr_v))
    assert ok, "decode: advertisev failed"
    chan.send(json.dumps(dest).encode())
    chan.send(b"".join(metas))

    assert chan.recv() == b"done"  # prefill's writes are complete
    expected = KVCache(args, n, seed=SEED, lib=lib)
    bad = [i for i, b in enumerate(dest)
           if not cache.same_bits(b, expected, i)]
    untouched = set(range(args.cache_blocks)) - set(dest)
    zero = not any(cache.bits(b).any() for b in sorted(untouched)[:64])
    if bad or not zero:
        chan.send(f"MISMATCH blocks {bad[:8]} untouched-zero={zero}".encode())
        print(f"decode: MISMATCH in {len(bad)} of {n} blocks")
        return 1
    chan.send(b"verified")
    print(f"decode: {n} blocks ({n * cache.block_bytes * 2 * args.layers / 2**20:.1f} "
          f"MiB) in cache blocks {dest[:6]}... verified byte-exact")
    return 0


# ---- prefill ---------------------------------------------------------------


def run_prefill(args, lib):
    n = args.num_blocks
    cache = KVCache(args, n, seed=SEED, lib=lib)  # the "computed" KV blocks
    ep = p2p.Endpoint(args.local_gpu_idx, args.num_cpus)
    chan = Channel.connect(args.host, args.port)
    ip, port, gpu = p2p.Endpoint.parse_metadata(chan.recv())
    ok, conn_id = ep.connect(ip, gpu, remote_port=port)
    assert ok, f"prefill: connect to {ip}:{port} failed"
    ok, mr_id = ep.reg(cache.ptr, cache.nbytes)
    assert ok, "prefill: reg failed"

    chan.send(str(n).encode())
    dest = json.loads(chan.recv())
    blob = chan.recv()
    metas = [blob[i:i + 64] for i in range(0, len(blob), 64)]
    ptr_v = cache.slices(range(n))
    size_v = [cache.block_bytes] * len(ptr_v)
    assert len(metas) == len(ptr_v), "descriptor count differs"

    total = sum(size_v)
    start = time.perf_counter()
    for _ in range(args.iters):
        ok = ep.writev(conn_id, [mr_id] * len(ptr_v), ptr_v, size_v, metas,
                       len(ptr_v))
        assert ok, "prefill: writev failed"
    elapsed = time.perf_counter() - start
    chan.send(b"done")
    verdict = chan.recv().decode()
    print(f"prefill: wrote {n} blocks x {args.layers} layers x K/V = "
          f"{len(ptr_v)} segments, {total / 2**20:.1f} MiB per writev, "
          f"{args.iters} x in {elapsed * 1e3:.1f} ms "
          f"({total * args.iters / elapsed / 1e9:.2f} GB/s) into decode "
          f"blocks {dest[:6]}...; decode says: {verdict}")
    return 0 if verdict == "verified" else 1


# ---- both, locally -------------------------------------------------------


def run_both(args):
    port = args.port or free_port(args.host)
    argv = [sys.executable, os.path.abspath(__file__), "--role", "decode",
            "--port", str(port)] + forwarded(args)
    decode = subprocess.Popen(argv)
    args.port = port
    try:
        rc = run_prefill(args, pick_lib(args))
        decode_rc = decode.wait(timeout=120)
    finally:
        if decode.poll() is None:  # prefill failed: decode waits in vain
            decode.kill()
            decode.wait()
    return rc or decode_rc


def forwarded(args):
    out = ["--host", args.host, "--lib", pick_lib(args)]
    for name in ("layers", "heads", "head_dim", "block_tokens",
                 "cache_blocks", "num_blocks", "num_cpus", "iters"):
        out += ["--" + name.replace("_", "-"), str(getattr(args, name))]
    return out


def pick_lib(args):
    global torch
    if args.lib == "numpy":
        return "numpy"
    try:
        import torch
    except ImportError:
        if args.lib == "torch":
            sys.exit("kv_transfer: --lib torch, but torch is not installed")
        return "numpy"
    return "torch"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=["decode", "prefill", "both"],
                   default="both")
    p.add_argument("--host", default="127.0.0.1",
                   help="out-of-band address: decode listens, prefill connects")
    p.add_argument("--port", type=int, default=0,
                   help="out-of-band port (both: a free one)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--block-tokens", type=int, default=16)
    p.add_argument("--cache-blocks", type=int, default=256,
                   help="blocks in decode's cache")
    p.add_argument("--num-blocks", type=int, default=32,
                   help="blocks of the request moved from prefill to decode")
    p.add_argument("--iters", type=int, default=1)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--local-gpu-idx", type=int, default=0)
    p.add_argument("--lib", choices=["auto", "torch", "numpy"], default="auto")
    args = p.parse_args()
    if args.num_blocks > args.cache_blocks:
        p.error("--num-blocks must not exceed --cache-blocks")
    if args.role != "both" and not args.port:
        p.error("--port is needed with --role decode/prefill")
    if args.role == "decode":
        return run_decode(args, pick_lib(args))
    if args.role == "prefill":
        return run_prefill(args, pick_lib(args))
    return run_both(args)


if __name__ == "__main__":
    run_main("kv_transfer", main)
