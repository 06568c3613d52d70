#!/usr/bin/env bash
# Make Debian's Python import the built package (`from uccl import p2p`,
# `import tcpx_p2p`) without PyPI: write one .pth file into its site
# directory pointing at <build>/python. Safe to run again (rewrites the
# file only when the path changes).
#
#   python/install.sh [BUILD_DIR]    default BUILD_DIR: <repo>/build
#   python/install.sh --uninstall    remove the .pth file
#   PYTHON=/path/to/python3          default /usr/bin/python3
set -euo pipefail

PY=${PYTHON:-/usr/bin/python3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PTH_NAME=tcpx_p2p.pth

say() { echo "python/install: $*"; }

site_dir() {  # the first site directory: /usr/local/lib/python3.X/dist-packages
  "$PY" -c 'import site; print(site.getsitepackages()[0])'
}

uninstall() {
  local pth
  pth="$(site_dir)/$PTH_NAME"
  if [[ -e $pth ]]; then rm -f "$pth"; say "removed $pth"; else say "nothing to remove"; fi
}

check_tree() {  # the build must have made the module and copied the .py files
  local tree=$1
  if ! compgen -G "$tree/tcpx_p2p/_ext*.so" >/dev/null ||
     [[ ! -f $tree/uccl/p2p.py ]]; then
    say "$tree has no built package: run 'cmake --build ${tree%/python}' first" >&2
    exit 1
  fi
}

write_pth() {
  local tree=$1 site pth
  site=$(site_dir)
  pth="$site/$PTH_NAME"
  mkdir -p "$site"
  if [[ -f $pth && "$(cat "$pth")" == "$tree" ]]; then
    say "$pth already points at $tree"
  else
    printf '%s\n' "$tree" >"$pth"
    say "wrote $pth -> $tree"
  fi
}

verify() {  # import from / so the current directory cannot shadow anything
  local tree=$1 where
  where=$(cd / && "$PY" -c 'from uccl import p2p; import tcpx_p2p, os
print(os.path.dirname(os.path.dirname(os.path.realpath(tcpx_p2p.__file__))))')
  if [[ $where != "$(realpath "$tree")" ]]; then
    say "warning: python imports tcpx_p2p from $where, not $tree" >&2
    exit 1
  fi
  say "ok: from uccl import p2p -> $where"
}

main() {
  if [[ ${1:-} == --uninstall ]]; then uninstall; return; fi
  local build=${1:-$REPO/build} tree
  [[ -d $build ]] || { say "no build directory $build" >&2; exit 1; }
  tree="$(cd "$build" && pwd)/python"
  check_tree "$tree"
  write_pth "$tree"
  verify "$tree"
}

main "$@"
