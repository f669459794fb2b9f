#!/usr/bin/env bash
# Runs the Python and Node example clients (examples/run.sh) against a real
# rowgate started on a free port, over the test database.
#   examples_test.sh ROWGATE_BINARY
set -euo pipefail
binary=$1
here=$(cd "$(dirname "$0")" && pwd)
: "${ROWGATE_TEST_DATABASE_URL:?run with make test}"
dir=$(mktemp -d)
"$binary" --listen=127.0.0.1:0 --port_file="$dir/port" \
  --database_url="$ROWGATE_TEST_DATABASE_URL" 2>"$dir/server.log" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 300); do
  [ -s "$dir/port" ] && break
  kill -0 $server 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$dir/port" ] || { echo "rowgate did not start" >&2; cat "$dir/server.log" >&2; exit 1; }
bash "$here/../examples/run.sh" "127.0.0.1:$(cat "$dir/port")"
