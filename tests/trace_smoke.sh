#!/bin/sh
# TCPX_P2P_TRACE end to end: a bench run with the trace on leaves one file
# per endpoint, and scripts/trace-summary lays its messages out with every
# step of a host send, in order of time.
#   trace_smoke.sh TCPX_P2P_TOOL REPO_DIR
set -eu
tool=$1 repo=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
TCPX_P2P_TRACE=$dir/t "$tool" bench p2p --loopback --sizes 1M --ops send \
  --iters 20 --ref-seconds 0 --ref-raw 0 >/dev/null 2>&1
n=$(ls "$dir" | wc -l)
[ "$n" -ge 2 ] || { echo "FAIL: $n trace files (want one per side)"; exit 1; }
python3 "$repo/scripts/trace-summary" "$dir"/t.* >"$dir/summary"
cat "$dir/summary"
grep -q '^size 1048576 B, host buffers' "$dir/summary" || { echo "FAIL: no 1 MiB host row"; exit 1; }
for step in 'R recv_match' 'S post (first)' 'R tested (last)' 'R op_done' 'S op_done'; do
  grep -q "  $step " "$dir/summary" || { echo "FAIL: no step '$step'"; exit 1; }
done
# The sender learns of the delivery after the receiver is done.
awk '$1 == "R" && $2 == "op_done" {r = $3} $1 == "S" && $2 == "op_done" {s = $3}
     END {exit !(r > 0 && s >= r)}' "$dir/summary" ||
  { echo "FAIL: steps out of order"; exit 1; }
echo "trace: PASS"
