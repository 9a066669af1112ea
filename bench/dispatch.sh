#!/usr/bin/env bash
# End-to-end dispatch benchmark (bench/README.md, "Dispatch benchmark"):
# receive -> github-router plugin -> pending delivery, sustained for
# DURATION seconds at the highest offered rate at which the backlog of
# undispatched events stays flat, next to the ingest-only rate (no plugin,
# no dispatch) measured in the same run, interleaved.
#
# Each step, on fresh routers and databases (the release build, SQLite,
# default durability):
#   1. ingest-only: `load` closed loop, CONNS connections, INGEST_DURATION s,
#      on a source with no plugin and no sinks (stored only);
#   2. dispatch: `load` open loop at RATE req/s for DURATION s on a source
#      routed through plugins/github-router to a file sink. Deliveries stay
#      `pending` (the delivery workers are issue #5), so what is produced
#      here is the deliveries. Every SAMPLE s the script counts undispatched
#      events (status 'received') and deliveries with the sqlite3 CLI,
#      read-only on the WAL database;
#   3. settle: wait (<= SETTLE_MAX s) for no event to be left undispatched,
#      then check that every event the router accepted (2xx, new) is
#      `processed` with exactly one delivery and one plugin run.
# A rate is "flat" when the load was taken on time with no error (every
# request answered 2xx as a new event, the last answer within 1 s of the
# end), and over the second half of the run the backlog stayed under 1 s
# worth of events and did not grow by more than FLAT_GROWTH s worth; the
# report says which of the two failed. The rates searched:
# RATES if given, else a bisection between 0 and the ingest-only rate,
# starting at half of it, at most MAX_RUNS steps.
#
# Environment: DURATION (60), INGEST_DURATION (10), CONNS (64), SAMPLE (5),
# MAX_RUNS (7), RATES (e.g. "2000 3000": no search), START_RATE (half the
# first ingest-only rate), MIN_STEP (3: stop the search when the bracket
# is within this % of its low end), FLAT_GROWTH (0.25), SETTLE_MAX (180),
# WARM_INSTANCES (0: a fresh instance per event, the default config),
# SKIP_BUILD (0), BENCH_SECRET (bench-github-secret), QUIET_MAX (15) and
# QUIET_WAIT (120) as in ingest.sh. A smoke test:
#   DURATION=10 INGEST_DURATION=3 MAX_RUNS=2 bench/dispatch.sh
# Needs sqlite3. Only 127.0.0.1 is contacted; every load is bounded by its
# duration (and a per-request timeout).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-60}
INGEST_DURATION=${INGEST_DURATION:-10}
CONNS=${CONNS:-64}
SAMPLE=${SAMPLE:-5}
MAX_RUNS=${MAX_RUNS:-7}
RATES=${RATES:-}
START_RATE=${START_RATE:-}
MIN_STEP=${MIN_STEP:-3}
FLAT_GROWTH=${FLAT_GROWTH:-0.25}
SETTLE_MAX=${SETTLE_MAX:-180}
WARM_INSTANCES=${WARM_INSTANCES:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
QUIET_MAX=${QUIET_MAX:-15}
QUIET_WAIT=${QUIET_WAIT:-120}
BENCH_SECRET=${BENCH_SECRET:-bench-github-secret}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
HOOKYARD="$TARGET/release/hookyard"
LOAD="$TARGET/release/load"
# host/build.rs builds plugins/ into their own target directory.
PLUGIN="$ROOT/plugins/target/wasm32-wasip2/release/github_router.wasm"

die() { echo "dispatch.sh: $*" >&2; exit 1; }
command -v sqlite3 >/dev/null || die "sqlite3 not found (apt-get install sqlite3)"

if [[ $SKIP_BUILD != 1 ]]; then
  (cd "$ROOT" && nice -n 10 cargo build --release -p hookyard -p hookyard-bench) \
    || die "release build failed"
fi
[[ -x $HOOKYARD && -x $LOAD ]] || die "release binaries missing in $TARGET/release; build first"
[[ -f $PLUGIN ]] || die "$PLUGIN missing (host/build.rs builds it; see its warnings)"

PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hookyard-dispatch.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT TERM
# Private copies: a rebuild during the run must not mix two versions.
mkdir "$WORK/bin"
cp "$HOOKYARD" "$LOAD" "$PLUGIN" "$WORK/bin/"
BUILD="hookyard $(sha256sum "$HOOKYARD" | cut -c1-12) built $(date -u -r "$HOOKYARD" +%FT%TZ)"
HOOKYARD="$WORK/bin/hookyard"
LOAD="$WORK/bin/load"
RESULTS_DIR="$ROOT/bench/results"
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
ROWS="$WORK/rows.tsv"
: >"$ROWS"
THREADS="$WORK/threads.txt"
: >"$THREADS"

# config NAME: both sources; the database is NAME.db.
config() {
  cat >"$WORK/$1.toml" <<EOF
[server]
listen = "127.0.0.1:0"

[store]
url = "sqlite://$WORK/$1.db"

[runtime]
cache_dir = "$WORK/plugin-cache"

[sinks.archive]
type = "file"
path = "$WORK/archive/{source}/{date}.jsonl"

[plugins.github-router]
wasm = "$WORK/bin/github_router.wasm"
sinks = ["archive"]
warm_instances = $WARM_INSTANCES
config = { repos = "acme/api", route_push = "archive" }

# Through the plugin to the file sink.
[sources.routed]
verify = "github"
secrets = ["$BENCH_SECRET"]
plugin = "github-router"

# No plugin, no sinks: stored only (the ingest-only figure).
[sources.stored]
verify = "github"
secrets = ["$BENCH_SECRET"]
EOF
}

# start NAME: runs the router on NAME.toml, waits (<= 60 s: it compiles the
# plugin on the first start) for its address; sets PID and ADDR.
start() {
  local name=$1
  : >"$WORK/$name.out"
  "$HOOKYARD" serve --config "$WORK/$name.toml" >"$WORK/$name.out" 2>"$WORK/$name.log" &
  PID=$!
  PIDS+=("$PID")
  local i
  for i in $(seq 600); do
    ADDR=$(sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' "$WORK/$name.out" | head -1)
    [[ -n $ADDR ]] && return 0
    if ! kill -0 "$PID" 2>/dev/null; then
      tail -20 "$WORK/$name.log" >&2
      die "$name exited before listening"
    fi
    sleep 0.1
  done
  tail -20 "$WORK/$name.log" >&2
  die "$name did not print its address within 60 s"
}

stop() {
  local pid=$1 kept=() p
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}

# q DB SQL: one read-only query (the router holds the WAL open; a reader
# never blocks its writer).
q() { sqlite3 -readonly -cmd ".timeout 5000" "$1" "$2"; }

field() { sed -n "s/.*\"$2\":\"\\{0,1\\}\\([^,\"}]*\\).*/\\1/p" <<<"$1"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# threads PID: "name ticks" per thread. Linux cuts names to 15 characters,
# so the three SQLite threads all read "hookyard-sqlite"; they are started
# fsync, checkpoint, writer (store/sqlite_writer.rs), so by thread id order.
threads() {
  local t name n=0
  for t in $(ls /proc/"$1"/task | sort -n); do
    name=$(cat "/proc/$1/task/$t/comm" 2>/dev/null) || continue
    if [[ $name == hookyard-sqlite ]]; then
      n=$((n + 1))
      case $n in 1) name=sqlite-fsync ;; 2) name=sqlite-checkpoint ;; *) name=sqlite-writer ;; esac
    fi
    # Numbered threads (tokio workers, dispatch workers, sqlx) as one group.
    name=$(sed 's/[-_]*[0-9]*$//' <<<"$name")
    echo "$name $(sed 's/.*) //' "/proc/$1/task/$t/stat" | awk '{print $12 + $13}')"
  done | awk '{t[$1] += $2} END {for (n in t) print n, t[n]}' | sort
}

# wait_quiet: as in ingest.sh, wait (<= QUIET_WAIT s) for the machine to be
# under QUIET_MAX % busy: it is shared with other builds.
wait_quiet() {
  local waited=0 b0 b1 pct
  while :; do
    b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
    pct=$(( (b1 - b0) * 100 / $(getconf CLK_TCK) / $(nproc) ))
    (( pct < QUIET_MAX )) && break
    if (( waited >= QUIET_WAIT )); then
      echo "  (machine still ${pct}% busy after ${waited} s; measuring anyway)"
      break
    fi
    (( waited == 0 )) && echo "  (machine ${pct}% busy with other work; waiting up to ${QUIET_WAIT} s)"
    waited=$((waited + 1))
  done
}

# load OUT URL args...: one bounded load run; prints its LOAD json.
load() {
  local out=$1; shift
  "$LOAD" "$@" secret="$BENCH_SECRET" >"$out" 2>&1 || { cat "$out" >&2; die "load failed"; }
  local json
  json=$(sed -n 's/^LOAD //p' "$out")
  [[ -n $json ]] || { cat "$out" >&2; die "no LOAD line"; }
  echo "$json"
}

# ingest_only STEP: the closed-loop rate of the stored-only source on a
# fresh router; sets INGEST_RPS and appends a row.
ingest_only() {
  local step=$1 name="ingest-$1" json
  config "$name"
  start "$name"
  load "$WORK/$name-warm.txt" "http://$ADDR/webhooks/stored" mode=closed conns=16 duration=2 >/dev/null
  wait_quiet
  json=$(load "$WORK/$name.txt" "http://$ADDR/webhooks/stored" mode=closed conns="$CONNS" duration="$INGEST_DURATION")
  INGEST_RPS=$(field "$json" rps)
  local errs=$(( $(field "$json" errors) + $(field "$json" non_2xx) + $(field "$json" duplicate) ))
  printf '%s\tingest-only\t-\t%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t%s\n' "$step" "$INGEST_RPS" \
    "$(field "$json" p50_us)" "$(field "$json" p99_us)" "$errs" "$(hwm_kib "$PID")" \
    "$(field "$json" ok)" >>"$ROWS"
  printf '  step %s ingest-only  closed c%s  %7.0f req/s  p50 %s us  p99 %s us  errors %s\n' \
    "$step" "$CONNS" "$INGEST_RPS" "$(field "$json" p50_us)" "$(field "$json" p99_us)" "$errs"
  stop "$PID"
  rm -f "$WORK/$name".db*
}

# dispatch_run STEP RATE: the open-loop run; sets FLAT (1 or 0) and appends
# a row, the samples and the per-thread CPU.
dispatch_run() {
  local step=$1 rate=$2 name="dispatch-$1"
  local db="$WORK/$name.db"
  config "$name"
  start "$name"
  local pid=$PID addr=$ADDR
  # Warms the HTTP and store path (not the plugin: those events are stored only).
  load "$WORK/$name-warm.txt" "http://$addr/webhooks/stored" mode=closed conns=16 duration=2 >/dev/null
  wait_quiet
  local t0 b0 c0 samples="" json
  threads "$pid" >"$WORK/$name.threads0"
  c0=$(cpu_ticks "$pid"); b0=$(busy_ticks); t0=$(date +%s.%N)
  "$LOAD" "http://$addr/webhooks/routed" mode=open rate="$rate" conns="$CONNS" duration="$DURATION" \
    secret="$BENCH_SECRET" >"$WORK/$name.txt" 2>&1 &
  local load_pid=$!
  PIDS+=("$load_pid")
  # Samples at SAMPLE, 2 x SAMPLE, ... s after the start, while the load runs.
  local i=1 now due row
  while :; do
    due=$(awk -v t0="$t0" -v i="$i" -v s="$SAMPLE" 'BEGIN {printf "%.3f", t0 + i * s}')
    now=$(date +%s.%N)
    sleep "$(awk -v d="$due" -v n="$now" 'BEGIN {x = d - n; print (x > 0 ? x : 0)}')"
    kill -0 "$load_pid" 2>/dev/null || break
    row=$(q "$db" "SELECT (SELECT COUNT(*) FROM events WHERE status = 'received'), (SELECT COUNT(*) FROM deliveries)")
    samples+="$(awk -v d="$due" -v t0="$t0" 'BEGIN {printf "%.0f", d - t0}')/${row//|//} "
    i=$((i + 1))
  done
  wait "$load_pid" || { cat "$WORK/$name.txt" >&2; die "load failed"; }
  local kept=() p
  for p in "${PIDS[@]}"; do [[ $p == "$load_pid" ]] || kept+=("$p"); done
  PIDS=("${kept[@]}")
  local c1 b1 t1
  c1=$(cpu_ticks "$pid"); b1=$(busy_ticks); t1=$(date +%s.%N)
  threads "$pid" >"$WORK/$name.threads1"
  json=$(sed -n 's/^LOAD //p' "$WORK/$name.txt")
  [[ -n $json ]] || { cat "$WORK/$name.txt" >&2; die "no LOAD line"; }
  local end_row
  end_row=$(q "$db" "SELECT (SELECT COUNT(*) FROM events WHERE status = 'received'), (SELECT COUNT(*) FROM deliveries)")

  local ok sched errs late elapsed p50 p99 load_cpu
  ok=$(field "$json" ok); sched=$(field "$json" scheduled)
  errs=$(( $(field "$json" errors) + $(field "$json" non_2xx) + $(field "$json" duplicate) ))
  late=$(field "$json" late); elapsed=$(field "$json" elapsed_s)
  p50=$(field "$json" p50_us); p99=$(field "$json" p99_us); load_cpu=$(field "$json" cpu_s)

  # Flat: sent on time and without errors; over the second half the backlog
  # stayed under 1 s of events and grew by at most FLAT_GROWTH s of events.
  # WHY says which part failed: the backlog (dispatch fell behind) or the
  # load (the router's acks fell behind: the last answer came more than 1 s
  # after the end, so the offered rate was not taken).
  local verdict_flat
  verdict_flat=$(awk -v s="$samples" -v r="$rate" -v d="$DURATION" -v g="$FLAT_GROWTH" \
    -v ok="$ok" -v sched="$sched" -v errs="$errs" -v el="$elapsed" 'BEGIN {
      n = split(s, a, " "); first = -1; max = 0
      for (i = 1; i <= n; i++) { split(a[i], p, "/"); if (p[1] + 0 >= d / 2) {
        if (first < 0) first = p[2]; last = p[2]; if (p[2] + 0 > max) max = p[2] } }
      why = ""
      if (first < 0 || max >= r || last - first > g * r) why = why "backlog grew; "
      if (errs != 0) why = why sprintf("%d errors or non-2xx; ", errs)
      if (ok + errs != sched) why = why sprintf("%d not sent; ", sched - ok - errs)
      if (el >= d + 1) why = why sprintf("acks behind (last answer at %.1f s); ", el)
      sub(/; $/, "", why); print (why == "" ? 1 : 0) " " (why == "" ? "-" : why) }')
  FLAT=${verdict_flat%% *}
  local why=${verdict_flat#* }

  # Settle, then check every accepted event.
  local settle_start waited=0 left
  settle_start=$(date +%s)
  while :; do
    left=$(q "$db" "SELECT COUNT(*) FROM events WHERE status = 'received'")
    [[ $left == 0 ]] && break
    waited=$(( $(date +%s) - settle_start ))
    if (( waited >= SETTLE_MAX )); then break; fi
    sleep 1
  done
  local verdict
  verdict=$(q "$db" "SELECT
      (SELECT COUNT(*) FROM events WHERE source = 'routed'),
      (SELECT COUNT(*) FROM events WHERE source = 'routed' AND status = 'processed'),
      (SELECT COUNT(*) FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE e.source = 'routed' AND d.status = 'pending' AND d.sink = 'archive'),
      (SELECT COUNT(*) FROM events e WHERE e.source = 'routed'
         AND (SELECT COUNT(*) FROM deliveries d WHERE d.event_id = e.id) != 1),
      (SELECT COUNT(*) FROM plugin_runs)")
  local events processed deliveries odd runs check
  IFS='|' read -r events processed deliveries odd runs <<<"$verdict"
  if [[ $left != 0 ]]; then
    check="unsettled: $left events still undispatched after ${SETTLE_MAX} s"
  elif [[ $events == "$ok" && $processed == "$ok" && $deliveries == "$ok" && $odd == 0 && $runs == "$ok" ]]; then
    check=ok
  else
    check="MISMATCH: accepted $ok, events $events, processed $processed, pending archive deliveries $deliveries, events without exactly one delivery $odd, plugin runs $runs"
  fi

  local hz wall share cpu_us dps
  hz=$(getconf CLK_TCK)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
  share=$(awk -v srv=$((c1 - c0)) -v all=$((b1 - b0)) -v hz="$hz" -v w="$load_cpu" -v wall="$wall" \
    -v n="$(nproc)" 'BEGIN { cap = wall * n; o = all / hz - srv / hz - w; if (o < 0) o = 0
      printf "%.0f/%.0f/%.0f", srv / hz / cap * 100, w / cap * 100, o / cap * 100 }')
  cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$ok" 'BEGIN { printf "%.0f", n ? t / hz * 1e6 / n : 0 }')
  # Deliveries created per second while the load ran (the last sample).
  dps=$(awk -v s="$samples" 'BEGIN { n = split(s, a, " "); split(a[n], p, "/"); printf "%.0f", p[1] ? p[3] / p[1] : 0 }')
  local hwm
  hwm=$(hwm_kib "$pid")
  printf '%s\tdispatch' "$step" >>"$ROWS"
  printf '\t%s' "$rate" \
    "$(field "$json" rps)" "$p50" "$p99" "$errs" "$hwm" "$FLAT" "$dps" "$cpu_us" "$share" "$ok" \
    "$late" "${end_row//|//}" "$samples" "$check" "$why" >>"$ROWS"
  echo >>"$ROWS"
  printf '  step %s dispatch     open %5s/s %7.0f req/s  p50 %s us  p99 %s us  errors %s  late %s  deliveries %s/s  backlog %s -> %s  %s  check: %s\n' \
    "$step" "$rate" "$(field "$json" rps)" "$p50" "$p99" "$errs" "$late" "$dps" \
    "$samples" "end ${end_row%%|*}" "$([[ $FLAT == 1 ]] && echo FLAT || echo "not flat: $why")" "$check"
  {
    echo "# step $step, $rate/s: router CPU per accepted event, by thread (us)"
    join "$WORK/$name.threads0" "$WORK/$name.threads1" \
      | awk -v hz="$hz" -v n="$ok" '{ printf "%-22s %7.1f\n", $1, n ? ($3 - $2) / hz * 1e6 / n : 0 }'
  } >>"$THREADS"
  [[ $check == ok || $check == unsettled* ]] || FAILED+=("step $step ($rate/s): $check")
  stop "$pid"
  { echo "# $name: $(grep -c 'Webhook acknowledged' "$WORK/$name.log" || true) 'Webhook acknowledged.' lines, other lines:"
    grep -v 'Webhook acknowledged' "$WORK/$name.log" | tail -30 || true
  } >>"$WORK/router-log-summary.txt"
  rm -f "$WORK/$name.log" "$WORK/$name".db*
}

FAILED=()
round50() { awk -v r="$1" 'BEGIN { printf "%d", int(r / 50 + 0.5) * 50 }'; }

echo "Hookyard dispatch benchmark: $DURATION s per rate (ingest-only ${INGEST_DURATION} s, c$CONNS), sample every $SAMPLE s, $(nproc) cores"
echo "work dir $WORK; $BUILD; warm_instances = $WARM_INSTANCES"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
BEST=0 BEST_STEP=- LOW=0 HIGH=0 step=0
for rate_given in ${RATES:-search}; do
  while :; do
    step=$((step + 1))
    (( step > MAX_RUNS )) && break 2
    echo "step $step"
    ingest_only "$step"
    if [[ $rate_given != search ]]; then
      rate=$rate_given
    elif (( step == 1 )); then
      rate=$(round50 "${START_RATE:-$(awk -v r="$INGEST_RPS" 'BEGIN {print r / 2}')}")
    fi
    dispatch_run "$step" "$rate"
    if [[ $FLAT == 1 ]]; then
      (( rate > BEST )) && { BEST=$rate; BEST_STEP=$step; }
      LOW=$rate
    else
      HIGH=$rate
    fi
    [[ $rate_given != search ]] && break
    # Bisection: up by half while nothing failed, down by half while nothing
    # held, then between the highest flat and the lowest failing rate.
    if (( HIGH == 0 )); then
      rate=$(round50 "$(awk -v r="$rate" 'BEGIN {print r * 1.5}')")
    elif (( LOW == 0 )); then
      rate=$(round50 "$(awk -v r="$rate" 'BEGIN {print r / 2}')")
    else
      awk -v l="$LOW" -v h="$HIGH" -v m="$MIN_STEP" 'BEGIN { exit !((h - l) * 100 <= m * l) }' && break 2
      rate=$(round50 "$(( (LOW + HIGH) / 2 ))")
    fi
    (( rate < 50 )) && break 2
  done
done

REPORT="$RESULTS_DIR/dispatch-$STAMP.md"
{
  echo "# Dispatch benchmark $STAMP"
  echo
  echo "$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load generator on the same machine;" \
    "binary $BUILD; warm_instances = $WARM_INSTANCES. Load average at start: $LOAD0, at end: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Ingest-only: closed loop c$CONNS, ${INGEST_DURATION} s, stored-only source. Dispatch: open loop, $DURATION s, plugin source;" \
    "backlog = events with status 'received', sampled every $SAMPLE s."
  echo
  awk -F'\t' -v best="$BEST" -v bstep="$BEST_STEP" '
    function median(list,   n, a, i, j, t) {
      n = split(list, a, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    $2 == "ingest-only" { ing[$1] = $4; all = all " " $4; ip50[$1] = $5; ip99[$1] = $6; ihwm[$1] = $8 }
    $2 == "dispatch" { d[$1] = $0 }
    END {
      print "| step | ingest-only req/s | offered /s | acked req/s | deliveries /s | flat | p50 ms | p99 ms | errors | router RSS MiB | router CPU us/event | CPU % router/load/other | samples: s/received/deliveries | check |"
      print "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
      for (s = 1; s in ing; s++) {
        split(d[s], f, "\t")
        printf "| %s | %.0f | %s | %.0f | %s | %s | %.2f | %.2f | %s | %.1f | %s | %s | %s | %s |\n", s, ing[s], f[3], f[4], f[10],
          f[9] == 1 ? "yes" : "no: " f[18], f[5] / 1000, f[6] / 1000, f[7], f[8] / 1024, f[11], f[12], f[16], f[17]
      }
      print ""
      if (best > 0) {
        printf "Highest flat rate: **%d/s** (step %s); ingest-only in the same run: %.0f req/s (median of %d steps; %.0f in step %s);", best, bstep, median(all), split(all, x, " "), ing[bstep], bstep
        printf " ratio %.0f%% of the median (%.0f%% of its own step).\n", best / median(all) * 100, best / ing[bstep] * 100
      } else {
        printf "No offered rate was flat; ingest-only median %.0f req/s.\n", median(all)
      }
    }' "$ROWS"
  echo
  echo "Router CPU per accepted event by thread, during each dispatch run (the SQLite threads by start order):"
  echo
  echo '```'
  cat "$THREADS"
  echo '```'
  if (( ${#FAILED[@]} )); then
    echo
    echo "**Verification failures:**"
    printf -- '- %s\n' "${FAILED[@]}"
  fi
} >"$REPORT"
cp "$ROWS" "$RESULTS_DIR/dispatch-$STAMP.tsv"
cp "$WORK/router-log-summary.txt" "$RESULTS_DIR/dispatch-$STAMP-router-log.txt" 2>/dev/null || true
echo
cat "$REPORT"
echo
echo "written: $REPORT"
(( ${#FAILED[@]} == 0 )) || die "verification failed: ${FAILED[*]}"
