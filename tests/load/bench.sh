#!/usr/bin/env bash
# Benchmarks intake's SubmitReport on this machine, all traffic on 127.0.0.1:
#   1. PostgreSQL (durable): custos-load at 32 concurrent calls, then pgbench running the
#      equivalent single-statement insert (report row + outbox row) with 32 clients against
#      the same tables, in the same run.
#   2. SQLite (durable, synchronous=FULL, WAL): custos-load at 32 concurrent calls.
#   3. Idle resident memory of the intake service.
# Usage: tests/load/bench.sh [seconds]   (builds release binaries first)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN=${1:-20}
PG_ADMIN_URL=${CUSTOS_BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
BENCH_DB=custos_bench
PG_URL=${PG_ADMIN_URL%/*}/$BENCH_DB
SECRET=bench-secret-0123456789abcdef0123456789
PORT=50191

cargo build --release -q -p custos-intake -p custos-load -p custos
WORK=$(mktemp -d)
INTAKE_PID=
cleanup() { [ -n "$INTAKE_PID" ] && kill "$INTAKE_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $BENCH_DB" -c "CREATE DATABASE $BENCH_DB"
printf '%s' "$SECRET" > "$WORK/dev-signing-secret"
TOKEN=$(target/release/custos token --data-dir "$WORK" --role reporter --subject load)

start_intake() { # database-url log
  CUSTOS_AUTH__HS256_SECRET=$SECRET CUSTOS_AUTH__ISSUER=custos-standalone \
  CUSTOS_DATABASE__MAX_CONNECTIONS=${BENCH_POOL:-16} CUSTOS_SERVER__MAX_CONCURRENT_REQUESTS=4096 \
  RUST_LOG=warn target/release/custos-intake --listen 127.0.0.1:$PORT --database-url "$1" >"$2" 2>&1 &
  INTAKE_PID=$!
  for _ in $(seq 1 100); do
    if target/release/custos report list --server http://127.0.0.1:$PORT --token "$TOKEN" >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  echo "intake did not start:"; cat "$2"; exit 1
}
stop_intake() { kill -TERM "$INTAKE_PID"; wait "$INTAKE_PID" || true; INTAKE_PID=; }

echo "== PostgreSQL (durable) =="
start_intake "$PG_URL" "$WORK/pg.log"
sleep 5
echo "idle RSS of custos-intake on PostgreSQL: $(awk '/VmRSS/ {print $2, $3}' /proc/$INTAKE_PID/status)"
target/release/custos-load --server http://127.0.0.1:$PORT --token "$TOKEN" --concurrency 32 --seconds "$SECONDS_PER_RUN"
stop_intake
echo "-- pgbench: the same report + outbox insert as one statement, 32 clients --"
SQL=$PWD/tests/load/pgbench/insert_report.sql
(cd "$WORK" && PGOPTIONS="-c search_path=intake" pgbench -n -c 32 -j 2 -T "$SECONDS_PER_RUN" \
  -l -f "$SQL" "$PG_URL" | grep -E "latency average|^tps")
# pgbench's own latency percentiles, from its per-transaction log (microseconds, 3rd column).
cat "$WORK"/pgbench_log.* | awk '{print $3}' | sort -n \
  | awk '{a[NR]=$1} END {printf "  pgbench latency p50 %.2f ms, p99 %.2f ms\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}'

echo "== SQLite (durable: WAL, synchronous=FULL) =="
start_intake "sqlite://$WORK/intake.db" "$WORK/sqlite.log"
sleep 5
echo "idle RSS of custos-intake on SQLite: $(awk '/VmRSS/ {print $2, $3}' /proc/$INTAKE_PID/status)"
target/release/custos-load --server http://127.0.0.1:$PORT --token "$TOKEN" --concurrency 32 --seconds "$SECONDS_PER_RUN"
stop_intake
psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $BENCH_DB"
