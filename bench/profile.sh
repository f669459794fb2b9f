#!/usr/bin/env bash
# profile.sh BUILD_DIR NAME "ROWGATE FLAGS" "LOAD FLAGS": where the machine's
# CPU goes while one bench point runs. Starts rowgate (flags as given, on the
# bench database of bench/run.sh, which must have been loaded once by
# `make bench`), primes its row cache when --cache_entities is among the
# flags, runs bench/rowgate_load with LOAD FLAGS for 14 s and, in the middle
# of it:
#   PROFILE=cpu (default)  perf record -a -g for 8 s; prints the CPU share of
#                          each process and of each rowgate thread, and the
#                          top symbols of Postgres and of rowgate
#   PROFILE=self           the same, rowgate's process only (-p)
#   PROFILE=syscalls       perf stat of rowgate's sendmsg, futex, epoll_wait,
#                          ... and context switches over 5 s
# Data and reports: bench/out/profile/NAME.*. Needs perf (linux-perf,
# installed here if missing) and root or perf_event_paranoid <= 1.
#
# Example (16 calls x 100 keys on the database path):
#   bash bench/profile.sh build b16 "" \
#     "--mode=unary --concurrency=16 --threads=2 --keys_per_call=100"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/.." && pwd)
build=$(cd "${1:?usage: profile.sh BUILD_DIR NAME ROWGATE_FLAGS LOAD_FLAGS}" && pwd)
name=${2:?name}
read -r -a rflags <<<"${3:-}"
read -r -a lflags <<<"${4:-}"
mode=${PROFILE:-cpu}
pg="$project/deploy/local/pg.sh"
out=$here/out/profile
mkdir -p "$out"
if ! command -v perf >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq linux-perf >/dev/null
fi
bash "$pg" start >/dev/null
url=$(bash "$pg" url rowgate_bench)
port_file=$out/$name.port
rm -f "$port_file"
"$build/rowgate" --listen=127.0.0.1:0 --port_file="$port_file" \
  --database_url="$url" "${rflags[@]}" >"$out/$name.server.log" 2>&1 &
srv=$!
trap 'kill -TERM $srv 2>/dev/null || true; wait $srv 2>/dev/null || true' EXIT
for _ in $(seq 300); do [ -s "$port_file" ] && break; sleep 0.1; done
port=$(tr -dc 0-9 <"$port_file")
sleep 1
if [[ " ${rflags[*]} " == *--cache_entities* ]]; then
  "$build/bench/rowgate_load" --target="127.0.0.1:$port" --prime --key_min=1 \
    --key_max=1000000 --concurrency=1 --threads=1 --warmup_s=0 \
    --duration_s=0.1 >/dev/null 2>&1
fi
"$build/bench/rowgate_load" --target="127.0.0.1:$port" "${lflags[@]}" \
  --key_min=1 --key_max=1000000 --warmup_s=2 --duration_s=12 \
  --server_pid=$srv --json >"$out/$name.json" 2>"$out/$name.load.log" &
load=$!
sleep 3
case "$mode" in
  syscalls)
    perf stat -p $srv -e 'syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_write,syscalls:sys_enter_read,context-switches' \
      -- sleep 5 2>&1 | grep -E 'syscalls|context' | tee "$out/$name.report"
    ;;
  cpu | self)
    target=(-a); [ "$mode" = self ] && target=(-p $srv)
    perf record "${target[@]}" -g -F 999 -o "$out/$name.data" -- sleep 8 >/dev/null 2>&1
    {
      echo "== CPU by process"
      perf report -i "$out/$name.data" --no-children --sort comm -g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
      echo "== CPU by thread (tid:name; rowgate's threads are named rowgate or default-executo)"
      perf report -i "$out/$name.data" --no-children --sort pid -g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
      for comm in postgres rowgate; do
        echo "== top symbols of $comm"
        perf report -i "$out/$name.data" --no-children --comm "$comm" --sort dso,sym -g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -15 | cut -c1-150
      done
    } | tee "$out/$name.report"
    ;;
  *) echo "profile.sh: PROFILE is cpu, self or syscalls" >&2; exit 2 ;;
esac
wait $load
jq -c '{keys_per_s, p50_us, p99_us, server_cpu_s, keys}' "$out/$name.json"
