#!/usr/bin/env bash
# run.sh BUILD_DIR: `make bench`. rowgate against the alternatives, side by
# side in one run, on the local Postgres (deploy/local/pg.sh):
#
#   rowgate          the sidecar as shipped (loader merges concurrent lookups;
#                    every method on gRPC's completion-queue API)
#   rowgate_callback the same with --cq_threads=0: every method on the
#                    callback API, as before issue 9
#   rowgate_nomerge  the same as rowgate with --loader_merge=false (a query
#                    per request)
#   pgbench          Postgres alone: prepared point SELECTs, one connection
#                    per client (capped below max_connections)
#   ceiling_cq       rowgate with --bench_memory_backend: gRPC and rowgate's
#                    serving code without any database, answered on the CQ
#                    thread, the most rowgate could do here
#   ceiling          the same on the callback API (--cq_threads=0)
#   rowgate_cached   rowgate with the row cache on users (--cache_entities,
#                    1 GiB), every key primed before the run (rowgate_load
#                    --prime, not measured): all hits
#   rowgate_zipf     rowgate with the row cache at its default 64 MiB (a
#                    fraction of the table) under zipfian keys: hits and
#                    the miss path; the note gives the hit ratio
#   rowgate_cq2, rowgate_cached_cq2, ceiling_cq2
#                    rowgate, rowgate_cached and ceiling_cq with
#                    --cq_threads=2, the README's advice for clients on
#                    several connections: run at the two-connection points
#                    only (on one connection the README advises one thread)
#
# Database rowgate_bench (demo schema) gets 1,000,000 users once and keeps
# them. At each point every system runs in turn (the order rotates per point,
# so drift hits all alike), each rowgate system in a fresh server process.
# Per run: keys/s, p50/p99 latency, Postgres queries per key
# (pg_stat_statements), rowgate's CPU seconds per million keys and its RSS
# (idle after start, peak). Writes bench/out/results.md, results.csv and
# bench.png, and prints the table.
#
# BENCH_QUICK=1: short runs, fewer points (about a minute).
# BENCH_WARMUP_S / BENCH_DURATION_S override the times of each run;
# BENCH_POINTS / BENCH_SYSTEMS (space-separated names) run a subset;
# BENCH_ROWGATE_FLAGS adds flags to every rowgate system (for experiments).
# BENCH_ROUNDS=N runs every point N times, each round in a rotated order;
# the table then gives each system's median over the rounds, and a second
# table its keys/s against the no-database ceilings of the same round
# (median and lowest), which is what to read on a machine whose speed
# drifts between adjacent runs.
# rowgate_cached_callback (not run unless named in BENCH_SYSTEMS):
# rowgate_cached on the callback API (--cq_threads=0), the cache's
# counterpart of the ceiling system.
# After the gRPC points, rowgate_cache_bench measures the row cache's hit
# path alone (one thread, no gRPC, no Postgres; about a minute); skipped with
# BENCH_CACHE_MICRO=0, or when the build has no rowgate_cache_bench.
# The machine has 2 cores shared by Postgres, rowgate and the generator:
# the numbers compare systems, they are not capacity figures.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/.." && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
rowgate=$build/rowgate
load=$build/bench/rowgate_load
pg="$project/deploy/local/pg.sh"
out=$here/out
db=rowgate_bench
rows=1000000

quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
  warmup=${BENCH_WARMUP_S:-0.5}
  duration=${BENCH_DURATION_S:-2.5}
  # name mode concurrency keys_per_call streams inflight_per_stream
  # connections (the generator's threads, each with a channel of its own)
  # [row format: map (default) or list]
  points=("u1 unary 1 1 0 0 2" "u16 unary 16 1 0 0 2" "u128 unary 128 1 0 0 2"
          "u128x1 unary 128 1 0 0 1" "s128 stream 128 1 8 16 2")
else
  warmup=${BENCH_WARMUP_S:-2}
  duration=${BENCH_DURATION_S:-15}
  points=("u1 unary 1 1 0 0 2" "u16 unary 16 1 0 0 2" "u128 unary 128 1 0 0 2"
          "u128x1 unary 128 1 0 0 1" "u512 unary 512 1 0 0 2"
          "b16 unary 16 100 0 0 2" "b16x1 unary 16 100 0 0 1"
          "b16l unary 16 100 0 0 2 list"
          "s128 stream 128 1 8 16 2" "s128x1 stream 128 1 8 16 1")
fi
systems=(rowgate rowgate_callback rowgate_nomerge pgbench ceiling_cq ceiling
         rowgate_cached rowgate_zipf rowgate_cq2 ceiling_cq2 rowgate_cached_cq2)
# BENCH_POINTS="u512 b16" / BENCH_SYSTEMS="rowgate pgbench": a subset.
if [ -n "${BENCH_POINTS:-}" ]; then
  chosen=()
  for p in "${points[@]}"; do
    for want in $BENCH_POINTS; do [ "${p%% *}" = "$want" ] && chosen+=("$p"); done
  done
  [ ${#chosen[@]} -gt 0 ] || { echo "bench: no point in BENCH_POINTS=$BENCH_POINTS" >&2; exit 1; }
  points=("${chosen[@]}")
fi
if [ -n "${BENCH_SYSTEMS:-}" ]; then read -r -a systems <<<"$BENCH_SYSTEMS"; fi

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }

for f in "$rowgate" "$load"; do
  [ -x "$f" ] || die "$f is missing: build first (make build)"
done

# ------------------------------------------------------------------ tools
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
ensure_pkg() {  # ensure_pkg PACKAGE: apt-get install it if missing
  dpkg -s "$1" >/dev/null 2>&1 && return 0
  log "installing $1"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq "$1" >/dev/null 2>&1 ||
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq "$1" >/dev/null; }
}
ensure_pkg jq || die "jq is needed to read rowgate_load's JSON"
ensure_pkg curl || die "curl is needed to read rowgate_zipf's cache metrics"
have_gnuplot=1
ensure_pkg gnuplot-nox || { have_gnuplot=0; log "no gnuplot: no plot"; }
command -v pgbench >/dev/null || die "pgbench is missing (postgresql-contrib)"

# ----------------------------------------------------------------- data
# Stop Postgres at the end if this run started it (the data stays on disk).
pg_was_running=0
if bash "$pg" psql postgres -c 'select 1' >/dev/null 2>&1; then pg_was_running=1; fi
bash "$pg" start
bash "$pg" createdb "$db"
url=$(bash "$pg" url "$db")
sockdir=${url##*host=}
psql() { bash "$pg" psql "$db" "$@"; }

count=$(psql -tAc "SELECT count(*) FROM users")
if [ "$count" -lt "$rows" ]; then
  log "loading $rows users into $db (once; kept for later runs)"
  # Explicit ids 1..N; the sample data's users 1..10 stay as they are.
  psql <<SQL
INSERT INTO users (id, name, surname, email, lastchange, "externalId")
SELECT g, 'name' || g, 'surname' || g, 'user' || g || '@bench.example',
       timezone('UTC', now()), 1000000000 + g
FROM generate_series(1, $rows) AS g
ON CONFLICT (id) DO NOTHING;
SELECT setval('all_id_seq', GREATEST($rows + 1000, (SELECT last_value FROM all_id_seq)));
SQL
fi
count=$(psql -tAc "SELECT count(*) FROM users WHERE id BETWEEN 1 AND $rows")
[ "$count" -eq "$rows" ] || die "$db has $count users with ids 1..$rows, want $rows"
psql -c "VACUUM ANALYZE users"
dbid=$(psql -tAc "SELECT oid FROM pg_database WHERE datname = current_database()")

# pg_stat_statements is reset for this database only: other databases (the
# tests') keep their counts.
pgss_reset() { psql -tAc "SELECT pg_stat_statements_reset(0, $dbid, 0)" >/dev/null; }
pgss_calls() {
  psql -tAc "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
             WHERE dbid = $dbid AND query NOT LIKE '%pg_stat_statements%'
               AND (query LIKE '%= ANY%' OR query ~* 'from\\s+\"?users\"?\\s+where')"
}

max_conn=$(psql -tAc "SHOW max_connections")
pg_client_cap=$((max_conn - 40))

# ----------------------------------------------------------------- runs
rm -rf "$out/logs" "$out/tmp"
mkdir -p "$out/logs" "$out/tmp"
csv=$out/results.csv
echo "point,mode,concurrency,keys_per_call,system,keys_per_s,calls_per_s,p50_us,p99_us,queries_per_key,cpu_s_per_mkeys,idle_rss_mb,peak_rss_mb,errors,check_failures,note,round" >"$csv"
rounds=${BENCH_ROUNDS:-1}
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS=$rounds: want a whole number >= 1"
round=1 round_tag=""
failures=0
srv_pid=""

stop_server() {
  [ -n "$srv_pid" ] || return 0
  kill -TERM "$srv_pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$srv_pid" 2>/dev/null; then
    log "rowgate ($srv_pid) ignored SIGTERM for 10 s; killing it"
    kill -KILL "$srv_pid" 2>/dev/null || true
  fi
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=""
}
finish() {
  stop_server
  if [ "$pg_was_running" = 0 ]; then bash "$pg" stop; fi
}
trap finish EXIT

# start_server LOGNAME FLAGS...: sets srv_pid, srv_port; fails after 30 s.
start_server() {
  local name=$1; shift
  local port_file=$out/tmp/$name.port
  rm -f "$port_file"
  "$rowgate" --listen=127.0.0.1:0 --port_file="$port_file" "$@" \
    >"$out/logs/$name.server.log" 2>&1 &
  srv_pid=$!
  for _ in $(seq 300); do
    if [ -s "$port_file" ]; then
      srv_port=$(tr -dc '0-9' <"$port_file")
      [ -n "$srv_port" ] && return 0
    fi
    if ! kill -0 "$srv_pid" 2>/dev/null; then
      wait "$srv_pid" 2>/dev/null || true
      srv_pid=""
      log "rowgate $* exited at start; see $out/logs/$name.server.log"
      return 1
    fi
    sleep 0.1
  done
  log "rowgate $* wrote no port file in 30 s"
  stop_server
  return 1
}

# cache_metric NAME METRIC: the value of METRIC on the /metrics of the
# server started as NAME (empty if none).
cache_metric() {
  local port; port=$(tr -dc '0-9' <"$out/tmp/$1.mport" 2>/dev/null) || true
  [ -n "$port" ] || return 0
  curl -s --max-time 2 "http://127.0.0.1:$port/metrics" 2>/dev/null |
    awk -v m="$2" '$1 == m { print $2 }'
}

status_kb() {  # status_kb PID FIELD: a /proc/PID/status field in kB
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

mb() { awk -v kb="${1:-0}" 'BEGIN { if (kb > 0) printf "%.1f", kb / 1024; else printf "" }'; }

# row POINT MODE C KPC SYSTEM KEYS_S CALLS_S P50 P99 QPK CPU IDLE PEAK ERR CHK NOTE
# The note must hold no comma; the round is appended.
row() { local IFS=,; echo "$*,$round" >>"$csv"; }

# run_rowgate SYSTEM POINT MODE C KPC STREAMS INFLIGHT CONNECTIONS FORMAT
run_rowgate() {
  local sys=$1 point=$2 mode=$3 c=$4 kpc=$5 streams=$6 inflight=$7 conns=$8 fmt=$9
  local name=$point-$sys$round_tag flags=(--database_url="$url") load_extra=() prime=0
  local base=$sys
  case "$sys" in
    ceiling_cq2) base=ceiling_cq ;;
    *_cq2) base=${sys%_cq2} ;;
    rowgate_cached_callback) base=rowgate_cached ;;
  esac
  case "$base" in
    rowgate_callback) flags+=(--cq_threads=0) ;;
    rowgate_nomerge) flags+=(--loader_merge=false) ;;
    ceiling_cq) flags=(--bench_memory_backend) ;;
    ceiling) flags=(--bench_memory_backend --cq_threads=0) ;;
    rowgate_cached)
      flags+=(--cache_entities=users --cache_max_bytes=$((1 << 30)))
      prime=1 ;;
    rowgate_zipf)
      flags+=(--cache_entities=users)
      load_extra=(--distribution=zipfian) ;;
  esac
  case "$sys" in
    *_cq2) flags+=(--cq_threads=2) ;;
    rowgate_cached_callback) flags+=(--cq_threads=0) ;;
  esac
  # Metrics (for the hit ratio) only where the miss path is measured: their
  # interceptor costs every call a little. --prime waits for the cache
  # itself.
  case "$sys" in
    rowgate_zipf)
      flags+=(--metrics_listen=127.0.0.1:0 --metrics_port_file="$out/tmp/$name.mport") ;;
  esac
  # shellcheck disable=SC2206
  flags+=(${BENCH_ROWGATE_FLAGS:-})
  if ! start_server "$name" "${flags[@]}"; then
    failures=$((failures + 1))
    row "$point" "$mode" "$c" "$kpc" "$sys" "" "" "" "" "" "" "" "" "" "" "server did not start"
    return 0
  fi
  sleep 0.3
  local idle_kb; idle_kb=$(status_kb "$srv_pid" VmRSS)
  if [ -e "$out/tmp/$name.mport" ]; then
    # The cache answers once its change feed is live (about a second).
    local live=0
    for _ in $(seq 100); do
      [ "$(cache_metric "$name" rowgate_cache_live)" = 1 ] && { live=1; break; }
      sleep 0.1
    done
    [ "$live" = 1 ] || log "$name: the row cache did not go live in 10 s"
  fi
  local shape=(--concurrency="$c" --threads="$conns")
  if [ "$mode" = stream ]; then
    shape=(--streams="$streams" --inflight_per_stream="$inflight" --threads="$conns")
  fi
  if [ "$prime" = 1 ]; then
    # Every key hot before the run; its queries are not the run's.
    "$load" --target="127.0.0.1:$srv_port" --prime --key_min=1 --key_max=$rows \
      --concurrency=1 --threads=1 --warmup_s=0 --duration_s=0.1 \
      >/dev/null 2>>"$out/logs/$name.prime.log" ||
      log "$name: priming failed; see $out/logs/$name.prime.log"
  fi
  pgss_reset
  local json=$out/tmp/$name.json
  "$load" --target="127.0.0.1:$srv_port" --mode="$mode" "${shape[@]}" \
    --keys_per_call="$kpc" --row_format="$fmt" --key_min=1 --key_max=$rows \
    --warmup_s="$warmup" --duration_s="$duration" --server_pid="$srv_pid" \
    --label="$name" "${load_extra[@]}" --json >"$json" 2>"$out/logs/$name.load.log" || true
  local queries; queries=$(pgss_calls)
  local cache_note=""
  if [ -e "$out/tmp/$name.mport" ]; then
    local hits misses
    hits=$(cache_metric "$name" rowgate_cache_hits_total)
    misses=$(cache_metric "$name" rowgate_cache_misses_total)
    cache_note=$(awk -v h="${hits:-0}" -v m="${misses:-0}" -v b="$(cache_metric "$name" rowgate_cache_bytes)" \
      'BEGIN { if (h + m > 0) printf "cache hit ratio %.3f; %.0f MB cached", h / (h + m), b / 1048576 }')
  fi
  stop_server
  cat "$out/logs/$name.load.log" >&2
  if ! jq -e . "$json" >/dev/null 2>&1; then
    failures=$((failures + 1))
    row "$point" "$mode" "$c" "$kpc" "$sys" "" "" "" "" "" "" "$(mb "$idle_kb")" "" "" "" "generator failed"
    return 0
  fi
  local v
  v=$(jq -r --arg q "$queries" '[
      (.keys_per_s | round), (.calls_per_s | round), .p50_us, .p99_us,
      (if .keys_all > 0 then (($q | tonumber) / .keys_all * 1000 | round) / 1000 else "" end),
      (if .keys > 0 and .server_cpu_s >= 0 then (.server_cpu_s * 1e7 / .keys | round) / 10 else "" end),
      .server_vmhwm_kb, .errors, .check_failures,
      (if .errors > 0 then .errors_by_code else "" end)] | map(tostring) | join("|")' "$json")
  local keys_s calls_s p50 p99 qpk cpu hwm err chk note
  IFS='|' read -r keys_s calls_s p50 p99 qpk cpu hwm err chk note <<<"$v"
  [ -n "$cache_note" ] && note="$cache_note${note:+; $note}"
  case "$sys" in ceiling*) qpk=0 ;; esac
  row "$point" "$mode" "$c" "$kpc" "$sys" "$keys_s" "$calls_s" "$p50" "$p99" \
    "$qpk" "$cpu" "$(mb "$idle_kb")" "$(mb "$hwm")" "$err" "$chk" "${note:-}"
}

# run_pgbench POINT MODE C KPC: C clients (capped), KPC random ids per
# statement (= ANY of an array when KPC > 1).
run_pgbench() {
  local point=$1 mode=$2 c=$3 kpc=$4 name=$1-pgbench$round_tag
  local script=$out/tmp/$name.sql
  if [ "$kpc" -eq 1 ]; then
    printf '\\set id random(1, %d)\nSELECT * FROM users WHERE id = :id;\n' $rows >"$script"
  else
    : >"$script"
    local ids="" k
    for k in $(seq "$kpc"); do
      printf '\\set k%d random(1, %d)\n' "$k" $rows >>"$script"
      ids+="${ids:+, }:k$k"
    done
    printf 'SELECT * FROM users WHERE id = ANY(ARRAY[%s]::bigint[]);\n' "$ids" >>"$script"
  fi
  local clients=$c note=""
  if [ "$clients" -gt "$pg_client_cap" ]; then
    clients=$pg_client_cap
    note="$clients clients (max_connections $max_conn)"
  fi
  local jobs=$((clients < 2 ? clients : 2))
  # pgbench's -T is whole seconds: run a little longer and measure the same
  # window as the generator, from the per-transaction log.
  local secs; secs=$(awk -v w="$warmup" -v d="$duration" 'BEGIN { t = w + d + 0.5; printf "%d", (t == int(t)) ? t : int(t) + 1 }')
  rm -f "$out/tmp/$name.log"*
  pgss_reset
  if ! pgbench -n -M prepared -c "$clients" -j "$jobs" -T "$secs" -f "$script" \
      -l --log-prefix="$out/tmp/$name.log" -h "$sockdir" -U postgres "$db" \
      >"$out/logs/$name.log" 2>&1; then
    log "pgbench failed; see $out/logs/$name.log"
    failures=$((failures + 1))
    row "$point" "$mode" "$c" "$kpc" pgbench "" "" "" "" "" "" "" "" "" "" "pgbench failed"
    return 0
  fi
  local queries; queries=$(pgss_calls)
  # Log lines: client tx latency_us script epoch_s epoch_us (completion).
  cat "$out/tmp/$name.log".* |
    awk -v w="$warmup" -v d="$duration" '
      { t = $5 + $6 / 1e6; lat[NR] = $3; end[NR] = t; if (NR == 1 || t < t0) t0 = t }
      END { for (i = 1; i <= NR; i++) if (end[i] >= t0 + w && end[i] < t0 + w + d) print lat[i]
            print NR > "/dev/stderr" }' 2>"$out/tmp/$name.total" |
    sort -n >"$out/tmp/$name.lat"
  local total; total=$(cat "$out/tmp/$name.total")
  local v
  v=$(awk -v d="$duration" -v k="$kpc" -v q="$queries" -v total="$total" '
      { a[NR] = $1 }
      END {
        n = NR; if (n == 0) { print "0 0 0 0 0"; exit }
        i50 = int(0.50 * n + 0.999999); i99 = int(0.99 * n + 0.999999)
        printf "%d %d %.1f %.1f %.3f\n", n * k / d, n / d, a[i50], a[i99], (total > 0 ? q / (total * k) : 0)
      }' "$out/tmp/$name.lat")
  local keys_s calls_s p50 p99 qpk
  read -r keys_s calls_s p50 p99 qpk <<<"$v"
  local err
  err=$(awk '/number of failed transactions:/ { print $5 }' "$out/logs/$name.log")
  row "$point" "$mode" "$c" "$kpc" pgbench "$keys_s" "$calls_s" "$p50" "$p99" \
    "$qpk" "" "" "" "$err" "" "$note"
  rm -f "$out/tmp/$name.log".*
  log "$name: $keys_s keys/s, p50 ${p50} us, p99 ${p99} us ($clients clients)"
}

started=$(date +%s)
for round in $(seq "$rounds"); do
[ "$rounds" -gt 1 ] && round_tag=-r$round
for i in "${!points[@]}"; do
  read -r point mode c kpc streams inflight conns fmt <<<"${points[$i]}"
  fmt=${fmt:-map}
  n=${#systems[@]}
  for j in $(seq 0 $((n - 1))); do
    # Rotated by point and by round: no system always runs first.
    sys=${systems[$(((i + j + round - 1) % n))]}
    case "$sys" in
      pgbench)
        # Postgres has no stream; its point would repeat u128. Its clients
        # have a connection each: a one-connection point would repeat the
        # two-connection one.
        [ "$mode" = stream ] && continue
        [ "$conns" = 1 ] && continue
        [ "$fmt" = list ] && continue  # rows are rows to Postgres
        run_pgbench "$point" "$mode" "$c" "$kpc"
        ;;
      *)
        # The two-thread systems: where the README advises two threads.
        [[ "$sys" == *_cq2 && "$conns" = 1 ]] && continue
        run_rowgate "$sys" "$point" "$mode" "$c" "$kpc" "$streams" "$inflight" "$conns" "$fmt"
        ;;
    esac
  done
done
done
log "measured in $(($(date +%s) - started)) s"

# The row cache's hit path alone (bench/row_cache_bench.cc).
cache_micro=$out/tmp/cache-micro.txt
: >"$cache_micro"
if [ "${BENCH_CACHE_MICRO:-1}" = 1 ] && [ -x "$build/bench/rowgate_cache_bench" ]; then
  micro_s=2
  [ "$quick" = 1 ] && micro_s=0.2
  log "rowgate_cache_bench (--benchmark_min_time=$micro_s)"
  "$build/bench/rowgate_cache_bench" --benchmark_min_time=$micro_s 2>/dev/null |
    grep '^BM_' >"$cache_micro" || log "rowgate_cache_bench failed"
fi

# --------------------------------------------------------------- report
md=$out/results.md
# awk functions over a list of numbers (space-separated): median, lowest,
# highest.
awk_stats='
  function median(list,   n, i, j, t, a) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    if (n == 0) return ""
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function lo(list,   n, i, a, m) { n = split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 < m + 0) m = a[i]; return m }
  function hi(list,   n, i, a, m) { n = split(list, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 > m + 0) m = a[i]; return m }
'

{
  echo "# rowgate bench"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores shared by Postgres, the server" \
    "and the generator; $rows users; uniform keys; ${warmup} s warm-up, ${duration} s measured per run."
  echo "Points: uN = unary BatchGet, N calls in flight, 1 key per call; b16 = 16 in flight," \
    "100 keys per call; s128 = StreamBatchGet, 8 streams x 16 in flight; each over two" \
    "connections (HTTP/2 channels), or one where the name ends in x1 (an application's usual single channel);" \
    "b16l = b16 with rows answered as value lists (row_format ROW_FORMAT_LIST) instead of maps."
  echo "pgbench: Postgres alone, prepared \`SELECT * FROM users WHERE id = \$1\` (b16: \`= ANY\` of 100 ids)," \
    "one connection per client; ceiling_cq / ceiling: rowgate answering from memory, no database," \
    "every method on the completion-queue API / on the callback API; rowgate_callback: rowgate on the callback API;" \
    "rowgate_cq2 / rowgate_cached_cq2 / ceiling_cq2: rowgate / rowgate_cached / ceiling_cq with --cq_threads=2 (two-connection points only)."
  echo "queries/key: Postgres statements per key (pg_stat_statements); CPU: rowgate's CPU" \
    "seconds per million keys; RSS: rowgate's idle after start / peak."
  echo
  if [ "$rounds" -gt 1 ]; then
    echo "Each figure is the median of $rounds rounds (each round every point," \
      "systems in a rotated order); keys/s gives the lowest and highest in brackets."
    echo
  fi
  echo "| point | system | keys/s | p50 µs | p99 µs | queries/key | CPU s/Mkeys | RSS idle/peak MB | errors | note |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|--:|---|"
  tail -n +2 "$csv" | awk -F, -v rounds="$rounds" "$awk_stats"'
    function us(v) { return v == "" ? "" : sprintf(v + 0 < 100 ? "%.1f" : "%.0f", v) }
    function num(f, v) { return v == "" ? "" : sprintf(f, v) }
    function add(k, f, v) { if (v != "") vals[k, f] = vals[k, f] " " v }
    {
      k = $1 SUBSEP $5
      if (!(k in seen)) { seen[k] = 1; order[++nk] = k; pt[k] = $1; sy[k] = $5 }
      add(k, 6, $6); add(k, 8, $8); add(k, 9, $9); add(k, 10, $10); add(k, 11, $11)
      add(k, 12, $12); add(k, 13, $13)
      if ($14 != "") err[k] += $14
      if ($15 != "" && $15 != "0") chk[k] += $15
      if ($16 != "" && !(k in note)) note[k] = $16
    }
    END {
      for (i = 1; i <= nk; i++) {
        k = order[i]
        keys = num("%d", median(vals[k, 6]))
        if (rounds > 1 && vals[k, 6] != "") keys = keys sprintf(" (%d-%d)", lo(vals[k, 6]), hi(vals[k, 6]))
        idle = median(vals[k, 12]); peak = median(vals[k, 13])
        rss = (idle == "" && peak == "") ? "" : num("%.1f", idle) " / " num("%.1f", peak)
        e = (k in err) ? err[k] : ""; if (k in chk) e = e " (" chk[k] " wrong)"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", pt[k], sy[k], keys,
          us(median(vals[k, 8])), us(median(vals[k, 9])), num("%.3f", median(vals[k, 10])),
          num("%.1f", median(vals[k, 11])), rss, e, note[k]
      }
    }'
  if [ "$rounds" -gt 1 ]; then
    echo
    echo "Against the no-database ceilings of the same round: keys/s over the best" \
      "ceiling of that round, and over the ceiling with the same serving" \
      "configuration (ceiling_cq2 for the --cq_threads=2 systems, ceiling for" \
      "the callback-API ones, else ceiling_cq); p99 over that ceiling's p99." \
      "Median of the rounds, the lowest in brackets."
    echo
    echo "| point | system | / best ceiling | / own ceiling | own ceiling | p99 / own ceiling's |"
    echo "|---|---|--:|--:|---|--:|"
    tail -n +2 "$csv" | awk -F, "$awk_stats"'
      function own(s) {
        if (s ~ /_cq2$/) return "ceiling_cq2"
        if (s ~ /callback$/) return "ceiling"
        return "ceiling_cq"
      }
      $6 == "" || $6 + 0 == 0 { next }
      {
        keys[$1, $5, $17] = $6; p99[$1, $5, $17] = $9
        if ($5 ~ /^ceiling/) { if ($6 + 0 > best[$1, $17] + 0) best[$1, $17] = $6; next }
        k = $1 SUBSEP $5
        if (!(k in seen)) { seen[k] = 1; order[++nk] = k; pt[k] = $1; sy[k] = $5 }
        rounds_of[k] = rounds_of[k] " " $17
      }
      END {
        for (i = 1; i <= nk; i++) {
          k = order[i]; p = pt[k]; s = sy[k]; o = own(s)
          n = split(rounds_of[k], rs, " "); rb = ""; ro = ""; rp = ""
          for (j = 1; j <= n; j++) {
            r = rs[j]
            if (best[p, r] + 0 > 0) rb = rb " " keys[p, s, r] / best[p, r]
            if (keys[p, o, r] + 0 > 0) ro = ro " " keys[p, s, r] / keys[p, o, r]
            if (p99[p, o, r] + 0 > 0) rp = rp " " p99[p, s, r] / p99[p, o, r]
          }
          if (rb == "") continue
          printf "| %s | %s | %.2f (%.2f) | %s | %s | %s |\n", p, s, median(rb), lo(rb),
            ro == "" ? "" : sprintf("%.2f (%.2f)", median(ro), lo(ro)), ro == "" ? "" : o,
            rp == "" ? "" : sprintf("%.2f", median(rp))
        }
      }'
  fi
  if [ -s "$cache_micro" ]; then
    echo
    echo "Row cache hit path alone (\`rowgate_cache_bench\`: one thread, no gRPC, no Postgres;" \
      "demo users, uniform keys; Lookup = RowCache::Lookup and a read of the encoding," \
      "LoaderCacheHit = Loader::Load of one cached key; /N = keys cached):"
    echo
    echo '```'
    cat "$cache_micro"
    echo '```'
  fi
} >"$md"
echo
cat "$md"

if [ "$have_gnuplot" = 1 ]; then
  plot_lines=() plot_p99=()
  for sys in "${systems[@]}"; do
    dat=$out/tmp/plot-$sys.dat
    awk -F, -v s="$sys" '$17 == 1 && $5 == s && $2 == "unary" && $4 == 1 && $6 != "" { print $3, $6, $9 }' "$csv" |
      sort -n >"$dat"
    [ -s "$dat" ] || continue
    plot_lines+=("'$dat' using 1:2 with linespoints title '$sys'")
    plot_p99+=("'$dat' using 1:3 with linespoints title '$sys'")
  done
  if [ ${#plot_lines[@]} -gt 0 ]; then
    join() { local IFS=,; echo "$*"; }
    term="pngcairo noenhanced size 1200,500 font ',10'"
    gnuplot -e "set terminal $term" </dev/null 2>/dev/null || term="png noenhanced size 1200,500"
    gnuplot <<GP || log "gnuplot failed"
set terminal $term
set output '$out/bench.png'
set multiplot layout 1,2 title 'rowgate bench: unary BatchGet, 1 key per call ($(nproc) cores, ${duration} s per point)'
set logscale x 2
set xlabel 'calls in flight'
set grid
set key top left
set ylabel 'keys/s'
set yrange [0:*]
plot $(join "${plot_lines[@]}")
set ylabel 'p99 latency (µs)'
set logscale y 10
set yrange [*:*]
plot $(join "${plot_p99[@]}")
unset multiplot
GP
    [ -s "$out/bench.png" ] && log "plot: $out/bench.png"
  fi
fi
log "results: $md, $csv"
rm -rf "$out/tmp"
if [ "$failures" -gt 0 ]; then die "$failures run(s) failed; see $out/logs"; fi
