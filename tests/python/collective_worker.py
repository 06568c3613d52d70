"""One rank of the uccl.collective test (run by test_collective.py with
RANK, WORLD_SIZE and COLLECTIVE_INIT, the rendezvous URL, set). Prints COLLECTIVE-OK."""
import os
from datetime import timedelta

import torch
import torch.distributed as dist

from uccl import collective

N = 256 << 10  # int32 elements: 1 MiB per message


def payload(src, dst, round_):
    gen = torch.Generator().manual_seed(10000 * round_ + 100 * src + dst)
    return torch.randint(0, 2**31 - 1, (N,), dtype=torch.int32, generator=gen)


def check(got, src, dst, round_):
    want = payload(src, dst, round_)
    assert torch.equal(got, want), f"round {round_}: data from rank {src} " \
        f"to rank {dst} differs"


def blocking_pairs(rank, world):
    """Every pair once, in one global order: i sends then receives, j
    receives then sends (no cycle of waiting senders)."""
    for i in range(world):
        for j in range(i + 1, world):
            if rank in (i, j):
                peer = j if rank == i else i
                buf = torch.zeros(N, dtype=torch.int32)
                if rank == i:
                    collective.send(payload(rank, peer, 0), dst=peer)
                    collective.recv(buf, src=peer)
                else:
                    collective.recv(buf, src=peer)
                    collective.send(payload(rank, peer, 0), dst=peer)
                check(buf, peer, rank, 0)


def async_all_to_all(rank, world):
    outgoing, incoming, ids = [], {}, []
    for peer in range(world):
        if peer == rank:
            continue
        incoming[peer] = torch.zeros(N, dtype=torch.int32)
        collective.register_tensor(incoming[peer])
        ids.append(collective.irecv(incoming[peer], src=peer))
        outgoing.append(payload(rank, peer, 1))
        ids.append(collective.isend(outgoing[-1], dst=peer))
    collective.wait_all(ids)
    for peer, buf in incoming.items():
        check(buf, peer, rank, 1)


def test_and_wait(rank, world):
    """test() is False while the peer has not sent, True after wait()."""
    src, dst = 0, world - 1
    if rank == dst:
        buf = torch.zeros(N, dtype=torch.int32)
        tid = collective.irecv(buf, src=src)
        early = collective.test(tid)
        dist.barrier()  # only now does the sender send
        collective.wait(tid)
        assert early is False, "test() reported an unsent message as done"
        check(buf, src, dst, 2)
    else:
        dist.barrier()
        if rank == src:
            collective.send(payload(src, dst, 2), dst=dst)


def main():
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    # A short timeout: when one rank fails, the others stop within a minute
    # instead of waiting in gloo for the test's limit.
    dist.init_process_group("gloo", init_method=os.environ["COLLECTIVE_INIT"],
                            rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    collective.init_collective(num_cpus=2)
    ep = collective.get_collective().ep
    for peer in range(world):
        conn = ep.conn_id_of_rank(peer)
        assert (conn == 2**64 - 1) == (peer == rank), (peer, conn)
    blocking_pairs(rank, world)
    async_all_to_all(rank, world)
    test_and_wait(rank, world)
    assert collective.isend(torch.zeros(1), dst=rank) == -1  # to oneself
    assert collective.test(-1) is True
    dist.barrier()
    collective.finalize_collective()
    print("COLLECTIVE-OK", flush=True)


if __name__ == "__main__":
    main()
