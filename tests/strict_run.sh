#!/usr/bin/env bash
# Run a command with tcpx-p2p driving FakeTCPX (tests/plugins/fake_tcpx.c),
# the strict model of GPUDirect-TCPX, as its net plugin. Fails when the
# command fails, when the plugin was never loaded (the run proved nothing),
# or when any TCPX rule was broken.
#   usage: strict_run.sh PLUGIN.so COMMAND [ARG...]
# FakeTCPX's other knobs come from the caller's environment: its device
# has no PCI path (as lo) unless FAKE_TCPX_PCI_PATH names one, as the GPU
# runs (scripts/gpu-check) do.
set -u
plugin=$1
shift
dir=$(mktemp -d /tmp/tcpx-strict.XXXXXX)
trap 'rm -rf "$dir"' EXIT
export TCPX_P2P_NET_PLUGIN=$plugin
export FAKE_TCPX_VIOLATIONS=$dir/violations FAKE_TCPX_USED=$dir/used
unset NCCL_DYNAMIC_CHUNK_SIZE NCCL_NET_PLUGIN # the engine must set it itself

"$@"
rc=$?
(( rc == 77 )) && exit 77 # skipped
if [[ -s $dir/violations ]]; then
  echo "strict: $(wc -l <"$dir/violations") TCPX rule violation(s):"
  cat "$dir/violations"
  rc=1
elif [[ ! -s $dir/used ]]; then
  echo "strict: the FakeTCPX plugin was never initialised: nothing was checked"
  rc=1
else
  echo "strict: FakeTCPX initialised $(wc -l <"$dir/used") time(s), no violation"
fi
exit "$rc"
