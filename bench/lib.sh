# Shell functions shared by the benchmarks (ingest.sh, dispatch.sh in both
# of its stages) and the A/B runner (ab.sh). Sourced, not run. The caller
# sets WORK (its temp dir), HOOKYARD, BENCH_SECRET, QUIET_MAX, QUIET_WAIT,
# an array PIDS (its children, for its cleanup trap), LOAD if it calls
# load(), PG_ADMIN_URL and an array PG_DBS if it calls the pg_ helpers,
# and defines die().

# start NAME [CMD...]: runs CMD (by default the router on NAME.toml) with
# stdout/stderr in NAME.{out,log}, waits (<= 60 s: the router compiles its
# plugins on the first start) for its "listening on" address; sets PID and ADDR.
start() {
  local name=$1; shift
  (( $# )) || set -- "$HOOKYARD" serve --config "$WORK/$name.toml"
  # Created here, not by the child's redirection: the loop below may read
  # before the child has run.
  : >"$WORK/$name.out"
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
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
# wrk_errors JSON: a github.lua BENCH line's failed requests (socket errors,
# timeouts and non-2xx answers).
wrk_errors() {
  echo $(( $(field "$1" err_connect) + $(field "$1" err_read) + $(field "$1" err_write) \
    + $(field "$1" err_status) + $(field "$1" err_timeout) ))
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Busy ticks of the whole machine (user nice system irq softirq steal).
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
# disk_dev DIR: the block device holding DIR, as named under /sys/class/block.
disk_dev() { basename "$(df --output=source "$1" | tail -1)"; }
# disk_io DEV: "write_requests flush_requests" completed on DEV so far (fields
# 5 and 16 of its stat file; flushes are counted since Linux 5.5, else 0).
disk_io() { awk '{print $5, ($16 == "" ? 0 : $16)}' "/sys/class/block/$1/stat"; }

# tasks PID: "tid name ticks" per live thread (user + system CPU). Linux
# cuts names to 15 characters, so the three SQLite threads all read
# "hookyard-sqlite"; they are started fsync, checkpoint, writer
# (store/sqlite_writer.rs), so they are told apart by thread id order.
tasks() {
  local t name n=0
  for t in $(ls /proc/"$1"/task | sort -n); do
    name=$(cat "/proc/$1/task/$t/comm" 2>/dev/null) || continue
    if [[ $name == hookyard-sqlite ]]; then
      n=$((n + 1))
      case $n in 1) name=sqlite-fsync ;; 2) name=sqlite-checkpoint ;; *) name=sqlite-writer ;; esac
    fi
    echo "$t ${name// /_} $(sed 's/.*) //' "/proc/$1/task/$t/stat" | awk '{print $12 + $13}')"
  done
}

# watch_workers PID WHILE_PID OUT: while WHILE_PID runs, appends to OUT the
# ids of PID's threads seen waiting in epoll (every 0.2 s). Tokio names its
# workers and its blocking-pool threads alike ("tokio-rt-worker"), and
# they do not start in a fixed order; only workers wait in epoll (whichever
# holds the I/O driver when idle: both, over a run), so that tells them
# apart: workers run the async tasks (HTTP, verify, the delivery workers
# and their finisher), the blocking pool runs spawn_blocking (the file
# sink's writes and fsyncs).
watch_workers() {
  local t
  while kill -0 "$2" 2>/dev/null; do
    for t in /proc/"$1"/task/*; do
      [[ $(cat "$t/wchan" 2>/dev/null) == *epoll* ]] && echo "${t##*/}"
    done
    sleep 0.2
  done >>"$3"
}

# thread_us BEFORE AFTER WORKERS PROCESS_TICKS EVENTS: CPU per event (us)
# by thread group between two `tasks` snapshots, threads started in between
# included; tokio threads are split by the WORKERS ids (watch_workers).
# Numbered threads (dispatch workers, sqlx) form one group. The last rows
# are the threads that ended in between (blocking-pool threads idle for
# 10 s exit, taking their counters along: the process's ticks minus the
# live threads') and the total.
thread_us() {
  awk -v hz="$(getconf CLK_TCK)" -v total="$4" -v n="$5" '
    FILENAME == ARGV[1] { w[$1] = 1; next }
    FILENAME == ARGV[2] { b[$1] = $3; next }
    { name = $2
      if (name ~ /^tokio-r/) name = ($1 in w) ? "tokio-worker" : "tokio-blocking"
      sub(/[-_]*[0-9]*$/, "", name)
      d = $3 - b[$1]; g[name] += d; sum += d }
    END {
      for (k in g) printf "%-22s %7.1f\n", k, n ? g[k] / hz * 1e6 / n : 0 | "LC_ALL=C sort"
      close("LC_ALL=C sort")
      x = total - sum; if (x < 0) x = 0
      printf "%-22s %7.1f\n", "(ended threads)", n ? x / hz * 1e6 / n : 0
      printf "%-22s %7.1f\n", "total", n ? total / hz * 1e6 / n : 0 }' "$3" "$1" "$2"
}

# wait_quiet: on a shared machine, waits (at most QUIET_WAIT seconds) until
# the machine is idle but for us: busy < QUIET_MAX % of all cores over 1 s.
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

# Postgres databases a script creates, on PG_ADMIN_URL, recorded in the
# caller's array PG_DBS: pg_drop drops one when its run is over, and the
# caller's cleanup trap calls pg_drop_all for whatever an early exit left.
pg_up() { psql "$PG_ADMIN_URL/postgres" -qAtc 'SELECT 1' >/dev/null 2>&1; }

# pg_create DB: a new, empty database DB.
pg_create() {
  psql "$PG_ADMIN_URL/postgres" -qc "CREATE DATABASE $1" >/dev/null || die "cannot create database $1"
  PG_DBS+=("$1")
}

# pg_drop DB: drops DB (closing its connections) and forgets it. Fails,
# keeping it recorded for pg_drop_all, when the drop fails.
pg_drop() {
  local kept=() d
  psql "$PG_ADMIN_URL/postgres" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null || return 1
  for d in "${PG_DBS[@]}"; do [[ $d == "$1" ]] || kept+=("$d"); done
  PG_DBS=("${kept[@]}")
}

# pg_drop_all: drops every database still recorded, quietly (cleanup traps).
pg_drop_all() {
  local db
  for db in "${PG_DBS[@]}"; do
    psql "$PG_ADMIN_URL/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  PG_DBS=()
}
