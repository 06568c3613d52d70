"""One side of a two-process scenario (run by conftest.run_pair).

    peer.py SCENARIO SIDE OOB_DIR MY_ADDR PEER_ADDR

Side 0 (server) makes an endpoint, publishes its metadata through files in
OOB_DIR and accepts; side 1 (client) connects. Each scenario records what
it observed in a dict, printed as "RESULT {json}"; the pytest side asserts
on it. Unexpected errors raise (exit 1, traceback on stderr).
"""
import json
import os
import sys
import threading
import time

import numpy as np

from uccl import p2p  # the import path UCCL applications use
import tcpx_p2p

SERVER, CLIENT = 0, 1


class Oob:
    """Out-of-band exchange through files (both namespaces share /tmp)."""

    def __init__(self, directory):
        self.dir = directory

    def put(self, name, data=b""):
        tmp = os.path.join(self.dir, f".{name}.{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.dir, name))

    def get(self, name, timeout=60.0):
        path = os.path.join(self.dir, name)
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise TimeoutError(f"peer never published {name}")
            time.sleep(0.005)
        with open(path, "rb") as f:
            return f.read()


def pattern(seed, n):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


def same(a, b):
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def reg(ep, obj):
    ptr, n = tcpx_p2p.buffer_ptr(obj)
    ok, mr = ep.reg(ptr, n)
    assert ok, "reg failed"
    return mr, ptr, n


def setup(side, oob, num_cpus=2):
    """Connected (endpoint, conn_id, facts)."""
    if side == SERVER:
        ep = p2p.Endpoint(local_gpu_idx=0, num_cpus=num_cpus)
        meta = ep.get_metadata()
        oob.put("meta", meta)
        ok, ip, gpu, conn = ep.accept()
        assert ok, "accept failed"
        return ep, conn, {"meta_len": len(meta), "peer_ip": ip,
                          "peer_gpu": gpu,
                          "own": list(p2p.Endpoint.parse_metadata(meta))}
    ep = p2p.Endpoint(1, num_cpus)  # no GPU 1 here: host memory still works
    ip, port, gpu = p2p.Endpoint.parse_metadata(metadata=oob.get("meta"))
    ok, conn = ep.connect(remote_ip_addr=ip, remote_gpu_idx=gpu,
                          remote_port=port)
    assert ok, f"connect to {ip}:{port} failed"
    return ep, conn, {"server": [ip, port, gpu]}


def poll_until_done(ep, transfer_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        ok, done = ep.poll_async(transfer_id)
        if done or not ok:
            return ok
        if time.monotonic() > deadline:
            return False


# ---- scenarios ------------------------------------------------------------


def sc_metadata(side, oob, res):
    ep, conn, facts = setup(side, oob)
    res.update(facts)
    res["oob_ip"] = p2p.get_oob_ip()
    res["conn_id"] = conn


SIZES = [1, 4096, (1 << 20) + 3, 8 << 20]


def sc_send_recv(side, oob, res):
    import torch
    ep, conn, _ = setup(side, oob)
    for i, n in enumerate(SIZES):
        if side == CLIENT:
            data = pattern(i, n)
            mr, ptr, _ = reg(ep, data)
            res[f"send_{n}"] = ep.send(conn, mr, ptr, n) if i % 2 else \
                ep.send(conn_id=conn, mr_id=mr, ptr=ptr, size=n)
        else:
            if i == 2:
                time.sleep(0.3)  # the send is posted before this recv
            buf = np.zeros(n, dtype=np.uint8)
            mr, ptr, _ = reg(ep, buf)
            res[f"recv_{n}"] = ep.recv(conn, mr, ptr, n) if i % 2 else \
                ep.recv(conn_id=conn, mr_id=mr, ptr=ptr, size=n)
            res[f"match_{n}"] = same(buf, pattern(i, n))
    # torch CPU tensors, fp16, through data_ptr()
    gen = torch.Generator().manual_seed(7)
    want = torch.randn(64, 8, 128, generator=gen).to(torch.float16)
    if side == CLIENT:
        mr, ptr, n = reg(ep, want)
        res["send_torch"] = ep.send(conn, mr, want.data_ptr(), n)
    else:
        got = torch.empty_like(want)
        mr, _, n = reg(ep, got)
        res["recv_torch"] = ep.recv(conn, mr, got.data_ptr(), n)
        res["match_torch"] = bool(torch.equal(got, want))
    # recv's size is a capacity, even beyond the registered region
    if side == CLIENT:
        data = pattern(50, 4096)
        mr, ptr, _ = reg(ep, data)
        res["send_4096"] = ep.send(conn, mr, ptr, 4096)
    else:
        buf = np.zeros(4096, dtype=np.uint8)
        mr, ptr, _ = reg(ep, buf)
        res["recv_capacity_8192"] = ep.recv(conn, mr, ptr, 8192)
        res["match_capacity"] = same(buf, pattern(50, 4096))


def sc_too_big(side, oob, res):
    ep, conn, _ = setup(side, oob)
    buf = np.full(8192, 7, dtype=np.uint8)
    mr, ptr, _ = reg(ep, buf)
    if side == CLIENT:
        res["send"] = ep.send(conn, mr, ptr, 8192)
    else:
        res["recv"] = ep.recv(conn, mr, ptr, 4096)
        res["tail_untouched"] = bool((buf[4096:] == 7).all())


BLOCKS, BLOCK = 32, 64 << 10
ONE_SIDED = 4 << 20


def serve_one_sided(ep, conn, oob, res):
    """Advertise and then only sleep: the peer's reads/writes need no call."""
    buf = np.zeros(ONE_SIDED, dtype=np.uint8)
    mr, ptr, n = reg(ep, buf)
    ok, meta = ep.advertise(conn, mr, ptr, n)
    res["advertise_ok"], res["meta_len"] = ok, len(meta)
    blocks = [np.zeros(BLOCK, dtype=np.uint8) for _ in range(BLOCKS)]
    ptrs = [b.ctypes.data for b in blocks]
    ok, mrs = ep.regv(ptrs, [BLOCK] * BLOCKS)
    res["regv_ok"], res["regv_n"] = ok, len(mrs)
    ok, metas = ep.advertisev(conn_id=conn, mr_id_v=mrs, ptr_v=ptrs,
                              size_v=[BLOCK] * BLOCKS, num_iovs=BLOCKS)
    res["advertisev_ok"] = ok
    res["advertisev_lens"] = sorted({len(m) for m in metas})
    gone = np.zeros(4096, dtype=np.uint8)
    gmr, gptr, _ = reg(ep, gone)
    _, gone_meta = ep.advertise(conn, gmr, gptr, 4096)
    res["dereg_ok"] = ep.dereg(gmr)
    oob.put("blob", meta)
    oob.put("blobs", b"".join(metas))
    oob.put("blob_dereg", gone_meta)
    oob.get("client_done", timeout=90)
    res["final_match"] = same(buf, pattern(100, ONE_SIDED))
    res["blocks_match"] = all(same(b, pattern(200 + i, BLOCK))
                              for i, b in enumerate(blocks))
    res["dereg_untouched"] = not gone.any()


def raises_runtime_and_value(fn):
    try:
        fn()
    except RuntimeError as e:
        return isinstance(e, ValueError)
    return False


def use_one_sided(ep, conn, oob, res):
    meta = oob.get("blob")
    blob = oob.get("blobs")
    metas = [blob[i * 64:(i + 1) * 64] for i in range(BLOCKS)]
    n = ONE_SIDED
    src = pattern(101, n)
    smr, sptr, _ = reg(ep, src)
    dst = np.zeros(n, dtype=np.uint8)
    dmr, dptr, _ = reg(ep, dst)
    res["write"] = ep.write(conn, smr, sptr, n, meta)
    res["read"] = ep.read(conn_id=conn, mr_id=dmr, ptr=dptr, size=n,
                          meta=meta)
    res["read_match"] = same(dst, src)
    # the same blob again, asynchronously
    src[:] = pattern(100, n)
    ok, tid = ep.write_async(conn, smr, sptr, n, meta)
    res["write_async"] = ok and poll_until_done(ep, tid)
    dst[:] = 0
    ok, tid = ep.read_async(conn_id=conn, mr_id=dmr, ptr=dptr, size=n,
                            meta=meta)
    res["read_async"] = ok and poll_until_done(ep, tid)
    res["read_async_match"] = same(dst, src)
    # refusals: a wrong key, garbage, too many bytes, a deregistered region
    bad = bytearray(meta)
    bad[32] ^= 0xFF
    res["write_bad_key"] = ep.write(conn, smr, sptr, n, bytes(bad))
    res["read_bad_key"] = ep.read(conn, dmr, dptr, n, bytes(bad))
    res["write_garbage"] = ep.write(conn, smr, sptr, 64, os.urandom(64))
    big = np.zeros(n + 4096, dtype=np.uint8)
    bmr, bptr, _ = reg(ep, big)
    res["write_too_long"] = ep.write(conn, bmr, bptr, n + 1, meta)
    res["write_dereg"] = ep.write(conn, smr, sptr, 4096,
                                  oob.get("blob_dereg"))
    res["short_meta_raises"] = raises_runtime_and_value(
        lambda: ep.write(conn, smr, sptr, n, meta[:63]))
    res["read_after_refusals"] = ep.read(conn, dmr, dptr, n, meta)
    res["read_after_refusals_match"] = same(dst, src)
    # vectored: 32 blocks
    blocks = [pattern(200 + i, BLOCK) for i in range(BLOCKS)]
    ptrs = [b.ctypes.data for b in blocks]
    ok, mrs = ep.regv(ptrs=ptrs, sizes=[BLOCK] * BLOCKS)
    res["writev"] = ep.writev(conn, mrs, ptrs, [BLOCK] * BLOCKS, metas,
                              BLOCKS)
    back = [np.zeros(BLOCK, dtype=np.uint8) for _ in range(BLOCKS)]
    bptrs = [b.ctypes.data for b in back]
    _, bmrs = ep.regv(bptrs, [BLOCK] * BLOCKS)
    res["readv"] = ep.readv(conn_id=conn, mr_id_v=bmrs, ptr_v=bptrs,
                            size_v=[BLOCK] * BLOCKS, meta_blob_v=metas,
                            num_iovs=BLOCKS)
    res["readv_match"] = all(same(a, b) for a, b in zip(back, blocks))
    oob.put("client_done")


def sc_one_sided(side, oob, res):
    ep, conn, _ = setup(side, oob)
    if side == SERVER:
        serve_one_sided(ep, conn, oob, res)
    else:
        use_one_sided(ep, conn, oob, res)


def vector_sizes(extra=0):
    return [(i * 7919) % 100000 + 1 + extra for i in range(BLOCKS)]


def sc_vector(side, oob, res):
    ep, conn, _ = setup(side, oob)
    for rnd, asynchronous in enumerate((False, True, False)):
        sizes = vector_sizes()
        if side == CLIENT:
            bufs = [pattern(300 + 50 * rnd + i, s) for i, s in enumerate(sizes)]
            ptrs = [b.ctypes.data for b in bufs]
            ok, mrs = ep.regv(ptrs, sizes)
            if asynchronous:
                ok, tid = ep.sendv_async(conn, mrs, ptrs, sizes, BLOCKS)
                res[f"send_{rnd}"] = ok and poll_until_done(ep, tid)
            else:
                res[f"send_{rnd}"] = ep.sendv(conn, mr_id_v=mrs,
                                              data_ptr_v=ptrs, size_v=sizes,
                                              num_iovs=BLOCKS)
            continue
        # round 2 posts capacities larger than what is sent
        caps = vector_sizes(100 if rnd == 2 else 0)
        bufs = [np.zeros(c, dtype=np.uint8) for c in caps]
        ptrs = [b.ctypes.data for b in bufs]
        ok, mrs = ep.regv(ptrs, caps)
        if asynchronous:
            ok, tid = ep.recvv_async(conn, mrs, ptrs, caps, BLOCKS)
            res[f"recv_{rnd}"] = ok and poll_until_done(ep, tid)
        else:
            res[f"recv_{rnd}"] = ep.recvv(conn, mrs, ptrs, caps, BLOCKS)
        res[f"match_{rnd}"] = all(
            same(b[:s], pattern(300 + 50 * rnd + i, s))
            for i, (b, s) in enumerate(zip(bufs, sizes)))


ASYNC_N, ASYNC_SIZE, POLLERS = 16, 256 << 10, 4


def poll_from_threads(ep, ids):
    """Poll each id from one of POLLERS threads until done; -> all ok."""
    oks = [None] * len(ids)

    def poller(t):
        for k in range(t, len(ids), POLLERS):
            oks[k] = poll_until_done(ep, ids[k])

    threads = [threading.Thread(target=poller, args=(t,))
               for t in range(POLLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return all(oks)


def sc_async_threads(side, oob, res):
    """Both directions at once over two connections, polled from threads."""
    ep, conn_a, _ = setup(side, oob)
    if side == SERVER:
        ok, _, _, conn_b = ep.accept()
        incoming, outgoing = conn_a, conn_b
    else:
        ip, port, gpu = p2p.Endpoint.parse_metadata(oob.get("meta"))
        ok, conn_b = ep.connect(ip, gpu, port)
        incoming, outgoing = conn_b, conn_a
    res["second_conn"] = ok
    seed = 400 if side == CLIENT else 500
    out = [pattern(seed + k, ASYNC_SIZE) for k in range(ASYNC_N)]
    inb = [np.zeros(ASYNC_SIZE, dtype=np.uint8) for _ in range(ASYNC_N)]
    ids = []
    for k in range(ASYNC_N):
        rmr, rptr, _ = reg(ep, inb[k])
        smr, sptr, _ = reg(ep, out[k])
        ok1, rid = ep.recv_async(incoming, rmr, rptr, ASYNC_SIZE)
        ok2, sid = ep.send_async(conn_id=outgoing, mr_id=smr, ptr=sptr,
                                 size=ASYNC_SIZE)
        assert ok1 and ok2, "posting failed"
        ids += [rid, sid]
    res["all_done_ok"] = poll_from_threads(ep, ids)
    peer_seed = 500 if side == CLIENT else 400
    res["match"] = all(same(inb[k], pattern(peer_seed + k, ASYNC_SIZE))
                       for k in range(ASYNC_N))
    # a finished transfer is forgotten: polling it again fails, never hangs
    res["poll_again"] = list(ep.poll_async(ids[0]))


EXIT_SIZE = 16 << 20


def sc_send_then_exit(side, oob, res):
    ep, conn, _ = setup(side, oob)
    if side == CLIENT:
        data = pattern(600, EXIT_SIZE)
        mr, ptr, _ = reg(ep, data)
        ok = ep.send(conn, mr, ptr, EXIT_SIZE)
        print("RESULT " + json.dumps({"send": ok}), flush=True)
        oob.put("finished_1")
        os._exit(0)  # no clean-up, as applications often leave
    time.sleep(1.0)  # the sender is gone before this recv is posted
    buf = np.zeros(EXIT_SIZE, dtype=np.uint8)
    mr, ptr, _ = reg(ep, buf)
    res["recv"] = ep.recv(conn, mr, ptr, EXIT_SIZE)
    res["match"] = same(buf, pattern(600, EXIT_SIZE))


def sc_peer_loss(side, oob, res):
    ep, conn, _ = setup(side, oob)
    if side == CLIENT:
        oob.get("server_ready")
        print("RESULT " + json.dumps({"exiting": True}), flush=True)
        oob.put("finished_1")
        os._exit(0)
    buf = np.zeros(1 << 20, dtype=np.uint8)
    mr, ptr, n = reg(ep, buf)
    ok, tid = ep.recv_async(conn, mr, ptr, n)
    oob.put("server_ready")
    t0 = time.monotonic()
    res["recv"] = ep.recv(conn, mr, ptr, n)
    res["async_ok"] = ok and poll_until_done(ep, tid)
    res["send"] = ep.send(conn, mr, ptr, n)
    res["elapsed"] = time.monotonic() - t0


IPC_SIZE = 2 << 20


def sc_ipc(side, oob, res):
    """connect_local/accept_local and the *_ipc calls on host buffers."""
    if side == SERVER:
        ep = p2p.Endpoint(0, 2)
        oob.put("ready")
        ok, gpu, conn = ep.accept_local()
        res["accept_local"], res["peer_gpu"] = ok, gpu
        buf = np.zeros(IPC_SIZE, dtype=np.uint8)
        res["recv_ipc"] = ep.recv_ipc(conn, buf.ctypes.data, IPC_SIZE)
        res["recv_match"] = same(buf, pattern(700, IPC_SIZE))
        target = np.zeros(IPC_SIZE, dtype=np.uint8)
        ok, info = ep.advertise_ipc(conn, target.ctypes.data, IPC_SIZE)
        res["advertise_ipc"], res["info_len"] = ok, len(info)
        oob.put("info", info)
        oob.get("client_done", timeout=90)  # no call of ours meanwhile
        res["write_match"] = same(target, pattern(701, IPC_SIZE))
        return
    oob.get("ready")
    ep = p2p.Endpoint(1, 2)
    ok, conn = ep.connect_local(remote_gpu_idx=0)
    assert ok, "connect_local failed"
    res["connect_local"] = ok
    data = pattern(700, IPC_SIZE)
    res["send_ipc"] = ep.send_ipc(conn, data.ctypes.data, IPC_SIZE)
    info = oob.get("info")
    src = pattern(701, IPC_SIZE)
    res["write_ipc"] = ep.write_ipc(conn, src.ctypes.data, IPC_SIZE, info)
    back = np.zeros(IPC_SIZE, dtype=np.uint8)
    ok, tid = ep.read_ipc_async(conn, back.ctypes.data, IPC_SIZE, info)
    res["read_ipc_async"] = ok and poll_until_done(ep, tid)
    res["read_match"] = same(back, src)
    oob.put("client_done")


def sc_transfer(side, oob, res):
    """uccl.transfer.TransferManager: the target's tensor is written by the
    initiator (network path between hosts, IPC path on one host)."""
    from uccl.transfer import TransferManager
    addr = res["addr"]
    if side == SERVER:
        tm = TransferManager(0, 2, 0, listen_host=addr)
        oob.put("port", str(tm.listen_socket.getsockname()[1]).encode())
        conn = tm.accept()
        target = np.zeros(IPC_SIZE, dtype=np.uint8)
        tid = tm.register_transfer(conn, target)
        res["post"] = tm.post_transfer_metadata(tid)
        res["wait"] = tm.wait_transfer_done(tid)
        res["match"] = same(target, pattern(800, IPC_SIZE))
        res["is_local"] = tm.conn_table[conn].is_local
        res["dereg"] = tm.deregister_transfer(tid)
        return
    port = int(oob.get("port"))
    tm = TransferManager(1, 2, 0, listen_host=addr)
    conn = tm.connect(sys.argv[5], port)
    src = pattern(800, IPC_SIZE)
    tid = tm.register_transfer(conn, src)
    poll = tm.do_transfer_async(tid, tm.fetch_transfer_metadata(tid))
    while not tm.check_transfer_done(tid, poll):
        pass
    res["post_done"] = tm.post_transfer_done(tid)
    res["is_local"] = tm.conn_table[conn].is_local


SCENARIOS = {name[3:]: fn for name, fn in globals().items()
             if name.startswith("sc_")}


def main():
    scenario, side, oob_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    res = {"addr": sys.argv[4]}
    SCENARIOS[scenario](side, Oob(oob_dir), res)
    print("RESULT " + json.dumps(res), flush=True)
    # Leave without tearing down, as many applications do; the peer may
    # still be reading from us, so wait until it has finished too.
    Oob(oob_dir).put(f"finished_{side}")
    Oob(oob_dir).get(f"finished_{1 - side}", timeout=60)
    os._exit(0)


if __name__ == "__main__":
    main()
