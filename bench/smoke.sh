#!/usr/bin/env bash
# smoke.sh ROWGATE ROWGATE_LOAD: the bench_smoke test. Runs the load
# generator for about 2 s at 8 calls in flight, unary and stream, against
# rowgate with --bench_memory_backend (no database) and, when
# ROWGATE_TEST_DATABASE_URL is set (`make test`), against that database's
# sample users 1..10. Fails only if a call fails, a checked answer is wrong
# or no call completes; never on speed.
set -euo pipefail

rowgate=${1:?usage: smoke.sh ROWGATE ROWGATE_LOAD}
load=${2:?usage: smoke.sh ROWGATE ROWGATE_LOAD}
tmp=$(mktemp -d)
srv_pid=""

stop_server() {
  [ -n "$srv_pid" ] || return 0
  kill -TERM "$srv_pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=""
}
trap 'stop_server; rm -rf "$tmp"' EXIT

# start_server NAME FLAGS...: sets srv_pid and srv_port.
start_server() {
  local name=$1; shift
  "$rowgate" --listen=127.0.0.1:0 --port_file="$tmp/$name.port" "$@" \
    >"$tmp/$name.log" 2>&1 &
  srv_pid=$!
  for _ in $(seq 300); do
    if [ -s "$tmp/$name.port" ]; then
      srv_port=$(tr -dc '0-9' <"$tmp/$name.port")
      [ -n "$srv_port" ] && return 0
    fi
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "smoke: rowgate $* did not start; its log:" >&2
  cat "$tmp/$name.log" >&2
  return 1
}

failed=0
# check NAME ARGS...: one generator run; its exit code says clean or not.
check() {
  local name=$1; shift
  if "$load" --target="127.0.0.1:$srv_port" --warmup_s=0.2 --duration_s=2 \
      --check_fraction=0.2 --label="$name" "$@"; then
    echo "smoke: $name ok"
  else
    echo "smoke: $name FAILED" >&2
    failed=1
  fi
}

both_modes() {
  local name=$1; shift
  check "$name unary" --mode=unary --concurrency=8 "$@"
  check "$name stream" --mode=stream --streams=2 --inflight_per_stream=4 "$@"
  check "$name unary 10 keys" --mode=unary --concurrency=8 --keys_per_call=10 "$@"
}

start_server memory --bench_memory_backend
both_modes memory --key_min=1 --key_max=1000000
stop_server

if [ -n "${ROWGATE_TEST_DATABASE_URL:-}" ]; then
  start_server database --database_url="$ROWGATE_TEST_DATABASE_URL"
  # The demo sample data's users have ids 1..10.
  both_modes database --key_min=1 --key_max=10
  stop_server
else
  echo "smoke: ROWGATE_TEST_DATABASE_URL is unset; database part skipped"
fi

if [ "$failed" -ne 0 ]; then
  echo "smoke: server logs:" >&2
  tail -n 20 "$tmp"/*.log >&2 || true
fi
exit "$failed"
