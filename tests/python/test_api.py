"""The Endpoint API in one process: argument handling (names, types,
values), result shapes, logging, helpers and the uccl package."""
import ctypes
import logging
import socket
import struct
import subprocess
import sys

import numpy as np
import pytest

import tcpx_p2p
from tcpx_p2p import ArgumentError, Endpoint

NO_CONN = 2**64 - 1
META = b"\0" * 64


@pytest.fixture(scope="module")
def ep():
    return Endpoint(0, 1)


@pytest.fixture(scope="module")
def region(ep):
    buf = np.zeros(1 << 16, dtype=np.uint8)
    ok, mr = ep.reg(buf.ctypes.data, buf.nbytes)
    assert ok
    return buf, mr


# ---- metadata -----------------------------------------------------------


def test_metadata_is_ipv4_port_gpu(ep):
    meta = ep.get_metadata()
    assert isinstance(meta, bytes) and len(meta) == 10
    ip, port, gpu = Endpoint.parse_metadata(meta)
    assert ip == ".".join(str(b) for b in meta[:4])
    assert port == struct.unpack("!H", meta[4:6])[0]
    assert gpu == 0 == struct.unpack("=i", meta[6:10])[0]
    assert ep.get_endpoint_metadata() == meta  # older UCCL name


def test_parse_metadata_ipv6_and_static_call():
    blob = bytes(15) + b"\x01" + struct.pack("!H", 4242) + \
        struct.pack("=i", 7)
    assert Endpoint.parse_metadata(metadata=blob) == ("::1", 4242, 7)
    assert tcpx_p2p.Endpoint.parse_metadata(bytearray(blob))[2] == 7


@pytest.mark.parametrize("blob", [b"", b"\0" * 9, b"\0" * 11, b"\0" * 23])
def test_parse_metadata_wrong_length_raises(blob):
    with pytest.raises(RuntimeError):
        Endpoint.parse_metadata(blob)
    with pytest.raises(ValueError):
        Endpoint.parse_metadata(blob)


def test_parse_metadata_wrong_type():
    with pytest.raises(TypeError):
        Endpoint.parse_metadata("10.0.0.1")


def test_gpu_index_in_metadata_and_gpu_that_does_not_exist():
    e = Endpoint(local_gpu_idx=5, num_cpus=1)
    assert Endpoint.parse_metadata(e.get_metadata())[2] == 5
    assert e.local_gpu_idx == 5


def test_get_oob_ip_follows_uccl_socket_ifname():
    import os
    code = "from uccl import p2p; print(p2p.get_oob_ip())"
    env = {k: v for k, v in os.environ.items()
           if k not in ("TCPX_P2P_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")}
    env["UCCL_SOCKET_IFNAME"] = "lo"
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "127.0.0.1"


def test_get_oob_ip_matches_endpoint_metadata(ep):
    assert tcpx_p2p.get_oob_ip() == Endpoint.parse_metadata(
        ep.get_metadata())[0]


# ---- constructor --------------------------------------------------------


@pytest.mark.parametrize("args,exc", [
    (("0", 1), TypeError), ((0, "1"), TypeError), ((0.0, 1), TypeError),
    ((None, 1), TypeError), ((-1, 1), ValueError), ((0, -1), ValueError),
    ((0, 10**6), ValueError), ((2**40, 1), ValueError),
])
def test_constructor_rejects_bad_arguments(args, exc):
    with pytest.raises(exc):
        Endpoint(*args)


def test_constructor_needs_both_arguments():
    with pytest.raises(TypeError):
        Endpoint(0)


def test_constructor_options_reach_the_library():
    with pytest.raises(RuntimeError, match="chunk"):
        Endpoint(0, 1, chunk_size=1)  # the library's own bound (4 KiB..)
    e = Endpoint(0, 1, op_timeout_ms=100, ifname="lo")
    assert Endpoint.parse_metadata(e.get_metadata())[0] == "127.0.0.1"
    ok, ip, gpu, conn = e.accept()  # op_timeout_ms bounds accept
    assert (ok, ip, gpu, conn) == (False, "", -1, 0)


# ---- argument names (UCCL's) and types ------------------------------------


def calls(buf, mr):
    """Every data/set-up method with keyword arguments and an unknown
    connection or region: (name, callable, result on failure)."""
    p, n = buf.ctypes.data, buf.nbytes
    c = 987654
    return [
        ("connect", lambda e: e.connect(remote_ip_addr="127.0.0.1",
                                        remote_gpu_idx=0, remote_port=1),
         (False, 0)),
        ("send", lambda e: e.send(conn_id=c, mr_id=mr, ptr=p, size=n), False),
        ("recv", lambda e: e.recv(conn_id=c, mr_id=mr, ptr=p, size=n), False),
        ("send_async", lambda e: e.send_async(conn_id=c, mr_id=mr, ptr=p,
                                              size=n), (False, 0)),
        ("recv_async", lambda e: e.recv_async(conn_id=c, mr_id=mr, ptr=p,
                                              size=n), (False, 0)),
        ("sendv", lambda e: e.sendv(conn_id=c, mr_id_v=[mr], data_ptr_v=[p],
                                    size_v=[n], num_iovs=1), False),
        ("recvv", lambda e: e.recvv(conn_id=c, mr_id_v=[mr], data_ptr_v=[p],
                                    size_v=[n], num_iovs=1), False),
        # a descriptor does not depend on the connection: unknown region
        ("advertise", lambda e: e.advertise(conn_id=c, mr_id=c, ptr=p,
                                            size=n), (False, b"")),
        ("advertisev", lambda e: e.advertisev(conn_id=c, mr_id_v=[c],
                                              ptr_v=[p], size_v=[n],
                                              num_iovs=1), (False, [])),
        ("read", lambda e: e.read(conn_id=c, mr_id=mr, ptr=p, size=n,
                                  meta=META), False),
        ("read_async", lambda e: e.read_async(conn_id=c, mr_id=mr, ptr=p,
                                              size=n, meta=META),
         (False, 0)),
        ("readv", lambda e: e.readv(conn_id=c, mr_id_v=[mr], ptr_v=[p],
                                    size_v=[n], meta_blob_v=[META],
                                    num_iovs=1), False),
        ("write", lambda e: e.write(conn_id=c, mr_id=mr, ptr=p, size=n,
                                    meta=META), False),
        ("write_async", lambda e: e.write_async(conn_id=c, mr_id=mr, ptr=p,
                                                size=n, meta=META),
         (False, 0)),
        ("writev", lambda e: e.writev(conn_id=c, mr_id_v=[mr], ptr_v=[p],
                                      size_v=[n], meta_blob_v=[META],
                                      num_iovs=1), False),
        ("poll_async", lambda e: e.poll_async(transfer_id=123456),
         (False, True)),
    ]


def test_keyword_names_and_failure_shapes(ep, region, caplog):
    buf, mr = region
    for name, call, failed in calls(buf, mr):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="tcpx_p2p"):
            assert call(ep) == failed, name
        assert any(r.name == "tcpx_p2p" and "P2P_E" in r.getMessage()
                   for r in caplog.records), f"{name}: nothing logged"


def test_failure_log_names_the_cause(ep, region, caplog):
    buf, _ = region
    with caplog.at_level(logging.ERROR, logger="tcpx_p2p"):
        ok, mr = ep.reg(buf.ctypes.data, 16)
        assert ep.dereg(mr) is True
        assert ep.dereg(mr) is False
    assert "dereg failed: P2P_ENOTFOUND" in caplog.text


@pytest.mark.parametrize("bad", ["1", 1.0, None, [1], b"1", object()])
@pytest.mark.parametrize("position", range(4))
def test_wrong_types_raise_type_error(ep, bad, position):
    args = [1, 1, 0, 16]
    args[position] = bad
    for method in (ep.send, ep.recv, ep.send_async, ep.recv_async,
                   ep.advertise):
        with pytest.raises(TypeError):
            method(*args)
    for method in (ep.read, ep.write, ep.read_async, ep.write_async):
        with pytest.raises(TypeError):
            method(*args, META)


@pytest.mark.parametrize("value", [-1, 2**64, -2**70])
def test_out_of_range_integers_raise_value_error(ep, value):
    with pytest.raises(ValueError):
        ep.send(1, 1, 0, value)
    with pytest.raises(ValueError):
        ep.reg(value, 16)
    with pytest.raises(ValueError):
        ep.poll_async(value)
    with pytest.raises(ValueError):
        ep.connect("127.0.0.1", 0, remote_port=value - 1)


def _gpu_with_free_default_port():
    """A GPU index whose default port (19000 + index) nobody listens on."""
    for gpu in range(50, 400):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 19000 + gpu))
                return gpu
            except OSError:
                continue
    pytest.skip("no free port in 19050..19399")


def test_default_remote_port_without_a_listener_fails(ep):
    # UCCL's default remote_port=-1 means 19000 + remote GPU index; with
    # nothing listening there, connect fails cleanly. (GPU 0's port may
    # belong to an endpoint of a test running in parallel.)
    assert ep.connect("127.0.0.1", _gpu_with_free_default_port()) == (False, 0)


@pytest.mark.parametrize("meta", [b"", b"\0" * 63, b"\0" * 65, bytearray(10)])
def test_meta_of_wrong_length_raises_runtime_error(ep, region, meta):
    buf, mr = region
    for method in (ep.read, ep.write, ep.read_async, ep.write_async):
        with pytest.raises(RuntimeError):
            method(1, mr, buf.ctypes.data, 16, meta)
    with pytest.raises(RuntimeError):
        ep.writev(1, [mr], [buf.ctypes.data], [16], [meta], 1)


def test_meta_of_wrong_type_raises_type_error(ep, region):
    buf, mr = region
    with pytest.raises(TypeError):
        ep.read(1, mr, buf.ctypes.data, 16, "x" * 64)
    with pytest.raises(TypeError):  # 64 bytes, but not contiguous
        ep.read(1, mr, buf.ctypes.data, 16, memoryview(bytes(128))[::2])
    with pytest.raises(TypeError):
        ep.readv(1, [mr], [buf.ctypes.data], [16], ["x" * 64], 1)


def test_vector_lists_must_match_num_iovs(ep, region):
    buf, mr = region
    p = buf.ctypes.data
    with pytest.raises(RuntimeError):
        ep.sendv(1, [mr, mr], [p], [16], 1)
    with pytest.raises(RuntimeError):
        ep.recvv(1, [mr], [p], [16], 2)
    with pytest.raises(RuntimeError):
        ep.readv(1, [mr], [p], [16], [META, META], 1)
    with pytest.raises(ValueError):
        ep.advertisev(1, [mr], [p], [16], 2**70)
    with pytest.raises(RuntimeError):
        ep.regv([p, p], [16])
    with pytest.raises(TypeError):
        ep.sendv(1, "abc", [p], [16], 1)
    with pytest.raises(TypeError):
        ep.sendv(1, [mr], [p], [16.5], 1)
    with pytest.raises(ValueError):  # refused before building a huge list
        ep.sendv(1, range(2**40), [p], [16], 1)


def test_vectors_accept_tuples_and_numpy_arrays(ep, region):
    buf, mr = region
    p = buf.ctypes.data
    # right types, unknown connection: a library failure, not an exception
    assert ep.sendv(1, (mr,), np.array([p], dtype=np.uint64),
                    [np.int64(16)], 1) is False


def test_empty_vector_is_refused_cleanly(ep):
    assert ep.sendv(1, [], [], [], 0) is False


def test_reg_regv_dereg(ep):
    bufs = [np.zeros(4096, dtype=np.uint8) for _ in range(4)]
    ok, mrs = ep.regv([b.ctypes.data for b in bufs], [4096] * 4)
    assert ok and len(set(mrs)) == 4 and 0 not in mrs
    assert all(ep.dereg(m) for m in mrs)
    assert ep.reg(0, 16) == (False, 0)           # NULL with a size
    assert ep.reg(2**64 - 16, 32) == (False, 0)  # wraps around


def test_connect_accepts_metadata_blob(ep):
    other = Endpoint(0, 1)
    # connect(metadata) as older UCCL; the handshake then needs accept()
    import threading
    got = {}
    t = threading.Thread(target=lambda: got.update(a=other.accept()))
    t.start()
    ok, conn = ep.connect(other.get_metadata())
    t.join(30)
    assert ok and conn != 0
    assert got["a"][0] is True


def test_connect_argument_checks(ep):
    with pytest.raises(TypeError):
        ep.connect()
    with pytest.raises(TypeError):
        ep.connect(b"\0" * 10, 0)
    with pytest.raises(TypeError):
        ep.connect(metadata=b"\0" * 10, remote_ip_addr="1.2.3.4")
    with pytest.raises(TypeError):
        ep.connect(1234, 0)
    with pytest.raises(ValueError):
        ep.connect("127.0.0.1", 0, remote_port=70000)
    assert ep.connect("not-an-ip", 0, 1) == (False, 0)


# ---- same-host calls (connect_local, *_ipc) -------------------------------


@pytest.fixture
def local_pair(tmp_path, monkeypatch):
    """Two endpoints joined by connect_local; their unix sockets live in a
    private TMPDIR so that parallel tests cannot reach them."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    a, b = Endpoint(0, 2), Endpoint(7, 2)
    ok, conn_a = a.connect_local(remote_gpu_idx=7)  # before accept_local
    assert ok and conn_a != 0
    ok, gpu, conn_b = b.accept_local()
    assert ok and gpu == 0 and conn_b != 0
    return a, conn_a, b, conn_b


def in_thread(fn, *args):
    import threading
    out = {}
    t = threading.Thread(target=lambda: out.update(r=fn(*args)))
    t.start()
    return t, out


def test_send_ipc_recv_ipc_host_buffers(local_pair):
    a, conn_a, b, conn_b = local_pair
    src = np.random.default_rng(1).integers(0, 256, 3 << 20, dtype=np.uint8)
    dst = np.zeros(4 << 20, dtype=np.uint8)  # a capacity, as for recv
    t, out = in_thread(b.recv_ipc, conn_b, dst.ctypes.data, dst.nbytes)
    assert a.send_ipc(conn_id=conn_a, ptr=src.ctypes.data, size=src.nbytes)
    t.join(30)
    assert out["r"] is True
    assert np.array_equal(dst[:src.nbytes], src) and not dst[src.nbytes:].any()


def test_send_ipc_async_and_recv_ipc_async(local_pair):
    a, conn_a, b, conn_b = local_pair
    src = np.arange(1 << 20, dtype=np.uint8)
    dst = np.zeros(1 << 20, dtype=np.uint8)
    ok1, rid = b.recv_ipc_async(conn_b, dst.ctypes.data, dst.nbytes)
    ok2, sid = a.send_ipc_async(conn_a, src.ctypes.data, src.nbytes)
    assert ok1 and ok2
    for ep, tid in ((a, sid), (b, rid)):
        done = False
        while not done:
            ok, done = ep.poll_async(tid)
        assert ok
    assert np.array_equal(dst, src)


def test_advertise_ipc_write_ipc_read_ipc(local_pair):
    a, conn_a, b, conn_b = local_pair
    target = np.zeros(1 << 20, dtype=np.uint8)
    ok, info = b.advertise_ipc(conn_id=conn_b, ptr=target.ctypes.data,
                               size=target.nbytes)
    assert ok and len(info) == tcpx_p2p.IPC_INFO_SIZE
    src = np.random.default_rng(2).integers(0, 256, 1 << 20, dtype=np.uint8)
    assert a.write_ipc(conn_a, src.ctypes.data, src.nbytes, info=info)
    assert np.array_equal(target, src)  # b made no call
    back = np.zeros_like(src)
    ok, tid = a.read_ipc_async(conn_a, back.ctypes.data, back.nbytes, info)
    done = False
    while ok and not done:
        ok, done = a.poll_async(tid)
    assert ok and np.array_equal(back, src)
    src2 = src[::-1].copy()
    ok, tid = a.write_ipc_async(conn_a, src2.ctypes.data, src2.nbytes, info)
    done = False
    while ok and not done:
        ok, done = a.poll_async(tid)
    assert ok and np.array_equal(target, src2)
    assert a.read_ipc(conn_a, back.ctypes.data, 4096, info)
    assert np.array_equal(back[:4096], src2[:4096])
    # more than was advertised, and a blob that is not one, are refused
    big = np.zeros(2 << 20, dtype=np.uint8)
    assert a.write_ipc(conn_a, big.ctypes.data, big.nbytes, info) is False
    assert a.write_ipc(conn_a, src.ctypes.data, 16, bytes(128)) is False


def test_advertisev_ipc(local_pair):
    a, conn_a, b, conn_b = local_pair
    bufs = [np.zeros(4096 * (i + 1), dtype=np.uint8) for i in range(4)]
    ok, infos = b.advertisev_ipc(conn_b, [x.ctypes.data for x in bufs],
                                 [x.nbytes for x in bufs])
    assert ok and [len(i) for i in infos] == [tcpx_p2p.IPC_INFO_SIZE] * 4
    for x, info in zip(bufs, infos):
        src = np.full(x.nbytes, x.nbytes // 4096, dtype=np.uint8)
        assert a.write_ipc(conn_a, src.ctypes.data, src.nbytes, info)
    assert all((x == x.nbytes // 4096).all() for x in bufs)


def test_ipc_argument_checks(ep):
    with pytest.raises(RuntimeError):  # info must be IPC_INFO_SIZE bytes
        ep.write_ipc(1, 4096, 16, b"\0" * 88)
    with pytest.raises(TypeError):
        ep.send_ipc("1", 4096, 16)
    with pytest.raises(TypeError):
        ep.write_ipc(1, 4096, 16, "info")
    with pytest.raises(ValueError):
        ep.recv_ipc(1, 4096, -1)
    with pytest.raises(RuntimeError):
        ep.advertisev_ipc(1, [4096, 8192], [16])
    # unknown connection: a failure, not an exception
    assert ep.send_ipc(987654, 4096, 16) is False
    assert ep.send_ipc_async(987654, 4096, 16) == (False, 0)


def test_connect_local_to_nobody_fails(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    e = Endpoint(0, 1, op_timeout_ms=200)
    with caplog.at_level(logging.ERROR, logger="tcpx_p2p"):
        assert e.connect_local(remote_gpu_idx=5) == (False, 0)
        assert e.accept_local() == (False, -1, 0)
    assert "connect_local failed" in caplog.text


def test_get_oob_ip_leaves_connect_local_working(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    target, client = Endpoint(0, 1), Endpoint(1, 1)
    tcpx_p2p.get_oob_ip()  # its probe endpoint must not take GPU 0's path
    assert client.connect_local(0)[0] is True
    assert target.accept_local()[0] is True


def test_newest_endpoint_of_a_gpu_index_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    old, new, client = Endpoint(3, 1), Endpoint(3, 1), Endpoint(0, 1)
    ok, _ = client.connect_local(3)
    assert ok
    ok, gpu, _ = new.accept_local()
    assert ok and gpu == 0


# ---- rank map -----------------------------------------------------------


def test_conn_id_of_rank(ep):
    e = Endpoint(0, 1)
    assert e.conn_id_of_rank(3) == NO_CONN == tcpx_p2p.NO_CONN
    e.set_conn_id_of_rank(rank=3, conn_id=17)
    assert e.conn_id_of_rank(rank=3) == 17
    with pytest.raises(TypeError):
        e.conn_id_of_rank("3")


# ---- buffer_ptr ---------------------------------------------------------


def test_buffer_ptr_numpy_torch_bytes():
    import torch
    a = np.arange(100, dtype=np.float32)
    assert tcpx_p2p.buffer_ptr(a) == (a.ctypes.data, 400)
    t = torch.zeros(3, 5, dtype=torch.float16)
    assert tcpx_p2p.buffer_ptr(t) == (t.data_ptr(), 30)
    ba = bytearray(b"hello")
    ptr, n = tcpx_p2p.buffer_ptr(ba, writable=True)
    assert n == 5 and ctypes.string_at(ptr, 5) == b"hello"
    b = b"abc"
    ptr, n = tcpx_p2p.buffer_ptr(memoryview(b))
    assert ctypes.string_at(ptr, n) == b"abc"


def test_buffer_ptr_refuses_what_it_cannot_describe():
    import torch
    with pytest.raises(ValueError):
        tcpx_p2p.buffer_ptr(np.zeros((4, 4))[:, 1])
    with pytest.raises(ValueError):
        tcpx_p2p.buffer_ptr(torch.zeros(4, 4).t())
    ro = np.zeros(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        tcpx_p2p.buffer_ptr(ro, writable=True)
    with pytest.raises(ValueError):
        tcpx_p2p.buffer_ptr(memoryview(bytes(8))[::2])
    with pytest.raises(ValueError):
        tcpx_p2p.buffer_ptr(b"read-only", writable=True)
    with pytest.raises(TypeError):
        tcpx_p2p.buffer_ptr("text")
    with pytest.raises(TypeError):
        tcpx_p2p.buffer_ptr(42)


# ---- packages -------------------------------------------------------------


def test_uccl_package_reexports():
    import uccl
    from uccl import p2p
    assert p2p.Endpoint is Endpoint and p2p.get_oob_ip is tcpx_p2p.get_oob_ip
    assert uccl.__version__ == tcpx_p2p.__version__
    assert callable(uccl.collective.init_collective)
    assert hasattr(p2p.Endpoint, "parse_metadata")


def test_from_uccl_import_p2p_does_not_import_torch():
    code = "import sys; from uccl import p2p; p2p.Endpoint(0, 4); " \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_log_level_from_environment():
    code = "import logging, tcpx_p2p; print(logging.getLogger(" \
           "'tcpx_p2p').level)"
    import os
    for var, value, level in [("TCPX_P2P_LOG_LEVEL", "INFO", logging.INFO),
                              ("UCCL_P2P_LOG_LEVEL", "ERROR", logging.ERROR),
                              ("TCPX_P2P_LOG_LEVEL", "5", logging.DEBUG)]:
        env = dict(os.environ, **{var: value})
        out = subprocess.run([sys.executable, "-c", code], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == str(level), (var, value, out.stderr)


def test_uccl_environment_variables_are_ignored():
    import os
    code = "from uccl import p2p; e = p2p.Endpoint(0, 2); " \
           "print(len(e.get_metadata()))"
    env = dict(os.environ, UCCL_RCMODE="1", UCCL_IB_GID_INDEX="3",
               UCCL_ENTROPY="4")
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "10", out.stderr
