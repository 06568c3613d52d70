"""Fixtures for the Python tests.

- ``twohost``: two "hosts" as a pair of network namespaces joined by a veth
  pair (10.212.0.1/24 <-> 10.212.0.2/24), made with ``ip netns`` and removed
  afterwards. Where they cannot be made (not root, no iproute2, or
  TCPX_P2P_NO_NETNS=1) both sides run on loopback and the tests say so.
- ``run_pair(scenario)``: run tests/python/peer.py SCENARIO in both hosts
  (side 0 accepts, side 1 connects) and return both sides' JSON results.

The package under test is the one on PYTHONPATH (ctest points it at
<build>/python); the import check below says how to fix a missing build.
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = sys.executable

try:
    import tcpx_p2p  # noqa: F401
except ImportError as e:  # pragma: no cover - set-up problem, not a test
    raise pytest.UsageError(
        f"cannot import tcpx_p2p ({e}); build it (cmake --build build) and "
        "set PYTHONPATH=<build>/python, or run python/install.sh")

SUBNET = "10.212.0"

# Endpoints put their connect_local unix socket (one per GPU index, the
# newest replacing older ones) under $TMPDIR: a private one keeps this
# session's endpoints from taking over those of other programs and tests.
_PRIVATE_TMP = tempfile.mkdtemp(prefix="tcpx_p2p_pytest_")
os.environ["TMPDIR"] = _PRIVATE_TMP
atexit.register(shutil.rmtree, _PRIVATE_TMP, True)


class TwoHost:
    """Where each side runs: namespace (or None), interface, address."""

    def __init__(self, netns, ns, ifname, addr):
        self.netns = netns
        self.ns = ns
        self.ifname = ifname
        self.addr = addr

    def command(self, side, argv):
        """argv run inside `side`'s namespace (as is on loopback)."""
        if self.netns:
            return ["ip", "netns", "exec", self.ns[side]] + argv
        return argv

    def env(self, side, extra=None):
        env = dict(os.environ)
        env.pop("TMPDIR", None)
        # The endpoint discovers exactly this side's interface.
        env["TCPX_P2P_SOCKET_IFNAME"] = self.ifname[side]
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.update(extra or {})
        return env


def _ip(*args):
    return subprocess.run(["ip"] + list(args), capture_output=True,
                          text=True, timeout=30)


def _make_netns(base):
    names = [base + "a", base + "b"]
    steps = [("netns", "add", names[0]), ("netns", "add", names[1]),
             ("-n", names[0], "link", "add", names[0], "type", "veth",
              "peer", "name", names[1], "netns", names[1])]
    for side, name in enumerate(names):
        steps += [("-n", name, "addr", "add", f"{SUBNET}.{side + 1}/24",
                   "dev", name),
                  ("-n", name, "link", "set", name, "up"),
                  ("-n", name, "link", "set", "lo", "up")]
    for step in steps:
        r = _ip(*step)
        if r.returncode != 0:
            _remove_netns(names)
            return None, f"ip {' '.join(step)}: {r.stderr.strip()}"
    return names, None


def _remove_netns(names):
    for name in names:
        if os.path.exists(f"/var/run/netns/{name}"):
            _ip("netns", "del", name)


@pytest.fixture(scope="session")
def twohost():
    why = None
    if os.environ.get("TCPX_P2P_NO_NETNS") == "1":
        why = "TCPX_P2P_NO_NETNS=1"
    elif os.geteuid() != 0 or not shutil.which("ip"):
        why = "not root or no iproute2"
    names = None
    if why is None:
        # "tpx" prefix: scripts/netns clean removes leftovers.
        names, why = _make_netns(f"tpxpy{os.getpid() % 100000}")
    if names is None:
        sys.stderr.write(f"\n[twohost] loopback fallback: {why}\n")
        yield TwoHost(False, [None, None], ["lo", "lo"],
                      ["127.0.0.1", "127.0.0.1"])
        return
    try:
        yield TwoHost(True, names, names, [f"{SUBNET}.1", f"{SUBNET}.2"])
    finally:
        _remove_netns(names)


def _result(proc, out, err, side):
    if proc.returncode != 0:
        raise AssertionError(
            f"side {side} exited with {proc.returncode}\n--- stdout\n{out}"
            f"\n--- stderr\n{err}")
    lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
    assert lines, f"side {side} printed no RESULT\n{out}\n{err}"
    res = json.loads(lines[-1][len("RESULT "):])
    res["_stderr"] = err
    return res


@pytest.fixture
def run_pair(twohost):
    """run_pair(scenario, env=None, timeout=120, same_host=False) ->
    (server, client). same_host runs both sides in the first host (for
    connect_local, whose unix socket and loopback data path are per
    host). Blocking calls are bounded by a 60 s op timeout, so a lost peer
    fails a scenario instead of hanging it."""

    def run(scenario, env=None, timeout=120, same_host=False):
        oob = tempfile.mkdtemp(prefix="tcpx_p2p_py_")
        procs = []
        try:
            for side in (0, 1):
                argv = [PYTHON, os.path.join(HERE, "peer.py"), scenario,
                        str(side), oob, twohost.addr[side],
                        twohost.addr[1 - side]]
                # TMPDIR: connect_local's unix sockets stay in this pair
                side_env = dict({"TCPX_P2P_OP_TIMEOUT_MS": "60000"},
                                **(env or {}), TMPDIR=oob)
                host = 0 if same_host else side
                if same_host:
                    argv[5:7] = [twohost.addr[0], twohost.addr[0]]
                procs.append(subprocess.Popen(
                    twohost.command(host, argv),
                    env=twohost.env(host, side_env),
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True))
            outs = []
            for p in procs:
                try:
                    outs.append(p.communicate(timeout=timeout))
                except subprocess.TimeoutExpired:
                    for q in procs:
                        q.kill()
                    seen = [q.communicate() for q in procs]
                    raise AssertionError(
                        f"{scenario}: timed out after {timeout} s\n" +
                        "\n".join(f"--- side {i}\n{o}\n{e[-3000:]}"
                                   for i, (o, e) in enumerate(seen)))
            return tuple(_result(p, o, e, side)
                         for side, (p, (o, e)) in enumerate(zip(procs, outs)))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            shutil.rmtree(oob, ignore_errors=True)

    run.twohost = twohost
    return run
