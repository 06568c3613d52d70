#!/usr/bin/env python3
"""Two-sided bandwidth benchmark, shaped like UCCL's benchmark_uccl.py and
written against its API (`from uccl import p2p`), run on tcpx-p2p.

The client sends, the server receives; for every size both print Gbps,
GB/s and the time per message. With --num-kvblocks K each message is K
blocks of size/K bytes moved by one sendv/recvv.

Three ways to run it:
    python3 examples/benchmark.py --sizes 4K,1M,64M --device cpu
        both sides as two processes on this machine;
    python3 examples/benchmark.py --role server --host H --port P ...
    python3 examples/benchmark.py --role client --host H --port P ...
        two plain processes; H:P is the out-of-band channel (server listens)
        that carries the endpoint metadata;
    torchrun --nproc_per_node 2 examples/benchmark.py ...
        RANK 0 is the client, RANK 1 the server, metadata through
        torch.distributed (gloo), as UCCL's script does. With Debian 12's
        torch 1.13 (python3-torch) add `--redirects 2 --tee 2` before
        examples/benchmark.py: that torch predates Python 3.11 and cannot
        parse its own default for these flags ("'NoneType' object has no
        attribute 'get'" before any worker starts); newer torch needs
        nothing. Set UCCL_SOCKET_IFNAME (and GLOO_SOCKET_IFNAME) to pick
        the interface, e.g. `lo` on one machine.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

from uccl import p2p

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oob import Channel, free_port, run_main  # noqa: E402

DEFAULT_SIZES = "256,1K,4K,16K,64K,256K,1M,10M,16M,100M"


def parse_size(text):
    text = text.strip().upper().rstrip("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(float(text[:-1] if mult > 1 else text) * mult)


def pretty(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


# ---- buffers ----------------------------------------------------------------


def make_buffer(nbytes, device, gpu_idx, fill):
    """(buffer, ptr): numpy on the host, a torch tensor on the GPU."""
    if device == "gpu":
        import torch
        buf = torch.full((nbytes,), fill, dtype=torch.uint8,
                         device=f"cuda:{gpu_idx}")
        return buf, buf.data_ptr()
    buf = np.full(nbytes, fill, dtype=np.uint8)
    return buf, buf.ctypes.data


def host_bytes(buf):
    return buf.cpu().numpy() if hasattr(buf, "cpu") else buf


class Blocks:
    """K registered blocks making up one message of `size` bytes."""

    def __init__(self, ep, size, args, fill):
        per = max(1, size // args.num_kvblocks)
        self.bufs, self.ptrs, self.mrs = [], [], []
        for k in range(args.num_kvblocks):
            buf, ptr = make_buffer(per, args.device, args.local_gpu_idx,
                                   (fill + k) % 251)
            ok, mr = ep.reg(ptr, per)
            assert ok, "reg failed"
            self.bufs.append(buf)
            self.ptrs.append(ptr)
            self.mrs.append(mr)
        self.sizes = [per] * args.num_kvblocks
        self.total = per * args.num_kvblocks


# ---- one transfer, either direction and API -----------------------------------


def wait(ep, transfer_id):
    while True:
        ok, done = ep.poll_async(transfer_id)
        assert ok, "transfer failed"
        if done:
            return


def transfer(ep, conn, blocks, sending, use_async):
    k = len(blocks.sizes)
    if k == 1:
        args = (conn, blocks.mrs[0], blocks.ptrs[0], blocks.sizes[0])
        if use_async:
            ok, tid = (ep.send_async if sending else ep.recv_async)(*args)
            assert ok, "posting failed"
            wait(ep, tid)
        else:
            assert (ep.send if sending else ep.recv)(*args), "transfer failed"
        return
    args = (conn, blocks.mrs, blocks.ptrs, blocks.sizes, k)
    if use_async:
        ok, tid = (ep.sendv_async if sending else ep.recvv_async)(*args)
        assert ok, "posting failed"
        wait(ep, tid)
    else:
        assert (ep.sendv if sending else ep.recvv)(*args), "transfer failed"


def run_sizes(ep, conn, args, sending):
    role = "Client" if sending else "Server"
    for size in args.sizes:
        blocks = Blocks(ep, size, args, fill=7 if sending else 0)
        transfer(ep, conn, blocks, sending, args.async_api)  # warm-up
        start = time.perf_counter()
        for _ in range(args.num_iters):
            transfer(ep, conn, blocks, sending, args.async_api)
        elapsed = time.perf_counter() - start
        moved = blocks.total * args.num_iters
        note = ""
        if not sending:  # every byte of the last message arrived
            good = all(int(host_bytes(b)[0]) == (7 + k) % 251 and
                       bool((host_bytes(b) == host_bytes(b)[0]).all())
                       for k, b in enumerate(blocks.bufs))
            note = " | data ok" if good else " | DATA MISMATCH"
            if not good:
                raise SystemExit(f"[{role}] received data differs")
        print(f"[{role}] {pretty(size):>8} : {moved * 8 / elapsed / 1e9:6.2f} "
              f"Gbps | {moved / elapsed / 1e9:6.2f} GB/s | "
              f"{elapsed / args.num_iters:.6f} s{note}", flush=True)
    print(f"[{role}] Benchmark complete", flush=True)


# ---- roles ---------------------------------------------------------------


def serve(ep, args):
    ok, ip, gpu, conn = ep.accept()
    assert ok, "accept failed"
    print(f"[Server] Accept from {ip} (GPU {gpu}) conn_id={conn}", flush=True)
    run_sizes(ep, conn, args, sending=False)


def client(ep, args, metadata):
    ip, port, gpu = p2p.Endpoint.parse_metadata(metadata)
    ok, conn = ep.connect(ip, gpu, remote_port=port)
    assert ok, f"connect to {ip}:{port} failed"
    print(f"[Client] Connected to {ip}:{port} (GPU {gpu}) conn_id={conn}",
          flush=True)
    run_sizes(ep, conn, args, sending=True)


def run_role(args):
    ep = p2p.Endpoint(args.local_gpu_idx, args.num_cpus)
    if args.role == "server":
        chan = Channel.listen(args.host, args.port)
        chan.send(ep.get_metadata())
        serve(ep, args)
        chan.recv()  # the client has finished too
    else:
        chan = Channel.connect(args.host, args.port)
        client(ep, args, chan.recv())
        chan.send(b"done")
    return 0


def run_torchrun(args):
    import torch
    import torch.distributed as dist
    dist.init_process_group(backend="gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    assert world == 2, "this benchmark runs with exactly 2 processes"
    ep = p2p.Endpoint(args.local_gpu_idx, args.num_cpus)
    if rank == 1:  # server: rank 0 learns its metadata
        meta = ep.get_metadata()
        dist.send(torch.tensor([len(meta)] + list(meta), dtype=torch.uint8),
                  dst=0)
        serve(ep, args)
    else:
        t = torch.zeros(1 + 22, dtype=torch.uint8)
        dist.recv(t, src=1)
        raw = bytes(t.tolist())
        client(ep, args, raw[1:1 + raw[0]])
    dist.barrier()
    return 0


def run_local(args, argv):
    port = free_port(args.host)
    server = subprocess.Popen([sys.executable, os.path.abspath(__file__)] +
                              argv + ["--role", "server", "--host", args.host,
                                      "--port", str(port)])
    args.role, args.port = "client", port
    try:
        rc = run_role(args)
        server_rc = server.wait(timeout=600)
    finally:
        if server.poll() is None:  # the client failed: the server waits
            server.kill()
            server.wait()
    return rc or server_rc


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=["server", "client"])
    p.add_argument("--host", default="127.0.0.1",
                   help="out-of-band address (the server listens there)")
    p.add_argument("--port", type=int, default=0, help="out-of-band port")
    p.add_argument("--local-gpu-idx", type=int, default=0)
    p.add_argument("--num-cpus", type=int, default=4,
                   help="progress threads of the endpoint")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--sizes", default=DEFAULT_SIZES,
                   help="comma list of message sizes (K/M/G suffixes)")
    p.add_argument("--num-iters", "--iters", dest="num_iters", type=int,
                   default=100, help="timed iterations per size (+1 warm-up)")
    p.add_argument("--num-kvblocks", type=int, default=1,
                   help="blocks per message, moved by one sendv/recvv")
    p.add_argument("--async-api", action="store_true",
                   help="send_async/recv_async + poll_async")
    argv = sys.argv[1:]
    args = p.parse_args(argv)
    args.sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    if args.device == "gpu":
        import torch
        if not torch.cuda.is_available():
            p.error("--device gpu: torch sees no CUDA device here")
    print(f"tcpx-p2p benchmark | API: {'async' if args.async_api else 'sync'}"
          f" | device: {args.device} | kv blocks: {args.num_kvblocks} | "
          f"iters: {args.num_iters} | sizes: "
          f"{', '.join(pretty(s) for s in args.sizes)}", flush=True)
    if args.role:
        if not args.port:
            p.error("--role needs --port (and --host)")
        return run_role(args)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return run_torchrun(args)
    return run_local(args, argv)


if __name__ == "__main__":
    run_main("benchmark", main)
