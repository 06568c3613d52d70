"""GPU variant of the binding's two-process tests (run by scripts/gpu-check).

Two processes, torch CUDA tensors (GPU 0 and GPU 1 when there are two):
send/recv, sendv/recvv, one-sided write/read through advertised blobs,
async with poll_async, and the same-host calls (connect_local, send_ipc,
recv_ipc, write_ipc, read_ipc). Every transfer is checked byte for byte
against a seeded pattern, destinations poisoned first. Prints one line per
check and "N passed, N failed"; exit status 1 on any failure.
"""
import multiprocessing as mp
import sys

import torch

SIZES = [1, 4095, 4096, (1 << 20) + 7, 64 << 20]


def pattern(seed, n, device):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n,), dtype=torch.uint8, generator=g).to(device)


def poisoned(n, device):
    return torch.full((n,), 0xA5, dtype=torch.uint8, device=device)


def reg(ep, t):
    ok, mr = ep.reg(t.data_ptr(), t.numel())
    assert ok, "reg failed"
    return mr


def server(q_in, q_out, q_res):
    from uccl import p2p
    dev = "cuda:0"
    torch.cuda.set_device(0)
    ep = p2p.Endpoint(0, 2)
    q_out.put(ep.get_metadata())
    ok, ip, gpu, conn = ep.accept()
    res = [("accept", ok)]
    for n in SIZES:  # two-sided
        buf = poisoned(n + 64, dev)
        mr = reg(ep, buf)
        ok = ep.recv(conn, mr, buf.data_ptr(), n)
        torch.cuda.synchronize()
        good = ok and torch.equal(buf[:n], pattern(n, n, dev)) and bool((buf[n:] == 0xA5).all())
        res.append((f"recv {n} B", good))
    small = poisoned(4096, dev)  # a host send into GPU memory (inline bytes)
    mr = reg(ep, small)
    ok = ep.recv(conn, mr, small.data_ptr(), 3000)
    torch.cuda.synchronize()
    res.append(("recv 3000 B from host memory into GPU", ok and torch.equal(
        small[:3000], pattern(3000, 3000, dev)) and bool((small[3000:] == 0xA5).all())))
    blocks = [poisoned(4096 * (i + 1), dev) for i in range(8)]  # vectored
    mrs = [reg(ep, b) for b in blocks]
    ok = ep.recvv(conn, mrs, [b.data_ptr() for b in blocks], [b.numel() for b in blocks], 8)
    torch.cuda.synchronize()
    res.append(("recvv 8 blocks", ok and all(torch.equal(b, pattern(100 + i, b.numel(), dev))
                                           for i, b in enumerate(blocks))))
    target = poisoned(8 << 20, dev)  # one-sided target
    mr = reg(ep, target)
    ok, blob = ep.advertise(conn, mr, target.data_ptr(), target.numel())
    q_out.put(bytes(blob))
    assert q_in.get() == "written"
    torch.cuda.synchronize()
    res.append(("written by peer (write)", torch.equal(target, pattern(7, target.numel(), dev))))
    q_out.put("checked")
    ok, gpu, lconn = ep.accept_local()  # same host: CUDA IPC
    res.append(("accept_local", ok))
    buf = poisoned(32 << 20, dev)
    ok = ep.recv_ipc(lconn, buf.data_ptr(), buf.numel())
    torch.cuda.synchronize()
    res.append(("recv_ipc 32 MiB", ok and torch.equal(buf, pattern(9, buf.numel(), dev))))
    area = pattern(11, 16 << 20, dev)
    ok, info = ep.advertise_ipc(lconn, area.data_ptr(), area.numel())
    q_out.put(bytes(info))
    assert q_in.get() == "done"
    torch.cuda.synchronize()
    res.append(("written by peer (write_ipc)", torch.equal(area[:1 << 20], pattern(12, 1 << 20, dev))))
    q_res.put(res)


def client(q_in, q_out, q_res):
    from uccl import p2p
    ngpu = torch.cuda.device_count()
    gpu = 1 if ngpu > 1 else 0
    dev = f"cuda:{gpu}"
    torch.cuda.set_device(gpu)
    ep = p2p.Endpoint(1, 2)  # index 1: connect_local(0) reaches the server
    ip, port, rgpu = p2p.Endpoint.parse_metadata(q_in.get())
    ok, conn = ep.connect(ip, rgpu, remote_port=port)
    res = [("connect", ok)]
    for n in SIZES:
        buf = pattern(n, n, dev)
        ok, xid = ep.send_async(conn, reg(ep, buf), buf.data_ptr(), n)
        done = False
        while ok and not done:
            ok, done = ep.poll_async(xid)
        res.append((f"send_async {n} B", ok and done))
    host = pattern(3000, 3000, "cpu")
    res.append(("send 3000 B from host memory", ep.send(conn, reg(ep, host), host.data_ptr(), 3000)))
    blocks = [pattern(100 + i, 4096 * (i + 1), dev) for i in range(8)]
    ok = ep.sendv(conn, [reg(ep, b) for b in blocks], [b.data_ptr() for b in blocks],
                  [b.numel() for b in blocks], 8)
    res.append(("sendv 8 blocks", ok))
    blob = q_in.get()
    src = pattern(7, 8 << 20, dev)
    ok = ep.write(conn, reg(ep, src), src.data_ptr(), src.numel(), blob)
    res.append(("write 8 MiB", ok))
    back = poisoned(8 << 20, dev)
    ok = ep.read(conn, reg(ep, back), back.data_ptr(), back.numel(), blob)
    torch.cuda.synchronize()
    res.append(("read 8 MiB back", ok and torch.equal(back, src)))
    small = pattern(7, 1000, "cpu")  # host bytes inline into GPU memory
    ok = ep.write(conn, reg(ep, small), small.data_ptr(), 1000, blob)
    tiny = torch.zeros(1000, dtype=torch.uint8)
    ok2 = ep.read(conn, reg(ep, tiny), tiny.data_ptr(), 1000, blob)
    res.append(("small host write into GPU memory, read back to host",
                ok and ok2 and torch.equal(tiny, small)))
    q_out.put("written")
    assert q_in.get() == "checked"
    ok, lconn = ep.connect_local(0)
    res.append(("connect_local", ok))
    src = pattern(9, 32 << 20, dev)
    res.append(("send_ipc 32 MiB", ep.send_ipc(lconn, src.data_ptr(), src.numel())))
    info = q_in.get()
    piece = pattern(12, 1 << 20, dev)
    res.append(("write_ipc 1 MiB", ep.write_ipc(lconn, piece.data_ptr(), piece.numel(), info)))
    got = poisoned(1 << 20, dev)
    ok = ep.read_ipc(lconn, got.data_ptr(), got.numel(), info)
    torch.cuda.synchronize()
    res.append(("read_ipc 1 MiB back", ok and torch.equal(got, piece)))
    q_out.put("done")
    q_res.put(res)


def main():
    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 77
    ctx = mp.get_context("spawn")
    to_server, to_client, q_res = ctx.Queue(), ctx.Queue(), ctx.Queue()
    ps = ctx.Process(target=server, args=(to_server, to_client, q_res))
    pc = ctx.Process(target=client, args=(to_client, to_server, q_res))
    ps.start()
    pc.start()
    results = []
    try:
        for _ in range(2):  # each side's result list, before joining
            results += q_res.get(timeout=300)
    except Exception as e:  # a side died or hung: reported as a failure
        results.append((f"both sides report ({type(e).__name__})", False))
    ps.join(30)
    pc.join(30)
    for p in (ps, pc):
        if p.is_alive():
            p.kill()
    passed = sum(1 for _, ok in results if ok)
    for name, ok in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    failed = len(results) - passed + (ps.exitcode != 0) + (pc.exitcode != 0)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
