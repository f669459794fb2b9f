#!/usr/bin/env bash
# with-pg.sh DB COMMAND...: starts the local Postgres, (re)creates DB with the
# demo schema, runs COMMAND with ROWGATE_TEST_DATABASE_URL pointing at it,
# then stops Postgres again (unless it was already running before).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
db=$1; shift
pg=$here/pg.sh

was_running=0
if bash "$pg" psql postgres -c 'select 1' >/dev/null 2>&1; then was_running=1; fi
bash "$pg" start
if [ $was_running -eq 0 ]; then trap 'bash "$pg" stop' EXIT; fi
bash "$pg" recreatedb "$db"
ROWGATE_TEST_DATABASE_URL=$(bash "$pg" url "$db")
export ROWGATE_TEST_DATABASE_URL
"$@"
