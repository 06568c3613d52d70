#!/bin/sh
# Every input the CLI refuses exits 2 with a message that names the
# argument (or environment variable) and what it accepts; sizes read K, M
# and G. Nothing here moves data or makes namespaces: each refusal comes
# before any set-up.
#   cli_args.sh PATH-TO-tcpx-p2p
set -u
cli=$1
failures=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
H=$tmp/handle

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# refused NAME ACCEPTS ARGS...: exit 2, and stderr names NAME and says what
# it accepts (ACCEPTS, a fixed string). $environ: VAR=VALUE words to run
# the CLI with.
environ=
refused() {
  name=$1 accepts=$2
  shift 2
  # shellcheck disable=SC2086
  env $environ "$cli" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ $rc -ne 2 ]; then
    fail "tcpx-p2p $*: exit $rc, not 2"; cat "$tmp/out" "$tmp/err" >&2
  elif ! grep -qF -- "$name" "$tmp/err"; then
    fail "tcpx-p2p $*: no '$name' in:"; cat "$tmp/err" >&2
  elif ! grep -qF -- "$accepts" "$tmp/err"; then
    fail "tcpx-p2p $*: no '$accepts' in:"; cat "$tmp/err" >&2
  fi
}

SIZES="it accepts 0..64G"
# send / recv
refused "--size '64Q'" "$SIZES" send --handle-file "$H" --size 64Q
refused "--size 'abc'" "$SIZES" send --handle-file "$H" --size abc
refused "--size '-1'" "$SIZES" recv --handle-file "$H" --size -1
refused "--size '65G'" "$SIZES" recv --handle-file "$H" --size 65G
refused "--size '99999999999999999999'" "$SIZES" recv --handle-file "$H" \
  --size 99999999999999999999
refused "--size ' 5'" "$SIZES" send --handle-file "$H" --size " 5"
refused "--iters '0'" "it accepts 1.." send --handle-file "$H" --iters 0
refused "--iters 'x'" "it accepts 1.." recv --handle-file "$H" --iters x
refused "--timeout '0'" "it accepts 1.." recv --handle-file "$H" --timeout 0
refused "--handle-file is required" "recv writes" send --size 1M
refused "--handle-file needs a value" "--help" recv --handle-file
refused "unknown argument '--bogus'" "--help" recv --handle-file "$H" --bogus
# bench net
refused "unknown argument '--size'" "bench net --help" bench net --size 1M
refused "unknown argument '--bogus'" "--help" bench net --bogus
refused "--iters '0'" "it accepts 1.." bench net --iters 0
refused "--seconds 'abc'" "it accepts 0.001.." bench net --seconds abc
refused "--ref-seconds 'abc'" "it accepts 0..3600" bench net --ref-seconds abc
refused "--ref-procs '2'" "it accepts 0..1" bench net --ref-procs 2
refused "--ref-raw '2'" "it accepts 0..1" bench net --ref-raw 2
refused "--streams 'abc'" "it accepts 1..64" bench net --streams abc
refused "--sizes 'abc'" "it accepts 1..16G" bench net --sizes 1M,abc
refused "--sizes '0'" "it accepts 1..16G" bench net --sizes 0
refused "--cpus 'x'" "apart or free" bench net --cpus x
refused "--iters and --seconds" "one or the other" bench net --iters 5 --seconds 2
environ=TCPX_P2P_TCP_STREAMS=abc
refused "TCPX_P2P_TCP_STREAMS='abc'" "it accepts 1..64" bench net
environ=
# bench p2p
refused "--depth '99'" "it accepts 1..8" bench p2p --depth 99
refused "--kv-blocks '0'" "it accepts 1.." bench p2p --kv-blocks 0
refused "--iters '-3'" "it accepts 1.." bench p2p --iters -3
refused "--ref-seconds 'abc'" "it accepts 0..3600" bench p2p --ref-seconds abc
refused "--ref-raw 'on'" "it accepts 0..1" bench p2p --ref-raw on
refused "--ops 'bogus'" "send, write, read, pingpong" bench p2p --ops bogus
refused "--sizes '-1'" "it accepts 1..16G" bench p2p --sizes -1
refused "unknown argument '--async=1'" "--help" bench p2p --async=1
refused "--endpoints '9'" "it accepts 1..8" bench p2p --endpoints 9
refused "--async is for one endpoint pair" "--endpoints 2 runs blocking" \
  bench p2p --endpoints 2 --async
refused "--ops pingpong runs with one endpoint pair" "host memory only" \
  bench p2p --gpu --ops pingpong
refused "--local moves GPU buffers by CUDA IPC" "it needs --gpu" \
  bench p2p --local
for flag in "--endpoints 2" "--plugin builtin" "--kv-blocks 4"; do
  # shellcheck disable=SC2086
  refused "${flag%% *} does not apply to --local" "two processes of this host" \
    bench p2p --gpu --local $flag
done
# Environment: the library's settings, through the endpoint a transfer
# makes (the built-in transport, whichever plugin the test run selects).
for var in TCPX_P2P_TCP_STREAMS=abc TCPX_P2P_WINDOW=99 TCPX_P2P_CHUNK_SIZE=1x \
           TCPX_P2P_COMMS_PER_LANE=-1; do
  environ="$var TCPX_P2P_NET_PLUGIN=builtin TCPX_P2P_SOCKET_IFNAME=lo"
  refused "${var%%=*}='${var#*=}'" "it accepts" recv --handle-file "$H" \
    --timeout 1
done
environ=
[ -e "$H" ] && fail "a refused recv wrote its handle file"

# Help is no error; sizes with suffixes are accepted (no refusal: the
# send below waits 1 s for a handle file that never comes, exit 1).
for sub in send recv "bench net" "bench p2p"; do
  # shellcheck disable=SC2086
  "$cli" $sub --help >/dev/null 2>&1 || fail "tcpx-p2p $sub --help: exit $?"
done
for size in 0 1 4096 64K 64k 64KiB 64KB 16M 1G 64G; do
  "$cli" send --handle-file "$H" --size "$size" --timeout 1 >"$tmp/out" 2>&1
  rc=$?
  [ $rc -eq 1 ] || { fail "send --size $size: exit $rc, not 1"; cat "$tmp/out" >&2; }
  grep -qF "waiting up to 1 s for $H" "$tmp/out" ||
    { fail "send --size $size: does not say what it waits for"; cat "$tmp/out" >&2; }
done

[ "$failures" -eq 0 ] && echo "cli_args: ok" || echo "cli_args: $failures failed"
[ "$failures" -eq 0 ]
