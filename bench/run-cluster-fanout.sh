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

start_cluster "$nodes" "$port"

"$load_bin" "${node_args[@]}" fanout "$@"
