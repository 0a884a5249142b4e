#!/usr/bin/env bash
# Runs a scenario file (bench/scenarios/*.toml) with `enrichment-gateway-load scenario`: one
# embedded node started for the run, or NODES nodes of a local cluster (PostgreSQL, Redis and
# s3s-fs started by enrichment-local-cluster). The leader and its worker processes write
# result.json, summary.md and SVG plots into the output directory (by default
# bench/results/scenarios/NAME-TIME), and the summary is printed.
#
# Usage: [NODES=N] bench/run-scenario.sh FILE [--out DIR] [--json]
#   bench/run-scenario.sh bench/scenarios/storm-20k.toml
#   NODES=6 bench/run-scenario.sh bench/scenarios/headline-100k.toml --out /tmp/headline
# --api and --server-pid are supplied by this script.
#
# Environment:
#   CARGO_TARGET_DIR   honoured (default: <repo>/target)
#   NO_BUILD=1         reuse the existing release binaries
#   NODES=N            run against a local cluster of N nodes instead of one embedded node
#   BASE_PORT=P        REST port of every cluster node (default 18180)
#   CONFIG=FILE        the single node's config instead of bench/gateway-bench.toml
#   KEEP_DATA=1        keep the single node's data dir and log
set -euo pipefail

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
file="${1:?usage: run-scenario.sh FILE [--out DIR] [--json]}"
shift
[[ -f "$file" ]] || { echo "no scenario file $file" >&2; exit 1; }
file="$(cd "$(dirname "$file")" && pwd)/$(basename "$file")"
nodes="${NODES:-0}"
if [[ "$nodes" -ge 1 ]]; then
  build_release enrichment-node enrichment-bench enrichment-testkit
  launcher_bin="$target/release/enrichment-local-cluster"
else
  build_release enrichment-node enrichment-bench
fi
server_bin="$target/release/enrichment"
load_bin="$target/release/enrichment-gateway-load"
require_bins "$server_bin" "$load_bin"
# Every node and every worker process holds one socket per session it serves.
raise_open_files

if [[ "$nodes" -ge 1 ]]; then
  require_bins "$launcher_bin"
  start_cluster "$nodes" "${BASE_PORT:-18180}"
else
  start_node --config "${CONFIG:-$repo/bench/gateway-bench.toml}"
  node_args=(--api "$base/api/v10" --server-pid "$server_pid")
fi

# Results go under bench/results/scenarios/ unless --out says otherwise.
out_args=()
if [[ " $* " != *" --out "* ]]; then
  out_args=(--out "$repo/bench/results/scenarios/$(basename "$file" .toml)-$(date -u +%Y%m%dT%H%M%SZ)")
fi
"$load_bin" "${node_args[@]}" scenario "$file" "${out_args[@]}" "$@"
