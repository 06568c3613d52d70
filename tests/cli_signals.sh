#!/bin/sh
# `tcpx-p2p bench` cleans up when it is told to stop by SIGTERM, SIGHUP or
# SIGPIPE (stdout closed, as by `bench ... | head`), not only Ctrl-C: no
# tpx<pid>-* namespace and none of its iperf3 processes may remain.
#   cli_signals.sh PATH-TO-tcpx-p2p
# Exit 77 (skip) where namespaces cannot be made (the leak is of them).
# Waits for a state (namespaces made, iperf3 started) with a generous
# bound, never asserts on time.
set -u
cli=$1
failures=0
PATH=$PATH:/usr/sbin:/sbin
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

[ "$(id -u)" -eq 0 ] || { echo "skipped: not root (no namespaces)"; exit 77; }
command -v ip >/dev/null || { echo "skipped: no ip command"; exit 77; }
if ! ip netns add "tpxsig$$" 2>/dev/null; then
  echo "skipped: cannot make namespaces"; exit 77
fi
ip netns del "tpxsig$$"

# wait_for WHAT COMMAND...: poll until COMMAND succeeds (up to 120 s).
wait_for() {
  what=$1
  shift
  i=0
  while ! "$@" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -gt 1200 ] && { fail "never saw: $what"; return 1; }
    sleep 0.1
  done
}

namespaces_of() { ip netns list | grep -E "^tpx$1-"; }
iperf3_children() { pgrep -P "$1" -x iperf3; }
alive() { kill -0 "$1" 2>/dev/null; }

# check_gone PID IPERF3-PIDS LOG: after the benchmark exited.
check_gone() {
  namespaces_of "$1" && fail "pid $1 left namespaces behind"
  for p in $2; do
    alive "$p" && fail "iperf3 pid $p of bench pid $1 still runs"
  done
  grep -q "stopped by" "$3" || { fail "no 'stopped by' message"; cat "$3" >&2; }
}

# stop_during_reference SIGNAL: while iperf3 measures the reference.
stop_during_reference() {
  sig=$1 log=$tmp/$1.log
  "$cli" bench net --sizes 64K --iters 10 --ref-seconds 60 >"$log" 2>&1 &
  pid=$!
  wait_for "iperf3 under bench pid $pid" iperf3_children "$pid" || {
    kill -KILL "$pid"; return; }
  kids=$(iperf3_children "$pid")
  kill -"$sig" "$pid"
  wait "$pid"
  rc=$?
  [ $rc -ne 0 ] || fail "SIG$sig: exit 0"
  check_gone "$pid" "$kids" "$log"
  echo "SIG$sig during the iperf3 reference: exit $rc, cleaned up"
}

# Both sides running (no reference): SIGTERM must stop them as well.
stop_during_run() {
  log=$tmp/run.log
  "$cli" bench p2p --ops send --sizes 16M --iters 100000 --ref-seconds 0 \
    >"$log" 2>&1 &
  pid=$!
  wait_for "bench pid $pid's two sides" sh -c \
    "[ \$(pgrep -P $pid | wc -l) -ge 2 ]" || { kill -KILL "$pid"; return; }
  kill -TERM "$pid"
  wait "$pid"
  rc=$?
  [ $rc -ne 0 ] || fail "SIGTERM while running: exit 0"
  check_gone "$pid" "" "$log"
  echo "SIGTERM while both sides run: exit $rc, cleaned up"
}

# stdout closed after the first line: SIGPIPE / EPIPE.
stop_by_closed_stdout() {
  ( sh -c 'echo $$ >"$0"; exec "$@"' "$tmp/pid" "$cli" bench net --sizes 64K \
      --iters 10 --ref-seconds 5 2>"$tmp/pipe.log" ) | head -n 1 >/dev/null
  pid=$(cat "$tmp/pid")
  wait_for "bench pid $pid to exit" sh -c "! kill -0 $pid"
  namespaces_of "$pid" && fail "stdout closed: pid $pid left namespaces"
  echo "stdout closed: cleaned up"
}

stop_during_reference TERM
stop_during_reference HUP
stop_during_run
stop_by_closed_stdout
[ "$failures" -eq 0 ] && echo "cli_signals: ok" || echo "cli_signals: $failures failed"
[ "$failures" -eq 0 ]
