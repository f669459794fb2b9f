#!/usr/bin/env bash
# run.sh BINARY [FLAGS...]: runs rowgate in the foreground. Without
# DATABASE_URL it starts the local Postgres, creates the `rowgate` database
# with the demo schema and data if absent, and stops Postgres on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1; shift
pg=$here/pg.sh

if [ -z "${DATABASE_URL:-}" ]; then
  bash "$pg" start
  trap 'bash "$pg" stop' EXIT
  bash "$pg" createdb rowgate
  DATABASE_URL=$(bash "$pg" url rowgate)
  export DATABASE_URL
  echo "rowgate: using the local Postgres ($DATABASE_URL); Ctrl-C stops both" >&2
fi
# Not exec: the trap must stop Postgres after rowgate exits.
"$bin" "$@" &
child=$!
trap 'kill -TERM $child 2>/dev/null' INT TERM
wait $child || true
wait $child 2>/dev/null || true
