#!/usr/bin/env bash
# Runs `enrichment-load` (the open-loop REST generator) against a local cluster of NODES nodes
# on PostgreSQL (enrichment-local-cluster: PostgreSQL, Redis and s3s-fs started for the run),
# once per RATE, with requests sent through node 1 (guilds owned elsewhere are routed), and
# prints each report with the CPU the nodes used.
#
# Usage: [NODES=6] bench/run-cluster-rest.sh RATE... [-- enrichment-load flags]
#   NODES=6 bench/run-cluster-rest.sh 1000 2000 3000 4000 5000 6000
# Default flags: --duration 20 --warmup 3 --mix create=100 --connections 128 --users 20
# --guilds 6 --channels-per-guild 4.
#
# Environment: CARGO_TARGET_DIR, NO_BUILD=1, NODES=N (default 6), BASE_PORT=P (default 18180).
set -euo pipefail

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_release enrichment-node enrichment-bench enrichment-testkit
server_bin="$target/release/enrichment"
launcher_bin="$target/release/enrichment-local-cluster"
load_bin="$target/release/enrichment-load"
require_bins "$server_bin" "$launcher_bin" "$load_bin"

rates=()
while [[ $# -gt 0 && "$1" != "--" ]]; do rates+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
[[ ${#rates[@]} -gt 0 ]] || { echo "usage: run-cluster-rest.sh RATE... [-- flags]" >&2; exit 1; }
flags=("$@")
[[ ${#flags[@]} -gt 0 ]] || flags=(--duration 20 --warmup 3 --mix create=100 --connections 128 \
  --users 20 --guilds 6 --channels-per-guild 4)

raise_open_files
start_cluster "${NODES:-6}" "${BASE_PORT:-18180}"
api="${node_args[1]}"
pids=()
for ((i = 3; i < ${#node_args[@]}; i += 4)); do pids+=("${node_args[$i]}"); done

# CPU seconds (user + system) of the nodes together.
nodes_cpu() {
  for p in "${pids[@]}"; do cat "/proc/$p/stat"; done |
    awk -v tck="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); t += $12 + $13 } END { printf "%.2f", t / tck }'
}

for rate in "${rates[@]}"; do
  cpu0="$(nodes_cpu)"
  t0="$(date +%s.%N)"
  "$load_bin" --api "$api" --rate "$rate" "${flags[@]}"
  t1="$(date +%s.%N)"
  cpu1="$(nodes_cpu)"
  awk -v r="$rate" -v c0="$cpu0" -v c1="$cpu1" -v t0="$t0" -v t1="$t1" 'BEGIN {
    printf "# rate %s: the %d nodes used %.1f CPU-s in %.1f s (%.0f%% of one core), setup and warmup included\n\n",
      r, '"${#pids[@]}"', c1 - c0, t1 - t0, 100 * (c1 - c0) / (t1 - t0) }'
done
