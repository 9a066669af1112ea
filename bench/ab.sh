#!/usr/bin/env bash
# Same-run A/B of router builds on the ingest path: wrk posts signed GitHub
# webhooks (bench/wrk/github.lua) at one connection count to each build in
# turn, ROUNDS times interleaved, each run on a fresh process and SQLite
# database with the benchmark's config (github source, default durability
# and logs). Prints one line per run: req/s, p99, server CPU per request
# and that CPU split by thread (lib.sh's names; tokio's threads as one), so a change's effect on
# one thread shows even when the machine's noise hides it in req/s.
#
#   bench/ab.sh base=/tmp/bin-a/hookyard new=target/release/hookyard
#   ROUNDS=5 CONNS=16 DURATION=10s bench/ab.sh a=PATH b=PATH c=PATH
#
# Each line also counts the run's errors (non-2xx answers, socket errors):
# a build that fails requests fast looks fast, so read that column first.
# Then the write and flush requests the disk under the work directory
# completed per 1,000 requests (the whole device: keep the machine quiet).
# Each argument is LABEL=BINARY. Build the binaries first (e.g. copy
# target/release/hookyard aside before and after a change). Environment:
# ROUNDS (3), CONNS (64), DURATION (8s), WARMUP (2s), BENCH_SECRET
# (bench-github-secret), QUIET_MAX (15), QUIET_WAIT (60). Only 127.0.0.1
# is contacted; every wrk run is bounded by DURATION. The order of the
# builds rotates from round to round.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-2s}
QUIET_MAX=${QUIET_MAX:-15}
QUIET_WAIT=${QUIET_WAIT:-60}
export BENCH_SECRET=${BENCH_SECRET:-bench-github-secret}
LUA="$ROOT/bench/wrk/github.lua"

die() { echo "ab.sh: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
(( $# >= 2 )) || die "give at least two LABEL=BINARY arguments"
for arg in "$@"; do
  [[ $arg == *=* && -x ${arg#*=} ]] || die "not LABEL=BINARY with an executable binary: $arg"
done

PIDS=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hookyard-ab.XXXXXX")
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

DISK=$(disk_dev "$WORK")
echo "round label req/s p99_ms server_us/req errors disk_writes/kreq disk_flushes/kreq | per-thread us/req"
ARGS=("$@")
for round in $(seq "$ROUNDS"); do
  # Each round starts one build later than the last (a, b, c; b, c, a; ...):
  # the first run of a round tends to be the slowest (a process and a
  # database after a pause), and a fixed order would always hand that to
  # the first build.
  first=$(( (round - 1) % ${#ARGS[@]} ))
  for arg in "${ARGS[@]:first}" "${ARGS[@]:0:first}"; do
    label=${arg%%=*}
    HOOKYARD=${arg#*=}
    name="r$round-$label"
    mkdir "$WORK/$name.data"
    cat >"$WORK/$name.toml" <<EOF
[server]
listen = "127.0.0.1:0"

[store]
url = "sqlite://$WORK/$name.data/hookyard.db"

[sources.github]
verify = "github"
secrets = ["$BENCH_SECRET"]
EOF
    start "$name"
    wrk -t2 -c"$CONNS" -d"$WARMUP" -s "$LUA" "http://$ADDR" >/dev/null 2>&1 || die "wrk warm-up failed"
    wait_quiet
    tasks "$PID" >"$WORK/$name.before"
    ticks0=$(cpu_ticks "$PID")
    read -r disk_w0 disk_f0 < <(disk_io "$DISK")
    wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$LUA" "http://$ADDR" >"$WORK/$name.wrk" 2>&1 \
      || { cat "$WORK/$name.wrk" >&2; die "wrk failed"; }
    ticks1=$(cpu_ticks "$PID")
    read -r disk_w1 disk_f1 < <(disk_io "$DISK")
    tasks "$PID" >"$WORK/$name.after"
    json=$(sed -n 's/^BENCH //p' "$WORK/$name.wrk")
    [[ -n $json ]] || { cat "$WORK/$name.wrk" >&2; die "no BENCH line in wrk output"; }
    requests=$(field "$json" requests)
    # Ingest runs nothing on tokio's blocking pool, so its threads are one
    # group here (lib.sh tells workers from the pool for dispatch.sh).
    : >"$WORK/$name.workers"
    split=$(thread_us "$WORK/$name.before" "$WORK/$name.after" "$WORK/$name.workers" \
      "$((ticks1 - ticks0))" "$requests" | awk '
        { us = $NF; name = $0; sub(/[ \t]+[^ \t]+$/, "", name); gsub(/[ ()]/, "", name)
          if (name ~ /^tokio-/) name = "tokio"
          if (name != "total") g[name] += us }
        END { for (k in g) if (g[k] > 0) printf "%s=%.1f ", k, g[k] }')
    total=$(awk -v t=$((ticks1 - ticks0)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
      'BEGIN { printf "%.0f", n ? t / hz * 1e6 / n : 0 }')
    # A build that answers errors fast would look fast: say so on its line.
    errors=$(wrk_errors "$json")
    # Requests to the disk per 1,000 webhooks (the whole device, so the
    # machine should be otherwise quiet): each is a VM exit on a virtual disk.
    disk=$(awk -v w=$((disk_w1 - disk_w0)) -v f=$((disk_f1 - disk_f0)) -v n="$requests" \
      'BEGIN { if (n) printf "%.0f %.0f", w * 1000 / n, f * 1000 / n; else print "- -" }')
    printf '%s %s %s %.2f %s %s %s | %s\n' "$round" "$label" "$(field "$json" rps)" \
      "$(awk -v u="$(field "$json" p99_us)" 'BEGIN { print u / 1000 }')" "$total" "$errors" \
      "$disk" "$split"
    stop "$PID"
    # As ingest.sh does: a kept database holds its page cache, and the
    # runs after it measured the checkpointer at 7-9 us per request instead
    # of 3.5-4 (most likely new pages coming from memory the VM's balloon
    # had reported free to the host; bench/README.md, "A fast hour, the
    # disk's requests and the memory state"). The first run after a long
    # pause can still start in that state.
    rm -rf "$WORK/$name.data"
  done
done
