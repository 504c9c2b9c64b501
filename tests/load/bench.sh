#!/usr/bin/env bash
# Benchmarks intake on this machine, all traffic on 127.0.0.1. Builds release binaries.
#
#   tests/load/bench.sh [seconds]         SubmitReport:
#     1. PostgreSQL (durable): custos-load at 32 concurrent calls, then pgbench running the
#        equivalent single-statement insert (report row + outbox row) with 32 clients
#        against the same tables, in the same run.
#     2. SQLite (durable, synchronous=FULL, WAL): custos-load at 32 concurrent calls.
#     3. Idle resident memory of the intake service.
#
#   The service under test reads on BENCH_READS (default 4) connections: twice this
#   machine's cores, as the README sizes `database.max_read_connections`; BENCH_POOL
#   (default 16) is its main pool.
#
#   tests/load/bench.sh list [reports] [seconds]   ListReports on PostgreSQL:
#     seeds `reports` (default 1,000,000) reports through the API from 20,000 reporters,
#     spreads them over three years with statuses as classification would leave them
#     (the newest received or under assessment, the older closed, a few escalated), then
#     runs every filter combination the API offers at 32 concurrent calls for `seconds`
#     (default 5) each, in the basic view and then the full one (each report audited),
#     and prints each combination's latency.
#
#   tests/load/bench.sh triage [entries] [seconds]   ListTriageQueue on PostgreSQL:
#     seeds classification's triage queue with `entries` (default 1,000,000) reports
#     awaiting assessment, spread over a year (the worst case: in life most are assessed
#     and leave the queue), then runs every filter combination at 32 concurrent calls for
#     `seconds` (default 5) each, and prints each combination's latency.
#
#   tests/load/bench.sh incidents [incidents] [seconds]   ListIncidents and GetIncident on
#     PostgreSQL: seeds the register with `incidents` (default 1,000,000) over three years
#     (the older ones closed, most low, a few service affecting, 200 officers each on their
#     incidents' access lists), then runs every filter combination at 32 concurrent calls
#     for `seconds` (default 3) each, as a security advisor, then GetIncident by reference
#     (BENCH_ONLY="state state+level" measures only those combinations).
#
#   tests/load/bench.sh continuity [subscribers] [changes]   The business-continuity feed
#     on PostgreSQL: `subscribers` (default 1,000) follow it from a snapshot while one
#     service-affecting incident changes `changes` times (default 200) at 10 a second;
#     prints the time from each change's commit to its delivery to every subscriber, and
#     the service's resident memory idle and at its highest under the subscribers.
#
#   tests/load/bench.sh deadlines [count] [replicas]   Escalation's timers on
#     PostgreSQL: `count` (default 100,000) open escalations, each with its first tier's
#     deadline due at a random moment of one minute, fired by `replicas` (default 3)
#     timers, each on its own connection pool (in one process: the service's own timer
#     code); prints the lag from each deadline's due time to the commit that queued its
#     messages, and whether every deadline fired exactly once (counted in the database).
#
#   tests/load/bench.sh evidence [MiB]   Evidence custody's content path: a file of `MiB`
#     (default 1024) random bytes; in the same run, `sha256sum` of it and a synced write of
#     it (dd conv=fsync) as the baseline; then the service (SQLite, content in a local
#     directory on the same disk) takes it as a streamed upload (hashed, written, synced,
#     recorded) and gives it back as a verified download. Prints the rates, their ratio to
#     the baseline (upload against sha256sum plus the synced write, download against
#     sha256sum), and the service's peak resident memory after a 64 MiB upload and after
#     the large one (flat: memory does not grow with the file).
#
#   tests/load/bench.sh triage-sqlite [reports] [seconds]   The same in standalone mode:
#     `custos serve` (both services on SQLite), `reports` (default 100,000) submitted to
#     intake, the time classification takes to queue them all from intake's feed, then
#     every filter combination of ListTriageQueue.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=submit
case "${1:-}" in list|triage|triage-sqlite|continuity|incidents|deadlines|evidence) MODE=$1; shift ;; esac
PG_ADMIN_URL=${CUSTOS_BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
BENCH_DB=custos_bench
# Loopback: no TLS, as pgbench below (production uses sslmode=verify-full).
PG_URL=${PG_ADMIN_URL%/*}/$BENCH_DB?sslmode=disable
SECRET=bench-secret-0123456789abcdef0123456789
PORT=50191
LOAD="target/release/custos-load"

cargo build --release -q -p custos-intake -p custos-classification -p custos-evidence-custody -p custos-load -p custos
WORK=$(mktemp -d)
INTAKE_PID=
cleanup() { [ -n "$INTAKE_PID" ] && kill "$INTAKE_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $BENCH_DB" -c "CREATE DATABASE $BENCH_DB"

if [ "$MODE" = deadlines ]; then
  "$LOAD" deadlines --database-url "$PG_URL" --count "${1:-100000}" --replicas "${2:-3}"
  psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $BENCH_DB"
  exit 0
fi
printf '%s' "$SECRET" > "$WORK/dev-signing-secret"
token() { target/release/custos token --data-dir "$WORK" --subject "$1" --role "$2"; }
TOKEN=$(token load reporter)

if [ "$MODE" = evidence ]; then
  MIB=${1:-1024}
  now() { date +%s.%N; }
  echo "== baseline: sha256sum and a synced write of a $MIB MiB file, on this disk =="
  head -c $((MIB * 1024 * 1024)) /dev/urandom > "$WORK/big.bin"
  head -c $((64 * 1024 * 1024)) /dev/urandom > "$WORK/small.bin"
  head -c $((MIB * 1024 * 1024)) /dev/urandom > "$WORK/big2.bin"
  echo "CPU SHA extensions: $(grep -o -w -m1 -E 'sha_ni|sha' /proc/cpuinfo | head -1 || echo none)"
  cat "$WORK/big.bin" > /dev/null
  T0=$(now); sha256sum "$WORK/big.bin" > "$WORK/big.sha"; T1=$(now)
  dd if="$WORK/big.bin" of="$WORK/copy.bin" bs=4M conv=fsync status=none; T2=$(now)
  rm -f "$WORK/copy.bin"
  SHA=$(cut -d' ' -f1 "$WORK/big.sha")
  SMALL_SHA=$(sha256sum "$WORK/small.bin" | cut -d' ' -f1)
  target/release/custos custody keygen --out "$WORK/custody-key.pem" >/dev/null
  CUSTODY_DB="sqlite://$WORK/custody.db"
  CUSTOS_AUTH__HS256_SECRET=$SECRET CUSTOS_AUTH__ISSUER=custos-standalone \
  CUSTOS_SERVER__SHUTDOWN_GRACE_SECS=0 \
  CUSTOS_CUSTODY__CLASSIFICATION_URL=http://127.0.0.1:1 \
  CUSTOS_CUSTODY__STORAGE__DIR="$WORK/evidence" \
  CUSTOS_CUSTODY__SIGNING_KEY_FILE="$WORK/custody-key.pem" \
  RUST_LOG=error target/release/custos-evidence-custody --listen 127.0.0.1:$PORT --database-url "$CUSTODY_DB" >"$WORK/custody.log" 2>&1 &
  INTAKE_PID=$!
  for _ in $(seq 1 100); do
    if target/release/custos custody list --server http://127.0.0.1:$PORT --token "$(token bench responder)" >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  BENCH_TOKEN=$(token bench responder)
  echo "== evidence-custody (SQLite, local directory) =="
  $LOAD evidence --server http://127.0.0.1:$PORT --database-url "$CUSTODY_DB" --token "$BENCH_TOKEN" \
    --file "$WORK/small.bin" --sha256 "$SMALL_SHA"
  HWM_SMALL=$(awk '/VmHWM/ {print $2}' /proc/$INTAKE_PID/status)
  $LOAD evidence --server http://127.0.0.1:$PORT --database-url "$CUSTODY_DB" --token "$BENCH_TOKEN" \
    --file "$WORK/big.bin" --sha256 "$SHA" --json > "$WORK/big.json"
  HWM_BIG=$(awk '/VmHWM/ {print $2}' /proc/$INTAKE_PID/status)
  # Another file of the same size, as a second item: a peak that held is a bound, not
  # growth.
  $LOAD evidence --server http://127.0.0.1:$PORT --database-url "$CUSTODY_DB" --token "$BENCH_TOKEN" \
    --file "$WORK/big2.bin" --sha256 "$(sha256sum "$WORK/big2.bin" | cut -d' ' -f1)" --json > "$WORK/big2.json"
  HWM_BIG2=$(awk '/VmHWM/ {print $2}' /proc/$INTAKE_PID/status)
  python3 - "$MIB" "$T0" "$T1" "$T2" "$WORK/big.json" "$HWM_SMALL" "$HWM_BIG" "$HWM_BIG2" "$WORK/big2.json" <<'PY'
import json, sys
mib, t0, t1, t2 = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
r = json.load(open(sys.argv[5]))
sha, write = t1 - t0, t2 - t1
base_up = mib / (sha + write)
base_down = mib / sha
print(f"baseline: sha256sum {sha:.2f} s ({mib/sha:.0f} MiB/s), synced write {write:.2f} s; sha256sum + synced write {base_up:.0f} MiB/s")
print(f"upload   {r['upload_secs']:.2f} s, {r['upload_mib_s']:.0f} MiB/s = {r['upload_mib_s']/base_up:.2f} x (sha256sum + synced write); target 0.7")
print(f"download {r['download_secs']:.2f} s, {r['download_mib_s']:.0f} MiB/s = {r['download_mib_s']/base_down:.2f} x sha256sum; target 0.7")
r2 = json.load(open(sys.argv[9]))
print(f"again     upload {r2['upload_mib_s']:.0f} MiB/s = {r2['upload_mib_s']/base_up:.2f} x, download {r2['download_mib_s']:.0f} MiB/s = {r2['download_mib_s']/base_down:.2f} x")
print(f"peak resident memory of the service: {int(sys.argv[6])/1024:.0f} MiB after a 64 MiB upload and download, {int(sys.argv[7])/1024:.0f} MiB after {mib:.0f} MiB, {int(sys.argv[8])/1024:.0f} MiB after {mib:.0f} MiB more")
PY
  kill -TERM "$INTAKE_PID"; wait "$INTAKE_PID" || true; INTAKE_PID=
  psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $BENCH_DB"
  exit 0
fi

start_intake() { # database-url log
  CUSTOS_AUTH__HS256_SECRET=$SECRET CUSTOS_AUTH__ISSUER=custos-standalone \
  CUSTOS_INTAKE__RECEIPT_SECRET=bench-receipt-secret-0123456789abcdef \
  CUSTOS_SERVER__SHUTDOWN_GRACE_SECS=0 \
  CUSTOS_DATABASE__MAX_CONNECTIONS=${BENCH_POOL:-16} CUSTOS_SERVER__MAX_CONCURRENT_REQUESTS=4096 \
  CUSTOS_DATABASE__MAX_READ_CONNECTIONS=${BENCH_READS:-4} \
  RUST_LOG=warn target/release/custos-intake --listen 127.0.0.1:$PORT --database-url "$1" >"$2" 2>&1 &
  INTAKE_PID=$!
  for _ in $(seq 1 100); do
    if target/release/custos report list --server http://127.0.0.1:$PORT --token "$TOKEN" >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  echo "intake did not start:"; cat "$2"; exit 1
}
stop_intake() { kill -TERM "$INTAKE_PID"; wait "$INTAKE_PID" || true; INTAKE_PID=; }

if [ "$MODE" = triage-sqlite ]; then
  REPORTS=${1:-100000}
  SECONDS_PER_COMBINATION=${2:-5}
  DATA="$WORK/data"
  RUST_LOG=error target/release/custos serve --data-dir "$DATA" --port $PORT >"$WORK/serve.log" 2>&1 &
  INTAKE_PID=$!
  for _ in $(seq 1 100); do grep -q "custos is running" "$WORK/serve.log" 2>/dev/null && break; sleep 0.1; done
  queued() {
    python3 -c "import sqlite3,sys; print(sqlite3.connect('file:$DATA/classification.db?mode=ro', uri=True).execute('SELECT COUNT(*) FROM triage_entries').fetchone()[0])"
  }
  echo "== seeding $REPORTS reports through intake (standalone, SQLite) =="
  START=$(date +%s.%N)
  CUSTOS_LOAD_SECRET=$(cat "$DATA/dev-signing-secret") $LOAD seed --server http://127.0.0.1:$PORT \
    --issuer custos-standalone --reporters 2000 --reports "$REPORTS"
  SEEDED=$(date +%s.%N)
  until [ "$(queued)" -ge "$REPORTS" ]; do sleep 0.5; done
  DONE=$(date +%s.%N)
  python3 -c "s,m,d=$START,$SEEDED,$DONE; print(f'classification queued all $REPORTS {d-m:.1f} s after the last was accepted ({$REPORTS/(d-s):.0f} reports/s end to end)')"
  CATEGORIES=$(python3 -c "import sqlite3; [print('--category=' + r[0]) for r in sqlite3.connect('file:$DATA/classification.db?mode=ro', uri=True).execute('SELECT DISTINCT category FROM triage_entries')]")
  # As a suite that has run a while: its planner statistics refreshed (at start and every
  # ten minutes). Restart it to have them now.
  stop_intake
  RUST_LOG=error target/release/custos serve --data-dir "$DATA" --port $PORT >"$WORK/serve2.log" 2>&1 &
  INTAKE_PID=$!
  for _ in $(seq 1 100); do grep -q "custos is running" "$WORK/serve2.log" 2>/dev/null && break; sleep 0.1; done
  echo "== ListTriageQueue (SQLite) =="
  # shellcheck disable=SC2086
  $LOAD triage --server http://127.0.0.1:$((PORT + 1)) \
    --token "$(target/release/custos token --data-dir "$DATA" --subject sam --role security_advisor)" \
    --seconds "$SECONDS_PER_COMBINATION" --span-days 1 $CATEGORIES
  stop_intake
  exit 0
fi

start_classification() { # log
  # Classification alone: nothing listens at its intake_url, so its consumer waits
  # (quietly at this log level) while the benchmark seeds what it needs directly.
  CUSTOS_AUTH__HS256_SECRET=$SECRET CUSTOS_AUTH__ISSUER=custos-standalone \
  CUSTOS_CLASSIFICATION__INTAKE_URL=http://127.0.0.1:1 CUSTOS_SERVER__SHUTDOWN_GRACE_SECS=0 \
  CUSTOS_DATABASE__MAX_CONNECTIONS=${BENCH_POOL:-16} CUSTOS_SERVER__MAX_CONCURRENT_REQUESTS=4096 \
  CUSTOS_DATABASE__MAX_READ_CONNECTIONS=${BENCH_READS:-4} \
  RUST_LOG=error target/release/custos-classification --listen 127.0.0.1:$PORT --database-url "$PG_URL" \
    >"$1" 2>&1 &
  INTAKE_PID=$!
  # Serving means its migrations are all in: seeding while the last of them builds its
  # indexes would make them wait for the seed's lock and stop the start.
  local advisor
  advisor=$(token sam security_advisor)
  for _ in $(seq 1 600); do
    if target/release/custos matrix show --server http://127.0.0.1:$PORT --token "$advisor" >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  echo "classification did not start:"; cat "$1"; exit 1
}

# A UUIDv7 for a time, as the services give ids (time-ordered: rows near in time are
# near in the primary key too), with random bits from random().
V7() { echo "(lpad(to_hex((extract(epoch FROM $1) * 1000)::bigint), 12, '0') || '7' \
  || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid"; }

if [ "$MODE" = incidents ]; then
  COUNT=${1:-1000000}
  SECONDS_PER_COMBINATION=${2:-3}
  start_classification "$WORK/classification.log"
  echo "== seeding $COUNT incidents =="
  # Each with a whole impact, as an assessment leaves it (seven dimensions, each with the
  # descriptor that matched: about 1.2 kB), which every row of a list decodes.
  IMPACT='{"matrix_revision":"fc50a5a7d4ef41e3","overall":"low","dimensions":[{"dimension":"reputational_media","row":"minor","level":"low","descriptor":"Contained internally within the council. Unfavorable council member response","chosen_row":"minor"},{"dimension":"reputational_government","row":"minor","level":"low","descriptor":"Internal investigation or disciplinary involving one individual","chosen_row":"minor"},{"dimension":"contractual","row":"minor","level":"low","descriptor":"Minor contractual problems / minimal SLA failures","chosen_row":"minor"},{"dimension":"legal","row":"minor","level":"low","descriptor":"Civil lawsuit / small fine - less than £10K","chosen_row":"minor"},{"dimension":"financial","row":"minor","level":"low","descriptor":"Less than £100,000","figure_row":"minor"},{"dimension":"disruption","row":"minor","level":"low","descriptor":"Minor disruption to service activities that can be recovered","chosen_row":"minor"},{"dimension":"personal_privacy","row":"minor","level":"low","descriptor":"Personal details revealed or compromised within department","chosen_row":"minor"}],"figures":{"estimated_financial_loss":{"currency_code":"GBP","units":2500,"nanos":0}}}'
  psql -q "$PG_URL" <<SQL
SET search_path = classification;
INSERT INTO incidents (id, number, reference, title, summary, category, impact, overall_level,
    state, declared_by, declared_at, updated_at, revision, officer, service_affecting,
    business_services, personal_data, paper_records, evidence_required, continuity_published,
    ever_affected_services, highest_level)
SELECT $(V7 at), n,
    'INC-2026-' || CASE WHEN n < 1000000 THEN lpad(n::text, 6, '0') ELSE n::text END,
    'Incident ' || n, '',
    (ARRAY['malware_infection','loss_or_theft_of_data','unauthorised_access','denial_of_service',
      'unauthorised_transfer','unauthorised_change','unauthorised_use','misdirected_email',
      'offensive_mail','information_given_to_unauthorised'])[1 + floor(power(r1, 2) * 10)::int],
    '$IMPACT',
    lvl,
    CASE WHEN at < now() - interval '60 days' AND r2 < 0.97 THEN 6 ELSE 1 + floor(r2 * 5)::int END,
    'sam', at, at, 1,
    CASE WHEN r3 < 0.9 THEN 'officer-' || (n % 200) END,
    r4 < 0.05, CASE WHEN r4 < 0.05 THEN '["email"]' ELSE '[]' END,
    r5 < 0.3, r5 > 0.95, r4 > 0.9, r4 < 0.05, CASE WHEN r4 < 0.05 THEN '["email"]' ELSE '[]' END,
    lvl
FROM (SELECT n, random() r1, random() r2, random() r3, random() r4, random() r5,
        CASE WHEN random() < 0.6 THEN 1 WHEN random() < 0.75 THEN 2 ELSE 3 END AS lvl,
        now() - interval '1095 days' * (1 - n::float8 / $COUNT) AS at
      FROM generate_series(1, $COUNT) n) s;
INSERT INTO incident_access (incident_id, subject, granted_by, granted_at)
SELECT id, officer, 'sam', declared_at FROM incidents WHERE officer IS NOT NULL;
SELECT setval('incident_number_seq', $COUNT);
-- What autovacuum would have done by now (it is off on the machines we bench on):
-- without it no page is marked all-visible and no index-only scan skips the rows.
VACUUM ANALYZE incidents;
VACUUM ANALYZE incident_access;
-- Then, as in life, the last month's incidents change again (their pages are no longer
-- all-visible until the next vacuum: a list of recent incidents reads their rows).
UPDATE incidents SET updated_at = updated_at + interval '1 minute', revision = 2
WHERE declared_at > now() - interval '30 days';
SQL
  CATEGORIES=$(psql -qtA "$PG_URL" -c "SELECT DISTINCT '--category=' || category FROM classification.incidents")
  OFFICERS=$(seq 0 199 | sed 's/^/--officer=officer-/')
  echo "== ListIncidents and GetIncident =="
  # shellcheck disable=SC2086
  $LOAD incidents --server http://127.0.0.1:$PORT --token "$(token sam security_advisor)" \
    --seconds "$SECONDS_PER_COMBINATION" --incidents "$COUNT" $CATEGORIES $OFFICERS \
    $(for o in ${BENCH_ONLY:-}; do printf -- '--only=%s ' "$o"; done)
  stop_intake
  [ "${CUSTOS_BENCH_KEEP:-}" = 1 ] || psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $BENCH_DB"
  exit 0
fi

if [ "$MODE" = continuity ]; then
  SUBSCRIBERS=${1:-1000}
  CHANGES=${2:-200}
  start_classification "$WORK/classification.log"
  psql -q "$PG_URL" <<'SQL'
SET search_path = classification;
INSERT INTO incidents (id, number, reference, title, summary, category, impact, overall_level,
    state, declared_by, declared_at, updated_at, revision, service_affecting, business_services,
    continuity_published, ever_affected_services, highest_level)
VALUES (gen_random_uuid(), 1, 'INC-2026-000001', 'Telephony down across the borough', '',
    'denial_of_service',
    '{"matrix_revision":"bench","overall":"high","dimensions":[],"figures":{}}', 3, 1, 'sam',
    now(), now(), 1, true, '["telephony"]', true, '["telephony"]', 3);
SQL
  sleep 1
  echo "idle RSS of custos-classification: $(awk '/VmRSS/ {print $2, $3}' /proc/$INTAKE_PID/status)"
  $LOAD continuity --server http://127.0.0.1:$PORT --connections 50 \
    --subscriber-token "$(token bcm business_continuity)" --advisor-token "$(token sam security_advisor)" \
    --incident INC-2026-000001 --subscribers "$SUBSCRIBERS" --changes "$CHANGES" &
  LOAD_PID=$!
  PEAK=0
  while kill -0 $LOAD_PID 2>/dev/null; do
    RSS=$(awk '/VmRSS/ {print $2}' /proc/$INTAKE_PID/status)
    [ "$RSS" -gt "$PEAK" ] && PEAK=$RSS
    sleep 0.2
  done
  wait $LOAD_PID
  echo "highest RSS of custos-classification with $SUBSCRIBERS subscribers: $PEAK kB"
  stop_intake
  [ "${CUSTOS_BENCH_KEEP:-}" = 1 ] || psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $BENCH_DB"
  exit 0
fi

if [ "$MODE" = triage ]; then
  ENTRIES=${1:-1000000}
  SECONDS_PER_COMBINATION=${2:-5}
  start_classification "$WORK/classification.log"
  echo "== seeding $ENTRIES triage entries =="
  psql -q "$PG_URL" <<SQL
SET search_path = classification;
INSERT INTO triage_entries (report_id, reference, kind, category, medium, personal_information,
    malware_suspected, anonymous, senior_notice, occurred_at, submitted_at, last_activity_at,
    follow_up_count, report_revision, state)
SELECT $(V7 at), 'SIR-' || lpad(n::text, 7, '0'),
    CASE WHEN r1 < 0.8 THEN 1 ELSE 2 END,
    -- 24 categories, the first few far commoner than the rest.
    (ARRAY['malware_infection','equipment_theft_or_loss','unauthorised_access','phishing',
      'loss_or_theft_of_data','unauthorised_transfer','unauthorised_change','denial_of_service',
      'unauthorised_use','application_malfunction','human_error','physical_security_breach',
      'access_violation','non_compliance','system_hacked','uncontrolled_change','firewall_weakness',
      'antivirus_weakness','system_overload','misuse_of_email','misuse_of_internet','theft_of_paper',
      'password_sharing','social_engineering'])[1 + floor(power(r2, 2.5) * 24)::int],
    CASE WHEN r3 < 0.9 THEN 1 ELSE 2 END, r4 < 0.3, r4 > 0.95, r5 < 0.1, r3 >= 0.9 OR r4 < 0.3,
    at - interval '2 hours', at, at, 0, 1, 1
FROM (SELECT n, random() r1, random() r2, random() r3, random() r4, random() r5,
        date_trunc('minute', now() - interval '365 days' * (1 - n::float8 / $ENTRIES)) AS at
      FROM generate_series(1, $ENTRIES) n) s;
VACUUM ANALYZE triage_entries;
SQL
  CATEGORIES=$(psql -qtA "$PG_URL" -c "SELECT DISTINCT '--category=' || category FROM classification.triage_entries")
  echo "== ListTriageQueue =="
  # shellcheck disable=SC2086
  $LOAD triage --server http://127.0.0.1:$PORT --token "$(token sam security_advisor)" \
    --seconds "$SECONDS_PER_COMBINATION" $CATEGORIES
  stop_intake
  [ "${CUSTOS_BENCH_KEEP:-}" = 1 ] || psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $BENCH_DB"
  exit 0
fi

if [ "$MODE" = list ]; then
  REPORTS=${1:-1000000}
  SECONDS_PER_COMBINATION=${2:-5}
  start_intake "$PG_URL" "$WORK/pg.log"
  echo "== seeding $REPORTS reports =="
  CUSTOS_LOAD_SECRET=$SECRET $LOAD seed --server http://127.0.0.1:$PORT --issuer custos-standalone \
    --reporters 20000 --reports "$REPORTS"
  echo "== spreading them over three years, with statuses =="
  psql -q "$PG_URL" <<'SQL'
SET search_path = intake;
-- Time follows insertion, as it does in life (the newest rows are the last written),
-- over three years.
UPDATE reports SET submitted_at = now() - interval '1095 days' * (1 - number::float8 /
  (SELECT max(number) FROM reports)) - random() * interval '10 minutes';
-- Statuses as classification leaves them: recent reports mostly open, some already
-- closed or escalated; older ones mostly closed, a few escalated, a few long-running.
UPDATE reports SET updated_at = submitted_at, status = CASE
    WHEN submitted_at > now() - interval '14 days' THEN
      CASE WHEN r < 0.40 THEN 1 WHEN r < 0.70 THEN 2 WHEN r < 0.75 THEN 3 ELSE 4 END
    ELSE CASE WHEN r < 0.05 THEN 3 WHEN r < 0.06 THEN 2 ELSE 4 END END
FROM (SELECT id AS rid, random() AS r FROM reports) x WHERE x.rid = reports.id;
VACUUM FULL reports;
ANALYZE reports;
SQL
  for view in basic full; do
    echo "== ListReports, $view view =="
    $LOAD list --server http://127.0.0.1:$PORT --staff-token "$(token desk helpdesk)" \
      --reporter-token "$(token reporter-1 reporter)" --seconds "$SECONDS_PER_COMBINATION" --view $view
  done
  stop_intake
  # CUSTOS_BENCH_KEEP=1 keeps the seeded database (to look at plans, or to rerun `list`).
  [ "${CUSTOS_BENCH_KEEP:-}" = 1 ] || psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $BENCH_DB"
  exit 0
fi

SECONDS_PER_RUN=${1:-20}
echo "== PostgreSQL (durable) =="
start_intake "$PG_URL" "$WORK/pg.log"
sleep 5
echo "idle RSS of custos-intake on PostgreSQL: $(awk '/VmRSS/ {print $2, $3}' /proc/$INTAKE_PID/status)"
$LOAD submit --server http://127.0.0.1:$PORT --token "$TOKEN" --concurrency 32 --seconds "$SECONDS_PER_RUN"
stop_intake
echo "-- pgbench: the same report + outbox insert as one statement, 32 clients --"
SQL=$PWD/tests/load/pgbench/insert_report.sql
(cd "$WORK" && PGOPTIONS="-c search_path=intake" PGSSLMODE=disable pgbench -n -c 32 -j 2 -T "$SECONDS_PER_RUN" \
  -l -f "$SQL" "$PG_URL" | grep -E "latency average|^tps")
# pgbench's own latency percentiles, from its per-transaction log (microseconds, 3rd column).
cat "$WORK"/pgbench_log.* | awk '{print $3}' | sort -n \
  | awk '{a[NR]=$1} END {printf "  pgbench latency p50 %.2f ms, p99 %.2f ms\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}'

echo "== SQLite (durable: WAL, synchronous=FULL) =="
start_intake "sqlite://$WORK/intake.db" "$WORK/sqlite.log"
sleep 5
echo "idle RSS of custos-intake on SQLite: $(awk '/VmRSS/ {print $2, $3}' /proc/$INTAKE_PID/status)"
$LOAD submit --server http://127.0.0.1:$PORT --token "$TOKEN" --concurrency 32 --seconds "$SECONDS_PER_RUN"
stop_intake
psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $BENCH_DB"
