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

# start_node [SERVE FLAGS...]: starts `enrichment serve` ($server_bin) on free loopback ports
# with a fresh data dir, rate limits off and the flags given (e.g. --config FILE); sets
# server_pid, base (http://host:port) and work (the temporary dir holding data and
# server.log), and stops the node on exit (KEEP_DATA=1 keeps $work).
start_node() {
  work="$(mktemp -d "${TMPDIR:-/tmp}/enrichment-bench.XXXXXX")"
  server_pid=""
  trap stop_node EXIT INT TERM
  ENRICHMENT_LOG="${ENRICHMENT_LOG:-warn}" "$server_bin" serve \
    --listen 127.0.0.1:0 --gateway-listen 127.0.0.1:0 --data-dir "$work/data" \
    --no-rate-limits "$@" >"$work/server.log" 2>&1 &
  server_pid=$!
  base=""
  for _ in $(seq 1 300); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "server exited during startup:" >&2
      cat "$work/server.log" >&2
      exit 1
    fi
    base="$(sed -n 's|^enrichment listening on \(http://[^ ]*\) .*|\1|p' "$work/server.log" | head -n1)"
    if [[ -n "$base" ]] && curl -fsS "$base/healthz" >/dev/null 2>&1; then
      break
    fi
    base=""
    sleep 0.1
  done
  [[ -n "$base" ]] || { echo "server did not become healthy" >&2; cat "$work/server.log" >&2; exit 1; }
  echo "server up at $base (pid $server_pid, open files $(ulimit -n), data in $work/data)" >&2
}

stop_node() {
  local rc=$?
  if [[ -n "${server_pid:-}" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ "${KEEP_DATA:-0}" == "1" ]]; then
    echo "kept data dir and server log in $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}

# start_cluster NODES PORT: starts NODES nodes with enrichment-local-cluster ($launcher_bin;
# PostgreSQL, Redis and s3s-fs started for the run) on 127.0.0.I:PORT, rate limits off and the
# settings of bench/gateway-bench.toml; sets node_args (--api URL --server-pid PID, once per
# node) and stops the cluster on exit.
start_cluster() {
  local nodes="$1" port="$2"
  cluster_log="$(mktemp "${TMPDIR:-/tmp}/enrichment-cluster.XXXXXX")"
  launcher_pid=""
  trap stop_cluster EXIT INT TERM
  # bench/gateway-bench.toml, as variables: IDENTIFY limits out of reach, cheap password
  # hashing for the thousands of users setup registers, tokens that outlive the run.
  ENRICHMENT_LOG="${ENRICHMENT_LOG:-warn}" \
  ENRICHMENT_RATE_LIMITS_ENABLED=false \
  ENRICHMENT_AUTH_ARGON2_MEMORY_KIB=8 \
  ENRICHMENT_AUTH_ARGON2_ITERATIONS=1 \
  ENRICHMENT_AUTH_ACCESS_TTL_SECS=3600 \
  ENRICHMENT_GATEWAY_IDENTIFY_PER_DAY=1000000 \
  ENRICHMENT_GATEWAY_IDENTIFY_MAX_CONCURRENCY=16 \
  ENRICHMENT_GATEWAY_IDENTIFY_WINDOW_SECS=0 \
    "$launcher_bin" --nodes "$nodes" --base-port "$port" --enrichment "$server_bin" >"$cluster_log" 2>&1 &
  launcher_pid=$!
  for _ in $(seq 1 1200); do
    kill -0 "$launcher_pid" 2>/dev/null || { echo "the cluster did not start:" >&2; cat "$cluster_log" >&2; exit 1; }
    grep -q "^Enrichment cluster of" "$cluster_log" && break
    sleep 0.1
  done
  grep -q "^Enrichment cluster of" "$cluster_log" || { echo "the cluster was not ready in time" >&2; cat "$cluster_log" >&2; exit 1; }
  node_args=()
  local i rest pid
  for i in $(seq 1 "$nodes"); do
    rest="127.0.0.$i:$port"
    pid="$(pgrep -P "$launcher_pid" -x enrichment | while read -r p; do
      if grep -qaz "^ENRICHMENT_LISTEN=$rest$" "/proc/$p/environ"; then echo "$p"; fi
    done)"
    [[ -n "$pid" ]] || { echo "no process for node $i ($rest)" >&2; exit 1; }
    node_args+=(--api "http://$rest/api/v10" --server-pid "$pid")
  done
  echo "cluster of $nodes up: ${node_args[*]}" >&2
}

stop_cluster() {
  local rc=$?
  if [[ -n "${launcher_pid:-}" ]] && kill -0 "$launcher_pid" 2>/dev/null; then
    kill -TERM "$launcher_pid" 2>/dev/null || true
    for _ in $(seq 1 600); do
      kill -0 "$launcher_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$launcher_pid" 2>/dev/null || true
  fi
  rm -f "$cluster_log"
  exit "$rc"
}
