"""The examples run end to end on this machine and check their own data
(kv_transfer verifies the decode cache byte-exact; benchmark checks every
byte of the last message)."""
import os
import socket
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "..", "examples")


# Loopback only: the endpoints' interface, and gloo's under torchrun.
LOOPBACK_ENV = dict(PYTHONDONTWRITEBYTECODE="1", UCCL_SOCKET_IFNAME="lo",
                    GLOO_SOCKET_IFNAME="lo")


def run(script, *args, timeout=300, launcher=None):
    proc = subprocess.run(list(launcher or [sys.executable]) + [os.path.join(EXAMPLES, script)] +
                          list(args), capture_output=True, text=True,
                          timeout=timeout,
                          env=dict(os.environ, **LOOPBACK_ENV))
    assert proc.returncode == 0, f"{script} failed\n{proc.stdout}\n" \
        f"{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_kv_transfer_verifies_byte_exact(lib):
    out = run("kv_transfer.py", "--lib", lib, "--num-blocks", "24",
              "--cache-blocks", "96", "--layers", "3", "--iters", "2")
    assert "decode says: verified" in out
    assert "24 blocks x 3 layers x K/V = 144 segments" in out
    assert "verified byte-exact" in out


@pytest.mark.parametrize("extra", [[], ["--async-api"],
                                   ["--num-kvblocks", "4"],
                                   ["--num-kvblocks", "4", "--async-api"]])
def test_benchmark_runs_and_data_arrives(extra):
    out = run("benchmark.py", "--sizes", "4K,1M,8M", "--num-iters", "3",
              *extra)
    assert out.count("| data ok") == 3
    assert "[Client] Benchmark complete" in out
    assert "[Server] Benchmark complete" in out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_benchmark_under_torchrun(tmp_path):
    # The launch README.md documents. Debian 12's torch 1.13 on Python 3.11
    # cannot parse its own default --redirects/--tee ("0": Python 3.11's
    # IntFlag no longer lists Std.NONE), so the launch names stderr (2) for
    # both; the rendezvous is on loopback at a free port, logs in tmp_path.
    pytest.importorskip("torch.distributed.run")
    launcher = [sys.executable, "-m", "torch.distributed.run",
                "--master_addr", "127.0.0.1", "--master_port",
                str(free_port()), "--log_dir", str(tmp_path),
                "--redirects", "2", "--tee", "2", "--nproc_per_node", "2"]
    out = run("benchmark.py", "--sizes", "4K,1M", "--num-iters", "3",
              launcher=launcher)
    assert out.count("| data ok") == 2
    assert "[Client] Benchmark complete" in out
    assert "[Server] Benchmark complete" in out


def test_benchmark_refuses_gpu_without_cuda():
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES,
                                                        "benchmark.py"),
                           "--device", "gpu"], capture_output=True,
                          text=True, timeout=120)
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert proc.returncode == 2 and "CUDA" in proc.stderr


@pytest.mark.parametrize("script,role", [("kv_transfer.py", "prefill"),
                                         ("kv_transfer.py", "decode"),
                                         ("benchmark.py", "client"),
                                         ("benchmark.py", "server")])
def test_bad_oob_host_is_one_line_error(script, role):
    """A host name that does not resolve: one line naming it, exit 1, no
    traceback (was a raw socket.gaierror)."""
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, script),
                           "--role", role, "--host", "no-such-host.invalid",
                           "--port", "5555"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    name = script[:-3]
    assert f"{name}: out-of-band host 'no-such-host.invalid'" in proc.stderr


def test_oob_says_what_it_waits_for():
    """Both ends of the set-up connection say what they wait for."""
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES,
                                                        "kv_transfer.py"),
                           "--num-blocks", "2", "--cache-blocks", "4",
                           "--layers", "1", "--lib", "numpy"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "oob: waiting up to 120 s for the peer to connect to" in proc.stderr
    assert "oob: connecting to 127.0.0.1:" in proc.stderr
