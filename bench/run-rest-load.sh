#!/usr/bin/env bash
# Builds the server and the load generator (release), starts `enrichment serve` on a free
# loopback port with a fresh data dir and rate limits off, runs `enrichment-load` against it,
# prints the results and the server's latency histograms, and stops the server.
#
# Usage: bench/run-rest-load.sh [enrichment-load flags...]
#   e.g. bench/run-rest-load.sh --rate 2000 --duration 30 --warmup 5 --mix create=50,list=50
# Everything but --api is passed through to enrichment-load (see `enrichment-load --help`).
# stdout carries only enrichment-load's output; CPU use and server metrics go to stderr.
#
# Environment:
#   CARGO_TARGET_DIR   honoured (default: <repo>/target)
#   NO_BUILD=1         reuse the existing release binaries
#   HTTP_WORKERS=N     passed to `enrichment serve --http-workers` (default: server's choice)
#   KEEP_DATA=1        keep the data dir and server log instead of deleting them
set -euo pipefail

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_release enrichment-node enrichment-bench
server_bin="$target/release/enrichment"
load_bin="$target/release/enrichment-load"
require_bins "$server_bin" "$load_bin"

serve_flags=()
if [[ -n "${HTTP_WORKERS:-}" ]]; then
  serve_flags+=(--http-workers "$HTTP_WORKERS")
fi
start_node "${serve_flags[@]}"

cpu_seconds() {
  awk -v tck="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / tck }' "/proc/$1/stat"
}
# Children's CPU seconds so far, from the `times` builtin (second line: children user, system).
# `times` must run in this shell (not a subshell), hence the file.
children_cpu_seconds() {
  awk 'NR == 2 {
    split($1, u, /[ms]/); split($2, s, /[ms]/)
    printf "%.2f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$1"
}

# Machine-wide jiffies from /proc/stat: user+nice, system+irq+softirq, idle+iowait, steal.
# Steal is time the hypervisor ran someone else while this VM wanted the CPU.
cpu_jiffies() { awk '/^cpu / { print $2 + $3, $4 + $7 + $8, $5 + $6, $9 }' /proc/stat; }

stat0="$(cpu_jiffies)"
server_cpu0="$(cpu_seconds "$server_pid")"
times >"$work/times0"
children_cpu0="$(children_cpu_seconds "$work/times0")"
started="$(date +%s.%N)"
"$load_bin" --api "$base/api/v10" "$@"
ended="$(date +%s.%N)"
server_cpu1="$(cpu_seconds "$server_pid")"
stat1="$(cpu_jiffies)"
times >"$work/times1"
children_cpu1="$(children_cpu_seconds "$work/times1")"
awk -v s0="$server_cpu0" -v s1="$server_cpu1" -v c0="$children_cpu0" -v c1="$children_cpu1" \
    -v t0="$started" -v t1="$ended" -v cores="$(nproc)" 'BEGIN {
  wall = t1 - t0
  printf "\n# CPU during enrichment-load (setup + warmup + run, %.1f s wall, %d cores = %.1f CPU-s available):\n", wall, cores, wall * cores
  printf "#   server %.1f CPU-s (%.0f%% of one core), load generator %.1f CPU-s (%.0f%% of one core)\n",
    s1 - s0, 100 * (s1 - s0) / wall, c1 - c0, 100 * (c1 - c0) / wall }' >&2
awk -v a="$stat0" -v b="$stat1" 'BEGIN {
  split(a, x, " "); split(b, y, " ")
  u = y[1] - x[1]; s = y[2] - x[2]; i = y[3] - x[3]; st = y[4] - x[4]; t = u + s + i + st
  if (t > 0) printf "#   machine (/proc/stat): user %.0f%%, system %.0f%%, idle %.0f%%, steal %.0f%% (steal = CPU taken by the hypervisor)\n",
    100 * u / t, 100 * s / t, 100 * i / t, 100 * st / t }' >&2

# Where the time went, from the server's side (Prometheus histograms, seconds).
# Everything below goes to stderr, so stdout stays the harness's own output (e.g. --json).
exec 3>&1 1>&2
echo
echo "# server metrics after the run (enrichment_store_seconds, enrichment_http_request_seconds)"
curl -fsS "$base/metrics" >"$work/metrics.txt" || true
# One line per series: count, mean, and the share of observations at or under each bucket bound.
# (Counts include setup and warmup traffic.)
awk '
  /^enrichment_(store|http_request)_seconds_(bucket|sum|count)\{/ {
    line = $1; v = $2
    name = line; sub(/\{.*/, "", name)
    labels = line; sub(/^[^{]*\{/, "", labels); sub(/\}$/, "", labels)
    le = ""
    if (match(labels, /,?le="[^"]*"/)) {
      le = substr(labels, RSTART, RLENGTH); sub(/^,?le="/, "", le); sub(/"$/, "", le)
      labels = substr(labels, 1, RSTART - 1) substr(labels, RSTART + RLENGTH)
    }
    base = name; sub(/_(bucket|sum|count)$/, "", base)
    key = base "{" labels "}"
    if (!(key in seen)) { seen[key] = 1; order[n++] = key }
    if (name ~ /_sum$/) sum[key] = v
    else if (name ~ /_count$/) cnt[key] = v
    else bucket[key, le] = v
  }
  END {
    split("0.001 0.0025 0.005 0.01 0.025 0.1", bounds, " ")
    printf "%-90s %8s %9s  %s\n", "series", "count", "mean ms", "share <= 1 / 2.5 / 5 / 10 / 25 / 100 ms"
    for (i = 0; i < n; i++) {
      k = order[i]; c = cnt[k] + 0
      if (c == 0) continue
      shares = ""
      for (j = 1; j <= 6; j++) shares = shares sprintf(" %5.1f%%", 100 * bucket[k, bounds[j]] / c)
      printf "%-90s %8d %9.3f %s\n", k, c, 1000 * sum[k] / c, shares
    }
  }' "$work/metrics.txt" || true

problems="$(grep -cE 'panicked|ERROR' "$work/server.log" || true)"
echo
echo "# server log: ${problems:-0} ERROR/panic lines" >&2
if [[ "${problems:-0}" != "0" ]]; then
  grep -E 'panicked|ERROR' "$work/server.log" | head -n 20 >&2
fi
