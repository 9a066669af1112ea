#!/usr/bin/env bash
# End-to-end benchmarks (bench/README.md, "Dispatch benchmark" and
# "Delivery benchmark"): signed requests in -> github-router plugin -> file
# sink, sustained for DURATION seconds at the highest offered rate at which
# the backlog stays flat, next to the ingest-only rate (no plugin, no
# dispatch) measured in the same run, interleaved. STAGE says where the
# backlog is counted:
#   STAGE=dispatched (default, issue #4): undispatched events; the router
#     delivers too (it always does now), but the figure is the dispatch rate.
#   STAGE=delivered (issue #5): undispatched events + pending deliveries,
#     i.e. everything not yet written to the archive file (fsync = FSYNC).
#
# Each step, on fresh routers and databases (the release build, SQLite,
# default durability):
#   1. ingest-only: `load` closed loop, CONNS connections, INGEST_DURATION s,
#      on a source with no plugin and no sinks (stored only);
#   2. the run: `load` open loop at RATE req/s for DURATION s on a source
#      routed through plugins/github-router to a file sink. Every SAMPLE s
#      the script counts undispatched events (status 'received'), pending
#      and done deliveries with the sqlite3 CLI, read-only on the WAL
#      database;
#   3. settle: wait (<= SETTLE_MAX s) for the backlog to be empty, then
#      check that every event the router accepted (2xx, new) is `processed`
#      with exactly one delivery to `archive` (pending or done; done when
#      STAGE=delivered) and one plugin run; when STAGE=delivered, also that
#      the archive files hold exactly one line per delivery id, and the
#      same ids as the database.
# A rate is "flat" when the load was taken on time with no error (every
# request answered 2xx as a new event, the last answer within 1 s of the
# end, and answers at 99% of the rate or more over the run), and over the
# second half of the run the backlog stayed under 1 s worth of events and
# did not grow by more than FLAT_GROWTH s worth; the report says which
# part failed. The rates searched: RATES if given, else a bisection
# between 0 and the ingest-only rate, starting at half of it, at most
# MAX_RUNS steps.
#
# STORE says where the router keeps its data: sqlite (default, a WAL file
# per router) or postgres (a fresh database per router on PG_ADMIN_URL,
# dropped after; samples and checks with psql). SINK says where the
# plugin's deliveries go: file (default, the archive files, checked line by
# line) or http (an HTTP sink posting to a local keep-alive receiver,
# bench's bare-endpoint, started once; its CPU is "other"; the checks are
# the database's, a `done` delivery being a 2xx from the receiver).
#
# Environment: STAGE (dispatched), STORE (sqlite), SINK (file), PG_ADMIN_URL
# (postgres://postgres@127.0.0.1:5432), FSYNC (always: the file sink's
# default; or batch), DURATION (60), INGEST_DURATION (10), CONNS (64), SAMPLE (5),
# MAX_RUNS (7), RATES (e.g. "2000 3000": no search), START_RATE (half the
# first ingest-only rate), MIN_STEP (3: stop the search when the bracket
# is within this % of its low end), FLAT_GROWTH (0.25), SETTLE_MAX (180),
# WARM_INSTANCES (0: a fresh instance per event, the default config),
# SKIP_BUILD (0), BENCH_SECRET (bench-github-secret), QUIET_MAX (15) and
# QUIET_WAIT (120) as in ingest.sh. Smoke tests:
#   DURATION=10 INGEST_DURATION=3 MAX_RUNS=2 bench/dispatch.sh
#   STAGE=delivered DURATION=10 INGEST_DURATION=3 MAX_RUNS=2 bench/dispatch.sh
# Needs sqlite3 (and psql for STORE=postgres). Only 127.0.0.1 is
# contacted; every load is bounded by its duration (and a per-request
# timeout).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STAGE=${STAGE:-dispatched}
STORE=${STORE:-sqlite}
SINK=${SINK:-file}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}
FSYNC=${FSYNC:-always}
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
RECEIVER="$TARGET/release/bare-endpoint"
# host/build.rs builds plugins/ into their own target directory.
PLUGIN="$ROOT/plugins/target/wasm32-wasip2/release/github_router.wasm"

die() { echo "dispatch.sh: $*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
[[ $STAGE == dispatched || $STAGE == delivered ]] || die "STAGE must be dispatched or delivered"
[[ $FSYNC == always || $FSYNC == batch ]] || die "FSYNC must be always or batch"
[[ $STORE == sqlite || $STORE == postgres ]] || die "STORE must be sqlite or postgres"
[[ $SINK == file || $SINK == http ]] || die "SINK must be file or http"
command -v sqlite3 >/dev/null || die "sqlite3 not found (apt-get install sqlite3)"
if [[ $STORE == postgres ]]; then
  command -v psql >/dev/null || die "psql not found"
  pg_up || die "Postgres at $PG_ADMIN_URL does not answer"
fi

if [[ $SKIP_BUILD != 1 ]]; then
  (cd "$ROOT" && nice -n 10 cargo build --release -p hookyard -p hookyard-bench) \
    || die "release build failed"
fi
[[ -x $HOOKYARD && -x $LOAD && -x $RECEIVER ]] || die "release binaries missing in $TARGET/release; build first"
[[ -f $PLUGIN ]] || die "$PLUGIN missing (host/build.rs builds it; see its warnings)"

PIDS=()
PG_DBS=()  # databases this script created and has not dropped yet

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  pg_drop_all
  rm -rf "$WORK"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hookyard-$STAGE.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT TERM
# Private copies: a rebuild during the run must not mix two versions.
mkdir "$WORK/bin"
cp "$HOOKYARD" "$LOAD" "$RECEIVER" "$PLUGIN" "$WORK/bin/"
BUILD="hookyard $(sha256sum "$HOOKYARD" | cut -c1-12) built $(date -u -r "$HOOKYARD" +%FT%TZ)"
HOOKYARD="$WORK/bin/hookyard"
LOAD="$WORK/bin/load"
RECEIVER="$WORK/bin/bare-endpoint"
RESULTS_DIR="$ROOT/bench/results"
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
ROWS="$WORK/rows.tsv"
: >"$ROWS"
THREADS="$WORK/threads.txt"
: >"$THREADS"

# pg_db NAME: NAME's Postgres database (STORE=postgres).
pg_db() { echo "hookyard_bench_${1//-/_}_$$"; }

# create_store NAME: sets STORE_URL to a new, empty store for NAME.
create_store() {
  if [[ $STORE == postgres ]]; then
    local db
    db=$(pg_db "$1")
    pg_create "$db"
    STORE_URL="$PG_ADMIN_URL/$db"
  else
    STORE_URL="sqlite://$WORK/$1.db"
  fi
}

# drop_store NAME: removes NAME's store.
drop_store() {
  if [[ $STORE == postgres ]]; then
    pg_drop "$(pg_db "$1")" || true
  else
    rm -f "$WORK/$1".db*
  fi
}

# sql NAME QUERY: one read-only query on NAME's store, columns joined by |.
sql() {
  if [[ $STORE == postgres ]]; then
    psql "$PG_ADMIN_URL/$(pg_db "$1")" -qAtc "$2"
  else
    q "$WORK/$1.db" "$2"
  fi
}

# sink_config NAME: the archive sink: NAME's files or the HTTP receiver.
sink_config() {
  if [[ $SINK == http ]]; then
    printf '[sinks.archive]\ntype = "http"\nurl = "http://%s/webhooks/archive"\n' "$RECEIVER_ADDR"
  else
    printf '[sinks.archive]\ntype = "file"\npath = "%s"\nfsync = "%s"\n' \
      "$WORK/$1-archive/{source}/{date}.jsonl" "$FSYNC"
  fi
}

# config NAME: both sources, on a new store (create_store); the archive
# files (SINK=file) under NAME-archive/.
config() {
  create_store "$1"
  cat >"$WORK/$1.toml" <<EOF
[server]
listen = "127.0.0.1:0"

[store]
url = "$STORE_URL"

[runtime]
cache_dir = "$WORK/plugin-cache"

$(sink_config "$1")

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
  drop_store "$name"
}

# counts NAME: "received|pending|finished" — events not yet dispatched,
# deliveries not yet written (claimed ones included: a claim keeps them
# pending), deliveries done or dead. Each count is on an index (finished is
# all deliveries minus pending), so a sample does not scan the payloads.
counts() {
  sql "$1" "SELECT (SELECT COUNT(*) FROM events WHERE status = 'received'),
    (SELECT COUNT(*) FROM deliveries WHERE status = 'pending'),
    (SELECT COUNT(*) FROM deliveries) - (SELECT COUNT(*) FROM deliveries WHERE status = 'pending')"
}

# backlog "received|pending|finished": what STAGE counts as not yet done.
backlog() {
  local received pending
  IFS='|' read -r received pending _ <<<"$1"
  if [[ $STAGE == delivered ]]; then echo $((received + pending)); else echo "$received"; fi
}

# verify NAME ACCEPTED: once settled, every accepted event is `processed`
# with one plugin run and one delivery to archive (done when delivered,
# else pending or done); when delivered, the archive holds one line per
# delivery id and the same ids as the database. Prints "ok" or what differs.
verify() {
  local name=$1 ok=$2 statuses="'pending', 'done'"
  [[ $STAGE == delivered ]] && statuses="'done'"
  local events processed deliveries odd runs
  IFS='|' read -r events processed deliveries odd runs <<<"$(sql "$name" "SELECT
      (SELECT COUNT(*) FROM events WHERE source = 'routed'),
      (SELECT COUNT(*) FROM events WHERE source = 'routed' AND status = 'processed'),
      (SELECT COUNT(*) FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE e.source = 'routed' AND d.status IN ($statuses) AND d.sink = 'archive'),
      (SELECT COUNT(*) FROM events e WHERE e.source = 'routed'
         AND (SELECT COUNT(*) FROM deliveries d WHERE d.event_id = e.id) != 1),
      (SELECT COUNT(*) FROM plugin_runs)")"
  local bad=""
  [[ $events == "$ok" && $processed == "$ok" && $deliveries == "$ok" && $odd == 0 && $runs == "$ok" ]] \
    || bad="accepted $ok, events $events, processed $processed, archive deliveries ${statuses//\'/} $deliveries, events without exactly one delivery $odd, plugin runs $runs; "
  if [[ $STAGE == delivered && $SINK == file ]]; then
    # Lines are `{"id":"dlv_...",...}`: the 4th '"'-separated field is the id.
    local lines uniq differ
    find "$WORK/$name-archive" -name '*.jsonl' -exec cat {} + | cut -d'"' -f4 >"$WORK/$name.ids"
    lines=$(wc -l <"$WORK/$name.ids")
    LC_ALL=C sort -u -o "$WORK/$name.ids" "$WORK/$name.ids"
    uniq=$(wc -l <"$WORK/$name.ids")
    sql "$name" "SELECT id FROM deliveries WHERE sink = 'archive'" | LC_ALL=C sort >"$WORK/$name.dbids"
    differ=$(LC_ALL=C comm -3 "$WORK/$name.ids" "$WORK/$name.dbids" | wc -l)
    [[ $lines == "$ok" && $uniq == "$ok" && $differ == 0 ]] \
      || bad+="archive lines $lines, distinct ids $uniq, ids not in both archive and database $differ; "
    rm -f "$WORK/$name.ids" "$WORK/$name.dbids"
  fi
  [[ -z $bad ]] && echo ok || echo "MISMATCH: ${bad%; }"
}

# run_at STEP RATE: the open-loop run; sets FLAT (1 or 0) and appends a
# row, the samples and the per-thread CPU.
run_at() {
  local step=$1 rate=$2 name="$STAGE-$1"
  config "$name"
  start "$name"
  local pid=$PID addr=$ADDR
  # Warms the HTTP and store path (not the plugin: those events are stored only).
  load "$WORK/$name-warm.txt" "http://$addr/webhooks/stored" mode=closed conns=16 duration=2 >/dev/null
  wait_quiet
  local t0 b0 c0 samples="" json
  tasks "$pid" >"$WORK/$name.threads0"
  c0=$(cpu_ticks "$pid"); b0=$(busy_ticks); t0=$(date +%s.%N)
  "$LOAD" "http://$addr/webhooks/routed" mode=open rate="$rate" conns="$CONNS" duration="$DURATION" \
    secret="$BENCH_SECRET" >"$WORK/$name.txt" 2>&1 &
  local load_pid=$!
  PIDS+=("$load_pid")
  : >"$WORK/$name.workers"
  watch_workers "$pid" "$load_pid" "$WORK/$name.workers" &
  local watch_pid=$!
  # Samples at SAMPLE, 2 x SAMPLE, ... s after the start, while the load
  # runs: "s/backlog/received/pending/finished".
  local i=1 now due row
  while :; do
    due=$(awk -v t0="$t0" -v i="$i" -v s="$SAMPLE" 'BEGIN {printf "%.3f", t0 + i * s}')
    now=$(date +%s.%N)
    sleep "$(awk -v d="$due" -v n="$now" 'BEGIN {x = d - n; print (x > 0 ? x : 0)}')"
    kill -0 "$load_pid" 2>/dev/null || break
    row=$(counts "$name")
    samples+="$(awk -v d="$due" -v t0="$t0" 'BEGIN {printf "%.0f", d - t0}')/$(backlog "$row")/${row//|//} "
    i=$((i + 1))
  done
  wait "$load_pid" || { cat "$WORK/$name.txt" >&2; die "load failed"; }
  wait "$watch_pid" || true
  local kept=() p
  for p in "${PIDS[@]}"; do [[ $p == "$load_pid" ]] || kept+=("$p"); done
  PIDS=("${kept[@]}")
  local c1 b1 t1
  c1=$(cpu_ticks "$pid"); b1=$(busy_ticks); t1=$(date +%s.%N)
  tasks "$pid" >"$WORK/$name.threads1"
  json=$(sed -n 's/^LOAD //p' "$WORK/$name.txt")
  [[ -n $json ]] || { cat "$WORK/$name.txt" >&2; die "no LOAD line"; }
  local end_backlog
  end_backlog=$(backlog "$(counts "$name")")

  local ok sched errs late elapsed p50 p99 load_cpu
  ok=$(field "$json" ok); sched=$(field "$json" scheduled)
  errs=$(( $(field "$json" errors) + $(field "$json" non_2xx) + $(field "$json" duplicate) ))
  late=$(field "$json" late); elapsed=$(field "$json" elapsed_s)
  p50=$(field "$json" p50_us); p99=$(field "$json" p99_us); load_cpu=$(field "$json" cpu_s)

  # Flat: sent on time and without errors; over the second half the backlog
  # stayed under 1 s of events and grew by at most FLAT_GROWTH s of events.
  # WHY says which part failed: the backlog (dispatch or delivery fell
  # behind) or the load (the router's acks fell behind: the last answer
  # came more than 1 s after the end, so the offered rate was not taken).
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
      # Answered within 1 s of the end can still be 1.6% under the offered
      # rate over a 60 s run: below 99% of it (the acks, or the load
      # generator on the same cores, fell behind), the rate was not shown
      # flat, whatever the backlog did.
      if (el > 0 && ok / el < 0.99 * r) why = why sprintf("only %.0f/s taken; ", ok / el)
      if (el >= d + 1) why = why sprintf("acks behind (last answer at %.1f s); ", el)
      sub(/; $/, "", why); print (why == "" ? 1 : 0) " " (why == "" ? "-" : why) }')
  FLAT=${verdict_flat%% *}
  local why=${verdict_flat#* }

  # Settle (the backlog empty), then check every accepted event.
  local settle_start left settled
  settle_start=$(date +%s)
  while :; do
    left=$(backlog "$(counts "$name")")
    [[ $left == 0 ]] && break
    (( $(date +%s) - settle_start >= SETTLE_MAX )) && break
    sleep 1
  done
  settled=$(( $(date +%s) - settle_start ))
  local check
  if [[ $left != 0 ]]; then
    check="unsettled: backlog $left after ${SETTLE_MAX} s"
  else
    check=$(verify "$name" "$ok")
  fi

  local hz wall share cpu_us created delivered
  hz=$(getconf CLK_TCK)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
  share=$(awk -v srv=$((c1 - c0)) -v all=$((b1 - b0)) -v hz="$hz" -v w="$load_cpu" -v wall="$wall" \
    -v n="$(nproc)" 'BEGIN { cap = wall * n; o = all / hz - srv / hz - w; if (o < 0) o = 0
      printf "%.0f/%.0f/%.0f", srv / hz / cap * 100, w / cap * 100, o / cap * 100 }')
  cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$ok" 'BEGIN { printf "%.0f", n ? t / hz * 1e6 / n : 0 }')
  # Deliveries created, and finished (written), per second while the load
  # ran (the last sample).
  read -r created delivered < <(awk -v s="$samples" 'BEGIN { n = split(s, a, " "); split(a[n], p, "/")
    if (p[1] + 0 > 0) printf "%.0f %.0f\n", (p[4] + p[5]) / p[1], p[5] / p[1]; else print "0 0" }')
  local hwm
  hwm=$(hwm_kib "$pid")
  printf '%s\trun' "$step" >>"$ROWS"
  printf '\t%s' "$rate" \
    "$(field "$json" rps)" "$p50" "$p99" "$errs" "$hwm" "$FLAT" "$created" "$cpu_us" "$share" "$ok" \
    "$late" "$end_backlog" "$samples" "$check" "$why" "$delivered" "$settled" >>"$ROWS"
  echo >>"$ROWS"
  printf '  step %s %-10s open %5s/s %7.0f req/s  p50 %s us  p99 %s us  errors %s  late %s  created %s/s  delivered %s/s\n' \
    "$step" "$STAGE" "$rate" "$(field "$json" rps)" "$p50" "$p99" "$errs" "$late" "$created" "$delivered"
  printf '    samples s/backlog/received/pending/finished: %s end %s  %s  settled in %s s  check: %s\n' \
    "$samples" "$end_backlog" "$([[ $FLAT == 1 ]] && echo FLAT || echo "not flat: $why")" "$settled" "$check"
  {
    echo "# step $step, $rate/s: router CPU per accepted event, by thread (us)"
    thread_us "$WORK/$name.threads0" "$WORK/$name.threads1" "$WORK/$name.workers" $((c1 - c0)) "$ok"
  } >>"$THREADS"
  [[ $check == ok || $check == unsettled* ]] || FAILED+=("step $step ($rate/s): $check")
  stop "$pid"
  { echo "# $name: $(grep -c 'Webhook acknowledged' "$WORK/$name.log" || true) 'Webhook acknowledged.' lines, other lines:"
    grep -v 'Webhook acknowledged' "$WORK/$name.log" | tail -30 || true
  } >>"$WORK/router-log-summary.txt"
  drop_store "$name"
  rm -rf "$WORK/$name.log" "$WORK/$name-archive"
}

FAILED=()
if [[ $SINK == http ]]; then
  # One receiver for every run: keep-alive connections from each router.
  start receiver "$RECEIVER"
  RECEIVER_ADDR=$ADDR
fi
round50() { awk -v r="$1" 'BEGIN { printf "%d", int(r / 50 + 0.5) * 50 }'; }

echo "Hookyard end-to-end benchmark, STAGE=$STAGE, STORE=$STORE, SINK=$SINK (archive fsync = $FSYNC): $DURATION s per rate (ingest-only ${INGEST_DURATION} s, c$CONNS), sample every $SAMPLE s, $(nproc) cores"
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
    run_at "$step" "$rate"
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

if [[ $STAGE == delivered ]]; then
  KIND="delivery-$FSYNC" WHAT="delivered (undispatched events + pending deliveries)"
else
  KIND=dispatch WHAT="dispatched (events with status 'received')"
fi
[[ $STORE == sqlite ]] || KIND+="-$STORE"
[[ $SINK == file ]] || KIND+="-$SINK"
REPORT="$RESULTS_DIR/$KIND-$STAMP.md"
{
  echo "# End-to-end benchmark, STAGE=$STAGE, STORE=$STORE, SINK=$SINK, archive fsync = $FSYNC, $STAMP"
  echo
  echo "$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load generator on the same machine;" \
    "binary $BUILD; warm_instances = $WARM_INSTANCES. Load average at start: $LOAD0, at end: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Ingest-only: closed loop c$CONNS, ${INGEST_DURATION} s, stored-only source. Runs: open loop, $DURATION s, plugin source;" \
    "backlog = not yet $WHAT, sampled every $SAMPLE s."
  echo
  awk -F'\t' -v best="$BEST" -v bstep="$BEST_STEP" '
    function median(list,   n, a, i, j, t) {
      n = split(list, a, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    $2 == "ingest-only" { ing[$1] = $4; all = all " " $4; ip50[$1] = $5; ip99[$1] = $6; ihwm[$1] = $8 }
    $2 == "run" { d[$1] = $0 }
    END {
      print "| step | ingest-only req/s | offered /s | acked req/s | deliveries created /s | delivered /s | flat | p50 ms | p99 ms | errors | router RSS MiB | router CPU us/event | CPU % router/load/other | samples: s/backlog/received/pending/finished | settled s | check |"
      print "| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"
      for (s = 1; s in ing; s++) {
        split(d[s], f, "\t")
        printf "| %s | %.0f | %s | %.0f | %s | %s | %s | %.2f | %.2f | %s | %.1f | %s | %s | %s | %s | %s |\n", s, ing[s], f[3], f[4], f[10],
          f[19], f[9] == 1 ? "yes" : "no: " f[18], f[5] / 1000, f[6] / 1000, f[7], f[8] / 1024, f[11], f[12], f[16], f[20], f[17]
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
  echo "Router CPU per accepted event by thread, during each run (the SQLite threads by start order; tokio-worker:" \
    "runtime threads seen in epoll_wait, tokio-blocking: the others, spawn_blocking):"
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
cp "$ROWS" "$RESULTS_DIR/$KIND-$STAMP.tsv"
cp "$WORK/router-log-summary.txt" "$RESULTS_DIR/$KIND-$STAMP-router-log.txt" 2>/dev/null || true
echo
cat "$REPORT"
echo
echo "written: $REPORT"
(( ${#FAILED[@]} == 0 )) || die "verification failed: ${FAILED[*]}"
