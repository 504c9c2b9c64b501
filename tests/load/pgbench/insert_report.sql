-- What one SubmitReport writes on PostgreSQL, as one statement: a report row (with a
-- reference from the sequence) and its outbox row, in intake's own tables. Run by
-- bench.sh with search_path set to the benchmark's intake schema.
WITH n AS (SELECT nextval('report_number_seq') AS number),
r AS (
  INSERT INTO reports (id, number, reference, kind, status, category, medium, details, original,
      contact, anonymous, submitted_by, submitted_at, updated_at, revision, senior_notice,
      idempotency_hash, request_hash, receipt_hash)
  SELECT gen_random_uuid(), n.number, 'SIR-2026-' || lpad(n.number::text, 6, '0'), 1, 1, 'phishing', 1,
      '{"category":"phishing","medium":"electronic","data_involved":"Mailbox","risk_to_others":"unknown","risk_details":"","incident_location":"Head office","inventory_numbers":[],"occurred_at":"2026-11-28T09:00:00Z","affected_location":"","circumstances":"Email asking for bank details","symptoms":"","personal_information":false,"malware_suspected":false}',
      '{"details":{"category":"phishing","medium":"electronic","data_involved":"Mailbox","risk_to_others":"unknown","risk_details":"","incident_location":"Head office","inventory_numbers":[],"occurred_at":"2026-11-28T09:00:00Z","affected_location":"","circumstances":"Email asking for bank details","symptoms":"","personal_information":false,"malware_suspected":false},"contact":{"name":"Load Test","phone":"01632 960123","email":"load@example.org"}}',
      '{"name":"Load Test","phone":"01632 960123","email":"load@example.org"}',
      false, 'loadtest', now(), now(), 1, false,
      sha256(gen_random_uuid()::text::bytea), sha256('request'::bytea), NULL
  FROM n
  RETURNING id, reference
)
INSERT INTO outbox (event_id, event_type, occurred_at, aggregate_id, aggregate_reference, trace_context, payload)
SELECT gen_random_uuid(), 'custos.intake.v1.ReportSubmitted', now(), r.id::text, r.reference,
    '{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}',
    '\x0801120870686973686e67180120002800300038004a0c08c0f1a6c806100000'::bytea
FROM r;
