#!/usr/bin/env bash
# The node and two Node.js baselines side by side, in one run on one machine: Socket.IO 4 on its
# Redis adapter (bench/baselines/socketio) and a plain `ws` server (bench/baselines/ws), both
# broadcasting `POST /rooms/ROOM/messages` to a room, against the node's gateway.
#
# Builds (release) the node and the load generators, installs the baselines' locked packages
# (`npm ci`), starts a redis-server on a free loopback port (no persistence), and then for each
# scenario runs the node, Socket.IO and ws one after another (never at once: the machine has two
# cores), each on a fresh server process:
#   idle    N connections in rooms / sessions in a guild: server RSS per connection
#   fanout  S connections in one room / guild, bursts of K posts at once: deliveries/s counted at
#           the receivers and server CPU per delivery
#   sweep   G rooms x M members, open-loop latency steps at rising rates: the most deliveries/s
#           whose p99 (from the scheduled send time) is within P99_MS, with nothing lost
# The node is measured by run-gateway-load.sh / enrichment-gateway-load, the baselines by
# enrichment-baseline-load; both use the same schedule, latency mark, checks and /proc sampling.
# Socket.IO's server CPU includes Redis's.
#
# Usage: bench/run-baselines.sh
# stdout: the comparison table. stderr: progress. Every raw output is kept in OUT_DIR.
#
# Environment (defaults in brackets):
#   CARGO_TARGET_DIR   honoured (default: <repo>/target)
#   NO_BUILD=1         reuse the existing release binaries
#   OUT_DIR            where raw outputs go [a new temporary directory, kept]
#   IDLE_N [10000]  ROOM_SIZE [100]  FANOUT_S [10000]  BURST [200]  ROUNDS [3]
#   ROOMS [100]  MEMBERS [100]  STEP_DURATION [8]  STEP_WARMUP [2]
#   SWEEP_START [150]  SWEEP_FACTOR [1.5]  SWEEP_REFINE [2]  SWEEP_MAX_STEPS [10]  P99_MS [50]
#   ONLY="idle fanout sweep"   the scenarios to run
#   TABLE_ONLY=1       print the table from the outputs already in OUT_DIR, run nothing
set -euo pipefail

# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

for tool in node npm redis-server jq curl; do
  command -v "$tool" >/dev/null || { echo "run-baselines.sh needs $tool" >&2; exit 1; }
done

baseline_bin="$target/release/enrichment-baseline-load"
if [[ "${TABLE_ONLY:-0}" != "1" ]]; then
  build_release enrichment-node enrichment-bench
  require_bins "$target/release/enrichment" "$target/release/enrichment-gateway-load" "$baseline_bin"
fi

IDLE_N="${IDLE_N:-10000}"
ROOM_SIZE="${ROOM_SIZE:-100}"
FANOUT_S="${FANOUT_S:-10000}"
BURST="${BURST:-200}"
ROUNDS="${ROUNDS:-3}"
ROOMS="${ROOMS:-100}"
MEMBERS="${MEMBERS:-100}"
STEP_DURATION="${STEP_DURATION:-8}"
STEP_WARMUP="${STEP_WARMUP:-2}"
SWEEP_START="${SWEEP_START:-150}"
SWEEP_FACTOR="${SWEEP_FACTOR:-1.5}"
SWEEP_REFINE="${SWEEP_REFINE:-2}"
P99_MS="${P99_MS:-50}"
SWEEP_MAX_STEPS="${SWEEP_MAX_STEPS:-10}"
ONLY="${ONLY:-idle fanout sweep}"
sweep_rates=(--start "$SWEEP_START" --factor "$SWEEP_FACTOR" --refine "$SWEEP_REFINE" --max-steps "$SWEEP_MAX_STEPS" --p99-ms "$P99_MS")

out="${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/enrichment-baselines.XXXXXX")}"
mkdir -p "$out"
echo "raw outputs in $out" >&2

if [[ "${TABLE_ONLY:-0}" != "1" ]]; then
  for b in socketio ws; do
    (cd "$repo/bench/baselines/$b" && npm ci --no-audit --no-fund --loglevel=error >&2)
  done

  # Every connection is a socket in the generator and in the server, which inherit this limit.
  raise_open_files

  work="$(mktemp -d "${TMPDIR:-/tmp}/enrichment-baselines-run.XXXXXX")"
  redis_pid=""
  node_pid=""
  # stop_pid PID: SIGTERM, up to 20 s for it to exit, then SIGKILL.
  stop_pid() {
    local pid="$1"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  }
  cleanup() {
    local rc=$?
    stop_pid "$node_pid"
    stop_pid "$redis_pid"
    rm -rf "$work"
    exit "$rc"
  }
  trap cleanup EXIT INT TERM

  free_port() {
    node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
  }

  redis_port="$(free_port)"
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --daemonize no --logfile "$work/redis.log" &
  redis_pid=$!
  for _ in $(seq 1 100); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -p "$redis_port" ping >/dev/null || { echo "redis-server did not start" >&2; cat "$work/redis.log" >&2; exit 1; }
  echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$redis_port (pid $redis_pid)" >&2

  # start_baseline NAME: a fresh server; sets node_pid and node_url.
  start_baseline() {
    local name="$1" log="$work/$1.log"
    stop_pid "$node_pid"
    REDIS_URL="redis://127.0.0.1:$redis_port" PORT=0 HOST=127.0.0.1 \
      node "$repo/bench/baselines/$name/server.js" >"$log" 2>&1 &
    node_pid=$!
    node_url=""
    for _ in $(seq 1 100); do
      kill -0 "$node_pid" 2>/dev/null || { echo "$name exited:" >&2; cat "$log" >&2; exit 1; }
      node_url="$(sed -n 's|.* listening on \([0-9.]*:[0-9]*\) pid .*|http://\1|p' "$log" | head -n1)"
      [[ -n "$node_url" ]] && break
      sleep 0.1
    done
    [[ -n "$node_url" ]] || { echo "$name did not start" >&2; cat "$log" >&2; exit 1; }
    echo "$name up at $node_url (pid $node_pid, $(node --version))" >&2
  }

  # baseline NAME MODE [flags...]: runs enrichment-baseline-load against a fresh NAME server and
  # keeps its JSON (stdout) and commentary (stderr) in $out/NAME-MODE.{json,txt}.
  baseline() {
    local name="$1" mode="$2"
    shift 2
    start_baseline "$name"
    local helpers=()
    [[ "$name" == socketio ]] && helpers=(--helper-pid "$redis_pid")
    local flavor="$name"
    "$baseline_bin" --server "$node_url" --flavor "$flavor" --server-pid "$node_pid" \
      "${helpers[@]}" --json "$mode" "$@" >"$out/$name-$mode.json" 2> >(tee "$out/$name-$mode.txt" >&2)
    stop_pid "$node_pid"
    node_pid=""
  }

  # ours MODE [flags...]: run-gateway-load.sh (a fresh node each time), output in $out/ours-MODE.txt.
  ours() {
    local mode="$1"
    shift
    NO_BUILD=1 "$repo/bench/run-gateway-load.sh" "$mode" "$@" >"$out/ours-$mode.txt" 2> >(tee "$out/ours-$mode.stderr.txt" >&2)
  }

  cpu_jiffies() { awk '/^cpu / { print $2 + $3, $4 + $7 + $8, $5 + $6, $9 }' /proc/stat; }
  stat0="$(cpu_jiffies)"
  started="$(date +%s)"
  {
    echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# sizes: idle $IDLE_N (rooms of $ROOM_SIZE), fanout $FANOUT_S x $BURST x $ROUNDS, sweep $ROOMS x $MEMBERS, steps ${STEP_WARMUP}+${STEP_DURATION} s from $SWEEP_START msg/s x $SWEEP_FACTOR, refine $SWEEP_REFINE, p99 <= $P99_MS ms"
  } | tee "$out/conditions.txt" >&2

  for scenario in $ONLY; do
    case "$scenario" in
      idle)
        echo "== idle: node" >&2
        ours idle --connections "$IDLE_N" --users "$ROOM_SIZE"
        for b in socketio ws; do
          echo "== idle: $b" >&2
          baseline "$b" idle --connections "$IDLE_N" --room-size "$ROOM_SIZE"
        done
        ;;
      fanout)
        echo "== fanout: node" >&2
        ours fanout --sessions "$FANOUT_S" --users 100 --burst "$BURST" --burst-rounds "$ROUNDS" --events 0
        for b in socketio ws; do
          echo "== fanout: $b" >&2
          baseline "$b" fanout --sessions "$FANOUT_S" --burst "$BURST" --burst-rounds "$ROUNDS"
        done
        ;;
      sweep)
        echo "== sweep: node" >&2
        "$baseline_bin" sweep-command "${sweep_rates[@]}" --json -- \
          env NO_BUILD=1 "$repo/bench/run-gateway-load.sh" latency --guilds "$ROOMS" --members "$MEMBERS" \
          --duration "$STEP_DURATION" --warmup "$STEP_WARMUP" --json \
          >"$out/ours-sweep.json" 2> >(tee "$out/ours-sweep.txt" >&2)
        for b in socketio ws; do
          echo "== sweep: $b" >&2
          baseline "$b" sweep --rooms "$ROOMS" --members "$MEMBERS" --duration "$STEP_DURATION" \
            --warmup "$STEP_WARMUP" "${sweep_rates[@]}"
        done
        ;;
      *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
  done
  stat1="$(cpu_jiffies)"
  awk -v a="$stat0" -v b="$stat1" -v s="$started" -v e="$(date +%s)" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    u = y[1] - x[1]; sy = y[2] - x[2]; i = y[3] - x[3]; st = y[4] - x[4]; t = u + sy + i + st
    if (t > 0) printf "# whole run: %d s; machine user %.0f%%, system %.0f%%, idle %.0f%%, steal %.0f%%\n",
      e - s, 100 * u / t, 100 * sy / t, 100 * i / t, 100 * st / t }' | tee -a "$out/conditions.txt" >&2
fi

# --- the figures -------------------------------------------------------------------------------
# Ours: parsed from run-gateway-load.sh's text report.
ours_idle_b="$(sed -n 's|^per connection, (RSS - RSS before) / N: identified+acked \([0-9]*\) B.*|\1|p' "$out/ours-idle.txt" 2>/dev/null | head -n1 || true)"
ours_burst_dps="$(sed -n 's|^bursts overall: .* = \([0-9]*\) deliveries/s; .*|\1|p' "$out/ours-fanout.txt" 2>/dev/null | head -n1 || true)"
ours_burst_us="$(sed -n 's|^bursts overall: .*; server \([0-9.]*\) µs CPU per delivery.*|\1|p' "$out/ours-fanout.txt" 2>/dev/null | head -n1 || true)"
ours_sweep_dps="$(jq -r '.best.deliveries_per_sec // empty' "$out/ours-sweep.json" 2>/dev/null || true)"
ours_sweep_p99="$(jq -r '.best.p99_ms // empty' "$out/ours-sweep.json" 2>/dev/null || true)"
declare -A idle_b burst_dps burst_us sweep_dps sweep_p99
for b in socketio ws; do
  idle_b[$b]="$(jq -r '.bytes_per_connection // empty' "$out/$b-idle.json" 2>/dev/null || true)"
  burst_dps[$b]="$(jq -r 'if .incomplete_rounds == 0 then .deliveries_per_sec else empty end' "$out/$b-fanout.json" 2>/dev/null || true)"
  burst_us[$b]="$(jq -r 'if .incomplete_rounds == 0 then .server_cpu_us_per_delivery else empty end' "$out/$b-fanout.json" 2>/dev/null || true)"
  sweep_dps[$b]="$(jq -r '.best.deliveries_per_sec // empty' "$out/$b-sweep.json" 2>/dev/null || true)"
  sweep_p99[$b]="$(jq -r '.best.p99_ms // empty' "$out/$b-sweep.json" 2>/dev/null || true)"
done
# ratio A B: A / B to two decimals, or "-".
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
fmt0() { awk -v a="${1:-}" 'BEGIN { if (a == "") print "-"; else printf "%.0f", a }'; }
fmt2() { awk -v a="${1:-}" 'BEGIN { if (a == "") print "-"; else printf "%.2f", a }'; }

{
  echo
  echo "| figure | node | Socket.IO + Redis adapter | ws | node / Socket.IO | node / ws |"
  echo "|---|---:|---:|---:|---:|---:|"
  echo "| deliveries/s with p99 <= $P99_MS ms ($ROOMS rooms x $MEMBERS, open loop) | $(fmt0 "$ours_sweep_dps") | $(fmt0 "${sweep_dps[socketio]}") | $(fmt0 "${sweep_dps[ws]}") | $(ratio "$ours_sweep_dps" "${sweep_dps[socketio]}") | $(ratio "$ours_sweep_dps" "${sweep_dps[ws]}") |"
  echo "| ... p99 of that step, ms | $(fmt2 "$ours_sweep_p99") | $(fmt2 "${sweep_p99[socketio]}") | $(fmt2 "${sweep_p99[ws]}") | | |"
  echo "| RSS per idle connection, bytes ($IDLE_N) | $(fmt0 "$ours_idle_b") | $(fmt0 "${idle_b[socketio]}") | $(fmt0 "${idle_b[ws]}") | $(ratio "$ours_idle_b" "${idle_b[socketio]}") | $(ratio "$ours_idle_b" "${idle_b[ws]}") |"
  echo "| bursts: deliveries/s ($FANOUT_S in one room, $BURST posts at once) | $(fmt0 "$ours_burst_dps") | $(fmt0 "${burst_dps[socketio]}") | $(fmt0 "${burst_dps[ws]}") | $(ratio "$ours_burst_dps" "${burst_dps[socketio]}") | $(ratio "$ours_burst_dps" "${burst_dps[ws]}") |"
  echo "| bursts: server CPU µs per delivery | $(fmt2 "$ours_burst_us") | $(fmt2 "${burst_us[socketio]}") | $(fmt2 "${burst_us[ws]}") | $(ratio "$ours_burst_us" "${burst_us[socketio]}") | $(ratio "$ours_burst_us" "${burst_us[ws]}") |"
  echo
  echo "targets: deliveries/s at p99 <= $P99_MS ms >= 10 x Socket.IO; RSS per connection <= 1/2 of Socket.IO's"
  for b in ours socketio ws; do
    if [[ -f "$out/$b-sweep.json" ]]; then
      echo
      echo "sweep steps, $b:"
      jq -r '.steps[] | "  \(.rate) msg/s: \(.deliveries_per_sec | floor) deliveries/s, p50 \(.p50_ms) p99 \(.p99_ms) max \(.max_ms) ms, lost \(.lost), unexpected \(.unexpected), dropped \(.dropped), failed posts \(.failed_posts), server \(.server_cpu_us_per_delivery * 100 | floor / 100) µs/delivery"' "$out/$b-sweep.json"
    fi
  done
} | tee "$out/table.md"
