#!/usr/bin/env bash
# `make test-faults`: every fault test (ctest label `faults`), including the
# long ones that crash and restart a second, durable Postgres (PG_DURABLE=1
# pg.sh: fsync, synchronous_commit and full_page_writes on), which this
# starts, hands to the tests as ROWGATE_DURABLE_DATABASE_URL, and stops.
#   run.sh BUILD_DIR [ctest args...]
set -euo pipefail
build=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../.." && pwd)
pg=$project/deploy/local/pg.sh

PG_DURABLE=1 bash "$pg" start
trap 'PG_DURABLE=1 bash "$pg" stop' EXIT
PG_DURABLE=1 bash "$pg" recreatedb rowgate_durable
ROWGATE_DURABLE_DATABASE_URL=$(PG_DURABLE=1 bash "$pg" url rowgate_durable)
export ROWGATE_DURABLE_DATABASE_URL
bash "$project/deploy/local/with-pg.sh" rowgate_test \
  ctest --test-dir "$build" --output-on-failure -L faults "$@"
