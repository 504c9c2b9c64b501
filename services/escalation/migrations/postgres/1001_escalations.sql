-- Escalations, their nominees and timeline, the durable deadlines that move them, and
-- the queue of messages they send.

CREATE TABLE escalations (
    id UUID PRIMARY KEY,
    trigger SMALLINT NOT NULL,
    -- 1 report (intake's id), 2 incident (classification's id).
    subject_kind SMALLINT NOT NULL,
    subject_id UUID NOT NULL,
    reference TEXT NOT NULL,
    -- The routing facts the feeds gave (JSON): category, level, flags.
    facts TEXT NOT NULL,
    state SMALLINT NOT NULL,
    -- The policy's chain as it was when the escalation opened (JSON).
    chain TEXT NOT NULL,
    policy_revision INTEGER NOT NULL,
    tier_count INTEGER NOT NULL,
    -- The latest tier reached (1 for the first).
    current_tier INTEGER NOT NULL,
    next_deadline_at TIMESTAMPTZ,
    exhausted BOOLEAN NOT NULL,
    opened_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    stopped_reason TEXT NOT NULL,
    revision INTEGER NOT NULL,
    timeline_sequence INTEGER NOT NULL,
    -- About an anonymous report: random ids, times cut to the minute.
    anonymous BOOLEAN NOT NULL
);
-- At most one open escalation per trigger and subject.
CREATE UNIQUE INDEX escalations_one_open ON escalations (subject_id, trigger) WHERE state = 1;
-- ListEscalations, newest first.
CREATE INDEX escalations_by_time ON escalations (opened_at, id);
-- Overdue: open escalations by deadline.
CREATE INDEX escalations_open_by_deadline ON escalations (next_deadline_at) WHERE state = 1;

-- The tiers reached, when, and their deadlines.
CREATE TABLE escalation_tiers (
    escalation_id UUID NOT NULL REFERENCES escalations (id),
    tier INTEGER NOT NULL,
    reached_at TIMESTAMPTZ NOT NULL,
    deadline_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (escalation_id, tier)
);

-- Everyone told at each tier reached, and what they did.
CREATE TABLE escalation_nominees (
    escalation_id UUID NOT NULL REFERENCES escalations (id),
    tier INTEGER NOT NULL,
    contact_id UUID NOT NULL REFERENCES contacts (id),
    display_name TEXT NOT NULL,
    notified_at TIMESTAMPTZ NOT NULL,
    acknowledged_at TIMESTAMPTZ,
    note TEXT,
    -- The token subject of the caller who acknowledged.
    acknowledged_by TEXT,
    missed_deadline BOOLEAN NOT NULL,
    PRIMARY KEY (escalation_id, tier, contact_id)
);
-- `mine`, and who may see an escalation.
CREATE INDEX escalation_nominees_by_contact ON escalation_nominees (contact_id, escalation_id);

-- What happened, in order. Append-only: the database refuses to change or remove an
-- entry, whoever asks.
CREATE TABLE escalation_timeline (
    escalation_id UUID NOT NULL REFERENCES escalations (id),
    sequence INTEGER NOT NULL,
    kind SMALLINT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    tier INTEGER NOT NULL,
    contact_id UUID,
    channel TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (escalation_id, sequence)
);
CREATE FUNCTION escalation_timeline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the escalation timeline is append-only'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER escalation_timeline_append_only BEFORE UPDATE OR DELETE ON escalation_timeline
    FOR EACH ROW EXECUTE FUNCTION escalation_timeline_append_only();
CREATE TRIGGER escalation_timeline_no_truncate BEFORE TRUNCATE ON escalation_timeline
    FOR EACH STATEMENT EXECUTE FUNCTION escalation_timeline_append_only();

-- Pending deadlines. A deadline is deleted in the transaction that applies it: a
-- replica claims due rows with FOR UPDATE SKIP LOCKED, so each fires once, and a
-- replica that dies mid-way rolls back and leaves them for the next.
CREATE TABLE deadlines (
    id UUID PRIMARY KEY,
    escalation_id UUID NOT NULL REFERENCES escalations (id),
    -- 1 reminder, 2 tier deadline, 3 repeat past the last tier.
    kind SMALLINT NOT NULL,
    tier INTEGER NOT NULL,
    due_at TIMESTAMPTZ NOT NULL,
    UNIQUE (escalation_id, kind, tier)
);
CREATE INDEX deadlines_due ON deadlines (due_at, id);
CREATE INDEX deadlines_by_escalation ON deadlines (escalation_id);

-- Deadlines that could not be applied (their escalation moves on no more by itself): an
-- operator's to look at.
CREATE TABLE parked_deadlines (
    id UUID PRIMARY KEY,
    escalation_id UUID NOT NULL,
    kind SMALLINT NOT NULL,
    tier INTEGER NOT NULL,
    due_at TIMESTAMPTZ NOT NULL,
    error TEXT NOT NULL,
    parked_at TIMESTAMPTZ NOT NULL
);

-- Messages to send, and what became of them.
CREATE TABLE mail_queue (
    id UUID PRIMARY KEY,
    escalation_id UUID NOT NULL REFERENCES escalations (id),
    contact_id UUID NOT NULL REFERENCES contacts (id),
    tier INTEGER NOT NULL,
    to_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    -- 1 pending, 2 sent, 3 failed for good.
    state SMALLINT NOT NULL,
    attempts INTEGER NOT NULL,
    -- A pending message is sent once this has passed; a sender that takes it moves it
    -- ahead by its lease, so a sender that dies leaves it to another.
    next_attempt_at TIMESTAMPTZ NOT NULL,
    queued_at TIMESTAMPTZ NOT NULL,
    sent_at TIMESTAMPTZ,
    last_error TEXT,
    -- About an anonymous report: sent no sooner than a minute after the minute it was
    -- queued in, and its times cut to the minute.
    anonymous BOOLEAN NOT NULL,
    -- The Message-ID header, the same on every attempt.
    message_id TEXT NOT NULL,
    -- The sender that holds the message until next_attempt_at (it may mark it sent or
    -- failed only while it holds it).
    claim UUID,
    -- The message to the contact this one's deputy stands in for (one hop: a deputy's
    -- message that fails is not passed on again).
    deputy_for UUID UNIQUE REFERENCES mail_queue (id)
);
CREATE INDEX mail_queue_pending ON mail_queue (next_attempt_at) WHERE state = 1;
CREATE INDEX mail_queue_by_escalation ON mail_queue (escalation_id);

-- Weaknesses reported to a provider (intake's ProviderReportRecorded), watched until the
-- fix is judged effective; past due_at the central point of contact is told.
CREATE TABLE provider_watches (
    provider_report_id UUID PRIMARY KEY,
    report_id UUID NOT NULL,
    reference TEXT NOT NULL,
    due_at TIMESTAMPTZ NOT NULL,
    -- 1 waiting, 2 fixed, 3 overdue (escalated).
    state SMALLINT NOT NULL
);
CREATE INDEX provider_watches_due ON provider_watches (due_at) WHERE state = 1;

-- What the feeds said of each report and incident: the routing facts now (escalations
-- open when a fact turns on or a level rises, not on every event that repeats it), and
-- whether it has ended (a report dismissed or taken into an incident, an incident
-- closed): an escalation an event of the other feed would open late is not opened.
CREATE TABLE subjects (
    subject_id UUID PRIMARY KEY,
    kind SMALLINT NOT NULL,
    reference TEXT NOT NULL,
    facts TEXT NOT NULL,
    anonymous BOOLEAN NOT NULL,
    ended_reason TEXT,
    ended_at TIMESTAMPTZ
);
