#!/usr/bin/env bash
# Builds the server and the gateway load generator (release), starts `enrichment serve` with its
# gateway on free loopback ports, a fresh data dir, rate limits off and bench/gateway-bench.toml
# (IDENTIFY limits raised, cheap password hashing), runs `enrichment-gateway-load` against it,
# prints the generator's report plus the CPU used over the whole run, and stops the server.
#
# Usage: bench/run-gateway-load.sh MODE [enrichment-gateway-load flags...]
#   bench/run-gateway-load.sh idle --connections 15000 --users 150
#   bench/run-gateway-load.sh fanout --sessions 10000 --users 100 --burst 200 --events 100
#   bench/run-gateway-load.sh latency --guilds 100 --members 100 --rate 1000 --duration 20
# --api and --server-pid are supplied by this script; see `enrichment-gateway-load --help`.
# stdout carries only the generator's report; progress, CPU use and log checks go to stderr.
#
# The generator reads the server's RSS and CPU time from /proc/PID itself, at the points the
# report names. One generator process holds all connections, so the open-files limit (raised
# here to the hard limit, at most 20000) bounds a run to about 19,800 connections.
#
# Environment:
#   CARGO_TARGET_DIR   honoured (default: <repo>/target)
#   NO_BUILD=1         reuse the existing release binaries
#   CONFIG=FILE        node config instead of bench/gateway-bench.toml
#   KEEP_DATA=1        keep the data dir and server log instead of deleting them
set -euo pipefail

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_release enrichment-node enrichment-bench
server_bin="$target/release/enrichment"
load_bin="$target/release/enrichment-gateway-load"
require_bins "$server_bin" "$load_bin"
config="${CONFIG:-$repo/bench/gateway-bench.toml}"

# Both processes hold one socket per connection.
raise_open_files

start_node --config "$config"

# CPU seconds (user+system) of a process, from /proc/<pid>/stat fields 14 and 15.
cpu_seconds() {
  awk -v tck="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / tck }' "/proc/$1/stat"
}
# Machine-wide jiffies from /proc/stat: user+nice, system+irq+softirq, idle+iowait, steal.
cpu_jiffies() { awk '/^cpu / { print $2 + $3, $4 + $7 + $8, $5 + $6, $9 }' /proc/stat; }

stat0="$(cpu_jiffies)"
server_cpu0="$(cpu_seconds "$server_pid")"
started="$(date +%s.%N)"
mode="${1:?usage: run-gateway-load.sh idle|fanout|latency [flags...]}"
shift
"$load_bin" --api "$base/api/v10" --server-pid "$server_pid" "$mode" "$@"
ended="$(date +%s.%N)"
server_cpu1="$(cpu_seconds "$server_pid")"
stat1="$(cpu_jiffies)"

{
  awk -v s0="$server_cpu0" -v s1="$server_cpu1" -v t0="$started" -v t1="$ended" 'BEGIN {
    wall = t1 - t0
    printf "\n# whole run (setup included): %.1f s wall, server %.1f CPU-s (%.0f%% of one core)\n",
      wall, s1 - s0, 100 * (s1 - s0) / wall }'
  awk -v a="$stat0" -v b="$stat1" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    u = y[1] - x[1]; s = y[2] - x[2]; i = y[3] - x[3]; st = y[4] - x[4]; t = u + s + i + st
    if (t > 0) printf "#   machine (/proc/stat): user %.0f%%, system %.0f%%, idle %.0f%%, steal %.0f%%\n",
      100 * u / t, 100 * s / t, 100 * i / t, 100 * st / t }'
  echo "#   server: $(grep -E '^(VmRSS|VmHWM|Threads)' "/proc/$server_pid/status" | tr -s ' \t' ' ' | paste -sd';' -)"
  problems="$(grep -cE 'panicked|ERROR' "$work/server.log" || true)"
  echo "# server log: ${problems:-0} ERROR/panic lines, $(grep -c WARN "$work/server.log" || true) WARN lines"
  # The same message repeated shows once, with its count (timestamps stripped).
  grep -E 'panicked|ERROR|WARN' "$work/server.log" | sed -E 's/^[0-9][0-9T:.Z+-]* +//' |
    sort | uniq -c | sort -rn | head -n 10 || true
} >&2
