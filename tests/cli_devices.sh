#!/bin/sh
# The `tcpx-p2p devices` CLI.
#   cli_devices.sh usage PATH-TO-tcpx-p2p   exit codes and error paths
#   cli_devices.sh netns PATH-TO-tcpx-p2p   `devices` inside a fresh network
#       namespace whose only non-loopback interface is a veth with
#       10.211.0.1; its output must name exactly that. Exit 77 (skip) where
#       namespaces cannot be made.
set -u
mode=$1
cli=$2
failures=0
PATH=$PATH:/usr/sbin:/sbin

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# expect_exit CODE OUTFILE ARGS...: run the CLI, keep stdout+stderr.
expect_exit() {
  want=$1 out=$2
  shift 2
  "$cli" "$@" >"$out" 2>&1
  got=$?
  [ "$got" -eq "$want" ] || { fail "tcpx-p2p $* exited $got, not $want"; cat "$out" >&2; }
}

expect_text() {  # expect_text FILE TEXT WHAT
  grep -qF -- "$2" "$1" || { fail "$3: no '$2' in:"; cat "$1" >&2; }
}

tmp=$(mktemp -d) || exit 1
ns_a= ns_b=
cleanup() {
  [ -n "$ns_a" ] && ip netns del "$ns_a" 2>/dev/null
  [ -n "$ns_b" ] && ip netns del "$ns_b" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

usage_checks() {
  expect_exit 2 "$tmp/none"
  expect_text "$tmp/none" "devices" "usage lists subcommands"
  expect_exit 0 "$tmp/help" help
  expect_text "$tmp/help" "devices" "help lists subcommands"
  expect_exit 0 "$tmp/dhelp" help devices
  expect_text "$tmp/dhelp" "--plugin" "help devices"
  expect_exit 2 "$tmp/unknown" no-such-subcommand
  expect_text "$tmp/unknown" "no-such-subcommand" "unknown subcommand"
  expect_exit 2 "$tmp/badarg" devices --bogus
  expect_text "$tmp/badarg" "--bogus" "unknown argument"
  expect_exit 2 "$tmp/badver" devices --version 3
  expect_exit 2 "$tmp/noval" devices --plugin
  # A plugin that is not there: net_open's error, verbatim, exit 1.
  expect_exit 1 "$tmp/noplugin" devices --plugin "$tmp/libnccl-net-missing.so"
  expect_text "$tmp/noplugin" "$tmp/libnccl-net-missing.so" "missing plugin"
}

# Two namespaces joined by a veth pair, as the C harness makes them.
make_namespaces() {
  [ "$(id -u)" -eq 0 ] || { echo "skipped: not root"; exit 77; }
  command -v ip >/dev/null || { echo "skipped: no ip command"; exit 77; }
  ns_a=tpxcli$$a ns_b=tpxcli$$b
  ip netns add "$ns_a" && ip netns add "$ns_b" &&
  ip -n "$ns_a" link add "$ns_a" type veth peer name "$ns_b" netns "$ns_b" &&
  ip -n "$ns_a" addr add 10.211.0.1/24 dev "$ns_a" &&
  ip -n "$ns_b" addr add 10.211.0.2/24 dev "$ns_b" &&
  ip -n "$ns_a" link set "$ns_a" up && ip -n "$ns_b" link set "$ns_b" up &&
  ip -n "$ns_a" link set lo up || { echo "skipped: cannot make namespaces"; exit 77; }
}

netns_checks() {
  make_namespaces
  # The built-in transport, discovering by itself (no filter set).
  run="ip netns exec $ns_a env -u NCCL_SOCKET_IFNAME -u TCPX_P2P_SOCKET_IFNAME TCPX_P2P_NET_PLUGIN=builtin $cli"
  $run devices >"$tmp/text" 2>&1 || { fail "devices exited $?"; cat "$tmp/text" >&2; }
  cat "$tmp/text"
  expect_text "$tmp/text" "plugin:      built-in" "text output"
  expect_text "$tmp/text" "device 0: $ns_a" "text output"
  expect_text "$tmp/text" "10.211.0.1" "text output"
  expect_text "$tmp/text" "pci path:    unknown" "veth is virtual"
  grep -q "device 1:" "$tmp/text" && fail "more than the veth listed"
  grep -q "device 0: lo" "$tmp/text" && fail "lo listed without being asked"
  $run devices --json >"$tmp/json" 2>&1 || { fail "devices --json exited $?"; cat "$tmp/json" >&2; }
  cat "$tmp/json"
  [ "$(wc -l <"$tmp/json")" -eq 1 ] || fail "--json: not one line per device"
  expect_text "$tmp/json" "\"name\":\"$ns_a\"" "json output"
  expect_text "$tmp/json" "\"addresses\":[\"10.211.0.1\"" "json output"
  expect_text "$tmp/json" "\"pci_path\":null" "json output"
}

case $mode in
  usage) usage_checks ;;
  netns) netns_checks ;;
  *) echo "usage: $0 usage|netns PATH-TO-tcpx-p2p" >&2; exit 2 ;;
esac
[ "$failures" -eq 0 ] && echo "cli_devices $mode: ok" || echo "cli_devices $mode: $failures failed"
[ "$failures" -eq 0 ]
