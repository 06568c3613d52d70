"""uccl.collective among 3 ranks: torch.distributed (gloo) on loopback for
the metadata exchange, tcpx-p2p connections for the data."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WORLD = 3


def test_collective_send_recv_among_three_ranks(tmp_path):
    # The ranks meet through a file, not a port picked here and bound later
    # by rank 0 (another test could take it in between: a hang until timeout).
    procs = []
    for rank in range(WORLD):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(WORLD),
                   COLLECTIVE_INIT=f"file://{tmp_path}/rendezvous",
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
