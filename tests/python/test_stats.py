"""Endpoint.get_stats(conn_id): the per-connection counters as a dict, on
both ends of a loopback connection, before and after a checked transfer
(the same class serves uccl.p2p)."""
import threading

import numpy as np

from tcpx_p2p import Endpoint

KEYS = {"bytes_sent", "bytes_received", "ops_completed", "ops_failed",
        "ops_timed_out", "timeouts", "retries", "stream_resets",
        "pings_sent", "pings_received", "last_heard_ms", "state", "peer"}


def _pair():
    a, b = Endpoint(0, 1), Endpoint(1, 1)
    got = {}
    t = threading.Thread(target=lambda: got.update(acc=b.accept()))
    t.start()
    ok, conn_a = a.connect(b.get_metadata())
    t.join(30)
    assert ok and got["acc"][0]
    return a, conn_a, b, got["acc"][3]


def test_get_stats_counts_a_checked_transfer():
    a, conn_a, b, conn_b = _pair()
    before = a.get_stats(conn_a)
    assert set(before) == KEYS
    assert before["state"] == "up" and before["bytes_sent"] == 0
    size = 3 << 20
    src = np.random.default_rng(11).integers(0, 256, size, dtype=np.uint8)
    dst = np.full(size, 0xA5, dtype=np.uint8)
    ok_s, mr_s = a.reg(src.ctypes.data, size)
    ok_r, mr_r = b.reg(dst.ctypes.data, size)
    assert ok_s and ok_r
    res = {}
    t = threading.Thread(target=lambda: res.update(
        ok=b.recv(conn_b, mr_r, dst.ctypes.data, size)))
    t.start()
    assert a.send(conn_a, mr_s, src.ctypes.data, size)
    t.join(60)
    assert res["ok"] and np.array_equal(src, dst)
    sa, sb = a.get_stats(conn_a), b.get_stats(conn_b)
    assert sa["bytes_sent"] == size and sb["bytes_received"] == size
    assert sa["ops_completed"] == 1 and sb["ops_completed"] == 1
    assert sa["ops_failed"] == sb["ops_failed"] == 0
    assert sa["timeouts"] == sa["stream_resets"] == 0
    assert sa["state"] == sb["state"] == "up"
    assert sa["peer"] and sb["peer"]


def test_get_stats_unknown_conn_is_none():
    a, conn_a, b, conn_b = _pair()
    assert a.get_stats(conn_a + 1000) is None
    assert isinstance(a.get_stats(conn_a)["pings_sent"], int)
