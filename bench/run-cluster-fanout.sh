#!/usr/bin/env bash
# Runs `enrichment-gateway-load fanout` against a cluster of NODES enrichment nodes on this
# machine (enrichment-local-cluster: PostgreSQL, Redis and s3s-fs started for the run), with the
# sessions spread evenly over every node's gateway and the posts sent through node 1. NODES=1
# is the same run on one node of the same stores, the figure a cluster is compared with.
#
# Usage: [NODES=3] bench/run-cluster-fanout.sh [fanout flags...]
#   NODES=1 bench/run-cluster-fanout.sh --sessions 10000 --users 100 --burst 200 --events 100
#   NODES=3 bench/run-cluster-fanout.sh --sessions 10000 --users 100 --burst 200 --events 100
# --api and --server-pid (one per node) are supplied by this script. The nodes run with rate
# limits off and the settings of bench/gateway-bench.toml (given as ENRICHMENT_* variables,
# which the launcher passes on to every node).
#
# Environment:
#   CARGO_TARGET_DIR   honoured (default: <repo>/target)
#   NO_BUILD=1         reuse the existing release binaries
#   NODES=N            nodes in the cluster (default 3)
#   BASE_PORT=P        REST port of every node (default 18180; the gateway is P+1, gossip P+2)
set -euo pipefail

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_release enrichment-node enrichment-bench enrichment-testkit
server_bin="$target/release/enrichment"
launcher_bin="$target/release/enrichment-local-cluster"
load_bin="$target/release/enrichment-gateway-load"
require_bins "$server_bin" "$launcher_bin" "$load_bin"
nodes="${NODES:-3}"
port="${BASE_PORT:-18180}"
raise_open_files

log="$(mktemp "${TMPDIR:-/tmp}/enrichment-cluster-fanout.XXXXXX")"
launcher_pid=""
cleanup() {
  local rc=$?
  if [[ -n "$launcher_pid" ]] && kill -0 "$launcher_pid" 2>/dev/null; then
    kill -TERM "$launcher_pid" 2>/dev/null || true
    for _ in $(seq 1 600); do
      kill -0 "$launcher_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$launcher_pid" 2>/dev/null || true
  fi
  rm -f "$log"
  exit "$rc"
}
trap cleanup EXIT INT TERM

# bench/gateway-bench.toml, as variables: IDENTIFY limits out of reach, cheap password hashing
# for the thousands of users setup registers, tokens that outlive the run. Never elsewhere.
ENRICHMENT_LOG="${ENRICHMENT_LOG:-warn}" \
ENRICHMENT_RATE_LIMITS_ENABLED=false \
ENRICHMENT_AUTH_ARGON2_MEMORY_KIB=8 \
ENRICHMENT_AUTH_ARGON2_ITERATIONS=1 \
ENRICHMENT_AUTH_ACCESS_TTL_SECS=3600 \
ENRICHMENT_GATEWAY_IDENTIFY_PER_DAY=1000000 \
ENRICHMENT_GATEWAY_IDENTIFY_MAX_CONCURRENCY=16 \
ENRICHMENT_GATEWAY_IDENTIFY_WINDOW_SECS=0 \
  "$launcher_bin" --nodes "$nodes" --base-port "$port" --enrichment "$server_bin" >"$log" 2>&1 &
launcher_pid=$!

for _ in $(seq 1 1200); do
  kill -0 "$launcher_pid" 2>/dev/null || { echo "the cluster did not start:" >&2; cat "$log" >&2; exit 1; }
  grep -q "^Enrichment cluster of" "$log" && break
  sleep 0.1
done
grep -q "^Enrichment cluster of" "$log" || { echo "the cluster was not ready in time" >&2; cat "$log" >&2; exit 1; }

args=()
for i in $(seq 1 "$nodes"); do
  rest="127.0.0.$i:$port"
  pid="$(pgrep -P "$launcher_pid" -x enrichment | while read -r p; do
    if grep -qaz "^ENRICHMENT_LISTEN=$rest$" "/proc/$p/environ"; then echo "$p"; fi
  done)"
  [[ -n "$pid" ]] || { echo "no process for node $i ($rest)" >&2; exit 1; }
  args+=(--api "http://$rest/api/v10" --server-pid "$pid")
done
echo "cluster of $nodes up: ${args[*]}" >&2

"$load_bin" "${args[@]}" fanout "$@"
