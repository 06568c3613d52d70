"""uccl.transfer.TransferManager: a target tensor written one-sidedly by an
initiator, over the network between two hosts and over the same-host (IPC)
path within one."""
import threading

import numpy as np


def test_transfer_manager_between_hosts(run_pair):
    server, client = run_pair("transfer")
    # different hosts (namespaces) -> network path; loopback -> IPC path
    assert server["is_local"] is (not run_pair.twohost.netns)
    assert client["is_local"] is server["is_local"]
    assert server["post"] and server["wait"] and server["dereg"]
    assert client["post_done"]
    assert server["match"]


def test_transfer_manager_same_host_uses_ipc_path():
    from uccl.transfer import TransferManager
    target_tm = TransferManager(0, 2, 0, listen_host="127.0.0.1")
    port = target_tm.listen_socket.getsockname()[1]
    init_tm = TransferManager(1, 2, 0, listen_host="127.0.0.1")
    target = np.zeros(1 << 20, dtype=np.uint8)
    src = np.random.default_rng(5).integers(0, 256, 1 << 20, dtype=np.uint8)
    result = {}

    def target_side():
        conn = target_tm.accept()
        tid = target_tm.register_transfer(conn, target)
        target_tm.post_transfer_metadata(tid)
        result["done"] = target_tm.wait_transfer_done(tid)
        result["local"] = target_tm.conn_table[conn].is_local

    t = threading.Thread(target=target_side)
    t.start()
    conn = init_tm.connect("127.0.0.1", port)
    tid = init_tm.register_transfer(conn, src)
    poll = init_tm.do_transfer_async(tid, init_tm.fetch_transfer_metadata(tid))
    while not init_tm.check_transfer_done(tid, poll):
        pass
    init_tm.post_transfer_done(tid)
    t.join(60)
    assert result == {"done": True, "local": True}
    assert init_tm.conn_table[conn].is_local
    assert np.array_equal(target, src)
