#!/usr/bin/env bash
# Configuration from the environment, start-up validation and logs:
#   config_test.sh ROWGATE_BINARY   (needs ROWGATE_TEST_DATABASE_URL)
set -uo pipefail
bin=$1
: "${ROWGATE_TEST_DATABASE_URL:?run with make test}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0 failed=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok: $name"; else failed=$((failed + 1)); echo "FAILED: $name"; fi
}

# An invalid environment value stops start-up with a message naming it.
ROWGATE_POOL_SIZE=many "$bin" >"$dir/out" 2>&1; code=$?
check "invalid ROWGATE_POOL_SIZE exits 2" test "$code" -eq 2
check "the message names ROWGATE_POOL_SIZE" grep -q ROWGATE_POOL_SIZE "$dir/out"

# An invalid flag value too.
"$bin" --pool_size=0 --database_url="$ROWGATE_TEST_DATABASE_URL" >"$dir/out" 2>&1; code=$?
check "--pool_size=0 exits 2" test "$code" -eq 2
check "the message names --pool_size" grep -q -- "--pool_size" "$dir/out"

# Every numeric flag is range-checked before it is converted: a negative
# value used to pass as a huge size_t (no limit). `timeout` ends a server
# that wrongly starts.
for bad in pool_size=-1 max_keys_per_request=-1 page_size_cap=-1 \
    loader_max_keys_per_query=-1 loader_max_inflight_queries=-1 \
    loader_parallel_min_keys=-1 loader_max_wait_us=-1 \
    loader_max_pending_keys=-1 health_check_interval_ms=-1 \
    shutdown_grace_s=-1 startup_timeout_s=-1 page_size_cap=2147483647 \
    max_filters_per_page=-1 max_in_values=0 max_value_bytes=-1; do
  timeout 20 "$bin" --listen=127.0.0.1:0 --"$bad" \
    --database_url="$ROWGATE_TEST_DATABASE_URL" >"$dir/out" 2>&1; code=$?
  check "--$bad exits 2" test "$code" -eq 2
  check "the message names --${bad%%=*}" grep -q -- "--${bad%%=*} must be" "$dir/out"
done
ROWGATE_MAX_KEYS_PER_REQUEST=-5 timeout 20 "$bin" --listen=127.0.0.1:0 \
  --database_url="$ROWGATE_TEST_DATABASE_URL" >"$dir/out" 2>&1; code=$?
check "ROWGATE_MAX_KEYS_PER_REQUEST=-5 exits 2" test "$code" -eq 2

# A refused login is final: start-up fails at once (not after
# --startup_timeout_s of retries; `timeout` would end those) with a message
# that names the role and never the password.
bad_login=${ROWGATE_TEST_DATABASE_URL/postgresql:\/\/postgres@/postgresql://no_such_role:s3cret-pw@}
timeout 20 "$bin" --listen=127.0.0.1:0 --startup_timeout_s=60 \
  --database_url="$bad_login" >"$dir/out" 2>&1; code=$?
check "a refused login exits 1 at once" test "$code" -eq 1
check "the message says the login was refused" grep -q "refused rowgate's login" "$dir/out"
check "the message names the role" grep -q "no_such_role" "$dir/out"
check "the message never shows the password" bash -c "! grep -q s3cret-pw '$dir/out'"
check "no retry was logged" bash -c "! grep -q 'unreachable; retrying' '$dir/out'"

# --help lists the flags and the environment convention.
"$bin" --help >"$dir/help" 2>&1
check "--help lists --loader_merge" grep -q -- "-loader_merge" "$dir/help"
check "--help explains ROWGATE_<FLAG>" grep -q "ROWGATE_" "$dir/help"

# Flags from the environment: listen on a unix socket given by
# ROWGATE_LISTEN, the database from DATABASE_URL (with a password, which
# trust authentication ignores and the logs must never show).
url=${ROWGATE_TEST_DATABASE_URL/postgresql:\/\/postgres@/postgresql://postgres:s3cret-pw@}
sock=$dir/rowgate.sock
env -u ROWGATE_TEST_DATABASE_URL ROWGATE_LISTEN="unix:$sock" ROWGATE_POOL_SIZE=2 \
  DATABASE_URL="$url" "$bin" >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.1; done
check "serves on the unix socket from ROWGATE_LISTEN" test -S "$sock"
kill -TERM $pid; wait $pid; code=$?
check "exits 0 on SIGTERM" test "$code" -eq 0
check "the effective config shows pool_size 2" grep -q '"pool_size":"2"' "$dir/log"
check "the password never appears" bash -c "! grep -q s3cret-pw '$dir/log'"
check "the password is masked" grep -q 'postgres:\*\*\*@' "$dir/log"
check "every log line is a JSON object" bash -c "grep -v '^{\".*}\$' '$dir/log' | wc -l | grep -qx 0"

# A port already taken stops start-up with a message (gRPC's default
# SO_REUSEPORT would otherwise let two servers share it silently).
"$bin" --listen=127.0.0.1:0 --port_file="$dir/port1" --bench_memory_backend >/dev/null 2>&1 &
first=$!
for _ in $(seq 1 100); do [ -s "$dir/port1" ] && break; sleep 0.1; done
"$bin" --listen="127.0.0.1:$(cat "$dir/port1")" --bench_memory_backend >"$dir/out" 2>&1; code=$?
kill -TERM $first; wait $first
check "a taken port exits 1" test "$code" -eq 1
check "the message says it cannot listen" grep -q "cannot listen on 127.0.0.1:" "$dir/out"

# deploy/local/run.sh (`make run`) exits with rowgate's status: it used to
# exit 0 whatever happened. DATABASE_URL set: it starts no Postgres.
run=$(dirname "$0")/../deploy/local/run.sh
DATABASE_URL="$ROWGATE_TEST_DATABASE_URL" timeout 20 bash "$run" "$bin" --pool_size=0 >"$dir/out" 2>&1; code=$?
check "run.sh passes on rowgate's exit 2 for a bad flag" test "$code" -eq 2
# A stop by SIGINT (Ctrl-C; started with SIGINT at its default, as from a
# terminal, not ignored as for a background job) or SIGTERM is rowgate's clean
# exit 0; a rowgate killed by SIGKILL is 137.
for sig in INT TERM KILL; do
  rm -f "$dir/runport"
  DATABASE_URL="$ROWGATE_TEST_DATABASE_URL" python3 -c '
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp("bash", ["bash"] + sys.argv[1:])' "$run" "$bin" --listen=127.0.0.1:0 \
    --port_file="$dir/runport" >"$dir/runlog" 2>&1 &
  runner=$!
  for _ in $(seq 1 100); do [ -s "$dir/runport" ] && break; sleep 0.1; done
  if [ "$sig" = KILL ]; then
    kill -KILL "$(pgrep -P $runner)"
    expected=137
  else
    kill -"$sig" $runner
    expected=0
  fi
  wait $runner; code=$?
  check "run.sh after SIG$sig exits $expected (got $code)" test "$code" -eq "$expected"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
