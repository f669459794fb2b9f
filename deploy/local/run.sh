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
# Exits with rowgate's own status, so `make run` fails when rowgate does.
# Ctrl-C (SIGINT) or SIGTERM asks rowgate to stop gracefully (a background
# child of a script ignores SIGINT, hence the forwarding); a clean stop is
# rowgate's exit 0, which this passes on: the stop that was asked for
# succeeded. A failed shutdown keeps its non-zero status.
"$bin" "$@" &
child=$!
stopping=0
trap 'stopping=1; kill -TERM $child 2>/dev/null' INT TERM
status=0
wait $child || status=$?
# A trapped signal interrupts `wait` while rowgate is still shutting down:
# wait again for rowgate's own status (127: it was already collected).
while [ $stopping -eq 1 ]; do
  stopping=0
  again=0
  wait $child || again=$?
  [ $again -eq 127 ] || status=$again
done
exit $status
