# Sourced by the bench scripts (after `set -euo pipefail`): the repository, the release
# binaries (built unless NO_BUILD=1) and the open-files limit.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in
  /*) ;;
  *) target="$repo/$target" ;;
esac

# build_release PACKAGE...: `cargo build --release` of them, unless NO_BUILD=1.
build_release() {
  if [[ "${NO_BUILD:-0}" != "1" ]]; then
    local args=()
    for p in "$@"; do args+=(-p "$p"); done
    cargo build --release "${args[@]}"
  fi
}

# require_bins PATH...: stops with a message naming the first that is missing.
require_bins() {
  for b in "$@"; do
    [[ -x "$b" ]] || { echo "missing binary: $b" >&2; exit 1; }
  done
}

# Raises this shell's open-files limit to the hard limit, at most 20000 (one socket per
# connection in each process of a gateway run).
raise_open_files() {
  local hard want=20000
  hard="$(ulimit -Hn)"
  if [[ "$hard" != "unlimited" && "$hard" -lt "$want" ]]; then
    want="$hard"
  fi
  ulimit -n "$want"
}
