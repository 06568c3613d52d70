#!/bin/sh
# `tcpx-p2p doctor`: every check's failure, its explanation, and the exit
# code. The doctor runs in a clean environment (env -i) with the test
# stand-ins of tests/doctor.cmake:
#   cli_doctor.sh MODE BUILD-DIR
#   usage   help and argument errors (exit 2)
#   host    this machine as it is (no plugin, no driver): exit 1, --json
#   plugin  NCCL_NET_PLUGIN / TCPX_P2P_NET_PLUGIN / --plugin at test plugins
#   noexec  a plugin on a noexec tmpfs, and at the default location, in a
#           private mount namespace (77 where one cannot be made)
#   netns   data NICs eth1..eth4 (veths) in a fresh network namespace (77
#           where namespaces cannot be made)
#   rxdm    a fake RxDM listening under a temporary UNIX_CLIENT_PREFIX,
#           absent, and a socket left behind
#   ready   a host where every check passes (exit 0), then one setting
#           broken at a time (exit 1); 77 without a PCI NIC with IPv4
set -u
mode=$1
build=$2
cli=$build/tcpx-p2p
plugins=$build/test-plugins
driver=$plugins/doctor-driver/libcuda.so.1
named=$plugins/libdoctor-tcpx-named.so
failures=0
PATH=$PATH:/usr/sbin:/sbin
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

tmp=$(mktemp -d) || exit 1
ns_a= ns_b= rxdm_pid=
cleanup() {
  [ -n "$rxdm_pid" ] && kill "$rxdm_pid" 2>/dev/null
  [ -n "$ns_a" ] && ip netns del "$ns_a" 2>/dev/null
  [ -n "$ns_b" ] && ip netns del "$ns_b" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# doctor OUT [VAR=VALUE...] [-- ARGS...]: run `tcpx-p2p doctor ARGS` with
# only the given variables (and no driver unless given), keep stdout and
# stderr in OUT and the exit code in OUT.rc.
doctor() {
  out=$1
  shift
  vars=
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    vars="$vars $(printf '%s' "$1" | sed "s/'/'\\\\''/g; s/^/'/; s/\$/'/")"
    shift
  done
  [ $# -gt 0 ] && shift
  eval "env -i PATH=\"\$PATH\" ASAN_OPTIONS=\"\${ASAN_OPTIONS:-}\" \
    UBSAN_OPTIONS=\"\${UBSAN_OPTIONS:-}\" \
    TCPX_P2P_CUDA_LIB=\"\$tmp/no-driver/libcuda.so.1\" $vars \
    ${DOCTOR_WRAP:-} \"\$cli\" doctor \"\$@\"" >"$out" 2>&1
  echo $? >"$out.rc"
  # Under a sanitizer build a report may hide behind an expected exit 1.
  grep -qE "Sanitizer|runtime error:" "$out" && { fail "$out: sanitizer report:"; cat "$out" >&2; }
  return 0
}

expect_exit() {  # expect_exit OUT CODE
  got=$(cat "$1.rc")
  [ "$got" = "$2" ] || { fail "$1: exit $got, not $2"; cat "$1" >&2; }
}

expect_text() {  # expect_text OUT TEXT
  grep -qF -- "$2" "$1" || { fail "$1: no '$2' in:"; cat "$1" >&2; }
}

expect_no_text() {  # expect_no_text OUT TEXT
  grep -qF -- "$2" "$1" && { fail "$1: '$2' should not be in:"; cat "$1" >&2; }
  return 0
}

# expect_json OUT PYTHON-EXPR: OUT parses as JSON and EXPR (over `d`, the
# document, and `c`, its checks by name) is true.
expect_json() {
  $py -m json.tool "$1" >/dev/null 2>&1 || { fail "$1: not JSON:"; cat "$1" >&2; return; }
  $py -c 'import json, sys
d = json.load(open(sys.argv[1]))
c = {k["check"]: k for k in d["checks"]}
sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" ||
    { fail "$1: JSON does not satisfy: $2"; cat "$1" >&2; }
}

# A fake RxDM: unix stream sockets DIR/NAME... listening until killed;
# DIR/.ready appears once they all listen.
cat >"$tmp/rxdm.py" <<'EOF_PY'
import os, socket, sys, time
socks = []
for name in sys.argv[2:]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(sys.argv[1], name))
    s.listen(16)
    socks.append(s)
open(os.path.join(sys.argv[1], ".ready"), "w").close()
time.sleep(300)
EOF_PY

# wait_ready DIR: until the fake RxDM under DIR listens (10 s at most).
wait_ready() {
  for _ in $(seq 100); do [ -e "$1/.ready" ] && return 0; sleep 0.1; done
  return 1
}

# fake_rxdm DIR NAME...: the fake RxDM until the test ends (pid in rxdm_pid).
fake_rxdm() {
  rm -f "$1/.ready"
  $py "$tmp/rxdm.py" "$@" &
  rxdm_pid=$!
  wait_ready "$1" || fail "fake RxDM did not start"
}

stop_rxdm() {
  [ -n "$rxdm_pid" ] && kill "$rxdm_pid" 2>/dev/null && wait "$rxdm_pid" 2>/dev/null
  rxdm_pid=
}

# ---- usage ----

usage_checks() {
  "$cli" help >"$tmp/help" 2>&1
  expect_text "$tmp/help" "doctor"
  "$cli" doctor --help >"$tmp/dhelp" 2>&1 || fail "doctor --help exited $?"
  expect_text "$tmp/dhelp" "--json"
  expect_text "$tmp/dhelp" "Exit status"
  "$cli" doctor --bogus >"$tmp/bogus" 2>&1
  [ $? -eq 2 ] || fail "doctor --bogus: exit not 2"
  expect_text "$tmp/bogus" "--bogus"
  "$cli" doctor --plugin >"$tmp/noval" 2>&1
  [ $? -eq 2 ] || fail "doctor --plugin (no value): exit not 2"
}

# ---- this host as it is ----

host_checks() {
  mkdir -p "$tmp/prefix"
  doctor "$tmp/host" NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX="$tmp/prefix"
  expect_exit "$tmp/host" 1
  expect_text "$tmp/host" "[FAIL] cuda      no CUDA: $tmp/no-driver/libcuda.so.1 not found"
  expect_text "$tmp/host" "Install the NVIDIA driver"
  expect_text "$tmp/host" "rx_rule_manager: absent"
  expect_text "$tmp/host" "[FAIL] rxdm      RxDM not reachable under $tmp/prefix"
  expect_text "$tmp/host" "NCCL_DYNAMIC_CHUNK_SIZE is unset, and with no plugin loaded"
  expect_text "$tmp/host" "[SKIP] affinity"
  expect_text "$tmp/host" "result: NOT ready for TCPX"
  # The default locations are only absent where nobody installed TCPX.
  if [ ! -e /usr/local/tcpx/lib64/libnccl-net-tcpx.so ] &&
     [ ! -e /var/lib/tcpx/lib64/libnccl-net.so ]; then
    expect_text "$tmp/host" "[FAIL] plugin    no GPUDirect-TCPX plugin found"
    expect_text "$tmp/host" "/usr/local/tcpx/lib64/libnccl-net-tcpx.so (absent)"
  fi
  doctor "$tmp/hostj" NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX="$tmp/prefix" -- --json
  expect_exit "$tmp/hostj" 1
  expect_json "$tmp/hostj" 'd["tcpx_ready"] is False and d["exit_code"] == 1'
  expect_json "$tmp/hostj" 'c["cuda"]["status"] == "fail" and "libcuda.so.1" in c["cuda"]["summary"]'
  expect_json "$tmp/hostj" 'c["rxdm"]["details"]["sockets"][0]["reachable"] is False'
  expect_json "$tmp/hostj" 'c["env"]["status"] == "warn" and "NCCL_DYNAMIC_CHUNK_SIZE" in c["env"]["fix"]'
  # A prefix directory that is not there.
  doctor "$tmp/noprefix" NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX="$tmp/missing"
  expect_text "$tmp/noprefix" "RxDM not reachable: $tmp/missing: No such file or directory"
}

# ---- the plugin and why ----

plugin_checks() {
  doctor "$tmp/own" NCCL_NET_PLUGIN="$build/libnccl-net-tcpxp2p.so"
  expect_text "$tmp/own" "[WARN] plugin    tcpx-p2p-tcp loads, but it is not GPUDirect-TCPX"
  expect_text "$tmp/own" "why: NCCL_NET_PLUGIN=$build/libnccl-net-tcpxp2p.so"
  expect_text "$tmp/own" "path: $build/libnccl-net-tcpxp2p.so"
  expect_text "$tmp/own" "abi: ncclNet_v11, name \"tcpx-p2p-tcp\""
  expect_text "$tmp/own" "[ OK ] noexec"
  doctor "$tmp/ownj" NCCL_NET_PLUGIN="$build/libnccl-net-tcpxp2p.so" -- --json
  expect_json "$tmp/ownj" 'c["plugin"]["details"]["abi_version"] == 11 and c["plugin"]["details"]["name"] == "tcpx-p2p-tcp" and c["plugin"]["details"]["chosen_by"] == "NCCL_NET_PLUGIN"'

  doctor "$tmp/named" TCPX_P2P_NET_PLUGIN="$named" NCCL_NET_PLUGIN=none
  expect_text "$tmp/named" "[ OK ] plugin    GPUDirectTCPX_v7 loads (ncclNet_v7)"
  expect_text "$tmp/named" "why: TCPX_P2P_NET_PLUGIN=$named"

  doctor "$tmp/init" NCCL_NET_PLUGIN="$plugins/libfake-init-fails.so"
  expect_text "$tmp/init" "[FAIL] plugin    $plugins/libfake-init-fails.so cannot be loaded"
  expect_text "$tmp/init" "plugin said: fake-init-fails: no interface found"
  expect_text "$tmp/init" "NCCL_GPUDIRECTTCPX_SOCKET_IFNAME matches nothing"

  doctor "$tmp/notp" NCCL_NET_PLUGIN="$plugins/libfake-not-a-plugin.so"
  expect_text "$tmp/notp" "exports no ncclNetPlugin_v7..v11 symbol"
  expect_text "$tmp/notp" "This is not a NCCL net plugin"

  # dlerror() verbatim, and what it means: the NVIDIA driver is missing.
  doctor "$tmp/cuda" NCCL_NET_PLUGIN="$plugins/libfake-needs-cuda-nopath.so"
  expect_text "$tmp/cuda" "libcuda.so.1: cannot open shared object file"
  expect_text "$tmp/cuda" "fix: libcuda.so.1 comes with the NVIDIA driver"

  doctor "$tmp/missing" NCCL_NET_PLUGIN="$tmp/libnccl-net-missing.so"
  expect_text "$tmp/missing" "$tmp/libnccl-net-missing.so: no such file"

  doctor "$tmp/builtin" TCPX_P2P_NET_PLUGIN=builtin NCCL_NET_PLUGIN="$named"
  expect_text "$tmp/builtin" "[FAIL] plugin    TCPX_P2P_NET_PLUGIN chooses the built-in TCP transport"
  expect_text "$tmp/builtin" "Unset TCPX_P2P_NET_PLUGIN"
  expect_text "$tmp/builtin" "[SKIP] noexec"

  doctor "$tmp/version" NCCL_NET_PLUGIN="$named" TCPX_P2P_NET_PLUGIN_VERSION=9
  expect_text "$tmp/version" "ncclNetPlugin_v9 requested (TCPX_P2P_NET_PLUGIN_VERSION) but not exported; it exports v7"
  expect_text "$tmp/version" "Unset TCPX_P2P_NET_PLUGIN_VERSION"

  doctor "$tmp/none" NCCL_NET_PLUGIN=none
  expect_text "$tmp/none" "NCCL_NET_PLUGIN chooses the built-in TCP transport"

  doctor "$tmp/arg" NCCL_NET_PLUGIN=none -- --plugin "$named"
  expect_text "$tmp/arg" "why: given with --plugin $named"
  expect_text "$tmp/arg" "[ OK ] plugin    GPUDirectTCPX_v7 loads"
}

# ---- noexec, and the default location ----

noexec_checks() {
  [ "$(id -u)" -eq 0 ] || { echo "skipped: not root"; exit 77; }
  command -v unshare >/dev/null || { echo "skipped: no unshare"; exit 77; }
  unshare -m --propagation private true 2>/dev/null ||
    { echo "skipped: cannot make a mount namespace"; exit 77; }
  mkdir -p "$tmp/noexec"
  had_default=no
  [ -e /usr/local/tcpx/lib64/libnccl-net-tcpx.so ] && had_default=yes
  # Inside a private mount namespace: a noexec tmpfs with a copy of the
  # plugin, and a tmpfs over /usr/local holding one at the first default
  # location. Nothing is visible outside; the mounts end with it.
  DOCTOR_WRAP="unshare -m --propagation private sh -c '
    mount -t tmpfs -o noexec none $tmp/noexec &&
    cp $named $tmp/noexec/libnccl-net.so &&
    mount -t tmpfs none /usr/local &&
    mkdir -p /usr/local/tcpx/lib64 &&
    cp $named /usr/local/tcpx/lib64/libnccl-net-tcpx.so || exit 77
    exec \"\$0\" \"\$@\"'"
  doctor "$tmp/nx" NCCL_NET_PLUGIN="$tmp/noexec/libnccl-net.so"
  [ "$(cat "$tmp/nx.rc")" = 77 ] && { echo "skipped: cannot mount"; exit 77; }
  expect_text "$tmp/nx" "[FAIL] noexec    $tmp/noexec is on a noexec mount ($tmp/noexec)"
  expect_text "$tmp/nx" "mount -o remount,exec $tmp/noexec"
  expect_text "$tmp/nx" "[FAIL] plugin    $tmp/noexec/libnccl-net.so cannot be loaded"
  expect_text "$tmp/nx" "failed to map segment"
  doctor "$tmp/nxj" NCCL_NET_PLUGIN="$tmp/noexec/libnccl-net.so" -- --json
  expect_json "$tmp/nxj" 'c["noexec"]["status"] == "fail" and c["noexec"]["details"]["noexec"] is True'

  doctor "$tmp/default"
  expect_text "$tmp/default" "found at the GPUDirect-TCPX default location"
  expect_text "$tmp/default" "path: /usr/local/tcpx/lib64/libnccl-net-tcpx.so"
  expect_text "$tmp/default" "[ OK ] plugin    GPUDirectTCPX_v7 loads"
  expect_text "$tmp/default" "[ OK ] noexec    /usr/local/tcpx/lib64 is on an exec mount (/usr/local)"
  DOCTOR_WRAP=
  # Nothing leaked out of the namespace.
  [ "$had_default" = no ] && [ -e /usr/local/tcpx/lib64/libnccl-net-tcpx.so ] &&
    fail "the default-location plugin is visible outside the test"
  grep -q " $tmp/noexec " /proc/mounts && fail "the noexec mount leaked"
  return 0
}

# ---- data NICs in a network namespace ----

make_namespaces() {
  [ "$(id -u)" -eq 0 ] || { echo "skipped: not root"; exit 77; }
  command -v ip >/dev/null || { echo "skipped: no ip command"; exit 77; }
  ns_a=tpxdoc$$a ns_b=tpxdoc$$b
  ip netns add "$ns_a" && ip netns add "$ns_b" ||
    { echo "skipped: cannot make namespaces"; exit 77; }
  for i in 1 2 3 4; do
    ip -n "$ns_a" link add "eth$i" type veth peer name "peer$i" netns "$ns_b" &&
    ip -n "$ns_a" addr add "10.213.$i.1/24" dev "eth$i" &&
    ip -n "$ns_a" link set "eth$i" up && ip -n "$ns_b" link set "peer$i" up ||
      { echo "skipped: cannot make veths"; exit 77; }
  done
  ip -n "$ns_a" link set lo up
}

netns_checks() {
  make_namespaces
  DOCTOR_WRAP="ip netns exec $ns_a"
  doctor "$tmp/guess"
  expect_text "$tmp/guess" "[FAIL] nics      NCCL_GPUDIRECTTCPX_SOCKET_IFNAME unset: GPUDirect-TCPX would use every interface (eth1,eth2,eth3,eth4)"
  expect_text "$tmp/guess" "eth1: 10.213.1.1, pci none"
  expect_text "$tmp/guess" "eth4: 10.213.4.1, pci none"
  expect_text "$tmp/guess" "No interface here looks like a data NIC"
  expect_no_text "$tmp/guess" "lo: 127.0.0.1"

  doctor "$tmp/set" NCCL_GPUDIRECTTCPX_SOCKET_IFNAME=eth1,eth2,eth3,eth4
  expect_text "$tmp/set" "[FAIL] nics      4 data NICs from NCCL_GPUDIRECTTCPX_SOCKET_IFNAME=eth1,eth2,eth3,eth4"
  expect_text "$tmp/set" "4 data NICs have no PCI device (virtual)"
  expect_text "$tmp/set" "eth3: 10.213.3.1, pci none, driver unknown"
  doctor "$tmp/setj" NCCL_GPUDIRECTTCPX_SOCKET_IFNAME=eth1,eth2,eth3,eth4 -- --json
  expect_json "$tmp/setj" '[i["name"] for i in c["nics"]["details"]["interfaces"]] == ["eth1", "eth2", "eth3", "eth4"]'
  expect_json "$tmp/setj" 'all(i["pci_path"] is None for i in c["nics"]["details"]["interfaces"])'

  doctor "$tmp/two" NCCL_GPUDIRECTTCPX_SOCKET_IFNAME=eth2,eth3
  expect_text "$tmp/two" "2 data NICs from"
  expect_no_text "$tmp/two" "eth1: 10.213.1.1"

  doctor "$tmp/nomatch" NCCL_GPUDIRECTTCPX_SOCKET_IFNAME=eth9
  expect_text "$tmp/nomatch" "[FAIL] nics      NCCL_GPUDIRECTTCPX_SOCKET_IFNAME=eth9 matches no usable interface"
  expect_text "$tmp/nomatch" "interfaces present:"

  doctor "$tmp/ctrl" NCCL_GPUDIRECTTCPX_SOCKET_IFNAME=eth1,eth2 NCCL_GPUDIRECTTCPX_CTRL_DEV=eth9
  expect_text "$tmp/ctrl" "ctrl_dev: eth9 matches no usable interface"
  doctor "$tmp/ctrl2" NCCL_GPUDIRECTTCPX_SOCKET_IFNAME=eth1,eth2 NCCL_GPUDIRECTTCPX_CTRL_DEV=eth1
  expect_text "$tmp/ctrl2" "eth1 is both the control NIC and a data NIC"
  DOCTOR_WRAP=
}

# ---- RxDM ----

rxdm_checks() {
  p=$tmp/rx
  mkdir -p "$p"
  doctor "$tmp/absent" NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX="$p/"
  expect_text "$tmp/absent" "[FAIL] rxdm      RxDM not reachable under $p:"
  expect_text "$tmp/absent" "rx_rule_manager: absent"

  fake_rxdm "$p" rx_rule_manager rx_rule_uninstall
  doctor "$tmp/up" NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX="$p"
  expect_text "$tmp/up" "[ OK ] rxdm      RxDM reachable under $p (2 sockets)"
  expect_text "$tmp/up" "rx_rule_manager: reachable"
  doctor "$tmp/upj" NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX="$p" -- --json
  expect_json "$tmp/upj" 'c["rxdm"]["status"] == "ok" and all(s["reachable"] for s in c["rxdm"]["details"]["sockets"])'
  stop_rxdm

  # RxDM gone, its socket files left behind.
  doctor "$tmp/stale" NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX="$p"
  expect_text "$tmp/stale" "rx_rule_manager: socket file left behind, nobody listening"
  expect_text "$tmp/stale" "[FAIL] rxdm"
  rxdm_default_dir
}

# RxDM listening in its own default directory, /run/tcpx, while the plugin
# looks in /tmp: the fix names the variable. /run is a tmpfs of a private
# mount namespace here, so nothing outside sees it.
rxdm_default_dir() {
  if [ "$(id -u)" -ne 0 ] || ! unshare -m --propagation private true 2>/dev/null; then
    echo "(skipped the /run/tcpx case: no private mount namespace)"
    return
  fi
  cat >"$tmp/in-run-tcpx.sh" <<EOF_SH
mount -t tmpfs none /run && mkdir /run/tcpx || exit 77
$py "$tmp/rxdm.py" /run/tcpx rx_rule_manager &
pid=\$!
for _ in \$(seq 100); do [ -e /run/tcpx/.ready ] && break; sleep 0.1; done
"\$@"
rc=\$?
kill \$pid
exit \$rc
EOF_SH
  DOCTOR_WRAP="unshare -m --propagation private sh $tmp/in-run-tcpx.sh"
  doctor "$tmp/runtcpx"
  DOCTOR_WRAP=
  [ "$(cat "$tmp/runtcpx.rc")" = 77 ] && { echo "(skipped the /run/tcpx case: cannot mount)"; return; }
  expect_text "$tmp/runtcpx" "[FAIL] rxdm      RxDM not reachable under /tmp"
  expect_text "$tmp/runtcpx" "found: RxDM listening under /run/tcpx"
  expect_text "$tmp/runtcpx" "fix: export NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX=/run/tcpx"
}

# ---- a host where every check passes ----

# The first interface with a PCI device and an IPv4 address, for a data NIC.
pci_nic() {
  for dev in /sys/class/net/*; do
    name=${dev##*/}
    [ -e "$dev/device" ] || continue
    ip -4 -o addr show dev "$name" 2>/dev/null | grep -q inet && { echo "$name"; return; }
  done
}

ready_checks() {
  nic=$(pci_nic)
  [ -n "$nic" ] || { echo "skipped: no PCI NIC with IPv4"; exit 77; }
  # Two real PCI functions stand in for the GPUs' bus ids (sysfs nearness).
  gpus=$(ls /sys/bus/pci/devices | head -2 | tr '\n' ',' | sed 's/,$//')
  g0=${gpus%%,*} g1=${gpus##*,}
  [ -n "$g0" ] && [ "$g0" != "$g1" ] || { echo "skipped: under 2 PCI devices"; exit 77; }
  p=$tmp/rx
  mkdir -p "$p"
  fake_rxdm "$p" rx_rule_manager rx_rule_uninstall "get_gpu_fd_$g0" \
    "get_gpu_metadata_$g0" "get_gpu_fd_$g1" "get_gpu_metadata_$g1"
  set -- TCPX_P2P_CUDA_LIB="$driver" FAKE_DRIVER_BUS_IDS="$gpus" \
    NCCL_NET_PLUGIN="$named" NCCL_GPUDIRECTTCPX_SOCKET_IFNAME="$nic" \
    NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX="$p" NCCL_DYNAMIC_CHUNK_SIZE=524288
  doctor "$tmp/ready" "$@"
  expect_exit "$tmp/ready" 0
  expect_text "$tmp/ready" "result: ready for TCPX"
  expect_text "$tmp/ready" "[ OK ] cuda      driver CUDA 13.0, 2 GPUs"
  expect_text "$tmp/ready" "gpus: 0:$g0 1:$g1"
  expect_text "$tmp/ready" "[ OK ] affinity"
  expect_text "$tmp/ready" "map: 0:$nic;1:$nic"
  expect_text "$tmp/ready" "[ OK ] rxdm      RxDM reachable under $p (6 sockets)"
  expect_text "$tmp/ready" "[ OK ] env       3 TCPX variables set"
  expect_no_text "$tmp/ready" "[FAIL]"
  doctor "$tmp/readyj" "$@" -- --json
  expect_json "$tmp/readyj" 'd["tcpx_ready"] is True and d["exit_code"] == 0'
  expect_json "$tmp/readyj" "[g['bus_id'] for g in c['cuda']['details']['gpus']] == ['$g0', '$g1']"

  # One thing broken at a time: each makes the host not ready.
  # Unset: the doctor reports what loading the plugin did, one way or the
  # other, and the exit code follows.
  doctor "$tmp/r_chunk" "$@" NCCL_DYNAMIC_CHUNK_SIZE=
  if grep -qF "chunk: NCCL_DYNAMIC_CHUNK_SIZE unset; tcpx-p2p set it to 524288 when it loaded the plugin" "$tmp/r_chunk"; then
    expect_exit "$tmp/r_chunk" 0
  else
    expect_text "$tmp/r_chunk" "NCCL_DYNAMIC_CHUNK_SIZE is unset and this tcpx-p2p did not set it"
    expect_exit "$tmp/r_chunk" 1
  fi
  doctor "$tmp/r_chunk2" "$@" NCCL_DYNAMIC_CHUNK_SIZE=abc
  expect_exit "$tmp/r_chunk2" 1
  expect_text "$tmp/r_chunk2" "NCCL_DYNAMIC_CHUNK_SIZE=abc is not a positive byte count"
  doctor "$tmp/r_chunk3" "$@" NCCL_DYNAMIC_CHUNK_SIZE=4294967296
  expect_exit "$tmp/r_chunk3" 1
  expect_text "$tmp/r_chunk3" "NCCL_DYNAMIC_CHUNK_SIZE=4294967296 is not a positive byte count"
  doctor "$tmp/r_dmabuf" "$@" NCCL_USE_DMA_BUF=0
  expect_exit "$tmp/r_dmabuf" 1
  expect_text "$tmp/r_dmabuf" "NCCL_USE_DMA_BUF=0 breaks GPU memory registration"
  doctor "$tmp/r_socks" "$@" NCCL_NSOCKS_PERTHREAD=4 NCCL_SOCKET_NTHREADS=4
  expect_exit "$tmp/r_socks" 1
  expect_text "$tmp/r_socks" "= 16 data sockets per comm"
  doctor "$tmp/r_nodrv" "$@" TCPX_P2P_CUDA_LIB="$tmp/none/libcuda.so.1"
  expect_exit "$tmp/r_nodrv" 1
  expect_text "$tmp/r_nodrv" "[SKIP] affinity"
  doctor "$tmp/r_nogpu" "$@" FAKE_DRIVER_BUS_IDS=
  expect_exit "$tmp/r_nogpu" 1
  expect_text "$tmp/r_nogpu" "no CUDA: cuInit found no GPU"
  expect_text "$tmp/r_nogpu" "CUDA_VISIBLE_DEVICES"
  doctor "$tmp/r_spec" "$@" TCPX_P2P_GPU_NICS="0:$nic;1:eth-none"
  expect_exit "$tmp/r_spec" 1
  expect_text "$tmp/r_spec" "[FAIL] affinity  no NIC choice for 1 GPU"
  doctor "$tmp/r_spec2" "$@" TCPX_P2P_GPU_NICS="0:$nic;1:$nic"
  expect_exit "$tmp/r_spec2" 0
  expect_text "$tmp/r_spec2" "source: TCPX_P2P_GPU_NICS"
  doctor "$tmp/r_plugin" "$@" NCCL_NET_PLUGIN="$plugins/libfake-init-fails.so"
  expect_exit "$tmp/r_plugin" 1
  # A warning alone keeps the exit code 0: the memlock limit, lowered.
  DOCTOR_WRAP="prlimit --memlock=65536:65536"
  doctor "$tmp/r_memlock" "$@"
  DOCTOR_WRAP=
  expect_exit "$tmp/r_memlock" 0
  expect_text "$tmp/r_memlock" "[WARN] memlock   locked memory limited to 64 KiB (hard limit 64 KiB)"
  if prlimit --memlock=unlimited:unlimited true 2>/dev/null; then
    DOCTOR_WRAP="prlimit --memlock=unlimited:unlimited"
    doctor "$tmp/r_unlim" "$@"
    DOCTOR_WRAP=
    expect_text "$tmp/r_unlim" "[ OK ] memlock   locked memory unlimited"
  fi
  # A GPU whose buffer-pool sockets are missing: a warning, named.
  rm -f "$p/get_gpu_fd_$g1"
  doctor "$tmp/r_pool" "$@"
  expect_exit "$tmp/r_pool" 0
  expect_text "$tmp/r_pool" "get_gpu_fd_$g1: absent"
  expect_text "$tmp/r_pool" "[WARN] rxdm      RxDM reachable, but 1 of its 6 sockets are not"
  stop_rxdm
  doctor "$tmp/r_rxdm" "$@"
  expect_exit "$tmp/r_rxdm" 1
  expect_text "$tmp/r_rxdm" "[FAIL] rxdm"
}

case $mode in
  usage) usage_checks ;;
  host) host_checks ;;
  plugin) plugin_checks ;;
  noexec) noexec_checks ;;
  netns) netns_checks ;;
  rxdm) rxdm_checks ;;
  ready) ready_checks ;;
  *) echo "usage: $0 usage|host|plugin|noexec|netns|rxdm|ready BUILD-DIR" >&2; exit 2 ;;
esac
[ "$failures" -eq 0 ] && echo "cli_doctor $mode: ok" || echo "cli_doctor $mode: $failures failed"
[ "$failures" -eq 0 ]
