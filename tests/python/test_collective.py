"""uccl.collective among 3 ranks: torch.distributed (gloo) on loopback for
the metadata exchange, tcpx-p2p connections for the data."""
import os
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WORLD = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_collective_send_recv_among_three_ranks():
    port = free_port()
    procs = []
    for rank in range(WORLD):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(WORLD),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   TCPX_P2P_SOCKET_IFNAME="lo", PYTHONDONTWRITEBYTECODE="1",
                   GLOO_SOCKET_IFNAME="lo")
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(HERE, "collective_worker.py")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=180))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0 and "COLLECTIVE-OK" in out, \
            f"rank {rank} failed ({p.returncode})\n{out}\n{err[-4000:]}"
