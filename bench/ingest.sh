#!/usr/bin/env bash
# Ingest benchmark: wrk posts signed GitHub webhooks (~1.5 KB, a distinct
# delivery id each) to Hookyard (default durability: SQLite WAL,
# synchronous = FULL, default log level, logs to a file) and to a bare axum
# endpoint that only reads the body, interleaved in the same run; then the
# duplicates-only path and Hookyard on Postgres. Prints a markdown table of
# medians over ROUNDS and writes it to bench/results/.
#
#   bench/ingest.sh                    # 3 rounds, 10 s per run
#   ROUNDS=5 DURATION=10s bench/ingest.sh
#
# Environment: ROUNDS (3), DURATION (10s), WARMUP (2s), WRK_THREADS (2),
# CONNS ("16 64"), POSTGRES (1; 0 skips the Postgres runs, which are also
# skipped when 127.0.0.1:5432 does not answer), PG_ADMIN_URL
# (postgres://postgres@127.0.0.1:5432), SKIP_BUILD (0), BENCH_SECRET
# (bench-github-secret), PROFILE (release: the cargo profile all three
# servers are built with and run from; dist measures the shipping build,
# fat LTO for all three), QUIET_MAX (15) and QUIET_WAIT (120): before each
# run, wait up to QUIET_WAIT s for the machine to be under QUIET_MAX % busy
# (it is shared with other builds).
# Only 127.0.0.1 is contacted; every wrk run is bounded by DURATION.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
WRK_THREADS=${WRK_THREADS:-2}
CONNS=${CONNS:-"16 64"}
POSTGRES=${POSTGRES:-1}
PG_HOST=127.0.0.1
PG_PORT=5432
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@$PG_HOST:$PG_PORT}
SKIP_BUILD=${SKIP_BUILD:-0}
QUIET_MAX=${QUIET_MAX:-15}
QUIET_WAIT=${QUIET_WAIT:-120}
export BENCH_SECRET=${BENCH_SECRET:-bench-github-secret}
PROFILE=${PROFILE:-release}
LUA="$ROOT/bench/wrk/github.lua"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HOOKYARD="$TARGET_DIR/$PROFILE/hookyard"
BARE="$TARGET_DIR/$PROFILE/bare-endpoint"
MINIMAL="$TARGET_DIR/$PROFILE/minimal-ingest"
# The highest connection count is the one the targets are stated for.
CMAX=$(tr ' ' '\n' <<<"$CONNS" | sort -n | tail -1)

die() { echo "ingest.sh: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"

if [[ $SKIP_BUILD != 1 ]]; then
  (cd "$ROOT" && nice -n 10 cargo build --profile "$PROFILE" -p hookyard -p hookyard-bench) \
    || die "$PROFILE build failed"
fi
[[ -x $HOOKYARD && -x $BARE && -x $MINIMAL ]] || die "$PROFILE binaries missing; build first"

PIDS=()                 # servers this script started
PG_DBS=()               # databases this script created

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  pg_drop_all
  rm -rf "$WORK"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hookyard-bench.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
# Private copies: another build relinking target/release mid-run must not
# mix two versions of the router into one set of rounds.
mkdir "$WORK/bin"
cp "$HOOKYARD" "$BARE" "$MINIMAL" "$WORK/bin/"
BUILD="hookyard $(sha256sum "$HOOKYARD" | cut -c1-12) built $(date -u -r "$HOOKYARD" +%FT%TZ)"
HOOKYARD="$WORK/bin/hookyard"
BARE="$WORK/bin/bare-endpoint"
MINIMAL="$WORK/bin/minimal-ingest"
RESULTS_DIR="$ROOT/bench/results"
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
ROWS="$WORK/rows.tsv"   # one line per measured run
: >"$ROWS"

# hookyard_config NAME STORE_URL: a config with only the github source.
hookyard_config() {
  cat >"$WORK/$1.toml" <<EOF
[server]
listen = "127.0.0.1:0"

[store]
url = "$2"

[sources.github]
verify = "github"
secrets = ["$BENCH_SECRET"]
EOF
}

# wrk_run OUT ADDR CONNS DURATION [lua args...]: one wrk run; prints its BENCH json.
wrk_run() {
  local out=$1 addr=$2 conns=$3 dur=$4; shift 4
  wrk -t"$WRK_THREADS" -c"$conns" -d"$dur" --latency -s "$LUA" "http://$addr" -- "$@" \
    >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
  local json
  json=$(sed -n 's/^BENCH //p' "$out")
  [[ -n $json ]] || { cat "$out" >&2; die "no BENCH line in wrk output"; }
  # The JSON, then wrk's own CPU seconds (children's user + sys; exact when
  # called in a $(...) subshell, as measure does).
  echo "$json"
  # (`times` must not run in a pipeline: a forked builtin sees no children.)
  times >"$out.times"
  awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print "WRKCPU", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' \
    "$out.times"
}

# measure ROUND TARGET CONNS PID ADDR [lua args...]: a recorded run.
measure() {
  local round=$1 target=$2 conns=$3 pid=$4 addr=$5; shift 5
  wait_quiet
  local before after busy0 busy1 json
  before=$(cpu_ticks "$pid"); busy0=$(busy_ticks)
  json=$(wrk_run "$WORK/r$round-$target-c$conns.txt" "$addr" "$conns" "$DURATION" "$@")
  after=$(cpu_ticks "$pid"); busy1=$(busy_ticks)
  local req rps p50 p99 errs hwm cpu_us wall wrk_s hz share
  req=$(field "$json" requests)
  wall=$(field "$json" duration_us)
  wrk_s=$(sed -n 's/^WRKCPU //p' <<<"$json")
  hz=$(getconf CLK_TCK)
  # Shares of the machine (all cores) during the run: server, wrk, anything
  # else (other builds on a shared machine: a high value flags a noisy run).
  share=$(awk -v srv=$((after - before)) -v all=$((busy1 - busy0)) -v hz="$hz" -v w="$wrk_s" \
    -v wall="$wall" -v n="$(nproc)" 'BEGIN {
      cap = wall / 1e6 * n; o = all / hz - srv / hz - w; if (o < 0) o = 0
      printf "%.0f\t%.0f\t%.0f", srv / hz / cap * 100, w / cap * 100, o / cap * 100 }')
  rps=$(field "$json" rps)
  p50=$(field "$json" p50_us)
  p99=$(field "$json" p99_us)
  errs=$(wrk_errors "$json")
  hwm=$(hwm_kib "$pid")
  # Server CPU time per request: where the two cores went.
  cpu_us=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$req" \
    'BEGIN { printf "%.0f", n ? t / hz * 1e6 / n : 0 }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$round" "$target" "$conns" "$rps" "$p50" "$p99" "$errs" "$hwm" "$cpu_us" "$share" >>"$ROWS"
  printf '  round %s %-12s c%-3s %7.0f req/s  p50 %6.2f ms  p99 %6.2f ms  err %s  VmHWM %3s MiB  %4s us/req  cpu%% srv/wrk/other %s\n' \
    "$round" "$target" "$conns" "$rps" "$(awk -v v="$p50" 'BEGIN{print v/1000}')" \
    "$(awk -v v="$p99" 'BEGIN{print v/1000}')" "$errs" "$((hwm / 1024))" "$cpu_us" "${share//$'\t'//}"
}

# check ADDR CONNS EXPECT [lua args...]: a short run reading every response;
# EXPECT is new (all 200 + duplicate:false) or dup (all 200 + duplicate:true).
check() {
  local addr=$1 conns=$2 expect=$3; shift 3
  local json ok other t f
  json=$(wrk_run "$WORK/check-$expect.txt" "$addr" "$conns" 1s check=1 "$@")
  ok=$(field "$json" check_200); other=$(field "$json" check_other)
  t=$(field "$json" check_dup_true); f=$(field "$json" check_dup_false)
  if [[ $other != 0 || $ok == 0 ]] \
    || [[ $expect == new && ( $t != 0 || $f != "$ok" ) ]] \
    || [[ $expect == dup && ( $f != 0 || $t != "$ok" ) ]]; then
    die "check ($expect) failed against $addr: 200=$ok other=$other duplicate:true=$t duplicate:false=$f"
  fi
  echo "  check ($expect): $ok responses, all 200 with duplicate:$([[ $expect == new ]] && echo false || echo true)"
}

if [[ $POSTGRES == 1 ]] && ! pg_up; then
  echo "ingest.sh: Postgres at $PG_HOST:$PG_PORT does not answer; skipping the Postgres runs." >&2
  POSTGRES=0
fi

echo "Hookyard ingest benchmark: $ROUNDS rounds x ${DURATION}, wrk -t$WRK_THREADS, c in {$CONNS}, $(nproc) cores"
# The disk's sync-write latency bounds a durable commit: 500 O_DSYNC 4 KiB
# overwrites of a preallocated file (~0.1-2 s).
dd if=/dev/zero of="$WORK/dsync.probe" bs=4k count=500 status=none
DSYNC_MS=$(dd if=/dev/zero of="$WORK/dsync.probe" bs=4k count=500 oflag=dsync conv=notrunc 2>&1 \
  | awk '/copied/ {for (i = 1; i <= NF; i++) if ($i == "s," || $i == "s") print $(i - 1) * 1000 / 500}')
rm -f "$WORK/dsync.probe"
DISK="$(df -T "$WORK" | awk 'NR==2 {print $2}'), O_DSYNC 4 KiB write ${DSYNC_MS} ms"
echo "work dir $WORK ($DISK); $BUILD"

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS"
  hookyard_config "hookyard-sqlite-$round" "sqlite://$WORK/hookyard-$round.db"
  start bare "$BARE" 127.0.0.1:0
  bare_pid=$PID bare_addr=$ADDR
  start "hookyard-$round" "$HOOKYARD" serve --config "$WORK/hookyard-sqlite-$round.toml"
  hy_pid=$PID hy_addr=$ADDR
  if [[ $round == 1 ]]; then
    check "$hy_addr" 4 new   # the Lua signature is accepted: 200, duplicate:false
  fi
  wrk_run "$WORK/warm-bare.txt" "$bare_addr" 16 "$WARMUP" >/dev/null
  wrk_run "$WORK/warm-hy.txt" "$hy_addr" 16 "$WARMUP" >/dev/null
  for c in $CONNS; do
    measure "$round" bare "$c" "$bare_pid" "$bare_addr"
    measure "$round" hookyard "$c" "$hy_pid" "$hy_addr"
  done
  # The issue's hand-written reference (axum + one writer thread, SQLite
  # FULL), at the target's connection count, while the router is idle.
  start "minimal-$round" "$MINIMAL" "$WORK/minimal-$round.db" 127.0.0.1:0
  min_pid=$PID min_addr=$ADDR
  [[ $round == 1 ]] && check "$min_addr" 4 new
  wrk_run "$WORK/warm-min.txt" "$min_addr" 16 "$WARMUP" >/dev/null
  measure "$round" minimal "$CMAX" "$min_pid" "$min_addr"
  stop "$min_pid"
  rm -f "$WORK"/minimal-"$round".db*
  # Duplicates only: store a few ids per wrk thread, then resend only those.
  nonce=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
  wrk_run "$WORK/dup-preload.txt" "$hy_addr" 4 1s mode=dup nonce="$nonce" >/dev/null
  measure "$round" hookyard-dup "$CMAX" "$hy_pid" "$hy_addr" mode=dup nonce="$nonce"
  if [[ $round == 1 ]]; then
    check "$hy_addr" 4 dup mode=dup nonce="$nonce"
  fi
  stop "$hy_pid"
  stop "$bare_pid"
  # The router logs a line per request; keep the count and everything else.
  { echo "# round $round: $(grep -c 'Webhook acknowledged' "$WORK/hookyard-$round.log" || true) 'Webhook acknowledged.' lines, other lines:"
    grep -v 'Webhook acknowledged' "$WORK/hookyard-$round.log" | tail -50 || true
  } >>"$WORK/router-log-summary.txt"
  rm -f "$WORK/hookyard-$round.log" "$WORK"/hookyard-"$round".db*

  if [[ $POSTGRES == 1 ]]; then
    db="hookyard_bench_$$_$round"
    pg_create "$db"
    hookyard_config "hookyard-pg-$round" "$PG_ADMIN_URL/$db"
    start "hookyard-pg-$round" "$HOOKYARD" serve --config "$WORK/hookyard-pg-$round.toml"
    pg_pid=$PID pg_addr=$ADDR
    [[ $round == 1 ]] && check "$pg_addr" 4 new
    wrk_run "$WORK/warm-pg.txt" "$pg_addr" 16 "$WARMUP" >/dev/null
    measure "$round" hookyard-pg "$CMAX" "$pg_pid" "$pg_addr"
    stop "$pg_pid"
    pg_drop "$db"
  fi
done

# Medians per (target, conns); ratios against the bare endpoint at the same
# conns (the Postgres and duplicates rows compare with bare at CMAX).
REPORT="$RESULTS_DIR/ingest-$STAMP.md"
{
  echo "# Ingest benchmark $STAMP"
  echo
  echo "$(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load generator on the same machine;" \
    "wrk -t$WRK_THREADS, $DURATION per run, $ROUNDS interleaved rounds; ~1.5 KB signed GitHub bodies."
  echo "Binary: $BUILD, profile $PROFILE (all three servers). Work dir $DISK; load average at start: $LOAD0, at end: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Median over rounds; ratio = Hookyard req/s / bare req/s (medians of same-round ratios);" \
    "RSS = router VmHWM (max over rounds); server CPU per request; CPU % = shares of all cores during the run" \
    "(other = everything else: kernel threads, Postgres for the -pg rows, and other users' work: high on a bare row means a noisy run)."
  echo
  awk -F'\t' -v cmax="$CMAX" '
    function median(list,   n, a, i, j, t) {
      n = split(list, a, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
      k = $2 "\t" $3
      if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
      rps[k] = rps[k] " " $4; p50[k] = p50[k] " " $5; p99[k] = p99[k] " " $6
      cpu[k] = cpu[k] " " $9; errs[k] += $7
      srv[k] = srv[k] " " $10; wrk[k] = wrk[k] " " $11; oth[k] = oth[k] " " $12
      if ($8 + 0 > hwm[k] + 0) hwm[k] = $8
      byround[$1 "\t" k] = $4
      rounds[$1] = 1
    }
    END {
      print "| target | conns | req/s | ratio vs bare | p50 ms | p99 ms | errors | peak RSS MiB | server CPU us/req | CPU % server/wrk/other |"
      print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
      for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, tc, "\t")
        ratio = "-"
        if (tc[1] != "bare") {
          c = tc[1] == "hookyard" ? tc[2] : cmax
          list = ""
          for (r in rounds) if ((r "\t" k) in byround && (r "\tbare\t" c) in byround)
            list = list " " byround[r "\t" k] / byround[r "\tbare\t" c]
          if (list != "") ratio = sprintf("%.0f%%", median(list) * 100)
        }
        printf "| %s | %s | %.0f | %s | %.2f | %.2f | %d | %.1f | %.0f | %.0f/%.0f/%.0f |\n", tc[1], tc[2],
          median(rps[k]), ratio, median(p50[k]) / 1000, median(p99[k]) / 1000, errs[k],
          hwm[k] / 1024, median(cpu[k]), median(srv[k]), median(wrk[k]), median(oth[k])
      }
      # The router against the hand-written reference, round by round.
      list = ""
      for (r in rounds) if ((r "\thookyard\t" cmax) in byround && (r "\tminimal\t" cmax) in byround)
        list = list " " byround[r "\thookyard\t" cmax] / byround[r "\tminimal\t" cmax]
      if (list != "")
        printf "\nHookyard / minimal (hand-written axum + group commit) at c%s: %.0f%% (median of same-round ratios)\n", cmax, median(list) * 100
    }' "$ROWS"
  echo
  echo "Per run (round, target, conns, req/s, p50 us, p99 us, errors, VmHWM KiB, server CPU us/req," \
    "CPU % server, wrk, other):"
  echo
  echo '```'
  cat "$ROWS"
  echo '```'
} >"$REPORT"
cp "$ROWS" "$RESULTS_DIR/ingest-$STAMP.tsv"
cp "$WORK/router-log-summary.txt" "$RESULTS_DIR/ingest-$STAMP-router-log.txt" 2>/dev/null || true
echo
cat "$REPORT"
echo
echo "written: $REPORT"
