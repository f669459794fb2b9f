#!/usr/bin/env bash
# bench/composite_lookup.sh [rows] [iterations]: times the candidate
# statements for a loader batch by a composite primary key (see
# bench/composite_lookup.cc) on the local Postgres (deploy/local/pg.sh), in a
# scratch database of its own. Prints CSV: microseconds per query.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pg=$here/../deploy/local/pg.sh
out=${TMPDIR:-/tmp}/rowgate_composite_lookup
g++ -O2 -std=c++17 -o "$out" "$here/composite_lookup.cc" -I/usr/include/postgresql -lpq
bash "$pg" start >/dev/null
bash "$pg" psql postgres -qc 'DROP DATABASE IF EXISTS rowgate_composite_bench' >/dev/null
bash "$pg" psql postgres -qc 'CREATE DATABASE rowgate_composite_bench' >/dev/null
"$out" "$(bash "$pg" url rowgate_composite_bench)" "${1:-200000}" "${2:-200}"
bash "$pg" psql postgres -qc 'DROP DATABASE rowgate_composite_bench' >/dev/null
