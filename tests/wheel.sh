#!/bin/sh
# pip's way in: build the wheel (scikit-build-core, from a local wheelhouse:
# no network), install it into a fresh venv that holds nothing else, then
# in that venv: import the packages, a loopback send/recv byte-exact
# (tests/wheel/check_installed.py) and the `tcpx-p2p --version` command.
#   wheel.sh SOURCE_DIR VERSION WHEELHOUSE [PYTHON]
# WHEELHOUSE holds scikit-build-core and its dependencies as wheels
# (scripts/setup downloads them); without it the test is skipped (77).
# PYTHON defaults to /usr/bin/python3 (CPython 3.11 on Debian 12).
set -u
src=$1 version=$2 wheelhouse=$3 py=${4:-/usr/bin/python3}

if ! ls "$wheelhouse"/scikit_build_core-*.whl >/dev/null 2>&1; then
  echo "SKIP: no scikit-build-core wheel in $wheelhouse (run scripts/setup)"
  exit 77
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
step() {  # what, command...: run quietly, show the log on failure
  what=$1
  shift
  if ! "$@" >"$tmp/step.log" 2>&1; then
    tail -n 40 "$tmp/step.log" >&2
    echo "FAIL: $what" >&2
    exit 1
  fi
}
# Where the wheel is built (source: $src; build tree: a temporary folder).
step "venv for building" "$py" -m venv "$tmp/build-env"
step "scikit-build-core from $wheelhouse" "$tmp/build-env/bin/pip" install \
  --no-index --find-links "$wheelhouse" scikit-build-core
step "pip wheel" env PIP_NO_INDEX=1 "$tmp/build-env/bin/pip" wheel \
  --no-build-isolation --no-deps -w "$tmp/dist" "$src"
whl=$(ls "$tmp"/dist/tcpx_p2p-"$version"-*.whl 2>/dev/null)
[ -n "$whl" ] || { ls "$tmp/dist" >&2; echo "FAIL: no tcpx_p2p-$version wheel" >&2; exit 1; }
echo "built $(basename "$whl")"

# A fresh venv: nothing but the wheel.
step "fresh venv" "$py" -m venv "$tmp/venv"
step "pip install the wheel" "$tmp/venv/bin/pip" install --no-index "$whl"
cd "$tmp" || exit 1  # not the source tree, which has python/ in it
"$tmp/venv/bin/python" "$src/tests/wheel/check_installed.py" "$version" || exit 1
got=$("$tmp/venv/bin/tcpx-p2p" --version) || { echo "FAIL: tcpx-p2p --version" >&2; exit 1; }
[ "$got" = "tcpx-p2p $version" ] || { echo "FAIL: tcpx-p2p --version: '$got'" >&2; exit 1; }
echo "wheel: $got (console command)"
