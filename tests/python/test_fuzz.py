"""Argument fuzzing: every method called with random argument types and
values in a subprocess, which must survive and only ever raise TypeError or
ArgumentError (ValueError/RuntimeError)."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_arguments_never_crash(seed, tmp_path):
    # TMPDIR: connect_local's unix sockets stay among the fuzzer's endpoints
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "fuzz_worker.py"), str(seed),
         "1500"],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
                 TMPDIR=str(tmp_path)))
    assert proc.returncode == 0, \
        f"fuzzer died ({proc.returncode})\n{proc.stdout}\n{proc.stderr[-4000:]}"
    line = [l for l in proc.stdout.splitlines() if l.startswith("FUZZ-OK ")]
    assert line, proc.stdout
    counts = json.loads(line[0][len("FUZZ-OK "):])
    assert counts["calls"] == 1500
    # every kind of outcome happened: the fuzzer reached all the layers
    for kind in ("TypeError", "ArgumentError", "returned", "ok_true"):
        assert counts[kind] > 0, counts
