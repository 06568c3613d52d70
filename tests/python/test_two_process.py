"""The Endpoint API between two processes in two network namespaces
(loopback where namespaces cannot be made). Each test runs one scenario of
peer.py on both sides and checks what both observed."""


def test_metadata_and_accept_report_real_addresses(run_pair):
    server, client = run_pair("metadata")
    th = run_pair.twohost
    assert server["meta_len"] == 10  # IPv4: 4 + 2 + 4, nothing appended
    ip, port, gpu = server["own"]
    assert ip == th.addr[0] and gpu == 0 and 0 < port < 65536
    assert client["server"] == [ip, port, gpu]
    assert server["oob_ip"] == th.addr[0] and client["oob_ip"] == th.addr[1]
    # accept reports the connecting host's address and GPU index
    assert server["peer_ip"] == th.addr[1]
    assert server["peer_gpu"] == 1
    assert server["conn_id"] != 0 and client["conn_id"] != 0


def test_send_recv_numpy_and_torch_byte_exact(run_pair):
    server, client = run_pair("send_recv")
    from peer import SIZES
    for n in SIZES:
        assert client[f"send_{n}"] is True, n
        assert server[f"recv_{n}"] is True, n
        assert server[f"match_{n}"] is True, n
    assert client["send_torch"] and server["recv_torch"]
    assert server["match_torch"]
    # 4096 bytes into a recv posted with 8192 over a 4096-byte region
    assert client["send_4096"] and server["recv_capacity_8192"]
    assert server["match_capacity"]


def test_send_longer_than_posted_recv_fails_on_both_sides(run_pair):
    server, client = run_pair("too_big")
    assert client["send"] is False
    assert server["recv"] is False
    assert server["tail_untouched"]


def test_one_sided_write_read_with_advertised_blobs(run_pair):
    server, client = run_pair("one_sided")
    assert server["advertise_ok"] and server["meta_len"] == 64
    assert server["regv_ok"] and server["regv_n"] == 32
    assert server["advertisev_ok"] and server["advertisev_lens"] == [64]
    assert server["dereg_ok"]
    for key in ("write", "read", "read_match", "write_async", "read_async",
                "read_async_match", "read_after_refusals",
                "read_after_refusals_match", "writev", "readv",
                "readv_match"):
        assert client[key] is True, key
    for key in ("write_bad_key", "read_bad_key", "write_garbage",
                "write_too_long", "write_dereg"):
        assert client[key] is False, key
    assert client["short_meta_raises"], "a 63-byte meta must raise " \
        "RuntimeError (and ValueError)"
    # the server only slept, and holds what the client wrote last
    assert server["final_match"] and server["blocks_match"]
    assert server["dereg_untouched"]


def test_sendv_recvv_32_blocks(run_pair):
    server, client = run_pair("vector")
    for rnd in range(3):
        assert client[f"send_{rnd}"] is True, rnd
        assert server[f"recv_{rnd}"] is True, rnd
        assert server[f"match_{rnd}"] is True, rnd


def test_async_both_directions_polled_from_threads(run_pair):
    server, client = run_pair("async_threads")
    for side in (server, client):
        assert side["second_conn"]
        assert side["all_done_ok"]
        assert side["match"]
        assert side["poll_again"] == [False, True]


def test_send_delivered_after_sender_exits(run_pair):
    server, client = run_pair("send_then_exit")
    assert client["send"] is True
    assert server["recv"] is True and server["match"] is True


def test_peer_loss_fails_within_timeout(run_pair):
    server, _ = run_pair("peer_loss", env={"TCPX_P2P_TIMEOUT_MS": "2000"})
    assert server["recv"] is False
    assert server["async_ok"] is False
    assert server["send"] is False
    assert server["elapsed"] < 15.0


def test_connect_local_and_ipc_calls(run_pair):
    server, client = run_pair("ipc", same_host=True)
    assert client["connect_local"] and server["accept_local"]
    assert server["peer_gpu"] == 1
    assert client["send_ipc"] and server["recv_ipc"] and server["recv_match"]
    assert server["advertise_ipc"] and server["info_len"] == 128
    assert client["write_ipc"] and server["write_match"]
    assert client["read_ipc_async"] and client["read_match"]
