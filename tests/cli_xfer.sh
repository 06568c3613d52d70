#!/bin/sh
# `tcpx-p2p recv` and `tcpx-p2p send` between two processes on loopback:
# every size moves byte-exact (the receiver checks pseudo-random data in
# a poisoned buffer and tells the sender), both report the same byte count,
# and a disagreement or a missing peer fails with a message.
#   cli_xfer.sh PATH-TO-tcpx-p2p [PLUGIN.so]
# With PLUGIN, the endpoint drives that NCCL net plugin
# (TCPX_P2P_NET_PLUGIN) instead of the built-in transport.
set -u
cli=$1
failures=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
export TCPX_P2P_SOCKET_IFNAME=lo
if [ $# -ge 2 ]; then export TCPX_P2P_NET_PLUGIN=$2; fi
H=$tmp/handle

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

expect_text() {  # expect_text FILE TEXT WHAT
  grep -qF -- "$2" "$1" || { fail "$3: no '$2' in:"; cat "$1" >&2; }
}

# pair RECV-ARGS -- SEND-ARGS: run both, recv first; their exit codes in
# $recv_rc and $send_rc, their output in $tmp/recv and $tmp/send.
pair() {
  rargs=
  while [ "$1" != -- ]; do rargs="$rargs $1"; shift; done
  shift
  rm -f "$H"
  # shellcheck disable=SC2086
  "$cli" recv --handle-file "$H" --timeout 30 $rargs >"$tmp/recv" 2>&1 &
  rpid=$!
  "$cli" send --handle-file "$H" --timeout 30 "$@" >"$tmp/send" 2>&1
  send_rc=$?
  wait "$rpid"
  recv_rc=$?
}

# round_trip SIZE BYTES ITERS: SIZE as typed, BYTES what it must mean.
round_trip() {
  pair --size "$1" --iters "$3" -- --size "$1" --iters "$3"
  what="size $1 x $3"
  [ $recv_rc -eq 0 ] || { fail "$what: recv exit $recv_rc"; cat "$tmp/recv" >&2; }
  [ $send_rc -eq 0 ] || { fail "$what: send exit $send_rc"; cat "$tmp/send" >&2; }
  expect_text "$tmp/recv" "all $3 messages byte-exact" "$what: recv"
  expect_text "$tmp/send" "receiver found all $3 messages byte-exact" "$what: send"
  expect_text "$tmp/recv" "message $3/$3: $2 bytes in" "$what: recv"
  expect_text "$tmp/send" "message $3/$3: $2 bytes in" "$what: send"
  total=$(($2 * $3))
  expect_text "$tmp/recv" "recv: $total bytes in" "$what: recv total"
  expect_text "$tmp/send" "send: $total bytes in" "$what: send total"
  expect_text "$tmp/recv" "timed per message" "$what: says what is timed"
  expect_text "$tmp/recv" "waiting up to 30 s for" "$what: recv says it waits"
  [ -e "$H" ] && fail "$what: recv left its handle file behind"
  echo "ok: $what"
}

round_trip 0 0 2
round_trip 1 1 3
round_trip 65537 65537 3
round_trip 16M 16777216 2
round_trip 4M 4194304 1

# The two sides disagree: both fail, both say so.
pair --size 1M -- --size 2M
[ $recv_rc -eq 1 ] && [ $send_rc -eq 1 ] ||
  fail "size mismatch: recv exit $recv_rc, send exit $send_rc"
expect_text "$tmp/recv" "give both the same" "size mismatch: recv"
expect_text "$tmp/send" "give both the same" "size mismatch: send"

# No receiver: send says what it waits for, then gives up (exit 1).
rm -f "$H"
"$cli" send --handle-file "$H" --timeout 1 >"$tmp/send" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "no receiver: send exit $rc"
expect_text "$tmp/send" "waiting up to 1 s for $H" "no receiver"
expect_text "$tmp/send" "no \`tcpx-p2p recv\` wrote it in time" "no receiver"

# No sender: recv says what it waits for, then gives up (exit 1).
"$cli" recv --handle-file "$H" --timeout 1 >"$tmp/recv" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "no sender: recv exit $rc"
expect_text "$tmp/recv" "waiting up to 1 s for \`tcpx-p2p send\`" "no sender"

# A handle file that is not a receiver's address.
echo "zz" >"$H"
"$cli" send --handle-file "$H" --timeout 1 >"$tmp/send" 2>&1
rc=$?
[ $rc -eq 1 ] || { fail "bad handle: send exit $rc"; cat "$tmp/send" >&2; }

[ "$failures" -eq 0 ] && echo "cli_xfer: ok" || echo "cli_xfer: $failures failed"
[ "$failures" -eq 0 ]
