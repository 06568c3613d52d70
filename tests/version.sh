#!/bin/sh
# Every place that reports the version says CMakeLists.txt's
# project(VERSION): `tcpx-p2p --version`, and (when PYTHON_TREE is given)
# tcpx_p2p.__version__, uccl.__version__ and uccl.p2p.__version__.
# (p2p_version() of the installed library: tests/install.sh.)
#   version.sh VERSION PATH-TO-tcpx-p2p [PYTHON_TREE]
set -u
want=$1 cli=$2 tree=${3:-}
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

got=$("$cli" --version) || fail "tcpx-p2p --version exited $?"
[ "$got" = "tcpx-p2p $want" ] || fail "tcpx-p2p --version says '$got'"
# The usage text lists the flag.
"$cli" --help | grep -q -- '--version' || fail "--help does not list --version"

if [ -n "$tree" ]; then
  tree=$(cd "$tree" && pwd)  # absolute: the import runs from /
  got=$(cd / && PYTHONPATH=$tree /usr/bin/python3 -c '
import tcpx_p2p, uccl
from uccl import p2p
print(tcpx_p2p.__version__, uccl.__version__, p2p.__version__)') ||
    fail "python: import failed"
  [ "$got" = "$want $want $want" ] || fail "python versions: '$got'"
fi
[ "$failures" -eq 0 ] || exit 1
echo "version: $want everywhere"
