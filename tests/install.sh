#!/bin/sh
# cmake --install into a temporary prefix, then build tests/install/
# consumer.c against the installed tree both ways a user would and run it:
#   pkg-config   cc $(pkg-config --cflags --libs tcpx-p2p), shared and
#                --static
#   find_package tests/install/CMakeLists.txt with CMAKE_PREFIX_PATH, the
#                imported tcpx_p2p::tcpx_p2p and tcpx_p2p::tcpx_p2p_static
# Also checks that every installed piece is there and that the installed
# CLI reports the same version.
#   install.sh BUILD_DIR VERSION C_COMPILER [EXTRA_C_FLAGS]
# EXTRA_C_FLAGS: the build's sanitizer flags, which the consumer needs to
# link an instrumented library.
set -u
build=$1 version=$2 cc=$3 flags=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; echo "FAIL: cmake --install" >&2; exit 1; }

# The layout README.md promises (libdir per GNUInstallDirs: lib or lib64).
libdir=$(cd "$prefix" && ls -d lib64 lib 2>/dev/null | head -n 1)
for f in include/tcpx_p2p.h "$libdir/libtcpx_p2p.so" "$libdir/libtcpx_p2p.a" \
         "$libdir/libnccl-net-tcpxp2p.so" bin/tcpx-p2p \
         "$libdir/pkgconfig/tcpx-p2p.pc" \
         "$libdir/cmake/tcpx_p2p/tcpx_p2pConfig.cmake" \
         "$libdir/cmake/tcpx_p2p/tcpx_p2pConfigVersion.cmake"; do
  [ -e "$prefix/$f" ] || fail "not installed: $f"
done
# The plugin exports the NCCL tables the loader looks for.
nm -D --defined-only "$prefix/$libdir/libnccl-net-tcpxp2p.so" 2>/dev/null |
  grep -q ' ncclNetPlugin_v' || fail "installed plugin exports no ncclNetPlugin_v*"

got=$("$prefix/bin/tcpx-p2p" --version)
[ "$got" = "tcpx-p2p $version" ] || fail "installed tcpx-p2p --version: '$got'"

run() {  # what, program: run the consumer, expect success
  "$2" "$version" >"$tmp/run.log" 2>&1 ||
    { cat "$tmp/run.log" >&2; fail "$1: consumer failed"; }
}

# pkg-config: the .pc file finds its prefix from its own place.
PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
export PKG_CONFIG_PATH
pcver=$(pkg-config --modversion tcpx-p2p) || fail "pkg-config: no tcpx-p2p"
[ "$pcver" = "$version" ] || fail "pkg-config --modversion: '$pcver'"
# shellcheck disable=SC2046,SC2086  # word splitting of flags is wanted
if $cc $flags $(pkg-config --cflags tcpx-p2p) -o "$tmp/pc_shared" \
     "$here/install/consumer.c" $(pkg-config --libs tcpx-p2p) \
     -Wl,-rpath,"$prefix/$libdir" 2>"$tmp/cc.log"; then
  run "pkg-config (shared)" "$tmp/pc_shared"
else
  cat "$tmp/cc.log" >&2; fail "pkg-config: shared build"
fi
# --static: the archive only (-l:), with Libs.private for what it needs.
# shellcheck disable=SC2046,SC2086
if $cc $flags $(pkg-config --cflags tcpx-p2p) -o "$tmp/pc_static" \
     "$here/install/consumer.c" -L"$prefix/$libdir" -l:libtcpx_p2p.a \
     $(pkg-config --static --libs-only-other --libs-only-l tcpx-p2p |
       sed 's/-ltcpx_p2p//') 2>"$tmp/cc.log"; then
  run "pkg-config (static)" "$tmp/pc_static"
  # the engine is inside the program, not loaded from the prefix
  readelf -d "$tmp/pc_static" | grep -q 'NEEDED.*libtcpx_p2p' &&
    fail "pkg-config (static): the program still needs libtcpx_p2p.so"
else
  cat "$tmp/cc.log" >&2; fail "pkg-config: static build"
fi

# find_package, in a separate CMake project.
if cmake -S "$here/install" -B "$tmp/fp" -DCMAKE_PREFIX_PATH="$prefix" \
     -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$flags" \
     -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$tmp/fp.log" 2>&1 &&
   cmake --build "$tmp/fp" >>"$tmp/fp.log" 2>&1; then
  run "find_package (shared)" "$tmp/fp/consumer_shared"
  run "find_package (static)" "$tmp/fp/consumer_static"
  readelf -d "$tmp/fp/consumer_static" | grep -q 'NEEDED.*libtcpx_p2p' &&
    fail "find_package (static): the program still needs libtcpx_p2p.so"
else
  cat "$tmp/fp.log" >&2; fail "find_package: configure or build"
fi

[ "$failures" -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
echo "install: all checks passed (prefix layout, pkg-config, find_package)"
